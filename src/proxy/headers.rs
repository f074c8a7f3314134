//! HTTP header hygiene for a reverse proxy: hop-by-hop headers (RFC 9110 §7.6.1), `Forwarded`
//! (RFC 7239) and `X-Forwarded-For`, request ids, header size accounting.
//!
//! Pure functions over `http` types; must not import the log, the writer or the upstream client.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The request id header, propagated from the client or generated, returned on every response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Longest request id accepted from a client.
const MAX_REQUEST_ID: usize = 128;

/// Removes hop-by-hop headers: `Connection` and every header it names, `Keep-Alive`, `TE`,
/// `Trailer`, `Transfer-Encoding`, `Upgrade`, and every `Proxy-*` header.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        KEEP_ALIVE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        PROXY_CONNECTION,
    ] {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Appends this hop to `Forwarded` and `X-Forwarded-For`, and sets `X-Forwarded-Proto`.
/// `host` is the Host (or `:authority`) the client used, if any.
pub fn add_forwarded(headers: &mut HeaderMap, peer: SocketAddr, tls: bool, host: Option<&str>) {
    let proto = if tls { "https" } else { "http" };
    let for_node = match peer {
        SocketAddr::V4(a) => format!("\"{}:{}\"", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("\"[{}]:{}\"", a.ip(), a.port()),
    };
    let mut element = format!("for={for_node};proto={proto}");
    if let Some(h) = host.filter(|h| {
        h.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        element.push_str(";host=\"");
        element.push_str(h);
        element.push('"');
    }
    append_list(headers, header::FORWARDED, &element);
    append_list(headers, X_FORWARDED_FOR, &peer.ip().to_string());
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

fn append_list(headers: &mut HeaderMap, name: HeaderName, element: &str) {
    let previous: Vec<String> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let joined = if previous.is_empty() {
        element.to_owned()
    } else {
        format!("{}, {element}", previous.join(", "))
    };
    match HeaderValue::from_str(&joined) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => {
            // The previous values were not visible ASCII; replace them rather than forward junk.
            if let Ok(v) = HeaderValue::from_str(element) {
                headers.insert(name, v);
            }
        }
    }
}

/// The client's `X-Request-Id` if it is a sensible token (1–128 of `A-Z a-z 0-9 . _ : -`),
/// otherwise a fresh one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= MAX_REQUEST_ID
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        })
        .map_or_else(fresh_request_id, str::to_owned)
}

/// A new request id: 96 random bits, hex; a process-unique counter if randomness fails.
pub fn fresh_request_id() -> String {
    static FALLBACK: AtomicU64 = AtomicU64::new(0);
    let mut buf = [0u8; 12];
    match getrandom::fill(&mut buf) {
        Ok(()) => hex::encode(buf),
        Err(_) => format!(
            "s62-{}-{}",
            std::process::id(),
            FALLBACK.fetch_add(1, Ordering::Relaxed)
        ),
    }
}

/// Bytes the request headers take on the wire (names, values and `: \r\n` per line).
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum()
}

/// True when `content-type` says JSON (`application/json` or any `+json` type).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic x"),
        );
        h.insert("proxy-foo", HeaderValue::from_static("1"));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "only Accept survives: {h:?}");
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn forwarded_headers_append_this_hop() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        let peer: SocketAddr = "[2001:db8::1]:4431".parse().expect("addr");
        add_forwarded(&mut h, peer, true, Some("records.example"));
        assert_eq!(h[X_FORWARDED_FOR], "203.0.113.9, 2001:db8::1");
        assert_eq!(
            h[header::FORWARDED],
            "for=\"[2001:db8::1]:4431\";proto=https;host=\"records.example\""
        );
        assert_eq!(h[X_FORWARDED_PROTO], "https");
    }

    #[test]
    fn a_sensible_request_id_is_kept_and_anything_else_replaced() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(X_REQUEST_ID, HeaderValue::from_static("has space"));
        let id = request_id(&h);
        assert_ne!(id, "has space");
        assert_eq!(id.len(), 24);
        assert_ne!(fresh_request_id(), fresh_request_id());
    }

    #[test]
    fn json_content_types_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        assert!(is_json(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h));
    }
}

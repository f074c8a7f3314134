//! Shared scenery for the console tests: an HTTP/2 client over TLS with a client certificate (as
//! a browser makes), gRPC-Web framing, and a loopback proxy that can alter a gRPC-Web response in
//! transit (a stand-in for anything between the auditor and the sidecar that cannot be trusted).
#![allow(dead_code)]

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// An HTTP/2 connection to the query listener presenting `identity` (cert PEM, key PEM), or
/// the TLS error when the handshake is refused.
pub async fn connect_h2(
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let id = identity.map(|(c, k)| (c.as_bytes(), k.as_bytes()));
    let cfg = s62::proxy::tls::client_config(ca_pem.as_bytes(), id).map_err(|e| e.to_string())?;
    let mut cfg = (*cfg).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A response, read to the end.
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> Result<Reply, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

pub async fn get(sender: &mut SendRequest<Full<Bytes>>, path: &str) -> Reply {
    let req = http::Request::get(format!("https://localhost{path}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(sender, req).await.expect("GET")
}

/// One gRPC-Web frame around a message.
pub fn frame(msg: &impl Message) -> Bytes {
    let body = msg.encode_to_vec();
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out.into()
}

/// A gRPC-Web reply taken apart: the message frames, and the gRPC status from the headers
/// (trailers-only) or the trailer frame.
pub struct GrpcWebReply {
    pub http: Reply,
    pub messages: Vec<Bytes>,
    pub grpc_status: Option<String>,
    pub grpc_message: Option<String>,
}

pub fn parse_grpc_web(http: Reply) -> GrpcWebReply {
    let mut messages = Vec::new();
    let mut grpc_status = http.header("grpc-status").map(str::to_owned);
    let mut grpc_message = http.header("grpc-message").map(str::to_owned);
    let mut buf = http.body.clone();
    while buf.remaining() >= 5 {
        let flag = buf.get_u8();
        let len = buf.get_u32() as usize;
        let data = buf.split_to(len);
        if flag & 0x80 != 0 {
            for line in String::from_utf8_lossy(&data).split("\r\n") {
                if let Some((k, v)) = line.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "grpc-status" => grpc_status = Some(v.trim().to_owned()),
                        "grpc-message" => grpc_message = Some(v.trim().to_owned()),
                        _ => {}
                    }
                }
            }
        } else {
            messages.push(data);
        }
    }
    GrpcWebReply {
        http,
        messages,
        grpc_status,
        grpc_message,
    }
}

/// Calls `/s62.query.v1.AuditQuery/{method}` as a browser's gRPC-Web client does.
pub async fn grpc_web_call(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    msg: &impl Message,
) -> GrpcWebReply {
    let req = http::Request::post(format!(
        "https://localhost/s62.query.v1.AuditQuery/{method}"
    ))
    .header("content-type", "application/grpc-web+proto")
    .header("x-grpc-web", "1")
    .body(Full::new(frame(msg)))
    .expect("request");
    parse_grpc_web(send(sender, req).await.expect("gRPC-Web call"))
}

/// A loopback HTTP/1.1 proxy in front of the query listener, for a browser: it connects
/// upstream with the auditor's client certificate and, while `tamper` is set, alters the
/// first two entries of every `Search` response (see [`alter_search_response`]). Counts them.
pub struct TamperProxy {
    pub addr: SocketAddr,
    pub tamper: Arc<AtomicBool>,
    pub altered: Arc<AtomicUsize>,
}

impl TamperProxy {
    pub async fn start(
        upstream: SocketAddr,
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tamper = Arc::new(AtomicBool::new(true));
        let altered = Arc::new(AtomicUsize::new(0));
        let (t, a) = (tamper.clone(), altered.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (ca, cert, key, t, a) = (
                    ca_pem.clone(),
                    cert_pem.clone(),
                    key_pem.clone(),
                    t.clone(),
                    a.clone(),
                );
                tokio::spawn(async move {
                    let Ok(upstream) = connect_h2(upstream, &ca, Some((&cert, &key))).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        forward(upstream.clone(), req, t.clone(), a.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        TamperProxy {
            addr,
            tamper,
            altered,
        }
    }
}

async fn forward(
    mut upstream: SendRequest<Full<Bytes>>,
    req: http::Request<hyper::body::Incoming>,
    tamper: Arc<AtomicBool>,
    altered: Arc<AtomicUsize>,
) -> Result<http::Response<Full<Bytes>>, String> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut out = http::Request::builder()
        .method(parts.method.clone())
        .uri(format!("https://localhost{path}"));
    for (k, v) in &parts.headers {
        if !matches!(
            k.as_str(),
            "host"
                | "connection"
                | "content-length"
                | "transfer-encoding"
                | "keep-alive"
                | "origin"
        ) {
            out = out.header(k, v);
        }
    }
    let reply = send(&mut upstream, out.body(Full::new(body)).expect("request")).await?;
    let mut body = reply.body.to_vec();
    if path.ends_with("/Search")
        && tamper.load(Ordering::SeqCst)
        && alter_search_response(&mut body)
    {
        altered.fetch_add(1, Ordering::SeqCst);
    }
    let mut res = http::Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        if !matches!(k.as_str(), "content-length" | "transfer-encoding") {
            res = res.header(k, v);
        }
    }
    Ok(res.body(Full::new(Bytes::from(body))).expect("response"))
}

/// In a gRPC-Web `Search` response body, alters the first two entries as they pass: one byte of
/// the first entry's stored bytes (inside its `prev_leaf_hash`, so it still parses and only its
/// inclusion proof can tell), and the last byte of the second entry's value row (in format 3 the
/// last byte of the entry's seed, in format 2 of a personal value: either way only the leaf's
/// commitment can tell). Each frame keeps its length.
/// False when there were fewer than two entries.
fn alter_search_response(body: &mut [u8]) -> bool {
    use s62::query::pb::{SearchResponse, search_response::Item};
    let mut at = 0;
    let mut altered = 0;
    while at + 5 <= body.len() && altered < 2 {
        let flag = body[at];
        let len = u32::from_be_bytes(body[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
        let end = at + 5 + len;
        if flag == 0 {
            let mut msg = SearchResponse::decode(&body[at + 5..end]).expect("a SearchResponse");
            if let Some(Item::Entry(e)) = msg.item.as_mut() {
                if altered == 0 {
                    // prev_leaf_hash: field 6, 32 bytes (tag 0x32, length 0x20).
                    let i = e
                        .leaf
                        .windows(2)
                        .position(|w| w == [0x32, 0x20])
                        .expect("a prev_leaf_hash");
                    e.leaf[i + 2 + 7] ^= 0x01;
                } else {
                    *e.values.last_mut().expect("a value row") ^= 0x01;
                }
                altered += 1;
                let bytes = msg.encode_to_vec();
                assert_eq!(bytes.len(), len, "same length after a flip");
                body[at + 5..end].copy_from_slice(&bytes);
            }
        }
        at = end;
    }
    altered == 2
}

//! `[upstream]`: the records system s62 forwards to, and how it is reached.

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;

use super::check::{Checker, Section};

/// `[upstream]`: the records system.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamConfig {
    /// `http://` or `https://` with an authority and no path beyond `/`.
    pub url: Uri,
    /// Extra trust root for an `https` upstream.
    pub ca_file: Option<PathBuf>,
    /// Client certificate presented to an `https` upstream.
    pub client_identity: Option<ClientIdentityFiles>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl UpstreamConfig {
    /// Whether the upstream is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.url.scheme_str() == Some("https")
    }
}

/// A certificate chain and its private key.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientIdentityFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    url: Option<String>,
    ca_file: Option<String>,
    client_cert_file: Option<String>,
    client_key_file: Option<String>,
    connect_timeout_ms: Option<i64>,
    response_timeout_ms: Option<i64>,
}

impl Section for UpstreamConfig {
    const KEY: &'static str = "upstream";
    type Raw = RawUpstream;

    fn check(raw: RawUpstream, c: &mut Checker<'_>) -> Option<Self> {
        let url = c.required("upstream.url", raw.url);
        let url = url.and_then(|u| upstream_url(&u, c));
        let https = url
            .as_ref()
            .is_some_and(|u| u.scheme_str() == Some("https"));
        let ca_file = c.file("upstream.ca_file", raw.ca_file);
        let cert = c.file("upstream.client_cert_file", raw.client_cert_file);
        let key = c.file("upstream.client_key_file", raw.client_key_file);
        let client_identity = match (cert, key) {
            (Some(cert_file), Some(key_file)) => Some(ClientIdentityFiles {
                cert_file,
                key_file,
            }),
            (Some(_), None) => {
                c.push(
                    "upstream.client_key_file",
                    "is required with upstream.client_cert_file",
                );
                None
            }
            (None, Some(_)) => {
                c.push(
                    "upstream.client_cert_file",
                    "is required with upstream.client_key_file",
                );
                None
            }
            (None, None) => None,
        };
        if url.is_some() && !https {
            for (key, set) in [
                ("upstream.ca_file", ca_file.is_some()),
                ("upstream.client_cert_file", client_identity.is_some()),
            ] {
                if set {
                    c.push(key, "TLS files are only used with an https:// upstream url");
                }
            }
        }
        let connect_timeout = c.millis("upstream.connect_timeout_ms", raw.connect_timeout_ms, 2000);
        let response_timeout = c.millis(
            "upstream.response_timeout_ms",
            raw.response_timeout_ms,
            30000,
        );
        Some(UpstreamConfig {
            url: url?,
            ca_file,
            client_identity,
            connect_timeout,
            response_timeout,
        })
    }
}

fn upstream_url(text: &str, c: &mut Checker<'_>) -> Option<Uri> {
    let path = "upstream.url";
    let Ok(url) = text.parse::<Uri>() else {
        c.push(path, format!("{text:?} is not a URL"));
        return None;
    };
    if !matches!(url.scheme_str(), Some("http" | "https")) {
        c.push(
            path,
            format!("{text:?} must start with http:// or https://"),
        );
        return None;
    }
    if url.authority().is_none_or(|a| a.host().is_empty()) {
        c.push(path, format!("{text:?} has no host"));
        return None;
    }
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        c.push(path, "must not contain credentials");
        return None;
    }
    if url.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        c.push(
            path,
            "must not have a path or query (requests are forwarded with their own path)",
        );
        return None;
    }
    Some(url)
}

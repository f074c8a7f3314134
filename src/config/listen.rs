//! `[listen]` and `[listen.tls]`: the client-facing listener and its TLS.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::check::{Checker, Section};

/// `[listen]`: the client-facing listener.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenConfig {
    pub address: SocketAddr,
    /// `None`: plain HTTP (local use, demos, or behind a TLS-terminating gateway in the same pod).
    pub tls: Option<ServerTls>,
}

/// `[listen.tls]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Set exactly when `client_auth` is not [`ClientAuth::None`].
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// Certificate revocation lists (PEM) for client certificates; re-read when they change.
    pub crl_files: Vec<PathBuf>,
}

/// Whether the listener asks for TLS client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is requested.
    None,
    /// A certificate is verified if offered; clients without one may still connect.
    Optional,
    /// Clients without a valid certificate are refused during the handshake.
    Required,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    address: Option<String>,
    tls: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServerTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    client_auth: Option<String>,
    crl_files: Option<Vec<String>>,
}

impl Section for ListenConfig {
    const KEY: &'static str = "listen";
    type Raw = RawListen;

    fn check(raw: RawListen, c: &mut Checker<'_>) -> Option<Self> {
        let address = c.socket(
            "listen.address",
            raw.address.as_deref().unwrap_or("127.0.0.1:8443"),
        );
        let tls = match raw.tls {
            None => Some(None),
            Some(v) => c
                .table::<RawServerTls>("listen.tls", v)
                .and_then(|t| server_tls(t, c))
                .map(Some),
        };
        Some(ListenConfig {
            address: address?,
            tls: tls?,
        })
    }
}

fn server_tls(raw: RawServerTls, c: &mut Checker<'_>) -> Option<ServerTls> {
    let cert_file = c.file("listen.tls.cert_file", raw.cert_file);
    let cert_file = c.required("listen.tls.cert_file", cert_file);
    let key_file = c.file("listen.tls.key_file", raw.key_file);
    let key_file = c.required("listen.tls.key_file", key_file);
    let client_ca_file = c.file("listen.tls.client_ca_file", raw.client_ca_file);
    let client_auth = match raw.client_auth.as_deref() {
        None if client_ca_file.is_some() => Some(ClientAuth::Required),
        None | Some("none") => Some(ClientAuth::None),
        Some("optional") => Some(ClientAuth::Optional),
        Some("required") => Some(ClientAuth::Required),
        Some(other) => {
            c.push(
                "listen.tls.client_auth",
                format!("{other:?} is not one of \"none\", \"optional\", \"required\""),
            );
            None
        }
    };
    match (client_auth, &client_ca_file) {
        (Some(ClientAuth::None), Some(_)) => c.push(
            "listen.tls.client_ca_file",
            "is set but client_auth = \"none\"; remove it or ask for client certificates",
        ),
        (Some(ClientAuth::Optional | ClientAuth::Required), None) => c.push(
            "listen.tls.client_ca_file",
            "is required to verify client certificates (client_auth is not \"none\")",
        ),
        _ => {}
    }
    let mut crl_files = Vec::new();
    for (i, f) in raw.crl_files.into_iter().flatten().enumerate() {
        if let Some(p) = c.file(&format!("listen.tls.crl_files[{i}]"), Some(f)) {
            crl_files.push(p);
        }
    }
    if !crl_files.is_empty() && client_auth == Some(ClientAuth::None) {
        c.push(
            "listen.tls.crl_files",
            "revocation lists need client certificates (client_auth is \"none\")",
        );
    }
    Some(ServerTls {
        crl_files,
        cert_file: cert_file?,
        key_file: key_file?,
        client_ca_file,
        client_auth: client_auth?,
    })
}

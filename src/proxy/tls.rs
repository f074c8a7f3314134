//! rustls configuration (ring provider) for the listener and for the upstream client, from PEM.
//!
//! Invariants: client certificates are verified by rustls' WebPKI verifier against the configured
//! CA only; "optional" still rejects a certificate that does not verify; the upstream is verified
//! against the configured CA (no "insecure" switch exists). Must not import the log.

use rustls::client::ClientConfig;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{RootCertStore, crypto::CryptoProvider};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Whether the listener asks for client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Never asked for.
    None,
    /// Asked for; a client may connect without one (and is then identified otherwise).
    Optional,
    /// The handshake fails without a certificate that verifies.
    Required,
}

/// A TLS setup problem, naming what was being read.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM input held no certificates or no private key.
    #[error("{what}: no {expected} found in the PEM")]
    Missing {
        /// Which input (e.g. "listen.tls.cert_file").
        what: String,
        /// What was looked for.
        expected: &'static str,
    },
    /// A PEM input did not parse.
    #[error("{what}: {source}")]
    Pem {
        what: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the certificates, key or CA.
    #[error("{what}: {source}")]
    Rustls {
        what: String,
        #[source]
        source: rustls::Error,
    },
    /// The client CA could not be turned into a verifier.
    #[error("{what}: {source}")]
    Verifier {
        what: String,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// A client CA is needed for optional or required client certificates.
    #[error("listen.tls.client_ca_file is required when client_auth is optional or required")]
    NoClientCa,
}

/// The crypto provider used everywhere (ring, per the toolchain notes).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate in a PEM input.
pub fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: what.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            what: what.to_owned(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

/// Parses the first private key in a PEM input.
pub fn key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            what: what.to_owned(),
            expected: "private key",
        },
        source => TlsError::Pem {
            what: what.to_owned(),
            source,
        },
    })
}

fn roots(pem: &[u8], what: &str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs(pem, what)? {
        store.add(c).map_err(|source| TlsError::Rustls {
            what: what.to_owned(),
            source,
        })?;
    }
    Ok(store)
}

/// The listener's TLS config: its certificate chain and key, and client certificates verified
/// against `client_ca_pem` as `client_auth` says. ALPN offers h2 and http/1.1.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let rustls_err = |what: &str| {
        let what = what.to_owned();
        move |source| TlsError::Rustls { what, source }
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("listen.tls"))?;
    let builder = match (client_auth, client_ca_pem) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err(TlsError::NoClientCa),
        (mode, Some(ca)) => {
            let roots = Arc::new(roots(ca, "listen.tls.client_ca_file")?);
            let v = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let v = if mode == ClientAuth::Optional {
                v.allow_unauthenticated()
            } else {
                v
            };
            let verifier = v.build().map_err(|source| TlsError::Verifier {
                what: "listen.tls.client_ca_file".into(),
                source,
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(
            certs(cert_pem, "listen.tls.cert_file")?,
            key(key_pem, "listen.tls.key_file")?,
        )
        .map_err(rustls_err("listen.tls.key_file"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The upstream client's TLS config: the upstream is verified against `ca_pem`; a client
/// certificate is presented when one is given. ALPN offers http/1.1 only.
pub fn client_config(
    ca_pem: &[u8],
    client_cert: Option<(&[u8], &[u8])>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "upstream".into(),
            source,
        })?
        .with_root_certificates(roots(ca_pem, "upstream.ca_file")?);
    let mut cfg = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(
                certs(cert_pem, "upstream.client_cert_file")?,
                key(key_pem, "upstream.client_key_file")?,
            )
            .map_err(|source| TlsError::Rustls {
                what: "upstream.client_key_file".into(),
                source,
            })?,
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

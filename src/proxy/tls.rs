//! rustls configuration (ring provider) for the listener and for the upstream client, from PEM.
//!
//! Invariants: client certificates are verified by rustls' WebPKI verifier against the configured
//! CA only; "optional" still rejects a certificate that does not verify; the upstream is verified
//! against the configured CA (no "insecure" switch exists); with CRL files, a revoked client
//! certificate fails the handshake, and the files are re-read when they change (checked at most
//! once a second, on handshakes; a file that no longer reads keeps the last good lists). Must not
//! import the log.

use rustls::client::ClientConfig;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls::{RootCertStore, crypto::CryptoProvider};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

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
    /// A revocation list could not be read.
    #[error("{what}: {source}")]
    Crl {
        what: String,
        #[source]
        source: std::io::Error,
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
    server_config_with_crls(cert_pem, key_pem, client_ca_pem, client_auth, &[])
}

/// [`server_config`], with client certificates also checked against the revocation lists in
/// `crl_files` (PEM or DER), re-read when they change.
pub fn server_config_with_crls(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
    client_auth: ClientAuth,
    crl_files: &[PathBuf],
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
            if crl_files.is_empty() {
                builder.with_client_cert_verifier(client_verifier(
                    roots,
                    provider.clone(),
                    mode,
                    Vec::new(),
                )?)
            } else {
                builder.with_client_cert_verifier(Arc::new(CrlReloadingVerifier::new(
                    roots,
                    provider.clone(),
                    mode,
                    crl_files.to_vec(),
                )?))
            }
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

fn client_verifier(
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    mode: ClientAuth,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let v = WebPkiClientVerifier::builder_with_provider(roots, provider);
    let v = if mode == ClientAuth::Optional {
        v.allow_unauthenticated()
    } else {
        v
    };
    let v = if crls.is_empty() {
        v
    } else {
        v.with_crls(crls).only_check_end_entity_revocation()
    };
    v.build().map_err(|source| TlsError::Verifier {
        what: "listen.tls.client_ca_file".into(),
        source,
    })
}

/// Every revocation list in a PEM or DER file.
pub fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let what = format!("listen.tls.crl_files ({})", path.display());
    let bytes = std::fs::read(path).map_err(|source| TlsError::Crl {
        what: what.clone(),
        source,
    })?;
    let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Pem {
            what: what.clone(),
            source,
        })?;
    Ok(if pem.is_empty() {
        vec![CertificateRevocationListDer::from(bytes)]
    } else {
        pem
    })
}

/// How often the CRL files' modification times are looked at.
const CRL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// The WebPKI client verifier over the current CRLs, rebuilt when a CRL file changes.
pub struct CrlReloadingVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    mode: ClientAuth,
    files: Vec<PathBuf>,
    hints: Vec<DistinguishedName>,
    current: RwLock<(Stamp, Arc<dyn ClientCertVerifier>)>,
    checked: Mutex<Instant>,
}

impl std::fmt::Debug for CrlReloadingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlReloadingVerifier")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl CrlReloadingVerifier {
    /// Reads the lists now; a list that does not read is a setup error.
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        mode: ClientAuth,
        files: Vec<PathBuf>,
    ) -> Result<Self, TlsError> {
        let stamp = stamp(&files);
        let verifier = Self::build(&roots, &provider, mode, &files)?;
        Ok(CrlReloadingVerifier {
            hints: verifier.root_hint_subjects().to_vec(),
            roots,
            provider,
            mode,
            files,
            current: RwLock::new((stamp, verifier)),
            checked: Mutex::new(Instant::now()),
        })
    }

    fn build(
        roots: &Arc<RootCertStore>,
        provider: &Arc<CryptoProvider>,
        mode: ClientAuth,
        files: &[PathBuf],
    ) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let mut crls = Vec::new();
        for f in files {
            crls.extend(read_crls(f)?);
        }
        client_verifier(roots.clone(), provider.clone(), mode, crls)
    }

    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        let due = {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            if checked.elapsed() >= CRL_CHECK_INTERVAL {
                *checked = Instant::now();
                true
            } else {
                false
            }
        };
        if due {
            let now = stamp(&self.files);
            let changed = self.current.read().map(|c| c.0 != now).unwrap_or(true);
            if changed {
                match Self::build(&self.roots, &self.provider, self.mode, &self.files) {
                    Ok(v) => {
                        if let Ok(mut c) = self.current.write() {
                            *c = (now, v);
                        }
                        tracing::info!("client certificate revocation lists reloaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "revocation lists changed but do not read; keeping the previous ones");
                    }
                }
            }
        }
        match self.current.read() {
            Ok(c) => c.1.clone(),
            Err(e) => e.into_inner().1.clone(),
        }
    }
}

impl ClientCertVerifier for CrlReloadingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mode == ClientAuth::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
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

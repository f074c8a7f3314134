//! The query listener's transport: TLS with REQUIRED client certificates (rustls
//! `WebPkiClientVerifier` over `client_ca_file`, ALPN h2), an accept loop that hands verified
//! connections to tonic with their [`PeerInfo`], and the logging of failed handshakes.
//!
//! A client without a certificate, or with one the client CA did not issue, never reaches gRPC:
//! the handshake fails and a `denied` entry (`tls_handshake_failed`, with the peer address and the
//! TLS error) is appended, at most a burst of 20 and then one a second (the rest are counted and
//! mentioned on the next one logged). A connection closed before any TLS byte (a TCP probe) is
//! not logged. Must not import the proxy's hyper code or RocksDB.

use super::audit::{AuditTrail, HandshakeDenials};
use super::auth::PeerInfo;
use crate::config::QueryConfig;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the query listener could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A certificate, key or CA file could not be read or holds nothing usable.
    #[error("{path}: {why}")]
    Pem { path: PathBuf, why: String },
    /// rustls refused the certificate, key or protocol configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client CA file cannot anchor client certificate verification.
    #[error("client CA: {0}")]
    ClientCa(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The reflection service could not load the descriptor set (a build problem).
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[source] tonic::transport::Error),
}

fn pem_error(path: &Path) -> impl FnOnce(rustls_pki_types::pem::Error) -> ServeError + '_ {
    move |e| ServeError::Pem {
        path: path.to_owned(),
        why: e.to_string(),
    }
}

/// All certificates in a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error(path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(path))?;
    if certs.is_empty() {
        return Err(ServeError::Pem {
            path: path.to_owned(),
            why: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServeError> {
    PrivateKeyDer::from_pem_file(path).map_err(pem_error(path))
}

/// The listener's rustls configuration: the server certificate and key, client certificates
/// required and verified against `client_ca_file`, HTTP/2 only.
pub fn server_config(cfg: &QueryConfig) -> Result<Arc<ServerConfig>, ServeError> {
    let chain = read_certs(&cfg.cert_file)?;
    let key = read_key(&cfg.key_file)?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&cfg.client_ca_file)? {
        roots
            .add(ca)
            .map_err(|e| ServeError::ClientCa(format!("{}: {e}", cfg.client_ca_file.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ServeError::ClientCa(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A connection and what its transport established about the peer; tonic puts the
/// [`PeerInfo`] into every request's extensions.
pub struct Connection<IO> {
    io: IO,
    peer: PeerInfo,
}

impl<IO> Connection<IO> {
    pub fn new(io: IO, peer: PeerInfo) -> Self {
        Connection { io, peer }
    }
}

impl<IO> Connected for Connection<IO> {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Connection<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Connection<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Verified TLS connections, as tonic's incoming stream.
pub type TlsIncoming = ReceiverStream<Result<Connection<TlsStream<TcpStream>>, io::Error>>;

/// Accepts TCP connections, completes each TLS handshake on its own task and yields the verified
/// ones; logs failed handshakes. Stops when the returned stream is dropped (after the next
/// connection attempt) or when the handle is aborted.
pub fn accept_loop(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    trail: AuditTrail,
) -> (TlsIncoming, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls);
    let denials = Arc::new(HandshakeDenials::new(20, 1.0));
    let handle = tokio::spawn(async move {
        loop {
            let (tcp, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "query listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            let (acceptor, tx, trail, denials) =
                (acceptor.clone(), tx.clone(), trail.clone(), denials.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let certificates =
                            stream.get_ref().1.peer_certificates().map(|c| {
                                Arc::new(c.iter().map(|d| d.clone().into_owned()).collect())
                            });
                        let peer = PeerInfo {
                            remote_addr: Some(remote),
                            certificates,
                        };
                        // The server is shutting down if this fails; the connection just closes.
                        let _ = tx.send(Ok(Connection::new(stream, peer))).await;
                    }
                    Ok(Err(e)) => handshake_failed(&trail, &denials, remote, e).await,
                    Err(_) => tracing::info!("query TLS handshake timed out"),
                }
            });
        }
    });
    (ReceiverStream::new(rx), handle)
}

async fn handshake_failed(
    trail: &AuditTrail,
    denials: &HandshakeDenials,
    remote: SocketAddr,
    e: io::Error,
) {
    if matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    ) {
        // Closed before or during the hello: a probe or a client giving up, not an attempt.
        tracing::debug!(error = %e, "query connection closed during the TLS handshake");
        return;
    }
    let Some(suppressed) = denials.admit() else {
        tracing::debug!("query TLS handshake failed (not logged: rate limit)");
        return;
    };
    let mut detail = e.to_string();
    if suppressed > 0 {
        detail.push_str(&format!(
            "; {suppressed} earlier handshake failures were not logged (rate limit)"
        ));
    }
    match trail.handshake_denied(remote, detail).await {
        Ok(r) => tracing::warn!(denied_seq = r.seq, "query TLS handshake failed; logged"),
        Err(e) => tracing::error!(error = %e, "query TLS handshake failed and could not be logged"),
    }
}

//! The client side: one upstream records system over HTTP or HTTPS (rustls, configured CA and an
//! optional client certificate), pooled keep-alive connections, connect and response timeouts.
//!
//! It only ever sends requests the request path hands it, which is after their intent entry is
//! durable; it must not import the log writer.

use super::body::{BoxError, UpstreamBody};
use super::tls::TlsError;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Where and how to reach the records system.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    /// `http://host:port` or `https://host:port`, optionally with a path prefix.
    pub url: Uri,
    /// Required for `https`: verifies the upstream and may carry a client certificate.
    pub tls: Option<Arc<ClientConfig>>,
    pub connect_timeout: Duration,
    /// Time allowed until the response head arrives, and again for a buffered body.
    pub response_timeout: Duration,
}

/// Why the upstream settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The URL is not `http://` or `https://` with a host.
    #[error("upstream.url must be http:// or https:// with a host, got {0:?}")]
    Url(String),
    /// `https` without a CA to verify the upstream against.
    #[error("upstream.url is https but no upstream.ca_file is configured")]
    NoCa,
    /// The host is not a valid TLS server name.
    #[error("upstream.url host {0:?} is not a valid TLS server name")]
    ServerName(String),
    /// Reading the TLS material failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// How an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Connecting failed (refused, unreachable, TLS handshake).
    #[error("could not connect to the upstream")]
    Unreachable(#[source] BoxError),
    /// No response head within the response timeout.
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke or the response was malformed.
    #[error("the upstream exchange failed")]
    Failed(#[source] BoxError),
    /// The exchange's own deadline (given to [`Upstream::send_before`]) passed first.
    #[error("the exchange deadline passed before the upstream answered")]
    Deadline,
}

/// A pooled client for the one upstream.
#[derive(Clone)]
pub struct Upstream {
    client: Client<Connector, UpstreamBody>,
    scheme: Scheme,
    authority: Authority,
    prefix: String,
    response_timeout: Duration,
}

impl Upstream {
    pub fn new(s: &UpstreamSettings) -> Result<Upstream, UpstreamError> {
        let bad = || UpstreamError::Url(s.url.to_string());
        let scheme = s.url.scheme().cloned().ok_or_else(bad)?;
        let authority = s.url.authority().cloned().ok_or_else(bad)?;
        let tls = if scheme == Scheme::HTTPS {
            let cfg = s.tls.clone().ok_or(UpstreamError::NoCa)?;
            let host = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| UpstreamError::ServerName(host.to_owned()))?;
            Some((TlsConnector::from(cfg), name))
        } else if scheme == Scheme::HTTP {
            None
        } else {
            return Err(bad());
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(s.connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build(Connector { http, tls });
        Ok(Upstream {
            client,
            scheme,
            authority,
            prefix: s.url.path().trim_end_matches('/').to_owned(),
            response_timeout: s.response_timeout,
        })
    }

    /// The response timeout, also used for reading a buffered response body.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// The upstream's `host[:port]`, sent as `Host`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The URI for a request target received by the proxy.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let pq: PathAndQuery = if self.prefix.is_empty() {
            path_and_query.parse()?
        } else {
            format!("{}{}", self.prefix, path_and_query).parse()?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }

    /// Sends one request and waits for the response head.
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, ForwardError> {
        let far = tokio::time::Instant::now() + self.response_timeout + Duration::from_secs(1);
        self.send_before(req, far).await
    }

    /// Sends one request and waits for the response head, at most the response timeout and
    /// never past `deadline` ([`ForwardError::Deadline`]). One timer for both.
    pub async fn send_before(
        &self,
        req: Request<UpstreamBody>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<Incoming>, ForwardError> {
        let wait = tokio::time::Instant::now() + self.response_timeout;
        match tokio::time::timeout_at(wait.min(deadline), self.client.request(req)).await {
            Err(_) if deadline < wait => Err(ForwardError::Deadline),
            Err(_) => Err(ForwardError::Timeout(self.response_timeout)),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if e.is_connect() => Err(ForwardError::Unreachable(e.into())),
            Ok(Err(e)) => Err(ForwardError::Failed(e.into())),
        }
    }
}

/// Connects TCP, then TLS when the upstream is https.
#[derive(Clone)]
struct Connector {
    http: HttpConnector,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<UpstreamIo, BoxError>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = UpstreamIo;
    type Error = BoxError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> ConnectFuture {
        let mut http = self.http.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = http.call(uri).await?;
            match tls {
                None => Ok(UpstreamIo::Plain(tcp)),
                Some((connector, name)) => {
                    let stream = connector.connect(name, tcp.into_inner()).await?;
                    Ok(UpstreamIo::Tls(Box::new(TokioIo::new(stream))))
                }
            }
        })
    }
}

/// A connection to the upstream, plain or TLS.
enum UpstreamIo {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        match self {
            UpstreamIo::Plain(s) => s.connected(),
            UpstreamIo::Tls(s) => s.inner().get_ref().0.connected(),
        }
    }
}

impl Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl Write for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }
}

//! The sidecar reverse proxy: hyper 1 (HTTP/1.1 and HTTP/2) behind optional rustls termination,
//! in front of one upstream records system, on the fail-closed request path ([`path`]).
//!
//! Invariant (README.md, "Nothing moves unlogged"): nothing is forwarded before its intent entry is
//! durable; no byte of a buffered response is released before its outcome entry is durable; when
//! the log cannot write, the client gets 503 and the upstream sees nothing. This module is a shell
//! around the log writer ([`crate::ingest::LogWriter`]) and the classifier; it must not import a
//! store backend (it takes whatever writer it is given), and it must not write personal data
//! (ids, names, bodies, justification text) to tracing.
//!
//! Construct with [`Proxy::new`] from [`ProxySettings`] (tests build these in memory) or
//! [`ProxySettings::from_config`] (reads the certificate files a [`Config`] names), then
//! [`Proxy::serve`] on a bound listener until a shutdown future completes.

mod body;
pub mod bounds;
pub mod flood;
pub mod headers;
pub mod identity;
mod idle;
pub mod json;
mod path;
pub mod problem;
pub mod tls;
pub mod upstream;

pub use body::ProxyBody;
pub use path::ConnInfo;
pub use problem::Problem;

use crate::admin::Metrics;
use crate::classify::Classifier;
use crate::config::{
    ClientAuth as ConfigClientAuth, Config, IdentityConfig, JustificationConfig, LimitsConfig,
    RoutesConfig,
};
use crate::ingest::LogWriter;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use identity::CertIdentity;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use upstream::{Upstream, UpstreamError, UpstreamSettings};

/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the proxy needs, as values (no files).
#[derive(Clone)]
pub struct ProxySettings {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub upstream: UpstreamSettings,
    pub identity: IdentityConfig,
    pub justification: JustificationConfig,
    pub limits: LimitsConfig,
    pub classifier: Arc<Classifier>,
    /// Counters shared with the admin listener (rejections by reason, upstream statuses and
    /// latency). Labels only, never request data.
    pub metrics: Arc<Metrics>,
    /// What the request path refuses before classifying (from `[routes]`).
    pub policy: RequestPolicy,
    /// `[replicate] mode = "sync"`: a buffered response is released only once the stream has
    /// acknowledged its outcome entry (`None`: responses never wait for replication).
    pub replication: Option<Arc<crate::replicate::ReplicationGate>>,
}

/// Request-level refusals configured in `[routes]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPolicy {
    /// Refuse duplicate and case-variant JSON member names.
    pub strict_json_keys: bool,
    /// Method-override / URL-rewrite headers, lower-case with `_` as `-`.
    pub refused_headers: Vec<String>,
    /// Query keys and form fields such as `_method`, lower-case.
    pub refused_query_keys: Vec<String>,
    /// Headers that mark emergency access (`break_glass` alert rules): a request carrying one
    /// is logged with `request.break_glass` set.
    pub break_glass_headers: Vec<http::HeaderName>,
}

impl RequestPolicy {
    /// The policy `[routes]` describes.
    pub fn from_routes(routes: &RoutesConfig) -> Self {
        RequestPolicy {
            strict_json_keys: routes.strict_json_keys,
            refused_headers: routes.refused_headers.clone(),
            refused_query_keys: routes.refused_query_keys.clone(),
            break_glass_headers: Vec::new(),
        }
    }
}

/// Why the proxy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A certificate, key or CA file could not be read.
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The upstream settings are unusable.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|source| SetupError::File {
        what,
        path: path.display().to_string(),
        source,
    })
}

impl ProxySettings {
    /// Builds the settings from a checked config, reading the TLS files it names.
    pub fn from_config(cfg: &Config) -> Result<ProxySettings, SetupError> {
        let tls = match &cfg.listen.tls {
            None => None,
            Some(t) => {
                let ca = match &t.client_ca_file {
                    Some(p) => Some(read("listen.tls.client_ca_file", p)?),
                    None => None,
                };
                let mode = match t.client_auth {
                    ConfigClientAuth::None => tls::ClientAuth::None,
                    ConfigClientAuth::Optional => tls::ClientAuth::Optional,
                    ConfigClientAuth::Required => tls::ClientAuth::Required,
                };
                Some(tls::server_config_with_crls(
                    &read("listen.tls.cert_file", &t.cert_file)?,
                    &read("listen.tls.key_file", &t.key_file)?,
                    ca.as_deref(),
                    mode,
                    &t.crl_files,
                )?)
            }
        };
        let up = &cfg.upstream;
        let upstream_tls = match &up.ca_file {
            None if up.is_https() => return Err(UpstreamError::NoCa.into()),
            None => None,
            Some(ca) => {
                let ca = read("upstream.ca_file", ca)?;
                let id = match &up.client_identity {
                    None => None,
                    Some(files) => Some((
                        read("upstream.client_identity.cert_file", &files.cert_file)?,
                        read("upstream.client_identity.key_file", &files.key_file)?,
                    )),
                };
                Some(tls::client_config(
                    &ca,
                    id.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
                )?)
            }
        };
        Ok(ProxySettings {
            tls,
            upstream: UpstreamSettings {
                url: up.url.clone(),
                tls: upstream_tls,
                connect_timeout: up.connect_timeout,
                response_timeout: up.response_timeout,
            },
            identity: cfg.identity.clone(),
            justification: cfg.justification.clone(),
            limits: cfg.limits.clone(),
            classifier: Arc::new(Classifier::new(&cfg.routes, &cfg.justification)),
            metrics: Arc::new(Metrics::new()),
            policy: RequestPolicy {
                break_glass_headers: cfg
                    .alerts
                    .as_ref()
                    .map(|a| a.break_glass_headers())
                    .unwrap_or_default(),
                ..RequestPolicy::from_routes(&cfg.routes)
            },
            replication: None,
        })
    }
}

/// State shared by every connection.
struct Shared {
    writer: LogWriter,
    classifier: Arc<Classifier>,
    identity: IdentityConfig,
    justification: JustificationConfig,
    limits: LimitsConfig,
    upstream: Upstream,
    metrics: Arc<Metrics>,
    policy: RequestPolicy,
    gate: Arc<flood::DenialGate>,
    replication: Option<Arc<crate::replicate::ReplicationGate>>,
}

/// The proxy, ready to serve.
pub struct Proxy {
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
}

impl Proxy {
    /// Builds the proxy over a running log writer.
    pub fn new(settings: ProxySettings, writer: LogWriter) -> Result<Proxy, SetupError> {
        let upstream = Upstream::new(&settings.upstream)?;
        Ok(Proxy {
            shared: Arc::new(Shared {
                writer,
                classifier: settings.classifier,
                identity: settings.identity,
                justification: settings.justification,
                upstream,
                metrics: settings.metrics,
                policy: settings.policy,
                gate: Arc::new(flood::DenialGate::new(
                    settings.limits.denials_per_peer,
                    settings.limits.denial_window,
                )),
                limits: settings.limits,
                replication: settings.replication,
            }),
            tls: settings.tls.map(TlsAcceptor::from),
        })
    }

    /// Serves on `listener` until `shutdown` completes; then stops accepting and lets open
    /// connections finish their requests (up to `limits.shutdown_grace`) before returning.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let limits = &self.shared.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            // hyper refuses (431) heads larger than its read buffer; it must be at least 8 KiB.
            .max_buf_size(limits.max_header_bytes.saturating_add(4096).max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(limits.max_concurrent_streams)
            .keep_alive_interval(limits.http2_keepalive_interval)
            .keep_alive_timeout(limits.http2_keepalive_timeout);
        let builder = Arc::new(builder);
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let aggregator = tokio::spawn(flush_denials(self.shared.clone()));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let busy = idle::Busy::default();
                let stream = idle::IdleIo::new(stream, shared.limits.idle_timeout, busy.clone());
                match tls {
                    None => {
                        let info = ConnInfo {
                            peer,
                            cert: None,
                            tls: false,
                        };
                        serve_connection(&builder, watcher, shared, info, busy, stream).await;
                    }
                    Some(acceptor) => {
                        let tls_stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                    shared
                                        .gate
                                        .handshake_failed(peer.ip(), &handshake_reason(&e));
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!("TLS handshake timed out");
                                    shared
                                        .gate
                                        .handshake_failed(peer.ip(), "handshake timed out");
                                    return;
                                }
                            };
                        let cert = tls_stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .and_then(|c| CertIdentity::from_der(c.as_ref()))
                            .map(Arc::new);
                        let info = ConnInfo {
                            peer,
                            cert,
                            tls: true,
                        };
                        serve_connection(&builder, watcher, shared, info, busy, tls_stream).await;
                    }
                }
            });
        }
        drop(listener);
        tracing::info!(connections = graceful.count(), "proxy draining");
        if tokio::time::timeout(self.shared.limits.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the drain timeout; closing them");
        }
        aggregator.abort();
        append_aggregated(&self.shared).await;
    }
}

/// Why a handshake failed, as a short label (rustls' error text names no client data beyond
/// what the client sent about itself, which is not kept).
fn handshake_reason(e: &std::io::Error) -> String {
    let text = e
        .get_ref()
        .map_or_else(|| e.kind().to_string(), ToString::to_string);
    text.chars().filter(|c| !c.is_control()).take(96).collect()
}

/// Once per window, appends the aggregated denial entries (refusals past the per-peer allowance,
/// failed TLS handshakes).
async fn flush_denials(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.gate.window());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        append_aggregated(&shared).await;
    }
}

async fn append_aggregated(shared: &Shared) {
    for entry in shared.gate.drain() {
        let reason = entry
            .denial
            .as_ref()
            .map_or("", |d| d.reason.as_str())
            .to_owned();
        match shared.writer.append(entry).await {
            Ok(r) => tracing::info!(seq = r.seq, reason = %reason, "aggregated denial logged"),
            Err(e) => {
                tracing::error!(error = %e, reason = %reason, "aggregated denial could not be logged")
            }
        }
    }
}

async fn serve_connection<IO>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    shared: Arc<Shared>,
    info: ConnInfo,
    busy: idle::Busy,
    io: IO,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        let info = info.clone();
        let in_flight = busy.start();
        async move {
            let _in_flight = in_flight;
            // Run the request path as its own task: a client that goes away must not cancel it
            // between its intent and its outcome.
            let task = tokio::spawn(path::handle(shared, info, req));
            Ok::<_, std::convert::Infallible>(match task.await {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::error!(error = %e, "request task failed");
                    problem::problem_response(
                        &Problem::UpstreamFailed,
                        &headers::fresh_request_id(),
                        false,
                    )
                }
            })
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

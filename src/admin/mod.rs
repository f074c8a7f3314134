//! The admin listener: health, readiness, Prometheus metrics and the latest signed checkpoint, over
//! plain HTTP/1.1 on its own port, for orchestrators, monitoring and witnesses.
//!
//! | route              | answer                                                                 |
//! |--------------------|------------------------------------------------------------------------|
//! | `GET /healthz`     | 200 while the process serves HTTP at all (liveness)                    |
//! | `GET /readyz`      | 200 when the log is writable and every registered [`Check`] passes; else 503 with one `name: reason` line per failing check. An advisory check ([`Check::advisory`], e.g. the witness quorum) never makes it 503: when one fails the body is `degraded:` and its lines |
//! | `GET /metrics`     | Prometheus text format 0.0.4 ([`metrics::render`])                     |
//! | `GET /checkpoint`  | the latest signed checkpoint note, exactly as stored; 404 before the first |
//! | `POST /entries`    | a purpose-bound local read ([`entries`]): loopback peers only (403 otherwise), logged as `audit-query` entries before the JSON lines are returned |
//!
//! The log check is built in: the writer's last commit must not have failed. Because a sidecar that
//! is not ready gets no traffic, and so no commit that could clear the error, `/readyz` itself
//! probes a failing log by appending one `admin` entry (`log_write_probe`), at most once per
//! [`AdminState::with_write_probe`] interval: when the disk is back, the probe commits and the pod
//! becomes ready again. Everything else is a [`Check`] the caller registers, so this module does
//! not know the proxy: `s62 serve` registers one, `upstream_reachable`, a TCP connect to the
//! records system ([`crate::app::admin_state`]). Responses carry no personal data: only counters,
//! check names and storage error text — except `POST /entries`, which answers only the sidecar's
//! own machine, and only after the read is logged with its purpose.
//!
//! Must not import RocksDB (it reads the log through the [`Store`] trait), the proxy or the query
//! service; they register their counters in [`Metrics`].

pub mod entries;
pub mod metrics;
pub mod publish;

pub use metrics::Metrics;
pub use publish::{LATEST as LATEST_CHECKPOINT, publish_checkpoint};

use crate::ingest::LogWriter;
use crate::log::entry::admin_entry;
use crate::log::store::{LogStore, Store};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// What a readiness check resolves to: `Err` carries a short reason without personal data.
pub type CheckResult = Result<(), String>;

/// A boxed readiness check future.
pub type CheckFuture = Pin<Box<dyn Future<Output = CheckResult> + Send>>;

/// One named readiness condition, e.g. `upstream_reachable`.
#[derive(Clone)]
pub struct Check {
    name: &'static str,
    run: Arc<dyn Fn() -> CheckFuture + Send + Sync>,
    advisory: bool,
}

impl Check {
    /// A check answered synchronously, e.g. from a flag another component keeps up to date.
    pub fn new(name: &'static str, f: impl Fn() -> CheckResult + Send + Sync + 'static) -> Self {
        let f = Arc::new(f);
        Check {
            name,
            run: Arc::new(move || {
                let f = f.clone();
                Box::pin(async move { f() })
            }),
            advisory: false,
        }
    }

    /// A check that needs I/O; it is cut off after the state's check timeout.
    pub fn new_async<F, Fut>(name: &'static str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        Check {
            name,
            run: Arc::new(move || Box::pin(f())),
            advisory: false,
        }
    }

    /// Passes when a TCP connection to `authority` (`host:port`) opens within `timeout`, e.g. the
    /// records system's address taken from `[upstream] url`.
    pub fn tcp_connect(name: &'static str, authority: String, timeout: Duration) -> Self {
        let authority: Arc<str> = authority.into();
        Check::new_async(name, move || {
            let authority = authority.clone();
            async move {
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&*authority))
                    .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("cannot connect to {authority}: {e}")),
                    Err(_) => Err(format!("no connection to {authority} within {timeout:?}")),
                }
            }
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Makes this check advisory: when it fails, `/readyz` still answers 200 but says
    /// `degraded` with the reason, so monitoring sees it while traffic keeps flowing (used for
    /// the witness quorum: a witness outage must not stop the records system).
    pub fn advisory(mut self) -> Self {
        self.advisory = true;
        self
    }
}

/// The outcome of a readiness evaluation: every check, in registration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub checks: Vec<(&'static str, CheckResult)>,
    /// Advisory checks: a failure here makes the answer `degraded`, never not ready.
    pub advisories: Vec<(&'static str, CheckResult)>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, r)| r.is_ok())
    }

    /// Ready, but an advisory check fails.
    pub fn is_degraded(&self) -> bool {
        self.is_ready() && self.advisories.iter().any(|(_, r)| r.is_err())
    }

    /// The plain-text body of `/readyz`.
    pub fn to_text(&self) -> String {
        let mut out = if !self.is_ready() {
            String::from("not ready:\n")
        } else if self.is_degraded() {
            String::from("degraded:\n")
        } else {
            return "ready\n".into();
        };
        for (name, r) in self.checks.iter().chain(&self.advisories) {
            if let Err(why) = r {
                // One line per check, whatever the reason's text holds.
                out.push_str(&format!("{name}: {}\n", why.replace('\n', " ")));
            }
        }
        out
    }
}

/// Name of the built-in readiness check on the log writer.
pub const LOG_CHECK: &str = "log_writable";

/// What the admin listener reads; build one, register checks, share it in an `Arc`.
pub struct AdminState {
    writer: LogWriter,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    checks: Vec<Check>,
    check_timeout: Duration,
    write_probe: Option<Duration>,
    last_probe: Mutex<Option<Instant>>,
}

impl AdminState {
    /// State over the running writer, the store it writes (read here only for `/checkpoint`) and
    /// the shared metrics registry. Defaults: checks time out after 2 s; a failing log is probed
    /// at most every 5 s.
    pub fn new(writer: LogWriter, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        AdminState {
            writer,
            store,
            metrics,
            checks: Vec::new(),
            check_timeout: Duration::from_secs(2),
            write_probe: Some(Duration::from_secs(5)),
            last_probe: Mutex::new(None),
        }
    }

    /// Adds a readiness condition (evaluated concurrently with the others on each `/readyz`).
    pub fn with_check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// How long any one check may take before it counts as failed.
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// How often `/readyz` may append a probe entry while the log is failing; `None` never
    /// probes (then only the next real append can clear the failure).
    pub fn with_write_probe(mut self, interval: Option<Duration>) -> Self {
        self.write_probe = interval;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Evaluates every condition now.
    pub async fn readiness(&self) -> Readiness {
        let mut checks = vec![(LOG_CHECK, self.log_writable().await)];
        let mut set = JoinSet::new();
        for (i, c) in self.checks.iter().enumerate() {
            let fut = (c.run)();
            let timeout = self.check_timeout;
            set.spawn(async move {
                let r = match tokio::time::timeout(timeout, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {timeout:?}")),
                };
                (i, r)
            });
        }
        let mut results: Vec<Option<CheckResult>> = vec![None; self.checks.len()];
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, r)) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(r);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "a readiness check panicked"),
            }
        }
        let mut advisories = Vec::new();
        for (c, r) in self.checks.iter().zip(results) {
            let r = r.unwrap_or_else(|| Err("the check panicked".into()));
            if c.advisory {
                advisories.push((c.name, r));
            } else {
                checks.push((c.name, r));
            }
        }
        Readiness { checks, advisories }
    }

    /// The writer's last commit succeeded, or a probe commit made now succeeds.
    async fn log_writable(&self) -> CheckResult {
        let Some(error) = self.writer.stats().last_error() else {
            return Ok(());
        };
        if !self.probe_due() {
            return Err(error);
        }
        let probe = admin_entry("log_write_probe", "readiness probe after a failed commit");
        match tokio::time::timeout(self.check_timeout, self.writer.append(probe)).await {
            Ok(Ok(receipt)) => {
                tracing::info!(
                    seq = receipt.seq,
                    "log writable again after a failed commit"
                );
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(error),
        }
    }

    /// True (and the probe clock restarted) when a write probe may run now.
    fn probe_due(&self) -> bool {
        let Some(interval) = self.write_probe else {
            return false;
        };
        let mut last = self.last_probe.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|t| t.elapsed() >= interval);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// The `/metrics` exposition now.
    pub fn render_metrics(&self) -> String {
        let stats = self.writer.stats();
        metrics::render(
            &self.metrics,
            stats,
            metrics::WriterGauges {
                queue_depth: self.writer.queue_depth(),
                log_writable: stats.last_error().is_none(),
            },
        )
    }

    /// The latest signed checkpoint note as stored, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<String>, String> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.latest_checkpoint()).await {
            Ok(Ok(found)) => Ok(found.map(|(_, note)| note)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("checkpoint read task failed: {e}")),
        }
    }
}

/// Most admin connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long open connections get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves the admin routes on `listener` until `shutdown` resolves, then stops accepting, lets
/// open connections finish their current request (up to 5 s) and returns.
pub async fn serve_admin(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the listener stays up.
                    tracing::warn!(error = %e, "admin listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move {
                    // `/entries` needs the peer (loopback only) and the body; the rest are GETs.
                    Ok::<_, Infallible>(if req.uri().path() == "/entries" {
                        entries::handle(&state, peer, req).await
                    } else {
                        route(&state, req).await
                    })
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "admin connection ended with an error");
                    }
                }
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        conns.abort_all();
    }
}

/// Answers one admin request.
pub async fn route<B>(state: &AdminState, req: Request<B>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(path, "/healthz" | "/readyz" | "/metrics" | "/checkpoint");
    if !known {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n",
        );
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    const PLAIN: &str = "text/plain; charset=utf-8";
    match path {
        "/healthz" => text(StatusCode::OK, PLAIN, "ok\n"),
        "/readyz" => {
            let r = state.readiness().await;
            let status = if r.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, PLAIN, r.to_text())
        }
        "/metrics" => text(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            state.render_metrics(),
        ),
        _ => match state.latest_checkpoint().await {
            Ok(Some(note)) => text(StatusCode::OK, PLAIN, note),
            Ok(None) => text(StatusCode::NOT_FOUND, PLAIN, "no checkpoint yet\n"),
            Err(e) => {
                tracing::error!(error = %e, "reading the latest checkpoint failed");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    PLAIN,
                    "the checkpoint could not be read\n",
                )
            }
        },
    }
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

//! `s62 witness`: a c2sp.org/tlog-witness server another party (a DPO, an oversight body, the
//! Commissioner) runs, so that the log's operator cannot roll back, cut or fork the log without
//! someone outside noticing.
//!
//! One route, `POST <prefix>/add-checkpoint`, answered by [`Witness::add_checkpoint`]: the
//! stateless checks ([`verdict::admit`]: parse, origin, log signature) run first; then, under one
//! lock, the request is checked against the latest cosigned checkpoint ([`verdict::check`]), the
//! new checkpoint is cosigned and persisted ([`WitnessState::persist`]), and only then is the
//! cosignature returned. So two racing submissions cannot roll the state back (the spec's race
//! A/B), and nothing is cosigned that is not durable first. Plain HTTP/1.1 (the protocol
//! authenticates by signatures); no personal data passes through a witness (a checkpoint is an
//! origin, a size and a hash), so its logs carry origins, sizes and status codes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::{LoadError, WitnessServerConfig};
use crate::log::cosignature::CosignerKey;
use crate::log::tlog_witness::ADD_CHECKPOINT_PATH;

use super::keys::{WitnessKeyError, read_cosigner};
use super::state::{StateError, WitnessState, checkpoint_file};
use super::verdict::{self, Latest, Refusal, TrustedLog};

/// Largest request body accepted (a checkpoint with 100 signatures and 63 proof lines is ~15 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a client may take to send its request head, and then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once.
const MAX_CONNECTIONS: usize = 256;

/// Why the witness could not start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The config file is unreadable or invalid (every problem listed).
    #[error(transparent)]
    Config(#[from] LoadError),
    /// The witness key could not be read.
    #[error("key_file: {0}")]
    Key(#[from] WitnessKeyError),
    /// A `[[log]] key_file` could not be read.
    #[error("log[{index}].key_file: {source}")]
    LogKeys {
        index: usize,
        #[source]
        source: crate::keys::KeyFileError,
    },
    /// The state folder could not be opened, or holds a corrupt state file.
    #[error("state_dir: {0}")]
    State(#[from] StateError),
    /// The listener could not be bound.
    #[error("listen {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The runtime could not start.
    #[error("could not start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The HTTP answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

const PLAIN: &str = "text/plain; charset=utf-8";

/// A witness: its key, the logs it follows and its durable state.
pub struct Witness {
    key: CosignerKey,
    logs: Vec<TrustedLog>,
    state: Mutex<WitnessState>,
}

impl Witness {
    /// A witness over an opened state folder.
    pub fn new(key: CosignerKey, logs: Vec<TrustedLog>, state: WitnessState) -> Self {
        Witness {
            key,
            logs,
            state: Mutex::new(state),
        }
    }

    /// Opens the state folder at `dir` for `logs`.
    pub fn open(key: CosignerKey, logs: Vec<TrustedLog>, dir: &Path) -> Result<Self, StateError> {
        let state = WitnessState::open(dir, logs.iter().map(|l| l.origin.as_str()))?;
        Ok(Self::new(key, logs, state))
    }

    /// The witness's public key.
    pub fn verifier(&self) -> crate::log::cosignature::CosignerVerifier {
        self.key.verifier()
    }

    /// Answers one `add-checkpoint` body at time `now` (POSIX seconds). Blocking (it fsyncs):
    /// call it off the async runtime.
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Answer {
        let (sub, log) = match verdict::admit(body, &self.logs) {
            Ok(admitted) => admitted,
            Err(refusal) => return refused(&refusal, None),
        };
        let origin = log.origin.as_str();
        // A poisoned lock means a panic elsewhere; the state on disk is still whole (atomic
        // renames), and the in-memory copy only changes after a successful persist.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let latest = state.latest(origin);
        if let Err(refusal) = verdict::check(&sub, latest.as_ref()) {
            if refusal.is_evidence() {
                match state.keep_evidence(origin, now, refusal.status(), body) {
                    Ok(Some(path)) => {
                        tracing::warn!(origin, evidence = %path.display(), "kept a refused request as evidence")
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(origin, error = %e, "could not keep evidence"),
                }
            }
            return refused(&refusal, Some((origin, sub.checkpoint.size)));
        }
        let line = match self.key.cosign(&sub.text, now) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(origin, error = %e, "cosigning failed");
                return answer(500, PLAIN, "cosigning failed\n");
            }
        };
        let mut kept = format!("{}\n", sub.text);
        for sig in &sub.log_signatures {
            kept.push_str(&crate::log::cosignature::signature_line(sig));
        }
        kept.push_str(&line);
        let latest = Latest {
            size: sub.checkpoint.size,
            root: sub.checkpoint.root,
        };
        if let Err(e) = state.persist(origin, latest, &kept) {
            // Nothing is cosigned that is not durable: no cosignature leaves.
            tracing::error!(origin, size = latest.size, error = %e, "could not persist the witness state");
            return answer(500, PLAIN, "the witness could not record the checkpoint\n");
        }
        drop(state);
        tracing::info!(origin, old = sub.old_size, size = latest.size, "cosigned");
        answer(200, PLAIN, line)
    }
}

fn answer(status: u16, content_type: &'static str, body: impl Into<String>) -> Answer {
    Answer {
        status,
        content_type,
        body: body.into(),
    }
}

fn refused(refusal: &Refusal, at: Option<(&str, u64)>) -> Answer {
    let (content_type, body) = refusal.body();
    // A 409 resync is routine; a refused signature or a proof of misbehaviour is not.
    let alarming = refusal.is_evidence() || refusal.status() == 403;
    match at {
        Some((origin, size)) if alarming => {
            tracing::warn!(origin, size, status = refusal.status(), reason = %refusal, "refused")
        }
        Some((origin, size)) => {
            tracing::info!(origin, size, status = refusal.status(), reason = %refusal, "refused")
        }
        None if alarming => tracing::warn!(status = refusal.status(), reason = %refusal, "refused"),
        None => tracing::info!(status = refusal.status(), reason = %refusal, "refused"),
    }
    answer(refusal.status(), content_type, body)
}

/// POSIX seconds now (0 before 1970).
fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Answers one HTTP request: `POST <prefix>/add-checkpoint`, else 404 / 405.
pub async fn route(witness: Arc<Witness>, prefix: &str, req: Request<Incoming>) -> Answer {
    let wanted = format!("{prefix}{ADD_CHECKPOINT_PATH}");
    if req.uri().path() != wanted {
        return answer(404, PLAIN, "not found\n");
    }
    if req.method() != Method::POST {
        return answer(405, PLAIN, "only POST\n");
    }
    let body = match tokio::time::timeout(
        READ_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return answer(
                400,
                PLAIN,
                if too_large {
                    "the body is larger than 64 KiB\n"
                } else {
                    "the body could not be read\n"
                },
            );
        }
        Err(_) => return answer(400, PLAIN, "the body did not arrive in time\n"),
    };
    match tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, now_unix())).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "the witness task failed");
            answer(500, PLAIN, "internal error\n")
        }
    }
}

fn to_response(a: Answer) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(a.body)));
    *resp.status_mut() =
        StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(a.content_type),
    );
    resp
}

/// Serves the witness on `listener` until `shutdown`, then lets open requests finish (5 s).
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    prefix: String,
    shutdown: impl Future<Output = ()>,
) {
    let prefix: Arc<str> = prefix.into();
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "witness accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (witness, prefix, mut stop) = (witness.clone(), prefix.clone(), stop_rx.clone());
        conns.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let (witness, prefix) = (witness.clone(), prefix.clone());
                async move { Ok::<_, Infallible>(to_response(route(witness, &prefix, req).await)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r {
                    tracing::debug!(error = %e, "witness connection ended with an error");
                },
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        conns.abort_all();
    }
}

/// Loads the key, the followed logs' keys and the state named by a checked config.
pub fn build(cfg: &WitnessServerConfig) -> Result<Witness, WitnessError> {
    let key = read_cosigner(&cfg.key_file)?;
    let mut logs = Vec::new();
    for (index, l) in cfg.logs.iter().enumerate() {
        let mut keys = l.keys.clone();
        if let Some(path) = &l.key_file {
            keys.extend(
                crate::keys::read_log_keys(path)
                    .map_err(|source| WitnessError::LogKeys { index, source })?
                    .keys()
                    .iter()
                    .cloned(),
            );
        }
        logs.push(TrustedLog {
            origin: l.origin.clone(),
            keys,
        });
    }
    Ok(Witness::open(key, logs, &cfg.state_dir)?)
}

/// `s62 witness --config FILE`: serves until ctrl-c or SIGTERM.
pub fn run(config_path: &Path) -> Result<(), WitnessError> {
    let cfg = WitnessServerConfig::load(config_path)?;
    let witness = Arc::new(build(&cfg)?);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(WitnessError::Runtime)?
        .block_on(async {
            let listener =
                TcpListener::bind(cfg.listen)
                    .await
                    .map_err(|source| WitnessError::Bind {
                        address: cfg.listen,
                        source,
                    })?;
            let address = listener.local_addr().map_or(cfg.listen, |a| a);
            tracing::info!(
                %address,
                key = %witness.verifier().to_vkey(),
                logs = cfg.logs.len(),
                "s62 witness serving POST {}{ADD_CHECKPOINT_PATH}",
                cfg.prefix
            );
            for l in &cfg.logs {
                tracing::info!(
                    origin = %l.origin,
                    file = %checkpoint_file(&cfg.state_dir, &l.origin).display(),
                    "following"
                );
            }
            serve(
                listener,
                witness,
                cfg.prefix.clone(),
                crate::app::stop_signal(),
            )
            .await;
            tracing::info!("s62 witness stopped");
            Ok(())
        })
}

#[cfg(test)]
mod tests;

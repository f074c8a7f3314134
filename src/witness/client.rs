//! The sidecar's witness client: follows the writer's checkpoints and, at most every
//! `witness.interval_ms`, submits the newest one to each configured witness
//! (c2sp.org/tlog-witness `add-checkpoint`) with a consistency proof from that witness's last
//! cosigned size, then stores the valid cosignatures with the checkpoint
//! ([`LogStore::replace_checkpoint_note`]), so `s62 checkpoint`, `/checkpoint` and export bundles
//! carry them.
//!
//! Per answer: 200 → verify the lines against the witness's configured key (lines from other keys
//! are ignored; a bad line from its key, or none, is a bad response) and store them; 409 with a
//! smaller size → resync to that size and retry once; 409 with the size we sent (same size,
//! another root), 409 with a larger size (the witness saw more of this log than the log now
//! holds), 403, 404 and 422 → an alert: an `admin` entry `witness_refused` (once per witness and
//! kind until it cosigns again), a metric and an error line; anything else (no answer, 5xx) → a
//! metric and a warning, retried next round.
//!
//! Invariants: the proxy never waits on a witness (this runs beside it; only exports may wait, a
//! bounded time, via [`WitnessHandle::witnessed_at_least`]); stored cosignatures are only ever
//! appended to a checkpoint, never change its text or the log's signature; admin entries and app
//! logs carry witness names, status codes and sizes only. Must not import RocksDB or the proxy.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Notify, watch};

use crate::admin::{Check, Metrics};
use crate::config::{WitnessConfig, WitnessPeer};
use crate::ingest::{LatestCheckpoint, LogWriter};
use crate::log::cosignature::{add_signature_lines, verify_cosignatures};
use crate::log::entry::admin_entry;
use crate::log::merkle::consistency_proof;
use crate::log::note::{NoteSignature, parse_note};
use crate::log::store::{LogStore, Store, StoreNodes};
use crate::log::tlog_witness::{
    ADD_CHECKPOINT_PATH, AddCheckpoint, SIZE_CONTENT_TYPE, parse_size_body,
};

/// Largest answer body read from a witness.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most checkpoints remembered for lag accounting (the oldest is always kept).
const MAX_SEEN: usize = 1024;

/// What one submission to one witness came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The witness cosigned `size`; `lines` are its valid cosignature lines.
    Cosigned {
        size: u64,
        lines: Vec<NoteSignature>,
    },
    /// 403, 404 or 422: the witness refused the checkpoint.
    Refused { status: u16, reason: String },
    /// 409 naming the size we sent as old, which was the checkpoint size: the witness cosigned
    /// another root for this size. The log forked.
    Fork { size: u64 },
    /// The witness cosigned a larger tree than the log now holds: rolled back or cut.
    Ahead { witness_size: u64, log_size: u64 },
    /// No answer (connect error, timeout).
    Unreachable(String),
    /// An answer outside the protocol (5xx, malformed body, no valid cosignature).
    BadResponse(String),
}

impl Outcome {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Cosigned { .. } => "cosigned",
            Outcome::Refused { .. } => "refused",
            Outcome::Fork { .. } => "fork",
            Outcome::Ahead { .. } => "ahead",
            Outcome::Unreachable(_) => "unreachable",
            Outcome::BadResponse(_) => "bad_response",
        }
    }

    /// The status code an alert names (409 for fork and ahead), if this outcome is an alert.
    pub fn alert_status(&self) -> Option<u16> {
        match self {
            Outcome::Refused { status, .. } => Some(*status),
            Outcome::Fork { .. } | Outcome::Ahead { .. } => Some(409),
            _ => None,
        }
    }
}

/// Why the sidecar refuses to start after asking its witnesses.
#[derive(Debug, thiserror::Error)]
pub enum StartRefusal {
    /// A witness cosigned a larger tree than the log holds.
    #[error(
        "witness {witness} has cosigned tree size {witness_size} but the log holds {log_size}: \
         entries were removed or the folder was rolled back; keep the folder as evidence and run \
         s62 verify with the witness's checkpoint file"
    )]
    Behind {
        witness: String,
        witness_size: u64,
        log_size: u64,
    },
    /// A witness's cosigned checkpoint is not consistent with the log.
    #[error(
        "witness {witness} refused the log's latest checkpoint (size {log_size}) as inconsistent \
         with what it cosigned ({status}: {reason}): history was rewritten; keep the folder as \
         evidence and run s62 verify"
    )]
    Inconsistent {
        witness: String,
        log_size: u64,
        status: u16,
        reason: String,
    },
}

struct Peer {
    cfg: WitnessPeer,
    /// The size the witness last cosigned, as far as this client knows (0 at start).
    old: u64,
    /// The size this client holds the witness's cosignature for (0: none yet).
    cosigned: u64,
    /// The alert already raised for this witness (status), until it cosigns again.
    alerted: Option<u16>,
}

/// What readiness and exports read.
struct Shared {
    nudge: Notify,
    witnessed: watch::Sender<u64>,
    /// The size of the checkpoint whose stored note last gained cosignatures (the replication
    /// publisher follows it to publish cosigned notes); sent again for the same size.
    stored: watch::Sender<u64>,
    quorum: usize,
    max_lag: Duration,
    /// When the oldest checkpoint without a quorum was first seen, with the log size then.
    pending: Mutex<Option<(Instant, u64)>>,
}

/// A cheap handle on the running client: readiness and export waits.
#[derive(Clone)]
pub struct WitnessHandle {
    shared: Arc<Shared>,
}

impl WitnessHandle {
    /// The advisory readiness check `witness_quorum`: fails once the log has gone `max_lag`
    /// without a quorum of cosignatures on a recent checkpoint.
    pub fn readiness_check(&self) -> Check {
        let shared = self.shared.clone();
        Check::new("witness_quorum", move || {
            let pending = *shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending {
                Some((since, log_size)) if since.elapsed() > shared.max_lag => Err(format!(
                    "no checkpoint has a quorum of {} witness cosignatures for {} s \
                     (witnessed size {}, log size {log_size})",
                    shared.quorum,
                    since.elapsed().as_secs(),
                    *shared.witnessed.borrow()
                )),
                _ => Ok(()),
            }
        })
        .advisory()
    }

    /// The largest tree size whose stored checkpoint carries a quorum of cosignatures.
    pub fn witnessed_size(&self) -> u64 {
        *self.shared.witnessed.borrow()
    }

    /// Follows the checkpoints whose stored notes gain cosignatures: the value is the size of the
    /// last one (sizes only grow: every round submits the newest checkpoint), and it changes
    /// again when another witness cosigns the same size.
    pub fn cosignatures_stored(&self) -> watch::Receiver<u64> {
        self.shared.stored.subscribe()
    }

    /// Asks for a submission round now and waits up to `wait` for a stored checkpoint of size
    /// `>= size` with a quorum of cosignatures; returns its size, or `None` on timeout.
    pub async fn witnessed_at_least(&self, size: u64, wait: Duration) -> Option<u64> {
        let mut rx = self.shared.witnessed.subscribe();
        self.shared.nudge.notify_one();
        match tokio::time::timeout(wait, rx.wait_for(|w| *w >= size)).await {
            Ok(Ok(w)) => Some(*w),
            _ => None,
        }
    }
}

/// The witness client over one log.
pub struct WitnessClient {
    interval: Duration,
    timeout: Duration,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    http: Client<HttpConnector, Full<Bytes>>,
    peers: Vec<Peer>,
    shared: Arc<Shared>,
    /// Checkpoints seen and when (oldest first), for lag accounting.
    seen: VecDeque<(u64, Instant)>,
}

impl WitnessClient {
    /// A client for `cfg` over `store` (the log the writer writes), counting into `metrics`.
    pub fn new(cfg: &WitnessConfig, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.timeout));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        for p in &cfg.peers {
            metrics.witnesses.register(&p.name);
        }
        let (witnessed, _) = watch::channel(0);
        WitnessClient {
            interval: cfg.interval,
            timeout: cfg.timeout,
            store,
            metrics,
            http,
            peers: cfg
                .peers
                .iter()
                .map(|p| Peer {
                    cfg: p.clone(),
                    old: 0,
                    cosigned: 0,
                    alerted: None,
                })
                .collect(),
            shared: Arc::new(Shared {
                nudge: Notify::new(),
                witnessed,
                stored: watch::channel(0).0,
                quorum: cfg.quorum,
                max_lag: cfg.max_lag,
                pending: Mutex::new(None),
            }),
            seen: VecDeque::new(),
        }
    }

    pub fn handle(&self) -> WitnessHandle {
        WitnessHandle {
            shared: self.shared.clone(),
        }
    }

    /// Before the writer starts: submits the log's latest stored checkpoint to every witness.
    /// Refuses when a witness has cosigned a larger tree, or finds the log inconsistent with what
    /// it cosigned (422, or another root for the same size). An unreachable witness, or one that
    /// does not follow this log (404) or trust its key (403), only gives a warning: the check
    /// cannot be made, and starting is not refused for it.
    pub async fn check_at_start(&mut self) -> Result<(), StartRefusal> {
        let store = self.store.clone();
        let latest = tokio::task::spawn_blocking(move || store.latest_checkpoint())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let Some((size, note)) = latest else {
            return Ok(());
        };
        self.observe(size);
        let outcomes = self.round(size, Arc::from(note.as_str())).await;
        for (i, outcome) in outcomes {
            let witness = self.peers[i].cfg.name.clone();
            match outcome {
                Outcome::Ahead {
                    witness_size,
                    log_size,
                } => {
                    return Err(StartRefusal::Behind {
                        witness,
                        witness_size,
                        log_size,
                    });
                }
                Outcome::Fork { size } => {
                    return Err(StartRefusal::Inconsistent {
                        witness,
                        log_size: size,
                        status: 409,
                        reason: "it cosigned another root for this size".into(),
                    });
                }
                Outcome::Refused {
                    status: 422,
                    reason,
                } => {
                    return Err(StartRefusal::Inconsistent {
                        witness,
                        log_size: size,
                        status: 422,
                        reason,
                    });
                }
                Outcome::Refused { status, reason } => tracing::warn!(
                    witness = %witness, status, reason = %reason,
                    "witness refused the latest checkpoint at start; it cannot vouch for this log"
                ),
                Outcome::Unreachable(e) | Outcome::BadResponse(e) => tracing::warn!(
                    witness = %witness, error = %e,
                    "could not check the log against this witness at start"
                ),
                Outcome::Cosigned { .. } => {}
            }
        }
        Ok(())
    }

    /// Follows `latest` until `stop`, then makes one last round (bounded by the request timeout)
    /// so the final checkpoint (the `stopped` entry) is witnessed too. `writer` appends alerts.
    pub async fn run(
        mut self,
        mut latest: watch::Receiver<LatestCheckpoint>,
        writer: LogWriter,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut last_round: Option<Instant> = None;
        loop {
            let current = latest.borrow_and_update().clone();
            if let Some((size, note)) = current {
                self.observe(size);
                if self.peers.iter().any(|p| p.cosigned != size) {
                    last_round = Some(Instant::now());
                    let outcomes = self.round(size, note).await;
                    self.alert(&outcomes, size, &writer).await;
                }
                self.report();
            }
            // Wait for a new checkpoint, a nudge (an export), or the interval (retries).
            let mut nudged = false;
            tokio::select! {
                changed = latest.changed() => if changed.is_err() { break },
                () = self.shared.nudge.notified() => nudged = true,
                () = tokio::time::sleep(self.interval) => {}
                () = &mut stop => break,
            }
            if !nudged && let Some(t) = last_round {
                let next = t + self.interval;
                tokio::select! {
                    () = tokio::time::sleep_until(next.into()) => {}
                    () = self.shared.nudge.notified() => {}
                    () = &mut stop => break,
                }
            }
        }
        // The last checkpoint (normally the `stopped` entry's) once more, bounded.
        let last = latest.borrow().clone();
        if let Some((size, note)) = last {
            self.observe(size);
            if self.peers.iter().any(|p| p.cosigned != size) {
                let bound = (self.timeout * 2).min(Duration::from_secs(8));
                match tokio::time::timeout(bound, self.round(size, note)).await {
                    Ok(outcomes) => {
                        for (i, o) in &outcomes {
                            if o.alert_status().is_some() {
                                tracing::error!(witness = %self.peers[*i].cfg.name, size, result = o.label(), "witness refused the final checkpoint");
                            }
                        }
                    }
                    Err(_) => {
                        tracing::warn!(size, "the final checkpoint was not witnessed in time")
                    }
                }
            }
            self.report();
        }
    }

    /// Remembers that the log reached `size` now (for lag accounting).
    fn observe(&mut self, size: u64) {
        if self.seen.back().is_none_or(|(s, _)| *s < size) {
            if self.seen.len() >= MAX_SEEN {
                // Keep the oldest (it dates the lag); drop the next one.
                self.seen.remove(1);
            }
            self.seen.push_back((size, Instant::now()));
        }
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let witnessed = *self.shared.witnessed.borrow();
        *pending = self
            .seen
            .iter()
            .find(|(s, _)| *s > witnessed)
            .map(|(_, t)| (*t, size));
    }

    /// Submits checkpoint `size` (`note`, as the log signed it) to every witness that has not
    /// cosigned it, stores the cosignatures, and updates sizes and the witnessed size.
    async fn round(&mut self, size: u64, note: Arc<str>) -> Vec<(usize, Outcome)> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, p) in self.peers.iter().enumerate() {
            if p.cosigned == size {
                continue;
            }
            let job = Submit {
                http: self.http.clone(),
                peer: p.cfg.clone(),
                store: self.store.clone(),
                timeout: self.timeout,
                old: p.old,
                size,
                note: note.clone(),
            };
            tasks.spawn(async move { (i, job.run().await) });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((i, (outcome, old, resynced))) => {
                    let name = self.peers[i].cfg.name.clone();
                    if resynced {
                        self.metrics.witnesses.submitted(&name, "resynced");
                    }
                    self.metrics.witnesses.submitted(&name, outcome.label());
                    self.peers[i].old = old;
                    outcomes.push((i, outcome));
                }
                Err(e) => tracing::error!(error = %e, "a witness submission task failed"),
            }
        }
        outcomes.sort_by_key(|(i, _)| *i);
        for (i, outcome) in &outcomes {
            if let Outcome::Cosigned { size, lines } = outcome {
                match self.store_cosignatures(*size, lines.clone()).await {
                    Ok(written) => {
                        if written {
                            self.shared.stored.send_modify(|s| *s = (*s).max(*size));
                        }
                        let p = &mut self.peers[*i];
                        p.cosigned = *size;
                        p.old = *size;
                        p.alerted = None;
                        tracing::debug!(witness = %p.cfg.name, size, "checkpoint cosigned");
                    }
                    Err(e) => {
                        tracing::error!(witness = %self.peers[*i].cfg.name, size, error = %e, "could not store a cosignature")
                    }
                }
            }
        }
        self.update_witnessed(size);
        outcomes
    }

    /// Appends `lines` to the stored checkpoint of `size`; whether the stored note changed.
    async fn store_cosignatures(
        &self,
        size: u64,
        lines: Vec<NoteSignature>,
    ) -> Result<bool, String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let stored = store
                .checkpoint(size)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no checkpoint stored for size {size}"))?;
            let updated = add_signature_lines(&stored, &lines).map_err(|e| e.to_string())?;
            store
                .replace_checkpoint_note(size, &updated)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Raises the witnessed size to `size` when a quorum of distinct witnesses cosigned it.
    fn update_witnessed(&mut self, size: u64) {
        let names: HashSet<&str> = self
            .peers
            .iter()
            .filter(|p| p.cosigned == size)
            .map(|p| p.cfg.key.name())
            .collect();
        if names.len() >= self.shared.quorum && *self.shared.witnessed.borrow() < size {
            self.shared.witnessed.send_replace(size);
        }
        let witnessed = *self.shared.witnessed.borrow();
        let floor = self
            .peers
            .iter()
            .map(|p| p.cosigned)
            .min()
            .unwrap_or(witnessed)
            .min(witnessed);
        while self.seen.len() > 1 && self.seen.front().is_some_and(|(s, _)| *s <= floor) {
            self.seen.pop_front();
        }
        let last = self.seen.back().map_or(size, |(s, _)| *s);
        *self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = self
            .seen
            .iter()
            .find(|(s, _)| *s > witnessed)
            .map(|(_, t)| (*t, last));
    }

    /// Updates the per-witness and quorum gauges.
    fn report(&self) {
        let lag = |done: u64| {
            self.seen
                .iter()
                .find(|(s, _)| *s > done)
                .map_or(Duration::ZERO, |(_, t)| t.elapsed())
        };
        for p in &self.peers {
            self.metrics
                .witnesses
                .set_progress(&p.cfg.name, p.cosigned, lag(p.cosigned));
        }
        let witnessed = *self.shared.witnessed.borrow();
        self.metrics.witnesses.set_quorum(witnessed, lag(witnessed));
    }

    /// Raises alerts for refusals: an admin entry (once per witness and status until it cosigns
    /// again), an error line each time.
    async fn alert(&mut self, outcomes: &[(usize, Outcome)], log_size: u64, writer: &LogWriter) {
        for (i, outcome) in outcomes {
            let name = self.peers[*i].cfg.name.clone();
            match outcome {
                Outcome::Unreachable(e) | Outcome::BadResponse(e) => {
                    tracing::warn!(witness = %name, size = log_size, result = outcome.label(), error = %e, "witness submission failed; retrying next round");
                    continue;
                }
                Outcome::Cosigned { .. } => continue,
                _ => {}
            }
            let Some(status) = outcome.alert_status() else {
                continue;
            };
            let detail = match outcome {
                Outcome::Refused { status, reason } => format!(
                    "witness={name} status={status} log_size={log_size} witness_size={} reason={reason}",
                    self.peers[*i].old
                ),
                Outcome::Fork { size } => format!(
                    "witness={name} status=409 log_size={log_size} witness_size={size} reason=the witness cosigned another root for this size (fork)"
                ),
                Outcome::Ahead {
                    witness_size,
                    log_size,
                } => format!(
                    "witness={name} status=409 log_size={log_size} witness_size={witness_size} reason=the witness cosigned a larger tree than the log holds (rollback or cut)"
                ),
                _ => continue,
            };
            tracing::error!(witness = %name, status, size = log_size, result = outcome.label(), "witness refused the log's checkpoint: {detail}");
            if self.peers[*i].alerted == Some(status) {
                continue;
            }
            self.peers[*i].alerted = Some(status);
            if let Err(e) = writer.append(admin_entry("witness_refused", &detail)).await {
                tracing::error!(witness = %name, error = %e, "could not log the witness refusal");
            }
        }
    }
}

/// One submission to one witness, with at most one resync.
struct Submit {
    http: Client<HttpConnector, Full<Bytes>>,
    peer: WitnessPeer,
    store: Arc<dyn Store>,
    timeout: Duration,
    old: u64,
    size: u64,
    note: Arc<str>,
}

impl Submit {
    /// Returns the outcome, the witness's size as now known, and whether a resync happened.
    async fn run(self) -> (Outcome, u64, bool) {
        let mut old = self.old;
        let mut resynced = false;
        loop {
            if old > self.size {
                return (
                    Outcome::Ahead {
                        witness_size: old,
                        log_size: self.size,
                    },
                    old,
                    resynced,
                );
            }
            let outcome = match tokio::time::timeout(self.timeout, self.once(old)).await {
                Ok(o) => o,
                Err(_) => Answer::Other(Outcome::Unreachable(format!(
                    "no answer within {:?}",
                    self.timeout
                ))),
            };
            match outcome {
                Answer::Other(o) => return (o, old, resynced),
                Answer::Conflict(witness_size) if witness_size == old => {
                    // The witness holds `old`, we sent `old`: only the same-size root check can
                    // have failed.
                    if old == self.size {
                        return (Outcome::Fork { size: old }, old, resynced);
                    }
                    return (
                        Outcome::BadResponse(format!(
                            "409 with the size we sent ({old}) for a larger checkpoint"
                        )),
                        old,
                        resynced,
                    );
                }
                Answer::Conflict(witness_size) if witness_size > self.size => {
                    return (
                        Outcome::Ahead {
                            witness_size,
                            log_size: self.size,
                        },
                        witness_size,
                        resynced,
                    );
                }
                Answer::Conflict(witness_size) if !resynced => {
                    old = witness_size;
                    resynced = true;
                }
                Answer::Conflict(witness_size) => {
                    return (
                        Outcome::BadResponse(format!(
                            "a second 409 (size {witness_size}) after resyncing"
                        )),
                        witness_size,
                        resynced,
                    );
                }
            }
        }
    }

    async fn once(&self, old: u64) -> Answer {
        let proof = if old == 0 || old == self.size {
            Vec::new()
        } else {
            let (store, size) = (self.store.clone(), self.size);
            match tokio::task::spawn_blocking(move || {
                consistency_proof(&StoreNodes(&*store), old, size)
            })
            .await
            {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    return Answer::Other(Outcome::BadResponse(format!(
                        "no consistency proof from {old} to {size} in the store: {e}"
                    )));
                }
                Err(e) => return Answer::Other(Outcome::BadResponse(e.to_string())),
            }
        };
        let body = match (AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: self.note.to_string(),
        })
        .to_body()
        {
            Ok(b) => b,
            Err(e) => return Answer::Other(Outcome::BadResponse(e.to_string())),
        };
        let uri = format!(
            "{}{ADD_CHECKPOINT_PATH}",
            self.peer.url.to_string().trim_end_matches('/')
        );
        let req = match Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
        {
            Ok(r) => r,
            Err(e) => return Answer::Other(Outcome::BadResponse(e.to_string())),
        };
        let resp = match self.http.request(req).await {
            Ok(r) => r,
            Err(e) => return Answer::Other(Outcome::Unreachable(e.to_string())),
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = match Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => return Answer::Other(Outcome::Unreachable(e.to_string())),
        };
        let text = String::from_utf8_lossy(&body);
        match status {
            200 => Answer::Other(self.cosignatures(&text)),
            409 => {
                if content_type.split(';').next().map(str::trim) != Some(SIZE_CONTENT_TYPE) {
                    return Answer::Other(Outcome::BadResponse(format!(
                        "409 with content type {content_type:?}, not {SIZE_CONTENT_TYPE}"
                    )));
                }
                match parse_size_body(&text) {
                    Ok(size) => Answer::Conflict(size),
                    Err(e) => Answer::Other(Outcome::BadResponse(format!("409: {e}"))),
                }
            }
            403 | 404 | 422 => Answer::Other(Outcome::Refused {
                status,
                reason: text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
            }),
            other => Answer::Other(Outcome::BadResponse(format!("HTTP status {other}"))),
        }
    }

    /// The valid cosignature lines of this witness's key in a 200 body (the spec's way: append
    /// the body to the checkpoint and open it as a note with the witness's key).
    fn cosignatures(&self, body: &str) -> Outcome {
        let combined = format!("{}{body}", self.note);
        let note = match parse_note(&combined) {
            Ok(n) => n,
            Err(e) => return Outcome::BadResponse(format!("the cosignature lines: {e}")),
        };
        let key = std::slice::from_ref(&self.peer.key);
        match verify_cosignatures(&note, key) {
            Ok(found) if !found.is_empty() => Outcome::Cosigned {
                size: self.size,
                lines: found
                    .iter()
                    .filter_map(|c| note.signatures.get(c.line).cloned())
                    .collect(),
            },
            Ok(_) => Outcome::BadResponse("no cosignature from the configured key".into()),
            Err(e) => Outcome::BadResponse(e.to_string()),
        }
    }
}

/// A single answer, before resync handling.
enum Answer {
    /// 409 with this size.
    Conflict(u64),
    Other(Outcome),
}

//! Off-node replication (`[replicate]`): a task that follows the committed log and publishes each
//! entry and each signed checkpoint to a NATS JetStream stream, awaiting the stream's
//! acknowledgement of each (wire format in [`wire`]). With `[witness]` configured, it also
//! publishes each checkpoint again once witnesses have cosigned it (the stored note, the log's
//! signature and theirs), so a monitor downstream can check the cosignatures too.
//!
//! The task reads what is committed from the store (never from the writer's queue), so nothing is
//! published that is not durable locally. It publishes entries in seq order, several per message
//! ([`wire::BATCH_ENTRIES`]), pipelined, and a checkpoint only once every entry below its size is
//! acknowledged. Every message carries `Nats-Msg-Id` (`origin/first-last`,
//! `origin/checkpoint/size`), and a message not acknowledged is re-sent as it was (same entries,
//! same id), so a retry inside the stream's duplicate window is stored once. On start it reads the
//! last entries messages of the stream and the last checkpoint and resumes after the largest seq
//! stored; a stream holding an entry that differs from the local one, or more entries than the
//! log, stops publishing (a fork or a rolled-back folder) and says so.
//!
//! Async mode never touches a request. Sync mode gives the proxy a [`ReplicationGate`]: a
//! response waits, after its outcome's receipt, until the stream acknowledged that entry.
//!
//! Must not depend on the proxy, the query service or RocksDB: it reads through the [`Store`]
//! trait, and the writer only wakes it up (`LogWriter::committed`, moved by every commit).

pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, StorageType};
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::admin::Check;
use crate::config::ReplicateConfig;
use crate::log::checkpoint::Checkpoint;
use crate::log::note::parse_note;
use crate::log::store::{LogStore, Store, StoreError};
pub use wire::{Names, ReplicatedEntry, decode_entries};

/// The first wait after a failed attempt, and the longest.
const RETRY_AFTER: Duration = Duration::from_millis(200);
const RETRY_AT_MOST: Duration = Duration::from_secs(1);

/// Entries messages published before the oldest acknowledgement is awaited: at most
/// `WINDOW * BATCH_ENTRIES` entries in flight, fewer than a hub holds ahead of a missing one
/// (`hub::monitor::MAX_HELD`), so a window stored out of order is never taken for a gap.
pub const WINDOW: usize = 8;

/// Messages smaller than a full batch in flight at once: while they are, more entries gather
/// for the next (one connection waits for at most one message ahead of its own).
const SMALL_IN_FLIGHT: usize = 2;

/// Entries messages published per pass before the checkpoints they complete are published.
const PASS: usize = 32;

/// Stream messages read back from the end at start, looking for the largest seq stored: a window
/// re-sent after a failure can leave a smaller one last.
const RESUME_SCAN: u64 = 4 * WINDOW as u64;
/// The stream's duplicate window: a message re-sent within it (a retry) is stored once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// What `/metrics` shows of replication (shared handles).
#[derive(Clone, Debug, Default)]
pub struct ReplicationMetrics {
    /// Entries the stream acknowledged (every seq below this).
    pub acked_entries: Gauge<i64, AtomicI64>,
    /// Committed entries not yet acknowledged by the stream.
    pub lag_entries: Gauge<i64, AtomicI64>,
    /// Seconds the stream has been behind the log (0: caught up).
    pub lag_seconds: Gauge<f64, AtomicU64>,
    /// Publish attempts that failed (each is retried).
    pub failures: Counter,
}

impl ReplicationMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "s62_replication_acked_entries",
            "Entries the JetStream stream acknowledged (every seq below this)",
            self.acked_entries.clone(),
        );
        registry.register(
            "s62_replication_lag_entries",
            "Committed entries the JetStream stream has not acknowledged yet",
            self.lag_entries.clone(),
        );
        registry.register(
            "s62_replication_lag_seconds",
            "Seconds the JetStream stream has been behind the log (0: caught up)",
            self.lag_seconds.clone(),
        );
        registry.register(
            "s62_replication_failures",
            "Failed publish attempts to JetStream (each is retried)",
            self.failures.clone(),
        );
    }
}

/// Why a held response was not released by the gate.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("entry {seq} was not acknowledged by the replication stream within {waited:?}")]
    Timeout { seq: u64, waited: Duration },
}

/// Progress shared by the publisher, the proxy (sync mode) and `/readyz`.
#[derive(Debug)]
pub struct ReplicationGate {
    /// Entries acknowledged by the stream: every seq below the value.
    acked: watch::Sender<u64>,
    /// Committed entries the publisher last saw, and since when it has been behind them.
    behind: Mutex<(u64, Option<Instant>)>,
    timeout: Duration,
}

impl ReplicationGate {
    /// A gate whose [`wait_for`](Self::wait_for) gives up after `timeout`.
    pub fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(ReplicationGate {
            acked: watch::channel(0).0,
            behind: Mutex::new((0, None)),
            timeout,
        })
    }

    /// Waits until entry `seq` is acknowledged by the stream, at most the gate's timeout.
    pub async fn wait_for(&self, seq: u64) -> Result<(), GateError> {
        let mut rx = self.acked.subscribe();
        match tokio::time::timeout(self.timeout, rx.wait_for(|n| *n > seq)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(GateError::Timeout {
                seq,
                waited: self.timeout,
            }),
        }
    }

    /// Entries acknowledged so far (every seq below).
    pub fn acked(&self) -> u64 {
        *self.acked.borrow()
    }

    /// Waits until at least `n` entries are acknowledged, at most `wait`; the count reached.
    pub async fn acked_at_least(&self, n: u64, wait: Duration) -> u64 {
        let mut rx = self.acked.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|a| *a >= n)).await;
        self.acked()
    }

    fn advance(&self, n: u64) {
        self.acked.send_if_modified(|a| {
            let moved = n > *a;
            *a = (*a).max(n);
            moved
        });
    }

    /// Records the committed count and returns (entries behind, time behind).
    fn observe(&self, committed: u64) -> (u64, Duration) {
        let acked = self.acked();
        let mut b = self.behind.lock().unwrap_or_else(|e| e.into_inner());
        b.0 = committed;
        if acked >= committed {
            b.1 = None;
            (0, Duration::ZERO)
        } else {
            let since = *b.1.get_or_insert_with(Instant::now);
            (committed - acked, since.elapsed())
        }
    }

    /// `/readyz`'s advisory check: fails once the stream has been behind the log for longer
    /// than `max_lag` (async mode keeps serving; the pod is `degraded`).
    pub fn readiness_check(self: &Arc<Self>, max_lag: Duration) -> Check {
        let gate = self.clone();
        Check::new("replication_lag", move || {
            let (committed, since) = *gate.behind.lock().unwrap_or_else(|e| e.into_inner());
            match since {
                Some(t) if t.elapsed() > max_lag => Err(format!(
                    "the replication stream has been behind the log for {} s ({} of {committed} entries acknowledged)",
                    t.elapsed().as_secs(),
                    gate.acked()
                )),
                _ => Ok(()),
            }
        })
        .advisory()
    }
}

/// Why publishing stopped for good (until a restart).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the stream holds entry {seq} but the log has only {ours} entries: the log folder was \
         rolled back or its tail removed; not publishing"
    )]
    StreamAhead { seq: u64, ours: u64 },
    #[error(
        "the stream's entry {seq} differs from the log's: the log was rewritten (a fork); not \
         publishing"
    )]
    Forked { seq: u64 },
}

/// A transient failure: retried.
#[derive(Debug, thiserror::Error)]
enum Transient {
    #[error("{0}")]
    Nats(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn nats(e: impl std::fmt::Display) -> Transient {
    Transient::Nats(e.to_string())
}

/// Connects to the cluster named by `cfg` (credentials when configured).
pub async fn connect(cfg: &ReplicateConfig, name: &str) -> Result<async_nats::Client, String> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5));
    if let Some(creds) = &cfg.credentials_file {
        opts = opts
            .credentials_file(creds)
            .await
            .map_err(|e| format!("replicate.credentials_file: {e}"))?;
    }
    let addrs: Vec<async_nats::ServerAddr> = cfg
        .urls
        .iter()
        .map(|u| u.parse().map_err(|e| format!("replicate.urls: {u}: {e}")))
        .collect::<Result<_, _>>()?;
    opts.connect(addrs).await.map_err(|e| e.to_string())
}

/// Returns the origin's stream, creating it (file storage, `replicas`, `max_age`, deletes and
/// purges denied) when absent. A stream created before cosigned notes were published lacks
/// their subject: it is added.
pub async fn ensure_stream(
    js: &jetstream::Context,
    names: &Names,
    replicas: usize,
    max_age: Duration,
) -> Result<jetstream::stream::Stream, String> {
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: names.stream.clone(),
            subjects: names.subjects(),
            storage: StorageType::File,
            num_replicas: replicas,
            max_age,
            duplicate_window: DUPLICATE_WINDOW,
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            description: Some(format!("s62 audit log {}", names.origin)),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let config = &stream.cached_info().config;
    if config.subjects.contains(&names.cosignatures) {
        return Ok(stream);
    }
    let mut config = config.clone();
    config.subjects.push(names.cosignatures.clone());
    js.update_stream(config).await.map_err(|e| e.to_string())?;
    js.get_stream(&names.stream)
        .await
        .map_err(|e| e.to_string())
}

/// Where the stream ends for this origin.
struct StreamEnd {
    /// Entries it holds.
    entries: u64,
    /// The last entry's leaf.
    leaf: Option<Vec<u8>>,
    /// The largest checkpoint size it holds.
    checkpoint: u64,
    /// The last cosigned note it holds: (size, signature lines).
    cosigned: (u64, usize),
}

/// A checkpoint note's size and its number of signature lines (0, 0 if it does not parse).
fn size_and_lines(note: &str) -> (u64, usize) {
    parse_note(note)
        .ok()
        .and_then(|n| {
            let size = Checkpoint::parse_text(&n.text).ok()?.size;
            Some((size, n.signatures.len()))
        })
        .unwrap_or((0, 0))
}

async fn stream_end(
    stream: &jetstream::stream::Stream,
    names: &Names,
) -> Result<StreamEnd, Transient> {
    let (entries, leaf) = match stream.get_last_raw_message_by_subject(&names.entries).await {
        Ok(m) => largest_stored(stream, names, m.sequence, last_of(&m.payload)?).await?,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => (0, None),
        Err(e) => return Err(nats(e)),
    };
    let checkpoint = match stream
        .get_last_raw_message_by_subject(&names.checkpoints)
        .await
    {
        Ok(m) => size_and_lines(std::str::from_utf8(&m.payload).map_err(nats)?).0,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => 0,
        Err(e) => return Err(nats(e)),
    };
    let cosigned = match stream
        .get_last_raw_message_by_subject(&names.cosignatures)
        .await
    {
        Ok(m) => size_and_lines(std::str::from_utf8(&m.payload).map_err(nats)?),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => (0, 0),
        Err(e) => return Err(nats(e)),
    };
    Ok(StreamEnd {
        entries,
        leaf,
        checkpoint,
        cosigned,
    })
}

/// The last entry an entries message holds.
fn last_of(payload: &[u8]) -> Result<ReplicatedEntry, Transient> {
    decode_entries(payload)
        .map_err(nats)?
        .pop()
        .ok_or_else(|| nats("an entries message holds no entry"))
}

/// (entries stored, the last one's leaf): from the last entries message, at stream sequence
/// `at`, and the [`RESUME_SCAN`] messages before it, the largest seq. A failed publish re-sent
/// after later messages of its window were stored leaves a smaller seq last; resuming after it
/// would publish the later entries again, under other ids.
async fn largest_stored(
    stream: &jetstream::stream::Stream,
    names: &Names,
    at: u64,
    last: ReplicatedEntry,
) -> Result<(u64, Option<Vec<u8>>), Transient> {
    let mut largest = last;
    for seq in at.saturating_sub(RESUME_SCAN).max(1)..at {
        let m = match stream.get_raw_message(seq).await {
            Ok(m) => m,
            // Aged out, or never there.
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => continue,
            Err(e) => return Err(nats(e)),
        };
        if m.subject.as_str() != names.entries {
            continue;
        }
        let e = last_of(&m.payload)?;
        if e.seq > largest.seq {
            largest = e;
        }
    }
    Ok((largest.seq + 1, Some(largest.leaf)))
}

/// The stream's acknowledgement of one publish, as a future that can be polled in place.
type AckFuture = <jetstream::context::PublishAckFuture as IntoFuture>::IntoFuture;

/// An entries message as published: re-sent as it is until acknowledged.
#[derive(Clone, Debug)]
struct Batch {
    /// Its first seq, and one past its last.
    first: u64,
    end: u64,
    payload: Bytes,
}

/// The publisher's position.
struct Cursor {
    /// Next entry to publish.
    next: u64,
    /// Largest checkpoint size published.
    checkpoint: u64,
    /// The last cosigned note published: (size, signature lines).
    cosigned: (u64, usize),
    /// Cosignatures were stored since the stored notes were last scanned for them.
    cosigned_dirty: bool,
    /// Messages published but not acknowledged when an attempt failed, in seq order from
    /// `next`: the next attempt re-sends them as they were.
    unacked: VecDeque<Batch>,
}

/// Runs the publisher for the log `origin` over `store` until `stop` resolves; then it publishes
/// what is committed for up to 5 more seconds. `latest` ([`crate::ingest::LogWriter::committed`],
/// moved by every commit, signed or not) only wakes it up; so does `cosigned`
/// ([`crate::witness::client::WitnessHandle::cosignatures_stored`], with `[witness]`): the size
/// of the checkpoint whose stored note last gained cosignatures, republished up to that size.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    cfg: ReplicateConfig,
    origin: String,
    store: Arc<dyn Store>,
    mut latest: watch::Receiver<u64>,
    mut cosigned: Option<watch::Receiver<u64>>,
    gate: Arc<ReplicationGate>,
    metrics: ReplicationMetrics,
    stop: impl Future<Output = ()>,
) {
    let names = Names::for_origin(&origin);
    tokio::pin!(stop);
    let mut cursor: Option<Cursor> = None;
    let mut session: Option<(jetstream::Context, jetstream::stream::Stream)> = None;
    let mut stopping: Option<Instant> = None;
    // Cosignatures were stored since the publisher last looked (the wake-up marks them seen).
    let mut cosign_news = false;
    // After a failure, the wait before the next attempt (doubling up to 1 s: sync mode waits on it): commits must not
    // wake a retry while the cluster cannot take it (seen: a retry every 3-4 ms under load).
    let mut backoff: Option<Duration> = None;
    loop {
        let failures_before = metrics.failures.get();
        if session.is_none() {
            match connect(&cfg, &format!("s62 {origin}")).await {
                Ok(client) => {
                    let js = jetstream::new(client);
                    match ensure_stream(&js, &names, cfg.replicas, cfg.max_age).await {
                        Ok(stream) => session = Some((js, stream)),
                        Err(e) => {
                            metrics.failures.inc();
                            tracing::warn!(stream = %names.stream, error = %e, "replication stream not available");
                        }
                    }
                }
                Err(e) => {
                    metrics.failures.inc();
                    tracing::warn!(error = %e, "replication cluster not reachable");
                }
            }
        }
        if let Some((js, stream)) = &session {
            if cursor.is_none() {
                match resume(stream, &names, &*store).await {
                    Ok(Ok(c)) => {
                        tracing::info!(stream = %names.stream, from_seq = c.next, "replication resumes");
                        gate.advance(c.next);
                        cursor = Some(c);
                    }
                    Ok(Err(refusal)) => {
                        tracing::error!(stream = %names.stream, error = %refusal, "replication stopped");
                        metrics.failures.inc();
                        // Nothing more is published by this process; /readyz shows the lag.
                        wait_stop(&mut stop, &mut latest, &gate, &*store, &metrics).await;
                        return;
                    }
                    Err(e) => {
                        metrics.failures.inc();
                        tracing::warn!(error = %e, "could not read the replication stream's end");
                    }
                }
            }
            let mut upto = 0;
            if let Some(rx) = cosigned.as_mut() {
                // New cosignatures: woken by them below, or stored while publishing.
                let changed = std::mem::take(&mut cosign_news) || rx.has_changed().unwrap_or(false);
                upto = *rx.borrow_and_update();
                if changed && let Some(c) = cursor.as_mut() {
                    c.cosigned_dirty = true;
                }
            }
            if let Some(c) = cursor.as_mut()
                && let Err(e) =
                    publish_committed(js, &names, &*store, c, upto, &gate, &metrics, &mut latest)
                        .await
            {
                metrics.failures.inc();
                tracing::warn!(next_seq = c.next, error = %e, "replication publish failed; retrying");
            }
        }
        let committed = store.entry_count().unwrap_or(0);
        let (behind, since) = gate.observe(committed);
        metrics.acked_entries.set(gate.acked() as i64);
        metrics.lag_entries.set(behind as i64);
        metrics.lag_seconds.set(since.as_secs_f64());
        if let Some(t) = stopping
            && (behind == 0 || t.elapsed() > Duration::from_secs(5))
        {
            return;
        }
        if metrics.failures.get() > failures_before {
            let wait = backoff.map_or(RETRY_AFTER, |b| (b * 2).min(RETRY_AT_MOST));
            backoff = Some(wait);
            let wait = if stopping.is_some() {
                wait.min(Duration::from_millis(200))
            } else {
                wait
            };
            tokio::select! {
                () = &mut stop, if stopping.is_none() => stopping = Some(Instant::now()),
                () = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        backoff = None;
        let pause = if behind > 0 {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        if stopping.is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let cosignatures = async {
            match cosigned.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let mut witness_gone = false;
        tokio::select! {
            () = &mut stop => stopping = Some(Instant::now()),
            changed = latest.changed() => if changed.is_err() { stopping = Some(Instant::now()) },
            ok = cosignatures => if ok { cosign_news = true } else { witness_gone = true },
            () = tokio::time::sleep(pause) => {}
        }
        if witness_gone {
            // The witness client stopped: nothing more will be cosigned.
            cosigned = None;
        }
    }
}

/// After a refusal: keeps the lag figures current until `stop`.
async fn wait_stop(
    stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    latest: &mut watch::Receiver<u64>,
    gate: &ReplicationGate,
    store: &dyn Store,
    metrics: &ReplicationMetrics,
) {
    loop {
        let (behind, since) = gate.observe(store.entry_count().unwrap_or(0));
        metrics.lag_entries.set(behind as i64);
        metrics.lag_seconds.set(since.as_secs_f64());
        tokio::select! {
            () = stop.as_mut() => return,
            _ = latest.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Reads the stream's end and checks it against the log.
async fn resume(
    stream: &jetstream::stream::Stream,
    names: &Names,
    store: &dyn Store,
) -> Result<Result<Cursor, Refusal>, Transient> {
    let StreamEnd {
        entries,
        leaf,
        checkpoint,
        cosigned,
    } = stream_end(stream, names).await?;
    let ours = store.entry_count()?;
    if entries > ours {
        return Ok(Err(Refusal::StreamAhead {
            seq: entries - 1,
            ours,
        }));
    }
    if let Some(leaf) = leaf {
        let seq = entries - 1;
        if store.entry(seq)?.as_deref() != Some(leaf.as_slice()) {
            return Ok(Err(Refusal::Forked { seq }));
        }
    }
    Ok(Ok(Cursor {
        next: entries,
        checkpoint,
        cosigned,
        cosigned_dirty: true,
        unacked: VecDeque::new(),
    }))
}

/// Publishes every committed entry from `c.next` on and every stored checkpoint they complete
/// (in passes of [`PASS`] entries messages, so a steady load does not hold checkpoints back), then
/// (when cosignatures were stored since the last scan) every stored note cosigned up to size
/// `upto`, each awaited for its acknowledgement. `latest` (moved by every commit) lets a commit
/// made while an acknowledgement is awaited go out at once.
#[allow(clippy::too_many_arguments)]
async fn publish_committed(
    js: &jetstream::Context,
    names: &Names,
    store: &dyn Store,
    c: &mut Cursor,
    upto: u64,
    gate: &ReplicationGate,
    metrics: &ReplicationMetrics,
    latest: &mut watch::Receiver<u64>,
) -> Result<(), Transient> {
    loop {
        let before = c.next;
        publish_entries(js, names, store, c, gate, latest).await?;
        metrics.acked_entries.set(c.next as i64);
        publish_checkpoints(js, names, store, c).await?;
        if c.next == before {
            break;
        }
    }
    if c.cosigned_dirty && upto > 0 {
        c.cosigned_dirty = !publish_cosigned(js, names, store, c, upto).await?;
    }
    Ok(())
}

/// Publishes the entries messages from `c.next` on: first those a failed attempt left
/// unacknowledged, as they were, then new ones of up to [`wire::BATCH_ENTRIES`] committed
/// entries, up to [`WINDOW`] in flight; a message smaller than a full batch only while fewer than
/// [`SMALL_IN_FLIGHT`] are in flight. While the oldest acknowledgement is awaited, a commit
/// (`latest` moves) is published at once if the window allows: one connection's outcome does
/// not wait behind its intent's round trip. Returns once nothing more is committed or [`PASS`]
/// messages are acknowledged. On a failure, what is not acknowledged stays in `c.unacked`.
async fn publish_entries(
    js: &jetstream::Context,
    names: &Names,
    store: &dyn Store,
    c: &mut Cursor,
    gate: &ReplicationGate,
    latest: &mut watch::Receiver<u64>,
) -> Result<(), Transient> {
    let mut unsent = std::mem::take(&mut c.unacked);
    let mut formed = unsent.back().map_or(c.next, |b| b.end);
    let mut flight: VecDeque<(Batch, AckFuture)> = VecDeque::new();
    let mut acked = 0;
    // The message whose acknowledgement failed, if one did.
    let mut failed = None;
    let result = loop {
        let mut not_sent = None;
        while flight.len() < WINDOW && acked + flight.len() < PASS {
            let batch = match unsent.pop_front() {
                Some(b) => b,
                None => {
                    let full = store.entry_count()? >= formed + wire::BATCH_ENTRIES as u64;
                    if !full && flight.len() >= SMALL_IN_FLIGHT {
                        break;
                    }
                    match form_batch(store, formed)? {
                        Some(b) => b,
                        None => break,
                    }
                }
            };
            formed = batch.end;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                "Nats-Msg-Id",
                names.entries_id(batch.first, batch.end - 1).as_str(),
            );
            let sent = js
                .publish_with_headers(names.entries.clone(), headers, batch.payload.clone())
                .await;
            match sent {
                Ok(ack) => flight.push_back((batch, ack.into_future())),
                Err(e) => {
                    unsent.push_front(batch);
                    not_sent = Some(nats(e));
                    break;
                }
            }
        }
        if let Some(e) = not_sent {
            break Err(e);
        }
        // A commit made meanwhile is formed and sent while this acknowledgement is awaited,
        // when the window has room for it (a closed channel: the writer stopped, just wait).
        let room = flight.len() < SMALL_IN_FLIGHT && acked + flight.len() < PASS;
        let Some((_, ack)) = flight.front_mut() else {
            break Ok(());
        };
        let answer = tokio::select! {
            biased;
            answer = ack => answer,
            Ok(()) = latest.changed(), if room => continue,
        };
        let Some((batch, _)) = flight.pop_front() else {
            break Ok(());
        };
        match answer {
            Ok(_) => {
                c.next = batch.end;
                gate.advance(c.next);
                acked += 1;
            }
            Err(e) => {
                failed = Some(batch);
                break Err(nats(e));
            }
        }
    };
    if result.is_err() {
        // Re-sent as they were, in seq order: the one that failed, those in flight, then those
        // not sent yet.
        c.unacked = failed
            .into_iter()
            .chain(flight.into_iter().map(|(b, _)| b))
            .chain(unsent)
            .collect();
    }
    result
}

/// The next entries message from `first` on: up to [`wire::BATCH_ENTRIES`] committed entries and
/// [`wire::BATCH_BYTES`] (at least one entry), or none if nothing is committed from there.
fn form_batch(store: &dyn Store, first: u64) -> Result<Option<Batch>, Transient> {
    let leaves = store.entries(first, wire::BATCH_ENTRIES)?;
    if leaves.is_empty() {
        return Ok(None);
    }
    let mut rows: HashMap<u64, Vec<u8>> = store
        .values_rows(first, wire::BATCH_ENTRIES)?
        .into_iter()
        .collect();
    let mut entries = Vec::with_capacity(leaves.len());
    let mut bytes = 0;
    for (seq, leaf) in leaves {
        if seq != first + entries.len() as u64 {
            return Err(StoreError::Corrupt(format!("entry {seq} out of sequence")).into());
        }
        let values = rows.remove(&seq).unwrap_or_default();
        let e = ReplicatedEntry { seq, leaf, values };
        bytes += wire::encoded_len(&e);
        if bytes > wire::BATCH_BYTES && !entries.is_empty() {
            break;
        }
        entries.push(e);
    }
    let end = first + entries.len() as u64;
    Ok(Some(Batch {
        first,
        end,
        payload: Bytes::from(wire::encode_entries(entries)),
    }))
}

/// Publishes every stored checkpoint whose entries are all acknowledged.
async fn publish_checkpoints(
    js: &jetstream::Context,
    names: &Names,
    store: &dyn Store,
    c: &mut Cursor,
) -> Result<(), Transient> {
    loop {
        let notes = store.checkpoints(c.checkpoint + 1, CHECKPOINTS_PER_PAGE)?;
        let mut acks = VecDeque::with_capacity(notes.len());
        for (size, note) in notes {
            if size > c.next {
                break;
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", names.checkpoint_id(size).as_str());
            let ack = js
                .publish_with_headers(names.checkpoints.clone(), headers, Bytes::from(note))
                .await
                .map_err(nats)?;
            acks.push_back((size, ack));
        }
        if acks.is_empty() {
            break;
        }
        while let Some((size, ack)) = acks.pop_front() {
            ack.await.map_err(nats)?;
            c.checkpoint = size;
        }
    }
    Ok(())
}

/// Stored checkpoints published per page.
const CHECKPOINTS_PER_PAGE: usize = 512;

/// Stored checkpoints read per page when looking for cosigned ones.
const COSIGNED_PAGE: usize = 64;

/// Publishes each stored checkpoint from the last cosigned one published up to `upto` (never
/// past the checkpoints published, so the stream holds a checkpoint before its cosigned note)
/// whose note carries more signature lines than the log's own and more than were published for
/// it. Returns whether it got as far as `upto`.
async fn publish_cosigned(
    js: &jetstream::Context,
    names: &Names,
    store: &dyn Store,
    c: &mut Cursor,
    upto: u64,
) -> Result<bool, Transient> {
    let last = upto.min(c.checkpoint);
    let mut from = c.cosigned.0.max(1);
    loop {
        let notes = store.checkpoints(from, COSIGNED_PAGE)?;
        let mut done = notes.len() < COSIGNED_PAGE;
        let mut acks = VecDeque::new();
        for (size, note) in notes {
            if size > last {
                done = true;
                break;
            }
            from = size + 1;
            let (_, lines) = size_and_lines(&note);
            if lines < 2 || (size, lines) <= c.cosigned {
                continue;
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", names.cosigned_id(size, lines).as_str());
            let ack = js
                .publish_with_headers(names.cosignatures.clone(), headers, Bytes::from(note))
                .await
                .map_err(nats)?;
            acks.push_back(((size, lines), ack));
        }
        while let Some((published, ack)) = acks.pop_front() {
            ack.await.map_err(nats)?;
            c.cosigned = published;
        }
        if done {
            return Ok(upto <= c.checkpoint);
        }
    }
}

//! The audit hub (`s62 hub --config FILE`): follows the JetStream stream of every configured log,
//! verifies each as a monitor would ([`monitor`]), keeps what verified as a log folder of the
//! sidecar's own layout (`data_dir/logs/<token>/`, indexes included), and writes every problem it
//! finds — a fork, a gap, a bad signature, a stream behind a checkpoint, tampered values, a bad
//! witness cosignature, a log left unwitnessed longer than allowed — as an `alert` entry in its
//! own signed log (`data_dir/log/`).
//!
//! Each log is read with an ordered consumer starting after the last stream message whose
//! checkpoint the hub stored (`data_dir/logs/<token>.cursor`): the position moves only once the
//! verified entries are durable in the hub's copy, so a hub that stops at any moment re-reads
//! what it had not stored, and re-delivered entries are recognised and skipped. Every hub holds
//! every log (no consumer groups): a log's chain and tree are verified in order, so splitting one
//! log between hubs would split the verification, and an auditor's query needs all logs anyway
//! (docs/scale.md).
//!
//! With `[hub.query]` the hub serves the auditor query service over its copies
//! ([`crate::query::QueryLogs::hub`]): the same certificate, role and purpose checks as a
//! sidecar's, with each call's audit entries written to the hub's own log; calls span the logs a
//! call's `origin` selects. It is bound before anything is followed, so a bad listener stops
//! startup, and it drains before the hub's writer stops.
//!
//! Must not depend on the proxy; it reads NATS through `async-nats` and the logs through the
//! [`Store`] trait, and opens RocksDB only in [`start`].

pub mod monitor;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::DeliverPolicy;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;

use crate::config::{HubConfig, LoadError, MonitoredLog};
use crate::ingest::{LogWriter, WriterConfig, WriterTask};
use crate::log::entry::{Alert, Entry, EntryKind, admin_entry};
use crate::log::store::Store;
use crate::replicate::{Names, decode_entries};
use monitor::{Finding, Monitor, MonitorError};

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Config(#[from] LoadError),
    #[error("hub.key_file: {0}")]
    Key(#[from] crate::keys::KeyFileError),
    #[error("{path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: crate::log::store::StoreError,
    },
    #[error("the hub's own log: {0}")]
    Writer(#[from] crate::ingest::OpenError),
    #[error("the hub's own log is not writable: {0}")]
    Append(#[from] crate::ingest::AppendError),
    #[error("could not start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("hub.query: {0}")]
    Query(#[from] crate::query::ServeError),
}

/// A monitored log's progress, shared with callers.
#[derive(Debug, Default)]
pub struct Progress {
    /// Entries verified and stored.
    pub verified: AtomicU64,
    /// Findings raised.
    pub findings: AtomicU64,
    /// The largest checkpoint size a quorum of the log's configured witnesses cosigned.
    pub witnessed: AtomicU64,
}

/// A running hub.
pub struct Hub {
    writer: LogWriter,
    task: Option<WriterTask>,
    own: Arc<dyn Store>,
    copies: HashMap<String, (Arc<dyn Store>, Arc<Progress>)>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    query: Option<std::net::SocketAddr>,
}

impl Hub {
    /// The hub's own log (its alerts).
    pub fn own_log(&self) -> &Arc<dyn Store> {
        &self.own
    }

    /// The hub's verified copy of `origin`.
    pub fn copy_of(&self, origin: &str) -> Option<&Arc<dyn Store>> {
        self.copies.get(origin).map(|(s, _)| s)
    }

    /// Entries of `origin` verified and stored so far.
    pub fn verified(&self, origin: &str) -> u64 {
        self.copies
            .get(origin)
            .map_or(0, |(_, p)| p.verified.load(Ordering::Relaxed))
    }

    /// Findings raised for `origin`.
    pub fn findings(&self, origin: &str) -> u64 {
        self.copies
            .get(origin)
            .map_or(0, |(_, p)| p.findings.load(Ordering::Relaxed))
    }

    /// The largest checkpoint size of `origin` that a quorum of its configured witnesses
    /// cosigned, as the hub verified it (0: none, or no witnesses configured).
    pub fn witnessed(&self, origin: &str) -> u64 {
        self.copies
            .get(origin)
            .map_or(0, |(_, p)| p.witnessed.load(Ordering::Relaxed))
    }

    /// Where the auditor query service listens (with `[hub.query]`).
    pub fn query_address(&self) -> Option<std::net::SocketAddr> {
        self.query
    }

    /// Stops following and serving queries, logs `stopped` and drains the hub's own writer.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Err(e) = self
            .writer
            .append(admin_entry("stopped", "hub stopped"))
            .await
        {
            tracing::error!(error = %e, "could not log the hub's stop");
        }
        if let Some(task) = self.task.take() {
            task.shutdown_async().await;
        }
    }
}

/// `s62 hub --config FILE`: runs until ctrl-c or SIGTERM.
#[cfg(feature = "rocksdb")]
pub fn serve(config_path: &Path) -> Result<(), HubError> {
    let cfg = HubConfig::load(config_path)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(HubError::Runtime)?
        .block_on(async {
            let hub = start(&cfg).await?;
            crate::app::stop_signal().await;
            hub.stop().await;
            Ok(())
        })
}

/// Opens the hub's own log and its copies, then follows every configured log.
#[cfg(feature = "rocksdb")]
pub async fn start(cfg: &HubConfig) -> Result<Hub, HubError> {
    use crate::log::store::rocks::RocksStore;
    let open = |path: PathBuf| -> Result<Arc<dyn Store>, HubError> {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        RocksStore::open(&path)
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|source| HubError::Store { path, source })
    };
    let key = crate::keys::read_signer(&cfg.key_file)?;
    // Bound (and its TLS files read) before anything else, so a bad listener stops startup.
    let listener = match &cfg.query {
        Some(q) => Some(crate::query::QueryListener::bind(q).await?),
        None => None,
    };
    let verifier = key.verifier();
    let own = open(cfg.data_dir.join("log"))?;
    let (writer, task) = LogWriter::start(own.clone(), key, WriterConfig::new(cfg.origin.clone()))?;
    writer
        .append(admin_entry(
            "started",
            &format!("hub monitoring {} logs", cfg.logs.len()),
        ))
        .await?;
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut copies = HashMap::new();
    for log in &cfg.logs {
        let names = Names::for_origin(&log.origin);
        let logs = cfg.data_dir.join("logs");
        let store = open(logs.join(&names.token))?;
        let progress = Arc::new(Progress::default());
        copies.insert(log.origin.clone(), (store.clone(), progress.clone()));
        tasks.spawn(follow(
            cfg.clone(),
            log.clone(),
            store,
            logs.join(format!("{}.cursor", names.token)),
            writer.clone(),
            progress,
            stop_rx.clone(),
        ));
    }
    let mut query = None;
    if let Some(listener) = listener {
        query = listener.local_addr().ok();
        let served = cfg
            .logs
            .iter()
            .filter_map(|log| {
                let (store, _) = copies.get(&log.origin)?;
                Some(crate::query::ServedLog {
                    origin: log.origin.clone(),
                    store: Arc::clone(store),
                    verifiers: log.keys.keys().to_vec(),
                })
            })
            .collect();
        let logs = crate::query::QueryLogs::hub(served, cfg.origin.clone(), own.clone(), verifier);
        let (writer, mut stop) = (writer.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = listener.serve_logs(logs, writer, shutdown).await {
                tracing::error!(error = %e, "hub query listener stopped");
            }
        });
    }
    tracing::info!(logs = cfg.logs.len(), "s62 hub following");
    Ok(Hub {
        query,
        writer,
        task: Some(task),
        own,
        copies,
        stop,
        tasks,
    })
}

/// The stream sequence after which to resume (0: from the start).
fn read_cursor(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_cursor(path: &Path, seq: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("cursor.tmp");
    std::fs::write(&tmp, format!("{seq}\n"))?;
    std::fs::rename(tmp, path)
}

/// Follows one log until `stop`: reconnects and resumes from the cursor after any failure.
async fn follow(
    cfg: HubConfig,
    log: MonitoredLog,
    store: Arc<dyn Store>,
    cursor: PathBuf,
    writer: LogWriter,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) {
    let names = Names::for_origin(&log.origin);
    let opened = Monitor::open(&log.origin, log.keys.clone(), store)
        .and_then(|m| m.with_witnesses(log.witnesses.clone(), log.witness_quorum));
    let mut monitor = match opened {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(stream = %names.stream, error = %e, "the hub's copy cannot be opened");
            return;
        }
    };
    progress
        .verified
        .store(monitor.verified(), Ordering::Relaxed);
    progress
        .witnessed
        .store(monitor.witnessed(), Ordering::Relaxed);
    let mut lag = WitnessLag::new(log.witness_max_lag);
    loop {
        let result = tokio::select! {
            r = follow_once(&cfg, &names, &mut monitor, &mut lag, &cursor, &writer, &progress) => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(result) = result else {
            return settle(&mut monitor).await;
        };
        if let Err(e) = result {
            tracing::warn!(stream = %names.stream, error = %e, "hub consumer failed; resuming");
        }
        let stopped = tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopped {
            return settle(&mut monitor).await;
        }
    }
}

/// Waits for the commit being written behind the monitor, if any: a stopped hub must not still be
/// writing its copies (the folder stays locked until the last write lets go of it, so a hub
/// started again at once could not open it). What that commit held is re-read at the next start
/// and skipped, as the cursor did not move for it.
async fn settle(monitor: &mut Monitor) {
    while monitor.is_writing() {
        if monitor.written(false).is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn follow_once(
    cfg: &HubConfig,
    names: &Names,
    monitor: &mut Monitor,
    lag: &mut WitnessLag,
    cursor: &Path,
    writer: &LogWriter,
    progress: &Progress,
) -> Result<(), String> {
    let client =
        crate::replicate::connect(&cfg.connection(), &format!("s62 hub {}", cfg.origin)).await?;
    // Each step of the set-up gives up after STALL (async-nats waits 5-10 s): around a node's
    // death a request may wait on that node (the consumer placed on it, say), and a fresh attempt
    // half a second later lands elsewhere; each wait of 10 s measured delayed the resumption by
    // as much.
    let js = jetstream::ContextBuilder::new()
        .timeout(STALL)
        .build(client);
    let mut stream = within_stall("the stream's info", js.get_stream(&names.stream)).await?;
    let after = read_cursor(cursor);
    let create = stream.create_consumer(jetstream::consumer::pull::OrderedConfig {
        deliver_policy: if after == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            }
        },
        ..Default::default()
    });
    let consumer = within_stall("the consumer's creation", create).await?;
    let messages = within_stall("the consumer's messages", consumer.messages()).await?;
    let mut messages = read_ahead(messages, names.checkpoints.clone(), monitor.note_check());
    // The stream sequences of the last checkpoints staged and being written: the cursor once
    // they are written.
    let mut staged_at = Staged::default();
    // The stream sequence of the last message taken.
    let mut seen = after;
    // Entries taken but not stored yet (pending, staged or held), with their stream sequences
    // in stream order: the cursor must not pass the first of them.
    let mut unstored = std::collections::VecDeque::new();
    loop {
        // What is staged is written once the stream has nothing more buffered (or plenty is
        // staged): one synced commit per burst, not one per checkpoint.
        let next = match tokio::time::timeout(Duration::ZERO, messages.next()).await {
            Ok(next) => next,
            Err(_) => {
                flush(monitor, cursor, &mut staged_at, &mut unstored, progress)?;
                lag.check(monitor, writer, progress).await;
                loop {
                    match tokio::time::timeout(STALL, messages.next()).await {
                        Ok(next) => break next,
                        // An ordered consumer whose server died notices only after missed
                        // heartbeats (15 s each in async-nats) and then re-creates itself: over a
                        // minute measured. If nothing came for STALL while the stream holds more,
                        // start again from the cursor on a fresh connection instead.
                        Err(_) => {
                            lag.check(monitor, writer, progress).await;
                            // A server that does not answer within STALL either is as good as
                            // gone for this consumer.
                            let last = tokio::time::timeout(STALL, stream.info())
                                .await
                                .map_err(|_| format!("the stream's state not known in {STALL:?}"))?
                                .map_err(|e| e.to_string())?
                                .state
                                .last_sequence;
                            if last > seen {
                                return Err(format!(
                                    "no message for {STALL:?} while the stream holds {} more",
                                    last - seen
                                ));
                            }
                        }
                    }
                }
            }
        };
        let Some(m) = next else { break };
        let m = m.map_err(|e| e.to_string())?;
        let stream_seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
        seen = seen.max(stream_seq);
        let taken = if m.subject.as_str() == names.entries {
            match decode_entries(m.payload.as_ref()) {
                Ok(batch) => batch
                    .into_iter()
                    .try_for_each(|e| {
                        if e.seq >= monitor.verified() {
                            unstored.push_back((e.seq, stream_seq));
                        }
                        monitor.entry(e)
                    })
                    .map(|()| false),
                Err(e) => Err(MonitorError::Finding(Finding {
                    rule: monitor::TAMPERED,
                    seq: 0,
                    detail: format!(
                        "stream message {stream_seq} on the entries subject does not decode: {e}"
                    ),
                })),
            }
        } else if m.subject.as_str() == names.cosignatures {
            match std::str::from_utf8(&m.payload) {
                Ok(note) => monitor.cosigned(note).map(|quorum| {
                    // Shown once durable: now if the checkpoint was stored already, else by
                    // the flush that stores it.
                    if quorum && monitor.witnessed() <= monitor.verified() {
                        progress
                            .witnessed
                            .store(monitor.witnessed(), Ordering::Relaxed);
                    }
                    false
                }),
                Err(_) => Err(MonitorError::Finding(Finding {
                    rule: monitor::BAD_COSIGNATURE,
                    seq: 0,
                    detail: format!("stream message {stream_seq} is not a cosigned note"),
                })),
            }
        } else {
            match std::str::from_utf8(&m.payload) {
                Ok(note) => monitor.checkpoint(note),
                Err(_) => Err(MonitorError::Finding(Finding {
                    rule: monitor::BAD_SIGNATURE,
                    seq: 0,
                    detail: format!("stream message {stream_seq} is not a checkpoint note"),
                })),
            }
        };
        match taken {
            Ok(true) => {
                staged_at.at = Some(stream_seq);
                flush_behind(
                    monitor,
                    cursor,
                    &mut staged_at,
                    &mut unstored,
                    progress,
                    FLUSH_BEHIND_AT_ENTRIES,
                )?;
            }
            Ok(false) => {}
            Err(MonitorError::Finding(f)) => {
                // What verified before the finding is kept.
                flush(monitor, cursor, &mut staged_at, &mut unstored, progress)?;
                raise(writer, monitor.origin(), &f).await;
                // Counted once its alert entry is written (or could not be), never before.
                progress.findings.fetch_add(1, Ordering::Relaxed);
            }
            Err(MonitorError::Store(e)) => return Err(e.to_string()),
        }
    }
    flush(monitor, cursor, &mut staged_at, &mut unstored, progress)?;
    Err("the consumer ended".into())
}

/// Raises `replication_unwitnessed` once a checkpoint the hub verified has gone longer than the
/// log's `witness_max_lag` without a quorum-cosigned checkpoint at least as large; once per
/// episode (again only after the witnessed size has caught up with every checkpoint seen).
struct WitnessLag {
    max_lag: Duration,
    /// Verified checkpoint sizes not yet witnessed, with when the hub first held them (oldest
    /// first; at most `MAX_SEEN`, the oldest kept).
    seen: std::collections::VecDeque<(u64, std::time::Instant)>,
    alerted: bool,
}

const MAX_SEEN: usize = 1024;

impl WitnessLag {
    fn new(max_lag: Duration) -> WitnessLag {
        WitnessLag {
            max_lag,
            seen: std::collections::VecDeque::new(),
            alerted: false,
        }
    }

    async fn check(&mut self, monitor: &Monitor, writer: &LogWriter, progress: &Progress) {
        if !monitor.is_witnessed() {
            return;
        }
        let (verified, witnessed) = (monitor.verified(), monitor.witnessed());
        if verified > witnessed && self.seen.back().is_none_or(|(s, _)| *s < verified) {
            if self.seen.len() >= MAX_SEEN {
                self.seen.remove(1);
            }
            self.seen.push_back((verified, std::time::Instant::now()));
        }
        while self.seen.front().is_some_and(|(s, _)| *s <= witnessed) {
            self.seen.pop_front();
        }
        let Some((size, since)) = self.seen.front().copied() else {
            self.alerted = false;
            return;
        };
        if self.alerted || since.elapsed() <= self.max_lag {
            return;
        }
        self.alerted = true;
        let f = Finding {
            rule: monitor::UNWITNESSED,
            seq: size,
            detail: format!(
                "the checkpoint of size {size} of {} has had no quorum of witness cosignatures for \
                 {} s (witnessed size {witnessed})",
                monitor.origin(),
                since.elapsed().as_secs()
            ),
        };
        raise(writer, monitor.origin(), &f).await;
        progress.findings.fetch_add(1, Ordering::Relaxed);
    }
}

/// `step`, failed if it takes longer than [`STALL`].
async fn within_stall<T, E: std::fmt::Display>(
    what: &str,
    step: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(STALL, step).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("{what}: no answer in {STALL:?}")),
    }
}

/// How long a consumer may stay silent while its stream holds more before the hub reconnects.
const STALL: Duration = Duration::from_secs(2);

/// Staged entries a monitor may hold while a commit is being written; past this the consumer
/// waits for it.
const FLUSH_AT_ENTRIES: u64 = 32_768;

/// Staged entries that make a commit worth starting while the stream is busy.
const FLUSH_BEHIND_AT_ENTRIES: u64 = 4_096;

/// Messages read ahead of the monitor at most (an entries message holds up to
/// [`crate::replicate::wire::BATCH_ENTRIES`] entries: ~50 MB at most).
const READ_AHEAD: usize = 1_024;

/// Checkpoint notes whose signatures are checked together, at most (fewer when the monitor would
/// otherwise wait).
const NOTES_PER_BATCH: usize = 64;

/// Stream sequences of checkpoints not yet written: what the cursor becomes once they are.
#[derive(Debug, Default)]
struct Staged {
    /// The last checkpoint staged.
    at: Option<u64>,
    /// The last checkpoint in the commit being written behind the consumer (none when that
    /// commit began before this consumer: the cursor then waits for the next).
    writing: Option<u64>,
}

/// Reads `messages` on a task of its own, ahead of the monitor (up to [`READ_AHEAD`] messages),
/// so the stream is pulled while the monitor verifies and writes, and checks the signatures of
/// the checkpoint notes among what has arrived together ([`monitor::NoteCheck`]) before the
/// monitor reaches them. The messages come out as they went in, in order.
fn read_ahead<S, E>(
    mut messages: S,
    checkpoints: String,
    notes: monitor::NoteCheck,
) -> tokio_stream::wrappers::ReceiverStream<Result<jetstream::Message, E>>
where
    S: tokio_stream::Stream<Item = Result<jetstream::Message, E>> + Send + Unpin + 'static,
    E: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        let mut ended = false;
        while !ended {
            let first = tokio::select! {
                m = messages.next() => m,
                () = tx.closed() => return,
            };
            let Some(first) = first else { return };
            // What has arrived, its notes checked in one go: while the monitor has plenty to
            // take in, more is awaited (briefly) to make a batch worth it.
            let is_note = |m: &Result<jetstream::Message, E>| {
                m.as_ref().is_ok_and(|m| m.subject.as_str() == checkpoints)
            };
            let mut notes_in = usize::from(is_note(&first));
            let mut chunk = vec![first];
            while chunk.len() < READ_AHEAD / 4 && notes_in < NOTES_PER_BATCH {
                let queued = tx.max_capacity() - tx.capacity();
                let wait = if queued >= READ_AHEAD / 16 {
                    Duration::from_millis(1)
                } else {
                    Duration::ZERO
                };
                match tokio::time::timeout(wait, messages.next()).await {
                    Ok(Some(m)) => {
                        notes_in += usize::from(is_note(&m));
                        chunk.push(m);
                    }
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            let checked: Vec<&str> = chunk
                .iter()
                .filter(|m| is_note(m))
                .filter_map(|m| m.as_ref().ok())
                .filter_map(|m| std::str::from_utf8(&m.payload).ok())
                .collect();
            notes.check(&checked);
            for m in chunk {
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// While the stream is busy: takes the outcome of the commit being written behind the consumer
/// if it is in (moving the cursor to the last checkpoint it held), waiting for it only once
/// [`FLUSH_AT_ENTRIES`] are staged; then, with none being written and `start_at` entries staged,
/// starts the next on a thread of its own.
fn flush_behind(
    monitor: &mut Monitor,
    cursor: &Path,
    staged_at: &mut Staged,
    unstored: &mut std::collections::VecDeque<(u64, u64)>,
    progress: &Progress,
    start_at: u64,
) -> Result<(), String> {
    match monitor.written(monitor.staged() >= FLUSH_AT_ENTRIES) {
        None if monitor.is_writing() => return Ok(()),
        None => {}
        Some(outcome) => {
            let writing = staged_at.writing.take();
            outcome.map_err(|e| e.to_string())?;
            progress
                .verified
                .store(monitor.verified(), Ordering::Relaxed);
            if let Some(seq) = writing {
                save_cursor(cursor, cursor_at(monitor, unstored, seq));
            }
        }
    }
    if monitor.staged() >= start_at
        && let Some(commit) = monitor.flush_behind()
    {
        staged_at.writing = staged_at.at.take();
        std::thread::Builder::new()
            .name("s62-hub-commit".into())
            .spawn(move || commit.write())
            .map_err(|e| format!("no thread to write the hub's copy: {e}"))?;
    }
    Ok(())
}

/// The cursor for a checkpoint written at stream sequence `seq`: no further than just before the
/// first entry taken but not stored yet ([`flush`]).
fn cursor_at(
    monitor: &Monitor,
    unstored: &mut std::collections::VecDeque<(u64, u64)>,
    seq: u64,
) -> u64 {
    let verified = monitor.verified();
    unstored.retain(|(s, _)| *s >= verified);
    let first_unstored = unstored.front().map(|(_, at)| at.saturating_sub(1));
    first_unstored.map_or(seq, |f| f.min(seq))
}

fn save_cursor(cursor: &Path, seq: u64) {
    if let Err(e) = write_cursor(cursor, seq) {
        tracing::warn!(error = %e, "hub cursor not saved; the stream will be re-read");
    }
}

/// Writes what `monitor` staged (after the commit being written behind, if any), then moves
/// the cursor to the stream sequence of the last checkpoint written (never before: a hub stopped
/// in between re-reads and skips what it holds), or to just before the first entry not stored
/// yet, if that comes earlier in the stream: the entries after a checkpoint's size precede it in
/// the stream (the publisher sends a checkpoint once its entries are acknowledged, and may have
/// sent more by then), and a hub restarted from the checkpoint's position would never see them
/// again.
fn flush(
    monitor: &mut Monitor,
    cursor: &Path,
    staged_at: &mut Staged,
    unstored: &mut std::collections::VecDeque<(u64, u64)>,
    progress: &Progress,
) -> Result<(), String> {
    if monitor.flush().map_err(|e| e.to_string())? {
        progress
            .verified
            .store(monitor.verified(), Ordering::Relaxed);
        progress
            .witnessed
            .store(monitor.witnessed(), Ordering::Relaxed);
    }
    if let Some(seq) = staged_at.at.take().or(staged_at.writing.take()) {
        save_cursor(cursor, cursor_at(monitor, unstored, seq));
    }
    staged_at.writing = None;
    Ok(())
}

/// Writes a finding as an `alert` entry of the hub's own log.
async fn raise(writer: &LogWriter, origin: &str, f: &Finding) {
    let entry = Entry {
        kind: EntryKind::Alert as i32,
        alert: Some(Alert {
            rule: f.rule.into(),
            name: origin.into(),
            sighting_seq: f.seq,
            related_seq: 0,
            detail: f.detail.clone(),
        }),
        ..Default::default()
    };
    match writer.append(entry).await {
        Ok(r) => tracing::warn!(
            alert_seq = r.seq,
            rule = f.rule,
            log = origin,
            seq = f.seq,
            "hub alert raised"
        ),
        Err(e) => tracing::error!(rule = f.rule, log = origin, error = %e, "hub alert not logged"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::store::LogStore;
    use crate::log::store::memory::MemoryStore;
    use monitor::tests::{ORIGIN, keys, source};
    use std::collections::VecDeque;

    #[tokio::test]
    async fn with_commits_written_behind_the_cursor_names_only_checkpoints_written() {
        let (entries, notes) = source(3).await;
        let store = Arc::new(MemoryStore::new());
        let mut m = Monitor::open(ORIGIN, keys(), store.clone()).expect("open");
        let dir = tempfile::tempdir().expect("tempdir");
        let cursor = dir.path().join("log.cursor");
        let progress = Progress::default();
        let mut staged = Staged::default();
        let mut unstored = VecDeque::new();
        // Entry i is stream message 10 + 2i, its checkpoint 11 + 2i.
        let take = |m: &mut Monitor, staged: &mut Staged, unstored: &mut VecDeque<_>, i: usize| {
            unstored.push_back((i as u64, 10 + 2 * i as u64));
            m.entry(entries[i].clone()).expect("entry");
            assert!(m.checkpoint(&notes[i]).expect("checkpoint"));
            staged.at = Some(11 + 2 * i as u64);
        };
        // The disk is full: the commit written behind fails, and so does the flush after it.
        store.set_failing(true);
        take(&mut m, &mut staged, &mut unstored, 0);
        flush_behind(&mut m, &cursor, &mut staged, &mut unstored, &progress, 1).expect("started");
        assert!(m.is_writing());
        assert!(flush(&mut m, &cursor, &mut staged, &mut unstored, &progress).is_err());
        assert_eq!((read_cursor(&cursor), m.verified(), m.staged()), (0, 0, 1));
        store.set_failing(false);
        flush(&mut m, &cursor, &mut staged, &mut unstored, &progress).expect("flush");
        assert_eq!((read_cursor(&cursor), m.verified()), (11, 1));
        // One commit behind, failing, while the next checkpoint is staged: the cursor stays.
        store.set_failing(true);
        take(&mut m, &mut staged, &mut unstored, 1);
        flush_behind(&mut m, &cursor, &mut staged, &mut unstored, &progress, 1).expect("started");
        take(&mut m, &mut staged, &mut unstored, 2);
        let _ = flush_behind(&mut m, &cursor, &mut staged, &mut unstored, &progress, 1);
        assert!(flush(&mut m, &cursor, &mut staged, &mut unstored, &progress).is_err());
        assert_eq!((read_cursor(&cursor), m.verified()), (11, 1));
        store.set_failing(false);
        flush(&mut m, &cursor, &mut staged, &mut unstored, &progress).expect("flush");
        assert_eq!((read_cursor(&cursor), m.verified()), (15, 3));
        assert_eq!(progress.verified.load(Ordering::Relaxed), 3);
        assert_eq!(store.entry_count().expect("count"), 3);
    }
}

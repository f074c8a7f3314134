//! The group-commit writer: the only code that appends to the log.
//!
//! `append` puts an entry on a bounded queue and waits for its [`Receipt`]. One writer thread takes
//! everything queued (up to `max_batch`), assigns sequence numbers, times and chain links, encodes
//! each entry once, extends the Merkle tree, signs one checkpoint for the new size and writes it all
//! in one synced batch; only then are the receipts released. So every acknowledged entry is durable
//! and covered by a signed checkpoint, and throughput grows with concurrency instead of with the
//! disk's fsync rate.
//!
//! Failure is explicit: a full queue past `queue_wait` is [`AppendError::QueueFull`], a failed write
//! is [`AppendError::Storage`] for every entry of that batch (the in-memory tree is rolled back, so
//! the next batch retries cleanly), and nothing is ever dropped silently. This module knows the log
//! core and the [`Store`] trait; it must not know HTTP, gRPC or RocksDB.

use crate::log::checkpoint::Checkpoint;
use crate::log::entry::{self, Entry, EntryKind, Operation};
use crate::log::hash::{Hash, leaf_hash};
use crate::log::index::index_records;
use crate::log::merkle::{Frontier, NodeId, peak_ids};
use crate::log::note::{SignerKey, parse_note};
use crate::log::store::{CommitBatch, LogStore, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};

/// The latest signed checkpoint: (tree size, signed note).
pub type LatestCheckpoint = Option<(u64, Arc<str>)>;

/// How the writer batches and how long producers may wait.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// The checkpoint origin: names this log; must match what the folder already holds.
    pub origin: String,
    /// Entries that may wait in the queue.
    pub queue_capacity: usize,
    /// How long `append` waits for room in a full queue before failing.
    pub queue_wait: Duration,
    /// Most entries in one commit.
    pub max_batch: usize,
}

impl WriterConfig {
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            queue_capacity: 16_384,
            queue_wait: Duration::from_secs(2),
            max_batch: 4096,
        }
    }
}

/// Proof that an entry is durable and covered by a signed checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    pub leaf_hash: Hash,
    /// Size of the signed checkpoint that covers this entry.
    pub checkpoint_size: u64,
}

/// Why an entry was not appended. In every case it was not written.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AppendError {
    /// The queue stayed full for the configured wait: the log cannot keep up.
    #[error("the audit log is overloaded: its queue stayed full for {0:?}")]
    QueueFull(Duration),
    /// The store failed the batch holding this entry (disk full, I/O error, ...).
    #[error("the audit log could not be written: {0}")]
    Storage(String),
    /// The writer has shut down.
    #[error("the audit log writer is shut down")]
    Closed,
    /// The entry is larger than [`entry::MAX_ENTRY_BYTES`] once encoded.
    #[error("entry of {0} bytes exceeds the log's limit")]
    TooLarge(usize),
}

/// Why the writer could not start on a folder.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored log is not internally consistent; run `s62 verify`.
    #[error("the log folder is inconsistent: {0}; run `s62 verify` on it")]
    Inconsistent(String),
    /// The folder holds a different log.
    #[error("the log folder holds origin {found:?} but the configuration says {expected:?}")]
    OriginMismatch { expected: String, found: String },
    #[error("could not start the writer thread: {0}")]
    Thread(#[from] std::io::Error),
}

const KINDS: usize = 6;
const OPS: usize = 7;

/// Counters the writer keeps for metrics; read with relaxed loads.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub failed_batches: AtomicU64,
    pub entries: AtomicU64,
    /// Total nanoseconds spent in synced writes.
    pub commit_nanos: AtomicU64,
    /// Size of the tree after the last successful commit.
    pub tree_size: AtomicU64,
    pub last_batch_size: AtomicU64,
    /// Entries appended by (kind, operation) enum values.
    by_kind_op: [[AtomicU64; OPS]; KINDS],
    last_error: Mutex<Option<String>>,
}

impl WriterStats {
    /// Entries appended of this kind and operation since start.
    pub fn appended(&self, kind: EntryKind, op: Operation) -> u64 {
        self.by_kind_op
            .get(kind as usize)
            .and_then(|row| row.get(op as usize))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The error of the last commit, if it failed (cleared by a successful one).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|g| g.clone()).unwrap_or(None)
    }
}

enum Msg {
    Append(Box<Entry>, oneshot::Sender<Result<Receipt, AppendError>>),
    Close,
}

/// Handle for producers; cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<Msg>,
    wait: Duration,
    capacity: usize,
    stats: Arc<WriterStats>,
    origin: Arc<str>,
    latest: watch::Receiver<LatestCheckpoint>,
}

/// Owns the writer thread; [`WriterTask::shutdown`] drains the queue and stops it.
pub struct WriterTask {
    tx: mpsc::Sender<Msg>,
    thread: std::thread::JoinHandle<()>,
}

impl LogWriter {
    /// Opens the log state from `store`, checks it, and starts the writer thread.
    pub fn start(
        store: Arc<dyn Store>,
        key: SignerKey,
        cfg: WriterConfig,
    ) -> Result<(LogWriter, WriterTask), OpenError> {
        let mut state = State::recover(store, key, &cfg)?;
        let (latest_tx, latest) = watch::channel(state.latest.clone());
        state.publish = Some(latest_tx);
        let stats = Arc::new(WriterStats::default());
        stats
            .tree_size
            .store(state.frontier.size(), Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let thread_stats = stats.clone();
        let max_batch = cfg.max_batch.max(1);
        let thread = std::thread::Builder::new()
            .name("s62-log-writer".into())
            .spawn(move || run(state, rx, max_batch, &thread_stats))?;
        let writer = LogWriter {
            tx: tx.clone(),
            wait: cfg.queue_wait,
            capacity: cfg.queue_capacity.max(1),
            stats,
            origin: cfg.origin.into(),
            latest,
        };
        Ok((writer, WriterTask { tx, thread }))
    }

    /// Appends one entry and waits until it is durable and covered by a signed checkpoint.
    /// `seq`, `time_unix_nanos`, `prev_leaf_hash` and `format_version` are set by the writer.
    pub async fn append(&self, entry: Entry) -> Result<Receipt, AppendError> {
        let (reply, rx) = oneshot::channel();
        match self
            .tx
            .send_timeout(Msg::Append(Box::new(entry), reply), self.wait)
            .await
        {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                return Err(AppendError::QueueFull(self.wait));
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return Err(AppendError::Closed),
        }
        rx.await.unwrap_or(Err(AppendError::Closed))
    }

    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// Entries waiting in the queue now.
    pub fn queue_depth(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Follows the latest committed checkpoint (for publication and the admin listener). Under
    /// load a follower sees the newest one, not necessarily every one.
    pub fn checkpoints(&self) -> watch::Receiver<LatestCheckpoint> {
        self.latest.clone()
    }
}

impl WriterTask {
    /// Stops accepting, commits everything already queued, and waits for the thread to end.
    pub fn shutdown(self) {
        // If the thread is already gone the send fails, and there is nothing left to drain.
        let _ = self.tx.blocking_send(Msg::Close);
        drop(self.tx);
        let _ = self.thread.join();
    }

    /// [`WriterTask::shutdown`] from async code.
    pub async fn shutdown_async(self) {
        let _ = tokio::task::spawn_blocking(move || self.shutdown()).await;
    }
}

/// What the writer knows about the tip of the log.
struct State {
    store: Arc<dyn Store>,
    key: SignerKey,
    origin: String,
    frontier: Frontier,
    last_leaf: Hash,
    last_time: i64,
    /// The checkpoint of the last commit, and where to announce new ones.
    latest: LatestCheckpoint,
    publish: Option<watch::Sender<LatestCheckpoint>>,
    /// Keys that also sign the next checkpoint (the outgoing key at a rotation).
    cosigners: Vec<SignerKey>,
}

impl State {
    fn recover(
        store: Arc<dyn Store>,
        key: SignerKey,
        cfg: &WriterConfig,
    ) -> Result<State, OpenError> {
        let size = store.entry_count()?;
        let inconsistent = |s: String| OpenError::Inconsistent(s);
        let mut state = State {
            store: store.clone(),
            key,
            origin: cfg.origin.clone(),
            frontier: Frontier::new(),
            last_leaf: Hash::GENESIS,
            last_time: 0,
            latest: None,
            publish: None,
            cosigners: Vec::new(),
        };
        let latest = store.latest_checkpoint()?;
        if size == 0 {
            if let Some((cp_size, _)) = latest {
                return Err(inconsistent(format!(
                    "no entries but a checkpoint of size {cp_size}"
                )));
            }
            return Ok(state);
        }
        let Some((cp_size, note)) = latest else {
            return Err(inconsistent(format!("{size} entries but no checkpoint")));
        };
        if cp_size != size {
            return Err(inconsistent(format!(
                "{size} entries but the latest checkpoint covers {cp_size}"
            )));
        }
        state.latest = Some((size, Arc::from(note.as_str())));
        let text = parse_note(&note)
            .map_err(|e| inconsistent(format!("latest checkpoint is not a signed note: {e}")))?
            .text;
        let cp = Checkpoint::parse_text(&text)
            .map_err(|e| inconsistent(format!("latest checkpoint does not parse: {e}")))?;
        if cp.origin != cfg.origin {
            return Err(OpenError::OriginMismatch {
                expected: cfg.origin.clone(),
                found: cp.origin,
            });
        }
        let mut peaks = Vec::new();
        for id in peak_ids(size) {
            peaks.push(
                store
                    .node(id)?
                    .ok_or_else(|| inconsistent(format!("missing tree node {id:?}")))?,
            );
        }
        state.frontier = Frontier::from_parts(size, peaks)
            .map_err(|e| inconsistent(format!("tree edge: {e}")))?;
        if state.frontier.root() != cp.root || cp.size != size {
            return Err(inconsistent(
                "the stored tree does not match the latest checkpoint".into(),
            ));
        }
        state.last_leaf = store
            .node(NodeId {
                level: 0,
                index: size - 1,
            })?
            .ok_or_else(|| inconsistent("missing last leaf hash".into()))?;
        let last = store
            .entry(size - 1)?
            .ok_or_else(|| inconsistent("missing last entry".into()))?;
        if leaf_hash(&last) != state.last_leaf {
            return Err(inconsistent(format!(
                "entry {} does not match its stored leaf hash",
                size - 1
            )));
        }
        state.last_time = entry::decode(&last)
            .map_err(|e| inconsistent(format!("entry {}: {e}", size - 1)))?
            .time_unix_nanos;
        Ok(state)
    }

    /// Commits one batch; returns a result per job, in order.
    fn commit(
        &mut self,
        jobs: Vec<Entry>,
        stats: &WriterStats,
    ) -> Vec<Result<Receipt, AppendError>> {
        let saved = (self.frontier.clone(), self.last_leaf, self.last_time);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let mut batch = CommitBatch::default();
        let mut results = Vec::with_capacity(jobs.len());
        let mut counted = Vec::with_capacity(jobs.len());
        for mut e in jobs {
            let seq = self.frontier.size();
            e.format_version = entry::FORMAT_VERSION;
            e.seq = seq;
            // Time never goes backwards along the chain, whatever the wall clock does.
            e.time_unix_nanos = now.max(self.last_time);
            e.prev_leaf_hash = self.last_leaf.0.to_vec();
            let bytes = entry::encode(&e);
            if bytes.len() > entry::MAX_ENTRY_BYTES {
                results.push(Err(AppendError::TooLarge(bytes.len())));
                continue;
            }
            let leaf = leaf_hash(&bytes);
            self.frontier.push(leaf, &mut batch.nodes);
            batch.index.extend(index_records(&e));
            batch.entries.push((seq, bytes));
            self.last_leaf = leaf;
            self.last_time = e.time_unix_nanos;
            counted.push((e.kind, e.operation));
            results.push(Ok(Receipt {
                seq,
                leaf_hash: leaf,
                checkpoint_size: 0,
            }));
        }
        if batch.entries.is_empty() {
            return results;
        }
        let size = self.frontier.size();
        let signed = Checkpoint {
            origin: self.origin.clone(),
            size,
            root: self.frontier.root(),
            extensions: Vec::new(),
        }
        .sign(&self.key)
        .map_err(|e| e.to_string())
        .and_then(|note| {
            self.cosigners
                .iter()
                .try_fold(note, |note, k| k.cosign(&note).map_err(|e| e.to_string()))
        });
        let outcome = match signed {
            Ok(note) => {
                batch.checkpoint = (size, note);
                let started = Instant::now();
                let r = self.store.commit(&batch).map_err(|e| e.to_string());
                stats
                    .commit_nanos
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                r
            }
            Err(e) => Err(format!("signing the checkpoint failed: {e}")),
        };
        match outcome {
            Ok(()) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .entries
                    .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
                stats
                    .last_batch_size
                    .store(batch.entries.len() as u64, Ordering::Relaxed);
                stats.tree_size.store(size, Ordering::Relaxed);
                for (kind, op) in counted {
                    if let Some(c) = stats
                        .by_kind_op
                        .get(kind as usize)
                        .and_then(|row| row.get(op as usize))
                    {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Ok(mut g) = stats.last_error.lock() {
                    *g = None;
                }
                for r in results.iter_mut().flatten() {
                    r.checkpoint_size = size;
                }
                self.latest = Some((size, Arc::from(std::mem::take(&mut batch.checkpoint.1))));
                if let Some(tx) = &self.publish {
                    tx.send_replace(self.latest.clone());
                }
                results
            }
            Err(msg) => {
                (self.frontier, self.last_leaf, self.last_time) = saved;
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %msg, entries = batch.entries.len(), "log commit failed; batch refused");
                if let Ok(mut g) = stats.last_error.lock() {
                    *g = Some(msg.clone());
                }
                results
                    .into_iter()
                    .map(|r| r.and(Err(AppendError::Storage(msg.clone()))))
                    .collect()
            }
        }
    }
}

/// Why a key rotation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The outgoing key did not sign the log's latest checkpoint: only the holder of the current
    /// key may hand over.
    #[error("the given current key did not sign the log's latest checkpoint: {0}")]
    NotCurrentKey(String),
    /// The announcing entry could not be written.
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// Hands the log over from `old` to `new` (same origin, so the same key name): appends an `admin`
/// entry `key_rotated` naming the new verifier key, in a batch whose checkpoint BOTH keys sign.
/// Checkpoints before it verify with `old`, those after with `new`, and the doubly signed one
/// links them. Run with the sidecar stopped (the store's lock guarantees one writer).
pub fn rotate_key(
    store: Arc<dyn Store>,
    old: SignerKey,
    new: SignerKey,
    origin: &str,
) -> Result<Receipt, RotateError> {
    let cfg = WriterConfig::new(origin);
    if let Some((_, note)) = store.latest_checkpoint().map_err(OpenError::from)? {
        crate::log::checkpoint::open_checkpoint(&note, &[old.verifier()], Some(origin))
            .map_err(|e| RotateError::NotCurrentKey(e.to_string()))?;
    }
    let announce = entry::admin_entry(
        "key_rotated",
        &format!(
            "new signing key {}; previous key id {}",
            new.verifier().to_vkey(),
            hex::encode(old.key_id())
        ),
    );
    let mut state = State::recover(store, new, &cfg)?;
    state.cosigners = vec![old];
    let stats = WriterStats::default();
    let receipt = state
        .commit(vec![announce], &stats)
        .pop()
        .unwrap_or(Err(AppendError::Closed))?;
    Ok(receipt)
}

fn run(mut state: State, mut rx: mpsc::Receiver<Msg>, max_batch: usize, stats: &WriterStats) {
    let mut closing = false;
    let mut entries: Vec<Entry> = Vec::new();
    let mut replies = Vec::new();
    while !closing {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Append(e, r) => {
                    entries.push(*e);
                    replies.push(r);
                }
                Msg::Close => {
                    // Refuse new work, but commit everything that was already queued.
                    closing = true;
                    rx.close();
                }
            }
            if closing {
                next = rx.blocking_recv();
            } else if entries.len() < max_batch {
                next = rx.try_recv().ok();
            }
        }
        while !entries.is_empty() {
            let chunk: Vec<Entry> = entries.drain(..entries.len().min(max_batch)).collect();
            let results = state.commit(chunk, stats);
            for (reply, result) in replies.drain(..results.len()).zip(results) {
                // A producer that stopped waiting still has its entry logged; nothing to do.
                let _ = reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests;

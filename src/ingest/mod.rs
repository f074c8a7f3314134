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
//! the next batch retries cleanly), an entry over the log's limits is refused alone
//! ([`AppendError::ValueTooLong`], [`AppendError::TooLarge`]), and nothing is ever dropped silently.
//! The last entry of each batch says a checkpoint follows it.
//!
//! The writer starts only on a folder it can vouch for ([`OpenError`]): the latest checkpoint must
//! verify with the configured key and origin and match the stored tree, the configured key must
//! not have been handed over to another, and the folder must not be behind or forked from any
//! checkpoint kept outside it ([`WriterConfig::kept`]). So an insider who rewrites, rolls back or
//! cuts the folder cannot get the real key to sign the result. On a log begun before some index
//! families existed, it then builds them for the stored entries before taking any append
//! (`backfill`). This module knows the log core and the [`Store`] trait; it must not know HTTP,
//! gRPC or RocksDB.

use crate::log::checkpoint::{Checkpoint, CheckpointError, open_checkpoint};
use crate::log::entry::{self, Entry, EntryKind, EntryValues, Operation};
use crate::log::epoch::{KEY_ROTATED, handover_key};
use crate::log::hash::{Hash, leaf_hash};
use crate::log::index::{MAX_INDEXED_VALUE_BYTES, index_records, index_values};
use crate::log::merkle::{Frontier, NodeId, peak_ids, root_at};
use crate::log::note::SignerKey;
use crate::log::store::{CommitBatch, LogStore, Store, StoreError, StoreNodes};
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
    /// Checkpoints of this log kept where the folder's operator cannot rewrite them (the
    /// publication folder, witnesses). The writer refuses to start on a folder behind or forked
    /// from any of them.
    pub kept: Vec<KeptCheckpoint>,
    /// The entry format of a new log ([`entry::FORMAT_V2`]; format 1 only for compatibility
    /// tests). A folder that already holds entries keeps the format of its first entry.
    pub new_log_format: u32,
    /// The time entries are stamped with (never earlier than the previous entry's).
    pub clock: Clock,
}

/// Where the writer reads the time: the system clock, or — in tests that need a particular day,
/// such as out-of-hours alerts — a function of their own.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock, in Unix nanoseconds.
    pub fn system() -> Clock {
        Clock(Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0)
        }))
    }

    /// A clock that asks `now` (Unix nanoseconds).
    pub fn from_fn(now: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    pub fn now_nanos(&self) -> i64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl WriterConfig {
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            queue_capacity: 16_384,
            queue_wait: Duration::from_secs(2),
            max_batch: 4096,
            kept: Vec::new(),
            new_log_format: entry::FORMAT_V2,
            clock: Clock::system(),
        }
    }
}

/// A checkpoint of this log known from outside the log folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptCheckpoint {
    /// Where it was found, for messages (`admin.checkpoint_dir/checkpoint`, `witness w1`).
    pub place: String,
    pub size: u64,
    /// Its root, when known (a witness's conflict answer gives only a size).
    pub root: Option<Hash>,
}

/// Proof that an entry is durable and covered by a signed checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    /// A value the log indexes (an id, a recipient, an actor) is longer than
    /// [`MAX_INDEXED_VALUE_BYTES`]; the caller bounds inputs well below that.
    #[error(
        "a {family} value of {bytes} bytes exceeds the log's limit of {MAX_INDEXED_VALUE_BYTES}"
    )]
    ValueTooLong { family: &'static str, bytes: usize },
    /// A redaction that cannot be carried out (format-1 log, seqs beyond the log, a redaction
    /// entry appended as an ordinary entry). Nothing was written.
    #[error("redaction refused: {0}")]
    Redaction(String),
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
    /// The latest stored checkpoint does not verify with the configured key: a retired or wrong
    /// key, or a folder rewritten by someone without the key.
    #[error(
        "the latest checkpoint (tree size {size}) does not verify with the configured signing key \
         {key}: {why}. Either log.key_file is not this log's current key (after `s62 rotate-key`, \
         use the new key), or the folder was altered: keep it as evidence and run `s62 verify` on it"
    )]
    UntrustedCheckpoint { size: u64, key: String, why: String },
    /// The configured key handed the log over to another key.
    #[error(
        "the configured signing key {key} is retired: entry {seq} hands the log over to \
         {successor} from tree size {} on; point log.key_file at the new key", seq + 1
    )]
    RetiredKey {
        key: String,
        seq: u64,
        successor: String,
    },
    /// A checkpoint kept outside the folder is larger than the log.
    #[error(
        "the log folder holds {ours} entries but {place} holds a checkpoint of size {kept}: the \
         folder was rolled back or its newest entries were removed. Do not start on it: restore \
         the newest copy, keep this one as evidence, and run `s62 verify --trust-checkpoint`"
    )]
    Behind { place: String, kept: u64, ours: u64 },
    /// A checkpoint kept outside the folder disagrees with the stored tree at its size.
    #[error(
        "{place} holds a checkpoint of size {size} whose root differs from this folder's tree at \
         that size: the log was rewritten (a fork). Keep both as evidence and run \
         `s62 verify --trust-checkpoint`"
    )]
    Forked { place: String, size: u64 },
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
    Redact(Box<Entry>, oneshot::Sender<Result<Redacted, AppendError>>),
    Close,
}

/// Handle for producers; cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    /// For purging redacted data from the store's files, off the writer thread.
    store: Arc<dyn Store>,
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
        let mut state = State::recover(store.clone(), key, &cfg)?;
        let built = backfill::build_missing_families(store.as_ref(), state.frontier.size())?;
        if !built.is_empty() && state.frontier.size() > 0 {
            let names: Vec<&str> = built.iter().map(|f| f.label()).collect();
            tracing::info!(
                entries = state.frontier.size(),
                families = ?names,
                "index families built for the entries already in the log"
            );
        }
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
            store,
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

    /// Appends a `redaction` entry (its `redaction` field naming seqs and fields) and, in the same
    /// atomic write, removes the named values and their salts from their entries' value rows and
    /// the index records only they supported. Leaves, tree nodes and checkpoints are untouched.
    /// Format-2 logs only.
    ///
    /// Returns once the redaction is durable and then the removed bytes are purged from the
    /// store's files (RocksDB keeps deleted and overwritten values in its files until they are
    /// compacted away; [`Store::purge`] forces that for the affected key ranges, on a blocking
    /// thread while appends go on). If the purge fails the redaction still stands: the values are
    /// unreachable through the log, and the error is logged so an operator can compact by hand.
    pub async fn redact(&self, entry: Entry) -> Result<Receipt, AppendError> {
        let done = self.redact_unpurged(entry).await?;
        let store = self.store.clone();
        let purged = tokio::task::spawn_blocking(move || store.purge(&done.ranges)).await;
        match purged {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(
                seq = done.receipt.seq,
                error = %e,
                "redacted values could not be purged from the store's files; they are no longer \
                 reachable through the log but may remain on disk until compaction"
            ),
            Err(e) => tracing::error!(seq = done.receipt.seq, error = %e, "purge task failed"),
        }
        Ok(done.receipt)
    }

    async fn redact_unpurged(&self, entry: Entry) -> Result<Redacted, AppendError> {
        let (reply, rx) = oneshot::channel();
        match self
            .tx
            .send_timeout(Msg::Redact(Box::new(entry), reply), self.wait)
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
    /// The log's entry format: 1, or 2 (sealed personal values).
    format: u32,
    clock: Clock,
}

impl State {
    /// Opens the tip of the log for appending, refusing a folder that is inconsistent, belongs to
    /// another log, was signed by a key other than `key`, hands the log over to another key, or is
    /// behind or forked from a checkpoint kept outside it ([`WriterConfig::kept`]).
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
            format: cfg.new_log_format,
            clock: cfg.clock.clone(),
        };
        let latest = store.latest_checkpoint()?;
        if size == 0 {
            if let Some((cp_size, _)) = latest {
                return Err(inconsistent(format!(
                    "no entries but a checkpoint of size {cp_size}"
                )));
            }
            check_kept(&*store, 0, &cfg.kept)?;
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
        let verifier = state.key.verifier();
        let cp = match open_checkpoint(&note, std::slice::from_ref(&verifier), Some(&cfg.origin)) {
            Ok((cp, _)) => cp,
            Err(CheckpointError::OriginMismatch { expected, found }) => {
                return Err(OpenError::OriginMismatch { expected, found });
            }
            Err(e) => {
                return Err(OpenError::UntrustedCheckpoint {
                    size,
                    key: verifier.to_vkey(),
                    why: e.to_string(),
                });
            }
        };
        if cp.size != size {
            return Err(inconsistent(format!(
                "the checkpoint stored under size {size} says size {}",
                cp.size
            )));
        }
        state.latest = Some((size, Arc::from(note.as_str())));
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
        if state.frontier.root() != cp.root {
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
        let last =
            entry::decode(&last).map_err(|e| inconsistent(format!("entry {}: {e}", size - 1)))?;
        let first = store
            .entry(0)?
            .ok_or_else(|| inconsistent("missing entry 0".into()))?;
        state.format = entry::decode(&first)
            .map_err(|e| inconsistent(format!("entry 0: {e}")))?
            .format_version;
        // The handover checkpoint is signed by both keys, so the outgoing key still verifies it:
        // only the handover entry itself says the key is retired.
        match handover_key(&last) {
            Some(Ok(successor)) if successor != verifier => {
                return Err(OpenError::RetiredKey {
                    key: verifier.to_vkey(),
                    seq: size - 1,
                    successor: successor.to_vkey(),
                });
            }
            Some(Err(e)) => {
                return Err(inconsistent(format!(
                    "entry {} hands the log over to a key that does not parse: {e}",
                    size - 1
                )));
            }
            _ => {}
        }
        state.last_time = last.time_unix_nanos;
        check_kept(&*store, size, &cfg.kept)?;
        Ok(state)
    }

    /// Commits one batch; returns a result per job, in order.
    fn commit(
        &mut self,
        jobs: Vec<Entry>,
        stats: &WriterStats,
    ) -> Vec<Result<Receipt, AppendError>> {
        self.commit_with(jobs, CommitBatch::default(), false, stats)
    }

    /// Removes the values a redaction entry names (see [`LogWriter::redact`]) and commits the
    /// entry with the removals in one write.
    fn redact(&mut self, entry: Entry, stats: &WriterStats) -> Result<Redacted, AppendError> {
        let refuse = |why: String| Err(AppendError::Redaction(why));
        if self.format != entry::FORMAT_V2 {
            return refuse(
                "this log is format 1: its personal values are inside the leaves, so removing \
                 one would break verification (see docs/format.md)"
                    .into(),
            );
        }
        let Some(redaction) = entry.redaction.clone() else {
            return refuse("the entry names nothing to redact".into());
        };
        let size = self.frontier.size();
        let storage = |e: StoreError| AppendError::Storage(e.to_string());
        let mut work: std::collections::BTreeMap<u64, (Entry, EntryValues)> = Default::default();
        let mut covered = 0u64;
        for t in &redaction.targets {
            if t.from_seq > t.to_seq || t.to_seq >= size {
                return refuse(format!(
                    "entries {}..={} are not all in the log (size {size})",
                    t.from_seq, t.to_seq
                ));
            }
            covered = covered.saturating_add(t.to_seq - t.from_seq + 1);
            if covered > MAX_REDACTED_ENTRIES {
                return refuse(format!(
                    "one redaction may name at most {MAX_REDACTED_ENTRIES} entries; split it"
                ));
            }
            for seq in t.from_seq..=t.to_seq {
                let (_, values) = match work.entry(seq) {
                    std::collections::btree_map::Entry::Occupied(slot) => slot.into_mut(),
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        let leaf = self.store.entry(seq).map_err(storage)?.ok_or_else(|| {
                            AppendError::Storage(format!("entry {seq} is missing"))
                        })?;
                        let sealed = entry::decode(&leaf)
                            .map_err(|e| AppendError::Storage(format!("entry {seq}: {e}")))?;
                        let values = self.store.values(seq).map_err(storage)?;
                        slot.insert((sealed, values))
                    }
                };
                values
                    .values
                    .retain(|v| !redaction_covers(t, v.field, v.index));
            }
        }
        let mut batch = CommitBatch::default();
        let mut ranges = redaction
            .targets
            .iter()
            .map(|t| {
                (
                    crate::log::store::values_key(t.from_seq),
                    crate::log::store::values_key(t.to_seq.saturating_add(1)),
                )
            })
            .collect::<Vec<_>>();
        for (seq, (sealed, values)) in work {
            let before = self
                .store
                .opened(seq)
                .map_err(storage)?
                .ok_or_else(|| AppendError::Storage(format!("entry {seq} is missing")))?;
            let after = crate::log::seal::unseal(&sealed, &values)
                .map_err(|e| AppendError::Storage(format!("entry {seq}: {e}")))?;
            let keep = index_records(&after.entry);
            for rec in index_records(&before.entry) {
                if !keep.contains(&rec)
                    && let Some(key) = crate::log::store::index_key(&rec)
                {
                    batch.deletes.push(key);
                }
            }
            batch
                .values
                .push((seq, prost::Message::encode_to_vec(&values)));
        }
        if batch.deletes.len() > MAX_PURGE_RANGES {
            ranges.push(crate::log::store::index_range());
        } else {
            ranges.extend(batch.deletes.iter().map(|k| {
                let mut end = k.clone();
                end.push(0);
                (k.clone(), end)
            }));
        }
        let mut entry = entry;
        entry.kind = EntryKind::Redaction as i32;
        let receipt = self
            .commit_with(vec![entry], batch, true, stats)
            .pop()
            .unwrap_or(Err(AppendError::Closed))?;
        Ok(Redacted { receipt, ranges })
    }

    /// Commits one batch on top of `batch` (which may already hold value rewrites and removals
    /// of a redaction); returns a result per job, in order.
    fn commit_with(
        &mut self,
        jobs: Vec<Entry>,
        mut batch: CommitBatch,
        redacting: bool,
        stats: &WriterStats,
    ) -> Vec<Result<Receipt, AppendError>> {
        let saved = (self.frontier.clone(), self.last_leaf, self.last_time);
        let now = self.clock.now_nanos();
        let mut results: Vec<Result<Receipt, AppendError>> = jobs
            .iter()
            .map(|e| admit(e, redacting).map(|()| Receipt::default()))
            .collect();
        // Salts of this batch's values derive from a seed that is never stored.
        let mut seed = [0u8; 32];
        if self.format == entry::FORMAT_V2
            && let Err(e) = getrandom::fill(&mut seed)
        {
            let msg = format!("no randomness for the values' salts: {e}");
            return results
                .into_iter()
                .map(|r| r.and(Err(AppendError::Storage(msg.clone()))))
                .collect();
        }
        // Every admitted entry is stored; the last one says a checkpoint follows it.
        let last_admitted = results.iter().rposition(Result::is_ok);
        let mut counted = Vec::with_capacity(jobs.len());
        for (i, mut e) in jobs.into_iter().enumerate() {
            let Some(Ok(receipt)) = results.get_mut(i) else {
                continue;
            };
            let seq = self.frontier.size();
            e.format_version = entry::FORMAT_VERSION;
            e.seq = seq;
            // Time never goes backwards along the chain, whatever the wall clock does.
            e.time_unix_nanos = now.max(self.last_time);
            e.prev_leaf_hash = self.last_leaf.0.to_vec();
            e.checkpoint_follows = Some(i) == last_admitted;
            // Indexes are derived from the values as written, before they leave the leaf.
            batch.index.extend(index_records(&e));
            if self.format == entry::FORMAT_V2 {
                let values = crate::log::seal::seal(&mut e, &seed);
                batch
                    .values
                    .push((seq, prost::Message::encode_to_vec(&values)));
            }
            let bytes = entry::encode(&e);
            let leaf = leaf_hash(&bytes);
            self.frontier.push(leaf, &mut batch.nodes);
            batch.entries.push((seq, bytes));
            self.last_leaf = leaf;
            self.last_time = e.time_unix_nanos;
            counted.push((e.kind, e.operation));
            *receipt = Receipt {
                seq,
                leaf_hash: leaf,
                checkpoint_size: 0,
            };
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

/// Refuses a folder of `size` entries that is behind, or disagrees with, a checkpoint kept
/// outside it.
fn check_kept(store: &dyn Store, size: u64, kept: &[KeptCheckpoint]) -> Result<(), OpenError> {
    for k in kept {
        if k.size > size {
            return Err(OpenError::Behind {
                place: k.place.clone(),
                kept: k.size,
                ours: size,
            });
        }
        let Some(root) = k.root else { continue };
        if k.size == 0 {
            continue;
        }
        let ours = root_at(&StoreNodes(store), k.size)
            .map_err(|e| OpenError::Inconsistent(format!("the tree at size {}: {e}", k.size)))?;
        if ours != root {
            return Err(OpenError::Forked {
                place: k.place.clone(),
                size: k.size,
            });
        }
    }
    Ok(())
}

/// Bytes the writer adds to an entry (format version, seq, time, previous leaf hash, checkpoint
/// mark), at most, once it is sequenced.
const WRITER_FIELDS_BYTES: usize = 2 + 11 + 11 + 34 + 3;

/// Whether the writer will store `e`: every indexed value within [`MAX_INDEXED_VALUE_BYTES`] (so
/// the stored index keys hold whole values and verify recomputes exactly them) and the encoded
/// entry within [`entry::MAX_ENTRY_BYTES`], counting a commitment per personal value. A
/// `redaction` entry only comes with the removals it names ([`LogWriter::redact`]).
fn admit(e: &Entry, redacting: bool) -> Result<(), AppendError> {
    use prost::Message;
    if (e.kind == EntryKind::Redaction as i32 || e.redaction.is_some()) != redacting {
        return Err(AppendError::Redaction(
            "a redaction entry is written only together with the removals it names".into(),
        ));
    }
    if let Some((family, value)) = index_values(e)
        .into_iter()
        .find(|(_, v)| v.len() > MAX_INDEXED_VALUE_BYTES)
    {
        return Err(AppendError::ValueTooLong {
            family: family.label(),
            bytes: value.len(),
        });
    }
    let bytes = e.encoded_len()
        + WRITER_FIELDS_BYTES
        + crate::log::seal::value_count(e) * crate::log::seal::COMMITMENT_OVERHEAD_BYTES;
    if bytes > entry::MAX_ENTRY_BYTES {
        return Err(AppendError::TooLarge(bytes));
    }
    Ok(())
}

/// A committed redaction and the key ranges whose old bytes are to be purged.
struct Redacted {
    receipt: Receipt,
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Above this many removed index records, a purge compacts the whole index instead of each.
const MAX_PURGE_RANGES: usize = 256;

/// The most entries one redaction may name: the writer reads and rewrites each while appends
/// wait, so retention works in slices of this size or less.
pub const MAX_REDACTED_ENTRIES: u64 = 100_000;

/// Whether redaction target `t` removes the value (`field`, `index`).
pub fn redaction_covers(t: &entry::RedactionTarget, field: i32, index: u32) -> bool {
    (t.fields.is_empty() || t.fields.contains(&field)) && t.index.is_none_or(|i| i == index)
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
        open_checkpoint(&note, &[old.verifier()], Some(origin))
            .map_err(|e| RotateError::NotCurrentKey(e.to_string()))?;
    }
    let mut announce = entry::admin_entry(
        KEY_ROTATED,
        &format!(
            "new signing key {}; previous key id {}",
            new.verifier().to_vkey(),
            hex::encode(old.key_id())
        ),
    );
    if let Some(admin) = announce.admin.as_mut() {
        admin.new_verifier_key = new.verifier().to_vkey();
    }
    // Recovered as the outgoing key, which must be current (not retired, latest checkpoint
    // verifies); the handover batch is then signed by the new key and cosigned by the old.
    let mut state = State::recover(store, old, &cfg)?;
    let old = std::mem::replace(&mut state.key, new);
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
    // After Close the channel is closed: receiving drains what was queued, then ends.
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        let mut redaction = None;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Append(e, r) => {
                    entries.push(*e);
                    replies.push(r);
                }
                // A redaction is a batch of its own, after the appends queued before it.
                Msg::Redact(e, r) => {
                    redaction = Some((e, r));
                    break;
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
        if let Some((e, reply)) = redaction {
            let _ = reply.send(state.redact(*e, stats));
        }
    }
}

mod backfill;

#[cfg(test)]
mod tests;

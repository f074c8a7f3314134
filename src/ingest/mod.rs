//! The group-commit writer: the only code that appends to the log.
//!
//! `append` puts an entry on a bounded queue and waits for its [`Receipt`]. Two threads pipeline
//! the work: the writer thread takes everything queued (up to `max_batch`), assigns sequence
//! numbers, times and chain links, encodes each entry once, extends the Merkle tree and, when the
//! [`Cadence`] says so, signs a checkpoint for the new size; the commit thread writes each
//! prepared batch in one synced write and only then releases its receipts. So batch N+1 is being
//! prepared while batch N syncs, every acknowledged entry is durable, and throughput grows with
//! concurrency instead of with the disk's fsync rate. When nothing is in flight and nothing is
//! queued, the writer thread commits a lone entry itself ([`WriterConfig::inline_idle_commits`]),
//! one thread switch less. Checkpoints are signed at the cadence, when
//! idle and on shutdown; a restart after a crash signs the unsigned tail once it has checked it.
//!
//! Failure is explicit: a full queue past `queue_wait` is [`AppendError::QueueFull`], a failed write
//! is [`AppendError::Storage`] for every entry of that batch and of any batch already prepared on
//! top of it (the prepared tree is rolled back, so the next batch retries cleanly), an entry over
//! the log's limits is refused alone
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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// The entry format of a new log ([`entry::FORMAT_V3`]; formats 1 and 2 only for
    /// compatibility tests and benchmarks). A folder that already holds entries keeps the format
    /// of its first entry.
    pub new_log_format: u32,
    /// The time entries are stamped with (never earlier than the previous entry's).
    pub clock: Clock,
    /// When checkpoints are signed.
    pub cadence: Cadence,
    /// Whether the writer thread commits a lone entry itself (a batch of one, or a checkpoint
    /// alone) when the commit thread has answered every batch handed to it and no append is
    /// queued (default true). Nothing would be prepared beside such a commit, and handing it over
    /// costs a thread switch (on the 2-core test machine, ~20 % of a lone append's CPU). Off,
    /// every batch goes through the commit thread.
    pub inline_idle_commits: bool,
}

/// When the writer signs a checkpoint: every commit stays durable before it is acknowledged, but
/// a signature (and a stored note) is made at most this often while entries keep arriving, and
/// always once the writer is idle, on request ([`LogWriter::append_signed`]), at a redaction or a
/// key handover, and on shutdown. The cadence is written into the first entry of each run
/// (`checkpoint_cadence`) and verifiers hold the log to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cadence {
    /// The longest a stretch of entries goes unsigned while entries keep arriving, from its
    /// first entry's time; zero signs every commit.
    pub interval: Duration,
    /// The most entries between two checkpoints (at least 1).
    pub max_entries: u64,
    /// How long without appends counts as idle, when whatever is unsigned gets its checkpoint.
    pub idle: Duration,
}

impl Default for Cadence {
    fn default() -> Self {
        // Every commit signed: no entry is ever acknowledged unsigned, and a restart refuses any
        // unsigned tail. A longer interval is an operator's choice, with its window documented.
        Cadence {
            interval: Duration::ZERO,
            max_entries: 65_536,
            idle: Duration::from_millis(2),
        }
    }
}

impl Cadence {
    /// A cadence that signs every commit, as format-1 era writers did.
    pub fn every_commit() -> Self {
        Cadence {
            interval: Duration::ZERO,
            ..Cadence::default()
        }
    }

    /// The record written into the log.
    fn record(&self) -> entry::CheckpointCadence {
        entry::CheckpointCadence {
            interval_ms: u32::try_from(self.interval.as_millis()).unwrap_or(u32::MAX),
            max_entries: self.max_entries.max(1),
        }
    }
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
            new_log_format: entry::FORMAT_V3,
            clock: Clock::system(),
            cadence: Cadence::default(),
            inline_idle_commits: true,
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

/// Proof that an entry is durable, and which checkpoint first covers it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    pub leaf_hash: Hash,
    /// Size of the signed checkpoint that first covers this entry, when the commit that made it
    /// durable signed one (always so for [`LogWriter::append_signed`]). `None`: the entry is
    /// durable and the writer's next checkpoint, due within the [`Cadence`], is the first to
    /// cover it ([`LogWriter::covered`] waits for it).
    pub checkpoint_size: Option<u64>,
}

impl Receipt {
    /// The receipt of an entry whose commit was asked to sign (append_signed, a redaction, a
    /// key handover); an error if it did not.
    fn signed(self) -> Result<SignedReceipt, AppendError> {
        let checkpoint_size = self.checkpoint_size.ok_or_else(|| {
            AppendError::Storage("the writer did not sign the requested checkpoint".into())
        })?;
        Ok(SignedReceipt {
            seq: self.seq,
            leaf_hash: self.leaf_hash,
            checkpoint_size,
        })
    }
}

/// Proof that an entry is durable and covered by the signed checkpoint of its own commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignedReceipt {
    pub seq: u64,
    pub leaf_hash: Hash,
    /// Size of the signed checkpoint that first covers this entry.
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
    /// Checkpoints signed and stored.
    pub checkpoints: AtomicU64,
    /// Batches the writer thread committed itself, idle ([`WriterConfig::inline_idle_commits`]).
    pub inline_batches: AtomicU64,
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
    /// An entry, and whether its commit must sign a checkpoint.
    Append(
        Box<Entry>,
        oneshot::Sender<Result<Receipt, AppendError>>,
        bool,
    ),
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
    committed: watch::Receiver<u64>,
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
        let size = state.tip.frontier.size();
        let built = backfill::build_missing_families(store.as_ref(), size)?;
        if !built.is_empty() && size > 0 {
            let names: Vec<&str> = built.iter().map(|f| f.label()).collect();
            tracing::info!(
                entries = size,
                families = ?names,
                "index families built for the entries already in the log"
            );
        }
        let (latest_tx, latest) = watch::channel(state.latest.clone());
        let stats = Arc::new(WriterStats::default());
        stats.tree_size.store(size, Ordering::Relaxed);
        let (committed_tx, committed) = watch::channel(size);
        let mut committer = Committer {
            store: store.clone(),
            stats: stats.clone(),
            publish: Some(latest_tx),
            committed: Some(committed_tx),
            generation: 0,
            rollback: Arc::new(Mutex::new(None)),
        };
        sign_recovered_tail(&mut state, &mut committer)?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let max_batch = cfg.max_batch.max(1);
        let inline = cfg.inline_idle_commits;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("s62-log-writer".into())
            .spawn(move || run(state, rx, max_batch, inline, runtime, committer))?;
        let writer = LogWriter {
            store,
            tx: tx.clone(),
            wait: cfg.queue_wait,
            capacity: cfg.queue_capacity.max(1),
            stats,
            origin: cfg.origin.into(),
            latest,
            committed,
        };
        Ok((writer, WriterTask { tx, thread }))
    }

    /// Appends one entry and waits until it is durable; the receipt says whether its commit
    /// signed a checkpoint (see [`Receipt::checkpoint_size`]). `seq`, `time_unix_nanos`,
    /// `prev_leaf_hash` and `format_version` are set by the writer.
    pub async fn append(&self, entry: Entry) -> Result<Receipt, AppendError> {
        self.append_with(entry, false).await
    }

    /// Appends one entry and waits until it is durable and covered by a checkpoint signed in
    /// the same commit: for entries whose receipt is shown with a proof (an auditor's query).
    pub async fn append_signed(&self, entry: Entry) -> Result<SignedReceipt, AppendError> {
        self.append_with(entry, true).await?.signed()
    }

    /// Waits until a signed checkpoint covers entry `seq` and returns its size (`None` if the
    /// writer stopped first).
    pub async fn covered(&self, seq: u64) -> Option<u64> {
        let mut rx = self.latest.clone();
        let latest = rx
            .wait_for(|l| l.as_ref().is_some_and(|(size, _)| *size > seq))
            .await
            .ok()?;
        latest.as_ref().map(|(size, _)| *size)
    }

    async fn append_with(&self, entry: Entry, sign: bool) -> Result<Receipt, AppendError> {
        let (reply, rx) = oneshot::channel();
        match self
            .tx
            .send_timeout(Msg::Append(Box::new(entry), reply, sign), self.wait)
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
    pub async fn redact(&self, entry: Entry) -> Result<SignedReceipt, AppendError> {
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

    /// Follows the size of the log's durable entries, moved after every successful commit
    /// (signed or not): for followers that must not wait for the next checkpoint, such as
    /// replication.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// Follows the latest signed checkpoint (for publication and the admin listener). Under load
    /// a follower sees the newest one, not necessarily every one; checkpoints come at the
    /// writer's [`Cadence`], not at every commit.
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

/// The tip of the log as the writer has prepared it: everything an uncommitted batch changed, so a
/// failed commit can put it back.
#[derive(Clone)]
struct Tip {
    frontier: Frontier,
    last_leaf: Hash,
    last_time: i64,
    /// Size of the latest checkpoint this writer signed (or has on its way to the store).
    signed: u64,
    /// Time of the first entry after `signed`, when there is one.
    stretch_start: Option<i64>,
    /// Whether an entry of this run carries the cadence yet.
    cadence_written: bool,
}

/// What the writer knows about the tip of the log.
struct State {
    store: Arc<dyn Store>,
    key: SignerKey,
    origin: String,
    tip: Tip,
    /// Keys that also sign the next checkpoint (the outgoing key at a rotation).
    cosigners: Vec<SignerKey>,
    /// The log's entry format: 1, or 2 (sealed personal values).
    format: u32,
    clock: Clock,
    cadence: Cadence,
    /// Bumped by the committer at each failed commit; batches prepared before it are void.
    generation: u64,
    /// The latest stored checkpoint at start.
    latest: LatestCheckpoint,
}

/// A batch ready for the store, with what to answer for each entry once it is durable.
struct Prepared {
    batch: CommitBatch,
    results: Vec<Result<Receipt, AppendError>>,
    counted: Vec<(i32, i32)>,
    /// The tip before this batch: restored if it fails.
    before: Tip,
    generation: u64,
    /// Tree size once committed.
    size: u64,
}

impl State {
    /// Opens the tip of the log for appending, refusing a folder that is inconsistent, belongs to
    /// another log, was signed by a key other than `key`, hands the log over to another key, or is
    /// behind or forked from a checkpoint kept outside it ([`WriterConfig::kept`]). Entries after
    /// the latest checkpoint (a crash between two checkpoints) are checked link by link and node
    /// by node against it; [`State::unsigned`] then says a checkpoint must be signed for them.
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
            tip: Tip {
                frontier: Frontier::new(),
                last_leaf: Hash::GENESIS,
                last_time: 0,
                signed: 0,
                stretch_start: None,
                cadence_written: false,
            },
            cosigners: Vec::new(),
            format: cfg.new_log_format,
            clock: cfg.clock.clone(),
            cadence: cfg.cadence,
            generation: 0,
            latest: None,
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
        if cp_size > size {
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
                    size: cp_size,
                    key: verifier.to_vkey(),
                    why: e.to_string(),
                });
            }
        };
        if cp.size != cp_size {
            return Err(inconsistent(format!(
                "the checkpoint stored under size {cp_size} says size {}",
                cp.size
            )));
        }
        state.latest = Some((cp_size, Arc::from(note.as_str())));
        let mut peaks = Vec::new();
        for id in peak_ids(cp_size) {
            peaks.push(
                store
                    .node(id)?
                    .ok_or_else(|| inconsistent(format!("missing tree node {id:?}")))?,
            );
        }
        let mut frontier = Frontier::from_parts(cp_size, peaks)
            .map_err(|e| inconsistent(format!("tree edge: {e}")))?;
        if frontier.root() != cp.root {
            return Err(inconsistent(
                "the stored tree does not match the latest checkpoint".into(),
            ));
        }
        let mut last_leaf = store
            .node(NodeId {
                level: 0,
                index: cp_size - 1,
            })?
            .ok_or_else(|| inconsistent("missing last leaf hash".into()))?;
        let at_checkpoint = store
            .entry(cp_size - 1)?
            .ok_or_else(|| inconsistent(format!("missing entry {}", cp_size - 1)))?;
        if leaf_hash(&at_checkpoint) != last_leaf {
            return Err(inconsistent(format!(
                "entry {} does not match its stored leaf hash",
                cp_size - 1
            )));
        }
        let mut last = entry::decode(&at_checkpoint)
            .map_err(|e| inconsistent(format!("entry {}: {e}", cp_size - 1)))?;
        // The unsigned tail: only a writer that signs at an interval leaves one, at most
        // `max_entries` long and shorter in time than the interval; chained to the checkpoint,
        // its tree rows as stored, and no entry in it announcing a checkpoint (one that did was
        // signed, so its checkpoint was deleted). Anything else is history rewritten after
        // checkpoints were deleted, and is not signed.
        let tail = size - cp_size;
        if tail > 0 && cfg.cadence.interval.is_zero() {
            return Err(inconsistent(format!(
                "{tail} entries after the latest checkpoint (size {cp_size}), but this log signs \
                 every commit (log.checkpoint.interval_ms = 0): checkpoints were deleted or the \
                 entries were written by someone else"
            )));
        }
        if tail > cfg.cadence.max_entries {
            return Err(inconsistent(format!(
                "{tail} unsigned entries after the latest checkpoint (size {cp_size}), more than \
                 log.checkpoint.max_entries allows"
            )));
        }
        let interval = i64::try_from(cfg.cadence.interval.as_nanos()).unwrap_or(i64::MAX);
        let mut tail_start: Option<i64> = None;
        let mut completed = Vec::new();
        for seq in cp_size..size {
            let bytes = store
                .entry(seq)?
                .ok_or_else(|| inconsistent(format!("missing entry {seq}")))?;
            let e = entry::decode(&bytes).map_err(|e| inconsistent(format!("entry {seq}: {e}")))?;
            if e.seq != seq || Hash::from_slice(&e.prev_leaf_hash) != Some(last_leaf) {
                return Err(inconsistent(format!(
                    "entry {seq}, after the latest checkpoint, is not chained to the entry before it"
                )));
            }
            let start = *tail_start.get_or_insert(e.time_unix_nanos);
            if e.time_unix_nanos.saturating_sub(start) >= interval {
                return Err(inconsistent(format!(
                    "entry {seq}, unsigned, is log.checkpoint.interval_ms or more after the first \
                     unsigned entry: a writer would have signed it"
                )));
            }
            if e.checkpoint_follows {
                return Err(inconsistent(format!(
                    "entry {seq} announces a checkpoint of size {} that is not stored",
                    seq + 1
                )));
            }
            last_leaf = leaf_hash(&bytes);
            completed.clear();
            frontier.push(last_leaf, &mut completed);
            for (id, h) in &completed {
                if store.node(*id)? != Some(*h) {
                    return Err(inconsistent(format!(
                        "entry {seq}: the stored tree node {id:?} does not match the entries"
                    )));
                }
            }
            last = e;
        }
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
        state.tip = Tip {
            frontier,
            last_leaf,
            last_time: last.time_unix_nanos,
            signed: cp_size,
            stretch_start: None,
            cadence_written: false,
        };
        check_kept(&*store, size, &cfg.kept)?;
        Ok(state)
    }

    /// Whether entries after the last signed checkpoint are waiting for one.
    fn unsigned(&self) -> bool {
        self.tip.frontier.size() > self.tip.signed
    }

    /// Entries the next batch may hold before the cadence's `max_entries` forces a checkpoint.
    fn room(&self) -> usize {
        let since = self.tip.frontier.size() - self.tip.signed;
        usize::try_from(self.cadence.max_entries.saturating_sub(since).max(1)).unwrap_or(usize::MAX)
    }

    /// Puts back the tip of a failed commit, if the committer reported one.
    fn take_rollback(&mut self, slot: &Mutex<Option<(u64, Tip)>>) {
        if let Some((generation, tip)) = slot.lock().ok().and_then(|mut g| g.take()) {
            self.tip = tip;
            self.generation = generation;
        }
    }

    /// The signed note for the tree as prepared: the key, then any cosigners.
    fn sign(&self) -> Result<String, String> {
        Checkpoint {
            origin: self.origin.clone(),
            size: self.tip.frontier.size(),
            root: self.tip.frontier.root(),
            extensions: Vec::new(),
        }
        .sign(&self.key)
        .map_err(|e| e.to_string())
        .and_then(|note| {
            self.cosigners
                .iter()
                .try_fold(note, |note, k| k.cosign(&note).map_err(|e| e.to_string()))
        })
        .map_err(|e| format!("signing the checkpoint failed: {e}"))
    }

    /// A checkpoint of its own for the entries not yet covered (idle, shutdown, recovery).
    fn prepare_signature(&mut self) -> Option<Prepared> {
        if !self.unsigned() {
            return None;
        }
        let before = self.tip.clone();
        let size = self.tip.frontier.size();
        match self.sign() {
            Ok(note) => {
                self.tip.signed = size;
                self.tip.stretch_start = None;
                Some(Prepared {
                    batch: CommitBatch {
                        checkpoint: Some((size, note)),
                        ..CommitBatch::default()
                    },
                    results: Vec::new(),
                    counted: Vec::new(),
                    before,
                    generation: self.generation,
                    size,
                })
            }
            Err(e) => {
                tracing::error!(error = %e, size, "could not sign a checkpoint; will retry");
                None
            }
        }
    }

    /// Whether a batch of `admitted` entries stamped `time` must sign a checkpoint under the
    /// cadence (see [`entry::CheckpointCadence`]).
    fn cadence_signs(&self, time: i64, admitted: u64) -> bool {
        let since = self.tip.frontier.size() - self.tip.signed;
        let interval = i64::try_from(self.cadence.interval.as_nanos()).unwrap_or(i64::MAX);
        interval == 0
            || since + admitted >= self.cadence.max_entries
            || self
                .tip
                .stretch_start
                .is_some_and(|start| time.saturating_sub(start) >= interval)
    }

    /// Prepares the removal of the values a redaction entry names (see [`LogWriter::redact`]):
    /// the entry and the removals in one write, with a checkpoint. Everything before it must be
    /// committed (the writer flushes first), since it reads the stored entries.
    fn redact(&mut self, entry: Entry) -> Result<(Prepared, KeyRanges), AppendError> {
        let refuse = |why: String| Err(AppendError::Redaction(why));
        if !crate::log::seal::is_sealed(self.format) {
            return refuse(
                "this log is format 1: its personal values are inside the leaves, so removing \
                 one would break verification (see docs/format.md)"
                    .into(),
            );
        }
        let Some(redaction) = entry.redaction.clone() else {
            return refuse("the entry names nothing to redact".into());
        };
        let size = self.tip.frontier.size();
        let storage = |e: StoreError| AppendError::Storage(e.to_string());
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
        }
        let (batch, ranges) = redaction_removals(&*self.store, &redaction).map_err(storage)?;
        let mut entry = entry;
        entry.kind = EntryKind::Redaction as i32;
        let prepared = self.prepare(vec![entry], batch, true, true);
        if let Some(Err(e)) = prepared.results.first() {
            return Err(e.clone());
        }
        Ok((prepared, ranges))
    }

    /// Sequences, encodes and hashes one batch on top of `batch` (which may already hold value
    /// rewrites and removals of a redaction), extending the prepared tip; signs a checkpoint for
    /// it when `force_sign` or the cadence says so. Nothing is written here: the committer writes
    /// the batch, and restores [`Prepared::before`] if that fails.
    fn prepare(
        &mut self,
        jobs: Vec<Entry>,
        mut batch: CommitBatch,
        force_sign: bool,
        redacting: bool,
    ) -> Prepared {
        let before = self.tip.clone();
        let mut results: Vec<Result<Receipt, AppendError>> = jobs
            .iter()
            .map(|e| admit(e, redacting).map(|()| Receipt::default()))
            .collect();
        let refused =
            |results: Vec<Result<Receipt, AppendError>>, msg: String, before: Tip| Prepared {
                batch: CommitBatch::default(),
                results: results
                    .into_iter()
                    .map(|r| r.and(Err(AppendError::Storage(msg.clone()))))
                    .collect(),
                counted: Vec::new(),
                size: before.frontier.size(),
                before,
                generation: self.generation,
            };
        // Salts (format 2) and entry seeds (format 3) of this batch derive from a random seed that
        // is never stored.
        let mut seed = [0u8; 32];
        if crate::log::seal::is_sealed(self.format)
            && let Err(e) = getrandom::fill(&mut seed)
        {
            return refused(
                results,
                format!("no randomness for the values' salts: {e}"),
                before,
            );
        }
        let admitted = results.iter().filter(|r| r.is_ok()).count() as u64;
        // Every entry of a batch has one time, which never goes backwards along the chain
        // whatever the wall clock does; the cadence is judged on it.
        let time = self.clock.now_nanos().max(self.tip.last_time);
        // A log's first commit always signs, so a folder never holds entries and no checkpoint.
        let sign = admitted > 0
            && (force_sign || self.tip.signed == 0 || self.cadence_signs(time, admitted));
        // Every admitted entry is stored; the last one says when a checkpoint follows it.
        let last_admitted = results.iter().rposition(Result::is_ok);
        let mut counted = Vec::with_capacity(jobs.len());
        for (i, mut e) in jobs.into_iter().enumerate() {
            let Some(Ok(receipt)) = results.get_mut(i) else {
                continue;
            };
            let seq = self.tip.frontier.size();
            e.format_version = entry::FORMAT_VERSION;
            e.seq = seq;
            e.time_unix_nanos = time;
            e.prev_leaf_hash = self.tip.last_leaf.0.to_vec();
            e.checkpoint_follows = sign && Some(i) == last_admitted;
            if !self.tip.cadence_written {
                e.checkpoint_cadence = Some(self.cadence.record());
                self.tip.cadence_written = true;
            }
            self.tip.stretch_start.get_or_insert(time);
            // Indexes are derived from the values as written, before they leave the leaf.
            batch.index.extend(index_records(&e));
            if crate::log::seal::is_sealed(self.format) {
                let values = crate::log::seal::seal(&mut e, &seed, self.format);
                batch
                    .values
                    .push((seq, prost::Message::encode_to_vec(&values)));
            }
            let bytes = entry::encode(&e);
            let leaf = leaf_hash(&bytes);
            self.tip.frontier.push(leaf, &mut batch.nodes);
            batch.entries.push((seq, bytes));
            self.tip.last_leaf = leaf;
            self.tip.last_time = time;
            counted.push((e.kind, e.operation));
            *receipt = Receipt {
                seq,
                leaf_hash: leaf,
                checkpoint_size: None,
            };
        }
        if sign {
            match self.sign() {
                Ok(note) => {
                    batch.checkpoint = Some((self.tip.frontier.size(), note));
                    self.tip.signed = self.tip.frontier.size();
                    self.tip.stretch_start = None;
                }
                Err(msg) => {
                    self.tip = before.clone();
                    return refused(results, msg, before);
                }
            }
        }
        Prepared {
            batch,
            results,
            counted,
            size: self.tip.frontier.size(),
            before,
            generation: self.generation,
        }
    }
}

/// Writes prepared batches, in order, and answers for them.
struct Committer {
    store: Arc<dyn Store>,
    stats: Arc<WriterStats>,
    publish: Option<watch::Sender<LatestCheckpoint>>,
    /// Where the size of the durable entries is announced.
    committed: Option<watch::Sender<u64>>,
    generation: u64,
    /// Where a failed commit leaves the tip to restore, for the preparing thread.
    rollback: Arc<Mutex<Option<(u64, Tip)>>>,
}

impl Committer {
    /// Commits one prepared batch; returns a result per job, in order. A batch prepared on top of
    /// one that failed is refused unwritten.
    fn commit(&mut self, mut p: Prepared) -> Vec<Result<Receipt, AppendError>> {
        if p.batch.entries.is_empty() && p.batch.checkpoint.is_none() {
            return p.results;
        }
        let stats = &self.stats;
        let outcome = if p.generation != self.generation {
            Err(
                "an earlier commit failed and this batch, prepared on top of it, was not written"
                    .to_owned(),
            )
        } else {
            let started = Instant::now();
            let r = self.store.commit(&p.batch).map_err(|e| e.to_string());
            stats
                .commit_nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            r
        };
        match outcome {
            Ok(()) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .entries
                    .fetch_add(p.batch.entries.len() as u64, Ordering::Relaxed);
                if !p.batch.entries.is_empty() {
                    stats
                        .last_batch_size
                        .store(p.batch.entries.len() as u64, Ordering::Relaxed);
                }
                stats.tree_size.store(p.size, Ordering::Relaxed);
                if let Some(tx) = &self.committed {
                    tx.send_replace(p.size);
                }
                for (kind, op) in p.counted {
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
                if let Some((size, note)) = p.batch.checkpoint.take() {
                    stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                    for r in p.results.iter_mut().flatten() {
                        r.checkpoint_size = Some(size);
                    }
                    if let Some(tx) = &self.publish {
                        tx.send_replace(Some((size, Arc::from(note))));
                    }
                }
                p.results
            }
            Err(msg) => {
                if p.generation == self.generation {
                    self.generation += 1;
                    if let Ok(mut g) = self.rollback.lock() {
                        *g = Some((self.generation, p.before));
                    }
                    stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %msg, entries = p.batch.entries.len(), "log commit failed; batch refused");
                    if let Ok(mut g) = stats.last_error.lock() {
                        *g = Some(msg.clone());
                    }
                }
                p.results
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
/// mark, the cadence on a run's first entry), at most, once it is sequenced.
const WRITER_FIELDS_BYTES: usize = 2 + 11 + 11 + 34 + 3 + 20;

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
    receipt: SignedReceipt,
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

/// What removes the values `redaction` names from the entries stored in `store`: their value
/// rows rewritten without them and the index records only they produced deleted (one atomic
/// write, with the redaction entry or after it), and the key ranges whose old bytes to purge.
/// Applying it again to a store it was applied to changes nothing. Used by the writer and by
/// the audit hub's copies.
pub fn redaction_removals(
    store: &dyn Store,
    redaction: &entry::Redaction,
) -> Result<(CommitBatch, KeyRanges), StoreError> {
    let mut work: std::collections::BTreeMap<u64, (Entry, EntryValues)> = Default::default();
    for t in &redaction.targets {
        for seq in t.from_seq..=t.to_seq {
            let (sealed, values) = match work.entry(seq) {
                std::collections::btree_map::Entry::Occupied(slot) => slot.into_mut(),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    let leaf = store
                        .entry(seq)?
                        .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} is missing")))?;
                    let sealed = entry::decode(&leaf)
                        .map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
                    let values = store.values(seq)?;
                    slot.insert((sealed, values))
                }
            };
            crate::log::seal::redact_values(sealed.format_version, values, |field, index| {
                redaction_covers(t, field, index)
            });
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
        let before = store
            .opened(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} is missing")))?;
        let after = crate::log::seal::unseal(&sealed, &values)
            .map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
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
    Ok((batch, ranges))
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
) -> Result<SignedReceipt, RotateError> {
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
    // verifies), which also signs a tail left unsigned by a crash; the handover batch is then
    // signed by the new key and cosigned by the old.
    let mut state = State::recover(store.clone(), old, &cfg)?;
    let mut committer = Committer {
        store,
        stats: Arc::new(WriterStats::default()),
        publish: None,
        committed: None,
        generation: 0,
        rollback: Arc::new(Mutex::new(None)),
    };
    sign_recovered_tail(&mut state, &mut committer)?;
    let old = std::mem::replace(&mut state.key, new);
    state.cosigners = vec![old];
    let prepared = state.prepare(vec![announce], CommitBatch::default(), true, false);
    let receipt = committer
        .commit(prepared)
        .pop()
        .unwrap_or(Err(AppendError::Closed))?
        .signed()?;
    Ok(receipt)
}

/// Signs, before anything is appended, the entries a crash left after the latest checkpoint
/// (already checked by [`State::recover`]).
fn sign_recovered_tail(state: &mut State, committer: &mut Committer) -> Result<(), OpenError> {
    let from = state.tip.signed;
    let Some(prepared) = state.prepare_signature() else {
        return Ok(());
    };
    let size = prepared.size;
    committer.commit(prepared);
    if let Some(e) = committer.stats.last_error() {
        return Err(OpenError::Inconsistent(format!(
            "the entries {from}..{size} after the latest checkpoint could not be signed: {e}"
        )));
    }
    tracing::info!(
        from,
        size,
        "signed a checkpoint for entries left unsigned by an unclean stop"
    );
    Ok(())
}

/// Key ranges whose old bytes a redaction purges: (from, to) per range.
pub type KeyRanges = Vec<(Vec<u8>, Vec<u8>)>;

/// What the writer thread hands the commit thread.
enum ToCommit {
    Batch(Box<Prepared>, Replies),
    /// Answered once everything handed over before it is committed (or refused).
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Who waits for a prepared batch.
enum Replies {
    Appends(Vec<oneshot::Sender<Result<Receipt, AppendError>>>),
    Redact(
        oneshot::Sender<Result<Redacted, AppendError>>,
        Vec<(Vec<u8>, Vec<u8>)>,
    ),
    Nobody,
}

/// The writer thread: gathers, prepares and signs batches and hands them to the commit thread,
/// which it starts and, at the end, waits for.
fn run(
    mut state: State,
    mut rx: mpsc::Receiver<Msg>,
    max_batch: usize,
    inline: bool,
    runtime: tokio::runtime::Runtime,
    committer: Committer,
) {
    let rollback = committer.rollback.clone();
    let stats = committer.stats.clone();
    // Rendezvous: batch N+1 is prepared while batch N is committed, and handed over after it.
    let (to_commit, commits) = std::sync::mpsc::sync_channel::<ToCommit>(0);
    // Batches (and flushes) handed over and not yet answered.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let committer = Arc::new(Mutex::new(committer));
    let commit_thread = {
        let (committer, in_flight) = (committer.clone(), in_flight.clone());
        std::thread::Builder::new()
            .name("s62-log-commit".into())
            .spawn(move || commit_loop(commits, &committer, &in_flight))
    };
    let commit_thread = match commit_thread {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "could not start the log's commit thread");
            return;
        }
    };
    let hand_over = |msg: ToCommit| {
        in_flight.fetch_add(1, Ordering::AcqRel);
        if to_commit.send(msg).is_err() {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            tracing::error!("the log's commit thread is gone");
        }
    };
    // Commits here when the commit thread has answered everything handed to it (so order
    // holds) and `idle` says the writer is idle: no append would be prepared beside this commit.
    let dispatch = |batch: Box<Prepared>, replies: Replies, idle: bool| {
        if inline && idle && in_flight.load(Ordering::Acquire) == 0 {
            stats.inline_batches.fetch_add(1, Ordering::Relaxed);
            commit_and_answer(&committer, *batch, replies);
        } else {
            hand_over(ToCommit::Batch(batch, replies));
        }
    };
    let flush = || {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        hand_over(ToCommit::Flush(done));
        let _ = wait.recv();
    };
    let mut closing = false;
    let mut entries: Vec<Entry> = Vec::new();
    let mut replies = Vec::new();
    let mut signs: Vec<bool> = Vec::new();
    loop {
        state.take_rollback(&rollback);
        // Idle with entries unsigned: sign them once no append comes for `idle`.
        let first = if state.unsigned() && !closing {
            let idle = state.cadence.idle;
            // The timer must be made inside the runtime it runs on.
            match runtime.block_on(async { tokio::time::timeout(idle, rx.recv()).await }) {
                Ok(msg) => msg,
                Err(_) => {
                    if let Some(p) = state.prepare_signature() {
                        dispatch(Box::new(p), Replies::Nobody, rx.is_empty());
                    }
                    continue;
                }
            }
        } else {
            // After Close the channel is closed: receiving drains what was queued, then ends.
            runtime.block_on(rx.recv())
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        let mut redaction = None;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Append(e, r, sign) => {
                    entries.push(*e);
                    replies.push(r);
                    signs.push(sign);
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
                next = runtime.block_on(rx.recv());
            } else if entries.len() < max_batch {
                next = rx.try_recv().ok();
            }
        }
        while !entries.is_empty() {
            state.take_rollback(&rollback);
            let n = entries.len().min(max_batch).min(state.room());
            let chunk: Vec<Entry> = entries.drain(..n).collect();
            let waiting: Vec<_> = replies.drain(..n).collect();
            let force = signs.drain(..n).any(|s| s);
            let prepared = state.prepare(chunk, CommitBatch::default(), force, false);
            // A lone entry with nothing behind it: under load, entries arrive while a batch
            // commits, and the commit thread lets them be prepared meanwhile.
            let idle = n == 1 && entries.is_empty() && rx.is_empty();
            dispatch(Box::new(prepared), Replies::Appends(waiting), idle);
        }
        if let Some((e, reply)) = redaction {
            // It reads stored entries: everything before it must be in the store.
            flush();
            state.take_rollback(&rollback);
            match state.redact(*e) {
                Ok((prepared, ranges)) => {
                    hand_over(ToCommit::Batch(
                        Box::new(prepared),
                        Replies::Redact(reply, ranges),
                    ));
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            }
        }
    }
    // Stopping: whatever is unsigned gets its checkpoint before the threads end.
    flush();
    state.take_rollback(&rollback);
    if let Some(p) = state.prepare_signature() {
        hand_over(ToCommit::Batch(Box::new(p), Replies::Nobody));
    }
    drop(to_commit);
    let _ = commit_thread.join();
}

/// The commit thread: writes batches in the order they were prepared and answers for them.
fn commit_loop(
    commits: std::sync::mpsc::Receiver<ToCommit>,
    committer: &Mutex<Committer>,
    in_flight: &AtomicUsize,
) {
    while let Ok(msg) = commits.recv() {
        match msg {
            ToCommit::Flush(done) => {
                let _ = done.send(());
            }
            ToCommit::Batch(prepared, replies) => commit_and_answer(committer, *prepared, replies),
        }
        in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Commits one prepared batch and answers whoever waits for it. A panic inside a commit ends the
/// thread it happened on, its waiting appends answered as closed, and nothing is committed after
/// it: the writer refuses every later append until restarted
/// (`tests::a_panic_inside_a_commit_acknowledges_nothing_and_every_later_append_is_refused`). The
/// poisoned lock is a second guard should the batch ever be committed from another thread.
fn commit_and_answer(committer: &Mutex<Committer>, prepared: Prepared, replies: Replies) {
    let Ok(mut committer) = committer.lock() else {
        tracing::error!("the log's committer failed earlier; batch refused");
        return;
    };
    let mut results = committer.commit(prepared);
    drop(committer);
    match replies {
        Replies::Appends(waiting) => {
            for (reply, result) in waiting.into_iter().zip(results) {
                // A producer that stopped waiting still has its entry logged.
                let _ = reply.send(result);
            }
        }
        Replies::Redact(reply, ranges) => {
            let result = results
                .pop()
                .unwrap_or(Err(AppendError::Closed))
                .and_then(Receipt::signed)
                .map(|receipt| Redacted { receipt, ranges });
            let _ = reply.send(result);
        }
        Replies::Nobody => {}
    }
}

mod backfill;

#[cfg(test)]
mod tests;

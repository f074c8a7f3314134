//! Verifies one monitored log as its replicated messages arrive, and keeps what verified as a
//! log folder of the same layout as the sidecar's (so `s62 verify`, the query service and the
//! indexes work on it unchanged).
//!
//! An entry must follow the last one (seq, `prev_leaf_hash`), decode, and carry value rows that
//! match its commitments (the same `open_leaf` the query service uses); a handover entry must name
//! a configured key. A checkpoint must carry the log's origin, verify with a configured key inside
//! that key's epoch (`KeyEpochs`, as `s62 verify` derives them), cover no more entries than the
//! stream delivered, and have the root of those entries. Verified entries wait in memory until a
//! checkpoint covers them; then they, their tree nodes, index records, value rows and the
//! checkpoint are staged, and [`Monitor::flush`] writes everything staged (many checkpoints'
//! worth) in one commit: the caller flushes when the stream has nothing more buffered or
//! [`Monitor::staged`] grows large, so a synced write is paid per burst, not per checkpoint.
//! Nothing is stored that a checkpoint did not cover and verify. A redaction entry, once stored,
//! is applied to the copy as the sidecar applied it to its log (`redaction_removals`): its values
//! and their index records leave the copy too, and the copy still verifies.
//!
//! With witnesses configured for the log, a cosigned note ([`Monitor::cosigned`]) must be a
//! checkpoint the hub verified, byte for byte, followed by cosignature lines; every line from a
//! configured witness must verify (c2sp.org/tlog-cosignature). The note then replaces the stored
//! one (lines are only ever added), so the copy's checkpoints carry the cosignatures, and
//! [`Monitor::witnessed`] is the largest size a quorum of distinct witnesses cosigned.
//!
//! A problem is a [`Finding`]. One that leaves the log's history in doubt (a fork, a gap, a bad
//! log signature, tampered entries) marks the log broken and nothing more of it is taken in
//! (what follows cannot be verified); one about a cosigned note only rejects that note.
//!
//! Pure: no network, no clock, no tokio; reads and writes through the [`Store`] trait.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ingest::redaction_removals;
use crate::log::checkpoint::{Checkpoint, open_checkpoint};
use crate::log::cosignature::{
    CosignerVerifier, add_signature_lines, distinct_witnesses, verify_cosignatures,
};
use crate::log::entry;
use crate::log::epoch::{KeyEpochs, LogKeys, handover_key};
use crate::log::hash::{Hash, leaf_hash};
use crate::log::index::{IndexFamily, IndexRecord, index_records};
use crate::log::merkle::{Frontier, NodeId, NodeSource, peak_ids, root_at};
use crate::log::note::parse_note;
use crate::log::store::{
    CommitBatch, LogStore, Store, StoreError, StoreNodes, index_families_record, unseal_leaf,
    values_key,
};
use crate::replicate::ReplicatedEntry;

/// What an alert says: a rule label, the seq (or tree size) concerned, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// One of [`RULES`].
    pub rule: &'static str,
    /// The entry seq (for checkpoints: the tree size) the finding is about.
    pub seq: u64,
    pub detail: String,
}

pub const FORK: &str = "replication_fork";
pub const GAP: &str = "replication_gap";
pub const BAD_SIGNATURE: &str = "replication_bad_signature";
pub const BEHIND: &str = "replication_behind_checkpoint";
pub const TAMPERED: &str = "replication_tampered";
/// A cosignature line from a configured witness that does not verify.
pub const BAD_COSIGNATURE: &str = "replication_bad_cosignature";
/// No quorum of witnesses cosigned a checkpoint the hub verified, for longer than allowed
/// (raised by the hub, which holds the clock).
pub const UNWITNESSED: &str = "replication_unwitnessed";

/// Every rule the hub raises.
pub const RULES: [&str; 7] = [
    FORK,
    GAP,
    BAD_SIGNATURE,
    BEHIND,
    TAMPERED,
    BAD_COSIGNATURE,
    UNWITNESSED,
];

/// Most entries held while an earlier one is missing (a publisher's window holds 1,024).
pub const MAX_HELD: usize = 4096;

// What a publisher's window can leave out of order must never look like a gap.
const _: () = assert!(crate::replicate::WINDOW * crate::replicate::wire::BATCH_ENTRIES < MAX_HELD);

/// Why a message could not be taken in.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The stream holds something the log cannot have: an alert.
    #[error("{}: {} (at {})", .0.rule, .0.detail, .0.seq)]
    Finding(Finding),
    /// The hub's own copy could not be read or written: retried, not an alert.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn finding(rule: &'static str, seq: u64, detail: impl Into<String>) -> MonitorError {
    MonitorError::Finding(Finding {
        rule,
        seq,
        detail: detail.into(),
    })
}

/// A fork seen as a second entry at a seq already taken in.
fn second_entry(seq: u64, origin: &str) -> MonitorError {
    finding(
        FORK,
        seq,
        format!("the stream holds a second, different entry {seq} of {origin}"),
    )
}

/// An entry verified and waiting for a checkpoint.
struct Pending {
    seq: u64,
    leaf: Vec<u8>,
    values: Vec<u8>,
    nodes: Vec<(NodeId, Hash)>,
    index: Vec<IndexRecord>,
    /// What it removes, when it is a redaction entry.
    redaction: Option<entry::Redaction>,
}

/// One monitored log.
pub struct Monitor {
    origin: String,
    keys: LogKeys,
    epochs: KeyEpochs,
    store: Arc<dyn Store>,
    frontier: Frontier,
    last_leaf: Hash,
    /// Entries in the hub's copy (all covered by its latest checkpoint).
    committed: u64,
    /// Entries from `committed` on that verified checkpoints cover, with those checkpoints, not
    /// yet written.
    staged: CommitBatch,
    /// Entries after the staged ones, verified but waiting for a checkpoint.
    pending: Vec<Pending>,
    /// Tree nodes of the staged and pending entries.
    pending_nodes: NodeMap,
    /// Checkpoint notes whose signatures were checked ahead, in batches.
    notes: NoteCheck,
    /// The commit being written behind the monitor ([`Monitor::flush_behind`]): entries from
    /// `committed` on, before the staged ones, with the outcome to come.
    writing: Option<Writing>,
    /// Redaction entries stored (or staged) whose removals are not yet applied to the copy.
    redactions: Vec<entry::Redaction>,
    broken: Option<Finding>,
    /// Entries that arrived ahead of the next one expected (a publish that failed and was
    /// re-sent after later ones of its pipeline were stored), by seq, until it arrives.
    held: std::collections::BTreeMap<u64, ReplicatedEntry>,
    /// The witnesses whose cosignatures are checked, and how many distinct ones make a quorum.
    witnesses: Vec<CosignerVerifier>,
    quorum: usize,
    /// The largest checkpoint size a quorum cosigned (as far as this monitor has seen).
    witnessed: u64,
}

/// Stored nodes with the pending ones on top.
struct Nodes<'a> {
    store: &'a dyn Store,
    pending: &'a NodeMap,
}

/// Tree nodes by id. The ids are positions in the log, which no one chooses, so they are hashed
/// with a multiply and rotate instead of SipHash (2-3% of the hub's time in a profile).
type NodeMap = HashMap<NodeId, Hash, std::hash::BuildHasherDefault<NodeHasher>>;

#[derive(Default)]
struct NodeHasher(u64);

impl std::hash::Hasher for NodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl NodeSource for Nodes<'_> {
    type Error = StoreError;
    fn node(&self, id: NodeId) -> Result<Hash, StoreError> {
        match self.pending.get(&id) {
            Some(h) => Ok(*h),
            None => StoreNodes(self.store).node(id),
        }
    }
}

/// Checks the signatures of checkpoint notes before [`Monitor::checkpoint`] takes them in, many
/// at a time, on whatever thread reads the stream ahead of the monitor
/// ([`crate::log::checkpoint::open_checkpoints`]: Ed25519 batch verification, 18 µs a signature
/// in the hub's profile against 36 µs checked alone, and the cofactored equation, as `s62
/// verify` uses by default). The monitor then takes a note's checked signatures from here
/// instead of checking them again; everything else about the checkpoint (key epochs, size,
/// root) it checks as before, in stream order. Only notes that verified are kept: one that did
/// not is checked again by the monitor alone, which raises the finding it always did.
#[derive(Clone)]
pub struct NoteCheck {
    origin: String,
    keys: LogKeys,
    /// Verified notes: the checkpoint and which of `keys` signed it.
    checked: Arc<std::sync::Mutex<HashMap<String, CheckedNote>>>,
}

/// A checkpoint note that verified, and which of the keys signed it.
type CheckedNote = (crate::log::checkpoint::Checkpoint, Vec<usize>);
type Opened<'k> = (
    crate::log::checkpoint::Checkpoint,
    Vec<&'k crate::log::note::VerifierKey>,
);

/// Notes held checked at most (more are left for the monitor to check itself).
const NOTES_CHECKED_AHEAD: usize = 8192;

impl NoteCheck {
    fn new(origin: &str, keys: &LogKeys) -> NoteCheck {
        NoteCheck {
            origin: origin.to_owned(),
            keys: keys.clone(),
            checked: Arc::default(),
        }
    }

    /// Checks the signatures of `notes` together and keeps those that verified for the monitor.
    pub fn check(&self, notes: &[&str]) {
        if notes.is_empty() {
            return;
        }
        let known = self.keys.keys();
        let opened = crate::log::checkpoint::open_checkpoints(notes, known, Some(&self.origin));
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        for (note, opened) in notes.iter().zip(opened) {
            if checked.len() >= NOTES_CHECKED_AHEAD {
                break;
            }
            if let Ok((cp, signed_by)) = opened {
                let signers = signed_by
                    .iter()
                    .filter_map(|k| known.iter().position(|c| std::ptr::eq(c, *k)))
                    .collect();
                checked.insert((*note).to_owned(), (cp, signers));
            }
        }
    }

    /// `note` opened as [`open_checkpoint`] would: from what [`NoteCheck::check`] verified, or
    /// checked now.
    fn open<'k>(
        &self,
        note: &str,
        known: &'k [crate::log::note::VerifierKey],
    ) -> Result<Opened<'k>, crate::log::checkpoint::CheckpointError> {
        let ahead = (self.checked.lock().unwrap_or_else(|e| e.into_inner())).remove(note);
        match ahead {
            Some((cp, signers)) => Ok((cp, signers.iter().filter_map(|i| known.get(*i)).collect())),
            None => open_checkpoint(note, known, Some(&self.origin)),
        }
    }
}

/// A commit handed out by [`Monitor::flush_behind`], to be written on another thread while the
/// monitor goes on; its outcome goes back to the monitor ([`Monitor::written`]). Dropped
/// unwritten, it counts as failed.
pub struct Commit {
    store: Arc<dyn Store>,
    batch: Arc<CommitBatch>,
    done: std::sync::mpsc::SyncSender<Result<(), StoreError>>,
}

impl Commit {
    /// Writes the batch (one synced commit) and reports the outcome to the monitor.
    pub fn write(self) {
        let Commit { store, batch, done } = self;
        let outcome = store.commit(&batch);
        // Let go of the batch first, so the monitor holds the only one and need not copy it.
        drop(batch);
        let _ = done.send(outcome);
    }
}

struct Writing {
    batch: Arc<CommitBatch>,
    /// (Behind a mutex only so the monitor stays `Sync`.)
    done: std::sync::Mutex<std::sync::mpsc::Receiver<Result<(), StoreError>>>,
}

impl Monitor {
    /// Opens the hub's copy of `origin` in `store` (empty for a new one) and rebuilds the state
    /// to continue from it: its tree, last leaf and key epochs.
    pub fn open(origin: &str, keys: LogKeys, store: Arc<dyn Store>) -> Result<Monitor, StoreError> {
        let first = keys
            .first_key()
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("no verifier key configured".into()))?;
        let mut epochs = KeyEpochs::starting_with(first);
        // The copy holds only what verified, so its latest checkpoint covers every entry.
        let committed = store.entry_count()?;
        if committed == 0 {
            store.write(&[index_families_record(&IndexFamily::ALL)])?;
        }
        let peaks = peak_ids(committed)
            .into_iter()
            .map(|id| StoreNodes(&*store).node(id))
            .collect::<Result<Vec<_>, _>>()?;
        let frontier = Frontier::from_parts(committed, peaks)
            .map_err(|e| StoreError::Corrupt(format!("the hub's copy of {origin}: {e}")))?;
        let last_leaf = match committed.checked_sub(1) {
            None => Hash::GENESIS,
            Some(seq) => StoreNodes(&*store).node(NodeId {
                level: 0,
                index: seq,
            })?,
        };
        // Every redaction the copy holds is applied again (a hub stopped between storing one
        // and applying it); one already applied changes nothing and writes nothing.
        let mut redactions = Vec::new();
        for seq in store.index_seqs(IndexFamily::Kind, "redaction", 0, usize::MAX)? {
            if let Some(r) = store.opened(seq)?.and_then(|e| e.entry.redaction) {
                redactions.push(r);
            }
        }
        for seq in store.index_seqs(IndexFamily::Kind, "admin", 0, usize::MAX)? {
            if let Some(e) = store.opened(seq)?
                && let Some(Ok(key)) = handover_key(&e.entry)
                && keys.keys().contains(&key)
            {
                let _ = epochs.hand_over(seq + 1, key);
            }
        }
        let notes = NoteCheck::new(origin, &keys);
        Ok(Monitor {
            origin: origin.to_owned(),
            keys,
            epochs,
            store,
            frontier,
            last_leaf,
            committed,
            staged: CommitBatch::default(),
            pending: Vec::new(),
            pending_nodes: NodeMap::default(),
            notes,
            writing: None,
            redactions,
            broken: None,
            held: std::collections::BTreeMap::new(),
            witnesses: Vec::new(),
            quorum: 1,
            witnessed: 0,
        })
    }

    /// Checks the cosignatures of `witnesses` on cosigned notes, `quorum` distinct ones (by key
    /// name) making a checkpoint witnessed. [`Monitor::witnessed`] starts from the copy's latest
    /// checkpoint: its size if a quorum cosigned it, else 0 until a cosigned note arrives.
    pub fn with_witnesses(
        mut self,
        witnesses: Vec<CosignerVerifier>,
        quorum: usize,
    ) -> Result<Monitor, StoreError> {
        self.witnesses = witnesses;
        self.quorum = quorum.max(1);
        if let Some((size, note)) = self.store.latest_checkpoint()?
            && self.quorum_on(&note)
        {
            self.witnessed = size;
        }
        Ok(self)
    }

    /// Whether a quorum of configured witnesses validly cosigned `note`.
    fn quorum_on(&self, note: &str) -> bool {
        !self.witnesses.is_empty()
            && parse_note(note)
                .ok()
                .and_then(|n| verify_cosignatures(&n, &self.witnesses).ok())
                .is_some_and(|found| distinct_witnesses(&found) >= self.quorum)
    }

    /// The largest checkpoint size a quorum of the configured witnesses cosigned (0: none yet,
    /// or no witnesses configured).
    pub fn witnessed(&self) -> u64 {
        self.witnessed
    }

    /// Whether witnesses are configured for this log.
    pub fn is_witnessed(&self) -> bool {
        !self.witnesses.is_empty()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Entries verified and stored with a checkpoint.
    pub fn verified(&self) -> u64 {
        self.committed
    }

    /// Entries verified and covered by a checkpoint, waiting for [`Monitor::flush`].
    pub fn staged(&self) -> u64 {
        self.staged.entries.len() as u64
    }

    /// Entries covered by a verified checkpoint, stored, being written or staged.
    fn covered(&self) -> u64 {
        self.committed + self.writing_len() + self.staged()
    }

    /// Entries in the commit being written.
    fn writing_len(&self) -> u64 {
        self.writing
            .as_ref()
            .map_or(0, |w| w.batch.entries.len() as u64)
    }

    /// Whether a commit is being written behind the monitor.
    pub fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Hands what is staged out as one commit to write on another thread, when something is
    /// staged and no commit is being written; the monitor takes in more meanwhile (staged
    /// after it), and [`Monitor::written`] takes its outcome. Its entries count as verified
    /// only once it is written.
    pub fn flush_behind(&mut self) -> Option<Commit> {
        if self.writing.is_some() || self.staged.checkpoint.is_none() {
            return None;
        }
        let batch = Arc::new(std::mem::take(&mut self.staged));
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        self.writing = Some(Writing {
            batch: batch.clone(),
            done: std::sync::Mutex::new(outcome),
        });
        Some(Commit {
            store: self.store.clone(),
            batch,
            done,
        })
    }

    /// The outcome of the commit being written, once there is one (waiting for it with `wait`):
    /// written, its entries are verified and the redactions they hold applied; failed (or never
    /// written), everything it held is staged again, before what was staged since, for the next
    /// flush. `None` while it is still being written, or when none is.
    pub fn written(&mut self, wait: bool) -> Option<Result<(), StoreError>> {
        let w = self.writing.as_ref()?;
        let done = w.done.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = if wait {
            done.recv().ok()
        } else {
            match done.try_recv() {
                Err(std::sync::mpsc::TryRecvError::Empty) => return None,
                r => r.ok(),
            }
        };
        drop(done);
        let w = self.writing.take()?;
        let outcome = outcome
            .unwrap_or_else(|| Err(StoreError::Backend("the commit was never written".into())));
        let batch = Arc::try_unwrap(w.batch).unwrap_or_else(|b| (*b).clone());
        if let Err(e) = outcome {
            self.restage(batch);
            return Some(Err(e));
        }
        self.stored(&batch);
        Some(self.apply_redactions())
    }

    /// A batch whose commit failed goes back before what was staged since.
    fn restage(&mut self, mut batch: CommitBatch) {
        let later = std::mem::take(&mut self.staged);
        if let Some(cp) = later.checkpoint {
            batch
                .earlier_checkpoints
                .extend(batch.checkpoint.replace(cp));
        }
        batch.earlier_checkpoints.extend(later.earlier_checkpoints);
        batch.entries.extend(later.entries);
        batch.nodes.extend(later.nodes);
        batch.index.extend(later.index);
        batch.values.extend(later.values);
        batch.deletes.extend(later.deletes);
        self.staged = batch;
    }

    /// A batch now durable: its nodes are read from the store from now on.
    fn stored(&mut self, batch: &CommitBatch) {
        for (id, _) in &batch.nodes {
            self.pending_nodes.remove(id);
        }
        self.committed += batch.entries.len() as u64;
    }

    /// Writes everything staged in one commit (after waiting for the commit being written, if
    /// any), then applies the redaction entries it held to the copy (the erasure duty follows
    /// the values to the hub); returns whether entries were written. On failure what is not
    /// done stays to do, for the next flush.
    pub fn flush(&mut self) -> Result<bool, StoreError> {
        let behind = self.written(true).transpose()?.is_some();
        let wrote = self.staged.checkpoint.is_some();
        if wrote {
            self.store.commit(&self.staged)?;
            let batch = std::mem::take(&mut self.staged);
            self.stored(&batch);
        }
        self.apply_redactions()?;
        Ok(wrote || behind)
    }

    /// Removes from the copy, in order, the values each stored redaction entry names (the
    /// writer's own removal plan, `redaction_removals`), and purges their old bytes.
    fn apply_redactions(&mut self) -> Result<(), StoreError> {
        while let Some(r) = self.redactions.first() {
            if r.targets.iter().any(|t| t.to_seq >= self.committed) {
                break; // still staged: applied by the flush that stores it
            }
            let (batch, ranges) = redaction_removals(&*self.store, r)?;
            let mut changes = !batch.deletes.is_empty();
            for (seq, row) in &batch.values {
                changes |= self.store.get(&values_key(*seq))?.unwrap_or_default() != *row;
            }
            if changes {
                self.store.commit(&batch)?;
                // The values are gone from every read now; purging their old bytes from the
                // files is best effort (compaction removes them in time anyway).
                let _ = self.store.purge(&ranges);
            }
            self.redactions.remove(0);
        }
        Ok(())
    }

    /// The finding that stopped this log, if any.
    pub fn broken(&self) -> Option<&Finding> {
        self.broken.as_ref()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Where checkpoint notes can be checked ahead of [`Monitor::checkpoint`], in batches.
    pub fn note_check(&self) -> NoteCheck {
        self.notes.clone()
    }

    fn fail<T>(&mut self, e: MonitorError) -> Result<T, MonitorError> {
        if let MonitorError::Finding(f) = &e {
            self.broken = Some(f.clone());
        }
        Err(e)
    }

    /// Takes in one replicated entry. A re-delivery of an entry already taken in is ignored.
    ///
    /// An entry ahead of the next one expected is held (at most [`MAX_HELD`]) until the missing
    /// ones arrive: the publisher pipelines, so when one publish fails and later ones of its
    /// window are stored, the re-sent ones follow them in the stream. Entries missing for good
    /// are a gap once a checkpoint covers them, or once too many are held.
    pub fn entry(&mut self, m: ReplicatedEntry) -> Result<(), MonitorError> {
        if self.broken.is_some() {
            return Ok(());
        }
        let next = self.covered() + self.pending.len() as u64;
        if m.seq > next {
            if let Some(held) = self.held.get(&m.seq) {
                if *held == m {
                    return Ok(());
                }
                return self.fail(second_entry(m.seq, &self.origin));
            }
            if self.held.len() < MAX_HELD {
                self.held.insert(m.seq, m);
                return Ok(());
            }
            let first = self.held.keys().next().copied().unwrap_or(m.seq);
            return self.fail(finding(
                GAP,
                next,
                format!(
                    "entries {next} to {} of {} are missing from the stream ({MAX_HELD} later \
                     ones arrived meanwhile)",
                    first - 1,
                    self.origin
                ),
            ));
        }
        self.take(m)?;
        // The entries held for this one follow it.
        loop {
            let next = self.covered() + self.pending.len() as u64;
            match self.held.remove(&next) {
                Some(m) => self.take(m)?,
                None => return Ok(()),
            }
        }
    }

    /// Takes in an entry at or below the next seq expected.
    fn take(&mut self, m: ReplicatedEntry) -> Result<(), MonitorError> {
        let next = self.covered() + self.pending.len() as u64;
        if m.seq < next {
            let known = if m.seq >= self.covered() {
                self.pending
                    .get((m.seq - self.covered()) as usize)
                    .map(|p| p.leaf.clone())
            } else if m.seq >= self.committed {
                let writing = self.writing.iter().flat_map(|w| &w.batch.entries);
                writing
                    .chain(&self.staged.entries)
                    .nth((m.seq - self.committed) as usize)
                    .map(|(_, leaf)| leaf.clone())
            } else {
                self.store.entry(m.seq)?
            };
            if known.as_deref() == Some(m.leaf.as_slice()) {
                return Ok(());
            }
            return self.fail(second_entry(m.seq, &self.origin));
        }
        let seq = m.seq;
        let sealed = match entry::decode(&m.leaf) {
            Ok(e) => e,
            Err(e) => {
                return self.fail(finding(
                    TAMPERED,
                    seq,
                    format!("entry {seq} does not decode: {e}"),
                ));
            }
        };
        if sealed.seq != seq {
            return self.fail(finding(
                TAMPERED,
                seq,
                format!("entry {seq} says it is entry {}", sealed.seq),
            ));
        }
        if sealed.prev_leaf_hash.as_slice() != self.last_leaf.as_bytes() {
            return self.fail(finding(
                FORK,
                seq,
                format!(
                    "entry {seq} does not link to entry {} the hub verified (another history)",
                    seq.wrapping_sub(1)
                ),
            ));
        }
        if !crate::log::seal::is_sealed(sealed.format_version) && !m.values.is_empty() {
            return self.fail(finding(
                TAMPERED,
                seq,
                format!("entry {seq} is format 1 but carries a value row"),
            ));
        }
        let opened = match unseal_leaf(seq, &sealed, &m.values) {
            Ok(o) => o,
            Err(e) => {
                return self.fail(finding(
                    TAMPERED,
                    seq,
                    format!("entry {seq}'s values do not match its commitments: {e}"),
                ));
            }
        };
        if let Some(key) = handover_key(&opened.entry) {
            let handed = match key {
                Ok(k) if self.keys.keys().contains(&k) => {
                    self.epochs.hand_over(seq + 1, k).map_err(|e| e.to_string())
                }
                Ok(k) => Err(format!(
                    "it hands the log over to {}, a key not configured for it",
                    k.to_vkey()
                )),
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = handed {
                return self.fail(finding(
                    BAD_SIGNATURE,
                    seq + 1,
                    format!("entry {seq}: {why}"),
                ));
            }
        }
        let leaf = leaf_hash(&m.leaf);
        let mut nodes = Vec::with_capacity(4);
        self.frontier.push(leaf, &mut nodes);
        self.pending_nodes.extend(nodes.iter().copied());
        self.last_leaf = leaf;
        let redaction = (opened.entry.kind == entry::EntryKind::Redaction as i32)
            .then(|| opened.entry.redaction.clone())
            .flatten();
        self.pending.push(Pending {
            seq,
            redaction,
            index: index_records(&opened.entry),
            leaf: m.leaf,
            values: m.values,
            nodes,
        });
        Ok(())
    }

    /// Takes in one signed checkpoint note; when it covers pending entries, they are staged with
    /// it, to be stored by the next [`Monitor::flush`]. Returns whether anything was staged.
    pub fn checkpoint(&mut self, note: &str) -> Result<bool, MonitorError> {
        if self.broken.is_some() {
            return Ok(false);
        }
        let (cp, signed_by) = match self.notes.open(note, self.keys.keys()) {
            Ok(x) => x,
            Err(e) => {
                return self.fail(finding(
                    BAD_SIGNATURE,
                    0,
                    format!("a checkpoint of {} does not verify: {e}", self.origin),
                ));
            }
        };
        if let Err(e) = self.epochs.check_signers(cp.size, &signed_by) {
            return self.fail(finding(BAD_SIGNATURE, cp.size, e.to_string()));
        }
        let have = self.covered() + self.pending.len() as u64;
        if cp.size > have && !self.held.is_empty() {
            // The publisher sends a checkpoint only once every entry below it is acknowledged,
            // so every one of them is in the stream before it: what is still missing is lost.
            let first = self.held.keys().next().copied().unwrap_or(have);
            return self.fail(finding(
                GAP,
                have,
                format!(
                    "entries {have} to {} of {} are missing from the stream, though a checkpoint \
                     of size {} covers them",
                    first - 1,
                    self.origin,
                    cp.size
                ),
            ));
        }
        if cp.size > have {
            return self.fail(finding(
                BEHIND,
                cp.size,
                format!(
                    "a checkpoint of size {} is signed but the stream delivered only {have} entries of {}",
                    cp.size, self.origin
                ),
            ));
        }
        let root = root_at(
            &Nodes {
                store: &*self.store,
                pending: &self.pending_nodes,
            },
            cp.size,
        )
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if root != cp.root {
            return self.fail(finding(
                FORK,
                cp.size,
                format!(
                    "the checkpoint of size {} has another root than the entries the stream delivered",
                    cp.size
                ),
            ));
        }
        if cp.size <= self.covered() {
            return Ok(false);
        }
        let take = (cp.size - self.covered()) as usize;
        let batch = &mut self.staged;
        for p in self.pending.drain(..take) {
            if !p.values.is_empty() {
                batch.values.push((p.seq, p.values));
            }
            batch.entries.push((p.seq, p.leaf));
            batch.nodes.extend(p.nodes);
            batch.index.extend(p.index);
            self.redactions.extend(p.redaction);
        }
        if let Some(earlier) = batch.checkpoint.replace((cp.size, note.to_owned())) {
            batch.earlier_checkpoints.push(earlier);
        }
        Ok(true)
    }

    /// The note the hub verified for checkpoint `size`, staged or stored.
    fn verified_note(&self, size: u64) -> Result<Option<String>, StoreError> {
        if size > self.covered() {
            return Ok(None);
        }
        if size <= self.committed {
            return self.store.checkpoint(size);
        }
        let staged = self.staged.checkpoint.iter();
        Ok(staged
            .chain(&self.staged.earlier_checkpoints)
            .find(|(s, _)| *s == size)
            .map(|(_, n)| n.clone()))
    }

    /// Takes in a cosigned note (the `cosignatures` subject): a checkpoint the hub verified,
    /// followed by cosignature lines. Its text and the log's signature lines must be the note the
    /// hub verified for that size, byte for byte; every line from a configured witness must
    /// verify. Then the verified note gains those lines (staged, or stored at once); lines of
    /// witnesses not configured are not kept. Returns whether a quorum of witnesses cosigned it.
    /// A finding about the note alone rejects the note and leaves the log followed; a second
    /// text signed by the log's key for one size is a fork. Without witnesses configured for the
    /// log, cosigned notes are not looked at.
    pub fn cosigned(&mut self, note: &str) -> Result<bool, MonitorError> {
        if self.broken.is_some() || self.witnesses.is_empty() {
            return Ok(false);
        }
        let origin = self.origin.clone();
        let parsed = parse_note(note).ok().and_then(|n| {
            let cp = Checkpoint::parse_text(&n.text).ok()?;
            Some((n, cp))
        });
        let Some((parsed, cp)) = parsed else {
            return Err(finding(
                BAD_COSIGNATURE,
                0,
                format!("a cosigned note of {origin} is not a checkpoint note"),
            ));
        };
        let size = cp.size;
        if let Err(e) = open_checkpoint(note, self.keys.keys(), Some(&origin)) {
            return Err(finding(
                BAD_SIGNATURE,
                size,
                format!("a cosigned checkpoint of size {size} of {origin} does not verify: {e}"),
            ));
        }
        // A checkpoint in the commit being written behind is read and updated once that is
        // written (or, failed, staged again).
        if size > self.committed
            && size <= self.committed + self.writing_len()
            && let Some(Err(e)) = self.written(true)
        {
            return Err(e.into());
        }
        let Some(verified) = self.verified_note(size)? else {
            return Err(finding(
                BEHIND,
                size,
                format!(
                    "a cosigned checkpoint of size {size} of {origin} arrived, but the stream \
                     delivered no checkpoint of that size before it"
                ),
            ));
        };
        if !note.starts_with(&verified) {
            let same_text = parse_note(&verified).is_ok_and(|v| v.text == parsed.text);
            if same_text {
                return Err(finding(
                    TAMPERED,
                    size,
                    format!(
                        "a cosigned checkpoint of size {size} of {origin} drops or changes a \
                         signature line of the checkpoint the hub verified"
                    ),
                ));
            }
            return self.fail(finding(
                FORK,
                size,
                format!(
                    "the log's key signed a second, different checkpoint of size {size} of \
                     {origin} (published with cosignatures)"
                ),
            ));
        }
        let found = match verify_cosignatures(&parsed, &self.witnesses) {
            Ok(found) => found,
            Err(e) => {
                return Err(finding(
                    BAD_COSIGNATURE,
                    size,
                    format!("the checkpoint of size {size} of {origin}: {e}"),
                ));
            }
        };
        let lines: Vec<_> = found
            .iter()
            .map(|c| parsed.signatures[c.line].clone())
            .collect();
        let updated = add_signature_lines(&verified, &lines)
            .map_err(|e| StoreError::Corrupt(format!("checkpoint {size}: {e}")))?;
        if updated != verified {
            if size <= self.committed {
                self.store
                    .replace_checkpoint_note(size, &updated)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            } else {
                let staged = self.staged.checkpoint.iter_mut();
                if let Some((_, n)) = staged
                    .chain(self.staged.earlier_checkpoints.iter_mut())
                    .find(|(s, _)| *s == size)
                {
                    *n = updated;
                }
            }
        }
        let quorum = distinct_witnesses(&found) >= self.quorum;
        if quorum {
            self.witnessed = self.witnessed.max(size);
        }
        Ok(quorum)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ingest::{LogWriter, WriterConfig};
    use crate::log::checkpoint::Checkpoint;
    use crate::log::entry::admin_entry;
    use crate::log::note::SignerKey;
    use crate::log::store::memory::MemoryStore;
    use crate::verify::{VerifyOptions, verify_store};

    pub(crate) const ORIGIN: &str = "monitor.s62.test/log";

    fn key() -> SignerKey {
        SignerKey::from_seed(ORIGIN, [5u8; 32]).expect("key")
    }

    pub(crate) fn keys() -> LogKeys {
        LogKeys::parse(&key().verifier().to_vkey()).expect("keys")
    }

    /// A real log of `n` entries in batches of one: (entry messages, checkpoint notes by size).
    pub(crate) async fn source(n: u64) -> (Vec<ReplicatedEntry>, Vec<String>) {
        let store = Arc::new(MemoryStore::new());
        let (writer, task) =
            LogWriter::start(store.clone(), key(), WriterConfig::new(ORIGIN)).expect("writer");
        for i in 0..n {
            writer
                .append(admin_entry("test", &format!("entry {i}")))
                .await
                .expect("append");
        }
        task.shutdown_async().await;
        stream_of(&store)
    }

    fn monitor() -> Monitor {
        Monitor::open(ORIGIN, keys(), Arc::new(MemoryStore::new())).expect("open")
    }

    fn rule(e: Result<impl std::fmt::Debug, MonitorError>) -> &'static str {
        match e {
            Err(MonitorError::Finding(f)) => f.rule,
            other => panic!("expected a finding, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_intact_stream_is_stored_as_a_log_that_verifies_and_redeliveries_are_ignored() {
        let (entries, notes) = source(6).await;
        let mut m = monitor();
        for e in &entries[..4] {
            m.entry(e.clone()).expect("entry");
        }
        for n in &notes[..4] {
            m.checkpoint(n).expect("checkpoint");
        }
        assert_eq!(
            (m.verified(), m.staged()),
            (0, 4),
            "staged, not yet written"
        );
        assert_eq!(m.store().entry_count().expect("count"), 0);
        assert!(m.flush().expect("flush"), "one commit for four checkpoints");
        assert_eq!((m.verified(), m.staged()), (4, 0));
        // A consumer restart delivers some again.
        m.entry(entries[2].clone()).expect("re-delivery");
        m.checkpoint(&notes[2]).expect("re-delivered checkpoint");
        for e in &entries[4..] {
            m.entry(e.clone()).expect("entry");
        }
        // Both entries arrive before both checkpoints (as the publisher sends them): the first
        // checkpoint's root is computed over part of what is pending.
        m.checkpoint(&notes[4])
            .expect("checkpoint 5 over entries pending to 6");
        assert_eq!(m.staged(), 1);
        // A re-delivery of a staged entry is recognised too.
        m.entry(entries[4].clone()).expect("staged re-delivery");
        m.checkpoint(&notes[5]).expect("checkpoint 6");
        assert!(m.flush().expect("flush"));
        assert!(!m.flush().expect("flush"), "nothing left to write");
        assert_eq!(m.verified(), 6);
        assert_eq!(
            m.store()
                .checkpoints(1, 100)
                .expect("checkpoints")
                .into_iter()
                .map(|(size, _)| size)
                .collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6],
            "every checkpoint verified is stored, not only each commit's last"
        );
        let report = verify_store(&**m.store(), VerifyOptions::new(keys())).expect("verifies");
        assert_eq!(report.entries, 6);

        // A restarted hub continues from its copy.
        let mut again = Monitor::open(ORIGIN, keys(), m.store().clone()).expect("reopen");
        assert_eq!(again.verified(), 6);
        again
            .entry(entries[5].clone())
            .expect("already stored: ignored");
    }

    /// The stream as the publisher sends it: every entry with its value row at the time of
    /// publication, then the checkpoints.
    fn stream_of(store: &MemoryStore) -> (Vec<ReplicatedEntry>, Vec<String>) {
        let entries = store
            .entries(0, usize::MAX)
            .expect("entries")
            .into_iter()
            .map(|(seq, leaf)| ReplicatedEntry {
                seq,
                leaf,
                values: store
                    .get(&crate::log::store::values_key(seq))
                    .expect("get")
                    .unwrap_or_default(),
            })
            .collect();
        let notes = store
            .checkpoints(1, usize::MAX)
            .expect("checkpoints")
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        (entries, notes)
    }

    #[tokio::test]
    async fn a_replicated_redaction_removes_the_values_from_the_hubs_copy_too() {
        use crate::log::entry::{Actor, Entry, EntryKind, Redaction, RedactionTarget};
        let source = Arc::new(MemoryStore::new());
        let (writer, task) =
            LogWriter::start(source.clone(), key(), WriterConfig::new(ORIGIN)).expect("writer");
        for i in 0..3 {
            writer
                .append(Entry {
                    kind: EntryKind::Intent as i32,
                    actor: Some(Actor {
                        id: "PC-1".into(),
                        ..Default::default()
                    }),
                    subject_ids: vec![format!("P-{i}")],
                    ..Default::default()
                })
                .await
                .expect("append");
        }
        // The stream got entries 0..3 with their values before the redaction was made.
        let (before, _) = stream_of(&source);
        writer
            .redact(Entry {
                actor: Some(Actor {
                    id: "dpo-01".into(),
                    ..Default::default()
                }),
                redaction: Some(Redaction {
                    targets: vec![RedactionTarget {
                        from_seq: 1,
                        to_seq: 1,
                        fields: Vec::new(),
                        index: None,
                    }],
                    reason: "court order".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("redact");
        task.shutdown_async().await;
        let (after, notes) = stream_of(&source);
        let copy = Arc::new(MemoryStore::new());
        let mut m = Monitor::open(ORIGIN, keys(), copy.clone()).expect("open");
        // One burst: the targeted entry still carrying its values, the redaction, every checkpoint.
        for e in before.iter().chain(&after[before.len()..]) {
            m.entry(e.clone()).expect("entry");
        }
        for n in &notes {
            m.checkpoint(n).expect("checkpoint");
        }
        m.flush().expect("flush");
        let subject_of = |store: &MemoryStore, seq| {
            store
                .opened(seq)
                .expect("read")
                .expect("stored")
                .entry
                .subject_ids
        };
        assert_eq!(subject_of(&copy, 0), ["P-0"]);
        assert_eq!(
            subject_of(&copy, 1),
            [""],
            "the redacted subject is gone from the copy"
        );
        assert!(
            copy.index_seqs(IndexFamily::Subject, "P-1", 0, 10)
                .expect("index")
                .is_empty(),
            "and cannot be found through the copy's index"
        );
        let report = verify_store(&*copy, VerifyOptions::new(keys())).expect("verifies");
        assert!(
            report.redacted_values >= 1 && report.redaction_entries == 1,
            "{report:?}"
        );
        // A hub restarted on the copy re-applies the redaction and changes nothing.
        Monitor::open(ORIGIN, keys(), copy.clone())
            .expect("reopen")
            .flush()
            .expect("flush");
        verify_store(&*copy, VerifyOptions::new(keys())).expect("still verifies");
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_everything_staged_for_the_next() {
        let (entries, notes) = source(3).await;
        let store = Arc::new(MemoryStore::new());
        let mut m = Monitor::open(ORIGIN, keys(), store.clone()).expect("open");
        for (e, n) in entries.iter().zip(&notes) {
            m.entry(e.clone()).expect("entry");
            m.checkpoint(n).expect("checkpoint");
        }
        store.set_failing(true);
        assert!(matches!(m.flush(), Err(StoreError::Backend(_))));
        assert_eq!((m.verified(), m.staged()), (0, 3));
        // The stream re-delivers from the cursor while the disk is full: nothing is doubled.
        m.entry(entries[1].clone()).expect("re-delivery");
        m.checkpoint(&notes[1]).expect("re-delivered checkpoint");
        store.set_failing(false);
        assert!(m.flush().expect("flush"));
        assert_eq!(m.verified(), 3);
        let report = verify_store(&*store, VerifyOptions::new(keys())).expect("verifies");
        assert_eq!((report.entries, report.checkpoints), (3, 3));
    }

    #[tokio::test]
    async fn a_commit_written_behind_counts_once_written_and_a_failed_one_is_staged_again() {
        let (entries, notes) = source(6).await;
        let store = Arc::new(MemoryStore::new());
        let mut m = Monitor::open(ORIGIN, keys(), store.clone()).expect("open");
        for (e, n) in entries.iter().zip(&notes).take(3) {
            m.entry(e.clone()).expect("entry");
            m.checkpoint(n).expect("checkpoint");
        }
        let commit = m.flush_behind().expect("a commit to write");
        assert!(m.flush_behind().is_none(), "one commit at a time");
        assert!(m.written(false).is_none(), "not written yet");
        assert_eq!((m.verified(), m.staged()), (0, 0));
        // The monitor goes on meanwhile: what is being written is recognised when re-delivered,
        // and what comes next is staged after it.
        m.entry(entries[1].clone()).expect("re-delivery");
        assert!(!m.checkpoint(&notes[1]).expect("re-delivered checkpoint"));
        for (e, n) in entries.iter().zip(&notes).skip(3).take(2) {
            m.entry(e.clone()).expect("entry");
            m.checkpoint(n).expect("checkpoint");
        }
        assert_eq!(m.staged(), 2);
        store.set_failing(true);
        std::thread::spawn(move || commit.write())
            .join()
            .expect("writer");
        assert!(matches!(m.written(true), Some(Err(StoreError::Backend(_)))));
        assert_eq!(
            (
                m.verified(),
                m.staged(),
                store.entry_count().expect("count")
            ),
            (0, 5, 0),
            "nothing counts as written; everything is staged again, in order"
        );
        m.entry(entries[0].clone()).expect("re-delivery");
        // A commit dropped unwritten fails the same way.
        drop(m.flush_behind().expect("a commit to write"));
        assert!(matches!(m.written(true), Some(Err(_))));
        store.set_failing(false);
        let commit = m.flush_behind().expect("a commit to write");
        commit.write();
        assert!(matches!(m.written(false), Some(Ok(()))));
        assert_eq!((m.verified(), m.staged()), (5, 0));
        m.entry(entries[5].clone()).expect("entry");
        m.checkpoint(&notes[5]).expect("checkpoint");
        assert!(m.flush().expect("flush"));
        let report = verify_store(&*store, VerifyOptions::new(keys())).expect("verifies");
        assert_eq!((report.entries, report.checkpoints), (6, 6));
    }

    #[tokio::test]
    async fn a_cosigned_note_for_a_checkpoint_being_written_is_kept_once_that_is_written() {
        let (entries, notes) = source(2).await;
        let dpo = witness("w.dpo.s62.test", 21);
        let mut m = monitor()
            .with_witnesses(vec![dpo.verifier()], 1)
            .expect("witnesses");
        for (e, n) in entries.iter().zip(&notes) {
            m.entry(e.clone()).expect("entry");
            m.checkpoint(n).expect("checkpoint");
        }
        let commit = m.flush_behind().expect("a commit to write");
        let writer = std::thread::spawn(move || commit.write());
        assert!(m.cosigned(&cosign(&notes[1], &dpo)).expect("cosigned"));
        writer.join().expect("writer");
        assert_eq!((m.verified(), m.witnessed()), (2, 2));
        assert_eq!(
            m.store().checkpoint(2).expect("read"),
            Some(cosign(&notes[1], &dpo))
        );
    }

    #[tokio::test]
    async fn checkpoints_checked_ahead_in_a_batch_are_taken_as_checked_alone() {
        let (entries, notes) = source(3).await;
        let mut m = monitor();
        let ahead = m.note_check();
        let forged = signed_by_another_key(&entries[0]);
        let checked: Vec<&str> = notes.iter().map(String::as_str).collect();
        ahead.check(&checked);
        ahead.check(&[forged.as_str()]);
        assert_eq!(
            m.notes.checked.lock().expect("lock").len(),
            3,
            "only what verified is kept"
        );
        for (e, n) in entries.iter().zip(&notes).take(2) {
            m.entry(e.clone()).expect("entry");
            assert!(m.checkpoint(n).expect("checkpoint checked ahead"));
        }
        assert_eq!(
            m.notes.checked.lock().expect("lock").len(),
            1,
            "taken as checked"
        );
        // A note that did not verify ahead is checked again, and is the finding it always was.
        assert_eq!(rule(m.checkpoint(&forged)), BAD_SIGNATURE);
    }

    #[tokio::test]
    async fn a_different_entry_at_a_known_seq_is_a_fork() {
        let (entries, _) = source(3).await;
        let mut m = monitor();
        m.entry(entries[0].clone()).expect("entry");
        m.entry(entries[1].clone()).expect("entry");
        let mut forged = entries[1].clone();
        forged.leaf.push(0);
        assert_eq!(rule(m.entry(forged)), FORK);
        assert!(m.broken().is_some());
    }

    #[tokio::test]
    async fn an_entry_that_does_not_link_is_a_fork() {
        let (entries, _) = source(3).await;
        let mut m = monitor();
        m.entry(entries[0].clone()).expect("entry");
        let mut e = entry::decode(&entries[1].leaf).expect("decode");
        e.prev_leaf_hash = vec![7u8; 32];
        let forged = ReplicatedEntry {
            seq: 1,
            leaf: entry::encode(&e),
            values: entries[1].values.clone(),
        };
        assert_eq!(rule(m.entry(forged)), FORK);
    }

    #[tokio::test]
    async fn a_missing_entry_is_a_gap_once_a_checkpoint_covers_it() {
        let (entries, notes) = source(3).await;
        let mut m = monitor();
        m.entry(entries[0].clone()).expect("entry");
        m.entry(entries[2].clone())
            .expect("held: the missing one may still come");
        assert_eq!(rule(m.checkpoint(&notes[2])), GAP);
        assert_eq!(m.verified(), 0);
    }

    #[tokio::test]
    async fn entries_stored_out_of_order_by_a_re_sent_publish_are_taken_in_seq_order() {
        // The stream as a failed publish leaves it: 3 and 4 were stored before 1 and 2 were
        // re-sent, and a re-delivery of a held entry.
        let (entries, notes) = source(6).await;
        let mut m = monitor();
        for i in [0, 3, 4, 3, 1, 2, 5] {
            m.entry(entries[i].clone()).expect("entry");
        }
        for n in &notes {
            assert!(m.checkpoint(n).expect("checkpoint"));
        }
        m.flush().expect("flush");
        assert_eq!(m.verified(), 6);
        let report = verify_store(&**m.store(), VerifyOptions::new(keys())).expect("verifies");
        assert_eq!(report.entries, 6);
        // A different entry under a held seq is still a fork.
        let (entries, _) = source(3).await;
        let mut m = monitor();
        m.entry(entries[0].clone()).expect("entry");
        m.entry(entries[2].clone()).expect("held");
        let mut other = entries[2].clone();
        other.leaf.push(0);
        assert_eq!(rule(m.entry(other)), FORK);
    }

    #[tokio::test]
    async fn more_entries_ahead_of_a_missing_one_than_a_pipeline_holds_are_a_gap() {
        let n = MAX_HELD as u64 + 3;
        let (entries, _) = source(n).await;
        let mut m = monitor();
        m.entry(entries[0].clone()).expect("entry");
        for e in &entries[2..MAX_HELD + 2] {
            m.entry(e.clone()).expect("held");
        }
        assert_eq!(rule(m.entry(entries[MAX_HELD + 2].clone())), GAP);
    }

    #[tokio::test]
    async fn a_value_row_that_does_not_match_is_tampering() {
        let (entries, _) = source(2).await;
        let mut m = monitor();
        let mut e = entries[0].clone();
        e.values = vec![0x0a, 0x03, 0x08, 0x01, 0x1a];
        assert_eq!(rule(m.entry(e)), TAMPERED);
    }

    /// A checkpoint of size 1 over `first`, with the right root but signed by a key the log does
    /// not have.
    fn signed_by_another_key(first: &ReplicatedEntry) -> String {
        let other = SignerKey::from_seed(ORIGIN, [6u8; 32]).expect("key");
        Checkpoint {
            origin: ORIGIN.into(),
            size: 1,
            root: crate::log::merkle::root_of(&[leaf_hash(&first.leaf)]),
            extensions: Vec::new(),
        }
        .sign(&other)
        .expect("sign")
    }

    #[tokio::test]
    async fn a_checkpoint_signed_by_another_key_is_a_bad_signature() {
        let (entries, _) = source(2).await;
        let mut m = monitor();
        m.entry(entries[0].clone()).expect("entry");
        let note = signed_by_another_key(&entries[0]);
        assert_eq!(rule(m.checkpoint(&note)), BAD_SIGNATURE);
    }

    #[tokio::test]
    async fn a_checkpoint_over_more_than_the_stream_delivered_is_behind() {
        let (entries, notes) = source(3).await;
        let mut m = monitor();
        m.entry(entries[0].clone()).expect("entry");
        assert_eq!(rule(m.checkpoint(&notes[2])), BEHIND);
    }

    #[tokio::test]
    async fn a_checkpoint_whose_root_differs_is_a_fork() {
        let (entries, _) = source(2).await;
        let mut m = monitor();
        m.entry(entries[0].clone()).expect("entry");
        let note = Checkpoint {
            origin: ORIGIN.into(),
            size: 1,
            root: Hash([9u8; 32]),
            extensions: Vec::new(),
        }
        .sign(&key())
        .expect("sign");
        assert_eq!(rule(m.checkpoint(&note)), FORK);
        assert_eq!(m.verified(), 0, "nothing unverified is stored");
    }

    fn witness(name: &str, seed: u8) -> crate::log::cosignature::CosignerKey {
        crate::log::cosignature::CosignerKey::from_seed(name, [seed; 32]).expect("witness key")
    }

    /// `note` with `w`'s cosignature over `text` (by default the note's own text) appended.
    fn cosign_text(note: &str, text: &str, w: &crate::log::cosignature::CosignerKey) -> String {
        format!("{note}{}", w.cosign(text, 1_790_000_000).expect("cosign"))
    }

    fn cosign(note: &str, w: &crate::log::cosignature::CosignerKey) -> String {
        cosign_text(note, &parse_note(note).expect("note").text, w)
    }

    #[tokio::test]
    async fn witness_cosignatures_are_checked_and_kept_with_the_checkpoints_the_hub_verified() {
        let (entries, notes) = source(4).await;
        let (dpo, ico) = (witness("w.dpo.s62.test", 21), witness("w.ico.s62.test", 22));
        let mut m = monitor()
            .with_witnesses(vec![dpo.verifier(), ico.verifier()], 2)
            .expect("witnesses");
        for e in &entries {
            m.entry(e.clone()).expect("entry");
        }
        for n in &notes[..2] {
            m.checkpoint(n).expect("checkpoint");
        }
        m.flush().expect("flush");
        for n in &notes[2..] {
            m.checkpoint(n).expect("checkpoint");
        }
        // One witness on a stored checkpoint: kept, but one is not the quorum of two.
        assert!(!m.cosigned(&cosign(&notes[1], &dpo)).expect("cosigned"));
        assert_eq!(m.witnessed(), 0);
        assert_eq!(
            m.store().checkpoint(2).expect("read"),
            Some(cosign(&notes[1], &dpo))
        );
        // Both on a staged one: a quorum, stored with the checkpoint by the next flush.
        let both = cosign(&cosign(&notes[3], &dpo), &ico);
        assert!(m.cosigned(&both).expect("cosigned"));
        assert_eq!(m.witnessed(), 4);
        m.flush().expect("flush");
        assert_eq!(m.store().checkpoint(4).expect("read"), Some(both.clone()));
        // A line from a witness the hub was not told about is not kept.
        let stranger = witness("w.other.s62.test", 23);
        assert!(!m.cosigned(&cosign(&notes[2], &stranger)).expect("ignored"));
        assert_eq!(
            m.store().checkpoint(3).expect("read"),
            Some(notes[2].clone())
        );
        // The copy still verifies as a log, and a monitor reopened over it knows its witnessed size.
        let report = verify_store(&**m.store(), VerifyOptions::new(keys())).expect("verifies");
        assert_eq!(report.entries, 4);
        let again = Monitor::open(ORIGIN, keys(), m.store().clone())
            .and_then(|m| m.with_witnesses(vec![dpo.verifier(), ico.verifier()], 2))
            .expect("reopen");
        assert_eq!(again.witnessed(), 4);
        assert!(m.broken().is_none());
    }

    #[tokio::test]
    async fn a_forged_cosignature_is_a_finding_that_rejects_the_note_and_the_log_goes_on() {
        let (entries, notes) = source(3).await;
        let dpo = witness("w.dpo.s62.test", 21);
        let mut m = monitor()
            .with_witnesses(vec![dpo.verifier()], 1)
            .expect("witnesses");
        for e in &entries[..2] {
            m.entry(e.clone()).expect("entry");
        }
        for n in &notes[..2] {
            m.checkpoint(n).expect("checkpoint");
        }
        m.flush().expect("flush");
        // Someone who can write to the stream but has not the witness's key: a line under the
        // witness's name and key ID whose signature is over another checkpoint.
        let text_of_1 = parse_note(&notes[0]).expect("note").text;
        let forged = cosign_text(&notes[1], &text_of_1, &dpo);
        assert_eq!(rule(m.cosigned(&forged)), BAD_COSIGNATURE);
        assert_eq!(
            m.witnessed(),
            0,
            "a forged cosignature makes nothing witnessed"
        );
        assert_eq!(
            m.store().checkpoint(2).expect("read"),
            Some(notes[1].clone()),
            "nothing of the forged note is kept"
        );
        // A cosigned note for a checkpoint the stream never delivered.
        assert_eq!(rule(m.cosigned(&cosign(&notes[2], &dpo))), BEHIND);
        // Neither stops the log being followed.
        assert!(m.broken().is_none());
        m.entry(entries[2].clone()).expect("entry");
        m.checkpoint(&notes[2]).expect("checkpoint");
        m.flush().expect("flush");
        assert_eq!(m.verified(), 3);
        assert!(m.cosigned(&cosign(&notes[2], &dpo)).expect("genuine"));
        assert_eq!(m.witnessed(), 3);
    }

    #[tokio::test]
    async fn a_second_checkpoint_text_signed_by_the_logs_key_for_one_size_is_a_fork() {
        let (entries, notes) = source(2).await;
        let dpo = witness("w.dpo.s62.test", 21);
        let mut m = monitor()
            .with_witnesses(vec![dpo.verifier()], 1)
            .expect("witnesses");
        m.entry(entries[0].clone()).expect("entry");
        m.checkpoint(&notes[0]).expect("checkpoint");
        m.flush().expect("flush");
        // The key holder signs another tree of size 1 and has it cosigned by a witness that
        // never saw the first (a split view): published as a cosigned note.
        let other = Checkpoint {
            origin: ORIGIN.into(),
            size: 1,
            root: Hash([9u8; 32]),
            extensions: Vec::new(),
        }
        .sign(&key())
        .expect("sign");
        assert_eq!(rule(m.cosigned(&cosign(&other, &dpo))), FORK);
        assert!(m.broken().is_some(), "a fork stops the log being taken in");
        // Signature lines of the verified note dropped or reordered are tampering, not a fork.
        let mut m = monitor()
            .with_witnesses(vec![dpo.verifier()], 1)
            .expect("witnesses");
        m.entry(entries[0].clone()).expect("entry");
        m.checkpoint(&notes[0]).expect("checkpoint");
        let parsed = parse_note(&notes[0]).expect("note");
        let log_line = crate::log::cosignature::signature_line(&parsed.signatures[0]);
        let reordered = format!(
            "{}\n{}{log_line}",
            parsed.text,
            dpo.cosign(&parsed.text, 1_790_000_000).expect("cosign")
        );
        assert_eq!(rule(m.cosigned(&reordered)), TAMPERED);
        assert!(m.broken().is_none());
    }
}

//! Offline verification of a stored log: trusts stored bytes, never stored conclusions.
//!
//! One pass in sequence order recomputes, from each entry's stored bytes: its leaf hash, the hash
//! chain, the Merkle tree (every stored node hash is compared with the recomputed one), the root at
//! every stored checkpoint, and the index records the entry must have. Each checkpoint must carry
//! the log's origin (pinned by `--origin` or the key name) and be signed by the key whose epoch
//! holds its size — epochs follow the `key_rotated` entries met so far, starting from the key file's
//! first key — and by no retired key; every checkpoint an entry announces (`checkpoint_follows`)
//! must be stored. A checkpoint kept elsewhere ("trusted") must still be contained in the log,
//! which catches truncation and rollback. The first problem is reported with the sequence number
//! it concerns. The pass runs as a pipeline — one thread reads, each chunk is opened on every
//! core, the calling thread folds in order — with the stored index scanned beside it; what it
//! reports is what a single thread reading in order would report. Reads go through the [`Store`]
//! trait; this module must not depend on tokio, HTTP or RocksDB.

pub mod bundle;
pub mod witness;

use crate::log::checkpoint::{Checkpoint, CheckpointError, open_checkpoint, open_checkpoints};
use crate::log::entry;
use crate::log::entry::EntryKind;
use crate::log::epoch::{KeyEpoch, KeyEpochs, LogKeys, handover_key};
use crate::log::hash::{Hash, leaf_hash};
use crate::log::index::{IndexFamily, MAX_INDEXED_VALUE_BYTES, index_values, index_values_with};
use crate::log::merkle::{Frontier, NodeId};
use crate::log::note::{VerifierKey, open_note};
use crate::log::seal::{FieldRef, check_values, is_sealed};
use crate::log::store::{LogStore, Store, StoreError, split_index_key};
use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash as _, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};

/// What to check beyond the log itself.
pub struct VerifyOptions<'a> {
    /// The log's verifier keys (`log.pub`): the key of the first checkpoint and every key the log
    /// hands over to must be among them.
    pub keys: LogKeys,
    /// The origin the log must have; by default the keys' name (s62 names a log's key after its
    /// origin).
    pub origin: Option<String>,
    /// Signed checkpoint notes kept outside the operator's control; the log must still contain each.
    pub trusted_checkpoints: Vec<String>,
    /// Whether to check the secondary indexes (on by default in the CLI).
    pub check_indexes: bool,
    /// Check each checkpoint signature alone with `verify_strict` (cofactorless, as Go's
    /// `crypto/ed25519`), instead of in batches ([`crate::log::note::open_notes`]), which
    /// made a whole verify 2.1 times faster in benches/README.md and differs only on signatures
    /// made with the signing key.
    pub strict_signatures: bool,
    /// Called now and then with (entries verified, entries in the log).
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
}

impl<'a> VerifyOptions<'a> {
    /// Options that check the log and its indexes against `keys`, and nothing kept elsewhere.
    pub fn new(keys: LogKeys) -> Self {
        VerifyOptions {
            keys,
            origin: None,
            trusted_checkpoints: Vec::new(),
            check_indexes: true,
            strict_signatures: false,
            progress: None,
        }
    }
}

/// What an intact log looked like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub origin: String,
    pub entries: u64,
    pub root: Hash,
    pub checkpoints: u64,
    pub index_records: u64,
    pub trusted_checkpoints: u64,
    /// Which key signed which sizes, as the log's handover entries say.
    pub epochs: Vec<KeyEpoch>,
    /// Formats 2 and 3: personal values no longer stored, each covered by a redaction entry.
    pub redacted_values: u64,
    /// Redaction entries in the log.
    pub redaction_entries: u64,
    /// Index families not yet built for every entry (a log begun before they existed, which no
    /// writer of this version has opened yet): not checked.
    pub unbuilt_index_families: Vec<IndexFamily>,
    /// Entries after the latest stored checkpoint, in a log whose recorded cadence signs at an
    /// interval: checked like every other (chain, tree, values, indexes, the cadence) but covered
    /// by no signature yet. A running writer signs them within its cadence; a writer restarted
    /// after a crash, before it appends. In a log that signs every commit such a tail is
    /// tampering.
    pub unsigned_tail: u64,
}

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The log was altered, truncated or is corrupt. `seq` is the first entry concerned, when one is.
    #[error("{}{problem}", seq.map(|s| format!("entry {s}: ")).unwrap_or_default())]
    Tampered { seq: Option<u64>, problem: String },
    /// Verification could not run (unreadable store, no keys, unreadable trusted checkpoint).
    #[error("could not verify: {0}")]
    CouldNotRun(String),
}

impl From<StoreError> for VerifyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(msg) => VerifyError::Tampered {
                seq: None,
                problem: msg,
            },
            StoreError::Backend(msg) => VerifyError::CouldNotRun(msg),
        }
    }
}

fn tampered(seq: u64, problem: impl Into<String>) -> VerifyError {
    VerifyError::Tampered {
        seq: Some(seq),
        problem: problem.into(),
    }
}

const CHUNK: usize = 4096;

/// Which per-entry rows a [`RowCursor`] reads.
#[derive(Clone, Copy)]
enum Rows {
    /// Tree node rows (one per entry).
    Nodes,
    /// Value rows (one per format-2 or format-3 entry).
    Values,
}

/// Reads stored per-entry rows in seq order, in step with the entries.
struct RowCursor<'s> {
    store: &'s dyn Store,
    rows: Rows,
    buf: VecDeque<(u64, Vec<u8>)>,
    next_from: u64,
    done: bool,
}

impl<'s> RowCursor<'s> {
    fn new(store: &'s dyn Store, rows: Rows) -> Self {
        RowCursor {
            store,
            rows,
            buf: VecDeque::new(),
            next_from: 0,
            done: false,
        }
    }

    /// The row of entry `seq`, if one is stored; a row for an earlier seq that was never taken
    /// is out of place.
    fn row_of(&mut self, seq: u64) -> Result<Option<Vec<u8>>, VerifyError> {
        self.fill()?;
        match self.buf.front() {
            Some((s, _)) if *s < seq => Err(tampered(*s, "a value row is stored for no entry")),
            Some((s, _)) if *s == seq => Ok(self.buf.pop_front().map(|(_, v)| v)),
            _ => Ok(None),
        }
    }

    fn fill(&mut self) -> Result<(), VerifyError> {
        if self.buf.is_empty() && !self.done {
            let chunk = match self.rows {
                Rows::Nodes => self.store.node_rows(self.next_from, CHUNK)?,
                Rows::Values => self.store.values_rows(self.next_from, CHUNK)?,
            };
            self.done = chunk.len() < CHUNK;
            if let Some((last, _)) = chunk.last() {
                self.next_from = last + 1;
            }
            self.buf.extend(chunk);
        }
        Ok(())
    }

    fn next(&mut self) -> Result<Option<(u64, Vec<u8>)>, VerifyError> {
        self.fill()?;
        Ok(self.buf.pop_front())
    }
}

/// An index record reduced to (seq, two keyed 64-bit hashes of family, value and seq). The hash
/// keys are chosen at random for each run, so stored data cannot be crafted to collide.
type IndexDigest = (u64, u64, u64);

struct IndexDigester(RandomState, RandomState);

impl IndexDigester {
    fn new() -> Self {
        Self(RandomState::new(), RandomState::new())
    }

    fn digest(&self, family: IndexFamily, value: &[u8], seq: u64) -> IndexDigest {
        let h = |s: &RandomState| {
            let mut h = s.build_hasher();
            (family as u8).hash(&mut h);
            value.hash(&mut h);
            seq.hash(&mut h);
            h.finish()
        };
        (seq, h(&self.0), h(&self.1))
    }
}

/// An order-free summary of a multiset of index records: equal summaries mean equal sets (but for
/// a chance of about 2^-128 under the run's random keys), without sorting or keeping them.
#[derive(Debug, Default, PartialEq, Eq)]
struct IndexSum {
    count: u64,
    a: u64,
    b: u64,
}

impl IndexSum {
    fn add(&mut self, (_, a, b): IndexDigest) {
        self.count += 1;
        self.a = self.a.wrapping_add(a);
        self.b = self.b.wrapping_add(b);
    }
}

/// The expected index records of every entry in `families`, as digests.
fn expected_index_digests(
    store: &dyn Store,
    digester: &IndexDigester,
    families: &[IndexFamily],
) -> Result<Vec<IndexDigest>, VerifyError> {
    let mut out = Vec::new();
    let mut next = 0u64;
    loop {
        let chunk = store.entries(next, CHUNK)?;
        let Some((last, _)) = chunk.last() else { break };
        next = last + 1;
        for (seq, bytes) in &chunk {
            let e = entry::decode(bytes)
                .map_err(|err| tampered(*seq, format!("stored bytes do not decode: {err}")))?;
            let e = if is_sealed(e.format_version) {
                store
                    .opened(*seq)?
                    .map(|o| o.entry)
                    .ok_or_else(|| tampered(*seq, "the entry vanished"))?
            } else {
                e
            };
            out.extend(
                index_values(&e)
                    .into_iter()
                    .filter(|(f, _)| families.contains(f))
                    .map(|(f, v)| digester.digest(f, v.as_bytes(), *seq)),
            );
        }
    }
    Ok(out)
}

/// Streams every stored index key through `f` as (family, value, seq), until `stop` is set.
fn for_each_stored_index(
    store: &dyn Store,
    stop: &AtomicBool,
    mut f: impl FnMut(IndexFamily, &[u8], u64),
) -> Result<(), VerifyError> {
    let mut after: Option<Vec<u8>> = None;
    while !stop.load(Ordering::Relaxed) {
        let keys = store.index_keys(after.as_deref(), CHUNK)?;
        for k in &keys {
            let (family, value, seq) = split_index_key(k).ok_or_else(|| VerifyError::Tampered {
                seq: None,
                // Not the key itself: an index key holds an id, a name or a case reference.
                problem: format!("a stored index key of {} bytes is malformed", k.len()),
            })?;
            f(family, value, seq);
        }
        match keys.into_iter().last() {
            Some(k) => after = Some(k),
            None => return Ok(()),
        }
    }
    Ok(())
}

/// The summary of every stored index record in `families` (a partial one if `stop` is set
/// first: the pass failed and will not read it).
fn stored_index_sum(
    store: &dyn Store,
    digester: &IndexDigester,
    families: &[IndexFamily],
    stop: &AtomicBool,
) -> Result<IndexSum, VerifyError> {
    let mut sum = IndexSum::default();
    for_each_stored_index(store, stop, |f, v, seq| {
        if families.contains(&f) {
            sum.add(digester.digest(f, v, seq))
        }
    })?;
    Ok(sum)
}

/// Sets its flag when dropped: however the pass returns, the index scan beside it stops.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One chunk of entries as read, or why reading failed.
type ReadChunk = Result<Vec<Item>, VerifyError>;

/// Reads the entries in seq order with their value rows, a chunk at a time, into `out`, until
/// the entries end, a gap (the chunk's last item names it; the pass reports it) or the receiver
/// is gone. Errors go through `out` in order. Returns the first value row stored past the last
/// entry, for the pass to report after its own end checks.
fn read_items(store: &dyn Store, out: &std::sync::mpsc::SyncSender<ReadChunk>) -> Option<u64> {
    let mut value_rows = RowCursor::new(store, Rows::Values);
    let mut next = 0u64;
    let mut read = || -> Result<Option<Vec<Item>>, VerifyError> {
        let chunk = store.entries(next, CHUNK)?;
        let mut items = Vec::with_capacity(chunk.len());
        for (i, (key_seq, bytes)) in chunk.into_iter().enumerate() {
            let seq = next + i as u64;
            if key_seq != seq {
                items.push(Item {
                    seq,
                    bytes,
                    row: None,
                    missing: Some(key_seq),
                });
                break;
            }
            let row = value_rows.row_of(seq)?;
            items.push(Item {
                seq,
                bytes,
                row,
                missing: None,
            });
        }
        next += items.len() as u64;
        Ok((!items.is_empty()).then_some(items))
    };
    loop {
        match read() {
            Ok(Some(items)) => {
                let gap = items.last().is_some_and(|i| i.missing.is_some());
                if out.send(Ok(items)).is_err() || gap {
                    return None;
                }
            }
            Ok(None) => break,
            Err(err) => {
                let _ = out.send(Err(err));
                return None;
            }
        }
    }
    match value_rows.next() {
        Ok(extra) => extra.map(|(seq, _)| seq),
        Err(err) => {
            let _ = out.send(Err(err));
            None
        }
    }
}

/// The slow path after the summaries differ: sort both sides and name the first entry affected.
fn locate_index_mismatch(
    store: &dyn Store,
    digester: &IndexDigester,
    families: &[IndexFamily],
) -> Result<Option<u64>, VerifyError> {
    let mut expected = expected_index_digests(store, digester, families)?;
    let mut stored = Vec::with_capacity(expected.len());
    for_each_stored_index(store, &AtomicBool::new(false), |f, v, seq| {
        if families.contains(&f) {
            stored.push(digester.digest(f, v, seq))
        }
    })?;
    expected.sort_unstable();
    stored.sort_unstable();
    Ok(expected
        .iter()
        .zip(&stored)
        .find(|(a, b)| a != b)
        .map(|(a, b)| (*a).min(*b))
        .or_else(|| expected.get(stored.len()).copied())
        .or_else(|| stored.get(expected.len()).copied())
        .map(|d| d.0))
}

/// Verifies everything stored in `store`.
pub fn verify_store(store: &dyn Store, mut opts: VerifyOptions<'_>) -> Result<Report, VerifyError> {
    let all_keys: Vec<VerifierKey> = opts.keys.keys().to_vec();
    let total = store.entry_count()?;
    let Some((last_cp_size, last_note)) = store.latest_checkpoint()? else {
        if total == 0 {
            return Err(VerifyError::CouldNotRun(
                "the log is empty: nothing to verify".into(),
            ));
        }
        return Err(tampered(0, "the log has entries but no checkpoint"));
    };
    let origin = pinned_origin(&opts)?;
    open_checkpoint(&last_note, &all_keys, Some(&origin)).map_err(|e| VerifyError::Tampered {
        seq: last_cp_size.checked_sub(1),
        problem: format!("latest checkpoint (size {last_cp_size}): {e}"),
    })?;
    let mut epochs = KeyEpochs::starting_with(first_key(store, &opts.keys, &all_keys)?);

    // Trusted checkpoints: parse and check their signatures up front.
    let mut trusted: Vec<Checkpoint> = Vec::new();
    for note in &opts.trusted_checkpoints {
        let (cp, _) = open_checkpoint(note, &all_keys, Some(&origin)).map_err(|e| {
            VerifyError::CouldNotRun(format!("the trusted checkpoint does not verify: {e}"))
        })?;
        trusted.push(cp);
    }
    trusted.sort_by_key(|c| c.size);
    for cp in &trusted {
        if cp.size > total {
            return Err(tampered(
                total,
                format!(
                    "the log ends after {total} entries but a trusted checkpoint covers {}: \
                     entries were removed (truncation or rollback)",
                    cp.size
                ),
            ));
        }
    }
    let mut trusted = trusted.into_iter().peekable();

    let digester = IndexDigester::new();
    // Only families the store records as built for every entry can be checked against them.
    let families = store.index_families()?;
    let mut expected_index = IndexSum::default();
    let mut frontier = Frontier::new();
    let mut rows = RowCursor::new(store, Rows::Nodes);
    let mut redactions = Redactions::load(store)?;
    let mut expected_row: Vec<u8> = Vec::with_capacity(64 * 32);
    let mut completed: Vec<(NodeId, Hash)> = Vec::new();
    let mut checkpoints = store
        .checkpoints(0, CHUNK)?
        .into_iter()
        .collect::<VecDeque<_>>();
    let mut checkpoints_seen = 0u64;
    let (mut redacted_values, mut redaction_entries) = (0u64, 0u64);
    let mut next_cp_from = checkpoints.back().map_or(u64::MAX, |(s, _)| s + 1);
    let mut cps_done = checkpoints.len() < CHUNK;
    let mut prev = Hash::GENESIS;
    let mut last_time = i64::MIN;
    let mut next_seq = 0u64;
    let mut trusted_seen = 0u64;
    let mut stretch = Stretch::default();

    // Checkpoints for size 0 are never written; one there is out of place.
    if let Some((0, _)) = checkpoints.front() {
        return Err(VerifyError::Tampered {
            seq: None,
            problem: "a checkpoint for the empty tree is stored".into(),
        });
    }

    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let opener = Opener {
        digester: &digester,
        families: &families,
        check_indexes: opts.check_indexes,
    };
    let stop_scan = AtomicBool::new(false);
    // A pipeline: one thread reads entries and value rows in order, one opens each chunk on every
    // core, this one folds them in order; the stored index is scanned alongside, since it does
    // not depend on the pass. Whatever returns first drops its receiver, which ends the others.
    std::thread::scope(|s| {
        let _stop_scan_on_return = SetOnDrop(&stop_scan);
        let index_scan = opts
            .check_indexes
            .then(|| s.spawn(|| stored_index_sum(store, &digester, &families, &stop_scan)));
        let (items_tx, items_rx) = std::sync::mpsc::sync_channel(1);
        let reader = s.spawn(move || read_items(store, &items_tx));
        let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel(1);
        let opener = &opener;
        s.spawn(move || {
            for chunk in items_rx {
                let opened: Result<_, VerifyError> = chunk
                    .and_then(|items: Vec<Item>| Ok((opener.open_all(&items, workers)?, items)));
                let failed = opened.is_err();
                if opened_tx.send(opened).is_err() || failed {
                    break;
                }
            }
        });
        for chunk in opened_rx {
            let (all_opened, items) = chunk?;
            // The stored checkpoints this chunk reaches, opened (signatures checked) on every core.
            let chunk_end = next_seq + items.len() as u64;
            while !cps_done && checkpoints.back().is_none_or(|(s, _)| *s < chunk_end) {
                let more = store.checkpoints(next_cp_from, CHUNK)?;
                cps_done = more.len() < CHUNK;
                next_cp_from = more.last().map_or(next_cp_from, |(s, _)| s + 1);
                checkpoints.extend(more);
            }
            let mut opened_checkpoints: VecDeque<_> = {
                let notes: Vec<&str> = checkpoints
                    .iter()
                    .take_while(|(s, _)| *s <= chunk_end)
                    .map(|(_, note)| note.as_str())
                    .collect();
                let strict = opts.strict_signatures;
                on_every_core(&notes, workers, 64, |part| {
                    if strict {
                        part.iter()
                            .map(|n| open_checkpoint(n, &all_keys, Some(&origin)))
                            .collect()
                    } else {
                        open_checkpoints(part, &all_keys, Some(&origin))
                    }
                })?
                .into()
            };
            for (item, opened) in items.iter().zip(all_opened) {
                let seq = next_seq;
                if let Some(key_seq) = item.missing {
                    return Err(tampered(
                        seq,
                        format!("missing: the next stored entry is {key_seq}"),
                    ));
                }
                let Opened {
                    leaf,
                    entry: e,
                    values,
                } = opened;
                let e = e?;
                if e.seq != seq {
                    return Err(tampered(
                        seq,
                        format!("the entry stored here says it is entry {}", e.seq),
                    ));
                }
                if Hash::from_slice(&e.prev_leaf_hash) != Some(prev) {
                    return Err(tampered(
                        seq,
                        "its previous-entry hash does not match the entry before it",
                    ));
                }
                if e.time_unix_nanos < last_time {
                    return Err(tampered(
                        seq,
                        "its time is earlier than the entry before it",
                    ));
                }
                last_time = e.time_unix_nanos;
                prev = leaf;

                completed.clear();
                frontier.push(leaf, &mut completed);
                expected_row.clear();
                for (_, h) in &completed {
                    expected_row.extend_from_slice(&h.0);
                }
                match rows.next()? {
                    Some((row_seq, row)) if row_seq == seq && row == expected_row => {}
                    Some((row_seq, row)) if row_seq == seq => {
                        let level = row
                            .chunks(Hash::LEN)
                            .zip(expected_row.chunks(Hash::LEN))
                            .position(|(a, b)| a != b)
                            .unwrap_or(completed.len().min(row.len() / Hash::LEN));
                        let what = completed.get(level).map_or_else(
                        || {
                            format!(
                                "its stored tree node row has {} bytes, expected {}",
                                row.len(),
                                expected_row.len()
                            )
                        },
                        |(id, _)| {
                            format!(
                                "stored tree node (level {}, index {}) does not match the entries",
                                id.level, id.index
                            )
                        },
                    );
                        return Err(tampered(seq, what));
                    }
                    _ => return Err(tampered(seq, "its stored tree node row is missing")),
                }
                let (redacted, digests) = values?;
                for r in &redacted {
                    if !redactions.covers(seq, *r) {
                        return Err(tampered(
                            seq,
                            format!(
                                "its {r} is no longer stored and no redaction entry removed it"
                            ),
                        ));
                    }
                }
                redacted_values += redacted.len() as u64;
                if e.kind == EntryKind::Redaction as i32 {
                    redactions.check_entry(&e)?;
                    redaction_entries += 1;
                }
                for d in digests {
                    expected_index.add(d);
                }
                match handover_key(&e) {
                    None => {}
                    Some(Err(err)) => {
                        return Err(tampered(
                            seq,
                            format!("it hands the log over to a key that does not parse: {err}"),
                        ));
                    }
                    Some(Ok(next)) => {
                        if !all_keys.contains(&next) {
                            return Err(tampered(
                                seq,
                                format!(
                                    "it hands the log over to key {}, which the key file does not \
                                 list; if this handover is genuine, get the log's current log.pub",
                                    next.to_vkey()
                                ),
                            ));
                        }
                        epochs
                            .hand_over(seq + 1, next)
                            .map_err(|err| tampered(seq, err.to_string()))?;
                    }
                }

                let size = seq + 1;
                let stored_here = checkpoints.front().is_some_and(|(s, _)| *s == size);
                if e.checkpoint_follows && !stored_here {
                    return Err(tampered(
                        seq,
                        format!(
                            "the writer signed a checkpoint of size {size} after this entry, but it \
                         is not stored: checkpoints were deleted"
                        ),
                    ));
                }
                stretch.check(&e, stored_here)?;
                if let Some((cp_size, note)) = checkpoints.front()
                    && *cp_size == size
                {
                    let opened: Result<_, CheckpointError> =
                        opened_checkpoints.pop_front().unwrap_or_else(|| {
                            // Every checkpoint this chunk reaches was opened above; should that
                            // ever not hold, it is opened here.
                            open_checkpoint(note, &all_keys, Some(&origin))
                        });
                    let (cp, signed_by) = opened.map_err(|err| {
                        tampered(seq, format!("checkpoint at size {size}: {err}"))
                    })?;
                    epochs
                        .check_signers(size, &signed_by)
                        .map_err(|err| tampered(seq, err.to_string()))?;
                    if cp.size != size {
                        return Err(tampered(
                            seq,
                            format!("checkpoint stored under size {size} says size {}", cp.size),
                        ));
                    }
                    if cp.root != frontier.root() {
                        return Err(tampered(
                            seq,
                            format!(
                                "checkpoint at size {size} does not match the entries up to here"
                            ),
                        ));
                    }
                    checkpoints.pop_front();
                    checkpoints_seen += 1;
                }
                while let Some(cp) = trusted.peek() {
                    if cp.size != size {
                        break;
                    }
                    if cp.root != frontier.root() {
                        return Err(tampered(
                            seq,
                            format!(
                                "the log differs from the trusted checkpoint at size {size}: \
                             history before it was rewritten"
                            ),
                        ));
                    }
                    trusted_seen += 1;
                    trusted.next();
                }
                next_seq += 1;
            }
            if let Some(p) = opts.progress.as_mut() {
                p(next_seq, total);
            }
        }

        if next_seq != total {
            return Err(tampered(
                next_seq,
                format!(
                    "entries end at {next_seq} but a later entry {} is stored",
                    total - 1
                ),
            ));
        }
        if let Some((cp_size, _)) = checkpoints.front() {
            return Err(tampered(
                total,
                format!(
                    "a checkpoint covers {cp_size} entries but the log holds {total}: entries were removed"
                ),
            ));
        }
        // `last_cp_size < total`: an unsigned tail, allowed only under a recorded interval and
        // then reported (a checkpoint beyond the entries was refused above).
        stretch.finish(last_cp_size)?;
        if let Some((row_seq, _)) = rows.next()? {
            return Err(tampered(
                row_seq,
                "a tree node row is stored beyond the end of the log",
            ));
        }
        let past_the_end = reader
            .join()
            .map_err(|_| VerifyError::CouldNotRun("the verification reader failed".into()))?;
        if let Some(row_seq) = past_the_end {
            return Err(tampered(
                row_seq,
                "a value row is stored for no entry of the log",
            ));
        }
        if let Some(cp) = trusted.next() {
            // Every trusted size ≤ total was met in the loop; one left means its size is 0.
            return Err(VerifyError::CouldNotRun(format!(
                "trusted checkpoint of size {} is empty",
                cp.size
            )));
        }

        let mut index_count = 0;
        if opts.check_indexes {
            let stored_index = match index_scan {
                Some(scan) => scan
                    .join()
                    .map_err(|_| VerifyError::CouldNotRun("the index scan failed".into()))??,
                None => IndexSum::default(),
            };
            index_count = stored_index.count;
            if expected_index != stored_index {
                return Err(VerifyError::Tampered {
                seq: locate_index_mismatch(store, &digester, &families)?,
                problem: "the secondary indexes do not match the entries (a record is missing, extra or points at the wrong entry)".into(),
            });
            }
        }

        if let Some(stated) = opts.keys.stated_epochs()
            && stated != &epochs
        {
            return Err(VerifyError::Tampered {
                seq: None,
                problem: format!(
                    "the key file states these key epochs: {}; the log's handover entries say: {}",
                    describe_epochs(stated.epochs()),
                    describe_epochs(epochs.epochs())
                ),
            });
        }

        Ok(Report {
            origin,
            entries: total,
            root: frontier.root(),
            checkpoints: checkpoints_seen,
            index_records: index_count,
            trusted_checkpoints: trusted_seen,
            epochs: epochs.epochs().to_vec(),
            redacted_values,
            redaction_entries,
            unsigned_tail: total - last_cp_size,
            unbuilt_index_families: IndexFamily::ALL
                .into_iter()
                .filter(|f| !families.contains(f))
                .collect(),
        })
    })
}

/// The entries since the last stored checkpoint, held to the writer's recorded cadence: a writer
/// records its cadence (`checkpoint_cadence`) in the first entry of each run, which always starts
/// at a checkpoint; from there no stretch between checkpoints holds more than `max_entries`
/// entries, and the commit whose time is `interval_ms` or more after its stretch's first entry
/// signs one (every entry of a commit has the same time). Logs written before cadences were
/// recorded are held to `checkpoint_follows` alone.
#[derive(Default)]
struct Stretch {
    cadence: Option<entry::CheckpointCadence>,
    /// Entries since the last stored checkpoint, and the first one's time.
    since: u64,
    start: Option<i64>,
    /// An entry by whose time the interval had passed, in a commit not yet seen to sign.
    overdue: Option<(u64, i64)>,
}

impl Stretch {
    /// At the end of the log, with the stretch still open from `from` (the latest checkpoint's
    /// size): a tail is only "not yet signed" under a recorded interval.
    fn finish(&self, from: u64) -> Result<(), VerifyError> {
        if self.since == 0 {
            return Ok(());
        }
        let interval = self.cadence.as_ref().map_or(0, |c| c.interval_ms);
        if interval == 0 {
            return Err(tampered(
                from,
                "entries from here on are covered by no checkpoint, but this log's writer signs \
                 every commit (its recorded cadence, or no cadence recorded): checkpoints were \
                 deleted or entries were added without the key",
            ));
        }
        if let Some((late, _)) = self.overdue {
            return Err(tampered(
                late,
                format!(
                    "the writer's checkpoint interval ({interval} ms) had passed by this entry, \
                     but the commit holding it signed no checkpoint"
                ),
            ));
        }
        Ok(())
    }

    fn check(&mut self, e: &entry::Entry, stored_here: bool) -> Result<(), VerifyError> {
        let seq = e.seq;
        if let Some(c) = &e.checkpoint_cadence {
            if self.since != 0 {
                return Err(tampered(
                    seq,
                    format!(
                        "it records the writer's checkpoint cadence, which a writer does only \
                         right after a checkpoint, but the {} entries before it are not covered \
                         by one",
                        self.since
                    ),
                ));
            }
            if c.max_entries == 0 {
                return Err(tampered(
                    seq,
                    "it records a cadence of 0 entries per checkpoint",
                ));
            }
            self.cadence = Some(*c);
        }
        if let Some((late, time)) = self.overdue
            && e.time_unix_nanos != time
        {
            let interval = self.cadence.as_ref().map_or(0, |c| c.interval_ms);
            return Err(tampered(
                late,
                format!(
                    "the writer's checkpoint interval ({interval} ms) had passed by this entry, \
                     but the commit holding it signed no checkpoint"
                ),
            ));
        }
        self.since += 1;
        let start = *self.start.get_or_insert(e.time_unix_nanos);
        if let Some(c) = &self.cadence {
            if self.since > c.max_entries {
                return Err(tampered(
                    seq,
                    format!(
                        "{} entries since the last checkpoint, more than the writer's cadence \
                         of {} allows: a checkpoint is missing",
                        self.since, c.max_entries
                    ),
                ));
            }
            let interval = i64::from(c.interval_ms) * 1_000_000;
            self.overdue = (e.time_unix_nanos.saturating_sub(start) >= interval)
                .then_some((seq, e.time_unix_nanos));
        }
        if stored_here {
            let cadence = self.cadence.take();
            *self = Stretch {
                cadence,
                ..Stretch::default()
            };
        }
        Ok(())
    }
}

/// One stored entry as read, in order, before it is opened.
struct Item {
    seq: u64,
    bytes: Vec<u8>,
    /// Its value row (formats 2 and 3).
    row: Option<Vec<u8>>,
    /// The store's next entry when it is not `seq`: the pass stops there.
    missing: Option<u64>,
}

/// What one entry's own bytes and value row say, worked out apart from every other entry.
struct Opened {
    leaf: Hash,
    entry: Result<entry::Entry, VerifyError>,
    /// The values it no longer stores (each must be covered by a later redaction entry) and its
    /// index records' digests, or what is wrong with them.
    values: Result<(Vec<FieldRef>, Vec<IndexDigest>), VerifyError>,
}

/// Opens entries on every core: decoding, leaf hashing, each personal value checked against its
/// commitment (formats 2 and 3), and the index records the entry must have. Everything that depends
/// on other entries (chain, tree, redactions, checkpoints) is folded afterwards, in order.
struct Opener<'a> {
    digester: &'a IndexDigester,
    families: &'a [IndexFamily],
    check_indexes: bool,
}

/// `f` over `items` split in one contiguous part per worker, the results in item order; on the
/// calling thread alone below `min` items.
fn on_every_core<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    min: usize,
    f: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Result<Vec<R>, VerifyError> {
    if workers <= 1 || items.len() < min {
        return Ok(f(items));
    }
    let per = items.len().div_ceil(workers);
    let f = &f;
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(per)
            .map(|part| s.spawn(move || f(part)))
            .collect();
        let mut all = Vec::with_capacity(items.len());
        for part in parts {
            all.extend(
                part.join()
                    .map_err(|_| VerifyError::CouldNotRun("a verification thread failed".into()))?,
            );
        }
        Ok(all)
    })
}

impl Opener<'_> {
    fn open_all(&self, items: &[Item], workers: usize) -> Result<Vec<Opened>, VerifyError> {
        on_every_core(items, workers, 512, |part| {
            part.iter().map(|i| self.open(i)).collect()
        })
    }

    fn open(&self, item: &Item) -> Opened {
        let seq = item.seq;
        let leaf = leaf_hash(&item.bytes);
        let entry = entry::decode(&item.bytes)
            .map_err(|err| tampered(seq, format!("stored bytes do not decode: {err}")));
        let values = match &entry {
            Ok(e) => self.values(e, item.row.as_deref()),
            Err(_) => Ok((Vec::new(), Vec::new())),
        };
        Opened {
            leaf,
            entry,
            values,
        }
    }

    /// The entry's stored personal values (formats 2 and 3), each checked against its commitment, and
    /// the digests of the index records the entry with those values must have. The plain entry
    /// is never built: index values are taken from the leaf and the value row as they are.
    fn values(
        &self,
        e: &entry::Entry,
        row: Option<&[u8]>,
    ) -> Result<(Vec<FieldRef>, Vec<IndexDigest>), VerifyError> {
        use prost::Message;
        let seq = e.seq;
        if !is_sealed(e.format_version) && row.is_some() {
            return Err(tampered(seq, "a value row is stored for a format-1 entry"));
        }
        let values = match row {
            Some(bytes) => entry::EntryValues::decode(bytes)
                .map_err(|err| tampered(seq, format!("its value row does not decode: {err}")))?,
            None => entry::EntryValues::default(),
        };
        let checked = check_values(e, &values).map_err(|err| tampered(seq, err.to_string()))?;
        let indexed = if is_sealed(e.format_version) {
            index_values_with(e, checked.present.iter().map(|(r, v)| (r.field, *v)))
        } else {
            index_values(e)
        };
        if let Some((family, value)) = indexed
            .iter()
            .find(|(_, v)| v.len() > MAX_INDEXED_VALUE_BYTES)
        {
            return Err(tampered(
                seq,
                format!(
                    "it holds a {} value of {} bytes, over the log's limit of \
                     {MAX_INDEXED_VALUE_BYTES}: the writer never stores one",
                    family.label(),
                    value.len()
                ),
            ));
        }
        let mut digests = Vec::new();
        if self.check_indexes {
            for (family, value) in indexed {
                if self.families.contains(&family) {
                    digests.push(self.digester.digest(family, value.as_bytes(), seq));
                }
            }
        }
        Ok((checked.redacted, digests))
    }
}

/// The log's redaction entries, found through the kind index before the pass (an index record
/// removed to hide one only makes the values it removed look deleted without cause; the index
/// check then also fails).
///
/// Lookups come in seq order, so a sweep keeps only the targets whose range holds the current
/// seq: the cost per redacted value is the number of overlapping targets, not of all of them.
/// Exports use it to find the redaction entries a bundle must carry, and bundle verification to
/// check them ([`Redactions::from_entries`]).
pub(crate) struct Redactions {
    /// Seqs of the redaction entries found through the index, ascending.
    entries: Vec<u64>,
    /// (redaction entry seq, target), by `from_seq`.
    targets: Vec<(u64, entry::RedactionTarget)>,
    next: usize,
    active: Vec<usize>,
}

impl Redactions {
    pub(crate) fn load(store: &dyn Store) -> Result<Redactions, VerifyError> {
        let mut found = Vec::new();
        let mut from = 0;
        loop {
            let seqs = store.index_seqs(IndexFamily::Kind, "redaction", from, CHUNK)?;
            let Some(last) = seqs.last().copied() else {
                break;
            };
            for seq in seqs {
                let Some(bytes) = store.entry(seq)? else {
                    continue;
                };
                if let Ok(e) = entry::decode(&bytes)
                    && e.kind == EntryKind::Redaction as i32
                    && let Some(r) = e.redaction
                {
                    found.push((seq, r));
                }
            }
            from = last + 1;
        }
        Ok(Redactions::from_entries(found))
    }

    /// The redaction entries given as (seq, what it removed), in any order.
    pub(crate) fn from_entries(found: Vec<(u64, entry::Redaction)>) -> Redactions {
        let mut entries = Vec::with_capacity(found.len());
        let mut targets = Vec::new();
        for (seq, r) in found {
            entries.push(seq);
            targets.extend(r.targets.into_iter().map(|t| (seq, t)));
        }
        entries.sort_unstable();
        targets.sort_by_key(|(_, t)| t.from_seq);
        Redactions {
            entries,
            targets,
            next: 0,
            active: Vec::new(),
        }
    }

    /// Whether a redaction entry after `seq` removed value `r` of entry `seq`. Calls must come
    /// with non-decreasing `seq`.
    fn covers(&mut self, seq: u64, r: FieldRef) -> bool {
        self.first_covering(seq, r).is_some()
    }

    /// The first redaction entry after `seq` that removed value `r` of entry `seq`. Calls must
    /// come with non-decreasing `seq`.
    pub(crate) fn first_covering(&mut self, seq: u64, r: FieldRef) -> Option<u64> {
        while let Some((_, t)) = self.targets.get(self.next)
            && t.from_seq <= seq
        {
            self.active.push(self.next);
            self.next += 1;
        }
        let targets = &self.targets;
        self.active.retain(|&i| targets[i].1.to_seq >= seq);
        self.active
            .iter()
            .map(|&i| &targets[i])
            .filter(|(at, t)| {
                *at > seq && crate::ingest::redaction_covers(t, r.field as i32, r.index)
            })
            .map(|(at, _)| *at)
            .min()
    }

    /// A redaction entry met in the pass: it names only earlier entries and was found by
    /// [`Redactions::load`].
    fn check_entry(&self, e: &entry::Entry) -> Result<(), VerifyError> {
        let Some(r) = &e.redaction else {
            return Err(tampered(e.seq, "a redaction entry that names nothing"));
        };
        if r.targets
            .iter()
            .any(|t| t.to_seq >= e.seq || t.from_seq > t.to_seq)
        {
            return Err(tampered(
                e.seq,
                "a redaction entry names entries that are not before it",
            ));
        }
        if self.entries.binary_search(&e.seq).is_err() {
            return Err(tampered(
                e.seq,
                "a redaction entry is missing from the index",
            ));
        }
        Ok(())
    }
}

/// The origin the log must carry: `--origin`, else the name its keys share.
fn pinned_origin(opts: &VerifyOptions<'_>) -> Result<String, VerifyError> {
    if let Some(o) = &opts.origin {
        return Ok(o.clone());
    }
    let mut names = opts.keys.keys().iter().map(VerifierKey::name);
    let first = names.next().unwrap_or_default();
    if names.any(|n| n != first) {
        return Err(VerifyError::CouldNotRun(
            "the key file's keys have different names; say which origin the log has with --origin"
                .into(),
        ));
    }
    Ok(first.to_owned())
}

/// The key that signs the log's first checkpoint: stated by the key file, or the single listed
/// key that signed the first stored checkpoint.
fn first_key(
    store: &dyn Store,
    keys: &LogKeys,
    all_keys: &[VerifierKey],
) -> Result<VerifierKey, VerifyError> {
    if let Some(k) = keys.first_key() {
        return Ok(k.clone());
    }
    let Some((size, note)) = store.checkpoints(0, 1)?.into_iter().next() else {
        return Err(VerifyError::CouldNotRun("the log has no checkpoint".into()));
    };
    let (_, signers) = open_note(&note, all_keys).map_err(|e| {
        tampered(
            size.saturating_sub(1),
            format!("checkpoint at size {size}: {e}"),
        )
    })?;
    match signers.as_slice() {
        [only] => Ok((*only).clone()),
        _ => Err(VerifyError::CouldNotRun(
            "the key file lists several keys without saying which signed from size 1; use the \
             log.pub written by `s62 rotate-key`, which states each key's sizes"
                .into(),
        )),
    }
}

fn describe_epochs(epochs: &[KeyEpoch]) -> String {
    epochs
        .iter()
        .map(|e| {
            format!(
                "{}+{} from {}{}",
                e.key.name(),
                hex::encode(e.key.key_id()),
                e.from_size,
                e.until_size.map(|u| format!(" to {u}")).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;

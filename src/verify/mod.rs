//! Offline verification of a stored log: trusts stored bytes, never stored conclusions.
//!
//! One pass in sequence order recomputes, from each entry's stored bytes: its leaf hash, the hash
//! chain, the Merkle tree (every stored node hash is compared with the recomputed one), the root at
//! every stored checkpoint (whose signature is checked against the given keys), and the index
//! records the entry must have. A checkpoint kept elsewhere ("trusted") must still be contained in
//! the log, which catches truncation and rollback. The first problem is reported with the sequence
//! number it concerns. Reads go through the [`Store`] trait; this module must not depend on tokio,
//! HTTP or RocksDB.

pub mod bundle;

use crate::log::checkpoint::{Checkpoint, open_checkpoint};
use crate::log::entry;
use crate::log::hash::{Hash, leaf_hash};
use crate::log::index::{IndexFamily, index_values};
use crate::log::merkle::{Frontier, NodeId};
use crate::log::note::VerifierKey;
use crate::log::store::{LogStore, Store, StoreError, split_index_key};
use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash as _, Hasher};

/// What to check beyond the log itself.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Keys that may have signed checkpoints (several after a key rotation).
    pub keys: Vec<VerifierKey>,
    /// Signed checkpoint notes kept outside the operator's control; the log must still contain each.
    pub trusted_checkpoints: Vec<String>,
    /// Whether to check the secondary indexes (on by default in the CLI).
    pub check_indexes: bool,
    /// Called now and then with (entries verified, entries in the log).
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
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

/// Reads stored node rows in seq order, in step with the entries.
struct RowCursor<'s> {
    store: &'s dyn Store,
    buf: VecDeque<(u64, Vec<u8>)>,
    next_from: u64,
    done: bool,
}

impl RowCursor<'_> {
    fn next(&mut self) -> Result<Option<(u64, Vec<u8>)>, VerifyError> {
        if self.buf.is_empty() && !self.done {
            let chunk = self.store.node_rows(self.next_from, CHUNK)?;
            self.done = chunk.len() < CHUNK;
            if let Some((last, _)) = chunk.last() {
                self.next_from = last + 1;
            }
            self.buf.extend(chunk);
        }
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

/// The expected index records of every entry, as digests.
fn expected_index_digests(
    store: &dyn Store,
    digester: &IndexDigester,
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
            out.extend(
                index_values(&e)
                    .into_iter()
                    .map(|(f, v)| digester.digest(f, v.as_bytes(), *seq)),
            );
        }
    }
    Ok(out)
}

/// Streams every stored index key through `f` as (family, value, seq).
fn for_each_stored_index(
    store: &dyn Store,
    mut f: impl FnMut(IndexFamily, &[u8], u64),
) -> Result<(), VerifyError> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let keys = store.index_keys(after.as_deref(), CHUNK)?;
        for k in &keys {
            let (family, value, seq) = split_index_key(k).ok_or_else(|| VerifyError::Tampered {
                seq: None,
                problem: format!("a stored index key is malformed: {}", hex::encode(k)),
            })?;
            f(family, value, seq);
        }
        match keys.into_iter().last() {
            Some(k) => after = Some(k),
            None => return Ok(()),
        }
    }
}

/// The slow path after the summaries differ: sort both sides and name the first entry affected.
fn locate_index_mismatch(
    store: &dyn Store,
    digester: &IndexDigester,
) -> Result<Option<u64>, VerifyError> {
    let mut expected = expected_index_digests(store, digester)?;
    let mut stored = Vec::with_capacity(expected.len());
    for_each_stored_index(store, |f, v, seq| stored.push(digester.digest(f, v, seq)))?;
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
    if opts.keys.is_empty() {
        return Err(VerifyError::CouldNotRun("no verifier keys given".into()));
    }
    let total = store.entry_count()?;
    let Some((last_cp_size, last_note)) = store.latest_checkpoint()? else {
        if total == 0 {
            return Err(VerifyError::CouldNotRun(
                "the log is empty: nothing to verify".into(),
            ));
        }
        return Err(tampered(0, "the log has entries but no checkpoint"));
    };
    let (last_cp, _) =
        open_checkpoint(&last_note, &opts.keys, None).map_err(|e| VerifyError::Tampered {
            seq: last_cp_size.checked_sub(1),
            problem: format!("latest checkpoint (size {last_cp_size}): {e}"),
        })?;
    let origin = last_cp.origin.clone();

    // Trusted checkpoints: parse and check their signatures up front.
    let mut trusted: Vec<Checkpoint> = Vec::new();
    for note in &opts.trusted_checkpoints {
        let (cp, _) = open_checkpoint(note, &opts.keys, Some(&origin)).map_err(|e| {
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
    let mut expected_index = IndexSum::default();
    let mut frontier = Frontier::new();
    let mut rows = RowCursor {
        store,
        buf: VecDeque::new(),
        next_from: 0,
        done: false,
    };
    let mut expected_row: Vec<u8> = Vec::with_capacity(64 * 32);
    let mut completed: Vec<(NodeId, Hash)> = Vec::new();
    let mut checkpoints = store
        .checkpoints(0, CHUNK)?
        .into_iter()
        .collect::<VecDeque<_>>();
    let mut checkpoints_seen = 0u64;
    let mut next_cp_from = checkpoints.back().map_or(u64::MAX, |(s, _)| s + 1);
    let mut cps_done = checkpoints.len() < CHUNK;
    let mut prev = Hash::GENESIS;
    let mut last_time = i64::MIN;
    let mut next_seq = 0u64;
    let mut trusted_seen = 0u64;

    // Checkpoints for size 0 are never written; one there is out of place.
    if let Some((0, _)) = checkpoints.front() {
        return Err(VerifyError::Tampered {
            seq: None,
            problem: "a checkpoint for the empty tree is stored".into(),
        });
    }

    loop {
        let chunk = store.entries(next_seq, CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        for (key_seq, bytes) in &chunk {
            let seq = next_seq;
            if *key_seq != seq {
                return Err(tampered(
                    seq,
                    format!("missing: the next stored entry is {key_seq}"),
                ));
            }
            let leaf = leaf_hash(bytes);
            let e = entry::decode(bytes)
                .map_err(|err| tampered(seq, format!("stored bytes do not decode: {err}")))?;
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
            if opts.check_indexes {
                for (family, value) in index_values(&e) {
                    expected_index.add(digester.digest(family, value.as_bytes(), seq));
                }
            }

            let size = seq + 1;
            // Stored checkpoints at this size.
            if checkpoints.is_empty() && !cps_done {
                let more = store.checkpoints(next_cp_from, CHUNK)?;
                cps_done = more.len() < CHUNK;
                next_cp_from = more.last().map_or(next_cp_from, |(s, _)| s + 1);
                checkpoints.extend(more);
            }
            if let Some((cp_size, note)) = checkpoints.front()
                && *cp_size == size
            {
                let (cp, _) = open_checkpoint(note, &opts.keys, Some(&origin))
                    .map_err(|err| tampered(seq, format!("checkpoint at size {size}: {err}")))?;
                if cp.size != size {
                    return Err(tampered(
                        seq,
                        format!("checkpoint stored under size {size} says size {}", cp.size),
                    ));
                }
                if cp.root != frontier.root() {
                    return Err(tampered(
                        seq,
                        format!("checkpoint at size {size} does not match the entries up to here"),
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
    if last_cp_size != total {
        return Err(tampered(
            last_cp_size,
            format!("entries from {last_cp_size} on are not covered by any signed checkpoint"),
        ));
    }
    if let Some((row_seq, _)) = rows.next()? {
        return Err(tampered(
            row_seq,
            "a tree node row is stored beyond the end of the log",
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
        let mut stored_index = IndexSum::default();
        for_each_stored_index(store, |f, v, seq| {
            stored_index.add(digester.digest(f, v, seq))
        })?;
        index_count = stored_index.count;
        if expected_index != stored_index {
            return Err(VerifyError::Tampered {
                seq: locate_index_mismatch(store, &digester)?,
                problem: "the secondary indexes do not match the entries (a record is missing, extra or points at the wrong entry)".into(),
            });
        }
    }

    Ok(Report {
        origin,
        entries: total,
        root: frontier.root(),
        checkpoints: checkpoints_seen,
        index_records: index_count,
        trusted_checkpoints: trusted_seen,
    })
}

#[cfg(test)]
mod tests;

//! Where the log lives: a small key-value [`Store`] trait, the key layout, and typed reads over it.
//!
//! Every backend implements four primitives (atomic synced write, get, forward scan, last key);
//! the log's keyspace and typed reads ([`LogStore`]) are written once on top of them, so the
//! in-memory store used by tests and the RocksDB store behave alike (one conformance suite runs
//! against both). Only `rocks.rs` may import `rocksdb`; nothing here knows about tokio or a clock.
//!
//! Key layout (all integers big-endian, so byte order is numeric order):
//!
//! | key | value |
//! |---|---|
//! | `e` seq:u64 | the entry's stored bytes (the Merkle leaf) |
//! | `n` seq:u64 | hashes of the perfect subtrees completed by leaf `seq`: levels 0..=k, 32 bytes each |
//! | `c` size:u64 | the signed checkpoint note for that tree size, UTF-8 |
//! | `i` family:u8 len:u16 value seq:u64 | empty: index record |
//! | `v` seq:u64 | formats 2 and 3: the entry's personal values and salts (`s62.v1.EntryValues`); redaction rewrites it |
//! | `m` `index-families` | the family bytes of the index families built for every entry, ascending; absent: [`IndexFamily::ORIGINAL`] |

pub mod memory;
#[cfg(feature = "rocksdb")]
pub mod rocks;

use super::entry::EntryValues;
use super::hash::Hash;
use super::index::{IndexFamily, IndexRecord, MAX_INDEXED_VALUE_BYTES};
use super::merkle::NodeId;

/// A failure of the storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend refused or failed an operation (I/O error, disk full, lock held, ...).
    #[error("storage backend: {0}")]
    Backend(String),
    /// A stored key or value does not have the shape the layout requires.
    #[error("corrupt storage: {0}")]
    Corrupt(String),
}

/// Key-value pairs as a backend returns them.
/// One key-value pair.
pub type Pair = (Vec<u8>, Vec<u8>);
/// Key-value pairs in key order.
pub type Pairs = Vec<Pair>;

/// The primitives a backend provides.
pub trait Store: Send + Sync {
    /// Writes every pair atomically and durably (fsync'd) — all or nothing.
    fn write(&self, puts: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError>;
    /// Writes `puts` and removes `deletes`, atomically and durably — all or nothing. Stores that
    /// cannot remove keys refuse a write that asks them to (redaction needs it).
    fn write_with_deletes(&self, puts: &[Pair], deletes: &[Vec<u8>]) -> Result<(), StoreError> {
        if deletes.is_empty() {
            return self.write(puts);
        }
        Err(StoreError::Backend("this store cannot remove keys".into()))
    }
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` pairs with keys `>= from` that start with `prefix`, in key order.
    fn scan(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Pairs, StoreError>;
    /// The last pair whose key starts with `prefix`.
    fn last(&self, prefix: &[u8]) -> Result<Option<Pair>, StoreError>;
    /// Physically drops deleted and overwritten data in the key ranges `[start, end)` from the
    /// backend's files, after a redaction. A store that keeps no old versions does nothing.
    fn purge(&self, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let _ = ranges;
        Ok(())
    }
    /// For read-only followers of a live log: see what the writer has committed since opening.
    fn catch_up(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

const ENTRY: u8 = b'e';
const NODE: u8 = b'n';
const CHECKPOINT: u8 = b'c';
const INDEX: u8 = b'i';
const VALUES: u8 = b'v';
const META: u8 = b'm';

/// Every index record's key lies in this range.
pub fn index_range() -> (Vec<u8>, Vec<u8>) {
    (vec![INDEX], vec![INDEX + 1])
}

/// Key of the record naming the index families built for every entry.
pub fn index_families_key() -> Vec<u8> {
    let mut k = vec![META];
    k.extend_from_slice(b"index-families");
    k
}

/// The pair recording `families` as built for every entry (see [`LogStore::index_families`]).
pub fn index_families_record(families: &[IndexFamily]) -> Pair {
    let mut bytes: Vec<u8> = families.iter().map(|f| *f as u8).collect();
    bytes.sort_unstable();
    bytes.dedup();
    (index_families_key(), bytes)
}

/// Key of the personal values of sealed (format 2 or 3) entry `seq`.
pub fn values_key(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(VALUES);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Key of entry `seq`.
pub fn entry_key(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(ENTRY);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Key of the node row of leaf `seq`: the hashes of every perfect subtree whose last leaf is
/// `seq` (level 0 is the leaf hash itself; level `l` exists when the low `l` bits of `seq` are
/// all ones). One row per entry keeps the tree at one write per entry.
pub fn node_row_key(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(NODE);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The leaf whose node row holds `id`: the last leaf it covers.
pub fn node_row_seq(id: NodeId) -> Option<u64> {
    id.index
        .checked_add(1)?
        .checked_mul(1u64.checked_shl(u32::from(id.level))?)?
        .checked_sub(1)
}

/// Key of the checkpoint for a tree size.
pub fn checkpoint_key(size: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(CHECKPOINT);
    k.extend_from_slice(&size.to_be_bytes());
    k
}

/// The key prefix of (family, value), or `None` for a value longer than
/// [`MAX_INDEXED_VALUE_BYTES`] (the writer never stores one, so nothing is indexed under it).
fn index_prefix(family: IndexFamily, value: &str) -> Option<Vec<u8>> {
    let v = value.as_bytes();
    if v.len() > MAX_INDEXED_VALUE_BYTES {
        return None;
    }
    let len = u16::try_from(v.len()).ok()?;
    let mut k = Vec::with_capacity(4 + v.len() + 8);
    k.push(INDEX);
    k.push(family as u8);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(v);
    Some(k)
}

/// Key of an index record; `None` when its value is longer than [`MAX_INDEXED_VALUE_BYTES`].
pub fn index_key(rec: &IndexRecord) -> Option<Vec<u8>> {
    let mut k = index_prefix(rec.family, &rec.value)?;
    k.extend_from_slice(&rec.seq.to_be_bytes());
    Some(k)
}

/// The smallest key greater than every key starting with `prefix` (None when there is none).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn u64_at(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Splits a stored index key into (family, value bytes, seq) without copying.
pub fn split_index_key(key: &[u8]) -> Option<(IndexFamily, &[u8], u64)> {
    if key.len() < 12 || key[0] != INDEX {
        return None;
    }
    let family = IndexFamily::from_byte(key[1])?;
    let len = u16::from_be_bytes([key[2], key[3]]) as usize;
    if key.len() != 4 + len + 8 {
        return None;
    }
    Some((family, &key[4..4 + len], u64_at(&key[4 + len..])?))
}

fn parse_index_key(key: &[u8]) -> Result<IndexRecord, StoreError> {
    let (family, value, seq) = split_index_key(key)
        .ok_or_else(|| StoreError::Corrupt(format!("index key {}", hex::encode(key))))?;
    let value = std::str::from_utf8(value)
        .map_err(|_| StoreError::Corrupt(format!("index key {}", hex::encode(key))))?;
    Ok(IndexRecord {
        family,
        value: value.to_owned(),
        seq,
    })
}

/// Everything one commit writes: the writer builds it, the store applies it in one synced batch.
#[derive(Clone, Debug, Default)]
pub struct CommitBatch {
    /// (seq, stored bytes), consecutive.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Perfect subtrees completed by these entries.
    pub nodes: Vec<(NodeId, Hash)>,
    pub index: Vec<IndexRecord>,
    /// (tree size, signed note) covering every entry above, when this commit signs one (the
    /// writer signs at its checkpoint cadence, not every commit).
    pub checkpoint: Option<(u64, String)>,
    /// Smaller checkpoints written in the same commit (the audit hub stores every checkpoint it
    /// verified, many per commit; the writer never fills this).
    pub earlier_checkpoints: Vec<(u64, String)>,
    /// Formats 2 and 3: (seq, encoded `EntryValues`) to store (new entries, and rewrites by a redaction).
    pub values: Vec<(u64, Vec<u8>)>,
    /// Keys to remove in the same write (index records of redacted values).
    pub deletes: Vec<Vec<u8>>,
}

impl CommitBatch {
    fn to_puts(&self) -> Result<Pairs, StoreError> {
        let mut puts =
            Vec::with_capacity(self.entries.len() + self.nodes.len() + self.index.len() + 1);
        for (seq, bytes) in &self.entries {
            puts.push((entry_key(*seq), bytes.clone()));
        }
        // `nodes` comes from Frontier::push: each leaf (level 0) followed by the parents it completed.
        let mut row: Option<(u64, Vec<u8>)> = None;
        for (id, h) in &self.nodes {
            if id.level == 0 {
                if let Some((seq, bytes)) = row.take() {
                    puts.push((node_row_key(seq), bytes));
                }
                row = Some((id.index, Vec::with_capacity(64)));
            }
            if let Some((_, bytes)) = row.as_mut() {
                bytes.extend_from_slice(&h.0);
            }
        }
        if let Some((seq, bytes)) = row {
            puts.push((node_row_key(seq), bytes));
        }
        let index_from = puts.len();
        for rec in &self.index {
            let key = index_key(rec).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "entry {}: a {} value of {} bytes cannot be indexed",
                    rec.seq,
                    rec.family.label(),
                    rec.value.len()
                ))
            })?;
            puts.push((key, Vec::new()));
        }
        // In key order, so RocksDB inserts each next to the one before (entries, nodes and
        // values come in order already).
        puts[index_from..].sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (seq, bytes) in &self.values {
            puts.push((values_key(*seq), bytes.clone()));
        }
        for (size, note) in self.earlier_checkpoints.iter().chain(&self.checkpoint) {
            puts.push((checkpoint_key(*size), note.clone().into_bytes()));
        }
        Ok(puts)
    }
}

/// Why [`LogStore::replace_checkpoint_note`] refused to write.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointUpdateError {
    /// The backend failed, or the stored note is corrupt.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No checkpoint is stored for that size.
    #[error("no checkpoint is stored for tree size {0}")]
    Missing(u64),
    /// The new note is not the stored note with signature lines added: it would change the
    /// checkpoint text or drop, reorder or alter a signature already stored.
    #[error("refused to replace the checkpoint for tree size {size}: {why}")]
    WouldChange {
        /// The tree size concerned.
        size: u64,
        /// What the replacement would have changed.
        why: &'static str,
    },
}

/// Typed reads and the typed writes, for every [`Store`].
pub trait LogStore: Store {
    /// Applies a commit atomically and durably.
    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.write_with_deletes(&batch.to_puts()?, &batch.deletes)
    }

    /// The stored personal values of entry `seq` (empty when none are stored: a format-1 entry,
    /// or every value redacted).
    fn values(&self, seq: u64) -> Result<EntryValues, StoreError> {
        decode_values(seq, &self.get(&values_key(seq))?.unwrap_or_default())
    }

    /// Entry `seq` with its personal values put back and checked against its leaf.
    fn opened(&self, seq: u64) -> Result<Option<OpenedEntry>, StoreError> {
        let Some(leaf) = self.entry(seq)? else {
            return Ok(None);
        };
        open_leaf(seq, leaf, || self.get(&values_key(seq))).map(Some)
    }

    /// Up to `limit` entries from `from` on, opened as [`LogStore::opened`] does.
    fn opened_entries(&self, from: u64, limit: usize) -> Result<Vec<OpenedEntry>, StoreError> {
        self.entries(from, limit)?
            .into_iter()
            .map(|(seq, leaf)| open_leaf(seq, leaf, || self.get(&values_key(seq))))
            .collect()
    }

    /// The stored bytes of entry `seq`.
    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&entry_key(seq))
    }

    /// Up to `limit` entries from `from` on, as (seq from the key, stored bytes), in order.
    fn entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.scan(&[ENTRY], &entry_key(from), limit)?
            .into_iter()
            .map(|(k, v)| {
                let seq = u64_at(&k[1..])
                    .ok_or_else(|| StoreError::Corrupt(format!("entry key {}", hex::encode(&k))))?;
                Ok((seq, v))
            })
            .collect()
    }

    /// Number of entries, taken as one past the last stored seq.
    fn entry_count(&self) -> Result<u64, StoreError> {
        match self.last(&[ENTRY])? {
            None => Ok(0),
            Some((k, _)) => u64_at(&k[1..])
                .map(|s| s + 1)
                .ok_or_else(|| StoreError::Corrupt(format!("entry key {}", hex::encode(&k)))),
        }
    }

    /// A stored perfect-subtree hash.
    fn node(&self, id: NodeId) -> Result<Option<Hash>, StoreError> {
        let Some(seq) = node_row_seq(id) else {
            return Ok(None);
        };
        let Some(row) = self.get(&node_row_key(seq))? else {
            return Ok(None);
        };
        if row.is_empty() || row.len() % Hash::LEN != 0 {
            return Err(StoreError::Corrupt(format!(
                "node row {seq} is {} bytes",
                row.len()
            )));
        }
        let at = usize::from(id.level) * Hash::LEN;
        Ok(row.get(at..at + Hash::LEN).and_then(Hash::from_slice))
    }

    /// Up to `limit` node rows from leaf `from` on, as (seq, concatenated hashes), in order.
    fn node_rows(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.scan(&[NODE], &node_row_key(from), limit)?
            .into_iter()
            .map(|(k, v)| {
                let seq = u64_at(&k[1..])
                    .ok_or_else(|| StoreError::Corrupt(format!("node key {}", hex::encode(&k))))?;
                Ok((seq, v))
            })
            .collect()
    }

    /// Up to `limit` value rows from entry `from` on, as (seq, encoded `EntryValues`), in order.
    fn values_rows(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.scan(&[VALUES], &values_key(from), limit)?
            .into_iter()
            .map(|(k, v)| {
                let seq = u64_at(&k[1..]).ok_or_else(|| {
                    StoreError::Corrupt(format!("values key {}", hex::encode(&k)))
                })?;
                Ok((seq, v))
            })
            .collect()
    }

    /// The signed checkpoint note stored for `size`.
    fn checkpoint(&self, size: u64) -> Result<Option<String>, StoreError> {
        self.get(&checkpoint_key(size))?
            .map(|v| {
                String::from_utf8(v)
                    .map_err(|_| StoreError::Corrupt(format!("checkpoint {size} is not UTF-8")))
            })
            .transpose()
    }

    /// Up to `limit` checkpoints with size `>= from_size`, as (size from the key, note).
    fn checkpoints(&self, from_size: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        self.scan(&[CHECKPOINT], &checkpoint_key(from_size), limit)?
            .into_iter()
            .map(|(k, v)| {
                let size = u64_at(&k[1..]).ok_or_else(|| {
                    StoreError::Corrupt(format!("checkpoint key {}", hex::encode(&k)))
                })?;
                let note = String::from_utf8(v)
                    .map_err(|_| StoreError::Corrupt(format!("checkpoint {size} is not UTF-8")))?;
                Ok((size, note))
            })
            .collect()
    }

    /// The checkpoint with the largest size.
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        match self.last(&[CHECKPOINT])? {
            None => Ok(None),
            Some((k, v)) => {
                let size = u64_at(&k[1..]).ok_or_else(|| {
                    StoreError::Corrupt(format!("checkpoint key {}", hex::encode(&k)))
                })?;
                let note = String::from_utf8(v)
                    .map_err(|_| StoreError::Corrupt(format!("checkpoint {size} is not UTF-8")))?;
                Ok(Some((size, note)))
            }
        }
    }

    /// Replaces the checkpoint note stored for `size` by `note`, which must be the stored note
    /// byte for byte followed by more signature lines (witness cosignatures): the text and every
    /// signature already stored are kept, so nothing a verifier relied on can change. Returns
    /// whether anything was written (`false` when `note` is what is stored). The caller serializes
    /// updates of one size (the witness client does them one at a time).
    fn replace_checkpoint_note(
        &self,
        size: u64,
        note: &str,
    ) -> Result<bool, CheckpointUpdateError> {
        let stored = self
            .checkpoint(size)?
            .ok_or(CheckpointUpdateError::Missing(size))?;
        if stored == note {
            return Ok(false);
        }
        let would_change = |why| CheckpointUpdateError::WouldChange { size, why };
        if !note.starts_with(&stored) {
            return Err(would_change(
                "the new note does not start with the stored note (its text or a stored signature differs)",
            ));
        }
        crate::log::note::parse_note(note)
            .map_err(|_| would_change("the new note is not a valid signed note"))?;
        self.write(&[(checkpoint_key(size), note.as_bytes().to_vec())])?;
        Ok(true)
    }

    /// The index families built for every entry, in [`IndexFamily::ALL`] order: as recorded by
    /// the writer, or
    /// [`IndexFamily::ORIGINAL`] for a log no writer of this version has opened yet. Only these
    /// are complete, so only these can be checked against the entries.
    fn index_families(&self) -> Result<Vec<IndexFamily>, StoreError> {
        Ok(match self.get(&index_families_key())? {
            None => IndexFamily::ORIGINAL.to_vec(),
            // In `IndexFamily::ALL` order; a byte this build does not know names a family it
            // neither builds nor checks.
            Some(bytes) => IndexFamily::ALL
                .into_iter()
                .filter(|f| bytes.contains(&(*f as u8)))
                .collect(),
        })
    }

    /// Seqs of entries indexed under (family, value), ascending, from `from_seq` on.
    fn index_seqs(
        &self,
        family: IndexFamily,
        value: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let Some(prefix) = index_prefix(family, value) else {
            return Ok(Vec::new());
        };
        let mut from = prefix.clone();
        from.extend_from_slice(&from_seq.to_be_bytes());
        self.scan(&prefix, &from, limit)?
            .into_iter()
            .map(|(k, _)| {
                u64_at(&k[prefix.len()..])
                    .ok_or_else(|| StoreError::Corrupt(format!("index key {}", hex::encode(&k))))
            })
            .collect()
    }

    /// Raw stored index keys after `after` (exclusive), in key order, up to `limit`; see
    /// [`split_index_key`].
    fn index_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let from = match after {
            None => vec![INDEX],
            Some(k) => {
                let mut k = k.to_vec();
                k.push(0); // the smallest key strictly greater than `after`
                k
            }
        };
        Ok(self
            .scan(&[INDEX], &from, limit)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Every stored index record after `after` (exclusive), in key order, up to `limit`.
    fn index_records(
        &self,
        after: Option<&IndexRecord>,
        limit: usize,
    ) -> Result<Vec<IndexRecord>, StoreError> {
        let after = after.and_then(index_key);
        self.index_keys(after.as_deref(), limit)?
            .iter()
            .map(|k| parse_index_key(k))
            .collect()
    }
}

impl<S: Store + ?Sized> LogStore for S {}

/// An entry as readers see it: its stored bytes (the leaf), its stored value row (formats 2 and 3;
/// empty for format 1), and the entry with its personal values put back
/// ([`crate::log::seal::unseal`]); `redacted` names values no longer stored.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenedEntry {
    pub seq: u64,
    pub leaf: Vec<u8>,
    pub values: Vec<u8>,
    pub entry: super::entry::Entry,
    pub redacted: Vec<super::seal::FieldRef>,
}

fn decode_values(seq: u64, bytes: &[u8]) -> Result<EntryValues, StoreError> {
    use prost::Message;
    EntryValues::decode(bytes)
        .map_err(|e| StoreError::Corrupt(format!("values of entry {seq}: {e}")))
}

/// [`open_leaf`] for a leaf already decoded, with its value row (ignored for format 1): the
/// entry with its values put back, each checked against its commitment.
pub fn unseal_leaf(
    seq: u64,
    sealed: &super::entry::Entry,
    values: &[u8],
) -> Result<super::seal::Opened, StoreError> {
    let values = if super::seal::is_sealed(sealed.format_version) {
        values
    } else {
        &[]
    };
    super::seal::unseal(sealed, &decode_values(seq, values)?)
        .map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))
}

/// Opens a leaf with the value row `row` fetches (only asked for sealed entries).
pub fn open_leaf(
    seq: u64,
    leaf: Vec<u8>,
    row: impl FnOnce() -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<OpenedEntry, StoreError> {
    let sealed = super::entry::decode(&leaf)
        .map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
    let values = if super::seal::is_sealed(sealed.format_version) {
        row()?.unwrap_or_default()
    } else {
        Vec::new()
    };
    let opened = unseal_leaf(seq, &sealed, &values)?;
    Ok(OpenedEntry {
        seq,
        leaf,
        values,
        entry: opened.entry,
        redacted: opened.redacted,
    })
}

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
pub(crate) mod forge;

/// Stored node hashes as a [`NodeSource`](super::merkle::NodeSource) for proofs.
pub struct StoreNodes<'a, S: ?Sized>(pub &'a S);

impl<S: Store + ?Sized> super::merkle::NodeSource for StoreNodes<'_, S> {
    type Error = StoreError;
    fn node(&self, id: NodeId) -> Result<Hash, StoreError> {
        self.0
            .node(id)?
            .ok_or_else(|| StoreError::Corrupt(format!("tree node {id} is missing")))
    }
}

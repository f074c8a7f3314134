//! Test support: what an insider with write access to the log folder (and no signing key) can do
//! to the stored log — rewrite history from an entry on with every link and tree node made
//! consistent again, cut the tail cleanly, delete checkpoints. Tests then check that the writer
//! and the verifier catch each.

use super::memory::MemoryStore;
use super::{LogStore, checkpoint_key, entry_key, index_key, node_row_key, values_key};
use crate::log::entry::{self, Entry};
use crate::log::hash::{Hash, leaf_hash};
use crate::log::index::index_records;
use crate::log::merkle::Frontier;

/// Rewrites entries `from..` (changing entry `from` with `mutate`), re-links every later entry's
/// previous-entry hash, recomputes every node row and index record, and deletes the checkpoints
/// the rewrite invalidates (sizes above `from`). Returns the size and the new root, for a forged
/// checkpoint.
pub fn rewrite_from(
    store: &MemoryStore,
    from: u64,
    mutate: impl FnOnce(&mut Entry),
) -> (u64, Hash) {
    let n = store.entry_count().expect("count");
    let mut leaves = Vec::new();
    let mut prev = Hash::GENESIS;
    let mut mutate = Some(mutate);
    for seq in 0..n {
        let bytes = store.entry(seq).expect("read").expect("present");
        let bytes = if seq < from {
            bytes
        } else {
            // Formats 2 and 3: work on the values as written, then seal again (no key is needed).
            let mut e = store.opened(seq).expect("read").expect("present").entry;
            for rec in index_records(&e) {
                store.tamper(&index_key(&rec).expect("short value"), None);
            }
            if seq == from
                && let Some(m) = mutate.take()
            {
                m(&mut e);
            }
            e.prev_leaf_hash = prev.0.to_vec();
            for rec in index_records(&e) {
                store.tamper(&index_key(&rec).expect("short value"), Some(Vec::new()));
            }
            if crate::log::seal::is_sealed(e.format_version) {
                let format = e.format_version;
                let values = crate::log::seal::seal(&mut e, &[9u8; 32], format);
                store.tamper(
                    &values_key(seq),
                    Some(prost::Message::encode_to_vec(&values)),
                );
            }
            let bytes = entry::encode(&e);
            store.tamper(&entry_key(seq), Some(bytes.clone()));
            bytes
        };
        prev = leaf_hash(&bytes);
        leaves.push(prev);
    }
    let mut frontier = Frontier::new();
    let mut completed = Vec::new();
    for (seq, leaf) in leaves.iter().enumerate() {
        completed.clear();
        frontier.push(*leaf, &mut completed);
        let row: Vec<u8> = completed.iter().flat_map(|(_, h)| h.0).collect();
        store.tamper(&node_row_key(seq as u64), Some(row));
    }
    for size in from + 1..=n {
        store.tamper(&checkpoint_key(size), None);
    }
    (n, frontier.root())
}

/// Removes entries `keep..` with their node rows, index records and checkpoints: a clean cut that
/// leaves a valid prefix.
pub fn cut_tail(store: &MemoryStore, keep: u64) {
    let n = store.entry_count().expect("count");
    for seq in keep..n {
        let e = store.opened(seq).expect("read").expect("present").entry;
        for rec in index_records(&e) {
            store.tamper(&index_key(&rec).expect("short value"), None);
        }
        store.tamper(&values_key(seq), None);
        store.tamper(&entry_key(seq), None);
        store.tamper(&node_row_key(seq), None);
        store.tamper(&checkpoint_key(seq + 1), None);
    }
}

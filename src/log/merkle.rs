//! RFC 6962 / RFC 9162 Merkle tree maths over leaf hashes.
//!
//! This module knows how the log's tree is shaped and nothing about where its nodes live:
//!
//! * [`Frontier`] is the right edge ("compact range") of the tree: appending a leaf hash
//!   yields the new root and every perfect subtree the leaf completed, which is exactly
//!   what storage has to persist.
//! * [`inclusion_proof`], [`consistency_proof`] and [`root_at`] build RFC 6962 §2.1.1 /
//!   §2.1.2 proofs and historic roots from O(log n) stored node hashes, read through the
//!   [`NodeSource`] trait. Only perfect subtrees ([`NodeId`]) are ever read; the at most one
//!   non-perfect subtree on a tree's right edge is recomputed from its perfect parts.
//! * [`verify_inclusion`] and [`verify_consistency`] are the RFC 9162 §2.1.3.2 / §2.1.4.2
//!   verifiers, strict about proof length, matching transparency-dev/merkle.
//!
//! Invariants:
//! * Leaves are 0-based. A tree of `n` leaves splits at the largest power of two strictly
//!   less than `n` (not `n / 2`).
//! * The empty tree's root is SHA-256("") ([`empty_root`]), not 32 zero bytes.
//! * A [`NodeId`] at level `l` and index `i` always denotes the perfect subtree over leaves
//!   `[i << l, (i + 1) << l)`; its hash never changes once the tree has grown past it.
//! * A [`Frontier`] of size `n` holds exactly `n.count_ones()` peaks, largest first.
//!
//! This module must stay pure: no storage engine, no tokio, no clock, no I/O. It depends on
//! `std`, the hash functions in [`super::hash`] and `thiserror` only, so that third-party
//! verifiers' behaviour can be matched bit for bit in plain unit tests.

use std::collections::HashMap;
use std::fmt;

use super::hash::{Hash, empty_root, node_hash};

/// A complete (perfect) subtree: covers leaves `[index << level, (index + 1) << level)`.
/// Level 0 = a leaf hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    /// The leaf hash of leaf `index`.
    pub const fn leaf(index: u64) -> Self {
        NodeId { level: 0, index }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node(level {}, index {})", self.level, self.index)
    }
}

/// Errors building tree state from parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// A frontier for `size` leaves must hold exactly `size.count_ones()` peaks.
    #[error("frontier of size {size} needs {expected} peaks, got {actual}")]
    PeakCountMismatch {
        size: u64,
        expected: usize,
        actual: usize,
    },
}

/// Errors building a proof or a root from stored nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E> {
    /// The request names no valid proof: for an inclusion proof `requested` is the leaf
    /// index and must be `< size`; for a consistency proof `requested` is the old size and
    /// must satisfy `0 < requested <= size` (the new size).
    #[error("proof request out of range: {requested} against tree size {size}")]
    OutOfRange { requested: u64, size: u64 },
    /// The node source failed, e.g. a stored node was missing or unreadable.
    #[error("node source failed: {0}")]
    Source(E),
}

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Inclusion: the leaf index is not less than the tree size (this includes size 0).
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// Consistency: the old size is greater than the new size.
    #[error("invalid sizes: old size {old} is greater than new size {new}")]
    InvalidSizes { old: u64, new: u64 },
    /// Consistency: the old tree is empty. Rejected here, as transparency-dev/merkle does;
    /// callers whose protocol accepts an empty old tree (C2SP tlog-witness) decide that
    /// themselves before calling.
    #[error("consistency from an empty tree is not verified here")]
    EmptyOldTree,
    /// The proof does not have exactly the number of nodes the sizes require (extra or
    /// missing nodes).
    #[error("wrong proof length: expected {expected} nodes, got {actual}")]
    WrongProofLength { expected: usize, actual: usize },
    /// The root recomputed from the proof (for consistency: the new tree's root) does not
    /// match the given root; also used when `old == new` and the two given roots differ.
    #[error("root mismatch")]
    RootMismatch,
    /// Consistency: the old tree's root recomputed from the proof does not match the given
    /// old root.
    #[error("old root mismatch")]
    OldRootMismatch,
}

/// The right edge ("compact range") of a tree of `size` leaves: the roots of its perfect
/// subtrees, left to right (largest first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a frontier from a stored size and its peaks (largest first). Checks that
    /// there is one peak per set bit of `size`; the hashes themselves cannot be checked here.
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if peaks.len() != expected {
            return Err(MerkleError::PeakCountMismatch {
                size,
                expected,
                actual: peaks.len(),
            });
        }
        Ok(Frontier { size, peaks })
    }

    /// Number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Roots of the perfect subtrees, largest (leftmost) first; ids are `peak_ids(size)`.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf hash; pushes every node it completes onto `completed` — the leaf
    /// itself at level 0 first, then each parent that became complete, in increasing level.
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves (the index space is exhausted).
    pub fn push(&mut self, leaf: Hash, completed: &mut Vec<(NodeId, Hash)>) {
        let new_size = self
            .size
            .checked_add(1)
            .expect("invariant: a log never reaches u64::MAX leaves");
        let mut id = NodeId::leaf(self.size);
        let mut hash = leaf;
        completed.push((id, hash));
        // Each set low bit of the old size is a peak of the same level as `hash`, sitting
        // immediately to its left: merge them. Bit 63 can only be set here if
        // size >= 2^63, and then the loop stops before level 64 because size < u64::MAX.
        while (self.size >> id.level) & 1 == 1 {
            let left = self
                .peaks
                .pop()
                .expect("invariant: peaks.len() == size.count_ones(), and this bit is set");
            hash = node_hash(&left, &hash);
            id = NodeId {
                level: id.level + 1,
                index: id.index >> 1,
            };
            completed.push((id, hash));
        }
        self.peaks.push(hash);
        self.size = new_size;
    }

    /// RFC 6962 root of the current tree (`empty_root()` for size 0).
    pub fn root(&self) -> Hash {
        fold_peaks(self.peaks.iter().copied())
    }
}

/// Folds peaks (largest first) into the RFC 6962 root: `H(p0, H(p1, ... H(pk-1, pk)))`.
/// This is the RFC's recursive definition unrolled, because the split point of a size `n`
/// that is not a power of two is its highest set bit, i.e. the first peak.
fn fold_peaks<I>(peaks: I) -> Hash
where
    I: DoubleEndedIterator<Item = Hash>,
{
    let mut rev = peaks.rev();
    match rev.next() {
        None => empty_root(),
        Some(last) => rev.fold(last, |acc, left| node_hash(&left, &acc)),
    }
}

/// Ids of the perfect subtrees that make up a tree of `size` leaves, left to right.
pub fn peak_ids(size: u64) -> Vec<NodeId> {
    range_ids(0, size)
}

/// Ids of the perfect subtrees, left to right, covering leaves `[start, start + len)`, where
/// `start` is a multiple of the largest power of two not exceeding `len` (true of every
/// subtree the RFC 6962 recursion produces).
fn range_ids(start: u64, len: u64) -> Vec<NodeId> {
    let mut ids = Vec::with_capacity(len.count_ones() as usize);
    let mut pos = start;
    for level in (0..64u8).rev() {
        let width = 1u64 << level;
        if len & width != 0 {
            debug_assert_eq!(pos % width, 0, "subtree range must be aligned");
            ids.push(NodeId {
                level,
                index: pos >> level,
            });
            pos += width;
        }
    }
    ids
}

/// RFC 6962 hash of the subtree over leaves `[start, start + len)`, `len > 0`, from at most
/// `len.count_ones()` stored perfect nodes.
fn range_hash<S: NodeSource>(src: &S, start: u64, len: u64) -> Result<Hash, ProofError<S::Error>> {
    let peaks = range_ids(start, len)
        .into_iter()
        .map(|id| src.node(id).map_err(ProofError::Source))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(fold_peaks(peaks.into_iter()))
}

/// Largest power of two strictly less than `n`; `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Where stored node hashes come from (a database, a map in tests). Only perfect subtrees
/// are ever asked for.
pub trait NodeSource {
    type Error;
    fn node(&self, id: NodeId) -> Result<Hash, Self::Error>;
}

/// In-memory node store, filled from [`Frontier::push`] outputs. For tests and small tools.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryNodes(pub HashMap<NodeId, Hash>);

impl MemoryNodes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records nodes as returned by [`Frontier::push`].
    pub fn insert_completed(&mut self, completed: &[(NodeId, Hash)]) {
        self.0.extend(completed.iter().copied());
    }

    /// Builds the store and frontier for a tree of the given leaf hashes.
    pub fn from_leaves(leaves: &[Hash]) -> (Self, Frontier) {
        let mut nodes = MemoryNodes::new();
        let mut frontier = Frontier::new();
        let mut completed = Vec::new();
        for leaf in leaves {
            completed.clear();
            frontier.push(*leaf, &mut completed);
            nodes.insert_completed(&completed);
        }
        (nodes, frontier)
    }
}

impl NodeSource for MemoryNodes {
    /// The id of the missing node.
    type Error = NodeId;

    fn node(&self, id: NodeId) -> Result<Hash, NodeId> {
        self.0.get(&id).copied().ok_or(id)
    }
}

/// RFC 6962 §2.1.1 audit path for leaf `index` in a tree of `size`, in the RFC's order
/// (bottom-up), built from O(log n) stored nodes: a sibling that is a perfect subtree is
/// read directly; the at most one non-perfect right-edge subtree hash is computed from its
/// perfect parts (O(log n) reads).
pub fn inclusion_proof<S: NodeSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::OutOfRange {
            requested: index,
            size,
        });
    }
    // Walk the RFC recursion PATH(m, D[start..start+n]) top-down, collecting siblings;
    // the RFC appends each sibling after the deeper path, so reverse at the end.
    let (mut start, mut n, mut m) = (0u64, size, index);
    let mut proof = Vec::with_capacity(64);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            // Sibling is the right part D[k:n]: non-perfect at most once (the right edge);
            // after this step n == k is a power of two and every later sibling is perfect.
            proof.push(range_hash(src, start + k, n - k)?);
            n = k;
        } else {
            // Sibling is the left part D[0:k]: always perfect.
            proof.push(range_hash(src, start, k)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 6962 §2.1.2 consistency proof between sizes (old, new), `0 < old <= new`; same
/// storage rules as [`inclusion_proof`]. `old == new` gives an empty proof.
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if old == 0 || old > new {
        return Err(ProofError::OutOfRange {
            requested: old,
            size: new,
        });
    }
    // SUBPROOF(m, D[start..start+n], b) unrolled top-down; reversed at the end.
    let (mut start, mut n, mut m) = (0u64, new, old);
    let mut whole_old_tree = true; // the RFC's `b`
    let mut proof = Vec::with_capacity(64);
    while m < n {
        let k = split_point(n);
        if m <= k {
            // Right part D[k:n] may be non-perfect only the first time (the right edge).
            proof.push(range_hash(src, start + k, n - k)?);
            n = k;
        } else {
            proof.push(range_hash(src, start, k)?);
            start += k;
            m -= k;
            n -= k;
            whole_old_tree = false;
        }
    }
    // m == n here. If the old tree is a subtree we went left into, the verifier already
    // has its root; otherwise it needs this node. It is perfect: m == n is only reached
    // right after a left step (n = k, a power of two) or at the top when old == new.
    if !whole_old_tree {
        proof.push(range_hash(src, start, n)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Root of the first `size` leaves from stored nodes (O(log n) reads); `empty_root()` for 0.
pub fn root_at<S: NodeSource>(src: &S, size: u64) -> Result<Hash, ProofError<S::Error>> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// Number of nodes in an inclusion proof for `index < size`, split as (inner, border):
/// `inner` siblings below the point where the leaf's path meets the tree's right edge, and
/// `border` left siblings along the right edge. As in transparency-dev/merkle.
fn decomp_inclusion(index: u64, size: u64) -> (u32, u32) {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner, border)
}

/// RFC 9162 §2.1.3.2 verification. Rejects: index >= size, wrong proof length (extra or
/// missing nodes), wrong root.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decomp_inclusion(index, size);
    let expected = (inner + border) as usize;
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            // Unreachable after the length check; kept as the RFC states it.
            return Err(VerifyError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2 verification. `old == new` requires an empty proof and equal roots;
/// `old == 0` is rejected (as transparency-dev/merkle does; callers that accept an empty old
/// tree decide that themselves); `old > new` is rejected.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), VerifyError> {
    if old > new {
        return Err(VerifyError::InvalidSizes { old, new });
    }
    if old == 0 {
        return Err(VerifyError::EmptyOldTree);
    }
    if old == new {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(VerifyError::RootMismatch);
        }
        return Ok(());
    }

    // 0 < old < new. Expected length: the inclusion path of leaf old-1 in the new tree,
    // minus the levels under the old tree's lowest complete subtree, plus that subtree's
    // hash unless it is the whole old tree (old a power of two).
    let shift = old.trailing_zeros();
    let (inner, border) = decomp_inclusion(old - 1, new);
    let old_is_power_of_two = old.is_power_of_two();
    let expected = (inner - shift + border) as usize + usize::from(!old_is_power_of_two);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }

    // RFC 9162 §2.1.4.2 steps 2-7. Step 1 (empty path fails) holds: expected >= 1 here.
    let mut path = proof.iter();
    let seed = if old_is_power_of_two {
        *old_root
    } else {
        match path.next() {
            Some(h) => *h,
            // Unreachable: expected >= 1 when old is not a power of two.
            None => {
                return Err(VerifyError::WrongProofLength {
                    expected,
                    actual: 0,
                });
            }
        }
    };
    let mut f = old - 1;
    let mut s = new - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = seed;
    let mut sr = seed;
    for c in path {
        if s == 0 {
            return Err(VerifyError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if fr != *old_root {
        return Err(VerifyError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Reference root over a slice of leaf hashes, straight from the RFC 6962 §2.1 recursive
/// definition (recursion depth <= 64). For tests and small trees.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

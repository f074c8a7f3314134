//! The log format: pure functions over bytes. This module is the specification others verify with
//! their own tools; it must not depend on tokio, hyper, tonic, RocksDB or a clock.
//!
//! # Entry
//! One protobuf message `s62.v1.Entry` (`proto/s62/v1/entry.proto`) per event, with
//! `format_version = 1`. It is encoded once by the writer and stored verbatim; those stored bytes
//! are the Merkle leaf. Nothing is ever re-encoded for hashing.
//!
//! # Chain
//! Entry `n` carries in `prev_leaf_hash` the RFC 6962 leaf hash of entry `n − 1`, and 32 zero bytes
//! for entry 0 ([`hash::Hash::GENESIS`]). `seq` equals the leaf index; `time_unix_nanos` never
//! decreases along the chain, so the entries keyspace ordered by `seq` is also the time index.
//!
//! # Tree
//! RFC 6962 / RFC 9162: leaf = SHA-256(0x00 ‖ entry bytes), node = SHA-256(0x01 ‖ left ‖ right),
//! split at the largest power of two strictly below `n`, empty root = SHA-256(""). The hash of every
//! perfect subtree is stored, so proofs need O(log n) reads ([`merkle`]).
//!
//! # Checkpoint
//! c2sp.org/tlog-checkpoint body `<origin>\n<size>\n<base64 root>\n` in a c2sp.org/signed-note,
//! Ed25519, key id = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ pubkey)[:4]; the public key is published as the
//! note verifier key `name+hex(keyid)+base64(0x01 ‖ pubkey)` ([`note`], [`checkpoint`]).
//! Checkpoints are stored under their size and signed at the writer's cadence, which the first
//! entry of each run records (`checkpoint_cadence`: at most `interval_ms` and `max_entries`
//! apart while entries arrive; also when idle, on request and at shutdown). A commit that signs
//! one marks its last entry `checkpoint_follows = true`, so a verifier knows every size that
//! must have a stored checkpoint and a deleted one is evident.
//!
//! # Keys
//! A log's first key signs from size 1. An `admin` entry `key_rotated` at seq `r` names the next
//! key (`Admin.new_verifier_key`); both keys sign the checkpoint of size `r + 1`, and only the new
//! key signs after it ([`epoch`]). Verifiers derive these epochs from the entries, never from a
//! file, and refuse a checkpoint signed outside its signer's epoch.
//!
//! # Limits
//! Every value the log indexes is at most [`index::MAX_INDEXED_VALUE_BYTES`] long and an entry at
//! most [`entry::MAX_ENTRY_BYTES`]; the writer refuses anything longer, so what it stores always
//! verifies.
//!
//! # Cosignatures and witnesses
//! A witness (c2sp.org/tlog-witness) that has checked a checkpoint is consistent with every one it
//! saw before adds a c2sp.org/tlog-cosignature line: Ed25519 over `"cosignature/v1\ntime <t>\n"`
//! and the checkpoint text, key type 0x04, key id = SHA-256(name ‖ 0x0A ‖ 0x04 ‖ pubkey)[:4]
//! ([`cosignature`]). The `add-checkpoint` request and 409 bodies are in [`tlog_witness`]. The log
//! stores valid cosignature lines after its own signature on the checkpoint they cover.
//!
//! # Indexes
//! Each entry has index records (actor, subject, record, recipient, operation, kind, route) written
//! in the same batch as the entry ([`index`]).

pub mod checkpoint;
pub mod cosignature;
pub mod entry;
pub mod epoch;
pub mod hash;
pub mod index;
pub mod merkle;
pub mod note;
pub mod seal;
pub mod store;
pub mod tlog_witness;

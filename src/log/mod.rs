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
//! note verifier key `name+hex(keyid)+base64(0x01 ‖ pubkey)` ([`note`], [`checkpoint`]). One
//! checkpoint is signed per committed batch and stored under its size.
//!
//! # Indexes
//! Each entry has index records (actor, subject, record, recipient, operation, kind, route) written
//! in the same batch as the entry ([`index`]).

pub mod checkpoint;
pub mod entry;
pub mod hash;
pub mod index;
pub mod merkle;
pub mod note;
pub mod store;

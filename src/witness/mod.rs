//! Witnesses (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature): parties outside the log
//! operator's control that cosign each checkpoint only if it is consistent with every checkpoint
//! of the same log they cosigned before. A log that is cut, rolled back or forked can then no
//! longer collect cosignatures, and a verifier that requires a quorum of them sees it.
//!
//! * [`verdict`] — PURE: what a witness answers to one `add-checkpoint` request.
//! * [`state`] — the witness's durable per-log state (the latest cosigned checkpoint as a file).
//! * [`server`] — `s62 witness`: the HTTP server around them.
//! * [`keys`] — witness key files.
//! * [`client`] — the sidecar's side: submit checkpoints, store cosignatures, alert on refusals.
//!
//! The byte formats (cosignature lines, request and 409 bodies) are in the log core:
//! [`crate::log::cosignature`], [`crate::log::tlog_witness`]. Nothing here touches RocksDB
//! directly or the proxy.

pub mod client;
pub mod keys;
pub mod server;
pub mod state;
pub mod verdict;

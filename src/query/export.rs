//! The export producer: a header (the signed checkpoint everything is proved against, the verifier
//! key, the export's own audit entry with its proof), every matching entry with its exact stored
//! bytes and RFC 6962 inclusion proof, then an end marker carrying the count (so a truncated bundle
//! is detectable). The file form of this stream is documented in `docs/bundle.md` and checked by
//! [`crate::verify::bundle`].
//!
//! Proofs for neighbouring entries share most of their nodes, so node reads go through
//! [`CachedNodes`]. Synchronous over the [`Store`] trait; must not import tonic or RocksDB.

use super::nodes::{CachedNodes, NodeCache, proof_bytes};
use super::pb::export_response::Item;
use super::pb::{BundleEnd, BundleEntry, BundleHeader, ExportResponse};
use super::plan::{EntryFilter, Matches};
use super::sink::{Sink, Stop};
use super::{QueryError, checkpoint_pb};
use crate::log::note::VerifierKey;
use crate::log::store::{LogStore, Store};
use crate::verify::bundle::FORMAT;

/// What to export and against which checkpoint.
pub struct ExportPlan<'a> {
    pub filter: EntryFilter,
    /// Entries `[0, end)` are considered (the export's opening audit entry is `end`).
    pub end: u64,
    /// Seq of the export's own opening audit entry.
    pub audit_seq: u64,
    /// Size of the signed checkpoint the proofs are against; covers `audit_seq`.
    pub checkpoint_size: u64,
    pub verifier: &'a VerifierKey,
    pub filter_json: String,
    /// Stop after this many entries; 0 = no limit.
    pub max_entries: u64,
}

/// Streams an export bundle into `sink`.
pub fn export(
    store: &dyn Store,
    shared: &NodeCache,
    plan: ExportPlan<'_>,
    sink: &mut dyn Sink<ExportResponse>,
) -> Result<(), Stop> {
    let note = store.checkpoint(plan.checkpoint_size)?.ok_or_else(|| {
        QueryError::Inconsistent(format!(
            "no checkpoint stored for size {} although the writer acknowledged it",
            plan.checkpoint_size
        ))
    })?;
    let nodes = CachedNodes::new(store, shared);
    let bundle_entry = |seq: u64, leaf: Vec<u8>| -> Result<BundleEntry, QueryError> {
        Ok(BundleEntry {
            seq,
            inclusion_proof: proof_bytes(&nodes, seq, plan.checkpoint_size)?,
            leaf,
        })
    };
    let audit_leaf = store.entry(plan.audit_seq)?.ok_or_else(|| {
        QueryError::Inconsistent(format!("audit entry {} is missing", plan.audit_seq))
    })?;
    sink.frame(ExportResponse {
        item: Some(Item::Header(BundleHeader {
            format: FORMAT.to_owned(),
            checkpoint: Some(checkpoint_pb(&note)?),
            verifier_key: plan.verifier.to_vkey(),
            filter_json: plan.filter_json.clone(),
            audit: Some(bundle_entry(plan.audit_seq, audit_leaf)?),
        })),
    })?;
    let mut entries = 0u64;
    for m in Matches::new(store, plan.filter.clone(), 0, plan.end)? {
        if plan.max_entries != 0 && entries >= plan.max_entries {
            break;
        }
        let (seq, leaf, _) = m?;
        sink.result(ExportResponse {
            item: Some(Item::Entry(bundle_entry(seq, leaf)?)),
        })?;
        entries += 1;
    }
    sink.frame(ExportResponse {
        item: Some(Item::End(BundleEnd { entries })),
    })
}

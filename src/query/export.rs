//! The export producer. First the result set is fixed ([`select_for_export`]): the seqs of every
//! matching entry in the log as it is before the export's own audit entry, whose opening entry then
//! commits to them (count and [`selection_digest`]). Then the stream: a header (the signed
//! checkpoint everything is proved against, the verifier key, the export's own audit entry with its
//! proof), every selected entry with its exact stored bytes and RFC 6962 inclusion proof, the
//! redaction entries that removed the values those entries no longer carry (leaf and proof), and
//! an end marker carrying the counts. So a bundle with an entry dropped, added or cut off no longer
//! matches its audit entry, and a value shown as redacted is one a logged redaction removed. The
//! file form of this stream is documented in `docs/bundle.md` and checked by
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
use crate::log::seal::FieldRef;
use crate::log::store::{LogStore, OpenedEntry, Store};
use crate::verify::Redactions;
use crate::verify::bundle::{FORMAT, selection_digest};
use std::collections::BTreeSet;

/// The entries an export will carry, fixed before its audit entry is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSelection {
    /// The log's size when the selection was made: only entries below it were considered.
    pub end: u64,
    /// The selected seqs, ascending.
    pub seqs: Vec<u64>,
}

/// What an opening audit entry commits to: how many entries the call returns and their digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultCommitment {
    pub count: u64,
    pub sha256: Vec<u8>,
}

impl ExportSelection {
    pub fn commitment(&self) -> ResultCommitment {
        ResultCommitment {
            count: self.seqs.len() as u64,
            sha256: selection_digest(&self.seqs).0.to_vec(),
        }
    }
}

/// Selects what an export of `filter` carries: every matching entry below the log's current
/// size, at most `max_entries` of them (0 = no limit). Reads the store; returns nothing to anyone.
pub fn select_for_export(
    store: &dyn Store,
    filter: &EntryFilter,
    max_entries: u64,
) -> Result<ExportSelection, QueryError> {
    let end = store.entry_count()?;
    let mut seqs = Vec::new();
    for m in Matches::new(store, filter.clone(), 0, end)? {
        if max_entries != 0 && seqs.len() as u64 >= max_entries {
            break;
        }
        seqs.push(m?.seq);
    }
    Ok(ExportSelection { end, seqs })
}

/// What to export and against which checkpoint.
pub struct ExportPlan<'a> {
    /// The selected seqs, ascending, as the opening audit entry committed to them.
    pub seqs: Vec<u64>,
    /// Seq of the export's own opening audit entry.
    pub audit_seq: u64,
    /// Size of the signed checkpoint the proofs are against; covers `audit_seq`.
    pub checkpoint_size: u64,
    pub verifier: &'a VerifierKey,
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
    let opened = |seq: u64| -> Result<OpenedEntry, QueryError> {
        store
            .opened(seq)?
            .ok_or_else(|| QueryError::Inconsistent(format!("entry {seq} is missing")))
    };
    let bundle_entry = |o: OpenedEntry| -> Result<BundleEntry, QueryError> {
        Ok(BundleEntry {
            seq: o.seq,
            inclusion_proof: proof_bytes(&nodes, o.seq, plan.checkpoint_size)?,
            leaf: o.leaf,
            values: o.values,
        })
    };
    // Which logged redaction removed each value an exported entry no longer stores; read before
    // the entries, looked up as they stream (in seq order).
    let mut redactions = Redactions::load(store).map_err(|e| {
        QueryError::Inconsistent(format!("reading the log's redaction entries: {e}"))
    })?;
    let mut needed = BTreeSet::new();
    let mut unexplained = 0u64;
    let mut explain = |seq: u64, removed: &[FieldRef]| -> Result<(), QueryError> {
        for r in removed {
            match redactions.first_covering(seq, *r) {
                Some(at) if at < plan.checkpoint_size => {
                    needed.insert(at);
                }
                Some(at) => {
                    return Err(QueryError::FailedPrecondition(format!(
                        "entry {seq} was redacted (by entry {at}) while the export ran: export again"
                    )));
                }
                // The operator removed it without a redaction entry. The bundle is still sent:
                // its verification names the entry, which is the evidence.
                None => unexplained += 1,
            }
        }
        Ok(())
    };
    let audit = opened(plan.audit_seq)?;
    let audit_removed = audit.redacted.clone();
    let filter_json = audit
        .entry
        .audit_query
        .as_ref()
        .map(|q| q.filter_json.clone())
        .unwrap_or_default();
    sink.frame(ExportResponse {
        item: Some(Item::Header(BundleHeader {
            format: FORMAT.to_owned(),
            checkpoint: Some(checkpoint_pb(&note)?),
            verifier_key: plan.verifier.to_vkey(),
            filter_json,
            audit: Some(bundle_entry(audit)?),
        })),
    })?;
    let mut entries = 0u64;
    for &seq in &plan.seqs {
        let o = opened(seq)?;
        explain(seq, &o.redacted)?;
        sink.result(ExportResponse {
            item: Some(Item::Entry(bundle_entry(o)?)),
        })?;
        entries += 1;
    }
    // The audit entry follows every selected entry, so the lookups stay in seq order.
    explain(plan.audit_seq, &audit_removed)?;
    if unexplained > 0 {
        tracing::warn!(
            values = unexplained,
            "exported entries lack values that no redaction entry removed: the bundle will not verify; run `s62 verify` on the log"
        );
    }
    let redactions = needed.len() as u64;
    for seq in needed {
        let leaf = store
            .entry(seq)?
            .ok_or_else(|| QueryError::Inconsistent(format!("entry {seq} is missing")))?;
        sink.frame(ExportResponse {
            item: Some(Item::Redaction(BundleEntry {
                seq,
                inclusion_proof: proof_bytes(&nodes, seq, plan.checkpoint_size)?,
                leaf,
                values: Vec::new(),
            })),
        })?;
    }
    sink.frame(ExportResponse {
        item: Some(Item::End(BundleEnd {
            entries,
            redactions,
        })),
    })
}

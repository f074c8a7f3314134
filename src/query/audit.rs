//! The service's own entries in the log: an `audit-query` entry that opens every call (durable before
//! any result leaves), one that closes it with the number of results, and a `denied` entry for every
//! refused attempt.
//!
//! Entry shapes (all written through [`LogWriter::append`], the only writer):
//!
//! | entry | kind | actor | fields |
//! |---|---|---|---|
//! | opening | `audit-query` | the auditor (`id` = configured name, `roles` = [role], mTLS) | `justification` {purpose label, case reference}; `audit_query` {purpose, case_reference, call, filter_json} |
//! | closing | `audit-query` | the same | `answers_seq` = opening seq; `audit_query` {purpose, case_reference, call, results_returned, completed = true}; `outcome` {status = gRPC code, error = reason or ""} |
//! | refusal | `denied` | as presented (certificate name or nothing) | `denial` {reason, detail = call}; `audit_query` {call, and purpose/case when given} |
//! | alert review | `alert-review` | the auditor, as on an opening entry | `justification` and `audit_query` as on an opening entry, with `completed` = true (the call is this one entry); `answers_seq` = the alert; `alert_review` {alert_seq, outcome} |
//!
//! Refusals on the TLS handshake (no certificate, wrong CA) are also `denied` entries, rate-limited
//! (see [`HandshakeDenials`]). This module must not import tonic or the store.

use super::auth::Caller;
use super::export::ResultCommitment;
use super::purpose::StatedPurpose;
use crate::ingest::{AppendError, LogWriter, Receipt, SignedReceipt};
use crate::log::entry::{
    Actor, AlertReview, AuditPurpose, AuditQuery, AuthMethod, Denial, Entry, EntryKind,
    Justification, Outcome,
};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

/// An opened call: its opening entry is durable.
#[derive(Clone, Debug)]
pub struct OpenCall {
    /// Seq of the opening entry: also the end (exclusive) of what this call searches.
    pub seq: u64,
    /// Size of the signed checkpoint that covers the opening entry.
    pub checkpoint_size: u64,
    pub call: &'static str,
    actor: Actor,
    purpose: StatedPurpose,
}

/// Writes the service's entries.
#[derive(Clone)]
pub struct AuditTrail {
    writer: LogWriter,
}

impl AuditTrail {
    /// The writer the trail appends through (the log's one writer).
    pub fn writer(&self) -> &LogWriter {
        &self.writer
    }

    pub fn new(writer: LogWriter) -> Self {
        AuditTrail { writer }
    }

    /// Appends the opening entry of a call and waits until it is durable.
    pub async fn open(
        &self,
        caller: &Caller,
        purpose: &StatedPurpose,
        call: &'static str,
        filter_json: String,
        results: Option<ResultCommitment>,
    ) -> Result<OpenCall, AppendError> {
        let results = results.unwrap_or(ResultCommitment {
            count: 0,
            sha256: Vec::new(),
        });
        let actor = caller.actor();
        let receipt = self
            .writer
            .append_signed(Entry {
                kind: EntryKind::AuditQuery as i32,
                actor: Some(actor.clone()),
                justification: Some(Justification {
                    purpose_code: purpose.purpose.label().to_owned(),
                    text: String::new(),
                    case_reference: purpose.case_reference.clone(),
                }),
                audit_query: Some(AuditQuery {
                    purpose: purpose.purpose as i32,
                    case_reference: purpose.case_reference.clone(),
                    call: call.to_owned(),
                    filter_json,
                    results_returned: 0,
                    completed: false,
                    results_committed: results.count,
                    results_sha256: results.sha256,
                }),
                ..Default::default()
            })
            .await?;
        Ok(OpenCall {
            seq: receipt.seq,
            checkpoint_size: receipt.checkpoint_size,
            call,
            actor,
            purpose: purpose.clone(),
        })
    }

    /// Appends the closing entry of a call: how many results it returned and how it ended
    /// (`status` is the numeric gRPC code, `error` a short reason or "").
    pub async fn close(
        &self,
        open: &OpenCall,
        results_returned: u64,
        status: u32,
        error: &str,
    ) -> Result<Receipt, AppendError> {
        self.writer
            .append(Entry {
                kind: EntryKind::AuditQuery as i32,
                actor: Some(open.actor.clone()),
                answers_seq: Some(open.seq),
                audit_query: Some(AuditQuery {
                    purpose: open.purpose.purpose as i32,
                    case_reference: open.purpose.case_reference.clone(),
                    call: open.call.to_owned(),
                    filter_json: String::new(),
                    results_returned,
                    completed: true,
                    ..Default::default()
                }),
                outcome: Some(Outcome {
                    status,
                    error: error.to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
    }

    /// Appends the `alert-review` entry that is the whole of a `ReviewAlert` call, and waits until
    /// it is durable and signed. Written through [`LogWriter::append_signed`], so in formats 2 and 3
    /// the reviewer's actor fields, the case references and the request are committed to, not
    /// stored in the leaf.
    pub async fn review(
        &self,
        caller: &Caller,
        purpose: &StatedPurpose,
        call: &'static str,
        filter_json: String,
        alert_seq: u64,
        outcome: &str,
    ) -> Result<SignedReceipt, AppendError> {
        self.writer
            .append_signed(Entry {
                kind: EntryKind::AlertReview as i32,
                actor: Some(caller.actor()),
                justification: Some(Justification {
                    purpose_code: purpose.purpose.label().to_owned(),
                    text: String::new(),
                    case_reference: purpose.case_reference.clone(),
                }),
                answers_seq: Some(alert_seq),
                audit_query: Some(AuditQuery {
                    purpose: purpose.purpose as i32,
                    case_reference: purpose.case_reference.clone(),
                    call: call.to_owned(),
                    filter_json,
                    results_returned: 0,
                    completed: true,
                    ..Default::default()
                }),
                alert_review: Some(AlertReview {
                    alert_seq,
                    outcome: outcome.to_owned(),
                }),
                ..Default::default()
            })
            .await
    }

    /// Appends a `denied` entry for a refused call.
    pub async fn denied(
        &self,
        actor: Actor,
        reason: &str,
        call: &str,
        purpose: Option<&StatedPurpose>,
    ) -> Result<Receipt, AppendError> {
        self.writer
            .append(Entry {
                kind: EntryKind::Denied as i32,
                actor: Some(actor),
                denial: Some(Denial {
                    reason: reason.to_owned(),
                    detail: call.to_owned(),
                }),
                audit_query: Some(AuditQuery {
                    purpose: purpose.map_or(AuditPurpose::Unspecified, |p| p.purpose) as i32,
                    case_reference: purpose
                        .map(|p| p.case_reference.clone())
                        .unwrap_or_default(),
                    call: call.to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
    }

    /// Appends a `denied` entry for a TLS handshake that failed (no or untrusted certificate).
    pub async fn handshake_denied(
        &self,
        remote: SocketAddr,
        detail: String,
    ) -> Result<Receipt, AppendError> {
        self.writer
            .append(Entry {
                kind: EntryKind::Denied as i32,
                actor: Some(Actor {
                    source_address: remote.to_string(),
                    auth_method: AuthMethod::None as i32,
                    ..Default::default()
                }),
                denial: Some(Denial {
                    reason: "tls_handshake_failed".into(),
                    detail,
                }),
                ..Default::default()
            })
            .await
    }
}

/// A token bucket for handshake-failure entries, so that a flood of bad connections cannot flood
/// the log: up to `burst` entries at once, refilled at `per_second`. What is suppressed is counted
/// and mentioned on the next entry that is written.
pub struct HandshakeDenials {
    state: Mutex<BucketState>,
    burst: f64,
    per_second: f64,
}

struct BucketState {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl HandshakeDenials {
    pub fn new(burst: u32, per_second: f64) -> Self {
        HandshakeDenials {
            state: Mutex::new(BucketState {
                tokens: f64::from(burst),
                last: Instant::now(),
                suppressed: 0,
            }),
            burst: f64::from(burst),
            per_second,
        }
    }

    /// Whether to log this failure now; if so, how many were suppressed since the last one logged.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    /// [`HandshakeDenials::admit`] for a failure at `now` (tests pass their own clock).
    pub fn admit_at(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-update; the counts stay usable.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = now.max(s.last);
        let refill = now.duration_since(s.last).as_secs_f64() * self.per_second;
        s.tokens = (s.tokens + refill).min(self.burst);
        s.last = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_handshake_failures_is_bounded_and_the_suppressed_are_counted() {
        let bucket = HandshakeDenials::new(2, 1000.0);
        let t0 = bucket.state.lock().expect("lock").last;
        // Six failures in the same instant: the burst of two is logged, four are suppressed.
        let admitted: Vec<_> = (0..6).map(|_| bucket.admit_at(t0)).collect();
        assert_eq!(admitted, [Some(0), Some(0), None, None, None, None]);
        // 1.5 ms later one and a half tokens have refilled; the next logged failure says how many
        // were not.
        let later = t0 + std::time::Duration::from_micros(1500);
        assert_eq!(bucket.admit_at(later), Some(4));
        assert_eq!(bucket.admit_at(later), None, "and only one token came back");
        // A clock that goes backwards refills nothing.
        assert_eq!(bucket.admit_at(t0), None);
    }
}

//! What a witness answers to one `add-checkpoint` request (c2sp.org/tlog-witness), as pure
//! functions: [`admit`] needs no state (parse, origin, log signature, sizes), [`check`] compares
//! with the latest checkpoint the witness cosigned and must run under the same lock as the write
//! that records the new one (the spec's race: check and persist atomically).
//!
//! Status codes, in the spec's order: malformed body or note → 400; unknown origin → 404; no
//! signature from a trusted key of that origin verifies → 403; old size above the checkpoint size
//! → 400; old size not the latest cosigned size (0 if none) → 409 with `<size>\n` as
//! `text/x.tlog.size`; same size but another root → 409 (same body); a consistency proof that
//! does not verify (or a proof sent with old size 0) → 422.
//!
//! Must not import tokio, hyper, the store or a clock.

use crate::log::checkpoint::{Checkpoint, CheckpointError};
use crate::log::hash::Hash;
use crate::log::merkle::verify_consistency;
use crate::log::note::{NoteError, NoteSignature, VerifierKey, open_note, parse_note};
use crate::log::tlog_witness::{AddCheckpoint, SIZE_CONTENT_TYPE, size_body};

/// A log this witness follows: its origin and the keys that may sign its checkpoints.
#[derive(Clone, Debug)]
pub struct TrustedLog {
    pub origin: String,
    pub keys: Vec<VerifierKey>,
}

/// The latest checkpoint the witness cosigned for one origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latest {
    pub size: u64,
    pub root: Hash,
}

/// A request that passed the stateless checks.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The old size the log claims the witness last cosigned.
    pub old_size: u64,
    /// The consistency proof from `old_size`.
    pub proof: Vec<Hash>,
    /// The checkpoint, parsed.
    pub checkpoint: Checkpoint,
    /// The checkpoint note's text (what is cosigned), including its final newline.
    pub text: String,
    /// The signature lines of trusted log keys (all verified), in note order.
    pub log_signatures: Vec<NoteSignature>,
}

/// Why a witness does not cosign. [`Refusal::status`] and [`Refusal::body`] are the HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: the body or the checkpoint note in it does not follow the format.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// 404: the witness does not follow this origin.
    #[error("unknown log origin")]
    UnknownOrigin,
    /// 403: no signature from a key trusted for the origin verifies.
    #[error("the checkpoint is not signed by a trusted key of its log: {0}")]
    NotSignedByLog(String),
    /// 400: the old size is above the checkpoint's size.
    #[error("old size {old} is above the checkpoint size {size}")]
    OldBeyondCheckpoint { old: u64, size: u64 },
    /// 409: the old size is not the size of the latest cosigned checkpoint (`latest`).
    #[error("old size {old} is not the latest cosigned size {latest}")]
    OldSizeMismatch { old: u64, latest: u64 },
    /// 409: a checkpoint of the cosigned size with a different root: a fork.
    #[error("a different root for the cosigned size {size}: the log forked")]
    RootMismatch { size: u64 },
    /// 422: the consistency proof does not verify (or is not empty with old size 0).
    #[error("the consistency proof does not verify: {0}")]
    BadProof(String),
}

impl Refusal {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldBeyondCheckpoint { .. } => 400,
            Refusal::NotSignedByLog(_) => 403,
            Refusal::UnknownOrigin => 404,
            Refusal::OldSizeMismatch { .. } | Refusal::RootMismatch { .. } => 409,
            Refusal::BadProof(_) => 422,
        }
    }

    /// The content type and body: for 409 the spec's `<size>\n` as `text/x.tlog.size`; otherwise
    /// one line of plain text.
    pub fn body(&self) -> (&'static str, String) {
        match self {
            Refusal::OldSizeMismatch { latest, .. } => (SIZE_CONTENT_TYPE, size_body(*latest)),
            Refusal::RootMismatch { size } => (SIZE_CONTENT_TYPE, size_body(*size)),
            other => ("text/plain; charset=utf-8", format!("{other}\n")),
        }
    }

    /// Whether the request is evidence of log misbehaviour worth keeping: validly signed by the
    /// log, yet inconsistent with what the witness cosigned.
    pub fn is_evidence(&self) -> bool {
        matches!(self, Refusal::RootMismatch { .. } | Refusal::BadProof(_))
    }
}

/// The stateless checks, in the spec's order: body format (400), origin (404), signature (403),
/// old size not above the checkpoint size (400).
pub fn admit<'l>(
    body: &[u8],
    logs: &'l [TrustedLog],
) -> Result<(Submission, &'l TrustedLog), Refusal> {
    let body = std::str::from_utf8(body)
        .map_err(|_| Refusal::Malformed("the body is not UTF-8".into()))?;
    let req = AddCheckpoint::parse(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let note =
        parse_note(&req.checkpoint).map_err(|e| Refusal::Malformed(format!("checkpoint: {e}")))?;
    let checkpoint = Checkpoint::parse_text(&note.text)
        .map_err(|e| Refusal::Malformed(format!("checkpoint: {e}")))?;
    let log = logs
        .iter()
        .find(|l| l.origin == checkpoint.origin)
        .ok_or(Refusal::UnknownOrigin)?;
    match open_note(&req.checkpoint, &log.keys) {
        Ok(_) => {}
        Err(e @ (NoteError::NoKnownSignature | NoteError::BadSignature { .. })) => {
            return Err(Refusal::NotSignedByLog(e.to_string()));
        }
        Err(e) => return Err(Refusal::Malformed(CheckpointError::from(e).to_string())),
    }
    if req.old_size > checkpoint.size {
        return Err(Refusal::OldBeyondCheckpoint {
            old: req.old_size,
            size: checkpoint.size,
        });
    }
    let log_signatures = note
        .signatures
        .iter()
        .filter(|s| {
            log.keys
                .iter()
                .any(|k| k.name() == s.name && k.key_id() == s.key_id)
        })
        .cloned()
        .collect();
    Ok((
        Submission {
            old_size: req.old_size,
            proof: req.proof,
            checkpoint,
            text: note.text,
            log_signatures,
        },
        log,
    ))
}

/// The checks against the latest cosigned checkpoint (`None`: never cosigned for this origin).
/// Run under the lock that also persists the new latest checkpoint.
pub fn check(sub: &Submission, latest: Option<&Latest>) -> Result<(), Refusal> {
    let latest_size = latest.map_or(0, |l| l.size);
    if sub.old_size != latest_size {
        return Err(Refusal::OldSizeMismatch {
            old: sub.old_size,
            latest: latest_size,
        });
    }
    let cp = &sub.checkpoint;
    if sub.old_size == cp.size {
        if let Some(l) = latest
            && l.root != cp.root
        {
            return Err(Refusal::RootMismatch { size: cp.size });
        }
        if !sub.proof.is_empty() {
            return Err(Refusal::BadProof(
                "the proof must be empty when the old size is the checkpoint size".into(),
            ));
        }
        return Ok(());
    }
    let Some(l) = latest.filter(|_| sub.old_size > 0) else {
        // old size 0: nothing to be consistent with, and the spec requires an empty proof.
        if !sub.proof.is_empty() {
            return Err(Refusal::BadProof(
                "the proof must be empty when the old size is 0".into(),
            ));
        }
        return Ok(());
    };
    verify_consistency(l.size, cp.size, &sub.proof, &l.root, &cp.root)
        .map_err(|e| Refusal::BadProof(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests;

//! The entry codec: `s62.v1.Entry` to and from its stored bytes.
//!
//! Pure: no storage, no clock. The writer is the only caller of [`encode`]; everything else reads
//! stored bytes with [`decode`] and hashes those same bytes.

/// Messages generated from `proto/s62/v1/entry.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/s62.v1.rs"));
}

pub use pb::{
    Actor, Admin, Alert, AlertReview, AuditPurpose, AuditQuery, AuthMethod, CheckpointCadence,
    Denial, Entry, EntryKind, EntryValues, ErasureCheck, FieldCommitment, FieldValue,
    Justification, Operation, Outcome, PersonalField, Redaction, RedactionTarget, Request,
};

use prost::Message;

/// Format 1: personal values stored in the leaf. Logs begun before format 2 stay format 1.
pub const FORMAT_VERSION: u32 = 1;

/// Format 2: personal values committed to one by one in the leaf and stored beside it
/// ([`crate::log::seal`]). Logs begun in format 2 stay format 2.
pub const FORMAT_V2: u32 = super::seal::FORMAT_V2;

/// Format 3: personal values committed to by one root in the leaf and stored beside it
/// ([`crate::log::seal`]). New logs are written in format 3.
pub const FORMAT_V3: u32 = super::seal::FORMAT_V3;

/// Largest entry the writer will store; anything larger is a bug upstream of the log.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

/// Why stored bytes are not a readable entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The bytes are not a protobuf `Entry`.
    #[error("not a valid s62 entry: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The entry was written by a format this build does not know.
    #[error("unsupported entry format version {0} (this build reads 1, 2 and 3)")]
    UnsupportedVersion(u32),
}

/// Encodes an entry; the result is what is stored and hashed.
pub fn encode(entry: &Entry) -> Vec<u8> {
    entry.encode_to_vec()
}

/// Decodes stored bytes, checking the format version.
pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
    let entry = Entry::decode(bytes)?;
    if entry.format_version != FORMAT_VERSION && !super::seal::is_sealed(entry.format_version) {
        return Err(EntryError::UnsupportedVersion(entry.format_version));
    }
    Ok(entry)
}

/// An `admin` entry by the s62 process itself (start, stop, key rotation, write probes).
pub fn admin_entry(action: &str, detail: &str) -> Entry {
    Entry {
        kind: EntryKind::Admin as i32,
        actor: Some(Actor {
            id: "s62".into(),
            auth_method: AuthMethod::Local as i32,
            ..Default::default()
        }),
        admin: Some(Admin {
            action: action.into(),
            detail: detail.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Operation {
    /// Lower-case name used in JSON output and config (`consultation`, ...).
    pub fn label(self) -> &'static str {
        match self {
            Operation::Unspecified => "none",
            Operation::Collection => "collection",
            Operation::Alteration => "alteration",
            Operation::Consultation => "consultation",
            Operation::Disclosure => "disclosure",
            Operation::Combination => "combination",
            Operation::Erasure => "erasure",
        }
    }

    /// The s62(1) operations (every one but `Unspecified`).
    pub const ALL: [Operation; 6] = [
        Operation::Collection,
        Operation::Alteration,
        Operation::Consultation,
        Operation::Disclosure,
        Operation::Combination,
        Operation::Erasure,
    ];

    /// Parses a [`Operation::label`].
    pub fn from_label(s: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.label() == s)
    }
}

impl EntryKind {
    /// Lower-case name used in JSON output (`intent`, `audit-query`, ...).
    pub fn label(self) -> &'static str {
        match self {
            EntryKind::Unspecified => "unspecified",
            EntryKind::Intent => "intent",
            EntryKind::Outcome => "outcome",
            EntryKind::Denied => "denied",
            EntryKind::AuditQuery => "audit-query",
            EntryKind::Admin => "admin",
            EntryKind::Redaction => "redaction",
            EntryKind::ErasureCheck => "erasure-check",
            EntryKind::Alert => "alert",
            EntryKind::AlertReview => "alert-review",
        }
    }

    /// Parses a [`EntryKind::label`].
    pub fn from_label(s: &str) -> Option<EntryKind> {
        [
            EntryKind::Intent,
            EntryKind::Outcome,
            EntryKind::Denied,
            EntryKind::AuditQuery,
            EntryKind::Admin,
            EntryKind::Redaction,
            EntryKind::ErasureCheck,
            EntryKind::Alert,
            EntryKind::AlertReview,
        ]
        .into_iter()
        .find(|k| k.label() == s)
    }
}

impl AuthMethod {
    /// Lower-case name used in JSON output.
    pub fn label(self) -> &'static str {
        match self {
            AuthMethod::Unspecified => "unspecified",
            AuthMethod::None => "none",
            AuthMethod::Mtls => "mtls",
            AuthMethod::TrustedHeader => "trusted-header",
            AuthMethod::Local => "local",
        }
    }
}

impl AuditPurpose {
    /// Lower-case name used on the command line and in JSON output.
    pub fn label(self) -> &'static str {
        match self {
            AuditPurpose::Unspecified => "unspecified",
            AuditPurpose::Lawfulness => "lawfulness",
            AuditPurpose::SelfMonitoring => "self-monitoring",
            AuditPurpose::IntegrityAndSecurity => "integrity-and-security",
            AuditPurpose::CriminalProceedings => "criminal-proceedings",
            AuditPurpose::CommissionerRequest => "commissioner-request",
        }
    }

    /// Parses a [`AuditPurpose::label`].
    pub fn from_label(s: &str) -> Option<AuditPurpose> {
        [
            AuditPurpose::Lawfulness,
            AuditPurpose::SelfMonitoring,
            AuditPurpose::IntegrityAndSecurity,
            AuditPurpose::CriminalProceedings,
            AuditPurpose::CommissionerRequest,
        ]
        .into_iter()
        .find(|p| p.label() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_through_its_stored_bytes() {
        let entry = Entry {
            format_version: FORMAT_VERSION,
            seq: 7,
            kind: EntryKind::Intent as i32,
            operation: Operation::Consultation as i32,
            subject_ids: vec!["P-1".into()],
            ..Default::default()
        };
        let bytes = encode(&entry);
        assert_eq!(decode(&bytes).expect("decodes"), entry);
    }

    #[test]
    fn an_unknown_format_version_is_refused() {
        let bytes = encode(&Entry {
            format_version: 4,
            ..Default::default()
        });
        assert!(matches!(
            decode(&bytes),
            Err(EntryError::UnsupportedVersion(4))
        ));
    }

    #[test]
    fn garbage_is_not_an_entry() {
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn labels_parse_back() {
        for op in [
            "collection",
            "alteration",
            "consultation",
            "disclosure",
            "combination",
            "erasure",
        ] {
            assert_eq!(Operation::from_label(op).map(Operation::label), Some(op));
        }
        assert_eq!(
            EntryKind::from_label("audit-query"),
            Some(EntryKind::AuditQuery)
        );
        assert_eq!(
            EntryKind::from_label("alert-review"),
            Some(EntryKind::AlertReview)
        );
        assert_eq!(
            AuditPurpose::from_label("lawfulness"),
            Some(AuditPurpose::Lawfulness)
        );
    }
}

//! Secondary index records derived from an entry: which (family, value) pairs point at its seq.
//!
//! Pure: a function of the decoded entry. The writer stores these in the same batch as the entry;
//! the verifier recomputes them from stored bytes and checks the stored index against them. It must
//! not depend on storage.

use super::entry::pb::PersonalField;
use super::entry::{AuditPurpose, Entry, EntryKind, Operation};

/// The longest value the log indexes (an id, a recipient, an actor id, a route name), in bytes.
/// The writer refuses an entry holding a longer one, so every stored index key carries its value
/// whole and the verifier recomputes exactly the keys that were written. The sidecar's configured
/// limits (`[limits]`) keep client input well below this.
pub const MAX_INDEXED_VALUE_BYTES: usize = 4096;

/// What an index record is keyed by. The byte is part of the stored key; never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum IndexFamily {
    /// `actor.id`.
    Actor = b'a',
    /// A data subject asked about, or returned to the actor.
    Subject = b's',
    /// A record asked about, or returned to the actor.
    Record = b'r',
    /// A recipient of a disclosure.
    Recipient = b'd',
    /// The operation label (`consultation`, ...); entries without one are not indexed here.
    Operation = b'o',
    /// The entry kind label (`intent`, `denied`, ...).
    Kind = b'k',
    /// The route rule name.
    Route = b'p',
    /// A case reference the entry was made under: an officer's (`justification.case_reference`)
    /// or an auditor's (`audit_query.case_reference`). Personal data in formats 2 and 3: redacting the
    /// value removes the record.
    CaseReference = b'c',
    /// A purpose the entry was made for: an officer's stated purpose code
    /// (`justification.purpose_code`) or an auditor's s62(4) purpose (`audit_query.purpose`,
    /// by its label).
    Purpose = b'u',
}

impl IndexFamily {
    pub const ALL: [IndexFamily; 9] = [
        IndexFamily::Actor,
        IndexFamily::Subject,
        IndexFamily::Record,
        IndexFamily::Recipient,
        IndexFamily::Operation,
        IndexFamily::Kind,
        IndexFamily::Route,
        IndexFamily::CaseReference,
        IndexFamily::Purpose,
    ];

    /// The families every log has had from its first entry. A log begun before the others
    /// existed gets them built when a writer first opens it (the store then records them as
    /// built, [`crate::log::store::LogStore::index_families`]); until then only these are
    /// complete.
    pub const ORIGINAL: [IndexFamily; 7] = [
        IndexFamily::Actor,
        IndexFamily::Subject,
        IndexFamily::Record,
        IndexFamily::Recipient,
        IndexFamily::Operation,
        IndexFamily::Kind,
        IndexFamily::Route,
    ];

    /// Whether a value too long to index is left out rather than refused: free text a client
    /// sent in a header (a case reference, a purpose code) is logged whatever its length, and
    /// simply cannot be searched for; an id too long to index makes the writer refuse the entry.
    pub fn skips_long_values(self) -> bool {
        matches!(self, IndexFamily::CaseReference | IndexFamily::Purpose)
    }

    pub fn from_byte(b: u8) -> Option<IndexFamily> {
        IndexFamily::ALL.into_iter().find(|f| *f as u8 == b)
    }

    pub fn label(self) -> &'static str {
        match self {
            IndexFamily::Actor => "actor",
            IndexFamily::Subject => "subject",
            IndexFamily::Record => "record",
            IndexFamily::Recipient => "recipient",
            IndexFamily::Operation => "operation",
            IndexFamily::Kind => "kind",
            IndexFamily::Route => "route",
            IndexFamily::CaseReference => "case_reference",
            IndexFamily::Purpose => "purpose",
        }
    }
}

/// One pointer from a (family, value) to an entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexRecord {
    pub family: IndexFamily,
    pub value: String,
    pub seq: u64,
}

/// Every (family, value) an entry must be indexed under, sorted and without duplicates; empty
/// values are skipped, and so are case references and purposes longer than
/// [`MAX_INDEXED_VALUE_BYTES`] ([`IndexFamily::skips_long_values`]). Borrows from the entry, so
/// checking indexes allocates no strings.
pub fn index_values(entry: &Entry) -> Vec<(IndexFamily, &str)> {
    index_values_with(entry, personal_values(entry))
}

/// [`index_values`] of an entry whose personal values come from `personal` rather than from the
/// entry itself: a sealed (format 2 or 3) leaf (which holds none) with its stored values, checked against
/// their commitments, so the verifier need not build the plain entry. Only the entry's
/// non-personal fields are read from `entry`.
pub fn index_values_with<'a>(
    entry: &'a Entry,
    personal: impl IntoIterator<Item = (PersonalField, &'a str)>,
) -> Vec<(IndexFamily, &'a str)> {
    let mut out: Vec<(IndexFamily, &'a str)> = Vec::with_capacity(10);
    let mut add = |family: IndexFamily, value: &'a str| {
        let too_long = family.skips_long_values() && value.len() > MAX_INDEXED_VALUE_BYTES;
        if !value.is_empty() && !too_long {
            out.push((family, value));
        }
    };
    for (field, value) in personal {
        if let Some(family) = family_of(field) {
            add(family, value);
        }
    }
    let op = Operation::try_from(entry.operation).unwrap_or(Operation::Unspecified);
    if op != Operation::Unspecified {
        add(IndexFamily::Operation, op.label());
    }
    let kind = EntryKind::try_from(entry.kind).unwrap_or(EntryKind::Unspecified);
    add(IndexFamily::Kind, kind.label());
    if let Some(req) = &entry.request {
        add(IndexFamily::Route, &req.route);
    }
    if let Some(j) = &entry.justification {
        add(IndexFamily::Purpose, &j.purpose_code);
    }
    if let Some(q) = &entry.audit_query {
        let purpose = AuditPurpose::try_from(q.purpose).unwrap_or(AuditPurpose::Unspecified);
        if purpose != AuditPurpose::Unspecified {
            add(IndexFamily::Purpose, purpose.label());
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The index family a personal field's values are found by, if any.
fn family_of(field: PersonalField) -> Option<IndexFamily> {
    match field {
        PersonalField::ActorId => Some(IndexFamily::Actor),
        PersonalField::SubjectId | PersonalField::ReturnedSubjectId => Some(IndexFamily::Subject),
        PersonalField::RecordId | PersonalField::ReturnedRecordId => Some(IndexFamily::Record),
        PersonalField::Recipient => Some(IndexFamily::Recipient),
        PersonalField::CaseReference | PersonalField::AuditCaseReference => {
            Some(IndexFamily::CaseReference)
        }
        PersonalField::Unspecified
        | PersonalField::ActorName
        | PersonalField::ActorRole
        | PersonalField::ActorAddress
        | PersonalField::JustificationText
        | PersonalField::RequestPath
        | PersonalField::AuditFilter => None,
    }
}

/// The personal values an entry holds in its own fields that some index family finds.
fn personal_values(entry: &Entry) -> impl Iterator<Item = (PersonalField, &str)> {
    fn one(
        field: PersonalField,
        v: Option<&String>,
    ) -> impl Iterator<Item = (PersonalField, &str)> {
        v.map(|v| (field, v.as_str())).into_iter()
    }
    fn many(
        field: PersonalField,
        v: Option<&Vec<String>>,
    ) -> impl Iterator<Item = (PersonalField, &str)> {
        v.into_iter().flatten().map(move |v| (field, v.as_str()))
    }
    let outcome = entry.outcome.as_ref();
    one(PersonalField::ActorId, entry.actor.as_ref().map(|a| &a.id))
        .chain(many(PersonalField::SubjectId, Some(&entry.subject_ids)))
        .chain(many(PersonalField::RecordId, Some(&entry.record_ids)))
        .chain(many(PersonalField::Recipient, Some(&entry.recipients)))
        .chain(many(
            PersonalField::ReturnedSubjectId,
            outcome.map(|o| &o.returned_subject_ids),
        ))
        .chain(many(
            PersonalField::ReturnedRecordId,
            outcome.map(|o| &o.returned_record_ids),
        ))
        .chain(one(
            PersonalField::CaseReference,
            entry.justification.as_ref().map(|j| &j.case_reference),
        ))
        .chain(one(
            PersonalField::AuditCaseReference,
            entry.audit_query.as_ref().map(|q| &q.case_reference),
        ))
}

/// Every index record an entry must have, sorted and without duplicates.
pub fn index_records(entry: &Entry) -> Vec<IndexRecord> {
    index_values(entry)
        .into_iter()
        .map(|(family, value)| IndexRecord {
            family,
            value: value.to_owned(),
            seq: entry.seq,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::{Actor, Outcome};

    #[test]
    fn an_outcome_is_found_by_the_subjects_it_returned() {
        let entry = Entry {
            seq: 9,
            kind: EntryKind::Outcome as i32,
            operation: Operation::Consultation as i32,
            actor: Some(Actor {
                id: "pc-1234".into(),
                ..Default::default()
            }),
            subject_ids: vec!["P-1".into()],
            outcome: Some(Outcome {
                returned_subject_ids: vec!["P-1".into(), "P-2".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let recs = index_records(&entry);
        let subjects: Vec<_> = recs
            .iter()
            .filter(|r| r.family == IndexFamily::Subject)
            .map(|r| r.value.as_str())
            .collect();
        assert_eq!(subjects, ["P-1", "P-2"], "deduplicated, sorted");
        assert!(recs.iter().all(|r| r.seq == 9));
        assert!(recs.contains(&IndexRecord {
            family: IndexFamily::Actor,
            value: "pc-1234".into(),
            seq: 9
        }));
        assert!(
            recs.iter()
                .any(|r| r.family == IndexFamily::Operation && r.value == "consultation")
        );
    }

    #[test]
    fn an_entry_is_found_by_its_case_reference_and_purpose_from_either_side() {
        use crate::log::entry::{AuditQuery, Justification};
        let officer = Entry {
            kind: EntryKind::Intent as i32,
            justification: Some(Justification {
                purpose_code: "investigation".into(),
                text: "burglary".into(),
                case_reference: "OP-77".into(),
            }),
            ..Default::default()
        };
        let by = |e: &Entry, f: IndexFamily| -> Vec<String> {
            index_records(e)
                .into_iter()
                .filter(|r| r.family == f)
                .map(|r| r.value)
                .collect()
        };
        assert_eq!(by(&officer, IndexFamily::CaseReference), ["OP-77"]);
        assert_eq!(by(&officer, IndexFamily::Purpose), ["investigation"]);
        // An auditor's opening entry states the same case twice: one record.
        let auditor = Entry {
            kind: EntryKind::AuditQuery as i32,
            justification: Some(Justification {
                purpose_code: "self-monitoring".into(),
                text: String::new(),
                case_reference: "PSD-1".into(),
            }),
            audit_query: Some(AuditQuery {
                purpose: AuditPurpose::SelfMonitoring as i32,
                case_reference: "PSD-1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(by(&auditor, IndexFamily::CaseReference), ["PSD-1"]);
        assert_eq!(by(&auditor, IndexFamily::Purpose), ["self-monitoring"]);
        // Free text too long to index is left out, not refused.
        let long = Entry {
            justification: Some(Justification {
                case_reference: "x".repeat(MAX_INDEXED_VALUE_BYTES + 1),
                purpose_code: "y".repeat(MAX_INDEXED_VALUE_BYTES + 1),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(by(&long, IndexFamily::CaseReference).is_empty());
        assert!(by(&long, IndexFamily::Purpose).is_empty());
    }

    #[test]
    fn family_bytes_round_trip() {
        for f in IndexFamily::ALL {
            assert_eq!(IndexFamily::from_byte(f as u8), Some(f));
        }
    }
}

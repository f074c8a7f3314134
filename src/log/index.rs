//! Secondary index records derived from an entry: which (family, value) pairs point at its seq.
//!
//! Pure: a function of the decoded entry. The writer stores these in the same batch as the entry;
//! the verifier recomputes them from stored bytes and checks the stored index against them. It must
//! not depend on storage.

use super::entry::{Entry, EntryKind, Operation};

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
}

impl IndexFamily {
    pub const ALL: [IndexFamily; 7] = [
        IndexFamily::Actor,
        IndexFamily::Subject,
        IndexFamily::Record,
        IndexFamily::Recipient,
        IndexFamily::Operation,
        IndexFamily::Kind,
        IndexFamily::Route,
    ];

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
/// values are skipped. Borrows from the entry, so checking indexes allocates no strings.
pub fn index_values<'a>(entry: &'a Entry) -> Vec<(IndexFamily, &'a str)> {
    let mut out: Vec<(IndexFamily, &'a str)> = Vec::with_capacity(8);
    let mut add = |family: IndexFamily, value: &'a str| {
        if !value.is_empty() {
            out.push((family, value));
        }
    };
    if let Some(actor) = &entry.actor {
        add(IndexFamily::Actor, &actor.id);
    }
    for s in &entry.subject_ids {
        add(IndexFamily::Subject, s);
    }
    for r in &entry.record_ids {
        add(IndexFamily::Record, r);
    }
    for d in &entry.recipients {
        add(IndexFamily::Recipient, d);
    }
    if let Some(outcome) = &entry.outcome {
        for s in &outcome.returned_subject_ids {
            add(IndexFamily::Subject, s);
        }
        for r in &outcome.returned_record_ids {
            add(IndexFamily::Record, r);
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
    out.sort_unstable();
    out.dedup();
    out
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
    fn family_bytes_round_trip() {
        for f in IndexFamily::ALL {
            assert_eq!(IndexFamily::from_byte(f as u8), Some(f));
        }
    }
}

//! The subject access report: for one data subject, every logged entry that names them — as asked
//! for (intents, denied requests) or as returned to someone (outcomes) — in time order, with who,
//! what, when, why and, for disclosures, to whom; then a summary.
//!
//! Drawn from the subject index, which the writer fills from both the ids a request asked for and
//! the ids its response returned, so a person who only appeared in someone's search results is
//! still found. An outcome carries no justification of its own: the report takes it (and anything
//! else the outcome left empty) from the intent the outcome answers, and says which seq it came
//! from. Synchronous over the [`Store`] trait; must not import tonic or RocksDB.

use super::logs::Merge;
use super::pb::{OperationCount, SubjectEvent, SubjectReportResponse, SubjectSummary};
use super::plan::{EntryFilter, Matches, PlanError};
use super::sink::{Sink, Stop};
use crate::log::entry::{Entry, EntryKind, Operation};
use crate::log::store::{LogStore, OpenedEntry, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::pb::subject_report_response::Item;

/// One log a report reads: its store, one past the last entry the call may see, and the origin
/// its rows carry ("" from a service that serves one log).
pub struct ReportLog<'a> {
    pub origin: String,
    pub store: &'a dyn Store,
    pub end: u64,
}

/// Streams the report for `subject` over entries `[0, end)` of each log (optionally within a time
/// range) into `sink`: one event per entry, across logs in (time, origin, seq) order (`logs` in
/// origin order), then one summary of them all.
pub fn subject_report(
    logs: &[ReportLog<'_>],
    subject: &str,
    since: Option<i64>,
    until: Option<i64>,
    sink: &mut dyn Sink<SubjectReportResponse>,
) -> Result<(), Stop> {
    let streams = logs
        .iter()
        .map(|log| SubjectEvents::new(log, subject, since, until))
        .collect::<Result<Vec<_>, _>>()?;
    let mut by_operation: BTreeMap<i32, u64> = BTreeMap::new();
    let mut actors = BTreeSet::new();
    let mut recipients = BTreeSet::new();
    let mut events = 0u64;
    for m in Merge::new(streams, |e: &SubjectEvent| (e.time_unix_nanos, e.seq)) {
        let (_, event) = m?;
        *by_operation.entry(event.operation).or_default() += 1;
        if let Some(a) = &event.actor
            && !a.id.is_empty()
        {
            actors.insert(a.id.clone());
        }
        recipients.extend(event.recipients.iter().cloned());
        events += 1;
        sink.result(SubjectReportResponse {
            item: Some(Item::Event(event)),
        })?;
    }
    sink.frame(SubjectReportResponse {
        item: Some(Item::Summary(SubjectSummary {
            events,
            by_operation: by_operation
                .into_iter()
                .map(|(operation, count)| OperationCount { operation, count })
                .collect(),
            actors: actors.into_iter().collect(),
            recipients: recipients.into_iter().collect(),
        })),
    })
}

/// The report rows of one log, in seq order.
struct SubjectEvents<'a> {
    store: &'a dyn Store,
    origin: String,
    subject: String,
    matches: Matches<'a>,
    /// Recent intents, for the outcomes that answer them.
    intents: HashMap<u64, Entry>,
}

impl<'a> SubjectEvents<'a> {
    fn new(
        log: &ReportLog<'a>,
        subject: &str,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Self, PlanError> {
        let filter = EntryFilter {
            subject: Some(subject.to_owned()),
            since,
            until,
            ..Default::default()
        };
        Ok(SubjectEvents {
            store: log.store,
            origin: log.origin.clone(),
            subject: subject.to_owned(),
            matches: Matches::new(log.store, filter, 0, log.end)?,
            intents: HashMap::new(),
        })
    }

    fn row(&mut self, m: OpenedEntry) -> Result<SubjectEvent, PlanError> {
        let OpenedEntry {
            seq,
            leaf,
            entry: e,
            redacted,
            ..
        } = m;
        let answered = match e.answers_seq {
            Some(a) if e.kind == EntryKind::Outcome as i32 => {
                if let std::collections::hash_map::Entry::Vacant(slot) = self.intents.entry(a)
                    && let Some(intent) = self.store.opened(a)?
                {
                    slot.insert(intent.entry);
                }
                self.intents.get(&a)
            }
            _ => None,
        };
        let mut event = event(&self.subject, seq, leaf, &e, answered);
        event.redacted = redacted.iter().map(ToString::to_string).collect();
        event.origin = self.origin.clone();
        if e.kind == EntryKind::Intent as i32 {
            // Its outcome usually follows closely; keep it for that row.
            self.intents.insert(seq, e);
            if self.intents.len() > 4096 {
                self.intents.clear();
            }
        }
        Ok(event)
    }
}

impl Iterator for SubjectEvents<'_> {
    type Item = Result<SubjectEvent, PlanError>;

    fn next(&mut self) -> Option<Self::Item> {
        let m = self.matches.next()?;
        Some(m.and_then(|m| self.row(m)))
    }
}

/// One report row for entry `seq`, filling what an outcome leaves empty from its intent.
fn event(
    subject: &str,
    seq: u64,
    leaf: Vec<u8>,
    e: &Entry,
    intent: Option<&Entry>,
) -> SubjectEvent {
    let names = |x: &Entry| x.subject_ids.iter().any(|s| s == subject);
    let own_justification = e.justification.as_ref().filter(|j| {
        !(j.text.is_empty() && j.purpose_code.is_empty() && j.case_reference.is_empty())
    });
    let (justification, justification_seq) = match (own_justification, intent) {
        (Some(j), _) => (Some(j.clone()), seq),
        (None, Some(i)) => (i.justification.clone(), i.seq),
        (None, None) => (None, seq),
    };
    let operation = if e.operation != Operation::Unspecified as i32 {
        e.operation
    } else {
        intent.map_or(e.operation, |i| i.operation)
    };
    let pick = |own: &Vec<String>, from_intent: fn(&Entry) -> &Vec<String>| {
        if own.is_empty() {
            intent.map(|i| from_intent(i).clone()).unwrap_or_default()
        } else {
            own.clone()
        }
    };
    let request = e
        .request
        .as_ref()
        .or(intent.and_then(|i| i.request.as_ref()));
    SubjectEvent {
        seq,
        time_unix_nanos: e.time_unix_nanos,
        kind: e.kind,
        operation,
        actor: e
            .actor
            .clone()
            .or_else(|| intent.and_then(|i| i.actor.clone())),
        justification,
        justification_seq,
        recipients: pick(&e.recipients, |i| &i.recipients),
        record_ids: pick(&e.record_ids, |i| &i.record_ids),
        asked: names(e) || intent.is_some_and(names),
        returned: e
            .outcome
            .as_ref()
            .is_some_and(|o| o.returned_subject_ids.iter().any(|s| s == subject)),
        method: request.map(|r| r.method.clone()).unwrap_or_default(),
        route: request.map(|r| r.route.clone()).unwrap_or_default(),
        status: e.outcome.as_ref().map_or(0, |o| o.status),
        denial_reason: e
            .denial
            .as_ref()
            .map(|d| d.reason.clone())
            .unwrap_or_default(),
        answers_seq: e.answers_seq,
        leaf,
        redacted: Vec::new(),
        origin: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::{Actor, Justification, Outcome, Request};
    use crate::log::index::index_records;
    use crate::log::store::CommitBatch;
    use crate::log::store::memory::MemoryStore;
    use crate::query::sink::VecSink;

    fn store_of(entries: Vec<Entry>) -> MemoryStore {
        let store = MemoryStore::new();
        let mut batch = CommitBatch::default();
        for (i, mut e) in entries.into_iter().enumerate() {
            e.format_version = crate::log::entry::FORMAT_VERSION;
            e.seq = i as u64;
            e.time_unix_nanos = i as i64;
            batch.index.extend(index_records(&e));
            batch.entries.push((e.seq, crate::log::entry::encode(&e)));
        }
        store.commit(&batch).expect("commit");
        store
    }

    #[test]
    fn a_person_only_returned_by_a_search_gets_the_searchers_justification() {
        let store = store_of(vec![
            Entry {
                kind: EntryKind::Intent as i32,
                operation: Operation::Consultation as i32,
                actor: Some(Actor {
                    id: "pc-1".into(),
                    ..Default::default()
                }),
                justification: Some(Justification {
                    purpose_code: "investigation".into(),
                    text: "burglary suspects".into(),
                    case_reference: "OP-1".into(),
                }),
                request: Some(Request {
                    method: "GET".into(),
                    route: "people.search".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Entry {
                kind: EntryKind::Outcome as i32,
                answers_seq: Some(0),
                outcome: Some(Outcome {
                    status: 200,
                    returned_subject_ids: vec!["P-9".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]);
        let mut sink = VecSink::default();
        let log = ReportLog {
            origin: String::new(),
            store: &store,
            end: 2,
        };
        subject_report(&[log], "P-9", None, None, &mut sink).expect("report");
        assert_eq!(sink.results, 1);
        let Some(Item::Event(ev)) = &sink.items[0].item else {
            panic!("an event first");
        };
        assert_eq!(ev.seq, 1);
        assert!(ev.returned && !ev.asked);
        assert_eq!(ev.justification_seq, 0);
        assert_eq!(
            ev.justification.as_ref().map(|j| j.text.as_str()),
            Some("burglary suspects")
        );
        assert_eq!(ev.actor.as_ref().map(|a| a.id.as_str()), Some("pc-1"));
        assert_eq!(ev.operation, Operation::Consultation as i32);
        assert_eq!(ev.route, "people.search");
        let Some(Item::Summary(s)) = &sink.items[1].item else {
            panic!("a summary last");
        };
        assert_eq!(s.events, 1);
        assert_eq!(s.actors, ["pc-1"]);
    }
}

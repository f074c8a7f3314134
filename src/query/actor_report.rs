//! The actor report: one officer's activity over a time range, for s62(4)(b) self-monitoring —
//! which data subjects they consulted (distinct, with counts), how many of their requests stated
//! a justification and a case reference, how many of their requests were refused, and how many
//! alerts their actions raised (and of those, how many a review found to be misuse).
//!
//! Drawn from the actor index, so cost grows with the officer's entries, not with the log. A
//! request is an intent and the outcome that answers it: the subjects it named are those the
//! request asked for and those that came back, counted once per request. Redacted values are
//! counted as present (their commitment is in the leaf) but never shown. Synchronous over the
//! [`Store`] trait; must not import tonic or RocksDB.

use super::alerts::{MISUSE, latest_outcomes};
use super::pb::{ActorReportResponse, OperationCount, ReasonCount, SubjectCount};
use super::plan::{EntryFilter, Matches, PlanError};
use crate::log::entry::{EntryKind, PersonalField};
use crate::log::store::{OpenedEntry, Store};
use std::collections::{BTreeMap, BTreeSet};

/// The subjects one request named: asked for, and returned.
#[derive(Default)]
struct Named {
    asked: BTreeSet<String>,
    returned: BTreeSet<String>,
}

/// Counts for one subject.
#[derive(Default)]
struct Tally {
    requests: u64,
    asked: u64,
    returned: u64,
}

/// Requests whose outcome has not been seen yet are held at most this many at a time; past it
/// the oldest is counted on what its intent named (an outcome seen later still adds what it
/// returned, as a request of its own). Outcomes follow their intents closely, so this only bounds
/// memory on a log whose outcomes went missing.
const PENDING_REQUESTS: usize = 65_536;

/// The report on `actor` over entries `[0, end)` within `[since, until)`.
pub fn actor_report(
    store: &dyn Store,
    actor: &str,
    since: Option<i64>,
    until: Option<i64>,
    end: u64,
) -> Result<ActorReportResponse, PlanError> {
    let filter = EntryFilter {
        actor: Some(actor.to_owned()),
        since,
        until,
        ..Default::default()
    };
    let mut r = ActorReportResponse {
        actor: actor.to_owned(),
        ..Default::default()
    };
    let mut by_operation: BTreeMap<i32, u64> = BTreeMap::new();
    let mut denials: BTreeMap<String, u64> = BTreeMap::new();
    let mut subjects: BTreeMap<String, Tally> = BTreeMap::new();
    // Requests by intent seq, until their outcome is seen.
    let mut pending: BTreeMap<u64, Named> = BTreeMap::new();
    let mut redacted_ids = 0u64;
    // The actor's alerts (actor index ∩ kind alert, within the range).
    let mut alerts: Vec<u64> = Vec::new();
    let count = |named: Named, subjects: &mut BTreeMap<String, Tally>| {
        for s in named.asked.union(&named.returned) {
            let t = subjects.entry(s.clone()).or_default();
            t.requests += 1;
            t.asked += u64::from(named.asked.contains(s));
            t.returned += u64::from(named.returned.contains(s));
        }
    };
    for m in Matches::new(store, filter, 0, end)? {
        let OpenedEntry {
            seq,
            entry: e,
            redacted,
            ..
        } = m?;
        r.entries += 1;
        let was_redacted = |f: PersonalField| redacted.iter().any(|x| x.field == f);
        redacted_ids += redacted
            .iter()
            .filter(|x| {
                matches!(
                    x.field,
                    PersonalField::SubjectId | PersonalField::ReturnedSubjectId
                )
            })
            .count() as u64;
        let ids = |v: &[String]| -> BTreeSet<String> {
            v.iter().filter(|s| !s.is_empty()).cloned().collect()
        };
        match EntryKind::try_from(e.kind) {
            Ok(EntryKind::Intent) => {
                r.requests += 1;
                *by_operation.entry(e.operation).or_default() += 1;
                let j = e.justification.as_ref();
                if j.is_some_and(|j| !j.text.is_empty())
                    || was_redacted(PersonalField::JustificationText)
                {
                    r.with_justification += 1;
                }
                if j.is_some_and(|j| !j.case_reference.is_empty())
                    || was_redacted(PersonalField::CaseReference)
                {
                    r.with_case_reference += 1;
                }
                pending.insert(
                    seq,
                    Named {
                        asked: ids(&e.subject_ids),
                        returned: BTreeSet::new(),
                    },
                );
                if pending.len() > PENDING_REQUESTS
                    && let Some((_, oldest)) = pending.pop_first()
                {
                    count(oldest, &mut subjects);
                }
            }
            Ok(EntryKind::Outcome) => {
                let returned = e
                    .outcome
                    .as_ref()
                    .map(|o| ids(&o.returned_subject_ids))
                    .unwrap_or_default();
                let mut named = e
                    .answers_seq
                    .and_then(|a| pending.remove(&a))
                    .unwrap_or_default();
                named.returned = returned;
                count(named, &mut subjects);
            }
            Ok(EntryKind::Denied) => {
                r.denials += 1;
                let reason = e.denial.map(|d| d.reason).unwrap_or_default();
                *denials.entry(reason).or_default() += 1;
            }
            Ok(EntryKind::Alert) => alerts.push(seq),
            _ => {}
        }
    }
    for (_, named) in std::mem::take(&mut pending) {
        count(named, &mut subjects);
    }
    let subjects = subjects.into_iter().map(|(subject, t)| SubjectCount {
        subject,
        requests: t.requests,
        asked: t.asked,
        returned: t.returned,
    });
    fill(&mut r, by_operation, denials, subjects);
    r.redacted_subject_ids = redacted_ids;
    r.alerts = alerts.len() as u64;
    // Misuse found: the latest review of each alert, from the kind index (reviews written since
    // the actor's first alert, so this costs the reviews, not the log).
    if let Some(&first) = alerts.first() {
        let outcomes = latest_outcomes(store, first, end)?;
        r.alerts_misuse = alerts
            .iter()
            .filter(|seq| outcomes.get(seq).is_some_and(|o| o == MISUSE))
            .count() as u64;
    }
    Ok(r)
}
/// The reports on one actor from several logs as one: counts summed, subjects and denial
/// reasons merged and sorted as in one log's report, `origins` naming the logs (in the order
/// given).
pub fn sum_reports(origins: Vec<String>, reports: Vec<ActorReportResponse>) -> ActorReportResponse {
    let mut r = ActorReportResponse {
        origins,
        ..Default::default()
    };
    let mut by_operation: BTreeMap<i32, u64> = BTreeMap::new();
    let mut denials: BTreeMap<String, u64> = BTreeMap::new();
    let mut subjects: BTreeMap<String, SubjectCount> = BTreeMap::new();
    for one in reports {
        r.actor = one.actor;
        r.entries += one.entries;
        r.requests += one.requests;
        r.with_justification += one.with_justification;
        r.with_case_reference += one.with_case_reference;
        r.denials += one.denials;
        r.alerts += one.alerts;
        r.alerts_misuse += one.alerts_misuse;
        r.redacted_subject_ids += one.redacted_subject_ids;
        for o in one.by_operation {
            *by_operation.entry(o.operation).or_default() += o.count;
        }
        for d in one.denials_by_reason {
            *denials.entry(d.reason).or_default() += d.count;
        }
        for s in one.subjects {
            let t = subjects.entry(s.subject.clone()).or_insert(SubjectCount {
                subject: s.subject,
                ..Default::default()
            });
            t.requests += s.requests;
            t.asked += s.asked;
            t.returned += s.returned;
        }
    }
    fill(&mut r, by_operation, denials, subjects.into_values());
    r
}

/// Puts the tallies into `r` as the report lists them: operations and denial reasons in key
/// order, subjects most consulted first (ties in id order: `subjects` comes in id order and the
/// sort is stable).
fn fill(
    r: &mut ActorReportResponse,
    by_operation: BTreeMap<i32, u64>,
    denials: BTreeMap<String, u64>,
    subjects: impl Iterator<Item = SubjectCount>,
) {
    r.by_operation = by_operation
        .into_iter()
        .map(|(operation, count)| OperationCount { operation, count })
        .collect();
    r.denials_by_reason = denials
        .into_iter()
        .map(|(reason, count)| ReasonCount { reason, count })
        .collect();
    let mut subjects: Vec<SubjectCount> = subjects.collect();
    subjects.sort_by_key(|s| std::cmp::Reverse(s.requests));
    r.subjects = subjects;
}

//! The coverage report: how well the route rules describe the traffic — for a DPO checking that
//! the log says what was done to whom. Per route rule (and for the method defaults, route ""):
//! requests forwarded, by operation; requests refused; requests that named no data subject,
//! neither in what they asked nor in what came back; and successful responses from which no id
//! was read.
//!
//! A request is an intent and the outcome that answers it. A route that forwards many requests
//! naming nobody, or answers 2xx without returned ids, is one whose rule does not say where the
//! ids are (or that fell to a method default). Redacted ids still count as named: their
//! commitment is in the leaf. This reads every entry in the range (no index selects "requests"),
//! so bound it with a time range on a large log. Synchronous over the [`Store`] trait; must not
//! import tonic or RocksDB.

use super::pb::{CoverageReportResponse, OperationCount, RouteCoverage};
use super::plan::{EntryFilter, Matches, PlanError};
use crate::log::entry::{Entry, EntryKind};
use crate::log::store::{OpenedEntry, Store};
use std::collections::BTreeMap;

/// Counts for one route.
#[derive(Default)]
struct Route {
    requests: u64,
    by_operation: BTreeMap<i32, u64>,
    denied: u64,
    without_subjects: u64,
    succeeded: u64,
    succeeded_without_returned_ids: u64,
}

/// A forwarded request whose outcome has not been seen yet: its route, and whether it named a
/// subject.
struct Pending {
    route: String,
    asked_subject: bool,
}

/// Requests awaiting their outcome held at once; past it the oldest is counted on its intent
/// alone. Outcomes follow their intents closely, so this only bounds memory on a log whose
/// outcomes went missing.
const PENDING_REQUESTS: usize = 65_536;

fn route_of(e: &Entry) -> Option<&str> {
    e.request.as_ref().map(|r| r.route.as_str())
}

/// The report over entries `[0, end)` within `[since, until)`.
pub fn coverage_report(
    store: &dyn Store,
    since: Option<i64>,
    until: Option<i64>,
    end: u64,
) -> Result<CoverageReportResponse, PlanError> {
    let filter = EntryFilter {
        since,
        until,
        ..Default::default()
    };
    let mut routes: BTreeMap<String, Route> = BTreeMap::new();
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let settle = |p: Pending, returned_subject: bool, routes: &mut BTreeMap<String, Route>| {
        if !p.asked_subject && !returned_subject {
            routes.entry(p.route).or_default().without_subjects += 1;
        }
    };
    for m in Matches::new(store, filter, 0, end)? {
        let OpenedEntry { seq, entry: e, .. } = m?;
        match EntryKind::try_from(e.kind) {
            Ok(EntryKind::Intent) => {
                let route = route_of(&e).unwrap_or_default().to_owned();
                let r = routes.entry(route.clone()).or_default();
                r.requests += 1;
                *r.by_operation.entry(e.operation).or_default() += 1;
                pending.insert(
                    seq,
                    Pending {
                        route,
                        asked_subject: !e.subject_ids.is_empty(),
                    },
                );
                if pending.len() > PENDING_REQUESTS
                    && let Some((_, oldest)) = pending.pop_first()
                {
                    settle(oldest, false, &mut routes);
                }
            }
            Ok(EntryKind::Outcome) => {
                let intent = e.answers_seq.and_then(|a| pending.remove(&a));
                let outcome = e.outcome.clone().unwrap_or_default();
                let returned_subject = !outcome.returned_subject_ids.is_empty();
                // The outcome's own route (the proxy records it); else its intent's.
                let route = route_of(&e)
                    .map(str::to_owned)
                    .or_else(|| intent.as_ref().map(|p| p.route.clone()))
                    .unwrap_or_default();
                if let Some(p) = intent {
                    settle(p, returned_subject, &mut routes);
                }
                if (200..300).contains(&outcome.status) {
                    let r = routes.entry(route).or_default();
                    r.succeeded += 1;
                    if !returned_subject && outcome.returned_record_ids.is_empty() {
                        r.succeeded_without_returned_ids += 1;
                    }
                }
            }
            Ok(EntryKind::Denied) if e.request.is_some() => {
                routes
                    .entry(route_of(&e).unwrap_or_default().to_owned())
                    .or_default()
                    .denied += 1;
            }
            _ => {}
        }
    }
    for (_, p) in std::mem::take(&mut pending) {
        settle(p, false, &mut routes);
    }
    let mut out = CoverageReportResponse::default();
    for (route, r) in routes {
        out.requests += r.requests;
        if route.is_empty() {
            out.method_default = r.requests;
        }
        out.denied += r.denied;
        out.without_subjects += r.without_subjects;
        out.succeeded += r.succeeded;
        out.succeeded_without_returned_ids += r.succeeded_without_returned_ids;
        out.routes.push(RouteCoverage {
            route,
            requests: r.requests,
            by_operation: r
                .by_operation
                .into_iter()
                .map(|(operation, count)| OperationCount { operation, count })
                .collect(),
            denied: r.denied,
            without_subjects: r.without_subjects,
            succeeded: r.succeeded,
            succeeded_without_returned_ids: r.succeeded_without_returned_ids,
        });
    }
    Ok(out)
}

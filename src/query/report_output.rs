//! How `s62 query actor-report`, `coverage-report` and `alerts` print their answers as JSON and
//! CSV (the table form is printed by the client with its other tables; `alerts` shares its rows).
//!
//! CSV shapes (a header line, then one record per line; [`super::csv`] quotes and defuses cells):
//!
//! * actor report — tidy `measure,key,value` rows: `actor`, `entries`, `requests`,
//!   `with_justification`, `with_case_reference`, `denials`, `alerts`, `alerts_misuse`,
//!   `redacted_subject_ids`
//!   with an empty key; `operation,<operation>,n` and `denial_reason,<reason>,n`; and per subject
//!   `subject_requests`, `subject_asked`, `subject_returned` keyed by the subject id.
//! * coverage report — one row per route (`row` = `route`; `route` empty for the method
//!   defaults) and a last `total` row, with the counts as columns, requests by operation first.
//! * alerts — one row per alert: `seq,time,rule,name,actor,sighting,related,review,reviews`, where
//!   `review` is the latest review's outcome or `unreviewed` and `reviews` how many there are.
//!
//! Pure: a function of the response messages; must not import the network, the server or the
//! store.

use super::csv::record;
use super::pb::{
    ActorReportResponse, AlertItem, CoverageReportResponse, OperationCount, RouteCoverage,
};
use crate::log::entry::{Alert, Operation};
use crate::render::rfc3339_utc;
use serde_json::{Map, Value, json};

/// The six s62(1) operations, in the order CSV columns list them.
const OPERATIONS: [Operation; 6] = [
    Operation::Collection,
    Operation::Alteration,
    Operation::Consultation,
    Operation::Disclosure,
    Operation::Combination,
    Operation::Erasure,
];

fn op_label(code: i32) -> &'static str {
    Operation::try_from(code)
        .unwrap_or(Operation::Unspecified)
        .label()
}

fn by_operation_json(counts: &[OperationCount]) -> Value {
    Value::Object(
        counts
            .iter()
            .map(|c| (op_label(c.operation).to_owned(), json!(c.count)))
            .collect::<Map<_, _>>(),
    )
}

fn count_of(counts: &[OperationCount], op: Operation) -> u64 {
    counts
        .iter()
        .filter(|c| c.operation == op as i32)
        .map(|c| c.count)
        .sum()
}

/// The actor report as one JSON object.
pub fn actor_json(r: &ActorReportResponse) -> Value {
    json!({
        "actor": r.actor,
        "entries": r.entries,
        "requests": r.requests,
        "by_operation": by_operation_json(&r.by_operation),
        "with_justification": r.with_justification,
        "with_case_reference": r.with_case_reference,
        "denials": r.denials,
        "denials_by_reason": r.denials_by_reason.iter()
            .map(|d| (d.reason.clone(), json!(d.count))).collect::<Map<_, _>>(),
        "alerts": r.alerts,
        "alerts_misuse": r.alerts_misuse,
        "redacted_subject_ids": r.redacted_subject_ids,
        "subjects": r.subjects.iter().map(|s| json!({
            "subject": s.subject, "requests": s.requests, "asked": s.asked, "returned": s.returned,
        })).collect::<Vec<_>>(),
    })
}

/// The actor report as CSV, header first, each record ending in a line feed.
pub fn actor_csv(r: &ActorReportResponse) -> String {
    let mut rows: Vec<[String; 3]> = Vec::new();
    let mut put = |measure: &str, key: &str, value: String| {
        rows.push([measure.to_owned(), key.to_owned(), value]);
    };
    put("actor", "", r.actor.clone());
    for (measure, n) in [
        ("entries", r.entries),
        ("requests", r.requests),
        ("with_justification", r.with_justification),
        ("with_case_reference", r.with_case_reference),
        ("denials", r.denials),
        ("alerts", r.alerts),
        ("alerts_misuse", r.alerts_misuse),
        ("redacted_subject_ids", r.redacted_subject_ids),
    ] {
        put(measure, "", n.to_string());
    }
    for c in &r.by_operation {
        put("operation", op_label(c.operation), c.count.to_string());
    }
    for d in &r.denials_by_reason {
        put("denial_reason", &d.reason, d.count.to_string());
    }
    for s in &r.subjects {
        put("subject_requests", &s.subject, s.requests.to_string());
        put("subject_asked", &s.subject, s.asked.to_string());
        put("subject_returned", &s.subject, s.returned.to_string());
    }
    let mut out = record(&["measure", "key", "value"]);
    out.push('\n');
    for row in rows {
        out.push_str(&record(&row));
        out.push('\n');
    }
    out
}

/// Column headers of the alert table and CSV, matching [`alert_row`].
pub const ALERT_COLUMNS: [&str; 9] = [
    "seq", "time", "rule", "name", "actor", "sighting", "related", "review", "reviews",
];

/// The configured name of the rule that raised an alert, when the entry records one.
fn alert_name(alert: &Alert) -> String {
    alert.name.clone()
}

/// The outcome of an alert's latest review, or `unreviewed`.
pub fn latest_review(item: &AlertItem) -> &str {
    item.reviews
        .last()
        .and_then(|r| r.entry.as_ref())
        .and_then(|e| e.alert_review.as_ref())
        .map_or("unreviewed", |r| r.outcome.as_str())
}

/// One alert as a table or CSV row ([`ALERT_COLUMNS`]).
pub fn alert_row(item: &AlertItem) -> Vec<String> {
    let Some(le) = &item.alert else {
        return vec![String::new(); ALERT_COLUMNS.len()];
    };
    let e = le.entry.clone().unwrap_or_default();
    let a = e.alert.clone().unwrap_or_default();
    vec![
        le.seq.to_string(),
        rfc3339_utc(e.time_unix_nanos),
        a.rule.clone(),
        alert_name(&a),
        e.actor.map(|a| a.id).unwrap_or_default(),
        a.sighting_seq.to_string(),
        a.related_seq.to_string(),
        latest_review(item).to_owned(),
        item.reviews.len().to_string(),
    ]
}

/// Alerts as CSV, header first, each record ending in a line feed.
pub fn alerts_csv(items: &[AlertItem]) -> String {
    let mut out = record(&ALERT_COLUMNS);
    out.push('\n');
    for item in items {
        out.push_str(&record(&alert_row(item)));
        out.push('\n');
    }
    out
}

/// The coverage report as one JSON object.
pub fn coverage_json(r: &CoverageReportResponse) -> Value {
    json!({
        "requests": r.requests,
        "method_default": r.method_default,
        "denied": r.denied,
        "without_subjects": r.without_subjects,
        "succeeded": r.succeeded,
        "succeeded_without_returned_ids": r.succeeded_without_returned_ids,
        "routes": r.routes.iter().map(|c| json!({
            "route": c.route,
            "requests": c.requests,
            "by_operation": by_operation_json(&c.by_operation),
            "denied": c.denied,
            "without_subjects": c.without_subjects,
            "succeeded": c.succeeded,
            "succeeded_without_returned_ids": c.succeeded_without_returned_ids,
        })).collect::<Vec<_>>(),
    })
}

/// The columns of a coverage CSV record after `row` and `route`, for one route's counts.
fn coverage_cells(c: &RouteCoverage) -> Vec<String> {
    let mut cells = vec![c.requests.to_string()];
    cells.extend(
        OPERATIONS
            .iter()
            .map(|op| count_of(&c.by_operation, *op).to_string()),
    );
    cells.extend(
        [
            c.denied,
            c.without_subjects,
            c.succeeded,
            c.succeeded_without_returned_ids,
        ]
        .map(|n| n.to_string()),
    );
    cells
}

/// The coverage report as CSV, header first, each record ending in a line feed.
pub fn coverage_csv(r: &CoverageReportResponse) -> String {
    let mut header = vec!["row".to_owned(), "route".to_owned(), "requests".to_owned()];
    header.extend(OPERATIONS.iter().map(|op| op.label().to_owned()));
    header.extend(
        [
            "denied",
            "without_subjects",
            "succeeded",
            "succeeded_without_returned_ids",
        ]
        .map(str::to_owned),
    );
    let mut out = record(&header);
    out.push('\n');
    let mut total = RouteCoverage {
        route: String::new(),
        requests: r.requests,
        by_operation: Vec::new(),
        denied: r.denied,
        without_subjects: r.without_subjects,
        succeeded: r.succeeded,
        succeeded_without_returned_ids: r.succeeded_without_returned_ids,
    };
    for c in &r.routes {
        let mut cells = vec!["route".to_owned(), c.route.clone()];
        cells.extend(coverage_cells(c));
        out.push_str(&record(&cells));
        out.push('\n');
        total.by_operation.extend(c.by_operation.iter().cloned());
    }
    let mut cells = vec!["total".to_owned(), String::new()];
    cells.extend(coverage_cells(&total));
    out.push_str(&record(&cells));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::pb::{ReasonCount, SubjectCount};

    #[test]
    fn an_actor_report_is_tidy_csv_with_every_number_once() {
        let r = ActorReportResponse {
            actor: "pc-7".into(),
            entries: 14,
            requests: 6,
            by_operation: vec![OperationCount {
                operation: Operation::Consultation as i32,
                count: 6,
            }],
            with_justification: 5,
            with_case_reference: 4,
            subjects: vec![SubjectCount {
                subject: "P-1".into(),
                requests: 3,
                asked: 2,
                returned: 3,
            }],
            denials: 1,
            denials_by_reason: vec![ReasonCount {
                reason: "no_justification".into(),
                count: 1,
            }],
            alerts: 2,
            alerts_misuse: 1,
            redacted_subject_ids: 0,
            ..Default::default()
        };
        let csv = actor_csv(&r);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "measure,key,value");
        for want in [
            "actor,,pc-7",
            "requests,,6",
            "with_justification,,5",
            "with_case_reference,,4",
            "operation,consultation,6",
            "denial_reason,no_justification,1",
            "subject_requests,P-1,3",
            "subject_asked,P-1,2",
            "subject_returned,P-1,3",
            "alerts,,2",
            "alerts_misuse,,1",
        ] {
            assert!(lines.contains(&want), "{want:?} missing from\n{csv}");
        }
        assert_eq!(lines.len(), 1 + 9 + 1 + 1 + 3);
    }

    #[test]
    fn a_coverage_report_is_one_row_per_route_and_a_total() {
        let route = |name: &str, consultations: u64, erasures: u64| RouteCoverage {
            route: name.into(),
            requests: consultations + erasures,
            by_operation: [
                (Operation::Consultation, consultations),
                (Operation::Erasure, erasures),
            ]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(op, count)| OperationCount {
                operation: op as i32,
                count,
            })
            .collect(),
            denied: 1,
            without_subjects: erasures,
            succeeded: consultations,
            succeeded_without_returned_ids: 0,
        };
        let r = CoverageReportResponse {
            requests: 5,
            method_default: 1,
            denied: 2,
            without_subjects: 1,
            succeeded: 4,
            succeeded_without_returned_ids: 0,
            routes: vec![route("", 0, 1), route("person-read", 4, 0)],
        };
        assert_eq!(
            coverage_csv(&r),
            "row,route,requests,collection,alteration,consultation,disclosure,combination,erasure,\
             denied,without_subjects,succeeded,succeeded_without_returned_ids\n\
             route,,1,0,0,0,0,0,1,1,1,0,0\n\
             route,person-read,4,0,0,4,0,0,0,1,0,4,0\n\
             total,,5,0,0,4,0,0,1,2,1,4,0\n"
        );
    }
}

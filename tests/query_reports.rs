//! ActorReport and CoverageReport (issue 11) over a crafted day of traffic: the numbers a DPO
//! reads are the ones the day implies, a time range narrows them, redaction hides values without
//! changing the counts, and both calls go through the same purpose-bound, self-logging path as
//! every other call.

mod query_harness;

use query_harness::{Exchange, InMemory, Pki, TestLog, context};
use s62::log::entry::{EntryKind, Operation};
use s62::query::AUDIT_SEQ_HEADER;
use s62::query::pb::audit_query_client::AuditQueryClient;
use s62::query::pb::{
    ActorReportRequest, ActorReportResponse, CoverageReportRequest, CoverageReportResponse, Filter,
    OperationCount, RedactValuesRequest, RouteCoverage,
};
use tonic::Code;
use tonic::transport::Channel;

const CPS: &str = "Crown Prosecution Service";

/// Seqs that mark the day: where the afternoon starts.
struct Day {
    afternoon_starts: u64,
}

/// pc-7's day, with one request by pc-8 among it:
///
/// | # | route | asked | returned | why / case | status |
/// |---|---|---|---|---|---|
/// | 1 | person-read | P-1 | P-1 | burglary / OP-1 | 200 |
/// | 2 | person-read | P-1 | P-1 | burglary / (none) | 200 |
/// | 3 | person-search | – | P-1, P-2 | (none) / (none) | 200 |
/// | – | refused at person-read (no_justification), asking P-4 | | | | |
/// | afternoon | | | | | |
/// | 4 | "" (method default) | – | – | routine / OP-0 | 200 |
/// | 5 | person-export (disclosure to the CPS) | P-3 | – | routine / OP-0 | 200 |
/// | – | refused, no rule (unmatched_route) | | | | |
/// | 6 | person-read | P-5 | – | routine / OP-0 | 404 |
/// | pc-8 | person-read | P-1 | P-1 | routine / OP-0 | 200 |
async fn a_day(log: &TestLog) -> Day {
    let pc7 = |ex: Exchange<'static>| Exchange {
        actor: "pc-7",
        ..ex
    };
    let read = Exchange {
        route: "person-read",
        path: "/people/P-1",
        ..Exchange::default()
    };
    log.exchange(pc7(Exchange {
        asked: &["P-1"],
        returned: &["P-1"],
        why: "burglary",
        case: "OP-1",
        ..read
    }))
    .await;
    log.exchange(pc7(Exchange {
        asked: &["P-1"],
        returned: &["P-1"],
        why: "burglary",
        case: "",
        ..read
    }))
    .await;
    log.exchange(pc7(Exchange {
        route: "person-search",
        path: "/people?surname=x",
        returned: &["P-1", "P-2"],
        why: "",
        case: "",
        ..Exchange::default()
    }))
    .await;
    log.refused(
        pc7(Exchange {
            asked: &["P-4"],
            path: "/people/P-4",
            ..read
        }),
        "no_justification",
    )
    .await;
    // Entry times only ever grow; a pause makes the afternoon's first one strictly later.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let afternoon_starts = log.size();
    log.exchange(pc7(Exchange {
        route: "",
        path: "/reports/daily",
        ..Exchange::default()
    }))
    .await;
    log.exchange(pc7(Exchange {
        route: "person-export",
        method: "POST",
        path: "/exports",
        operation: Operation::Disclosure,
        asked: &["P-3"],
        recipients: &[CPS],
        ..Exchange::default()
    }))
    .await;
    log.refused(
        pc7(Exchange {
            route: "",
            path: "/admin/users",
            ..Exchange::default()
        }),
        "unmatched_route",
    )
    .await;
    log.exchange(pc7(Exchange {
        asked: &["P-5"],
        path: "/people/P-5",
        status: 404,
        ..read
    }))
    .await;
    log.exchange(Exchange {
        actor: "pc-8",
        asked: &["P-1"],
        returned: &["P-1"],
        ..read
    })
    .await;
    Day { afternoon_starts }
}

fn ops(pairs: &[(Operation, u64)]) -> Vec<OperationCount> {
    pairs
        .iter()
        .map(|(op, count)| OperationCount {
            operation: *op as i32,
            count: *count,
        })
        .collect()
}

/// (subject, requests, asked, returned) rows of a report.
fn subjects(r: &ActorReportResponse) -> Vec<(&str, u64, u64, u64)> {
    r.subjects
        .iter()
        .map(|s| (s.subject.as_str(), s.requests, s.asked, s.returned))
        .collect()
}

async fn actor_report(
    client: &mut AuditQueryClient<Channel>,
    actor: &str,
    since: i64,
) -> (ActorReportResponse, u64) {
    let response = client
        .actor_report(ActorReportRequest {
            context: context(),
            actor: actor.into(),
            since_unix_nanos: since,
            until_unix_nanos: 0,
            ..Default::default()
        })
        .await
        .expect("the DPO may run an actor report");
    let seq = audit_seq(&response);
    (response.into_inner(), seq)
}

async fn coverage_report(client: &mut AuditQueryClient<Channel>) -> (CoverageReportResponse, u64) {
    let response = client
        .coverage_report(CoverageReportRequest {
            context: context(),
            ..Default::default()
        })
        .await
        .expect("the DPO may run a coverage report");
    let seq = audit_seq(&response);
    (response.into_inner(), seq)
}

fn audit_seq<T>(r: &tonic::Response<T>) -> u64 {
    r.metadata()
        .get(AUDIT_SEQ_HEADER)
        .expect("audit seq header")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seq")
}

#[tokio::test]
async fn an_actor_report_counts_one_officers_day() {
    let log = TestLog::new();
    log.background(4).await; // pc-0 .. pc-3: nobody under review
    let day = a_day(&log).await;
    let pki = Pki::new();
    let dpo = pki.client("Dana DPO", &["dpo@example.police.uk"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&dpo)).await;

    let (r, seq) = actor_report(&mut client, "pc-7", 0).await;
    assert_eq!(r.actor, "pc-7");
    assert_eq!(r.entries, 6 * 2 + 2, "six exchanges and two refusals");
    assert_eq!(r.requests, 6);
    assert_eq!(
        r.by_operation,
        ops(&[(Operation::Consultation, 5), (Operation::Disclosure, 1)])
    );
    assert_eq!(r.with_justification, 5, "all but the search");
    assert_eq!(
        r.with_case_reference, 4,
        "not the search, not the second read"
    );
    assert_eq!(
        subjects(&r),
        [
            ("P-1", 3, 2, 3),
            ("P-2", 1, 0, 1),
            ("P-3", 1, 1, 0),
            ("P-5", 1, 1, 0)
        ],
        "P-4 was only asked for in a refused request; pc-8's P-1 is pc-8's"
    );
    assert_eq!(r.denials, 2);
    let reasons: Vec<_> = r
        .denials_by_reason
        .iter()
        .map(|d| (d.reason.as_str(), d.count))
        .collect();
    assert_eq!(reasons, [("no_justification", 1), ("unmatched_route", 1)]);
    assert_eq!(r.alerts, 0, "no rule raised an alert about this officer");
    assert_eq!(r.redacted_subject_ids, 0);

    // The call is logged like every other: opened with its purpose and the actor asked about,
    // closed with one result.
    let opening = log.entry(seq);
    let q = opening.audit_query.expect("audit query");
    assert_eq!(q.call, "ActorReport");
    assert_eq!(q.case_reference, "PSD-2026-041");
    assert!(
        q.filter_json.contains("\"actor\":\"pc-7\""),
        "{}",
        q.filter_json
    );
    let closing = log
        .wait_for("the closing entry", |e| e.answers_seq == Some(seq))
        .await;
    assert_eq!(closing.audit_query.expect("q").results_returned, 1);

    // The afternoon only.
    let since = log.entry(day.afternoon_starts).time_unix_nanos;
    let (pm, _) = actor_report(&mut client, "pc-7", since).await;
    assert_eq!(pm.requests, 3);
    assert_eq!(pm.denials, 1);
    assert_eq!(subjects(&pm), [("P-3", 1, 1, 0), ("P-5", 1, 1, 0)]);

    // Someone who did nothing.
    let (nobody, _) = actor_report(&mut client, "pc-99", 0).await;
    assert_eq!((nobody.entries, nobody.requests), (0, 0));
    assert!(nobody.subjects.is_empty());

    let refused = client
        .actor_report(ActorReportRequest {
            context: context(),
            actor: String::new(),
            ..Default::default()
        })
        .await
        .expect_err("an actor is required");
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn redacted_values_are_counted_but_never_shown() {
    let log = TestLog::new();
    a_day(&log).await;
    let pki = Pki::new();
    let dpo = pki.client("Dana DPO", &["dpo@example.police.uk"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&dpo)).await;
    let (before, _) = actor_report(&mut client, "pc-7", 0).await;

    // An erasure request for P-1: their ids and the reasons given in those entries go.
    let erased = client
        .redact_values(RedactValuesRequest {
            context: context(),
            filter: Some(Filter {
                subject: "P-1".into(),
                ..Default::default()
            }),
            reason: "erasure-request".into(),
            fields: vec![
                "subject_id".into(),
                "returned_subject_id".into(),
                "justification_text".into(),
            ],
            detail: String::new(),
            max_entries: 0,
        })
        .await
        .expect("the DPO may redact")
        .into_inner();
    assert_eq!(
        erased.entries, 7,
        "pc-7's two reads (intent and outcome), the search's outcome, pc-8's read"
    );

    let (after, _) = actor_report(&mut client, "pc-7", 0).await;
    assert_eq!(
        subjects(&after),
        [("P-3", 1, 1, 0), ("P-5", 1, 1, 0)],
        "P-1 (and P-2, in the same field of the search's outcome) are no longer shown"
    );
    assert_eq!(
        after.redacted_subject_ids, 6,
        "two reads asked and got P-1 back (4); the search got P-1 and P-2 back (2)"
    );
    assert_eq!(
        (
            after.requests,
            after.with_justification,
            after.with_case_reference
        ),
        (
            before.requests,
            before.with_justification,
            before.with_case_reference
        ),
        "a removed justification was still given"
    );

    // Coverage is about whether ids were named, not which: it does not change either.
    let (coverage, _) = coverage_report(&mut client).await;
    assert_eq!(coverage.without_subjects, 1);
    assert_eq!(coverage.succeeded_without_returned_ids, 2);
}

#[tokio::test]
async fn a_coverage_report_shows_where_the_route_rules_leave_the_log_blind() {
    let log = TestLog::new();
    a_day(&log).await;
    let pki = Pki::new();
    let dpo = pki.client("Dana DPO", &["dpo@example.police.uk"]);
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    // An auditor may not run it; the refusal is a denied entry, which is not records traffic.
    let refused = service
        .client(Some(&alex))
        .await
        .coverage_report(CoverageReportRequest {
            context: context(),
            ..Default::default()
        })
        .await
        .expect_err("the auditor role has no reports");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut client = service.client(Some(&dpo)).await;
    // An earlier report's own audit entries are not records traffic either.
    actor_report(&mut client, "pc-7", 0).await;

    let (r, seq) = coverage_report(&mut client).await;
    let route =
        |name: &str, requests, by_operation: &[(Operation, u64)], d, ws, s, swi| RouteCoverage {
            route: name.into(),
            requests,
            by_operation: ops(by_operation),
            denied: d,
            without_subjects: ws,
            succeeded: s,
            succeeded_without_returned_ids: swi,
        };
    let c = Operation::Consultation;
    assert_eq!(
        r.routes,
        [
            // The method default: named nobody, returned nothing; and a request no rule knew.
            route("", 1, &[(c, 1)], 1, 1, 1, 1),
            // A disclosure whose response carries no ids.
            route(
                "person-export",
                1,
                &[(Operation::Disclosure, 1)],
                0,
                0,
                1,
                1
            ),
            // pc-7's three reads (one 404) and pc-8's; one refusal.
            route("person-read", 4, &[(c, 4)], 1, 0, 3, 0),
            // Asked nobody, but the response named two people.
            route("person-search", 1, &[(c, 1)], 0, 0, 1, 0),
        ]
    );
    assert_eq!(
        (
            r.requests,
            r.method_default,
            r.denied,
            r.without_subjects,
            r.succeeded,
            r.succeeded_without_returned_ids
        ),
        (7, 1, 2, 1, 6, 2)
    );
    let opening = log.entry(seq);
    assert_eq!(opening.kind, EntryKind::AuditQuery as i32);
    assert_eq!(opening.audit_query.expect("q").call, "CoverageReport");
}

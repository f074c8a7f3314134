//! An auditor's subject access report and an export, over entries the real proxy wrote: officers'
//! requests go through `s62::app::run` (the same wiring as `s62 serve`) to the demo records
//! service over TCP, and an auditor then asks the query service, over TLS with a client
//! certificate, about one person. Nothing in the log is built by hand; the expected rows are
//! worked out from what the requests were and from the stored entries themselves.

mod app_support;
mod query_harness;

use app_support::{App, officer};
use query_harness::{Pki, context};
use s62::log::entry::{Entry, EntryKind, Operation};
use s62::query::pb::audit_query_client::AuditQueryClient;
use s62::query::pb::{
    ActorReportRequest, CoverageReportRequest, Filter, SubjectEvent, SubjectReportRequest,
    subject_report_response,
};
use std::collections::BTreeSet;
use tonic::transport::Channel;

const BURGLARY: (&str, &str, &str) = (
    "investigation",
    "Burglary at 14 Marsh Lane: identifying the suspect",
    "44260103-0112",
);
const FILE_PREP: (&str, &str, &str) = (
    "prosecution",
    "Case file for charging decision",
    "44260103-0112",
);
const THEFT: (&str, &str, &str) = (
    "investigation",
    "Theft from vehicle on Portswood Road",
    "44261011-0877",
);
const RETENTION: (&str, &str, &str) = ("retention", "MoPI review: no longer needed", "RR-2026-5");
const CPS: &str = "Crown Prosecution Service (Wessex)";
const SUBJECT: &str = "P-1001";

/// Whether a stored entry names the subject: asked for, or returned to the actor.
fn names(e: &Entry, subject: &str) -> bool {
    e.subject_ids.iter().any(|s| s == subject)
        || e.outcome
            .as_ref()
            .is_some_and(|o| o.returned_subject_ids.iter().any(|s| s == subject))
}

async fn auditor_client(app: &App, pki: &Pki) -> AuditQueryClient<Channel> {
    let q = app.query.as_ref().expect("query listener");
    let dpo = pki.client("Data Protection Officer", &["dpo@example.police.uk"]);
    pki.tls_client(q.address, &dpo).await
}

/// An officers' morning through the proxy. P-1001 is found by a search, viewed, refused to an
/// officer without a reason, altered, linked to a witness, sent to the CPS and erased; other
/// people's traffic runs in between.
async fn officers_session(app: &App) {
    let ok = |r: app_support::Reply, what: &str| {
        assert!(r.status < 300, "{what}: {} {}", r.status, r.body);
        r
    };
    let search = ok(
        app.request(
            "GET",
            "/people?surname=whitcombe",
            &officer("dc-1180", Some(BURGLARY)),
            None,
        )
        .await,
        "search",
    );
    assert!(search.body.contains(SUBJECT), "{}", search.body);
    ok(
        app.request(
            "GET",
            "/people/P-1001",
            &officer("dc-1180", Some(BURGLARY)),
            None,
        )
        .await,
        "view",
    );
    ok(
        app.request(
            "GET",
            "/people/P-1002",
            &officer("pc-4021", Some(THEFT)),
            None,
        )
        .await,
        "someone else's record",
    );
    let refused = app
        .request("GET", "/people/P-1001", &officer("pc-4021", None), None)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    ok(
        app.request(
            "PATCH",
            "/people/P-1001",
            &officer("pc-4021", Some(THEFT)),
            Some(r#"{"note": "Suspect; address confirmed"}"#),
        )
        .await,
        "alteration",
    );
    ok(
        app.request(
            "PUT",
            "/people/P-1003/links/P-1001",
            &officer("dc-1180", Some(BURGLARY)),
            Some(r#"{"relation": "witness against", "event_id": "E-4001"}"#),
        )
        .await,
        "combination",
    );
    ok(
        app.request(
            "POST",
            "/exports",
            &officer("dc-1180", Some(FILE_PREP)),
            Some(&format!(
                r#"{{"recipient": "{CPS}", "people": [{{"id": "P-1001"}}, {{"id": "P-1003"}}]}}"#
            )),
        )
        .await,
        "disclosure",
    );
    ok(
        app.request(
            "GET",
            "/people/P-1002",
            &officer("pc-4021", Some(THEFT)),
            None,
        )
        .await,
        "someone else's record again",
    );
    ok(
        app.request(
            "DELETE",
            "/people/P-1001",
            &officer("records-officer", Some(RETENTION)),
            None,
        )
        .await,
        "erasure",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_report_and_an_export_cover_exactly_what_the_proxy_logged_about_the_person() {
    let pki = Pki::new();
    let app = App::start(Some(pki.query_config())).await;
    officers_session(&app).await;
    // The example config checks erasures: the sidecar's own probe of P-1001 and its
    // erasure-check entry follow the erasure, off the request path. Wait for them, so that
    // what the log holds about P-1001 is settled before it is counted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !app
        .entries()
        .iter()
        .any(|(_, e, _)| e.kind == EntryKind::ErasureCheck as i32)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the erasure was never checked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // What the log holds about P-1001 before the auditor asks, read from the stored entries.
    let before = app.entries();
    let expected: Vec<u64> = before
        .iter()
        .filter(|(_, e, _)| names(e, SUBJECT))
        .map(|(seq, _, _)| *seq)
        .collect();
    let kinds: Vec<(i32, i32)> = before
        .iter()
        .filter(|(_, e, _)| names(e, SUBJECT))
        .map(|(_, e, _)| (e.kind, e.operation))
        .collect();
    for (kind, op) in [
        (EntryKind::Outcome, Operation::Consultation), // returned by the search
        (EntryKind::Intent, Operation::Consultation),  // the view
        (EntryKind::Denied, Operation::Consultation),  // refused: no justification
        (EntryKind::Intent, Operation::Alteration),
        (EntryKind::Intent, Operation::Combination),
        (EntryKind::Intent, Operation::Disclosure),
        (EntryKind::Intent, Operation::Erasure),
    ] {
        assert!(
            kinds.contains(&(kind as i32, op as i32)),
            "the proxy logged no {} {} naming {SUBJECT}: {kinds:?}",
            kind.label(),
            op.label()
        );
    }

    // The subject access report, over TLS.
    let mut client = auditor_client(&app, &pki).await;
    let mut stream = client
        .subject_report(SubjectReportRequest {
            context: context(),
            subject: SUBJECT.into(),
            ..Default::default()
        })
        .await
        .expect("report")
        .into_inner();
    let mut events: Vec<SubjectEvent> = Vec::new();
    let mut summary = None;
    while let Some(m) = stream.message().await.expect("stream") {
        match m.item {
            Some(subject_report_response::Item::Event(e)) => events.push(e),
            Some(subject_report_response::Item::Summary(s)) => summary = Some(s),
            None => {}
        }
    }
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs, expected,
        "every entry naming {SUBJECT}, and only those"
    );
    for e in &events {
        let (_, _, stored) = &before[e.seq as usize];
        assert_eq!(&e.leaf, stored, "row {} carries the stored bytes", e.seq);
    }
    let who = |e: &SubjectEvent| e.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default();
    let why = |e: &SubjectEvent| {
        e.justification
            .as_ref()
            .map(|j| j.text.clone())
            .unwrap_or_default()
    };

    // Found by a search that did not name them: who searched and why come from the intent.
    let found = events
        .iter()
        .find(|e| e.route == "person-search")
        .expect("the search row");
    assert!(found.returned && !found.asked, "{found:?}");
    assert_eq!(
        (who(found), why(found)),
        ("dc-1180".into(), BURGLARY.1.into())
    );
    assert!(found.justification_seq < found.seq, "taken from the intent");

    let refused = events
        .iter()
        .find(|e| e.kind == EntryKind::Denied as i32)
        .expect("the refusal");
    assert_eq!(
        (who(refused), refused.denial_reason.as_str()),
        ("pc-4021".into(), "no_justification")
    );

    let disclosed = events
        .iter()
        .find(|e| e.operation == Operation::Disclosure as i32 && e.kind == EntryKind::Intent as i32)
        .expect("the disclosure");
    assert_eq!(disclosed.recipients, [CPS]);
    assert_eq!(why(disclosed), FILE_PREP.1);

    let erased = events
        .iter()
        .find(|e| e.operation == Operation::Erasure as i32)
        .expect("the erasure");
    assert_eq!(
        (who(erased), erased.method.as_str(), why(erased)),
        ("records-officer".into(), "DELETE", RETENTION.1.into())
    );

    let s = summary.expect("a summary ends the report");
    assert_eq!(s.events, expected.len() as u64);
    assert_eq!(
        s.actors,
        ["dc-1180", "pc-4021", "records-officer", "s62"],
        "everyone who touched the data (s62 itself checked the erasure), and nobody who only \
         touched P-1002"
    );
    let check = events
        .iter()
        .find(|e| e.kind == EntryKind::ErasureCheck as i32)
        .expect("the erasure check is part of the subject's history");
    assert_eq!(who(check), "s62");
    assert_eq!(s.recipients, [CPS]);

    // The officers' morning as the DPO's actor and coverage reports count it.
    let dc = client
        .actor_report(ActorReportRequest {
            context: context(),
            actor: "dc-1180".into(),
            ..Default::default()
        })
        .await
        .expect("actor report")
        .into_inner();
    let ops = |counts: &[s62::query::pb::OperationCount]| -> Vec<(String, u64)> {
        counts
            .iter()
            .map(|c| {
                let op = Operation::try_from(c.operation).expect("operation");
                (op.label().to_owned(), c.count)
            })
            .collect()
    };
    assert_eq!(
        (
            dc.requests,
            dc.with_justification,
            dc.with_case_reference,
            dc.denials
        ),
        (4, 4, 4, 0),
        "search, view, link and disclosure, each with a reason and a case"
    );
    assert_eq!(
        ops(&dc.by_operation),
        [
            ("consultation".to_owned(), 2),
            ("disclosure".to_owned(), 1),
            ("combination".to_owned(), 1)
        ]
    );
    let p1001 = dc
        .subjects
        .iter()
        .find(|s| s.subject == SUBJECT)
        .expect("dc-1180 consulted P-1001");
    assert_eq!(
        (p1001.requests, p1001.asked),
        (4, 3),
        "found by the search, then asked for by name three times"
    );
    let pc = client
        .actor_report(ActorReportRequest {
            context: context(),
            actor: "pc-4021".into(),
            ..Default::default()
        })
        .await
        .expect("actor report")
        .into_inner();
    assert_eq!((pc.requests, pc.with_justification, pc.denials), (3, 3, 1));
    assert_eq!(pc.denials_by_reason[0].reason, "no_justification");
    let coverage = client
        .coverage_report(CoverageReportRequest {
            context: context(),
            ..Default::default()
        })
        .await
        .expect("coverage report")
        .into_inner();
    let by_route: Vec<(&str, u64, u64)> = coverage
        .routes
        .iter()
        .map(|r| (r.route.as_str(), r.requests, r.denied))
        .collect();
    assert_eq!(
        by_route,
        [
            ("person-erase", 1, 0),
            // s62's own probe after the erasure, under the rule it checks.
            ("person-erase:verify_with", 1, 0),
            ("person-export", 1, 0),
            ("person-link", 1, 0),
            ("person-read", 3, 1),
            ("person-search", 1, 0),
            ("person-update", 1, 0),
        ],
        "every request matched a rule (the example's routes are strict)"
    );
    assert_eq!(coverage.method_default, 0);

    // An export of the same person, verified offline as the ICO would.
    let bundle = app.dir.path().join("p1001.s62bundle");
    let exported = s62::query::client::export_to_file(
        &mut client,
        context().expect("context"),
        Filter {
            subject: SUBJECT.into(),
            ..Default::default()
        },
        0,
        &bundle,
    )
    .await
    .expect("export");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&bundle)
        .expect("bundle")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let audit_seq = lines[0]["audit"]["seq"].as_u64().expect("audit seq");
    // The export covers the log as it was when asked: everything naming the person before its own
    // audit entry, which includes the report's audit entry if that names them too.
    let now = app.entries();
    let expected_export: Vec<u64> = now
        .iter()
        .filter(|(seq, e, _)| *seq < audit_seq && names(e, SUBJECT))
        .map(|(seq, _, _)| *seq)
        .collect();
    let in_bundle: Vec<u64> = lines
        .iter()
        .filter(|l| l["type"] == "entry")
        .map(|l| l["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(in_bundle, expected_export);
    assert_eq!(exported, expected_export.len() as u64);
    assert!(
        expected.iter().all(|s| in_bundle.contains(s)),
        "the export holds every row of the report"
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_s62"))
        .arg("verify-bundle")
        .arg(&bundle)
        .arg("--key")
        .arg(&app.pub_key)
        .output()
        .await
        .expect("verify-bundle runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Both calls are in the log with their purpose, and nobody else's data was handed out.
    let calls: BTreeSet<String> = now
        .iter()
        .filter_map(|(_, e, _)| e.audit_query.as_ref().map(|q| q.call.clone()))
        .collect();
    assert!(
        calls.contains("SubjectReport") && calls.contains("Export"),
        "{calls:?}"
    );
    app.stop().await;
}

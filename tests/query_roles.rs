//! Auditor roles enforced (issue 11): what each role may call, and for which purposes, through
//! the real gRPC service. A refusal is PERMISSION_DENIED and leaves a `denied` entry naming the
//! caller, the call and the reason before it is answered; nothing is opened or read.

mod query_harness;

use query_harness::{Exchange, InMemory, Pki, TestLog};
use s62::config::QueryCall;
use s62::log::entry::{Actor, Alert, AuditPurpose, AuthMethod, Entry, EntryKind};
use s62::query::pb::audit_query_client::AuditQueryClient;
use s62::query::pb::{
    ActorReportRequest, CallContext, CheckpointAtRequest, ConsistencyProofRequest,
    CoverageReportRequest, ExportRequest, Filter, GetEntryRequest, InclusionProofRequest,
    LatestCheckpointRequest, ListAlertsRequest, RedactValuesRequest, ReviewAlertRequest,
    SearchRequest, SubjectReportRequest,
};
use tonic::transport::Channel;
use tonic::{Code, Status};

fn context(purpose: AuditPurpose) -> Option<CallContext> {
    Some(CallContext {
        purpose: purpose as i32,
        case_reference: "PSD-2026-041".into(),
    })
}

fn subject(s: &str) -> Option<Filter> {
    Some(Filter {
        subject: s.into(),
        ..Default::default()
    })
}

/// Drains a server stream, failing on the first error.
async fn drain<T>(r: Result<tonic::Response<tonic::Streaming<T>>, Status>) -> Result<(), Status> {
    let mut stream = r?.into_inner();
    while stream.message().await?.is_some() {}
    Ok(())
}

/// Makes `call` (by its gRPC name) with well-formed arguments that succeed on the scenario's log
/// (`redact` names the subject a redaction may erase), and reads every message it sends.
async fn make_call(
    client: &mut AuditQueryClient<Channel>,
    call: &str,
    purpose: AuditPurpose,
    redact: &str,
) -> Result<(), Status> {
    let ctx = context(purpose);
    match call {
        "Search" => {
            drain(
                client
                    .search(SearchRequest {
                        context: ctx,
                        filter: subject("P-1"),
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        "GetEntry" => client
            .get_entry(GetEntryRequest {
                context: ctx,
                seq: 0,
                tree_size: 0,
                ..Default::default()
            })
            .await
            .map(drop),
        "LatestCheckpoint" => client
            .latest_checkpoint(LatestCheckpointRequest {
                context: ctx,
                ..Default::default()
            })
            .await
            .map(drop),
        "CheckpointAt" => {
            // The writer signs a checkpoint for every batch; the first entry is its own batch.
            client
                .checkpoint_at(CheckpointAtRequest {
                    context: ctx,
                    size: 1,
                    ..Default::default()
                })
                .await
                .map(drop)
        }
        "InclusionProof" => client
            .inclusion_proof(InclusionProofRequest {
                context: ctx,
                seq: 0,
                tree_size: 0,
                ..Default::default()
            })
            .await
            .map(drop),
        "ConsistencyProof" => client
            .consistency_proof(ConsistencyProofRequest {
                context: ctx,
                old_size: 1,
                new_size: 0,
                ..Default::default()
            })
            .await
            .map(drop),
        "SubjectReport" => {
            drain(
                client
                    .subject_report(SubjectReportRequest {
                        context: ctx,
                        subject: "P-1".into(),
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        "Export" => {
            drain(
                client
                    .export(ExportRequest {
                        context: ctx,
                        filter: subject("P-1"),
                        max_entries: 0,
                    })
                    .await,
            )
            .await
        }
        "RedactValues" => client
            .redact_values(RedactValuesRequest {
                context: ctx,
                filter: subject(redact),
                reason: "erasure-request".into(),
                fields: vec!["subject_id".into()],
                detail: String::new(),
                max_entries: 0,
            })
            .await
            .map(drop),
        "ActorReport" => client
            .actor_report(ActorReportRequest {
                context: ctx,
                actor: "pc-1".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "CoverageReport" => client
            .coverage_report(CoverageReportRequest {
                context: ctx,
                ..Default::default()
            })
            .await
            .map(drop),
        "ListAlerts" => {
            drain(
                client
                    .list_alerts(ListAlertsRequest {
                        context: ctx,
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        "ReviewAlert" => client
            .review_alert(ReviewAlertRequest {
                context: ctx,
                alert_seq: ALERT_SEQ,
                outcome: "justified".into(),
            })
            .await
            .map(drop),
        other => panic!("this test has no request for {other}: add one"),
    }
}

/// The `denied` entry a refusal of `call` by `actor` left after seq `from`, if any.
fn denial(log: &TestLog, from: u64, actor: &str, call: &str) -> Option<Entry> {
    (from..log.size()).map(|s| log.entry(s)).find(|e| {
        e.kind == EntryKind::Denied as i32
            && e.actor.as_ref().is_some_and(|a| a.id == actor)
            && e.denial.as_ref().is_some_and(|d| d.detail == call)
    })
}

/// Whether an `audit-query` entry for `call` was opened after seq `from` (anything was read), or
/// for `ReviewAlert`, whose one entry is the review, whether an `alert-review` entry was written.
fn opened(log: &TestLog, from: u64, call: &str) -> bool {
    (from..log.size()).map(|s| log.entry(s)).any(|e| {
        (e.kind == EntryKind::AuditQuery as i32 || e.kind == EntryKind::AlertReview as i32)
            && e.audit_query.as_ref().is_some_and(|q| q.call == call)
    })
}

/// The scenario log's alert (its first entry), for `ReviewAlert`.
const ALERT_SEQ: u64 = 0;

/// A log with an alert, and traffic about P-1 (and P-9 for redactions).
async fn scenario_log() -> TestLog {
    let log = TestLog::new();
    let alert = log
        .writer
        .append(Entry {
            kind: EntryKind::Alert as i32,
            actor: Some(Actor {
                id: "s62".into(),
                auth_method: AuthMethod::Local as i32,
                ..Default::default()
            }),
            subject_ids: vec!["P-3".into()],
            alert: Some(Alert {
                rule: "zombie".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("alert");
    assert_eq!(alert.seq, ALERT_SEQ);
    log.background(10).await;
    log.exchange(Exchange {
        asked: &["P-9"],
        returned: &["P-9"],
        ..Exchange::default()
    })
    .await;
    log
}

/// Asserts that `call` was refused as PERMISSION_DENIED with `reason`, logged, and not opened.
fn assert_refused(
    log: &TestLog,
    from: u64,
    actor: &str,
    call: &str,
    result: Result<(), Status>,
    reason: &str,
) {
    let status = result.expect_err(&format!("{actor} must not be able to call {call}"));
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{actor} {call}: {status:?}"
    );
    let denied = denial(log, from, actor, call)
        .unwrap_or_else(|| panic!("{actor} {call}: the refusal is not in the log"));
    assert_eq!(
        denied.denial.expect("denial").reason,
        reason,
        "{actor} {call}"
    );
    assert!(
        !opened(log, from, call),
        "{actor} {call}: a refused call must open nothing"
    );
}

// ---- The attacks: an auditor reaching past their role. ------------------------------------------

#[tokio::test]
async fn an_auditor_cannot_export_the_log() {
    let log = scenario_log().await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;
    let from = log.size();
    let result = make_call(&mut client, "Export", AuditPurpose::SelfMonitoring, "P-9").await;
    assert_refused(&log, from, "psd-alex", "Export", result, "role_not_allowed");
}

#[tokio::test]
async fn an_auditor_cannot_claim_to_act_for_the_commissioner() {
    let log = scenario_log().await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;
    let from = log.size();
    let result = make_call(
        &mut client,
        "Search",
        AuditPurpose::CommissionerRequest,
        "P-9",
    )
    .await;
    assert_refused(
        &log,
        from,
        "psd-alex",
        "Search",
        result,
        "purpose_not_allowed_for_role",
    );
    let denied = denial(&log, from, "psd-alex", "Search").expect("denied");
    let q = denied
        .audit_query
        .expect("the refusal records what was claimed");
    assert_eq!(q.purpose, AuditPurpose::CommissionerRequest as i32);
    assert_eq!(q.case_reference, "PSD-2026-041");
}

#[tokio::test]
async fn an_auditor_cannot_erase_values() {
    let log = scenario_log().await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;
    let from = log.size();
    let result = make_call(
        &mut client,
        "RedactValues",
        AuditPurpose::SelfMonitoring,
        "P-9",
    )
    .await;
    assert_refused(
        &log,
        from,
        "psd-alex",
        "RedactValues",
        result,
        "role_not_allowed",
    );
}

#[tokio::test]
async fn an_auditor_cannot_review_alerts() {
    let log = scenario_log().await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;
    for call in ["ListAlerts", "ReviewAlert"] {
        let from = log.size();
        let result = make_call(&mut client, call, AuditPurpose::SelfMonitoring, "P-9").await;
        assert_refused(&log, from, "psd-alex", call, result, "role_not_allowed");
    }
}

// ---- Every role × call pair, and every role × purpose. -------------------------------------------

/// The default grants, written out here rather than read from the code under test.
const AUDITOR_CALLS: &[&str] = &[
    "Search",
    "GetEntry",
    "LatestCheckpoint",
    "CheckpointAt",
    "InclusionProof",
    "ConsistencyProof",
    "SubjectReport",
];
const DPO_CALLS: &[&str] = &[
    "Search",
    "GetEntry",
    "LatestCheckpoint",
    "CheckpointAt",
    "InclusionProof",
    "ConsistencyProof",
    "SubjectReport",
    "Export",
    "RedactValues",
    "ActorReport",
    "CoverageReport",
    "ListAlerts",
    "ReviewAlert",
];
const AUDITOR_PURPOSES: &[AuditPurpose] = &[
    AuditPurpose::Lawfulness,
    AuditPurpose::SelfMonitoring,
    AuditPurpose::IntegrityAndSecurity,
];
const DPO_PURPOSES: &[AuditPurpose] = &[
    AuditPurpose::Lawfulness,
    AuditPurpose::SelfMonitoring,
    AuditPurpose::IntegrityAndSecurity,
    AuditPurpose::CriminalProceedings,
];
const COMMISSIONER_PURPOSES: &[AuditPurpose] = &[AuditPurpose::CommissionerRequest];

/// One role as the scenarios use it: its auditor's actor id and certificate, a purpose it may
/// state, and what it is granted (`None`: every call).
struct Role {
    actor: &'static str,
    cert: query_harness::Credential,
    purpose: AuditPurpose,
    calls: Option<&'static [&'static str]>,
    purposes: &'static [AuditPurpose],
}

fn roles(pki: &Pki) -> [Role; 3] {
    [
        Role {
            actor: "psd-alex",
            cert: pki.client("Alex Auditor", &[]),
            purpose: AuditPurpose::Lawfulness,
            calls: Some(AUDITOR_CALLS),
            purposes: AUDITOR_PURPOSES,
        },
        Role {
            actor: "dpo",
            cert: pki.client("Dana DPO", &["dpo@example.police.uk"]),
            purpose: AuditPurpose::CriminalProceedings,
            calls: Some(DPO_CALLS),
            purposes: DPO_PURPOSES,
        },
        Role {
            actor: "ico-casey",
            cert: pki.client("Casey Commissioner", &[]),
            purpose: AuditPurpose::CommissionerRequest,
            calls: None,
            purposes: COMMISSIONER_PURPOSES,
        },
    ]
}

#[tokio::test]
async fn every_role_may_make_exactly_its_calls() {
    let log = scenario_log().await;
    let pki = Pki::new();
    let service = InMemory::start(&log).await;
    let mut pairs = 0;
    for role in roles(&pki) {
        let mut client = service.client(Some(&role.cert)).await;
        for call in QueryCall::ALL {
            let name = call.name();
            let from = log.size();
            let result = make_call(&mut client, name, role.purpose, "P-9").await;
            if role.calls.is_none_or(|granted| granted.contains(&name)) {
                result.unwrap_or_else(|e| panic!("{} may call {name}: {e:?}", role.actor));
                assert!(
                    opened(&log, from, name),
                    "{} {name}: the call was opened in the log",
                    role.actor
                );
                assert!(
                    denial(&log, from, role.actor, name).is_none(),
                    "{} {name}: nothing was refused",
                    role.actor
                );
            } else {
                assert_refused(&log, from, role.actor, name, result, "role_not_allowed");
            }
            pairs += 1;
        }
    }
    assert_eq!(pairs, 3 * QueryCall::ALL.len(), "every pair was tried");
}

#[tokio::test]
async fn every_role_may_state_exactly_its_purposes() {
    let log = scenario_log().await;
    let pki = Pki::new();
    let service = InMemory::start(&log).await;
    let every_purpose = [
        AuditPurpose::Lawfulness,
        AuditPurpose::SelfMonitoring,
        AuditPurpose::IntegrityAndSecurity,
        AuditPurpose::CriminalProceedings,
        AuditPurpose::CommissionerRequest,
    ];
    for role in roles(&pki) {
        let mut client = service.client(Some(&role.cert)).await;
        for purpose in every_purpose {
            // Every role may call Search; only the purpose decides.
            let from = log.size();
            let result = make_call(&mut client, "Search", purpose, "P-9").await;
            if role.purposes.contains(&purpose) {
                result.unwrap_or_else(|e| {
                    panic!("{} may search for {}: {e:?}", role.actor, purpose.label())
                });
            } else {
                assert_refused(
                    &log,
                    from,
                    role.actor,
                    "Search",
                    result,
                    "purpose_not_allowed_for_role",
                );
            }
        }
    }
}

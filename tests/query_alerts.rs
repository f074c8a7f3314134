//! Alert review (issue 11): the DPO lists alerts, reviews one, and the review is an entry in the
//! log under the DPO's name, purpose and case; an auditor may not list alerts; a bad outcome or a
//! seq that is not an alert is refused and logged, and nothing is reviewed; the actor report
//! counts an officer's alerts and those found to be misuse; the log verifies afterwards. Also
//! through the `s62 query alerts|review` commands over TLS.

mod query_harness;

use query_harness::{Exchange, InMemory, Pki, TestLog, officer, start_tls};
use s62::log::entry::{
    Actor, Alert, AuditPurpose, AuthMethod, Entry, EntryKind, PersonalField, decode,
};
use s62::log::epoch::LogKeys;
use s62::log::store::LogStore;
use s62::query::AUDIT_SEQ_HEADER;
use s62::query::pb::audit_query_client::AuditQueryClient;
use s62::query::pb::{
    ActorReportRequest, AlertItem, CallContext, ListAlertsRequest, ReviewAlertRequest,
    list_alerts_response,
};
use s62::verify::{VerifyOptions, verify_store};
use std::net::SocketAddr;
use std::path::PathBuf;
use tonic::transport::Channel;
use tonic::{Code, Status};

const CASE: &str = "DPO-2026-007";

fn context() -> Option<CallContext> {
    Some(CallContext {
        purpose: AuditPurpose::SelfMonitoring as i32,
        case_reference: CASE.into(),
    })
}

/// Appends an alert as a compliance rule would; returns its seq.
async fn alert(log: &TestLog, rule: &str, actor: Actor, subject: &str, sighting: u64) -> u64 {
    log.writer
        .append(Entry {
            kind: EntryKind::Alert as i32,
            actor: Some(actor),
            subject_ids: vec![subject.into()],
            answers_seq: Some(sighting),
            alert: Some(Alert {
                rule: rule.into(),
                sighting_seq: sighting,
                related_seq: sighting.saturating_sub(1),
                detail: format!("rule {rule} fired"),
                name: format!("{rule}-rule"),
            }),
            ..Default::default()
        })
        .await
        .expect("alert appended")
        .seq
}

fn sidecar() -> Actor {
    Actor {
        id: "s62".into(),
        auth_method: AuthMethod::Local as i32,
        ..Default::default()
    }
}

/// A day of traffic with three alerts: a zombie sighting (raised by the sidecar), and two on
/// officers' conduct (`pc-1`, `pc-2`). Returns the log and the alerts' seqs in order.
async fn alerted_log() -> (TestLog, [u64; 3]) {
    let log = TestLog::new();
    log.background(6).await;
    let (_, zombie_seen) = log
        .exchange(Exchange {
            actor: "pc-3",
            asked: &["P-40"],
            returned: &["P-40"],
            ..Exchange::default()
        })
        .await;
    let zombie = alert(&log, "zombie", sidecar(), "P-40", zombie_seen).await;
    let (_, bulk_seen) = log
        .exchange(Exchange {
            actor: "pc-1",
            asked: &["P-7"],
            returned: &["P-7"],
            ..Exchange::default()
        })
        .await;
    let bulk = alert(&log, "bulk", officer("pc-1"), "P-7", bulk_seen).await;
    let (_, late_seen) = log
        .exchange(Exchange {
            actor: "pc-2",
            asked: &["P-8"],
            returned: &["P-8"],
            ..Exchange::default()
        })
        .await;
    let late = alert(&log, "out_of_hours", officer("pc-2"), "P-8", late_seen).await;
    (log, [zombie, bulk, late])
}

fn list(rule: &str, unreviewed_only: bool) -> ListAlertsRequest {
    ListAlertsRequest {
        context: context(),
        rule: rule.into(),
        unreviewed_only,
        ..Default::default()
    }
}

/// One page of a listing: the alerts, the next page token, and the listing's audit seq.
async fn list_page(
    client: &mut AuditQueryClient<Channel>,
    request: ListAlertsRequest,
) -> Result<(Vec<AlertItem>, String, u64), Status> {
    let response = client.list_alerts(request).await?;
    let audit_seq = response
        .metadata()
        .get(AUDIT_SEQ_HEADER)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("the listing's audit seq");
    let mut stream = response.into_inner();
    let (mut items, mut next) = (Vec::new(), None);
    while let Some(m) = stream.message().await? {
        match m.item {
            Some(list_alerts_response::Item::Alert(a)) => items.push(a),
            Some(list_alerts_response::Item::PageEnd(end)) => next = Some(end.next_page_token),
            None => {}
        }
    }
    Ok((items, next.expect("a page end"), audit_seq))
}

async fn listed(client: &mut AuditQueryClient<Channel>, request: ListAlertsRequest) -> Vec<u64> {
    let (items, _, _) = list_page(client, request).await.expect("listing");
    items
        .iter()
        .map(|a| a.alert.as_ref().expect("alert").seq)
        .collect()
}

/// (alert seq, latest outcome or "unreviewed", number of reviews) for every alert listed.
async fn reviewed(client: &mut AuditQueryClient<Channel>) -> Vec<(u64, String, usize)> {
    let (items, _, _) = list_page(client, list("", false)).await.expect("listing");
    items
        .iter()
        .map(|a| {
            let latest = a
                .reviews
                .last()
                .and_then(|r| r.entry.as_ref()?.alert_review.as_ref())
                .map_or("unreviewed".to_owned(), |r| r.outcome.clone());
            (
                a.alert.as_ref().expect("alert").seq,
                latest,
                a.reviews.len(),
            )
        })
        .collect()
}

fn review(alert_seq: u64, outcome: &str) -> ReviewAlertRequest {
    ReviewAlertRequest {
        context: context(),
        alert_seq,
        outcome: outcome.into(),
    }
}

/// The entries of `kind` written at or after `from`.
fn written(log: &TestLog, from: u64, kind: EntryKind) -> Vec<Entry> {
    (from..log.size())
        .map(|s| log.entry(s))
        .filter(|e| e.kind == kind as i32)
        .collect()
}

fn verifies(log: &TestLog) {
    let keys = LogKeys::parse(&log.key.verifier().to_vkey()).expect("key");
    verify_store(log.store.as_ref(), VerifyOptions::new(keys)).expect("the log verifies");
}

#[tokio::test]
async fn the_dpo_reviews_an_alert_and_the_review_is_in_the_log() {
    let (log, [zombie, bulk, late]) = alerted_log().await;
    let pki = Pki::new();
    let service = InMemory::start(&log).await;
    let mut dpo = service
        .client(Some(&pki.client("Dana DPO", &["dpo@example.police.uk"])))
        .await;

    // Nothing reviewed yet: every alert is listed as unreviewed, each with its entry.
    let (items, next, listing) = list_page(&mut dpo, list("", true)).await.expect("list");
    assert_eq!(next, "", "one page");
    let seqs: Vec<u64> = items
        .iter()
        .map(|a| a.alert.as_ref().expect("a").seq)
        .collect();
    assert_eq!(seqs, [zombie, bulk, late]);
    let first = items[0]
        .alert
        .as_ref()
        .and_then(|a| a.entry.as_ref())
        .expect("entry");
    assert_eq!(first.alert.as_ref().expect("alert").rule, "zombie");
    assert_eq!(
        first.subject_ids,
        ["P-40"],
        "values are put back for the DPO"
    );
    assert!(items.iter().all(|a| a.reviews.is_empty()));
    let opened = log.entry(listing);
    let q = opened
        .audit_query
        .expect("the listing is an audit-query entry");
    assert_eq!(
        (q.call.as_str(), q.filter_json.as_str()),
        (
            "ListAlerts",
            r#"{"from_seq":0,"page_size":100,"unreviewed_only":true}"#
        )
    );

    // The DPO finds the bulk alert a false positive.
    let before = log.size();
    let response = dpo
        .review_alert(review(bulk, "false-positive"))
        .await
        .expect("review");
    let header: u64 = response
        .metadata()
        .get(AUDIT_SEQ_HEADER)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("header");
    let r = response.into_inner();
    assert_eq!(header, r.review_seq);
    assert!(
        r.checkpoint_size > r.review_seq,
        "covered by a signed checkpoint"
    );
    assert_eq!(
        log.size(),
        before + 1,
        "the review is the call's one entry: no opening or closing audit entry"
    );
    let e = log.entry(r.review_seq);
    assert_eq!(e.kind, EntryKind::AlertReview as i32);
    assert_eq!(e.answers_seq, Some(bulk));
    let actor = e.actor.as_ref().expect("actor");
    assert_eq!(
        (actor.id.as_str(), actor.roles.as_slice()),
        ("dpo", &["dpo".to_owned()][..])
    );
    let q = e.audit_query.as_ref().expect("audit_query");
    assert_eq!(q.purpose, AuditPurpose::SelfMonitoring as i32);
    assert_eq!(q.case_reference, CASE);
    assert_eq!(q.call, "ReviewAlert");
    assert_eq!(
        q.filter_json,
        format!(r#"{{"alert_seq":{bulk},"outcome":"false-positive"}}"#)
    );
    assert!(q.completed);
    let j = e.justification.as_ref().expect("justification");
    assert_eq!(
        (j.purpose_code.as_str(), j.case_reference.as_str()),
        ("self-monitoring", CASE)
    );
    let finding = e.alert_review.as_ref().expect("alert_review");
    assert_eq!(
        (finding.alert_seq, finding.outcome.as_str()),
        (bulk, "false-positive")
    );

    // Format 3: the reviewer and the case are committed to by the leaf, not stored in it.
    let leaf = decode(&log.store.entry(r.review_seq).expect("read").expect("leaf")).expect("leaf");
    assert_eq!(leaf.format_version, 3);
    assert_eq!(leaf.values_root.len(), 32);
    assert_eq!(leaf.actor.as_ref().map(|a| a.id.as_str()), Some(""));
    assert_eq!(
        leaf.audit_query.as_ref().map(|q| q.case_reference.as_str()),
        Some("")
    );
    let row = log.store.values(r.review_seq).expect("row reads");
    let committed: Vec<i32> = row.values.iter().map(|v| v.field).collect();
    for f in [
        PersonalField::ActorId,
        PersonalField::ActorName,
        PersonalField::CaseReference,
        PersonalField::AuditFilter,
        PersonalField::AuditCaseReference,
    ] {
        assert!(committed.contains(&(f as i32)), "{f:?} is committed to");
    }
    assert_eq!(
        leaf.alert_review.map(|r| r.outcome),
        Some("false-positive".into()),
        "the finding itself is no personal field"
    );

    // The listing now shows it reviewed; unreviewed_only hides it.
    assert_eq!(
        reviewed(&mut dpo).await,
        [
            (zombie, "unreviewed".into(), 0),
            (bulk, "false-positive".into(), 1),
            (late, "unreviewed".into(), 0),
        ]
    );
    assert_eq!(listed(&mut dpo, list("", true)).await, [zombie, late]);

    // A second review supersedes the first; both stay in the log.
    let second = dpo
        .review_alert(review(bulk, "misuse"))
        .await
        .expect("second review")
        .into_inner();
    assert!(second.review_seq > r.review_seq);
    assert_eq!(
        reviewed(&mut dpo).await[1],
        (bulk, "misuse".into(), 2),
        "the latest review is in force, and the count says there were two"
    );
    assert_eq!(written(&log, before, EntryKind::AlertReview).len(), 2);

    verifies(&log);
}

#[tokio::test]
async fn alerts_are_listed_by_rule_and_page_by_page() {
    let (log, [zombie, bulk, late]) = alerted_log().await;
    let pki = Pki::new();
    let service = InMemory::start(&log).await;
    let mut dpo = service
        .client(Some(&pki.client("Dana DPO", &["dpo@example.police.uk"])))
        .await;

    assert_eq!(listed(&mut dpo, list("zombie", false)).await, [zombie]);
    assert_eq!(listed(&mut dpo, list("bulk", false)).await, [bulk]);
    assert!(listed(&mut dpo, list("watchlist", false)).await.is_empty());
    let from = ListAlertsRequest {
        from_seq: bulk,
        ..list("", false)
    };
    assert_eq!(listed(&mut dpo, from).await, [bulk, late]);

    // One alert per page; the token carries the listing on, and each page is a logged call.
    let one = ListAlertsRequest {
        page_size: 1,
        ..list("", false)
    };
    let (page1, token, audit1) = list_page(&mut dpo, one.clone()).await.expect("page 1");
    assert_ne!(token, "");
    // An alert raised after the first page is not part of this listing.
    let later = alert(&log, "bulk", officer("pc-1"), "P-7", bulk).await;
    let (page2, token2, audit2) = list_page(
        &mut dpo,
        ListAlertsRequest {
            page_token: token,
            ..one.clone()
        },
    )
    .await
    .expect("page 2");
    let (page3, token3, _) = list_page(
        &mut dpo,
        ListAlertsRequest {
            page_token: token2,
            ..one.clone()
        },
    )
    .await
    .expect("page 3");
    let seq = |items: &[AlertItem]| -> Vec<u64> {
        items
            .iter()
            .map(|a| a.alert.as_ref().expect("a").seq)
            .collect()
    };
    assert_eq!(
        [seq(&page1), seq(&page2), seq(&page3)],
        [[zombie], [bulk], [late]]
    );
    assert_eq!(
        token3, "",
        "the alert raised meanwhile is not a fourth page"
    );
    assert!(audit2 > audit1, "each page is its own logged call");
    assert_eq!(listed(&mut dpo, list("", false)).await.last(), Some(&later));

    // A page token that this service did not issue is refused, and logged.
    let before = log.size();
    let bad = list_page(
        &mut dpo,
        ListAlertsRequest {
            page_token: "s62p1.9.3".into(),
            ..one
        },
    )
    .await
    .expect_err("forged token");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let denied = written(&log, before, EntryKind::Denied);
    assert_eq!(denied.len(), 1);
    assert_eq!(
        denied[0].denial.as_ref().expect("d").reason,
        "invalid_argument"
    );
}

// ---- Attacks and mistakes: each is refused, logged, and changes nothing. -------------------------

#[tokio::test]
async fn an_auditor_may_neither_list_nor_review_alerts_and_the_refusals_are_logged() {
    let (log, [_, bulk, _]) = alerted_log().await;
    let pki = Pki::new();
    let service = InMemory::start(&log).await;
    let mut alex = service.client(Some(&pki.client("Alex Auditor", &[]))).await;

    let before = log.size();
    let refused = list_page(&mut alex, list("", false))
        .await
        .expect_err("an auditor may not list alerts");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = alex
        .review_alert(review(bulk, "justified"))
        .await
        .expect_err("an auditor may not review alerts");
    assert_eq!(refused.code(), Code::PermissionDenied);

    let denied = written(&log, before, EntryKind::Denied);
    let logged: Vec<(&str, &str, &str)> = denied
        .iter()
        .map(|e| {
            let d = e.denial.as_ref().expect("denial");
            (
                e.actor.as_ref().expect("actor").id.as_str(),
                d.detail.as_str(),
                d.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        logged,
        [
            ("psd-alex", "ListAlerts", "role_not_allowed"),
            ("psd-alex", "ReviewAlert", "role_not_allowed"),
        ]
    );
    assert!(
        written(&log, before, EntryKind::AuditQuery).is_empty(),
        "nothing was opened"
    );
    assert!(
        written(&log, before, EntryKind::AlertReview).is_empty(),
        "nothing was reviewed"
    );
}

#[tokio::test]
async fn a_review_with_an_unknown_outcome_or_of_something_not_an_alert_is_refused_and_logged() {
    let (log, [_, bulk, _]) = alerted_log().await;
    let pki = Pki::new();
    let service = InMemory::start(&log).await;
    let mut dpo = service
        .client(Some(&pki.client("Dana DPO", &["dpo@example.police.uk"])))
        .await;
    let an_intent = log
        .all()
        .iter()
        .position(|e| e.kind == EntryKind::Intent as i32)
        .expect("an intent") as u64;

    let before = log.size();
    let attempts = [
        (
            review(bulk, "fine really"),
            Code::InvalidArgument,
            "invalid_argument",
        ),
        (
            review(bulk, "Misuse"),
            Code::InvalidArgument,
            "invalid_argument",
        ),
        (review(bulk, ""), Code::InvalidArgument, "invalid_argument"),
        (
            review(an_intent, "misuse"),
            Code::InvalidArgument,
            "invalid_argument",
        ),
        (review(before + 1000, "misuse"), Code::NotFound, "not_found"),
    ];
    for (request, code, reason) in attempts {
        let what = format!("{} of {}", request.outcome, request.alert_seq);
        let from = log.size();
        let status = dpo.review_alert(request).await.expect_err(&what);
        assert_eq!(status.code(), code, "{what}: {status:?}");
        let denied = written(&log, from, EntryKind::Denied);
        assert_eq!(denied.len(), 1, "{what}: the refusal is logged");
        let d = denied[0].denial.as_ref().expect("denial");
        assert_eq!(
            (d.detail.as_str(), d.reason.as_str()),
            ("ReviewAlert", reason),
            "{what}"
        );
        let q = denied[0].audit_query.as_ref().expect("what was claimed");
        assert_eq!(q.case_reference, CASE, "{what}");
    }
    assert!(
        written(&log, before, EntryKind::AlertReview).is_empty(),
        "nothing was reviewed"
    );
    assert_eq!(
        reviewed(&mut dpo).await[1],
        (bulk, "unreviewed".into(), 0),
        "the alert is still unreviewed"
    );
    verifies(&log);
}

// ---- The actor report counts alerts. ----------------------------------------------------------------

#[tokio::test]
async fn the_actor_report_counts_an_officers_alerts_and_those_found_to_be_misuse() {
    let (log, [zombie, bulk, _]) = alerted_log().await;
    let second = alert(&log, "bulk", officer("pc-1"), "P-9", bulk).await;
    let pki = Pki::new();
    let service = InMemory::start(&log).await;
    let mut dpo = service
        .client(Some(&pki.client("Dana DPO", &["dpo@example.police.uk"])))
        .await;
    let report = |actor: &str| ActorReportRequest {
        context: context(),
        actor: actor.into(),
        ..Default::default()
    };

    let r = dpo
        .actor_report(report("pc-1"))
        .await
        .expect("report")
        .into_inner();
    assert_eq!((r.alerts, r.alerts_misuse), (2, 0));

    // One is found to be misuse; the other was first thought misuse, then justified.
    dpo.review_alert(review(bulk, "misuse"))
        .await
        .expect("review");
    dpo.review_alert(review(second, "misuse"))
        .await
        .expect("review");
    dpo.review_alert(review(second, "justified"))
        .await
        .expect("review");
    // A misuse finding on someone else's alert does not count against pc-1.
    dpo.review_alert(review(zombie, "misuse"))
        .await
        .expect("review");
    let r = dpo
        .actor_report(report("pc-1"))
        .await
        .expect("report")
        .into_inner();
    assert_eq!((r.alerts, r.alerts_misuse), (2, 1));

    let r = dpo
        .actor_report(report("pc-2"))
        .await
        .expect("report")
        .into_inner();
    assert_eq!((r.alerts, r.alerts_misuse), (1, 0));
    let r = dpo
        .actor_report(report("s62"))
        .await
        .expect("report")
        .into_inner();
    assert_eq!(
        (r.alerts, r.alerts_misuse),
        (1, 1),
        "the sidecar's zombie alert"
    );
    // Outside the range, an alert is not counted.
    let r = dpo
        .actor_report(ActorReportRequest {
            since_unix_nanos: log.entry(second).time_unix_nanos + 1,
            ..report("pc-1")
        })
        .await
        .expect("report")
        .into_inner();
    assert_eq!(r.alerts, 0);
}

// ---- Through the `s62 query` binary, over TLS. --------------------------------------------------------

struct Credential {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn credential(pki: &Pki, name: &str, cn: &str, sans: &[&str]) -> Credential {
    let (cert, key) = pki.write_credential(name, &pki.client(cn, sans));
    Credential {
        ca: pki.ca_path(),
        cert,
        key,
    }
}

async fn query(addr: SocketAddr, who: &Credential, rest: &[&str]) -> (i32, String, String) {
    let addr = addr.to_string();
    let mut args = vec![
        "query",
        "--addr",
        &addr,
        "--server-name",
        "localhost",
        "--ca",
        who.ca.to_str().expect("utf8"),
        "--cert",
        who.cert.to_str().expect("utf8"),
        "--key",
        who.key.to_str().expect("utf8"),
        "--purpose",
        "self-monitoring",
        "--case",
        CASE,
    ];
    args.extend_from_slice(rest);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(&args)
        .output()
        .await
        .expect("run s62");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_dpo_lists_and_reviews_alerts_with_the_cli() {
    let (log, [zombie, bulk, late]) = alerted_log().await;
    let pki = Pki::new();
    let addr = start_tls(&log, &pki.query_config()).await;
    let dpo = credential(&pki, "dpo", "Dana DPO", &["dpo@example.police.uk"]);

    let (code, out, err) = query(addr, &dpo, &["alerts", "--unreviewed"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("SEQ") && lines[0].contains("RULE") && lines[0].contains("REVIEW"),
        "{out}"
    );
    assert_eq!(lines.len(), 4, "a header and three alerts:\n{out}");
    assert!(
        lines[2].starts_with(&bulk.to_string())
            && lines[2].contains("bulk")
            && lines[2].contains("pc-1")
            && lines[2].contains("unreviewed"),
        "{out}"
    );
    assert!(err.contains("logged as audit entry"), "{err}");

    let bulk_arg = bulk.to_string();
    let (code, out, err) = query(
        addr,
        &dpo,
        &[
            "review",
            "--alert",
            &bulk_arg,
            "--outcome",
            "false-positive",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("alert {bulk} reviewed as false-positive")),
        "{out}"
    );
    let review = log
        .all()
        .into_iter()
        .find(|e| e.kind == EntryKind::AlertReview as i32)
        .expect("the review entry");
    assert_eq!(review.actor.expect("actor").id, "dpo");
    assert_eq!(review.answers_seq, Some(bulk));

    let (code, out, err) = query(addr, &dpo, &["alerts", "--csv"]).await;
    assert_eq!(code, 0, "{err}");
    let sighting = |seq: u64| {
        let a = log.entry(seq).alert.expect("alert");
        format!("{},{}", a.sighting_seq, a.related_seq)
    };
    let time = |seq: u64| s62::render::rfc3339_utc(log.entry(seq).time_unix_nanos);
    assert_eq!(
        out,
        format!(
            "seq,time,rule,name,actor,sighting,related,review,reviews\n\
             {zombie},{},zombie,zombie-rule,s62,{},unreviewed,0\n\
             {bulk},{},bulk,bulk-rule,pc-1,{},false-positive,1\n\
             {late},{},out_of_hours,out_of_hours-rule,pc-2,{},unreviewed,0\n",
            time(zombie),
            sighting(zombie),
            time(bulk),
            sighting(bulk),
            time(late),
            sighting(late),
        )
    );
    let (code, out, _) = query(addr, &dpo, &["alerts", "--unreviewed", "--rule", "bulk"]).await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "only the header is left:\n{out}");

    // A bad outcome is refused with its gRPC code, and nothing is reviewed.
    let before = log.size();
    let (code, _, err) = query(
        addr,
        &dpo,
        &["review", "--alert", &bulk_arg, "--outcome", "whatever"],
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(written(&log, before, EntryKind::AlertReview).is_empty());

    // An auditor is refused.
    let alex = credential(&pki, "alex", "Alex Auditor", &[]);
    let (code, _, err) = query(addr, &alex, &["alerts"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("PermissionDenied"), "{err}");
    verifies(&log);
}

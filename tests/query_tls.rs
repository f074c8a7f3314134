//! The query service over real TLS on a TCP port, driven by the `s62 query` binary as an auditor
//! would: client certificates are required, strangers are refused and logged, and search, report,
//! export and checkpoint work end to end.

mod query_harness;

use query_harness::{Exchange, Pki, TestLog, start_tls};
use s62::config::QueryCall;
use s62::log::entry::EntryKind;
use s62::log::entry::Operation;
use s62::query::pb::LatestCheckpointRequest;
use s62::query::pb::audit_query_client::AuditQueryClient;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

struct Auditor {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

async fn s62(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(args)
        .output()
        .await
        .expect("run s62");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn query(addr: SocketAddr, who: &Auditor, rest: &[&str]) -> (i32, String, String) {
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
        "lawfulness",
        "--case",
        "PSD-2026-099",
    ];
    args.extend_from_slice(rest);
    s62(&args).await
}

async fn scenario() -> (TestLog, Pki, SocketAddr) {
    let log = TestLog::new();
    log.background(40).await;
    log.exchange(Exchange {
        actor: "dc-4",
        operation: Operation::Disclosure,
        method: "POST",
        route: "disclosure.send",
        why: "file for charging decision",
        case: "OP-77",
        asked: &["P-1"],
        recipients: &["cps.gov.uk"],
        ..Exchange::default()
    })
    .await;
    let pki = Pki::new();
    let cfg = pki.query_config();
    let addr = start_tls(&log, &cfg).await;
    (log, pki, addr)
}

fn credential(pki: &Pki, name: &str, cn: &str) -> Auditor {
    let c = pki.client(cn, &[]);
    let (cert, key) = pki.write_credential(name, &c);
    Auditor {
        ca: pki.ca_path(),
        cert,
        key,
    }
}

#[tokio::test]
async fn an_auditor_searches_reports_and_exports_with_the_cli_over_tls() {
    let (log, pki, addr) = scenario().await;
    let alex = credential(&pki, "alex", "Alex Auditor");
    let key_file = pki.write("log.pub", &format!("{}\n", log.key.verifier().to_vkey()));
    let key = key_file.to_str().expect("utf8");

    let (code, out, err) = query(addr, &alex, &["--json", "search", "--subject", "P-1"]).await;
    assert_eq!(code, 0, "{err}");
    let found: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    // P-1: one background consultation (intent + outcome) and the disclosure intent.
    assert_eq!(found.len(), 3, "{out}");
    assert!(
        found.iter().all(|e| e["leaf"].is_string()),
        "stored bytes included"
    );
    assert!(err.contains("logged as audit entry"), "{err}");

    let (code, out, err) = query(addr, &alex, &["report", "P-1"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("disclosure") && out.contains("cps.gov.uk"),
        "{out}"
    );
    assert!(out.contains("file for charging decision [OP-77]"), "{out}");
    assert!(out.contains("disclosed to cps.gov.uk"), "{out}");

    // Exports are the DPO's: the auditor is refused (and the refusal logged), the DPO is not.
    let bundle = pki.dir.path().join("p1.s62bundle");
    let export = [
        "--log-key",
        key,
        "export",
        "--subject",
        "P-1",
        "--out",
        bundle.to_str().expect("utf8"),
    ];
    let (code, _, err) = query(addr, &alex, &export).await;
    assert_eq!(code, 2, "an auditor may not export");
    assert!(err.contains("PermissionDenied"), "{err}");
    assert!(!bundle.exists(), "nothing was written");
    let dpo = {
        let c = pki.client("Dana DPO", &["dpo@example.police.uk"]);
        let (cert, key) = pki.write_credential("dpo", &c);
        Auditor {
            ca: pki.ca_path(),
            cert,
            key,
        }
    };
    let (code, out, err) = query(
        addr,
        &dpo,
        &[
            "--log-key",
            key,
            "export",
            "--subject",
            "P-1",
            "--out",
            bundle.to_str().expect("utf8"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("wrote 3 entries") && out.contains("verified"),
        "{out}"
    );
    let (code, out, err) = s62(&[
        "verify-bundle",
        bundle.to_str().expect("utf8"),
        "--key",
        key,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = query(addr, &alex, &["--log-key", key, "entry", "3"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("inclusion proof: verified"), "{out}");
    assert!(out.contains("checkpoint signature: verified"), "{out}");

    let (code, out, err) = query(addr, &alex, &["--log-key", key, "consistency", "5"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("consistent: the log of size 5"), "{out}");

    let (code, out, err) = query(addr, &alex, &["checkpoint"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(query_harness::ORIGIN), "{out}");

    // Every one of those calls is in the log with the auditor, purpose and case reference.
    let calls: Vec<(String, String)> = log
        .all()
        .into_iter()
        .filter(|e| e.kind == EntryKind::AuditQuery as i32 && e.answers_seq.is_none())
        .map(|e| {
            let q = e.audit_query.expect("q");
            assert_eq!(q.case_reference, "PSD-2026-099");
            (e.actor.expect("actor").id, q.call)
        })
        .collect();
    let alex_did = |call: &str| ("psd-alex".to_owned(), call.to_owned());
    assert_eq!(
        calls,
        [
            alex_did("Search"),
            alex_did("SubjectReport"),
            ("dpo".to_owned(), "Export".to_owned()),
            alex_did("GetEntry"),
            alex_did("ConsistencyProof"),
            alex_did("CheckpointAt"),
            alex_did("CheckpointAt"),
            alex_did("LatestCheckpoint"),
        ]
    );
    let refused: Vec<_> = log
        .all()
        .into_iter()
        .filter(|e| e.kind == EntryKind::Denied as i32)
        .map(|e| (e.actor.expect("actor").id, e.denial.expect("denial").reason))
        .collect();
    assert_eq!(
        refused,
        [("psd-alex".to_owned(), "role_not_allowed".to_owned())]
    );
}

#[tokio::test]
async fn an_auditor_searches_by_case_reference_and_purpose_from_the_cli() {
    let (log, pki, addr) = scenario().await;
    let alex = credential(&pki, "alex", "Alex Auditor");
    let json_lines = |out: &str| -> Vec<serde_json::Value> {
        out.lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    };
    let (code, out, err) = query(addr, &alex, &["--json", "search", "--case-ref", "OP-77"]).await;
    assert_eq!(code, 0, "{err}");
    let found = json_lines(&out);
    assert_eq!(found.len(), 1, "the disclosure's intent: {out}");
    assert_eq!(found[0]["actor"]["id"], "dc-4", "{out}");

    let (code, out, err) = query(
        addr,
        &alex,
        &[
            "--json",
            "search",
            "--purpose-code",
            "investigation",
            "--all",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json_lines(&out).len(),
        41,
        "every intent: 40 reads and the disclosure"
    );

    // The searches are logged with what was asked.
    let filters: Vec<String> = log
        .all()
        .into_iter()
        .filter(|e| e.kind == EntryKind::AuditQuery as i32 && e.answers_seq.is_none())
        .map(|e| e.audit_query.expect("q").filter_json)
        .collect();
    assert!(
        filters[0].contains("\"case_reference\":\"OP-77\""),
        "{filters:?}"
    );
    assert!(
        filters[1].contains("\"purpose\":\"investigation\""),
        "{filters:?}"
    );
}

#[tokio::test]
async fn the_dpo_gets_the_actor_and_coverage_reports_as_csv_from_the_cli() {
    let (log, pki, addr) = scenario().await;
    let dpo = {
        let c = pki.client("Dana DPO", &["dpo@example.police.uk"]);
        let (cert, key) = pki.write_credential("dpo", &c);
        Auditor {
            ca: pki.ca_path(),
            cert,
            key,
        }
    };
    let (code, out, err) = query(addr, &dpo, &["actor-report", "dc-4", "--csv"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"measure,key,value"), "{out}");
    for want in [
        "actor,,dc-4",
        "requests,,1",
        "operation,disclosure,1",
        "with_justification,,1",
        "with_case_reference,,1",
        "denials,,0",
        "subject_requests,P-1,1",
        "subject_asked,P-1,1",
        "subject_returned,P-1,0",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from\n{out}");
    }
    assert!(err.contains("logged as audit entry"), "{err}");

    let (code, out, err) = query(addr, &dpo, &["coverage-report", "--csv"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "row,route,requests,collection,alteration,consultation,disclosure,combination,erasure,\
         denied,without_subjects,succeeded,succeeded_without_returned_ids\n\
         route,disclosure.send,1,0,0,0,1,0,0,0,0,1,1\n\
         route,people.view,40,0,0,40,0,0,0,0,0,40,0\n\
         total,,41,0,0,40,1,0,0,0,0,41,1\n",
        "the background's 40 reads, and one disclosure whose response carried no ids"
    );
    let (code, out, err) = query(addr, &dpo, &["coverage-report"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("41 requests: 0 by the method defaults, 0 naming no data subject"),
        "{out}"
    );

    // Both are logged calls, and an auditor may not make them.
    let calls: Vec<String> = log
        .all()
        .into_iter()
        .filter(|e| e.kind == EntryKind::AuditQuery as i32 && e.answers_seq.is_none())
        .map(|e| e.audit_query.expect("q").call)
        .collect();
    assert_eq!(calls, ["ActorReport", "CoverageReport", "CoverageReport"]);
    let alex = credential(&pki, "alex", "Alex Auditor");
    let (code, _, err) = query(addr, &alex, &["actor-report", "dc-4", "--csv"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("PermissionDenied"), "{err}");
}

#[tokio::test]
async fn a_certificate_from_the_client_ca_that_names_no_auditor_is_refused_and_logged() {
    let (log, pki, addr) = scenario().await;
    let stranger = credential(&pki, "sam", "Sam Stranger");
    let before = log.size();
    let (code, _, err) = query(addr, &stranger, &["search", "--subject", "P-1"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("PermissionDenied"), "{err}");
    let denied = log
        .wait_for("the refusal", |e| {
            e.seq >= before && e.kind == EntryKind::Denied as i32
        })
        .await;
    assert_eq!(denied.denial.expect("denial").reason, "not_an_auditor");
    let actor = denied.actor.expect("actor");
    assert_eq!(actor.id, "cn:Sam Stranger");
    assert!(actor.source_address.starts_with("127.0.0.1:"), "{actor:?}");
}

#[tokio::test]
async fn a_call_taken_from_a_role_in_the_config_is_refused_over_tls_and_logged() {
    let log = TestLog::new();
    log.background(3).await;
    let pki = Pki::new();
    let mut cfg = pki.query_config();
    // This force's auditors search and run subject reports, nothing else.
    cfg.roles.auditor.calls = [QueryCall::Search, QueryCall::SubjectReport]
        .into_iter()
        .collect();
    let addr = start_tls(&log, &cfg).await;
    let alex = credential(&pki, "alex", "Alex Auditor");

    let (code, _, err) = query(addr, &alex, &["search", "--subject", "P-1"]).await;
    assert_eq!(code, 0, "still granted: {err}");
    let before = log.size();
    let (code, _, err) = query(addr, &alex, &["checkpoint"]).await;
    assert_eq!(code, 2, "taken away by the config");
    assert!(err.contains("PermissionDenied"), "{err}");
    let denied = log
        .wait_for("the refusal", |e| {
            e.seq >= before && e.kind == EntryKind::Denied as i32
        })
        .await;
    assert_eq!(denied.actor.expect("actor").id, "psd-alex");
    let denial = denied.denial.expect("denial");
    assert_eq!(
        (denial.reason.as_str(), denial.detail.as_str()),
        ("role_not_allowed", "LatestCheckpoint")
    );
}

async fn latest_checkpoint_with(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&str, &str)>,
) -> Result<(), String> {
    let channel = query_harness::tls_channel(addr, ca, identity).await?;
    AuditQueryClient::new(channel)
        .latest_checkpoint(LatestCheckpointRequest {
            context: query_harness::context(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|s| format!("{s:?}"))
}

#[tokio::test]
async fn no_certificate_or_one_from_another_ca_never_reaches_the_service_and_is_logged() {
    let (log, pki, addr) = scenario().await;
    let ca = pki.ca_path();
    let before = log.size();

    assert!(latest_checkpoint_with(addr, &ca, None).await.is_err());
    let no_cert = log
        .wait_for("the failed handshake without a certificate", |e| {
            e.seq >= before && e.kind == EntryKind::Denied as i32
        })
        .await;
    let denial = no_cert.denial.expect("denial");
    assert_eq!(denial.reason, "tls_handshake_failed");
    assert!(denial.detail.contains("no certificate"), "{denial:?}");
    let after_first = log.size();

    let foreign = pki.foreign_client("Alex Auditor");
    assert!(
        latest_checkpoint_with(addr, &ca, Some((&foreign.cert_pem, &foreign.key_pem)))
            .await
            .is_err(),
        "the right name from the wrong CA is not an auditor"
    );
    let foreign_entry = log
        .wait_for("the failed handshake with a foreign certificate", |e| {
            e.seq >= after_first && e.kind == EntryKind::Denied as i32
        })
        .await;
    let denial = foreign_entry.denial.expect("denial");
    assert_eq!(denial.reason, "tls_handshake_failed");
    assert!(denial.detail.contains("UnknownIssuer"), "{denial:?}");

    // Neither got as far as an audit-query entry.
    assert!(
        log.all()[before as usize..]
            .iter()
            .all(|e| e.kind != EntryKind::AuditQuery as i32)
    );

    // And the auditor's own certificate works on the same listener.
    let alex = pki.client("Alex Auditor", &[]);
    latest_checkpoint_with(addr, &ca, Some((&alex.cert_pem, &alex.key_pem)))
        .await
        .expect("the auditor gets through");
}

#[tokio::test]
async fn a_listener_whose_tls_files_are_unusable_refuses_to_start() {
    let pki = Pki::new();
    let mut cfg = pki.query_config();
    cfg.client_ca_file = pki.write("empty-ca.crt", "");
    let err = s62::query::QueryListener::bind(&cfg)
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("empty-ca.crt"),
        "names the file: {err}"
    );
    let mut cfg = pki.query_config();
    cfg.key_file = pki.dir.path().join("missing.key");
    assert!(s62::query::QueryListener::bind(&cfg).await.is_err());
}

//! A client we did not write — Python's grpcio with grpcio-reflection, from PyPI — lists and calls
//! the query service through server reflection, over TLS with an auditor certificate, without our
//! .proto files (`tests/reflection_client.py`). Its calls land in the log like anyone's.
//!
//! Skipped, with a message, only when `python3` itself is missing; the script installs grpcio with
//! pip when it is not there.

mod query_harness;

use query_harness::{Exchange, Pki, TestLog, start_tls};
use s62::log::entry::{AuditPurpose, EntryKind};

#[tokio::test]
async fn python_grpcio_lists_and_calls_the_service_through_reflection_over_tls() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    if tokio::process::Command::new(&python)
        .arg("--version")
        .output()
        .await
        .is_err()
    {
        eprintln!("SKIPPED: {python} is not installed; the reflection test needs python3");
        return;
    }

    let log = TestLog::new();
    log.background(10).await;
    log.exchange(Exchange {
        actor: "pc-1",
        asked: &["P-1"],
        returned: &["P-1"],
        ..Exchange::default()
    })
    .await;
    let pki = Pki::new();
    let cfg = pki.query_config();
    let addr = start_tls(&log, &cfg).await;
    let alex = pki.client("Alex Auditor", &[]);
    let (cert, key) = pki.write_credential("alex", &alex);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reflection_client.py");

    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--ca")
        .arg(pki.ca_path())
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--subject")
        .arg("P-1")
        .arg("--case")
        .arg("PY-REFLECT-1")
        .output()
        .await
        .expect("run the python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    let seen: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .last()
            .expect("the client prints what it saw"),
    )
    .expect("json");

    let services: Vec<&str> = seen["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(services.contains(&"s62.query.v1.AuditQuery"), "{seen}");
    assert!(services.contains(&"grpc.health.v1.Health"), "{seen}");
    let methods = seen["methods"].as_array().expect("methods");
    // Every method the service offers is a call the role table knows, and no other.
    let mut offered: Vec<&str> = methods.iter().filter_map(|m| m.as_str()).collect();
    offered.sort_unstable();
    let mut known: Vec<&str> = s62::config::QueryCall::ALL
        .iter()
        .map(|c| c.name())
        .collect();
    known.sort_unstable();
    assert_eq!(offered, known, "{seen}");
    assert_eq!(seen["checkpoint_origin"], query_harness::ORIGIN);
    assert_eq!(seen["health"], "SERVING");
    assert_eq!(seen["no_purpose"], "INVALID_ARGUMENT");
    // Background P-1 consultation (2 entries) plus the explicit exchange (2 entries).
    assert_eq!(
        seen["search_seqs"].as_array().expect("seqs").len(),
        4,
        "{seen}"
    );

    // The Python client's calls are in the log with its purpose and case reference.
    let audit_seq = seen["latest_audit_seq"].as_u64().expect("seq");
    let opening = log.entry(audit_seq);
    let q = opening.audit_query.expect("an audit-query entry");
    assert_eq!(q.call, "LatestCheckpoint");
    assert_eq!(q.purpose, AuditPurpose::Lawfulness as i32);
    assert_eq!(q.case_reference, "PY-REFLECT-1");
    assert_eq!(opening.actor.expect("actor").id, "psd-alex");
    let all = log.all();
    assert!(all.iter().any(|e| {
        e.audit_query
            .as_ref()
            .is_some_and(|q| q.call == "Search" && q.case_reference == "PY-REFLECT-1")
    }));
    assert!(
        all.iter().any(|e| e.kind == EntryKind::Denied as i32
            && e.denial
                .as_ref()
                .is_some_and(|d| d.reason == "no_purpose_or_case_reference")),
        "the purposeless call was refused and logged"
    );
}

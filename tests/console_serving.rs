//! The auditor's console on the query listener, without a browser: the page's files come over the
//! same TLS with a required client certificate and a strict Content-Security-Policy; gRPC-Web
//! calls reach the same `AuditQuery` service, logged with the caller's purpose and case, and the
//! same role table refuses them (a refusal that is itself logged).

mod console_support;
mod query_harness;

use console_support::{connect_h2, get, grpc_web_call};
use prost::Message;
use query_harness::{Exchange, Pki, TestLog, start_tls};
use s62::log::entry::{AuditPurpose, EntryKind};
use s62::query::pb::{
    ActorReportRequest, CallContext, CheckpointResponse, LatestCheckpointRequest,
};

fn context(case: &str) -> Option<CallContext> {
    Some(CallContext {
        purpose: AuditPurpose::SelfMonitoring as i32,
        case_reference: case.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_over_the_query_listener_and_its_grpc_web_calls_are_logged_and_role_checked()
 {
    let log = TestLog::new();
    log.exchange(Exchange::default()).await;
    let pki = Pki::new();
    let addr = start_tls(&log, &pki.query_config()).await;
    let ca = std::fs::read_to_string(pki.ca_path()).expect("ca");

    // Without a client certificate the page is not served at all: the handshake is refused.
    let refused = match connect_h2(addr, &ca, None).await {
        Err(e) => e,
        Ok(mut s) => match console_support::send(
            &mut s,
            http::Request::get("https://localhost/")
                .body(Default::default())
                .expect("req"),
        )
        .await
        {
            Err(e) => e,
            Ok(r) => panic!("served without a client certificate: {}", r.status),
        },
    };
    assert!(!refused.is_empty());

    // The DPO's browser gets the page, with the policy that forbids loading anything elsewhere.
    let dpo = pki.client("Dana DPO", &["dpo@example.police.uk"]);
    let mut browser = connect_h2(addr, &ca, Some((&dpo.cert_pem, &dpo.key_pem)))
        .await
        .expect("connect as the DPO");
    let page = get(&mut browser, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        page.header("content-security-policy"),
        Some(s62::console::CONTENT_SECURITY_POLICY)
    );
    let csp = s62::console::CONTENT_SECURITY_POLICY;
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("Why are you using the log?"), "{html}");
    for script in ["/pb.js", "/verify.js", "/console.js", "/console.css"] {
        let r = get(&mut browser, script).await;
        assert_eq!(r.status, 200, "{script}");
        assert!(r.header("content-security-policy").is_some(), "{script}");
    }
    assert_eq!(get(&mut browser, "/nothing-here").await.status, 404);

    // A gRPC-Web call: answered in gRPC-Web, and logged first with the stated purpose and case.
    let r = grpc_web_call(
        &mut browser,
        "LatestCheckpoint",
        &LatestCheckpointRequest {
            context: context("PSD-WEB-1"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.http.status, 200);
    assert!(
        r.http
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/grpc-web")),
        "{:?}",
        r.http.headers
    );
    assert_eq!(r.grpc_status.as_deref(), Some("0"), "{:?}", r.grpc_message);
    let cp = CheckpointResponse::decode(r.messages[0].clone()).expect("a CheckpointResponse");
    assert!(cp.checkpoint.expect("checkpoint").size >= 2);
    let seq: u64 = r
        .http
        .header("s62-audit-seq")
        .expect("the audit seq comes back")
        .parse()
        .expect("a number");
    let opening = log.entry(seq);
    assert_eq!(opening.kind, EntryKind::AuditQuery as i32);
    assert_eq!(opening.actor.as_ref().expect("actor").id, "dpo");
    let q = opening.audit_query.as_ref().expect("audit_query");
    assert_eq!(
        (q.call.as_str(), q.purpose, q.case_reference.as_str()),
        (
            "LatestCheckpoint",
            AuditPurpose::SelfMonitoring as i32,
            "PSD-WEB-1"
        )
    );

    // An auditor (role `auditor`) asks the console for an actor report: the role table refuses
    // it through gRPC-Web exactly as over gRPC, and the refusal is logged before it is answered.
    let alex = pki.client("Alex Auditor", &[]);
    let mut alex_browser = connect_h2(addr, &ca, Some((&alex.cert_pem, &alex.key_pem)))
        .await
        .expect("connect as the auditor");
    let r = grpc_web_call(
        &mut alex_browser,
        "ActorReport",
        &ActorReportRequest {
            context: context("PSD-WEB-2"),
            actor: "pc-1".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.grpc_status.as_deref(), Some("7"), "PERMISSION_DENIED");
    assert!(r.messages.is_empty(), "nothing was sent but the refusal");
    let denied = log
        .wait_for("the auditor's refusal", |e| {
            e.kind == EntryKind::Denied as i32
                && e.actor.as_ref().is_some_and(|a| a.id == "psd-alex")
        })
        .await;
    let d = denied.denial.as_ref().expect("denial");
    assert_eq!(d.reason, "role_not_allowed");
    let q = denied.audit_query.as_ref().expect("audit_query");
    assert_eq!(
        (q.call.as_str(), q.case_reference.as_str()),
        ("ActorReport", "PSD-WEB-2")
    );
    assert!(
        !log.all()
            .iter()
            .any(|e| e.kind == EntryKind::AuditQuery as i32
                && e.audit_query
                    .as_ref()
                    .is_some_and(|q| q.call == "ActorReport")),
        "no actor report was opened for the auditor"
    );
}

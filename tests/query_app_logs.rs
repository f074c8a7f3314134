//! The query service's application log (tracing, at debug, including tonic's and h2's) carries
//! call names, seqs and codes — never the subject asked about, the case reference, the auditor's
//! or a stranger's name, or a justification from the log.

mod query_harness;

use query_harness::{Exchange, InMemory, Pki, TestLog};
use s62::log::entry::AuditPurpose;
use s62::query::pb::{CallContext, ExportRequest, Filter, SearchRequest, SubjectReportRequest};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_application_log_of_a_query_session_holds_no_personal_data() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(move || writer.clone())
        .json()
        .init();

    let log = TestLog::new();
    log.exchange(Exchange {
        actor: "pc-QZ-1",
        asked: &["SUBJ-QZ-4471"],
        returned: &["SUBJ-QZ-4471"],
        why: "JUSTIFICATION-QZ-quarrel next door",
        case: "OPCASE-QZ-9",
        recipients: &["RECIPIENT-QZ"],
        ..Exchange::default()
    })
    .await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let ico = pki.client("Casey Commissioner", &[]);
    let stranger = pki.client("Sam QZ Stranger", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&ico)).await;
    let context = Some(CallContext {
        purpose: AuditPurpose::CommissionerRequest as i32,
        case_reference: "AUDITCASE-QZ-12".into(),
    });
    let subject = Some(Filter {
        subject: "SUBJ-QZ-4471".into(),
        ..Default::default()
    });
    let mut s = client
        .search(SearchRequest {
            context: context.clone(),
            filter: subject.clone(),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    while s.message().await.expect("stream").is_some() {}
    let mut r = client
        .subject_report(SubjectReportRequest {
            context: context.clone(),
            subject: "SUBJ-QZ-4471".into(),
            ..Default::default()
        })
        .await
        .expect("report")
        .into_inner();
    while r.message().await.expect("stream").is_some() {}
    let mut e = client
        .export(ExportRequest {
            context: context.clone(),
            filter: subject.clone(),
            max_entries: 0,
        })
        .await
        .expect("export")
        .into_inner();
    while e.message().await.expect("stream").is_some() {}
    // An auditor reaching past their role: refused on the role, and logged.
    let mut auditor = service.client(Some(&alex)).await;
    auditor
        .export(ExportRequest {
            context: context.clone(),
            filter: subject.clone(),
            max_entries: 0,
        })
        .await
        .expect_err("an auditor may not export");
    let mut refused = service.client(Some(&stranger)).await;
    refused
        .search(SearchRequest {
            context,
            filter: subject,
            ..Default::default()
        })
        .await
        .expect_err("a stranger");

    let app_log = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    assert!(
        app_log.contains("audit_seq")
            && app_log.contains("SubjectReport")
            && app_log.contains("role_not_allowed"),
        "the log does say what happened:\n{app_log}"
    );
    for secret in [
        "SUBJ-QZ-4471",
        "AUDITCASE-QZ-12",
        "OPCASE-QZ-9",
        "JUSTIFICATION-QZ",
        "RECIPIENT-QZ",
        "pc-QZ-1",
        "Sam QZ Stranger",
        "Alex Auditor",
        "psd-alex",
        "Casey Commissioner",
        "ico-casey",
    ] {
        assert!(
            !app_log.contains(secret),
            "the application log contains {secret:?}:\n{app_log}"
        );
    }
}

//! `RedactValues` through the query service (issue 12): the DPO removes a subject's ids after an
//! erasure request, under a stated purpose, and the log still verifies; an auditor may not, and
//! the refusal is logged; the removal is visible as redacted and the id is no longer searchable.

mod query_harness;

use query_harness::{Exchange, InMemory, Pki, TestLog, context};
use s62::log::entry::{EntryKind, PersonalField};
use s62::log::epoch::LogKeys;
use s62::query::AUDIT_SEQ_HEADER;
use s62::query::pb::{
    Filter, GetEntryRequest, RedactValuesRequest, SearchRequest, search_response,
};
use s62::verify::bundle::selection_digest;
use s62::verify::{VerifyOptions, verify_store};
use tonic::Code;

fn erase(subject: &str) -> RedactValuesRequest {
    RedactValuesRequest {
        context: context(),
        filter: Some(Filter {
            subject: subject.into(),
            ..Default::default()
        }),
        reason: "erasure-request".into(),
        fields: vec!["subject_id".into(), "returned_subject_id".into()],
        detail: "SAR-2026-0193".into(),
        max_entries: 0,
    }
}

async fn search_count(
    client: &mut s62::query::pb::audit_query_client::AuditQueryClient<tonic::transport::Channel>,
    subject: &str,
) -> usize {
    let mut stream = client
        .search(SearchRequest {
            context: context(),
            filter: Some(Filter {
                subject: subject.into(),
                ..Default::default()
            }),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("search")
        .into_inner();
    let mut n = 0;
    while let Some(m) = stream.message().await.expect("stream") {
        if let Some(search_response::Item::Entry(_)) = m.item {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn the_dpo_erases_a_subjects_ids_and_the_log_still_verifies() {
    let log = TestLog::new();
    log.background(8).await;
    let (intent, outcome) = log
        .exchange(Exchange {
            asked: &["P-100"],
            returned: &["P-100", "P-101"],
            why: "checking an alibi",
            ..Exchange::default()
        })
        .await;
    let pki = Pki::new();
    let dpo = pki.client("Dana DPO", &["dpo@example.police.uk"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&dpo)).await;
    assert_eq!(
        search_count(&mut client, "P-100").await,
        2,
        "control: found before"
    );

    let response = client
        .redact_values(erase("P-100"))
        .await
        .expect("the DPO may redact");
    let opened_at: u64 = response
        .metadata()
        .get(AUDIT_SEQ_HEADER)
        .expect("audit seq")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seq");
    let r = response.into_inner();
    assert_eq!(r.entries, 2);
    let redaction_seq = r.redaction_seq.expect("a redaction entry was written");

    // The opening entry committed to exactly the two entries before anything was removed.
    let opening = log.entry(opened_at);
    let q = opening.audit_query.expect("audit query");
    assert_eq!(q.call, "RedactValues");
    assert_eq!(q.results_committed, 2);
    assert_eq!(
        q.results_sha256,
        selection_digest(&[intent, outcome]).0.to_vec()
    );

    // The redaction entry says who, why and what.
    let red = log.entry(redaction_seq);
    assert_eq!(red.kind, EntryKind::Redaction as i32);
    assert_eq!(red.actor.as_ref().expect("actor").id, "dpo");
    assert_eq!(red.answers_seq, Some(opened_at));
    assert_eq!(
        red.justification.as_ref().expect("why").case_reference,
        "PSD-2026-041"
    );
    let what = red.redaction.expect("redaction");
    assert_eq!(what.reason, "erasure-request");
    assert_eq!(what.detail, "SAR-2026-0193");
    assert_eq!(
        what.targets.len(),
        1,
        "the two entries are adjacent: one range"
    );
    assert_eq!(
        (what.targets[0].from_seq, what.targets[0].to_seq),
        (intent, outcome)
    );
    assert_eq!(
        what.targets[0].fields,
        [
            PersonalField::SubjectId as i32,
            PersonalField::ReturnedSubjectId as i32
        ]
    );

    // The ids are gone, everything else stays.
    let i = log.entry(intent);
    assert_eq!(i.subject_ids, [""]);
    assert_eq!(i.actor.expect("actor").id, "pc-1");
    assert_eq!(i.justification.expect("why").text, "checking an alibi");
    let o = log.entry(outcome);
    assert_eq!(o.outcome.expect("outcome").returned_subject_ids, ["", ""]);

    // Not searchable any more; shown as redacted, never as absent.
    assert_eq!(search_count(&mut client, "P-100").await, 0);
    assert_eq!(
        search_count(&mut client, "P-101").await,
        0,
        "same field, same entry"
    );
    assert_eq!(
        search_count(&mut client, "P-3").await,
        2,
        "others untouched"
    );
    let got = client
        .get_entry(GetEntryRequest {
            context: context(),
            seq: outcome,
            tree_size: 0,
            ..Default::default()
        })
        .await
        .expect("entry")
        .into_inner();
    assert_eq!(
        got.entry.expect("entry").redacted,
        ["returned_subject_id[0]", "returned_subject_id[1]"]
    );

    let keys = LogKeys::parse(&log.key.verifier().to_vkey()).expect("key");
    let report = verify_store(log.store.as_ref(), VerifyOptions::new(keys)).expect("verifies");
    assert_eq!(report.redacted_values, 3);
    assert_eq!(report.redaction_entries, 1);
}

#[tokio::test]
async fn an_auditor_may_not_redact_and_the_refusal_is_logged() {
    let log = TestLog::new();
    let (intent, _) = log
        .exchange(Exchange {
            asked: &["P-100"],
            ..Exchange::default()
        })
        .await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;

    let refused = client
        .redact_values(erase("P-100"))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let denied = log
        .wait_for("the refusal", |e| {
            e.kind == EntryKind::Denied as i32
                && e.denial
                    .as_ref()
                    .is_some_and(|d| d.reason == "role_not_allowed")
        })
        .await;
    assert_eq!(denied.actor.expect("actor").id, "psd-alex");
    assert_eq!(
        log.entry(intent).subject_ids,
        ["P-100"],
        "nothing was removed"
    );
    assert!(
        log.all()
            .iter()
            .all(|e| e.kind != EntryKind::Redaction as i32),
        "no redaction entry"
    );
}

#[tokio::test]
async fn a_redaction_without_a_filter_or_with_an_unknown_field_or_reason_is_refused() {
    let log = TestLog::new();
    log.background(3).await;
    let pki = Pki::new();
    let dpo = pki.client("Dana DPO", &["dpo@example.police.uk"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&dpo)).await;
    let size = log.size();

    let everything = RedactValuesRequest {
        filter: None,
        ..erase("P-1")
    };
    let unknown_field = RedactValuesRequest {
        fields: vec!["shoe_size".into()],
        ..erase("P-1")
    };
    let retention = RedactValuesRequest {
        reason: "retention".into(),
        ..erase("P-1")
    };
    for (what, req) in [
        ("no filter", everything),
        ("unknown field", unknown_field),
        ("the sidecar's own reason", retention),
    ] {
        let e = client.redact_values(req).await.expect_err(what);
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
    }
    let after = log.all();
    assert!(after.iter().all(|e| e.kind != EntryKind::Redaction as i32));
    assert_eq!(
        after[size as usize..]
            .iter()
            .filter(|e| e.kind == EntryKind::Denied as i32)
            .count(),
        3,
        "each refusal is logged"
    );
}

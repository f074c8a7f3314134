//! The auditor query service, in memory (tokio duplex pipes; the presented certificate is
//! handed to the service as the TLS layer would after verifying it): who may call, that every
//! call is in the log before its results, that searches, pages and proofs are right.

mod query_harness;

use query_harness::{Exchange, InMemory, Pki, TestLog, context};
use s62::log::checkpoint::open_checkpoint;
use s62::log::entry::{AuditPurpose, Entry, EntryKind, Operation};
use s62::log::hash::{Hash, leaf_hash};
use s62::log::merkle::{verify_consistency, verify_inclusion};
use s62::query::AUDIT_SEQ_HEADER;
use s62::query::pb::{
    CallContext, CheckpointAtRequest, ConsistencyProofRequest, ExportRequest, Filter,
    GetEntryRequest, InclusionProofRequest, LatestCheckpointRequest, SearchRequest,
    SubjectReportRequest, search_response,
};
use tonic::Code;

fn audit_seq<T>(r: &tonic::Response<T>) -> u64 {
    r.metadata()
        .get(AUDIT_SEQ_HEADER)
        .expect("the response names its audit entry")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a seq")
}

fn subject_filter(subject: &str) -> Option<Filter> {
    Some(Filter {
        subject: subject.into(),
        ..Default::default()
    })
}

fn is_audit(e: &Entry, call: &str) -> bool {
    e.kind == EntryKind::AuditQuery as i32 && e.audit_query.as_ref().is_some_and(|q| q.call == call)
}

#[tokio::test]
async fn a_search_is_in_the_log_before_its_first_result_and_closed_with_its_count() {
    let log = TestLog::new();
    log.background(30).await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;

    let response = client
        .search(SearchRequest {
            context: context(),
            filter: subject_filter("P-3"),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("search accepted");
    // Headers have arrived, no result has been read: the opening entry is already durable.
    let opened_at = audit_seq(&response);
    let opening = log.entry(opened_at);
    assert!(is_audit(&opening, "Search"), "{opening:?}");
    let q = opening.audit_query.as_ref().expect("audit query");
    assert_eq!(q.purpose, AuditPurpose::SelfMonitoring as i32);
    assert_eq!(q.case_reference, "PSD-2026-041");
    assert_eq!(
        q.filter_json, r#"{"filter":{"subject":"P-3"},"page_size":10}"#,
        "the filter is recorded as canonical JSON"
    );
    assert!(!q.completed);
    let actor = opening.actor.as_ref().expect("actor");
    assert_eq!(actor.id, "psd-alex");
    assert_eq!(actor.roles, ["auditor"]);

    let mut stream = response.into_inner();
    let mut seqs = Vec::new();
    while let Some(m) = stream.message().await.expect("stream") {
        if let Some(search_response::Item::Entry(le)) = m.item {
            assert!(
                le.seq < opened_at,
                "a search only sees entries before its own"
            );
            let e = le.entry.expect("decoded");
            assert_eq!(e.seq, le.seq);
            // The entry is the stored leaf with the stored values put back, each matching its
            // commitment in the leaf.
            let leaf = s62::log::entry::decode(&le.leaf).expect("leaf decodes");
            let values = prost::Message::decode(le.values.as_slice()).expect("values decode");
            assert_eq!(
                s62::log::seal::unseal(&leaf, &values)
                    .expect("values match")
                    .entry,
                e,
                "the stored bytes and values are the decoded entry"
            );
            seqs.push(le.seq);
        }
    }
    // P-3 was consulted once (intent + outcome both name it).
    assert_eq!(seqs.len(), 2);

    let closing = log
        .wait_for("the closing entry", |e| e.answers_seq == Some(opened_at))
        .await;
    let q = closing.audit_query.expect("audit query");
    assert!(q.completed);
    assert_eq!(q.results_returned, 2);
    assert_eq!(closing.outcome.expect("outcome").status, 0, "OK");
}

#[tokio::test]
async fn when_the_log_cannot_be_written_no_call_returns_anything() {
    let log = TestLog::new();
    log.background(5).await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let dpo = pki.client("Data Protection", &["dpo@example.police.uk"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;
    let mut exporter = service.client(Some(&dpo)).await;
    let before = log.size();
    log.store.set_failing(true);

    let search = client
        .search(SearchRequest {
            context: context(),
            filter: subject_filter("P-1"),
            ..Default::default()
        })
        .await;
    let report = client
        .subject_report(SubjectReportRequest {
            context: context(),
            subject: "P-1".into(),
            ..Default::default()
        })
        .await;
    let export = exporter
        .export(ExportRequest {
            context: context(),
            ..Default::default()
        })
        .await;
    let codes = [
        search.map(|_| ()).expect_err("search refused").code(),
        report.map(|_| ()).expect_err("report refused").code(),
        export.map(|_| ()).expect_err("export refused").code(),
        client
            .get_entry(GetEntryRequest {
                context: context(),
                seq: 0,
                tree_size: 0,
                ..Default::default()
            })
            .await
            .expect_err("get entry refused")
            .code(),
        client
            .latest_checkpoint(LatestCheckpointRequest {
                context: context(),
                ..Default::default()
            })
            .await
            .expect_err("checkpoint refused")
            .code(),
        client
            .checkpoint_at(CheckpointAtRequest {
                context: context(),
                size: 1,
                ..Default::default()
            })
            .await
            .expect_err("checkpoint at refused")
            .code(),
        client
            .inclusion_proof(InclusionProofRequest {
                context: context(),
                seq: 0,
                tree_size: 0,
                ..Default::default()
            })
            .await
            .expect_err("inclusion refused")
            .code(),
        client
            .consistency_proof(ConsistencyProofRequest {
                context: context(),
                old_size: 1,
                new_size: 0,
                ..Default::default()
            })
            .await
            .expect_err("consistency refused")
            .code(),
    ];
    assert!(
        codes.iter().all(|c| *c == Code::Unavailable),
        "every call fails closed: {codes:?}"
    );
    log.store.set_failing(false);
    assert_eq!(
        log.size(),
        before,
        "nothing was written, nothing was read out"
    );
}

#[tokio::test]
async fn a_call_without_purpose_or_case_reference_is_refused_and_the_refusal_is_logged() {
    let log = TestLog::new();
    log.background(3).await;
    let pki = Pki::new();
    let dpo = pki.client("Data Protection", &["dpo@example.police.uk"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&dpo)).await;

    for ctx in [
        None,
        Some(CallContext {
            purpose: AuditPurpose::Unspecified as i32,
            case_reference: "DPO-7".into(),
        }),
        Some(CallContext {
            purpose: AuditPurpose::Lawfulness as i32,
            case_reference: " ".into(),
        }),
    ] {
        let before = log.size();
        let err = client
            .search(SearchRequest {
                context: ctx,
                filter: subject_filter("P-1"),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument);
        let denied = log.entry(before);
        assert_eq!(denied.kind, EntryKind::Denied as i32);
        assert_eq!(
            denied.denial.expect("denial").reason,
            "no_purpose_or_case_reference"
        );
        assert_eq!(denied.actor.expect("actor").id, "dpo", "matched by SAN");
        assert_eq!(log.size(), before + 1, "no audit-query entry was opened");
    }
}

#[tokio::test]
async fn a_certificate_that_names_no_auditor_is_refused_and_logged_with_its_identity() {
    let log = TestLog::new();
    log.background(3).await;
    let pki = Pki::new();
    let stranger = pki.client("Sam Stranger", &["sam@example.org"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&stranger)).await;
    let before = log.size();

    let err = client
        .latest_checkpoint(LatestCheckpointRequest {
            context: context(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    let denied = log.entry(before);
    assert_eq!(denied.kind, EntryKind::Denied as i32);
    assert_eq!(
        denied.denial.as_ref().expect("denial").reason,
        "not_an_auditor"
    );
    assert_eq!(
        denied.denial.as_ref().expect("denial").detail,
        "LatestCheckpoint"
    );
    let actor = denied.actor.expect("actor");
    assert_eq!(actor.id, "cn:Sam Stranger");
    assert_eq!(actor.source_address, "192.0.2.10:50000");
    assert_eq!(log.size(), before + 1);
}

#[tokio::test]
async fn a_connection_without_a_certificate_is_unauthenticated_and_logged() {
    let log = TestLog::new();
    let service = InMemory::start(&log).await;
    log.background(1).await;
    let mut client = service.client(None).await;
    let before = log.size();
    let err = client
        .search(SearchRequest {
            context: context(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::Unauthenticated);
    let denied = log.entry(before);
    assert_eq!(
        denied.denial.expect("denial").reason,
        "no_client_certificate"
    );
}

#[tokio::test]
async fn proofs_from_the_service_verify_against_its_signed_checkpoints() {
    let log = TestLog::new();
    log.background(20).await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;
    let keys = [log.key.verifier()];

    // An old checkpoint an auditor kept.
    let old = client
        .latest_checkpoint(LatestCheckpointRequest {
            context: context(),
            ..Default::default()
        })
        .await
        .expect("checkpoint")
        .into_inner();
    assert_eq!(old.verifier_key, log.key.verifier().to_vkey());
    let old_cp = old.checkpoint.expect("checkpoint");
    let (old_parsed, _) = open_checkpoint(&old_cp.note, &keys, Some(query_harness::ORIGIN))
        .expect("the checkpoint is signed by the log");
    assert_eq!(old_parsed.size, old_cp.size);

    log.background(5).await;

    let got = client
        .get_entry(GetEntryRequest {
            context: context(),
            seq: 7,
            tree_size: 0,
            ..Default::default()
        })
        .await
        .expect("entry")
        .into_inner();
    let cp = got.checkpoint.expect("checkpoint");
    let (signed, _) = open_checkpoint(&cp.note, &keys, None).expect("signed");
    let le = got.entry.expect("entry");
    let proof: Vec<Hash> = got
        .inclusion_proof
        .iter()
        .map(|b| Hash::from_slice(b).expect("32 bytes"))
        .collect();
    verify_inclusion(&leaf_hash(&le.leaf), 7, signed.size, &proof, &signed.root)
        .expect("entry 7 is in the signed tree");

    // The same entry against the old checkpoint, by size.
    let against_old = client
        .inclusion_proof(InclusionProofRequest {
            context: context(),
            seq: 7,
            tree_size: old_cp.size,
            ..Default::default()
        })
        .await
        .expect("proof")
        .into_inner();
    let proof: Vec<Hash> = against_old
        .proof
        .iter()
        .map(|b| Hash::from_slice(b).expect("32 bytes"))
        .collect();
    let leaf = Hash::from_slice(&against_old.leaf_hash).expect("leaf");
    assert_eq!(leaf, leaf_hash(&le.leaf));
    verify_inclusion(&leaf, 7, old_parsed.size, &proof, &old_parsed.root).expect("included");

    // The log kept growing without rewriting what the old checkpoint covered.
    let c = client
        .consistency_proof(ConsistencyProofRequest {
            context: context(),
            old_size: old_cp.size,
            new_size: 0,
            ..Default::default()
        })
        .await
        .expect("consistency")
        .into_inner();
    let new = client
        .checkpoint_at(CheckpointAtRequest {
            context: context(),
            size: c.new_size,
            ..Default::default()
        })
        .await
        .expect("checkpoint at")
        .into_inner()
        .checkpoint
        .expect("checkpoint");
    let (new_parsed, _) = open_checkpoint(&new.note, &keys, None).expect("signed");
    let proof: Vec<Hash> = c
        .proof
        .iter()
        .map(|b| Hash::from_slice(b).expect("32 bytes"))
        .collect();
    verify_consistency(
        old_parsed.size,
        new_parsed.size,
        &proof,
        &old_parsed.root,
        &new_parsed.root,
    )
    .expect("consistent");

    // A tampered proof node does not verify (the check above can fail).
    let mut bad = proof.clone();
    if let Some(first) = bad.first_mut() {
        first.0[0] ^= 1;
    }
    assert!(
        verify_consistency(
            old_parsed.size,
            new_parsed.size,
            &bad,
            &old_parsed.root,
            &new_parsed.root
        )
        .is_err()
    );

    let missing = client
        .checkpoint_at(CheckpointAtRequest {
            context: context(),
            size: 10_000,
            ..Default::default()
        })
        .await
        .expect_err("no such checkpoint");
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn search_pages_cover_every_match_once_and_never_what_came_after_the_first_page() {
    let log = TestLog::new();
    log.background(70).await; // pc-3 made 10 consultations: 20 entries
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;
    let filter = Some(Filter {
        actor: "pc-3".into(),
        kind: EntryKind::Outcome as i32,
        ..Default::default()
    });
    let want: Vec<u64> = log
        .all()
        .iter()
        .filter(|e| {
            e.kind == EntryKind::Outcome as i32 && e.actor.as_ref().is_some_and(|a| a.id == "pc-3")
        })
        .map(|e| e.seq)
        .collect();
    assert_eq!(want.len(), 10);

    let mut got = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let mut stream = client
            .search(SearchRequest {
                context: context(),
                filter: filter.clone(),
                page_size: 4,
                page_token: token.clone(),
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        let mut next = None;
        while let Some(m) = stream.message().await.expect("stream") {
            match m.item {
                Some(search_response::Item::Entry(le)) => got.push(le.seq),
                Some(search_response::Item::PageEnd(end)) => next = Some(end.next_page_token),
                None => {}
            }
        }
        let next = next.expect("every page ends with a page_end");
        if pages == 1 {
            // Activity after the first page must not leak into later pages.
            log.exchange(Exchange {
                actor: "pc-3",
                asked: &["P-99"],
                ..Exchange::default()
            })
            .await;
        }
        if next.is_empty() {
            break;
        }
        token = next;
    }
    assert_eq!(pages, 3);
    assert_eq!(got, want);

    let bad = client
        .search(SearchRequest {
            context: context(),
            filter,
            page_size: 4,
            page_token: "forged".into(),
        })
        .await
        .expect_err("a token we did not issue");
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn every_call_is_opened_with_its_purpose_and_closed_with_its_result_count() {
    let log = TestLog::new();
    log.background(10).await;
    let pki = Pki::new();
    // The DPO: the auditor's calls and exports.
    let dpo = pki.client("Data Protection", &["dpo@example.police.uk"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&dpo)).await;

    let mut opened = Vec::new();
    opened.push((
        "LatestCheckpoint",
        audit_seq(
            &client
                .latest_checkpoint(LatestCheckpointRequest {
                    context: context(),
                    ..Default::default()
                })
                .await
                .expect("ok"),
        ),
        1,
    ));
    opened.push((
        "GetEntry",
        audit_seq(
            &client
                .get_entry(GetEntryRequest {
                    context: context(),
                    seq: 2,
                    tree_size: 0,
                    ..Default::default()
                })
                .await
                .expect("ok"),
        ),
        1,
    ));
    let r = client
        .subject_report(SubjectReportRequest {
            context: context(),
            subject: "P-4".into(),
            ..Default::default()
        })
        .await
        .expect("ok");
    let seq = audit_seq(&r);
    let mut stream = r.into_inner();
    while stream.message().await.expect("stream").is_some() {}
    opened.push(("SubjectReport", seq, 2));
    let r = client
        .export(ExportRequest {
            context: context(),
            filter: subject_filter("P-4"),
            max_entries: 0,
        })
        .await
        .expect("ok");
    let seq = audit_seq(&r);
    let mut stream = r.into_inner();
    while stream.message().await.expect("stream").is_some() {}
    opened.push(("Export", seq, 2));

    for (call, seq, n) in opened {
        let opening = log.entry(seq);
        assert!(is_audit(&opening, call), "{call}: {opening:?}");
        assert_eq!(
            opening.justification.as_ref().expect("why").purpose_code,
            "self-monitoring"
        );
        let closing = log
            .wait_for(call, |e| e.answers_seq == Some(seq) && is_audit(e, call))
            .await;
        assert_eq!(
            closing.audit_query.expect("q").results_returned,
            n,
            "{call} returned {n}"
        );
    }
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_still_gets_a_closing_entry() {
    let log = TestLog::new();
    log.background(200).await; // 400 entries
    let pki = Pki::new();
    let dpo = pki.client("Data Protection", &["dpo@example.police.uk"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&dpo)).await;
    let r = client
        .export(ExportRequest {
            context: context(),
            filter: Some(Filter {
                operation: Operation::Consultation as i32,
                ..Default::default()
            }),
            max_entries: 0,
        })
        .await
        .expect("export");
    let seq = audit_seq(&r);
    let mut stream = r.into_inner();
    stream.message().await.expect("first message");
    drop(stream);
    drop(client);
    let closing = log
        .wait_for("closing entry after the client left", |e| {
            e.answers_seq == Some(seq)
        })
        .await;
    let outcome = closing.outcome.expect("outcome");
    assert_eq!(outcome.error, "client_disconnected");
    assert_eq!(outcome.status, Code::Cancelled as i32 as u32);
    assert!(
        closing.audit_query.expect("q").results_returned < 400,
        "it records what was actually sent"
    );
}

//! Search by case reference and by purpose (issue 11): each finds exactly the entries made under
//! that case or for that purpose — officers' and auditors' alike — from its own index family; a
//! redacted case reference is no longer found, and the log still verifies.

mod query_harness;

use query_harness::{Exchange, InMemory, Pki, TestLog, context};
use s62::log::entry::EntryKind;
use s62::log::epoch::LogKeys;
use s62::query::pb::audit_query_client::AuditQueryClient;
use s62::query::pb::{Filter, RedactValuesRequest, SearchRequest, search_response};
use s62::verify::{VerifyOptions, verify_store};
use tonic::transport::Channel;

/// Seqs of every entry a search with `filter` returns (one page of up to 1000).
async fn found(client: &mut AuditQueryClient<Channel>, filter: Filter) -> Vec<u64> {
    let mut stream = client
        .search(SearchRequest {
            context: context(),
            filter: Some(filter),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .expect("search")
        .into_inner();
    let mut seqs = Vec::new();
    while let Some(m) = stream.message().await.expect("stream") {
        if let Some(search_response::Item::Entry(e)) = m.item {
            seqs.push(e.seq);
        }
    }
    seqs
}

fn by_case(case: &str) -> Filter {
    Filter {
        case_reference: case.into(),
        ..Default::default()
    }
}

fn by_purpose(purpose: &str) -> Filter {
    Filter {
        purpose: purpose.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_search_by_case_reference_or_purpose_finds_exactly_those_entries() {
    let log = TestLog::new();
    log.background(6).await; // case OP-0, purpose "investigation"
    let (burglary_1, _) = log
        .exchange(Exchange {
            actor: "dc-1",
            asked: &["P-1"],
            case: "OP-77",
            ..Exchange::default()
        })
        .await;
    let (burglary_2, _) = log
        .exchange(Exchange {
            actor: "dc-2",
            asked: &["P-2"],
            case: "OP-77",
            ..Exchange::default()
        })
        .await;
    let refused = log
        .refused(
            Exchange {
                actor: "pc-3",
                asked: &["P-3"],
                ..Exchange::default()
            },
            "no_justification",
        )
        .await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;

    // The officers' case: its two intents (outcomes carry no justification of their own).
    assert_eq!(
        found(&mut client, by_case("OP-77")).await,
        [burglary_1, burglary_2]
    );
    assert!(
        found(&mut client, by_case("OP-7")).await.is_empty(),
        "exact"
    );
    // Combined with another term (AND).
    assert_eq!(
        found(
            &mut client,
            Filter {
                actor: "dc-2".into(),
                ..by_case("OP-77")
            }
        )
        .await,
        [burglary_2]
    );

    // Every officer's request stated "investigation"; the refused one stated nothing.
    let investigation = found(&mut client, by_purpose("investigation")).await;
    assert_eq!(investigation.len(), 6 + 2, "one intent per exchange");
    assert!(!investigation.contains(&refused));
    for seq in &investigation {
        assert_eq!(log.entry(*seq).kind, EntryKind::Intent as i32);
    }

    // The auditor's own calls are found by the auditor's purpose and case: every audit-query
    // entry so far (each search above, opened and closed), and nothing else. A search sees the
    // log up to its own opening entry, the next seq.
    let audit_entries = |log: &TestLog| -> Vec<u64> {
        (0..log.size())
            .filter(|s| log.entry(*s).kind == EntryKind::AuditQuery as i32)
            .collect()
    };
    let so_far = audit_entries(&log);
    assert_eq!(so_far.len(), 2 * 4, "four searches, opened and closed");
    assert_eq!(
        found(&mut client, by_purpose("self-monitoring")).await,
        so_far
    );
    let so_far = audit_entries(&log);
    assert_eq!(found(&mut client, by_case("PSD-2026-041")).await, so_far);
    assert!(
        found(&mut client, by_purpose("lawfulness"))
            .await
            .is_empty(),
        "nobody stated it"
    );
}

#[tokio::test]
async fn a_redacted_case_reference_is_no_longer_found() {
    let log = TestLog::new();
    log.background(4).await;
    let (secret, _) = log
        .exchange(Exchange {
            asked: &["P-9"],
            case: "OP-SENSITIVE-1",
            ..Exchange::default()
        })
        .await;
    let (kept, _) = log
        .exchange(Exchange {
            asked: &["P-8"],
            case: "OP-78",
            ..Exchange::default()
        })
        .await;
    let pki = Pki::new();
    let dpo = pki.client("Dana DPO", &["dpo@example.police.uk"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&dpo)).await;
    assert_eq!(
        found(&mut client, by_case("OP-SENSITIVE-1")).await,
        [secret],
        "control: found before"
    );

    let r = client
        .redact_values(RedactValuesRequest {
            context: context(),
            filter: Some(by_case("OP-SENSITIVE-1")),
            reason: "court-order".into(),
            fields: vec!["case_reference".into()],
            detail: String::new(),
            max_entries: 0,
        })
        .await
        .expect("the DPO may redact")
        .into_inner();
    assert_eq!(r.entries, 1);

    assert!(
        found(&mut client, by_case("OP-SENSITIVE-1"))
            .await
            .is_empty()
    );
    assert_eq!(
        found(&mut client, by_case("OP-78")).await,
        [kept],
        "others stay"
    );
    let e = log.entry(secret);
    let j = e.justification.expect("justification");
    assert_eq!(j.case_reference, "", "the value is gone");
    assert_eq!(
        j.purpose_code, "investigation",
        "the purpose is not personal data"
    );
    assert!(
        found(&mut client, by_purpose("investigation"))
            .await
            .contains(&secret),
        "still found by its purpose"
    );
    let keys = LogKeys::parse(&log.key.verifier().to_vkey()).expect("key");
    let report = verify_store(log.store.as_ref(), VerifyOptions::new(keys))
        .expect("the log and its indexes still agree");
    assert!(report.unbuilt_index_families.is_empty());
}

/// An auditor sends a filter too large for its own audit entry to record (a 2 MiB "subject"):
/// the call is refused as an invalid argument and the refusal logged — not answered with "log
/// unavailable", and nothing is searched unrecorded.
#[tokio::test]
async fn a_filter_too_large_to_record_is_refused_as_such_and_logged() {
    let log = TestLog::new();
    log.background(3).await;
    let pki = Pki::new();
    let alex = pki.client("Alex Auditor", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&alex)).await;
    let before = log.size();
    let refused = client
        .search(SearchRequest {
            context: context(),
            filter: Some(Filter {
                subject: "P".repeat(2 << 20),
                ..Default::default()
            }),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("recorded"), "{refused:?}");
    let written: Vec<_> = (before..log.size()).map(|s| log.entry(s)).collect();
    assert_eq!(written.len(), 1, "one entry: the refusal");
    assert_eq!(written[0].kind, EntryKind::Denied as i32);
    assert_eq!(
        written[0].denial.as_ref().expect("denial").reason,
        "invalid_argument"
    );
    // A filter of ordinary size still works.
    assert!(found(&mut client, by_case("OP-0")).await.len() >= 3);
}

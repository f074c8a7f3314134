//! The audit hub's query service, in memory: two sidecar logs (two origins, written by the real
//! writer, read as the hub's verified copies) and the hub's own log, served over duplex pipes as
//! the TLS layer would hand over a verified certificate. A report spans both logs in (time,
//! origin, seq) order with each entry's origin; an origin selects one log; pages over two logs
//! return every entry once; every call is identified, purpose-checked and in the hub's own log
//! before its results; single-log calls name their log; proofs verify against that log's own
//! checkpoints; a sidecar refuses an origin that is not its own.

mod query_harness;

use query_harness::{Exchange, InMemory, Pki, TestLog, context};
use s62::log::checkpoint::open_checkpoint;
use s62::log::entry::{AuditPurpose, Entry, EntryKind};
use s62::log::hash::{Hash, leaf_hash};
use s62::log::merkle::verify_inclusion;
use s62::log::note::VerifierKey;
use s62::log::store::LogStore;
use s62::query::AUDIT_SEQ_HEADER;
use s62::query::pb::{
    ActorReportRequest, CallContext, ExportRequest, Filter, GetEntryRequest, InclusionProofRequest,
    LatestCheckpointRequest, ListAlertsRequest, LoggedEntry, RedactValuesRequest, SearchRequest,
    SubjectEvent, SubjectReportRequest, list_alerts_response, search_response,
    subject_report_response,
};
use tonic::Code;
use tonic::transport::Channel;

type Client = s62::query::pb::audit_query_client::AuditQueryClient<Channel>;

const CUSTODY: &str = "custody.example.police.uk/s62";
const INTEL: &str = "intel.example.police.uk/s62";
const HUB: &str = "hub.example.police.uk/s62";

/// Two sidecar logs and a hub's own log.
struct Scene {
    custody: TestLog,
    intel: TestLog,
    hub: TestLog,
}

impl Scene {
    fn new() -> Scene {
        Scene {
            custody: TestLog::named(CUSTODY, 11),
            intel: TestLog::named(INTEL, 12),
            hub: TestLog::named(HUB, 13),
        }
    }

    /// `n` consultations of P-1 in each log, alternating between the logs so that their times
    /// interleave, with a consultation of someone else in between.
    async fn interleaved(&self, n: usize) {
        for i in 0..n {
            for log in [&self.intel, &self.custody] {
                log.exchange(Exchange {
                    actor: &format!("pc-{}", i % 3),
                    asked: &["P-1"],
                    returned: &["P-1"],
                    ..Exchange::default()
                })
                .await;
                log.background(1).await;
            }
        }
    }

    async fn service(&self) -> InMemory {
        InMemory::hub(&self.hub, &[&self.custody, &self.intel]).await
    }

    fn log(&self, origin: &str) -> &TestLog {
        match origin {
            CUSTODY => &self.custody,
            INTEL => &self.intel,
            HUB => &self.hub,
            other => panic!("no log {other}"),
        }
    }
}

/// Two sidecar logs after `rounds` of [`Scene::interleaved`], the hub's service over them, and
/// the PKI its auditors' certificates come from.
async fn started(rounds: usize) -> (Scene, Pki, InMemory) {
    let scene = Scene::new();
    scene.interleaved(rounds).await;
    let service = scene.service().await;
    (scene, Pki::new(), service)
}

/// A client presenting the auditor-role certificate (psd-alex).
async fn as_alex(pki: &Pki, service: &InMemory) -> Client {
    service.client(Some(&pki.client("Alex Auditor", &[]))).await
}

/// A client presenting the DPO's certificate.
async fn as_dpo(pki: &Pki, service: &InMemory) -> Client {
    service
        .client(Some(
            &pki.client("Data Protection", &["dpo@example.police.uk"]),
        ))
        .await
}

fn audit_seq<T>(r: &tonic::Response<T>) -> u64 {
    r.metadata()
        .get(AUDIT_SEQ_HEADER)
        .expect("the response names its audit entry")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a seq")
}

fn is_audit(e: &Entry, call: &str) -> bool {
    e.kind == EntryKind::AuditQuery as i32 && e.audit_query.as_ref().is_some_and(|q| q.call == call)
}

fn denied(log: &TestLog, call: &str, reason: &str) -> usize {
    log.all()
        .iter()
        .filter(|e| e.kind == EntryKind::Denied as i32)
        .filter(|e| e.denial.as_ref().is_some_and(|d| d.reason == reason))
        .filter(|e| e.audit_query.as_ref().is_some_and(|q| q.call == call))
        .count()
}

async fn subject_report(
    client: &mut Client,
    subject: &str,
    origin: &str,
) -> (u64, Vec<SubjectEvent>, u64) {
    let response = client
        .subject_report(SubjectReportRequest {
            context: context(),
            subject: subject.into(),
            origin: origin.into(),
            ..Default::default()
        })
        .await
        .expect("report accepted");
    let seq = audit_seq(&response);
    let mut stream = response.into_inner();
    let (mut events, mut summary) = (Vec::new(), None);
    while let Some(m) = stream.message().await.expect("stream") {
        match m.item {
            Some(subject_report_response::Item::Event(e)) => events.push(e),
            Some(subject_report_response::Item::Summary(s)) => summary = Some(s),
            None => {}
        }
    }
    (seq, events, summary.expect("a summary").events)
}

/// One page of a search: its entries and the next page's token.
async fn search_page(
    client: &mut Client,
    filter: Filter,
    page_size: u32,
    token: String,
) -> (Vec<LoggedEntry>, String) {
    let mut stream = client
        .search(SearchRequest {
            context: context(),
            filter: Some(filter),
            page_size,
            page_token: token,
        })
        .await
        .expect("search accepted")
        .into_inner();
    let (mut entries, mut next) = (Vec::new(), String::new());
    while let Some(m) = stream.message().await.expect("stream") {
        match m.item {
            Some(search_response::Item::Entry(le)) => entries.push(le),
            Some(search_response::Item::PageEnd(end)) => next = end.next_page_token,
            None => {}
        }
    }
    (entries, next)
}

#[tokio::test]
async fn a_subject_report_through_the_hub_lists_both_logs_in_time_order_each_with_its_origin() {
    let (scene, pki, service) = started(4).await;
    let (custody_size, intel_size) = (scene.custody.size(), scene.intel.size());
    let mut client = as_alex(&pki, &service).await;

    let (seq, events, counted) = subject_report(&mut client, "P-1", "").await;
    // Intent and outcome of each of 4 consultations, in each of the two logs.
    assert_eq!(events.len(), 16);
    assert_eq!(counted, 16, "the summary counts both logs");
    for origin in [CUSTODY, INTEL] {
        assert_eq!(
            events.iter().filter(|e| e.origin == origin).count(),
            8,
            "{origin}"
        );
    }
    let order: Vec<(i64, &str, u64)> = events
        .iter()
        .map(|e| (e.time_unix_nanos, e.origin.as_str(), e.seq))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "merged by (time, origin, seq)");
    // The logs were written in turns, so a time-ordered report switches between them.
    let switches = events
        .windows(2)
        .filter(|w| w[0].origin != w[1].origin)
        .count();
    assert!(
        switches >= 7,
        "interleaved, not one log after the other: {switches}"
    );
    // Each row is the entry stored under that origin and seq.
    for e in &events {
        let stored = scene.log(&e.origin).store.entry(e.seq).expect("read");
        assert_eq!(Some(e.leaf.clone()), stored, "{} {}", e.origin, e.seq);
    }
    // The call is an entry of the hub's own log; the sidecars' logs are only read.
    let opening = scene.hub.entry(seq);
    assert!(is_audit(&opening, "SubjectReport"), "{opening:?}");
    assert_eq!(scene.custody.size(), custody_size);
    assert_eq!(scene.intel.size(), intel_size);
}

#[tokio::test]
async fn an_origin_selects_one_log_and_is_recorded_in_the_opening_entry() {
    let (scene, pki, service) = started(3).await;
    let mut client = as_alex(&pki, &service).await;

    let (seq, events, _) = subject_report(&mut client, "P-1", INTEL).await;
    assert_eq!(events.len(), 6);
    assert!(events.iter().all(|e| e.origin == INTEL), "{events:?}");
    let q = scene.hub.entry(seq).audit_query.expect("audit query");
    assert_eq!(
        q.filter_json,
        format!(r#"{{"filter":{{"origin":"{INTEL}","subject":"P-1"}}}}"#)
    );

    let (entries, _) = search_page(
        &mut client,
        Filter {
            subject: "P-1".into(),
            origin: CUSTODY.into(),
            ..Default::default()
        },
        100,
        String::new(),
    )
    .await;
    assert_eq!(entries.len(), 6);
    assert!(entries.iter().all(|e| e.origin == CUSTODY));

    // The hub's own log is addressable by its origin too (its audit trail).
    let (own, _) = search_page(
        &mut client,
        Filter {
            kind: EntryKind::AuditQuery as i32,
            origin: HUB.into(),
            ..Default::default()
        },
        100,
        String::new(),
    )
    .await;
    assert!(!own.is_empty() && own.iter().all(|e| e.origin == HUB));

    let refused = client
        .search(SearchRequest {
            context: context(),
            filter: Some(Filter {
                origin: "elsewhere.example/s62".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("an origin the hub does not hold");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains(CUSTODY), "{}", refused.message());
    assert_eq!(denied(&scene.hub, "Search", "invalid_argument"), 1);
}

#[tokio::test]
async fn pages_across_two_logs_return_every_entry_exactly_once_and_nothing_newer() {
    let (scene, pki, service) = started(7).await;
    let mut client = as_alex(&pki, &service).await;
    let filter = Filter {
        subject: "P-1".into(),
        ..Default::default()
    };

    let (all, none) = search_page(&mut client, filter.clone(), 1000, String::new()).await;
    assert!(none.is_empty());
    assert_eq!(all.len(), 28);
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let (entries, next) = search_page(&mut client, filter.clone(), 3, token).await;
        assert!(entries.len() <= 3);
        paged.extend(entries);
        pages += 1;
        assert!(pages <= 10, "28 entries, 3 a page: the pages must end");
        if pages == 1 {
            // Written after the first page: never part of this search.
            scene.interleaved(1).await;
        }
        if next.is_empty() {
            break;
        }
        token = next;
    }
    assert_eq!(pages, 10, "28 entries, 3 a page");
    let key = |e: &LoggedEntry| (e.origin.clone(), e.seq);
    assert_eq!(
        paged.iter().map(key).collect::<Vec<_>>(),
        all.iter().map(key).collect::<Vec<_>>(),
        "every entry once, in the same (time, origin, seq) order"
    );

    // A token names the logs it pages through: it is no token for a search of one log.
    let (_, token) = search_page(&mut client, filter.clone(), 3, String::new()).await;
    let refused = client
        .search(SearchRequest {
            context: context(),
            filter: Some(Filter {
                origin: CUSTODY.into(),
                ..filter
            }),
            page_size: 3,
            page_token: token,
        })
        .await
        .expect_err("a token for other logs");
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_hubs_own_log_has_the_opening_entry_before_any_result_and_the_closing_entry_after() {
    let (scene, pki, service) = started(2).await;
    let mut client = as_alex(&pki, &service).await;

    let response = client
        .search(SearchRequest {
            context: context(),
            filter: Some(Filter {
                subject: "P-1".into(),
                origin: CUSTODY.into(),
                ..Default::default()
            }),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("search accepted");
    // Headers have arrived, no result has been read: the opening entry is durable in the hub's
    // log, with the purpose, the case and the filter with its origin.
    let opened_at = audit_seq(&response);
    let opening = scene.hub.entry(opened_at);
    assert!(is_audit(&opening, "Search"), "{opening:?}");
    let q = opening.audit_query.as_ref().expect("audit query");
    assert_eq!(q.purpose, AuditPurpose::SelfMonitoring as i32);
    assert_eq!(q.case_reference, "PSD-2026-041");
    assert_eq!(
        q.filter_json,
        format!(r#"{{"filter":{{"origin":"{CUSTODY}","subject":"P-1"}},"page_size":10}}"#)
    );
    assert_eq!(opening.actor.as_ref().expect("actor").id, "psd-alex");
    let mut stream = response.into_inner();
    let mut n = 0;
    while let Some(m) = stream.message().await.expect("stream") {
        if let Some(search_response::Item::Entry(_)) = m.item {
            n += 1;
        }
    }
    assert_eq!(n, 4);
    let closing = scene
        .hub
        .wait_for("the closing entry", |e| e.answers_seq == Some(opened_at))
        .await;
    let q = closing.audit_query.expect("audit query");
    assert!(q.completed);
    assert_eq!(q.results_returned, 4);
}

#[tokio::test]
async fn refusals_at_the_hub_are_logged_as_denied_in_its_own_log() {
    let (scene, pki, service) = started(1).await;
    let mut alex = as_alex(&pki, &service).await;
    let mut stranger = service.client(Some(&pki.client("Sam Stranger", &[]))).await;

    let no_purpose = alex
        .subject_report(SubjectReportRequest {
            context: Some(CallContext {
                purpose: AuditPurpose::Unspecified as i32,
                case_reference: "PSD-1".into(),
            }),
            subject: "P-1".into(),
            ..Default::default()
        })
        .await
        .expect_err("no purpose");
    assert_eq!(no_purpose.code(), Code::InvalidArgument);
    assert_eq!(
        denied(&scene.hub, "SubjectReport", "no_purpose_or_case_reference"),
        1
    );

    // An auditor is not granted ActorReport by default.
    let not_granted = alex
        .actor_report(ActorReportRequest {
            context: context(),
            actor: "pc-1".into(),
            ..Default::default()
        })
        .await
        .expect_err("not granted");
    assert_eq!(not_granted.code(), Code::PermissionDenied);
    assert_eq!(denied(&scene.hub, "ActorReport", "role_not_allowed"), 1);

    let nobody = stranger
        .subject_report(SubjectReportRequest {
            context: context(),
            subject: "P-1".into(),
            ..Default::default()
        })
        .await
        .expect_err("not an auditor");
    assert_eq!(nobody.code(), Code::PermissionDenied);
    assert_eq!(denied(&scene.hub, "SubjectReport", "not_an_auditor"), 1);
    // Nothing was written to the sidecars' logs.
    for log in [&scene.custody, &scene.intel] {
        assert!(
            log.all()
                .iter()
                .all(|e| e.kind != EntryKind::Denied as i32
                    && e.kind != EntryKind::AuditQuery as i32)
        );
    }
}

#[tokio::test]
async fn a_single_log_call_without_origin_on_a_two_log_hub_names_the_choices() {
    let (scene, pki, service) = started(1).await;
    let mut client = as_alex(&pki, &service).await;

    let refused = client
        .latest_checkpoint(LatestCheckpointRequest {
            context: context(),
            ..Default::default()
        })
        .await
        .expect_err("which log?");
    assert_eq!(refused.code(), Code::InvalidArgument);
    for origin in [CUSTODY, INTEL] {
        assert!(refused.message().contains(origin), "{}", refused.message());
    }
    assert_eq!(
        denied(&scene.hub, "LatestCheckpoint", "invalid_argument"),
        1
    );

    let refused = client
        .get_entry(GetEntryRequest {
            context: context(),
            seq: 0,
            ..Default::default()
        })
        .await
        .expect_err("which log?");
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn an_entry_of_one_copy_proves_against_that_copys_own_signed_checkpoint() {
    let (scene, pki, service) = started(5).await;
    let mut client = as_alex(&pki, &service).await;
    let keys = |log: &TestLog| -> Vec<VerifierKey> { vec![log.key.verifier()] };

    for origin in [CUSTODY, INTEL] {
        let log = scene.log(origin);
        let seq = 3;
        let r = client
            .get_entry(GetEntryRequest {
                context: context(),
                seq,
                origin: origin.into(),
                ..Default::default()
            })
            .await
            .expect("entry")
            .into_inner();
        let le = r.entry.expect("entry");
        assert_eq!(le.origin, origin);
        assert_eq!(Some(le.leaf.clone()), log.store.entry(seq).expect("read"));
        let cp = r.checkpoint.expect("checkpoint");
        // Signed by that log's key, for that log's origin: the other's key does not open it.
        let (checkpoint, _) =
            open_checkpoint(&cp.note, &keys(log), Some(origin)).expect("signed by its log");
        let other = scene.log(if origin == CUSTODY { INTEL } else { CUSTODY });
        assert!(open_checkpoint(&cp.note, &keys(other), None).is_err());
        let proof: Vec<Hash> = r
            .inclusion_proof
            .iter()
            .map(|b| Hash::from_slice(b).expect("32 bytes"))
            .collect();
        verify_inclusion(
            &leaf_hash(&le.leaf),
            seq,
            checkpoint.size,
            &proof,
            &checkpoint.root,
        )
        .expect("the proof verifies against that log's checkpoint");

        let p = client
            .inclusion_proof(InclusionProofRequest {
                context: context(),
                seq,
                origin: origin.into(),
                ..Default::default()
            })
            .await
            .expect("proof")
            .into_inner();
        let latest = client
            .latest_checkpoint(LatestCheckpointRequest {
                context: context(),
                origin: origin.into(),
            })
            .await
            .expect("checkpoint")
            .into_inner();
        assert_eq!(latest.verifier_key, log.key.verifier().to_vkey());
        let cp = latest.checkpoint.expect("checkpoint");
        let (checkpoint, _) = open_checkpoint(&cp.note, &keys(log), Some(origin)).expect("signed");
        assert_eq!(p.tree_size, checkpoint.size);
        let proof: Vec<Hash> = p
            .proof
            .iter()
            .map(|b| Hash::from_slice(b).expect("32 bytes"))
            .collect();
        verify_inclusion(
            &Hash::from_slice(&p.leaf_hash).expect("hash"),
            seq,
            p.tree_size,
            &proof,
            &checkpoint.root,
        )
        .expect("InclusionProof verifies against that log's latest checkpoint");
    }
}

#[tokio::test]
async fn an_actor_report_through_the_hub_sums_both_logs() {
    let (_scene, pki, service) = started(6).await;
    let mut dpo = as_dpo(&pki, &service).await;
    let report = |origin: &str| ActorReportRequest {
        context: context(),
        actor: "pc-1".into(),
        origin: origin.into(),
        ..Default::default()
    };
    let both = dpo
        .actor_report(report(""))
        .await
        .expect("report")
        .into_inner();
    let one = dpo
        .actor_report(report(CUSTODY))
        .await
        .expect("report")
        .into_inner();
    // pc-1 made 2 of the 6 P-1 consultations in each log.
    assert_eq!(one.requests, 2);
    assert_eq!(both.requests, 4);
    assert_eq!(both.entries, 2 * one.entries);
    assert_eq!(both.origins, [CUSTODY, INTEL]);
    assert_eq!(one.origins, [CUSTODY]);
    let p1 = both
        .subjects
        .iter()
        .find(|s| s.subject == "P-1")
        .expect("P-1");
    assert_eq!(p1.requests, 4);
}

#[tokio::test]
async fn redaction_and_export_of_a_copy_are_refused_at_the_hub_and_alerts_are_the_hubs_own() {
    let (scene, pki, service) = started(1).await;
    // A finding of the hub's, as it writes them.
    scene
        .hub
        .writer
        .append(Entry {
            kind: EntryKind::Alert as i32,
            alert: Some(s62::log::entry::Alert {
                rule: "replication_gap".into(),
                name: CUSTODY.into(),
                sighting_seq: 9,
                related_seq: 0,
                detail: "a gap".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("alert");
    let mut dpo = as_dpo(&pki, &service).await;
    let custody_size = scene.custody.size();

    let refused = dpo
        .redact_values(RedactValuesRequest {
            context: context(),
            filter: Some(Filter {
                subject: "P-1".into(),
                origin: CUSTODY.into(),
                ..Default::default()
            }),
            reason: "correction".into(),
            ..Default::default()
        })
        .await
        .expect_err("not at the hub");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused
            .message()
            .contains("redact at the origin sidecar; the redaction entry replicates"),
        "{}",
        refused.message()
    );
    assert_eq!(denied(&scene.hub, "RedactValues", "failed_precondition"), 1);
    assert_eq!(scene.custody.size(), custody_size, "the copy is untouched");

    let refused = dpo
        .export(ExportRequest {
            context: context(),
            filter: Some(Filter {
                origin: INTEL.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("not at the hub");
    assert_eq!(refused.code(), Code::FailedPrecondition);

    let mut stream = dpo
        .list_alerts(ListAlertsRequest {
            context: context(),
            ..Default::default()
        })
        .await
        .expect("alerts")
        .into_inner();
    let mut alerts = Vec::new();
    while let Some(m) = stream.message().await.expect("stream") {
        if let Some(list_alerts_response::Item::Alert(a)) = m.item {
            alerts.push(a.alert.expect("entry"));
        }
    }
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].origin, HUB);
    let alert = alerts[0].entry.as_ref().and_then(|e| e.alert.as_ref());
    assert_eq!(alert.map(|a| a.rule.as_str()), Some("replication_gap"));
}

#[tokio::test]
async fn a_sidecar_answers_its_own_origin_and_refuses_any_other() {
    let log = TestLog::new();
    log.background(3).await;
    let pki = Pki::new();
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&pki.client("Alex Auditor", &[]))).await;

    let own = client
        .latest_checkpoint(LatestCheckpointRequest {
            context: context(),
            origin: query_harness::ORIGIN.into(),
        })
        .await
        .expect("its own origin");
    assert!(own.into_inner().checkpoint.is_some());
    let (seq, events, _) = subject_report(&mut client, "P-1", query_harness::ORIGIN).await;
    assert_eq!(events.len(), 2);
    assert!(
        events.iter().all(|e| e.origin.is_empty()),
        "a sidecar's results name no origin, as before"
    );
    assert!(is_audit(&log.entry(seq), "SubjectReport"));

    let refused = client
        .latest_checkpoint(LatestCheckpointRequest {
            context: context(),
            origin: CUSTODY.into(),
        })
        .await
        .expect_err("another log");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains(query_harness::ORIGIN),
        "{}",
        refused.message()
    );
    assert_eq!(denied(&log, "LatestCheckpoint", "invalid_argument"), 1);
}

//! Subject access report for one person, for a day of activity written the way the proxy writes
//! it: a search that returned them among others, a view, an alteration, a disclosure to the CPS,
//! a refused request, an erasure — amid other people's traffic.

mod query_harness;

use query_harness::{Exchange, InMemory, Pki, TestLog, context, officer};
use s62::log::entry::{Denial, Entry, EntryKind, Justification, Operation};
use s62::log::store::LogStore;
use s62::query::pb::{SubjectEvent, SubjectReportRequest, subject_report_response};

#[tokio::test]
async fn a_subject_access_report_shows_every_operation_on_the_person_in_time_order() {
    let log = TestLog::new();
    log.background(20).await;

    // 1. A name search: asked for nobody by id, returned P-100 among others.
    let (search, search_out) = log
        .exchange(Exchange {
            actor: "pc-11",
            path: "/people?name=smith",
            route: "people.search",
            why: "identify suspect in burglary",
            case: "OP-77",
            returned: &["P-100", "P-101", "P-102"],
            ..Exchange::default()
        })
        .await;
    log.background(3).await;
    // 2. Viewing the record.
    let (view, view_out) = log
        .exchange(Exchange {
            actor: "pc-11",
            path: "/people/P-100",
            why: "check address history",
            case: "OP-77",
            asked: &["P-100"],
            records: &["R-5"],
            returned: &["P-100"],
            ..Exchange::default()
        })
        .await;
    // 3. An alteration by someone else.
    let (alter, _) = log
        .exchange(Exchange {
            actor: "dc-4",
            operation: Operation::Alteration,
            method: "PATCH",
            path: "/people/P-100",
            route: "people.update",
            why: "correct date of birth",
            case: "DQ-3",
            asked: &["P-100"],
            ..Exchange::default()
        })
        .await;
    log.background(2).await;
    // 4. A disclosure to the Crown Prosecution Service.
    let (disclose, _) = log
        .exchange(Exchange {
            actor: "dc-4",
            operation: Operation::Disclosure,
            method: "POST",
            path: "/disclosures",
            route: "disclosure.send",
            why: "file for charging decision",
            case: "OP-77",
            asked: &["P-100"],
            recipients: &["cps.gov.uk"],
            ..Exchange::default()
        })
        .await;
    // 5. A refused request (no justification given).
    let denied = log
        .writer
        .append(Entry {
            kind: EntryKind::Denied as i32,
            operation: Operation::Consultation as i32,
            actor: Some(officer("pcso-9")),
            subject_ids: vec!["P-100".into()],
            denial: Some(Denial {
                reason: "no_justification".into(),
                detail: String::new(),
            }),
            ..Default::default()
        })
        .await
        .expect("denied")
        .seq;
    // 6. Erasure at the end of retention.
    let (erase, _) = log
        .exchange(Exchange {
            actor: "records-officer",
            operation: Operation::Erasure,
            method: "DELETE",
            path: "/people/P-100",
            route: "people.delete",
            why: "retention period ended (MoPI review)",
            case: "RR-2026-5",
            asked: &["P-100"],
            ..Exchange::default()
        })
        .await;
    log.background(2).await;

    let pki = Pki::new();
    let dpo = pki.client("Data Protection Officer", &["dpo@example.police.uk"]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&dpo)).await;
    let mut stream = client
        .subject_report(SubjectReportRequest {
            context: context(),
            subject: "P-100".into(),
            ..Default::default()
        })
        .await
        .expect("report")
        .into_inner();
    let mut events: Vec<SubjectEvent> = Vec::new();
    let mut summary = None;
    while let Some(m) = stream.message().await.expect("stream") {
        match m.item {
            Some(subject_report_response::Item::Event(e)) => events.push(e),
            Some(subject_report_response::Item::Summary(s)) => summary = Some(s),
            None => {}
        }
    }

    // Every entry naming P-100, and nothing else, in order: the search's outcome (the intent
    // named nobody), the view's intent and outcome, the alteration's intent and outcome (its
    // outcome returned nobody, so only the intent), the disclosure intent, the denial, the erasure.
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        [search_out, view, view_out, alter, disclose, denied, erase],
        "search intent {search} named nobody"
    );
    assert!(
        events
            .windows(2)
            .all(|w| w[0].time_unix_nanos <= w[1].time_unix_nanos)
    );

    let who = |e: &SubjectEvent| e.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default();
    let why = |e: &SubjectEvent| {
        e.justification
            .clone()
            .map(|j: Justification| (j.text, j.case_reference))
            .unwrap_or_default()
    };

    // Returned by a search they were not named in: who searched, and why, from the intent.
    let found = &events[0];
    assert!(found.returned && !found.asked);
    assert_eq!(who(found), "pc-11");
    assert_eq!(found.operation, Operation::Consultation as i32);
    assert_eq!(
        why(found),
        ("identify suspect in burglary".into(), "OP-77".into())
    );
    assert_eq!(found.justification_seq, search);
    assert_eq!(found.route, "people.search");

    let altered = &events[3];
    assert_eq!(altered.operation, Operation::Alteration as i32);
    assert_eq!(who(altered), "dc-4");
    assert_eq!(why(altered).0, "correct date of birth");

    let disclosed = &events[4];
    assert_eq!(disclosed.operation, Operation::Disclosure as i32);
    assert_eq!(disclosed.recipients, ["cps.gov.uk"]);
    assert_eq!(why(disclosed).0, "file for charging decision");

    assert_eq!(events[5].denial_reason, "no_justification");
    assert_eq!(who(&events[5]), "pcso-9");

    let erased = &events[6];
    assert_eq!(erased.operation, Operation::Erasure as i32);
    assert_eq!(who(erased), "records-officer");
    assert_eq!(erased.method, "DELETE");

    // Each row carries the exact stored bytes it was drawn from.
    for e in &events {
        let stored = log.store.entry(e.seq).expect("read").expect("present");
        assert_eq!(e.leaf, stored);
    }
    let s = summary.expect("a summary ends the report");
    assert_eq!(s.events, 7);
    assert_eq!(
        s.actors,
        ["dc-4", "pc-11", "pcso-9", "records-officer"],
        "everyone who touched the data"
    );
    assert_eq!(s.recipients, ["cps.gov.uk"]);
    let count = |op: Operation| {
        s.by_operation
            .iter()
            .find(|c| c.operation == op as i32)
            .map_or(0, |c| c.count)
    };
    assert_eq!(count(Operation::Consultation), 4);
    assert_eq!(count(Operation::Alteration), 1);
    assert_eq!(count(Operation::Disclosure), 1);
    assert_eq!(count(Operation::Erasure), 1);

    // The report itself is in the log with its purpose.
    let opened = log
        .wait_for("the report's audit entry", |e| {
            e.audit_query
                .as_ref()
                .is_some_and(|q| q.call == "SubjectReport" && q.completed)
        })
        .await;
    assert_eq!(opened.audit_query.expect("q").results_returned, 7);
}

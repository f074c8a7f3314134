//! Scenarios for the request path: a real records service over TCP, s62 in front of it, requests
//! from an officer through a trusted gateway, and assertions on what the log holds and on what
//! reached the records system.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use proxy_support::*;
use s62::log::entry::{AuthMethod, Entry, EntryKind, Operation};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn intent_and_outcome(entries: &[Entry], request_id: &str) -> (Entry, Entry) {
    let of = |kind: EntryKind| {
        entries
            .iter()
            .find(|e| {
                e.kind == kind as i32
                    && e.request
                        .as_ref()
                        .is_some_and(|r| r.request_id == request_id)
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {kind:?} entry for request {request_id}"))
    };
    let intent = of(EntryKind::Intent);
    let outcome = of(EntryKind::Outcome);
    assert_eq!(
        outcome.answers_seq,
        Some(intent.seq),
        "the outcome answers its intent"
    );
    assert!(outcome.seq > intent.seq);
    (intent, outcome)
}

fn request_id(r: &Reply) -> String {
    r.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_logged_with_who_why_what_and_to_whom() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;

    // Consultation: an officer views a person, giving a justification.
    let view = send("GET", &sidecar.url("/people/P-1001"), None, JUSTIFIED).await;
    assert_eq!(view.status, 200);
    assert_eq!(view.json()["family_name"], "Whitcombe");

    // Consultation by search: the log records which people came back, not only what was asked.
    let search = send(
        "GET",
        &sidecar.url("/people?surname=whitcombe"),
        None,
        JUSTIFIED,
    )
    .await;
    assert_eq!(search.status, 200);
    let event = send("GET", &sidecar.url("/events/E-4001"), None, JUSTIFIED).await;
    assert_eq!(event.status, 200);

    // Collection: a new person, then an event naming them (no justification needed by default).
    let created = send(
        "POST",
        &sidecar.url("/people"),
        Some(json!({"given_name": "Ruth", "family_name": "Okafor", "date_of_birth": "1994-05-12"})),
        &[],
    )
    .await;
    assert_eq!(created.status, 201);
    let new_id = created.json()["id"].as_str().expect("id").to_owned();
    let new_event = send(
        "POST",
        &sidecar.url("/events"),
        Some(json!({"category": "assault", "occurred_at": "2026-11-20T23:10:00Z", "people": [{"id": new_id, "role": "victim"}]})),
        &[],
    )
    .await;
    assert_eq!(new_event.status, 201);
    let event_id = new_event.json()["id"].as_str().expect("id").to_owned();

    // Alteration.
    let altered = send(
        "PATCH",
        &sidecar.url(&format!("/people/{new_id}")),
        Some(json!({"note": "moved"})),
        &[],
    )
    .await;
    assert_eq!(altered.status, 200);

    // Combination: linking two people over an event (justified: the example requires it).
    let linked = send(
        "PUT",
        &sidecar.url(&format!("/people/{new_id}/links/P-1008")),
        Some(json!({"relation": "witness", "event_id": "E-4004"})),
        JUSTIFIED,
    )
    .await;
    assert_eq!(linked.status, 201);

    // Disclosure to a named recipient.
    let export = send(
        "POST",
        &sidecar.url("/exports"),
        Some(json!({"recipient": "Crown Prosecution Service (Wessex)", "people": [{"id": "P-1001"}, {"id": "P-1003"}]})),
        JUSTIFIED,
    )
    .await;
    assert_eq!(export.status, 200);

    // Erasure (the example requires a justification for it).
    let erased = send(
        "DELETE",
        &sidecar.url(&format!("/people/{new_id}")),
        None,
        JUSTIFIED,
    )
    .await;
    assert_eq!(erased.status, 200);

    let store = sidecar.stop().await;
    let entries = store.entries();
    assert_eq!(
        entries.len(),
        18,
        "an intent and an outcome for each of 9 requests"
    );

    let (i, o) = intent_and_outcome(&entries, &request_id(&view));
    assert_eq!(i.operation, Operation::Consultation as i32);
    let actor = i.actor.as_ref().expect("actor");
    assert_eq!(actor.id, "pc-4021");
    assert_eq!(actor.display_name, "PC 4021 Sam Patel");
    assert_eq!(actor.roles, ["officer", "response"]);
    assert_eq!(actor.auth_method, AuthMethod::TrustedHeader as i32);
    assert!(actor.source_address.starts_with("127.0.0.1:"));
    let j = i.justification.as_ref().expect("justification");
    assert_eq!(j.purpose_code, "investigation");
    assert_eq!(j.text, "Enquiries into burglary at Marsh Lane");
    assert_eq!(j.case_reference, "44260103-0112");
    assert_eq!(i.subject_ids, ["P-1001"]);
    let req = i.request.as_ref().expect("request");
    assert_eq!(
        (req.method.as_str(), req.path.as_str(), req.route.as_str()),
        ("GET", "/people/P-1001", "person-read")
    );
    assert_eq!(
        req.request_id,
        request_id(&view),
        "the request id returned is the one logged"
    );
    let out = o.outcome.as_ref().expect("outcome");
    assert_eq!(out.status, 200);
    assert_eq!(
        out.response_sha256,
        Sha256::digest(&view.body).to_vec(),
        "the digest is of the bytes released"
    );
    assert_eq!(out.response_bytes, view.body.len() as u64);
    assert!(!out.streamed);
    assert_eq!(o.actor.as_ref().expect("actor").id, "pc-4021");

    let (_, o) = intent_and_outcome(&entries, &request_id(&search));
    assert_eq!(
        o.outcome.as_ref().expect("outcome").returned_subject_ids,
        ["P-1001", "P-1010", "P-1011"],
        "the people the officer was shown"
    );
    let (i, o) = intent_and_outcome(&entries, &request_id(&event));
    assert_eq!(i.record_ids, ["E-4001"]);
    assert_eq!(
        o.outcome.as_ref().expect("outcome").returned_subject_ids,
        ["P-1001", "P-1003"]
    );

    let (i, o) = intent_and_outcome(&entries, &request_id(&created));
    assert_eq!(i.operation, Operation::Collection as i32);
    assert!(i.justification.is_none());
    let body = i.request.as_ref().expect("request");
    assert_eq!(body.body_sha256.len(), 32, "the request body is digested");
    assert!(body.body_bytes > 0);
    assert_eq!(
        o.outcome.as_ref().expect("outcome").returned_subject_ids,
        [new_id.as_str()],
        "the new person's id"
    );

    let (i, o) = intent_and_outcome(&entries, &request_id(&new_event));
    assert_eq!(
        i.subject_ids,
        [new_id.as_str()],
        "read from the JSON request body"
    );
    assert_eq!(
        o.outcome.as_ref().expect("outcome").returned_record_ids,
        [event_id]
    );

    let (i, _) = intent_and_outcome(&entries, &request_id(&altered));
    assert_eq!(i.operation, Operation::Alteration as i32);
    assert_eq!(i.subject_ids, [new_id.as_str()]);

    let (i, _) = intent_and_outcome(&entries, &request_id(&linked));
    assert_eq!(i.operation, Operation::Combination as i32);
    assert_eq!(i.subject_ids, [new_id.clone(), "P-1008".to_owned()]);
    assert_eq!(i.record_ids, ["E-4004"]);

    let (i, o) = intent_and_outcome(&entries, &request_id(&export));
    assert_eq!(i.operation, Operation::Disclosure as i32);
    assert_eq!(i.recipients, ["Crown Prosecution Service (Wessex)"]);
    assert_eq!(i.subject_ids, ["P-1001", "P-1003"]);
    assert_eq!(
        o.outcome.as_ref().expect("outcome").returned_record_ids,
        ["X-0001"]
    );

    let (i, o) = intent_and_outcome(&entries, &request_id(&erased));
    assert_eq!(i.operation, Operation::Erasure as i32);
    assert_eq!(i.subject_ids, [new_id.as_str()]);
    assert_eq!(o.outcome.as_ref().expect("outcome").status, 200);

    assert_eq!(upstream.hits(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_reaches_the_records_system_when_the_log_cannot_write() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    sidecar.store.set_failing(true);

    let view = send("GET", &sidecar.url("/people/P-1001"), None, JUSTIFIED).await;
    assert_eq!(view.status, 503);
    assert_eq!(view.headers["content-type"], "application/problem+json");
    assert_eq!(view.json()["type"], "urn:s62:problem:log_unavailable");
    assert!(!String::from_utf8_lossy(&view.body).contains("Whitcombe"));

    let erase = send("DELETE", &sidecar.url("/people/P-1002"), None, &[]).await;
    assert_eq!(erase.status, 503);
    // A denial that cannot be logged is also refused with 503, not with its own status.
    let unjustified = send("GET", &sidecar.url("/people/P-1001"), None, &[]).await;
    assert_eq!(unjustified.status, 503);

    assert_eq!(upstream.hits(), 0, "the upstream saw nothing");
    assert!(
        upstream.records.view("P-1002").is_some(),
        "nothing was erased"
    );

    // Once the disk recovers, requests flow again.
    sidecar.store.set_failing(false);
    let view = send("GET", &sidecar.url("/people/P-1001"), None, JUSTIFIED).await;
    assert_eq!(view.status, 200);
    assert_eq!(upstream.hits(), 1);
    let store = sidecar.stop().await;
    assert_eq!(
        store.entries().len(),
        2,
        "only the request that was forwarded is in the log"
    );
}

/// Reads whatever arrives on `sock` within `wait`.
async fn read_for(sock: &mut TcpStream, wait: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_byte_is_released_before_its_outcome_is_durable() {
    let upstream = Upstream::start().await;
    let store = TestStore::new();
    let sidecar = Sidecar::start_on(settings(&config(), upstream.addr), store.clone()).await;
    store.hold_after(1); // the intent's commit passes; the outcome's commit waits

    let mut sock = TcpStream::connect(sidecar.addr).await.expect("connect");
    sock.write_all(
        b"GET /people/P-1001 HTTP/1.1\r\nHost: records\r\nx-s62-user: pc-4021\r\n\
          x-s62-purpose: investigation\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("send");
    wait_until("the upstream has answered", || upstream.hits() == 1).await;
    let early = read_for(&mut sock, Duration::from_millis(400)).await;
    assert!(
        early.is_empty(),
        "the client saw {} bytes before the outcome was durable",
        early.len()
    );
    assert_eq!(store.of_kind(EntryKind::Outcome).len(), 0);

    store.release();
    let reply = read_for(&mut sock, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Whitcombe"));
    assert_eq!(
        store.of_kind(EntryKind::Outcome).len(),
        1,
        "released only once its outcome was written"
    );
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_whose_outcome_cannot_be_written_is_withheld() {
    let upstream = Upstream::start().await;
    let store = TestStore::new();
    let sidecar = Sidecar::start_on(settings(&config(), upstream.addr), store.clone()).await;
    store.hold_after(1);
    let url = sidecar.url("/people/P-1001");
    let pending = tokio::spawn(async move { send("GET", &url, None, JUSTIFIED).await });
    wait_until("the upstream has answered", || upstream.hits() == 1).await;
    store.set_failing(true);
    store.release();
    let reply = pending.await.expect("task");
    assert_eq!(reply.status, 503);
    assert!(
        !String::from_utf8_lossy(&reply.body).contains("Whitcombe"),
        "the record was not released"
    );
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_answered_with_problems_and_logged_as_denied() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;

    // No justification for a consultation.
    let r = send("GET", &sidecar.url("/people/P-1001"), None, &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    let p = r.json();
    assert_eq!(p["type"], "urn:s62:problem:no_justification");
    assert_eq!(p["title"], "Justification required");
    assert_eq!(p["status"], 403);
    assert_eq!(p["header"], "x-s62-purpose");
    assert!(
        p["detail"]
            .as_str()
            .expect("detail")
            .contains("x-s62-purpose")
    );
    let no_justification = request_id(&r);

    // A route no rule covers, under strict routing.
    let r = send(
        "GET",
        &sidecar.url("/internal/admin/users"),
        None,
        JUSTIFIED,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["type"], "urn:s62:problem:unmatched_route");
    let unmatched = request_id(&r);

    // No identity at all.
    let r = client()
        .request(
            http::Request::get(sidecar.url("/people/P-1001"))
                .header("x-s62-purpose", "investigation")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(r.status(), 401);

    assert_eq!(upstream.hits(), 0, "no refused request was forwarded");
    let store = sidecar.stop().await;
    let denied = store.of_kind(EntryKind::Denied);
    assert_eq!(denied.len(), 3);
    let find = |id: &str| {
        denied
            .iter()
            .find(|e| e.request.as_ref().is_some_and(|r| r.request_id == id))
            .expect("denial")
    };
    let d = find(&no_justification);
    assert_eq!(
        d.denial.as_ref().expect("denial").reason,
        "no_justification"
    );
    assert_eq!(d.operation, Operation::Consultation as i32);
    assert_eq!(
        d.subject_ids,
        ["P-1001"],
        "whose data was asked for is on record"
    );
    assert_eq!(d.actor.as_ref().expect("actor").id, "pc-4021");
    assert_eq!(
        find(&unmatched).denial.as_ref().expect("denial").reason,
        "unmatched_route"
    );
    let anonymous = denied
        .iter()
        .find(|e| e.denial.as_ref().is_some_and(|d| d.reason == "no_identity"))
        .expect("401 logged");
    assert_eq!(
        anonymous.actor.as_ref().expect("actor").auth_method,
        AuthMethod::None as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_slow_records_system_is_502_or_504_and_recorded() {
    // Unreachable: a port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let sidecar = Sidecar::start(settings(&config(), dead)).await;
    let r = send("GET", &sidecar.url("/people/P-1001"), None, JUSTIFIED).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["type"], "urn:s62:problem:upstream_unreachable");
    let store = sidecar.stop().await;
    let (_, o) = intent_and_outcome(&store.entries(), &request_id(&r));
    let out = o.outcome.as_ref().expect("outcome");
    assert_eq!(
        (out.status, out.error.as_str()),
        (502, "upstream_unreachable")
    );

    // Slow: the upstream answers after the response timeout.
    let upstream = Upstream::start().await;
    *upstream.delay.lock().expect("lock") = Duration::from_millis(1500);
    let mut cfg = config();
    cfg.upstream.response_timeout = Duration::from_millis(300);
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let r = send("GET", &sidecar.url("/people/P-1001"), None, JUSTIFIED).await;
    assert_eq!(r.status, 504);
    let store = sidecar.stop().await;
    let (_, o) = intent_and_outcome(&store.entries(), &request_id(&r));
    let out = o.outcome.as_ref().expect("outcome");
    assert_eq!((out.status, out.error.as_str()), (504, "upstream_timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_response_streams_after_its_intent_and_its_outcome_follows() {
    let upstream =
        Upstream::start_with(s62::records::Records::demo(), Some(("/health", 200_000))).await;
    let mut cfg = config();
    cfg.limits.max_buffered_response_bytes = 4096;
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    // /health reads no returned ids, so a response too large to hold streams.
    let r = send("GET", &sidecar.url("/health"), None, JUSTIFIED).await;
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 200_000);
    let store = sidecar.stop().await;
    let (_, o) = intent_and_outcome(&store.entries(), &request_id(&r));
    let out = o.outcome.as_ref().expect("outcome");
    assert!(out.streamed);
    assert_eq!(out.error, "");
    assert_eq!(out.response_bytes, r.body.len() as u64);
    assert_eq!(out.response_sha256, Sha256::digest(&r.body).to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_is_recorded() {
    let upstream =
        Upstream::start_with(s62::records::Records::demo(), Some(("/health", 64 << 20))).await;
    let mut cfg = config();
    cfg.limits.max_buffered_response_bytes = 4096;
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let mut sock = TcpStream::connect(sidecar.addr).await.expect("connect");
    sock.write_all(
        b"GET /health HTTP/1.1\r\nHost: records\r\nx-s62-user: pc-4021\r\nx-s62-purpose: investigation\r\n\r\n",
    )
    .await
    .expect("send");
    let mut first = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut first))
        .await
        .expect("head in time")
        .expect("read");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(sock); // the officer closes the window mid-download
    wait_until("the outcome is logged", || {
        !sidecar.store.of_kind(EntryKind::Outcome).is_empty()
    })
    .await;
    let store = sidecar.stop().await;
    let o = &store.of_kind(EntryKind::Outcome)[0];
    let out = o.outcome.as_ref().expect("outcome");
    assert!(out.streamed);
    assert_eq!(out.error, "client_disconnected");
    assert!(out.response_bytes < 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_streams_its_responses_logs_a_streamed_outcome() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let r = send("GET", &sidecar.url("/events/bulk/2026-10"), None, JUSTIFIED).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["events"].as_array().map(Vec::len), Some(3));
    let store = sidecar.stop().await;
    let (i, o) = intent_and_outcome(&store.entries(), &request_id(&r));
    assert_eq!(
        i.request.as_ref().expect("request").route,
        "event-bulk-download"
    );
    let out = o.outcome.as_ref().expect("outcome");
    assert!(out.streamed);
    assert_eq!(out.response_bytes, r.body.len() as u64);
    assert_eq!(out.response_sha256, Sha256::digest(&r.body).to_vec());
}

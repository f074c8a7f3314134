//! Issue 9, tried as an officer with curl would: each scenario first states the attack, sends it
//! through s62 to the records service (or to the lenient second upstream that obeys overrides,
//! `;` and suffixes the way Spring and Express do), and then asserts that the log tells the truth
//! or that the request was refused, logged as denied, and never reached the records system.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use proxy_support::*;
use s62::ingest::WriterConfig;
use s62::log::entry::{Entry, EntryKind};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v = JUSTIFIED.to_vec();
    v.extend_from_slice(extra);
    v
}

fn one(store: &TestStore, kind: EntryKind, r: &Reply) -> Entry {
    let found = for_request(store, kind, &reply_id(r));
    assert_eq!(
        found.len(),
        1,
        "one {kind:?} entry for the request: {found:?}"
    );
    found.into_iter().next().expect("one")
}

fn denial_reason(store: &TestStore, r: &Reply) -> String {
    one(store, EntryKind::Denied, r)
        .denial
        .expect("denial")
        .reason
}

const EXPORT_TO_THE_PRESS: &[u8] = br#"{"recipient":"Daily Mail","people":[{"id":"P-1001"}]}"#;

// ---- 1. Body sources whatever the Content-Type -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_body_is_not_labelled_json_is_logged_with_its_real_recipient_and_subjects()
{
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let header = with(&[("x-recipient", "Crown Prosecution Service")]);
    // Attack: no Content-Type, then text/plain; the records service reads the body anyway.
    let unlabelled = send_bytes(
        "POST",
        &sidecar.url("/exports"),
        None,
        EXPORT_TO_THE_PRESS,
        &header,
    )
    .await;
    let plain = send_bytes(
        "POST",
        &sidecar.url("/exports"),
        Some("text/plain"),
        EXPORT_TO_THE_PRESS,
        &header,
    )
    .await;
    // A body that is not JSON at all cannot be read for ids: refused before it moves.
    let form = send_bytes(
        "POST",
        &sidecar.url("/exports"),
        Some("application/x-www-form-urlencoded"),
        b"recipient=Daily+Mail&people=P-1001",
        &header,
    )
    .await;
    let garbage = send_bytes(
        "POST",
        &sidecar.url("/exports"),
        None,
        b"{\"recipient\": ",
        &header,
    )
    .await;
    let store = sidecar.stop().await;
    for r in [&unlabelled, &plain] {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["recipient"], "Daily Mail", "what really happened");
        let intent = one(&store, EntryKind::Intent, r);
        assert!(
            intent.recipients.iter().any(|x| x == "Daily Mail"),
            "the log names the recipient the records system used: {:?}",
            intent.recipients
        );
        assert_eq!(intent.subject_ids, ["P-1001"]);
    }
    assert_eq!(form.status, 415, "{}", String::from_utf8_lossy(&form.body));
    assert_eq!(
        form.headers["content-type"], "application/problem+json",
        "a problem document"
    );
    assert_eq!(denial_reason(&store, &form), "unsupported_body");
    assert_eq!(garbage.status, 400);
    assert_eq!(denial_reason(&store, &garbage), "invalid_json_body");
    assert_eq!(
        upstream.hits(),
        2,
        "only the two readable exports were forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_case_variant_keys_are_refused_because_parsers_disagree_on_them() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let mut replies = Vec::new();
    for body in [
        // Some parsers keep the first value, some the last.
        &br#"{"recipient":"Crown Prosecution Service","recipient":"Daily Mail","people":[{"id":"P-1001"}]}"#[..],
        br#"{"recipient":"Crown Prosecution Service","people":[{"id":"P-1003","id":"P-1001"}]}"#,
        // Case-insensitive binders (Jackson's ACCEPT_CASE_INSENSITIVE_PROPERTIES, .NET) read this.
        br#"{"Recipient":"Daily Mail","recipient":"Crown Prosecution Service","people":[{"id":"P-1001"}]}"#,
        br#"{"recipient":"Crown Prosecution Service","People":[{"id":"P-1001"}]}"#,
    ] {
        replies.push(
            send_bytes(
                "POST",
                &sidecar.url("/exports"),
                Some("application/json"),
                body,
                JUSTIFIED,
            )
            .await,
        );
    }
    let store = sidecar.stop().await;
    for r in &replies {
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(denial_reason(&store, r), "ambiguous_json");
    }
    assert_eq!(upstream.hits(), 0);
}

// ---- 2. What was returned ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_reads_returned_ids_asks_for_the_whole_uncompressed_response() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let r = send(
        "GET",
        &sidecar.url("/people/P-1001"),
        None,
        &with(&[
            ("accept-encoding", "gzip, br"),
            ("range", "bytes=0-20"),
            ("if-range", "\"x\""),
        ]),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = upstream
        .last_headers
        .lock()
        .unwrap()
        .clone()
        .expect("headers");
    assert_eq!(seen["accept-encoding"], "identity");
    assert!(!seen.contains_key("range") && !seen.contains_key("if-range"));
    let store = sidecar.stop().await;
    let o = one(&store, EntryKind::Outcome, &r);
    assert_eq!(o.outcome.expect("outcome").returned_subject_ids, ["P-1001"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_whose_returned_ids_cannot_be_read_is_withheld_with_502_and_recorded() {
    let upstream = Upstream::start_tweaked(
        s62::records::Records::demo(),
        Tweaks {
            canned: Some((
                "/people/P-1001",
                "text/html",
                None,
                b"<p>Alice Whitcombe, P-1001, 14 Marsh Lane</p>",
            )),
            big: Some(("/events/E-4001", 200_000)),
            ..Tweaks::default()
        },
    )
    .await;
    let compressed = Upstream::start_tweaked(
        s62::records::Records::demo(),
        Tweaks {
            canned: Some((
                "/people/P-1003",
                "application/json",
                Some("gzip"),
                b"\x1f\x8b\x08\x00not really",
            )),
            ..Tweaks::default()
        },
    )
    .await;
    let mut cfg = config();
    cfg.limits.max_buffered_response_bytes = 4096;
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    let other = Sidecar::start(settings(&cfg, compressed.addr)).await;
    let not_json = send("GET", &sidecar.url("/people/P-1001"), None, JUSTIFIED).await;
    let too_large = send("GET", &sidecar.url("/events/E-4001"), None, JUSTIFIED).await;
    let gzip = send("GET", &other.url("/people/P-1003"), None, JUSTIFIED).await;
    let store = sidecar.stop().await;
    let other_store = other.stop().await;
    for (r, store) in [
        (&not_json, &store),
        (&too_large, &store),
        (&gzip, &other_store),
    ] {
        assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
        assert!(
            !String::from_utf8_lossy(&r.body).contains("P-1001"),
            "nothing of the response was released"
        );
        let o = one(store, EntryKind::Outcome, r).outcome.expect("outcome");
        assert_eq!(o.status, 502);
        assert_eq!(o.error, "response_unextractable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_outcome_is_written_even_if_the_client_leaves_while_the_log_is_busy() {
    const SIZE: usize = 32 << 20;
    let upstream =
        Upstream::start_with(s62::records::Records::demo(), Some(("/health", SIZE))).await;
    let mut cfg = config();
    cfg.limits.max_buffered_response_bytes = 4096;
    let mut writer = WriterConfig::new(ORIGIN);
    writer.queue_capacity = 1;
    writer.max_batch = 1;
    writer.queue_wait = Duration::from_secs(30);
    let sidecar =
        Sidecar::start_with_writer(settings(&cfg, upstream.addr), TestStore::new(), writer).await;

    // The download's intent is written; then the log stalls (a slow disk).
    sidecar.store.hold_after(1);
    let mut sock = TcpStream::connect(sidecar.addr).await.expect("connect");
    sock.write_all(b"GET /health HTTP/1.1\r\nHost: r\r\nx-s62-user: pc-4021\r\n\r\n")
        .await
        .expect("send");
    let mut buf = vec![0u8; 1 << 16];
    let n = sock.read(&mut buf).await.expect("head");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Two refusals fill the stalled writer and its one-slot queue.
    let refusal = |url: String| tokio::spawn(async move { send_headers("GET", &url, &[]).await });
    let c1 = refusal(sidecar.url("/health"));
    let c2 = refusal(sidecar.url("/health"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The officer reads on; the final chunk waits for the outcome, which waits for room.
    let mut got = n;
    loop {
        match tokio::time::timeout(Duration::from_millis(500), sock.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => panic!("read: {e}"),
        }
    }
    assert!(
        got > SIZE / 2 && got < SIZE,
        "all but the end arrived: {got}"
    );
    drop(sock); // the officer closes the window before the end
    tokio::time::sleep(Duration::from_millis(500)).await;
    sidecar.store.release();
    let _ = (c1.await, c2.await);
    eventually("the streamed outcome is logged", || {
        !sidecar.store.of_kind(EntryKind::Outcome).is_empty()
    })
    .await;
    let store = sidecar.stop().await;
    let o = store.of_kind(EntryKind::Outcome)[0]
        .outcome
        .clone()
        .expect("outcome");
    assert!(o.streamed);
    assert!(o.response_bytes as usize >= got - n);
}

// ---- 3. Method and path rewriting ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_override_and_url_rewrite_headers_are_refused_before_a_lenient_upstream_obeys_them()
{
    let upstream = Upstream::start_lenient().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let mut replies = Vec::new();
    // Logged as a health check (no justification, no ids); served as a search of everyone.
    for h in [
        ("x-original-url", "/people?surname=whitcombe"),
        ("x-rewrite-url", "/people?surname=whitcombe"),
        ("X_Original_URL", "/people?surname=whitcombe"),
    ] {
        replies.push(send("GET", &sidecar.url("/health"), None, &[h]).await);
    }
    // Logged as a collection (person-create, no justification needed); served as an erasure.
    for h in [
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("x-method-override", "DELETE"),
    ] {
        replies.push(
            send_bytes(
                "POST",
                &sidecar.url("/objects/O-2001"),
                Some("application/json"),
                b"{}",
                &[h],
            )
            .await,
        );
    }
    replies.push(
        send(
            "POST",
            &sidecar.url("/objects/O-2001?_method=DELETE"),
            None,
            &[],
        )
        .await,
    );
    replies.push(
        send(
            "POST",
            &sidecar.url("/objects/O-2001?_%6Dethod=DELETE"),
            None,
            &[],
        )
        .await,
    );
    let store = sidecar.stop().await;
    for r in &replies {
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(denial_reason(&store, r), "rewrite_refused");
    }
    assert_eq!(upstream.hits(), 0, "nothing reached the records system");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_parameters_and_suffixes_cannot_disguise_the_record_or_the_route() {
    let upstream = Upstream::start_lenient().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let mut replies = Vec::new();
    for target in [
        // Tomcat/Spring: logged as an object alteration, served as an export.
        "/objects/..;/exports",
        "/objects/O-2001;/..;/..;/exports",
        // Logged with "P-1001;x=1" or "P-1001.json" as the subject; served as P-1001.
        "/people/P-1001;x=1",
        "/people/P-1001%3Bx=1",
        "/people/P-1001.json",
    ] {
        let method = if target.contains("exports") {
            "POST"
        } else {
            "GET"
        };
        let body = br#"{"recipient":"Daily Mail","people":[{"id":"P-1001"}]}"#;
        replies.push((
            target,
            send_bytes(
                method,
                &sidecar.url(target),
                Some("application/json"),
                body,
                JUSTIFIED,
            )
            .await,
        ));
    }
    let store = sidecar.stop().await;
    for (target, r) in &replies {
        assert_eq!(
            r.status,
            400,
            "{target}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let reason = denial_reason(&store, r);
        assert!(
            reason == "path_parameters" || reason == "param_rejected",
            "{target}: {reason}"
        );
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_query_key_is_not_logged_as_the_search_an_upstream_that_ignores_it_did_not_do() {
    let upstream = Upstream::start_lenient().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    // The lenient upstream does not decode keys: it sees no surname filter and returns everyone.
    let r = send(
        "GET",
        &sidecar.url("/people?%73urname=Whitcombe"),
        None,
        JUSTIFIED,
    )
    .await;
    assert_eq!(r.status, 200);
    let everyone = r.json()["results"].as_array().expect("results").len();
    assert!(everyone > 1, "the upstream returned everyone");
    let store = sidecar.stop().await;
    let intent = one(&store, EntryKind::Intent, &r);
    assert!(
        intent.record_ids.is_empty(),
        "no search for Whitcombe is claimed: {:?}",
        intent.record_ids
    );
    assert_eq!(
        intent.request.expect("request").path,
        "/people?%73urname=Whitcombe",
        "the target is logged as sent"
    );
    let o = one(&store, EntryKind::Outcome, &r)
        .outcome
        .expect("outcome");
    assert_eq!(
        o.returned_subject_ids.len(),
        everyone,
        "everyone returned is logged"
    );
}

// ---- 4. Identity ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_identity_header_is_refused() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    // The first value would be logged while the records system may act on the second.
    let twice = send(
        "GET",
        &sidecar.url("/people/P-1001"),
        None,
        &with(&[("x-s62-user", "ch-supt-0001")]),
    )
    .await;
    let spelled = send(
        "GET",
        &sidecar.url("/people/P-1001"),
        None,
        &with(&[("x_s62_user", "ch-supt-0001")]),
    )
    .await;
    let store = sidecar.stop().await;
    for r in [&twice, &spelled] {
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(denial_reason(&store, r), "ambiguous_identity");
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_in_any_spelling_do_not_reach_the_upstream_from_an_untrusted_peer() {
    let upstream = Upstream::start().await;
    let mut cfg = config();
    cfg.identity.trusted_peers = vec!["10.20.0.0/16".parse().expect("cidr")];
    cfg.identity.required = false;
    let sidecar = Sidecar::start(settings(&cfg, upstream.addr)).await;
    // CGI, WSGI and PHP turn both `x-s62-user` and `x_s62_user` into HTTP_X_S62_USER.
    let r = send_headers(
        "GET",
        &sidecar.url("/people/P-1001"),
        &[
            ("x_s62_user", "ch-supt-0001"),
            ("X_S62_Roles", "admin"),
            ("x-s62-user_name", "Chief Superintendent"),
            ("x-s62-purpose", "investigation"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = upstream
        .last_headers
        .lock()
        .unwrap()
        .clone()
        .expect("headers");
    for name in seen.keys() {
        let n = name.as_str().replace('_', "-");
        assert!(
            !["x-s62-user", "x-s62-roles", "x-s62-user-name"].contains(&n.as_str()),
            "{name} reached the upstream"
        );
    }
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logged_request_id_is_always_generated() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    // A client that reuses another request's id could make two exchanges look like one.
    let a = send(
        "GET",
        &sidecar.url("/people/P-1001"),
        None,
        &with(&[("x-request-id", "abc-123")]),
    )
    .await;
    let b = send(
        "GET",
        &sidecar.url("/people/P-1003"),
        None,
        &with(&[("x-request-id", "abc-123")]),
    )
    .await;
    let store = sidecar.stop().await;
    assert_ne!(reply_id(&a), "abc-123");
    assert_ne!(reply_id(&a), reply_id(&b));
    assert_eq!(
        for_request(&store, EntryKind::Intent, "abc-123").len(),
        0,
        "the client's id is not the logged request id"
    );
}

// ---- 6. s62(3) at run time -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disclosure_that_names_no_recipient_is_refused_and_logged() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let r = send_bytes(
        "POST",
        &sidecar.url("/exports"),
        Some("application/json"),
        br#"{"people":[{"id":"P-1001"}]}"#,
        JUSTIFIED,
    )
    .await;
    let store = sidecar.stop().await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(denial_reason(&store, &r), "no_recipient");
    let d = one(&store, EntryKind::Denied, &r);
    assert_eq!(
        d.subject_ids,
        ["P-1001"],
        "the denial says whose data it was"
    );
    assert_eq!(upstream.hits(), 0);
}

//! Issue 8, attack 4, tried as a client would: a value longer than the log indexes (a
//! 70,000-character id in a JSON body, a long id in the path, a long identity header), or more
//! values than an entry holds, must not turn into a failed append (503, nothing recorded) or an
//! entry verify cannot check. Each is refused with 400 and logged as denied, with the field's
//! length or count and none of its value; a response returning such ids is withheld (502) and its
//! outcome says why. The sidecar keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use proxy_support::*;
use s62::log::entry::{Entry, EntryKind};
use s62::log::index::{MAX_INDEXED_VALUE_BYTES, index_values};

fn one(store: &TestStore, kind: EntryKind, r: &Reply) -> Entry {
    let found = for_request(store, kind, &reply_id(r));
    assert_eq!(found.len(), 1, "one {kind:?} entry: {found:?}");
    found.into_iter().next().expect("one")
}

/// The denial of `r`: reason `value_over_limit`, and a detail that names sizes.
fn over_limit_denial(store: &TestStore, r: &Reply) -> Entry {
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.json()["type"], "urn:s62:problem:value_over_limit");
    let denied = one(store, EntryKind::Denied, r);
    assert_eq!(
        denied.denial.as_ref().expect("denial").reason,
        "value_over_limit"
    );
    denied
}

/// No stored entry holds a value of `needle`'s kind: the long value is nowhere in the log.
fn nowhere_in_the_log(store: &TestStore, needle: &str) {
    for e in store.entries() {
        let text = format!("{e:?}");
        assert!(!text.contains(needle), "seq {} holds the value", e.seq);
        for (family, value) in index_values(&e) {
            assert!(
                value.len() <= MAX_INDEXED_VALUE_BYTES,
                "seq {} indexes a {family:?} of {} bytes",
                e.seq,
                value.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seventy_thousand_character_id_in_a_body_is_refused_and_logged_by_its_length() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let long = format!("P-{}", "9".repeat(69_998));
    let body = serde_json::json!({"recipient": "Crown Prosecution Service", "people": [{"id": "P-1001"}, {"id": long}]});
    let mut headers = JUSTIFIED.to_vec();
    headers.push(("x-recipient", "Crown Prosecution Service"));
    let attack = send("POST", &sidecar.url("/exports"), Some(body), &headers).await;
    // The log still works: an ordinary export afterwards is served and logged.
    let ordinary = send(
        "POST",
        &sidecar.url("/exports"),
        Some(serde_json::json!({"recipient": "Crown Prosecution Service", "people": [{"id": "P-1001"}]})),
        &headers,
    )
    .await;
    let store = sidecar.stop().await;

    let denied = over_limit_denial(&store, &attack);
    let detail = &denied.denial.as_ref().expect("denial").detail;
    assert!(
        detail.contains("subject_ids: a value of 70000 bytes (limit 256)"),
        "{detail}"
    );
    assert_eq!(
        denied.subject_ids,
        ["P-1001"],
        "the ids within limits are kept"
    );
    assert_eq!(upstream.hits(), 1, "only the ordinary export was forwarded");
    assert_eq!(
        ordinary.status,
        200,
        "{}",
        String::from_utf8_lossy(&ordinary.body)
    );
    assert_eq!(
        one(&store, EntryKind::Intent, &ordinary).subject_ids,
        ["P-1001"]
    );
    nowhere_in_the_log(&store, &long[..300]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_id_in_the_path_is_refused_and_the_target_is_not_kept() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let long = format!("P-{}", "7".repeat(4_998));
    let attack = send(
        "GET",
        &sidecar.url(&format!("/people/{long}")),
        None,
        JUSTIFIED,
    )
    .await;
    let store = sidecar.stop().await;

    let denied = over_limit_denial(&store, &attack);
    let detail = &denied.denial.as_ref().expect("denial").detail;
    assert!(
        detail.contains("subject_ids: a value of 5000 bytes"),
        "{detail}"
    );
    assert!(
        detail.contains("request target (5008 bytes) is not kept"),
        "{detail}"
    );
    let request = denied.request.expect("request");
    assert_eq!(request.path, "");
    assert_eq!(request.route, "person-read", "the route is still recorded");
    assert_eq!(upstream.hits(), 0);
    nowhere_in_the_log(&store, &long[..300]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_header_longer_than_an_actor_field_is_refused_without_its_value() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let long_name = "N".repeat(6_000);
    let attack = send_headers(
        "GET",
        &sidecar.url("/people/P-1001"),
        &[
            ("x-s62-user", "pc-4021"),
            ("x-s62-user-name", &long_name),
            ("x-s62-roles", "officer"),
            ("x-s62-purpose", "investigation"),
            (
                "x-s62-justification",
                "Enquiries into burglary at Marsh Lane",
            ),
        ],
    )
    .await;
    let store = sidecar.stop().await;

    let denied = over_limit_denial(&store, &attack);
    let detail = &denied.denial.as_ref().expect("denial").detail;
    assert!(
        detail.contains("actor.display_name: a value of 6000 bytes"),
        "{detail}"
    );
    let actor = denied.actor.expect("actor");
    assert_eq!(
        actor.id, "pc-4021",
        "the accountable officer is still recorded"
    );
    assert_eq!(actor.display_name, "");
    assert_eq!(upstream.hits(), 0);
    nowhere_in_the_log(&store, &long_name[..300]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_ids_than_an_entry_holds_are_refused_and_counted() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let people: Vec<_> = (0..600)
        .map(|i| serde_json::json!({"id": format!("P-{i:04}")}))
        .collect();
    let body = serde_json::json!({"recipient": "Crown Prosecution Service", "people": people});
    let attack = send("POST", &sidecar.url("/exports"), Some(body), JUSTIFIED).await;
    let store = sidecar.stop().await;

    let denied = over_limit_denial(&store, &attack);
    let detail = &denied.denial.as_ref().expect("denial").detail;
    assert!(
        detail.contains("subject_ids: 600 values (limit 500)"),
        "{detail}"
    );
    assert!(denied.subject_ids.is_empty());
    assert_eq!(denied.recipients, ["Crown Prosecution Service"]);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_returning_an_over_long_id_is_withheld_and_its_outcome_says_why() {
    let long = format!("{{\"id\":\"P-{}\"}}", "5".repeat(4_998));
    let upstream = Upstream::start_tweaked(
        s62::records::Records::demo(),
        Tweaks {
            canned: Some((
                "/people/P-1001",
                "application/json",
                None,
                Box::leak(long.clone().into_bytes().into_boxed_slice()),
            )),
            ..Tweaks::default()
        },
    )
    .await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let r = send("GET", &sidecar.url("/people/P-1001"), None, JUSTIFIED).await;
    let store = sidecar.stop().await;

    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["type"],
        "urn:s62:problem:returned_value_over_limit"
    );
    assert!(
        !String::from_utf8_lossy(&r.body).contains("55555"),
        "nothing released"
    );
    let intent = one(&store, EntryKind::Intent, &r);
    assert_eq!(intent.subject_ids, ["P-1001"]);
    let outcome = one(&store, EntryKind::Outcome, &r)
        .outcome
        .expect("outcome");
    assert_eq!(outcome.status, 502);
    assert_eq!(
        outcome.error,
        "returned_value_over_limit: returned_subject_ids: a value of 5000 bytes (limit 256)"
    );
    assert!(outcome.returned_subject_ids.is_empty());
    nowhere_in_the_log(&store, "5555555555");
}

#[test]
fn limits_that_would_let_a_client_overfill_an_entry_are_a_config_error() {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/sidecar.example.toml"
    ))
    .expect("example");
    let bad = base
        .replace("max_id_bytes = 256", "max_id_bytes = 5000")
        .replace(
            "max_values_per_field = 500",
            "max_values_per_field = 100000",
        );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sidecar.toml");
    std::fs::write(&path, bad).expect("write");
    let err = s62::config::Config::load(&path).expect_err("refused");
    let shown = format!("{err}");
    assert!(
        shown.contains("limits.max_id_bytes: must be at most 4096"),
        "{shown}"
    );
    assert!(
        shown.contains("limits: these limits allow an entry of"),
        "{shown}"
    );
}

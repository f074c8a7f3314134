//! Scenarios for the orchestrator's view of a sidecar: `/healthz` answers while the process lives;
//! `/readyz` answers 503 with what is wrong while the log cannot be written, the signing key is not
//! loaded or the records system is unreachable, and 200 again once each is fixed.

mod admin_common;

use admin_common::{Admin, Exposition, entry, request, start_writer};
use s62::admin::{AdminState, Check, Metrics};
use s62::log::entry::{EntryKind, Operation};
use s62::log::store::memory::MemoryStore;
use s62::log::store::{LogStore, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn consultation() -> s62::log::entry::Entry {
    entry(EntryKind::Intent, Operation::Consultation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_the_sidecar_unready_and_a_probe_makes_it_ready_once_the_disk_is_back() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start_writer(store.clone());
    let state = AdminState::new(writer.clone(), store.clone(), Arc::new(Metrics::new()))
        .with_write_probe(Some(Duration::ZERO));
    let admin = Admin::start(state).await;

    writer.append(consultation()).await.expect("disk fine");
    let ok = admin.get("/readyz").await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "ready\n"));

    // The disk fills: the next request's intent entry fails, so the proxy fails closed.
    store.set_failing(true);
    writer
        .append(consultation())
        .await
        .expect_err("a full disk refuses the entry");
    let unready = admin.get("/readyz").await;
    assert_eq!(unready.status, 503);
    assert_eq!(
        unready.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        unready.body.starts_with("not ready:\nlog_writable: "),
        "{}",
        unready.body
    );
    assert!(
        unready.body.contains("No space left on device"),
        "{}",
        unready.body
    );
    let alive = admin.get("/healthz").await;
    assert_eq!(
        alive.status, 200,
        "liveness stays up: restarting would not free the disk"
    );
    let scrape = Exposition::parse(&admin.get("/metrics").await.body);
    assert_eq!(scrape.must("s62_log_writable", &[]), 0.0);
    assert!(scrape.must("s62_batch_failures_total", &[]) >= 1.0);

    // The disk is freed. No request arrives (an unready pod gets no traffic); /readyz's own probe
    // commits and the sidecar is ready again.
    store.set_failing(false);
    let back = admin.get("/readyz").await;
    assert_eq!((back.status, back.body.as_str()), (200, "ready\n"));
    let size = store.entry_count().expect("count");
    assert_eq!(
        size, 2,
        "the first entry and the probe; the refused one is not there"
    );
    let probe =
        s62::log::entry::decode(&store.entry(1).expect("read").expect("stored")).expect("decodes");
    assert_eq!(probe.kind, EntryKind::Admin as i32);
    assert_eq!(probe.admin.expect("admin detail").action, "log_write_probe");

    admin.stop().await;
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_probes_only_the_next_successful_append_clears_a_log_failure() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start_writer(store.clone());
    let state = AdminState::new(writer.clone(), store.clone(), Arc::new(Metrics::new()))
        .with_write_probe(None);
    let admin = Admin::start(state).await;

    store.set_failing(true);
    writer.append(consultation()).await.expect_err("refused");
    store.set_failing(false);
    assert_eq!(admin.get("/readyz").await.status, 503, "no probe ran");
    assert_eq!(store.entry_count().expect("count"), 0, "and wrote nothing");

    writer.append(consultation()).await.expect("disk back");
    assert_eq!(admin.get("/readyz").await.status, 200);

    admin.stop().await;
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_signing_key_and_an_unreachable_records_system_are_each_named() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (writer, task) = start_writer(store.clone());
    let key_loaded = Arc::new(AtomicBool::new(true));
    // A records system that is up: a listener on loopback. Dropping it takes it down.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let upstream_addr = upstream.local_addr().expect("addr");

    let flag = key_loaded.clone();
    let state = AdminState::new(writer, store, Arc::new(Metrics::new()))
        .with_check(Check::new("signing_key", move || {
            if flag.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("no signing key loaded".into())
            }
        }))
        .with_check(Check::tcp_connect(
            "upstream",
            upstream_addr.to_string(),
            Duration::from_secs(1),
        ));
    let admin = Admin::start(state).await;
    assert_eq!(admin.get("/readyz").await.status, 200);

    key_loaded.store(false, Ordering::SeqCst);
    let r = admin.get("/readyz").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "not ready:\nsigning_key: no signing key loaded\n")
    );

    drop(upstream);
    let r = admin.get("/readyz").await;
    assert_eq!(r.status, 503);
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.body);
    assert_eq!(lines[1], "signing_key: no signing key loaded");
    assert!(
        lines[2].starts_with(&format!("upstream: cannot connect to {upstream_addr}")),
        "{}",
        r.body
    );

    key_loaded.store(true, Ordering::SeqCst);
    let r = admin.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert!(!r.body.contains("signing_key"), "{}", r.body);

    admin.stop().await;
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_hangs_fails_after_the_timeout_instead_of_hanging_the_probe() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (writer, task) = start_writer(store.clone());
    let state = AdminState::new(writer, store, Arc::new(Metrics::new()))
        .with_check_timeout(Duration::from_millis(200))
        .with_check(Check::new_async("upstream", || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }));
    let admin = Admin::start(state).await;

    let started = std::time::Instant::now();
    let r = admin.get("/readyz").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "not ready:\nupstream: no answer within 200ms\n");

    admin.stop().await;
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_four_routes_exist_and_they_are_read_only() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (writer, task) = start_writer(store.clone());
    let admin = Admin::start(AdminState::new(writer, store, Arc::new(Metrics::new()))).await;

    assert_eq!(admin.get("/healthz").await.body, "ok\n");
    assert_eq!(admin.get("/").await.status, 404);
    assert_eq!(admin.get("/people/P-1").await.status, 404);
    let post = request(admin.addr, "POST", "/readyz").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let head = request(admin.addr, "HEAD", "/healthz").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));

    admin.stop().await;
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_listener_and_closes_its_port() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (writer, task) = start_writer(store.clone());
    let admin = Admin::start(AdminState::new(writer, store, Arc::new(Metrics::new()))).await;
    let addr = admin.addr;
    assert_eq!(admin.get("/healthz").await.status, 200);

    admin.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens on {addr} after shutdown"
    );
    task.shutdown_async().await;
}

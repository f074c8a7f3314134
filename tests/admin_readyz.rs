//! Scenarios for the orchestrator's view of a sidecar: `/healthz` answers while the process lives;
//! `/readyz` answers 503 with what is wrong while the log cannot be written or the records system
//! refuses connections, and 200 again once each is fixed. (There is no key check: `s62 serve`
//! does not start without a readable signing key.)

mod admin_common;
mod app_support;

use admin_common::{Admin, Exposition, entry, request, start_writer};
use app_support::App;
use s62::admin::{AdminState, Check, Metrics};
use s62::log::entry::{EntryKind, Operation};
use s62::log::store::memory::MemoryStore;
use s62::log::store::{LogStore, Store};
use std::sync::Arc;
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
async fn a_running_sidecar_is_unready_exactly_while_its_records_system_refuses_connections() {
    // The checks `s62 serve` registers, through `app::run`: nothing is registered by hand here.
    let mut app = App::start(None).await;
    let ready = app.admin_get("/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    app.stop_records().await;
    let r = app.admin_get("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.body);
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "only the records system is named: {}",
        r.body
    );
    assert_eq!(lines[0], "not ready:");
    assert!(
        lines[1].starts_with("upstream_reachable: cannot connect to 127.0.0.1:"),
        "{}",
        r.body
    );
    let alive = app.admin_get("/healthz").await;
    assert_eq!(
        alive.status, 200,
        "liveness does not depend on the upstream"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_check_is_a_tcp_connect_so_a_records_system_answering_503_counts_as_reachable()
{
    // What the README promises: a TCP check, not an HTTP one. A records system that accepts
    // connections but answers every request with 503 keeps the sidecar ready; its answers show in
    // s62_upstream_requests_total{status_class="5xx"} instead.
    let sick = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let sick_addr = sick.local_addr().expect("addr");
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in sick.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    let cfg = s62::config::Config::demo(
        "/nonexistent/log".into(),
        "/nonexistent/log.key".into(),
        "127.0.0.1:0".parse().expect("addr"),
        format!("http://{sick_addr}").parse().expect("uri"),
    );
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (writer, task) = start_writer(store.clone());
    let admin = Admin::start(s62::app::admin_state(
        &cfg,
        writer,
        store,
        Arc::new(Metrics::new()),
    ))
    .await;
    let r = admin.get("/readyz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
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

    // The check sleeps for 60 s; the 10 s client timeout would fail first if the probe hung.
    let r = admin.get("/readyz").await;
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

//! `s62 serve`'s wiring, end to end: one process with the proxy in front of the demo records
//! service, the admin listener and the auditor query service. An officer's request goes through
//! the proxy; an auditor then finds it with `s62 query` (search, report, export → verify-bundle);
//! the admin listener reports it and the checkpoint is published to a folder.

mod query_harness;

use query_harness::Pki;
use s62::config::{AdminConfig, Config};
use s62::log::store::rocks::RocksStore;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(request.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

async fn s62(args: Vec<String>) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(args)
        .output()
        .await
        .expect("run s62");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officers_request_is_found_by_an_auditor_through_a_running_s62_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = s62::keys::generate(dir.path(), "e2e.s62.test/records").expect("keygen");
    let (key_path, pub_path) = s62::keys::key_paths(dir.path());

    let records = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let records_addr = records.local_addr().expect("addr");
    tokio::spawn(s62::records::serve(
        records,
        s62::records::Records::demo(),
        std::future::pending(),
    ));

    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_addr = proxy.local_addr().expect("addr");
    let mut cfg = Config::demo(
        dir.path().join("data"),
        key_path,
        proxy_addr,
        format!("http://{records_addr}").parse().expect("uri"),
    );
    cfg.log.origin = "e2e.s62.test/records".into();
    let admin_addr = free_port();
    let published = dir.path().join("published");
    std::fs::create_dir_all(&published).expect("mkdir");
    cfg.admin = Some(AdminConfig {
        address: admin_addr,
        checkpoint_dir: Some(published.clone()),
    });
    let pki = Pki::new();
    let mut query = pki.query_config();
    query.address = free_port();
    cfg.query = Some(query.clone());

    let store = Arc::new(RocksStore::open(&cfg.log.data_dir).expect("open"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        s62::app::run(&cfg, store, key, proxy, async {
            let _ = stop_rx.await;
        })
        .await
    });
    // Ready when the admin listener says so: the log is writable and the records system answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let ready = tokio::task::spawn_blocking(move || {
            TcpStream::connect(admin_addr).is_ok_and(|mut s| {
                let req = "GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";
                let mut out = String::new();
                s.write_all(req.as_bytes()).is_ok()
                    && s.read_to_string(&mut out).is_ok()
                    && out.starts_with("HTTP/1.1 200")
            })
        })
        .await
        .expect("probe");
        if ready {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "s62 never became ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // An officer views a person, with a justification.
    let response = tokio::task::spawn_blocking(move || {
        http(
            proxy_addr,
            "GET /people/P-1001 HTTP/1.1\r\nHost: records\r\nx-s62-user: pc-4021\r\n\
             x-s62-purpose: investigation\r\nx-s62-justification: witness address check\r\n\
             x-s62-case-ref: OP-2026-0413\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .expect("request");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // An auditor finds it through the query service.
    // The DPO: searches and reports, and exports (an auditor may not export).
    let (cert, keyf) =
        pki.write_credential("dpo", &pki.client("Dana DPO", &["dpo@example.police.uk"]));
    let base: Vec<String> = [
        "query",
        "--addr",
        &query.address.to_string(),
        "--server-name",
        "localhost",
        "--ca",
        pki.ca_path().to_str().expect("utf8"),
        "--cert",
        cert.to_str().expect("utf8"),
        "--key",
        keyf.to_str().expect("utf8"),
        "--purpose",
        "self-monitoring",
        "--case",
        "PSD-2026-041",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let with = |rest: &[&str]| {
        base.iter()
            .cloned()
            .chain(rest.iter().map(|s| s.to_string()))
            .collect::<Vec<_>>()
    };

    let (code, out, err) = s62(with(&["--json", "search", "--subject", "P-1001"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.contains("\"intent\"") && l.contains("pc-4021")),
        "{out}"
    );
    let (code, out, err) = s62(with(&["report", "P-1001"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("pc-4021") && out.contains("witness address check"),
        "{out}"
    );
    let bundle = dir.path().join("p1001.s62bundle");
    let pubk = pub_path.to_str().expect("utf8").to_owned();
    let (code, _, err) = s62(with(&[
        "--log-key",
        &pubk,
        "export",
        "--subject",
        "P-1001",
        "--out",
        bundle.to_str().expect("utf8"),
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = s62(vec![
        "verify-bundle".into(),
        bundle.to_string_lossy().into(),
        "--key".into(),
        pubk,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");

    // The admin listener reports the log, and the checkpoint was published.
    let metrics = tokio::task::spawn_blocking(move || {
        http(
            admin_addr,
            "GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .expect("scrape");
    assert!(
        metrics
            .contains("s62_entries_appended_total{kind=\"intent\",operation=\"consultation\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("s62_query_calls_total{purpose=\"self-monitoring\"}"),
        "{metrics}"
    );
    assert!(
        published.join("checkpoint").is_file(),
        "the latest checkpoint is published"
    );

    let _ = stop_tx.send(());
    serving
        .await
        .expect("task")
        .expect("served and stopped cleanly");
}

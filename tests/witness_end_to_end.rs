//! The sidecar's witness client against a real `s62 witness` process on a loopback port: the
//! checkpoints of `s62 serve` get cosigned and stored, `s62 verify --witness` and
//! `verify-bundle --witness` require the quorum, and the three insider attacks — cutting the
//! tail, restoring an older copy (rollback), rewriting history (fork) — are each refused by the
//! witness and reported by verify. A witness that refuses the log raises an admin entry, a metric
//! and `/readyz` says degraded.

mod query_harness;
mod witness_support;

use s62::config::{AdminConfig, Config, WitnessConfig, WitnessPeer};
use s62::ingest::{LogWriter, WriterConfig};
use s62::log::cosignature::{CosignerVerifier, open_cosignatures};
use s62::log::entry::admin_entry;
use s62::log::note::SignerKey;
use s62::log::store::rocks::RocksStore;
use s62::log::store::{LogStore, Store};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use witness_support::WitnessProcess;

const ORIGIN: &str = "witnessed.s62.test/records";

async fn s62(args: &[&str]) -> (i32, String, String) {
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

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn witness_config(w: &WitnessProcess, max_lag: Duration) -> WitnessConfig {
    WitnessConfig {
        interval: Duration::from_millis(50),
        max_lag,
        quorum: 1,
        timeout: Duration::from_secs(3),
        export_wait: Duration::from_secs(5),
        peers: vec![WitnessPeer {
            name: "dpo".into(),
            url: w.url().parse().expect("url"),
            key: CosignerVerifier::parse(&w.vkey).expect("vkey"),
        }],
    }
}

fn sidecar_config(dir: &Path, data: &Path, w: &WitnessProcess) -> Config {
    let (key_path, _) = s62::keys::key_paths(dir);
    let mut cfg = Config::demo(
        data.to_owned(),
        key_path,
        free_port(),
        "http://127.0.0.1:9".parse().expect("uri"),
    );
    cfg.log.origin = ORIGIN.into();
    cfg.witness = Some(witness_config(w, Duration::from_secs(60)));
    cfg
}

/// Whether the stored latest checkpoint carries the witness's cosignature.
fn latest_is_cosigned(store: &dyn Store, w: &WitnessProcess) -> bool {
    let keys = [CosignerVerifier::parse(&w.vkey).expect("vkey")];
    store
        .latest_checkpoint()
        .ok()
        .flatten()
        .and_then(|(_, note)| open_cosignatures(&note, &keys).ok())
        .is_some_and(|(_, found)| !found.is_empty())
}

/// Runs `s62 serve`'s wiring on `cfg` until its latest checkpoint is cosigned, then stops it
/// (which logs `stopped` and witnesses that last checkpoint too). Returns the log size.
async fn run_sidecar(cfg: &Config, w: &WitnessProcess) -> Result<u64, s62::app::AppError> {
    let key = s62::keys::read_signer(&cfg.log.key_file).expect("key");
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(&cfg.log.data_dir).expect("open"));
    let listener = tokio::net::TcpListener::bind(cfg.listen.address)
        .await
        .expect("bind");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cfg2 = cfg.clone();
    let store2 = store.clone();
    let serving = tokio::spawn(async move {
        s62::app::run(&cfg2, store2, key, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });
    // Wait (bounded) for the first checkpoint to be cosigned, or for the start to be refused.
    for _ in 0..200 {
        if serving.is_finished() || latest_is_cosigned(&*store, w) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = stop_tx.send(());
    serving.await.expect("task")?;
    let size = store.entry_count().expect("count");
    assert!(
        latest_is_cosigned(&*store, w),
        "the final checkpoint (size {size}) is cosigned before the sidecar exits"
    );
    Ok(size)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// The insider's cut: every entry, node row, value row, index record and checkpoint from `keep` on is
/// deleted, leaving a log that is internally consistent at size `keep`.
fn cut_tail(data: &Path, keep: u64) {
    let mut opts = rocksdb::Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let db = rocksdb::DB::open(&opts, data).expect("open raw");
    let mut batch = rocksdb::WriteBatch::default();
    for item in db.iterator(rocksdb::IteratorMode::Start) {
        let (k, _) = item.expect("item");
        let seq = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("8 bytes"));
        let doomed = match k.first() {
            Some(b'e' | b'n' | b'v') => seq(&k[1..9]) >= keep,
            Some(b'c') => seq(&k[1..9]) > keep,
            Some(b'i') => seq(&k[k.len() - 8..]) >= keep,
            _ => false,
        };
        if doomed {
            batch.delete(&k);
        }
    }
    db.write(batch).expect("cut");
}

/// Appends `n` admin entries with the real key, bypassing the sidecar (and so its witnesses).
async fn append_unwitnessed(data: &Path, key: SignerKey, n: usize) {
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(data).expect("open"));
    let (writer, task) = LogWriter::start(store, key, WriterConfig::new(ORIGIN)).expect("writer");
    for i in 0..n {
        writer
            .append(admin_entry(
                "maintenance",
                &format!("rewritten history {i}"),
            ))
            .await
            .expect("append");
    }
    drop(writer);
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_cosigned_and_a_cut_a_rollback_and_a_fork_are_each_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    s62::keys::generate(dir.path(), ORIGIN).expect("keygen");
    let (key_path, pub_path) = s62::keys::key_paths(dir.path());
    let w = WitnessProcess::start(
        &dir.path().join("witness"),
        "witness.dpo.s62.test",
        &[(ORIGIN, format!("key_file = \"{}\"", p(&pub_path)))],
    );
    let data = dir.path().join("data");
    let cfg = sidecar_config(dir.path(), &data, &w);
    let wpub = p(&w.pub_file).to_owned();

    // Run 1: `started` and `stopped`, both checkpoints cosigned.
    assert_eq!(run_sidecar(&cfg, &w).await.expect("run 1"), 2);
    let (code, note, err) = s62(&["checkpoint", "--data-dir", p(&data)]).await;
    assert_eq!(code, 0, "{err}");
    assert!(note.contains("\n\u{2014} witness.dpo.s62.test "), "{note}");
    let (code, out, err) = s62(&[
        "verify",
        "--data-dir",
        p(&data),
        "--key",
        p(&pub_path),
        "--witness",
        &wpub,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cosigned by 1 listed witness"), "{out}");
    let at_2 = dir.path().join("copy-at-2");
    copy_dir(&data, &at_2);

    // Run 2: the log grows to 4, the witness with it.
    assert_eq!(run_sidecar(&cfg, &w).await.expect("run 2"), 4);
    let kept = w.checkpoint_file(ORIGIN);
    assert!(
        std::fs::read_to_string(&kept)
            .expect("kept")
            .starts_with(&format!("{ORIGIN}\n4\n"))
    );

    // Attack 1, a cut tail: entries 3.. are deleted. The log alone still verifies (the attack
    // works against verify without outside help); the witness's checkpoint catches it, and the
    // sidecar refuses to start on the folder.
    let cut = dir.path().join("cut");
    copy_dir(&data, &cut);
    cut_tail(&cut, 3);
    let (code, out, err) = s62(&["verify", "--data-dir", p(&cut), "--key", p(&pub_path)]).await;
    assert_eq!(code, 0, "the cut log is internally consistent: {out}{err}");
    let (code, _, err) = s62(&[
        "verify",
        "--data-dir",
        p(&cut),
        "--key",
        p(&pub_path),
        "--trust-checkpoint",
        p(&kept),
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("trusted checkpoint covers 4"), "{err}");
    let refused = run_sidecar(&sidecar_config(dir.path(), &cut, &w), &w).await;
    assert!(
        matches!(
            &refused,
            Err(s62::app::AppError::Witness(
                s62::witness::client::StartRefusal::Behind {
                    witness_size: 4,
                    log_size: 3,
                    ..
                }
            ))
        ),
        "{refused:?}"
    );

    // Attack 2, a rollback: the copy taken at size 2 is put back.
    let rollback = dir.path().join("rollback");
    copy_dir(&at_2, &rollback);
    let (code, _, err) = s62(&[
        "verify",
        "--data-dir",
        p(&rollback),
        "--key",
        p(&pub_path),
        "--trust-checkpoint",
        p(&kept),
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    let refused = run_sidecar(&sidecar_config(dir.path(), &rollback, &w), &w).await;
    assert!(
        matches!(
            &refused,
            Err(s62::app::AppError::Witness(
                s62::witness::client::StartRefusal::Behind {
                    witness_size: 4,
                    log_size: 2,
                    ..
                }
            ))
        ),
        "{refused:?}"
    );

    // Attack 3, a fork: from the copy at 2, history is rewritten with the real key to size 5.
    let fork = dir.path().join("fork");
    copy_dir(&at_2, &fork);
    let key = s62::keys::read_signer(&key_path).expect("key");
    append_unwitnessed(&fork, key, 3).await;
    let (code, out, err) = s62(&["verify", "--data-dir", p(&fork), "--key", p(&pub_path)]).await;
    assert_eq!(code, 0, "the fork is internally consistent: {out}{err}");
    let (code, _, err) = s62(&[
        "verify",
        "--data-dir",
        p(&fork),
        "--key",
        p(&pub_path),
        "--witness",
        &wpub,
        "--quorum",
        "1",
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("latest checkpoint (size 5)")
            && err.contains("from 0 of the listed witnesses"),
        "{err}"
    );
    let (code, _, err) = s62(&[
        "verify",
        "--data-dir",
        p(&fork),
        "--key",
        p(&pub_path),
        "--trust-checkpoint",
        p(&kept),
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("differs from the trusted checkpoint at size 4"),
        "{err}"
    );
    let refused = run_sidecar(&sidecar_config(dir.path(), &fork, &w), &w).await;
    assert!(
        matches!(
            &refused,
            Err(s62::app::AppError::Witness(
                s62::witness::client::StartRefusal::Inconsistent { status: 422, .. }
            ))
        ),
        "{refused:?}"
    );

    // The honest log is untouched by all this and goes on being witnessed.
    assert_eq!(run_sidecar(&cfg, &w).await.expect("run 3"), 6);
}

/// A witness that does not follow this log answers 404: the sidecar keeps serving (the proxy
/// never waits on a witness), writes one `witness_refused` admin entry, counts the refusals, and
/// once `max_lag` has passed without a quorum `/readyz` answers 200 `degraded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_witness_raises_an_alert_and_readiness_says_degraded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = s62::keys::generate(dir.path(), ORIGIN).expect("keygen");
    let (_, pub_path) = s62::keys::key_paths(dir.path());
    let w = WitnessProcess::start(
        &dir.path().join("witness"),
        "witness.other.s62.test",
        &[(
            "someone-else.test/log",
            format!("key_file = \"{}\"", p(&pub_path)),
        )],
    );
    let data = dir.path().join("data");
    let mut cfg = sidecar_config(dir.path(), &data, &w);
    cfg.witness = Some(witness_config(&w, Duration::from_millis(300)));
    // Something that accepts connections, so the upstream readiness check passes.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    cfg.upstream.url = format!("http://{}", upstream.local_addr().expect("addr"))
        .parse()
        .expect("uri");
    let admin = free_port();
    cfg.admin = Some(AdminConfig {
        address: admin,
        checkpoint_dir: None,
    });
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(&data).expect("open"));
    let listener = tokio::net::TcpListener::bind(cfg.listen.address)
        .await
        .expect("bind");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (cfg2, store2) = (cfg.clone(), store.clone());
    let serving = tokio::spawn(async move {
        s62::app::run(&cfg2, store2, key, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });

    let get = |path: &'static str| {
        tokio::task::spawn_blocking(move || witness_support::request(admin, "GET", path, ""))
    };
    let mut degraded = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        if let Ok(a) = get("/readyz").await
            && a.body.starts_with("degraded")
        {
            degraded = Some(a);
            break;
        }
    }
    let degraded = degraded.expect("readyz says degraded after max_lag");
    assert_eq!(
        degraded.status, 200,
        "a witness outage does not take the sidecar out"
    );
    assert!(
        degraded.body.contains("witness_quorum: "),
        "{}",
        degraded.body
    );
    let metrics = get("/metrics").await.expect("metrics").body;
    assert!(
        metrics.contains("s62_witness_submissions_total{witness=\"dpo\",result=\"refused\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("result=\"refused\"} 0"), "{metrics}");
    assert!(
        metrics.contains("s62_witness_cosigned_size{witness=\"dpo\"} 0"),
        "{metrics}"
    );

    let _ = stop_tx.send(());
    serving.await.expect("task").expect("served and stopped");
    let mut refusals = Vec::new();
    for (_, bytes) in store.entries(0, 1000).expect("entries") {
        let e = s62::log::entry::decode(&bytes).expect("decode");
        if let Some(a) = e.admin.filter(|a| a.action == "witness_refused") {
            refusals.push(a.detail);
        }
    }
    assert_eq!(
        refusals.len(),
        1,
        "one alert, not one per round: {refusals:?}"
    );
    assert!(
        refusals[0].starts_with("witness=dpo status=404 "),
        "{}",
        refusals[0]
    );
}

/// An export made while a witness is configured proves against a cosigned checkpoint, and
/// `verify-bundle --witness` requires it; a verifier who trusts another witness gets exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_carries_a_witnessed_checkpoint_that_verify_bundle_requires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = s62::keys::generate(dir.path(), ORIGIN).expect("keygen");
    let (_, pub_path) = s62::keys::key_paths(dir.path());
    let w = WitnessProcess::start(
        &dir.path().join("witness"),
        "witness.ico.s62.test",
        &[(ORIGIN, format!("key_file = \"{}\"", p(&pub_path)))],
    );
    let data = dir.path().join("data");
    let mut cfg = sidecar_config(dir.path(), &data, &w);
    let pki = query_harness::Pki::new();
    let mut query = pki.query_config();
    query.address = free_port();
    cfg.query = Some(query.clone());
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(&data).expect("open"));
    let listener = tokio::net::TcpListener::bind(cfg.listen.address)
        .await
        .expect("bind");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (cfg2, store2) = (cfg.clone(), store.clone());
    let serving = tokio::spawn(async move {
        s62::app::run(&cfg2, store2, key, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });
    for _ in 0..200 {
        if std::net::TcpStream::connect(query.address).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The Commissioner asks for the export (s62(5)).
    let (cert, keyf) = pki.write_credential("ico", &pki.client("Casey Commissioner", &[]));
    let bundle = dir.path().join("all.s62bundle");
    let (code, _, err) = s62(&[
        "query",
        "--addr",
        &query.address.to_string(),
        "--server-name",
        "localhost",
        "--ca",
        p(&pki.ca_path()),
        "--cert",
        p(&cert),
        "--key",
        p(&keyf),
        "--purpose",
        "commissioner-request",
        "--case",
        "ICO-2026-7",
        "--log-key",
        p(&pub_path),
        "export",
        "--kind",
        "admin",
        "--out",
        p(&bundle),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let _ = stop_tx.send(());
    serving.await.expect("task").expect("stopped");

    let wpub = p(&w.pub_file).to_owned();
    let (code, out, err) = s62(&[
        "verify-bundle",
        p(&bundle),
        "--key",
        p(&pub_path),
        "--witness",
        &wpub,
        "--quorum",
        "1",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("cosigned by 1 listed witness(es): witness.ico.s62.test"),
        "{out}"
    );

    // A verifier who requires a witness that never saw this log.
    let other = dir.path().join("other");
    let (code, _, err) = s62(&[
        "witness-keygen",
        "--name",
        "witness.other.test",
        "--out",
        p(&other),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = s62(&[
        "verify-bundle",
        p(&bundle),
        "--key",
        p(&pub_path),
        "--witness",
        p(&other.join("witness.pub")),
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("from 0 of the listed witnesses; 1 required"),
        "{err}"
    );
}

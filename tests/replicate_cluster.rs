//! Replication to a real 3-node JetStream cluster (nats-server on loopback, started by the test).
//!
//! 1. Under load (16 producers appending through the real writer), the stream's leader node is
//!    killed: every entry the stream acknowledged is in the stream afterwards, exactly once, with
//!    the leaf the log holds; the killed node, restarted, catches up (current, no lag).
//! 2. A `kill -9`ed `s62 serve` (a real child process with `[replicate]`), restarted on the same
//!    folder, leaves the stream with seqs 0..n exactly once: no duplicates, no gaps.
//! 3. A log folder rolled back to an older copy, or rewritten, is never published over the
//!    stream that holds the genuine log.
//! 4. In sync mode a response, buffered or streamed, is released only once its outcome is in the
//!    stream; without a quorum it is refused or cut short.
//! 5. A stream created by an earlier version (entries and checkpoints only) gains the subject
//!    for cosigned notes, and keeps what it holds.
//! 6. A message the stream stored but whose acknowledgement was lost is re-sent as it was (same
//!    entries, same id), so the stream keeps it once, though more entries were committed since.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicate_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use replicate_support::{
    AckDropper, Cluster, Publisher, assert_exactly_once, jetstream, read_stream, wait_checkpoint,
};
use s62::ingest::{LogWriter, WriterConfig};
use s62::log::entry::admin_entry;
use s62::log::note::SignerKey;
use s62::log::store::LogStore;
use s62::log::store::rocks::RocksStore;
use s62::replicate::Names;

const ORIGIN: &str = "replicate.s62.test/log";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_loses_no_acknowledged_entry_and_catches_up_when_restarted() {
    let mut cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn s62::log::store::Store> =
        Arc::new(RocksStore::open(&dir.path().join("log")).unwrap());
    let key = SignerKey::from_seed(ORIGIN, [7u8; 32]).unwrap();
    let (writer, task) = LogWriter::start(store.clone(), key, WriterConfig::new(ORIGIN)).unwrap();
    let publisher = Publisher::start(cluster.urls(), ORIGIN, store.clone(), &writer);
    let (gate, metrics) = (publisher.gate.clone(), publisher.metrics.clone());

    // Load: 16 producers append until told to stop.
    let running = Arc::new(AtomicBool::new(true));
    let appended = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..16)
        .map(|p| {
            let (writer, running, appended) = (writer.clone(), running.clone(), appended.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while running.load(Ordering::Relaxed) {
                    writer
                        .append(admin_entry("load", &format!("producer {p} entry {n}")))
                        .await
                        .expect("append");
                    appended.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    // Some entries are replicated before the kill.
    let before = gate.acked_at_least(500, Duration::from_secs(60)).await;
    assert!(
        before >= 500,
        "only {before} entries replicated before the kill"
    );

    // Kill the stream's leader (the harshest node to lose) while the producers keep appending.
    let names = Names::for_origin(ORIGIN);
    let js = jetstream(&cluster.urls()).await;
    let leader = {
        let mut s = js.get_stream(&names.stream).await.unwrap();
        let info = s.info().await.unwrap();
        info.cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .expect("the stream has a leader")
    };
    let killed = cluster.index_of(&leader).expect("leader is a node");
    let acked_at_kill = gate.acked();
    cluster.kill_node(killed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.store(false, Ordering::Relaxed);
    for p in producers {
        p.await.unwrap();
    }
    let total = store.entry_count().unwrap();
    assert!(
        total > acked_at_kill + 100,
        "the load went on after the kill"
    );
    let acked = gate.acked_at_least(total, Duration::from_secs(60)).await;
    assert_eq!(
        acked, total,
        "the two remaining nodes acknowledge every entry"
    );

    // Every acknowledged entry is in the stream, once, with the log's leaf.
    let js = jetstream(&cluster.urls()).await;
    wait_checkpoint(&js, &names, total).await;
    let (entries, checkpoints) = read_stream(&js, &names).await;
    assert_exactly_once(&entries, total);
    for e in &entries {
        assert_eq!(
            store.entry(e.seq).unwrap().as_deref(),
            Some(e.leaf.as_slice()),
            "entry {} differs from the log",
            e.seq
        );
    }
    assert!(
        checkpoints.iter().all(|s| *s <= total) && checkpoints.contains(&total),
        "the checkpoint of the full log is published"
    );
    // The lag metric comes back to 0 once the publisher looks again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.lag_entries.get() != 0 {
        assert!(
            Instant::now() < deadline,
            "the lag metric stays at {}",
            metrics.lag_entries.get()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The killed node comes back and catches up with the stream.
    cluster.start_node(killed);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut s = js.get_stream(&names.stream).await.unwrap();
        let info = s.info().await.unwrap().clone();
        let cluster_info = info.cluster.expect("clustered stream");
        let peer = cluster_info
            .replicas
            .iter()
            .find(|p| p.name == leader)
            .cloned();
        let caught_up = match (&cluster_info.leader, peer) {
            (Some(l), _) if *l == leader => true,
            (_, Some(p)) => p.current && p.lag.unwrap_or(0) == 0 && !p.offline,
            _ => false,
        };
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {leader} did not catch up: {:?}",
            cluster_info.replicas
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    publisher.stop().await;
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_whose_acknowledgement_was_lost_is_resent_as_it_was_and_stored_once() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let origin = "lost-ack.s62.test/log";
    let names = Names::for_origin(origin);
    // The publisher reaches the cluster through a proxy that swallows the stream's first
    // acknowledgement of an entries message: stored, but the publisher never hears so.
    let dropper = AckDropper::start(cluster.nodes[0].client, &names.entries, 1);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn s62::log::store::Store> =
        Arc::new(RocksStore::open(&dir.path().join("log")).unwrap());
    let key = SignerKey::from_seed(origin, [9u8; 32]).unwrap();
    let (writer, task) = LogWriter::start(store.clone(), key, WriterConfig::new(origin)).unwrap();
    let publisher = Publisher::start(vec![dropper.url()], origin, store.clone(), &writer);

    writer
        .append(admin_entry("load", "before the lost acknowledgement"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropper.dropped().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no entries message was published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While the publisher waits for the acknowledgement it will never get, more entries are
    // committed: a message formed again from the same seq would hold more, under another id.
    for n in 0..40 {
        writer
            .append(admin_entry("load", &format!("while waiting {n}")))
            .await
            .unwrap();
    }
    let total = store.entry_count().unwrap();
    let acked = publisher
        .gate
        .acked_at_least(total, Duration::from_secs(60))
        .await;
    assert_eq!(acked, total, "every entry is acknowledged in the end");
    assert_eq!(
        dropper.dropped().len(),
        1,
        "exactly one acknowledgement was lost"
    );
    assert!(
        publisher.metrics.failures.get() >= 1,
        "the publisher saw the missing acknowledgement as a failure"
    );

    let js = jetstream(&cluster.urls()).await;
    let (entries, _) = read_stream(&js, &names).await;
    assert_exactly_once(&entries, total);

    publisher.stop().await;
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_from_an_earlier_version_gains_the_cosignatures_subject_and_keeps_its_messages() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let names = Names::for_origin("earlier.s62.test/log");
    let js = jetstream(&cluster.urls()).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: names.stream.clone(),
        subjects: vec![names.entries.clone(), names.checkpoints.clone()],
        num_replicas: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish(names.checkpoints.clone(), "kept".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let stream = s62::replicate::ensure_stream(&js, &names, 3, Duration::from_secs(3600))
        .await
        .unwrap();
    let info = stream.cached_info();
    assert_eq!(info.config.subjects, names.subjects());
    assert_eq!(info.state.messages, 1, "nothing it held is lost");
    // Publishing a cosigned note is accepted by the stream now.
    js.publish(names.cosignatures.clone(), "cosigned".into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// A records system answering every request with 200 `{}`.
fn records_system(listener: TcpListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                // A document under /files/ is larger than a sidecar may buffer: it streams.
                if head.starts_with(b"GET /files/") {
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/pdf\r\ncontent-length: {FILE_BYTES}\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                    for _ in 0..FILE_BYTES / 1000 {
                        let _ = conn.write_all(&[b'%'; 1000]);
                    }
                    return;
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                );
            });
        }
    });
}

/// The size of a document under `/files/`: over the `max_buffered_response_bytes` the sync-mode
/// sidecar is given.
const FILE_BYTES: usize = 200_000;

/// GETs `path` through the sidecar as an officer: the status and how many body bytes arrived
/// before the connection ended.
fn request(addr: SocketAddr, path: &str) -> Option<(u16, usize)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: records\r\nx-s62-user: pc-4021\r\nx-s62-purpose: investigation\r\n\
         x-s62-justification: replication test\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    // A stream that ends in error resets or closes the connection: keep what arrived.
    let _ = s.read_to_end(&mut out);
    let status = std::str::from_utf8(out.get(9..12)?).ok()?.parse().ok()?;
    let body = out.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((status, out.len() - body))
}

/// A document (streamed: over the buffer limit): status and body bytes received.
fn get_file(addr: SocketAddr, n: u64) -> Option<(u16, usize)> {
    request(addr, &format!("/files/F-{n}"))
}

/// A person (buffered): the status.
fn get(addr: SocketAddr, n: u64) -> Option<u16> {
    request(addr, &format!("/people/P-{n}")).map(|(status, _)| status)
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &std::path::Path, proxy: SocketAddr) -> KillOnDrop {
    serve_with(env!("CARGO_BIN_EXE_s62"), config, proxy)
}

/// [`serve`] with another build of s62 (for measurements that compare builds).
fn serve_with(bin: &str, config: &std::path::Path, proxy: SocketAddr) -> KillOnDrop {
    let child = KillOnDrop(
        Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(proxy).is_err() {
        assert!(Instant::now() < deadline, "s62 serve does not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Sends requests from 8 clients until `stop`, counting 200s in `answered`; returns that count.
fn load(
    proxy: SocketAddr,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let clients: Vec<_> = (0..8)
            .map(|c| {
                let (stop, answered) = (stop.clone(), answered.clone());
                std::thread::spawn(move || {
                    let (mut ok, mut n) = (0u64, c * 1_000_000);
                    while !stop.load(Ordering::Relaxed) {
                        if get(proxy, n) == Some(200) {
                            ok += 1;
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        n += 1;
                    }
                    ok
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap_or(0)).sum()
    })
}

/// An operator with disk access restores an older copy of the log folder (to hide what was
/// logged since), or writes another history under the same key. Either way the stream already
/// holds the genuine log: the publisher compares the stream's end with the folder and refuses
/// to publish — nothing of the replacement reaches the stream, and the lag grows for
/// `/readyz` to show.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolled_back_or_rewritten_folder_is_never_published_over_the_stream() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names = Names::for_origin(ORIGIN);
    let js = jetstream(&cluster.urls()).await;
    let log = |folder: &str, n: u64, text: &'static str| {
        let store: Arc<dyn s62::log::store::Store> =
            Arc::new(RocksStore::open(&dir.path().join(folder)).unwrap());
        let key = SignerKey::from_seed(ORIGIN, [7u8; 32]).unwrap();
        let (writer, task) =
            LogWriter::start(store.clone(), key, WriterConfig::new(ORIGIN)).unwrap();
        let urls = cluster.urls();
        // The folder is written (or restored) first, then the sidecar starts publishing it.
        async move {
            for i in 0..n {
                writer
                    .append(admin_entry("test", &format!("{text} {i}")))
                    .await
                    .unwrap();
            }
            let publisher = Publisher::start(urls, ORIGIN, store.clone(), &writer);
            (store, task, publisher)
        }
    };
    let (store, task, publisher) = log("genuine", 20, "genuine").await;
    let total = store.entry_count().unwrap();
    assert_eq!(
        publisher
            .gate
            .acked_at_least(total, Duration::from_secs(30))
            .await,
        total
    );
    wait_checkpoint(&js, &names, total).await;
    publisher.stop().await;
    task.shutdown_async().await;
    let genuine = read_stream(&js, &names).await;

    for (folder, n, what) in [("older", 5, "rolled back"), ("rewritten", 25, "rewritten")] {
        let (store, task, publisher) = log(folder, n, "replacement").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while publisher.metrics.failures.get() == 0 {
            assert!(
                Instant::now() < deadline,
                "{what}: the publisher never gave up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            read_stream(&js, &names).await,
            genuine,
            "{what}: the stream still holds exactly the genuine log"
        );
        assert_eq!(
            publisher.gate.acked(),
            0,
            "{what}: nothing was acknowledged"
        );
        assert!(
            publisher.metrics.lag_entries.get() == store.entry_count().unwrap() as i64,
            "{what}: the lag shows the folder is not replicated"
        );
        publisher.stop().await;
        task.shutdown_async().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sidecar_killed_with_sigkill_and_restarted_leaves_no_duplicate_and_no_gap() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_s62");
    assert!(
        Command::new(bin)
            .args(["keygen", "--origin", ORIGIN, "--out"])
            .arg(dir.path().join("keys"))
            .output()
            .unwrap()
            .status
            .success()
    );
    let records = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = records.local_addr().unwrap();
    records_system(records);
    let proxy = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\ndata_dir = \"log\"\nkey_file = \"keys/log.key\"\norigin = \"{ORIGIN}\"\n\n\
             [listen]\naddress = \"{proxy}\"\n\n[upstream]\nurl = \"http://{upstream}\"\n\n\
             [identity]\nsources = [\"trusted_header\"]\nheader = \"x-s62-user\"\ntrusted_peers = [\"127.0.0.0/8\"]\n\n\
             [replicate]\nurls = [{}]\nmode = \"async\"\n",
            urls.join(", ")
        ),
    )
    .unwrap();

    let names = Names::for_origin(ORIGIN);
    let js = jetstream(&cluster.urls()).await;
    let published =
        async |js: &async_nats::jetstream::Context| match js.get_stream(&names.stream).await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
    for round in 0..3 {
        let at_start = published(&js).await;
        let mut child = serve(&config, proxy);
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let clients = load(proxy, stop.clone(), answered.clone());
        // Let the sidecar publish part of what it logs, then kill it mid-stream.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if answered.load(Ordering::Relaxed) >= 100 && published(&js).await >= at_start + 300 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: nothing published"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        let ok = tokio::task::spawn_blocking(move || clients.join().unwrap())
            .await
            .unwrap();
        assert!(ok > 0, "round {round}: no request answered");
    }
    // A last, orderly run: restarted on the folder, it resumes and publishes the rest.
    let mut child = serve(&config, proxy);
    assert_eq!(get(proxy, 1), Some(200));
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    child.0.wait().unwrap();

    let store = RocksStore::open(&dir.path().join("log")).unwrap();
    let total = store.entry_count().unwrap();
    let (entries, checkpoints) = read_stream(&js, &names).await;
    assert_exactly_once(&entries, total);
    for e in &entries {
        assert_eq!(
            store.entry(e.seq).unwrap().as_deref(),
            Some(e.leaf.as_slice()),
            "entry {} differs from the log",
            e.seq
        );
    }
    assert!(
        checkpoints.windows(2).all(|w| w[0] < w[1]),
        "checkpoints are stored once each, in order"
    );
    assert_eq!(checkpoints.last(), Some(&total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_sync_mode_a_response_waits_for_the_stream_and_fails_closed_without_a_quorum() {
    let mut cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_s62");
    assert!(
        Command::new(bin)
            .args(["keygen", "--origin", ORIGIN, "--out"])
            .arg(dir.path().join("keys"))
            .output()
            .unwrap()
            .status
            .success()
    );
    let records = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = records.local_addr().unwrap();
    records_system(records);
    let proxy = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\ndata_dir = \"log\"\nkey_file = \"keys/log.key\"\norigin = \"{ORIGIN}\"\n\n\
             [listen]\naddress = \"{proxy}\"\n\n[upstream]\nurl = \"http://{upstream}\"\n\n\
             [identity]\nsources = [\"trusted_header\"]\nheader = \"x-s62-user\"\ntrusted_peers = [\"127.0.0.0/8\"]\n\n\
             [limits]\nmax_buffered_response_bytes = 65536\n\n\
             [replicate]\nurls = [{}]\nmode = \"sync\"\nsync_timeout_ms = 2000\n",
            urls.join(", ")
        ),
    )
    .unwrap();
    let _child = serve(&config, proxy);
    let names = Names::for_origin(ORIGIN);
    let js = jetstream(&cluster.urls()).await;

    // Each 200 is released only once its outcome is in the stream.
    for n in 0..20 {
        let status = tokio::task::spawn_blocking(move || get(proxy, n))
            .await
            .unwrap();
        assert_eq!(status, Some(200));
        let last_kind = match js.get_stream(&names.stream).await {
            Ok(s) => s
                .get_last_raw_message_by_subject(&names.entries)
                .await
                .ok()
                .map(|m| {
                    let e = s62::replicate::decode_entries(m.payload.as_ref())
                        .unwrap()
                        .pop()
                        .unwrap();
                    s62::log::entry::decode(&e.leaf).unwrap().kind
                }),
            Err(_) => None,
        };
        assert_eq!(
            last_kind,
            Some(s62::log::entry::EntryKind::Outcome as i32),
            "request {n}: the stream's last entry is its outcome when the response arrives"
        );
    }

    // A streamed document's end, too, is released once its outcome is in the stream.
    let file = tokio::task::spawn_blocking(move || get_file(proxy, 1))
        .await
        .unwrap();
    assert_eq!(file, Some((200, FILE_BYTES)), "the whole document arrives");
    let last = js
        .get_stream(&names.stream)
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&names.entries)
        .await
        .unwrap();
    let e = s62::replicate::decode_entries(last.payload.as_ref())
        .unwrap()
        .pop()
        .unwrap();
    let outcome = s62::log::entry::decode(&e.leaf).unwrap();
    assert!(
        outcome.outcome.as_ref().is_some_and(|o| o.streamed),
        "the stream's last entry is the streamed document's outcome when its end arrives"
    );

    // Without a quorum the stream cannot acknowledge: the response is withheld (503).
    cluster.kill_node(0);
    cluster.kill_node(1);
    let status = tokio::task::spawn_blocking(move || get(proxy, 100))
        .await
        .unwrap();
    assert_eq!(status, Some(503), "no quorum, no release");
    // A document already streaming cannot be withheld, but its end is: the client sees it cut
    // short, never a complete document whose outcome is off-node nowhere.
    let (status, got) = tokio::task::spawn_blocking(move || get_file(proxy, 2))
        .await
        .unwrap()
        .expect("headers arrive");
    assert_eq!(status, 200);
    assert!(
        got < FILE_BYTES,
        "without a quorum the document's last bytes are withheld: {got} of {FILE_BYTES} arrived"
    );

    // With the nodes back, the stream catches up and responses flow again.
    cluster.start_node(0);
    cluster.start_node(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = tokio::task::spawn_blocking(move || get(proxy, 200))
            .await
            .unwrap();
        if status == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sync mode did not recover: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Not a pass/fail test: prints the latency of one connection's sequential requests through
/// `s62 serve` in async and in sync mode (docs/scale.md, benches/README.md). Run with
/// `cargo test --release --test replicate_cluster measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, run by hand"]
async fn measure_sync_against_async_at_one_connection() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    // Both sidecars run at once, each with its own origin (so its own stream), and the requests
    // alternate between them, 3 ms apart: a slow moment of the shared machine falls on both
    // modes alike.
    let mut sidecars = Vec::new();
    let mut dirs = Vec::new();
    for mode in ["async", "sync"] {
        let origin = format!("{mode}.{ORIGIN}");
        let dir = tempfile::tempdir().unwrap();
        let bin = env!("CARGO_BIN_EXE_s62");
        assert!(
            Command::new(bin)
                .args(["keygen", "--origin", &origin, "--out"])
                .arg(dir.path().join("keys"))
                .output()
                .unwrap()
                .status
                .success()
        );
        let records = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = records.local_addr().unwrap();
        records_system(records);
        let proxy = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
        let config = dir.path().join("sidecar.toml");
        std::fs::write(
            &config,
            format!(
                "[log]\ndata_dir = \"log\"\nkey_file = \"keys/log.key\"\norigin = \"{origin}\"\n\n\
                 [listen]\naddress = \"{proxy}\"\n\n[upstream]\nurl = \"http://{upstream}\"\n\n\
                 [identity]\nsources = [\"trusted_header\"]\nheader = \"x-s62-user\"\ntrusted_peers = [\"127.0.0.0/8\"]\n\n\
                 [replicate]\nurls = [{}]\nmode = \"{mode}\"\n",
                urls.join(", ")
            ),
        )
        .unwrap();
        // `S62_MEASURE_BIN`: another build of s62 to measure (A/B against this one).
        let serving = match std::env::var("S62_MEASURE_BIN") {
            Ok(other) => serve_with(&other, &config, proxy),
            Err(_) => serve(&config, proxy),
        };
        sidecars.push((mode, proxy, serving));
        dirs.push(dir);
    }
    let proxies: Vec<(&str, SocketAddr)> = sidecars.iter().map(|(m, p, _)| (*m, *p)).collect();
    let times = tokio::task::spawn_blocking(move || {
        for n in 0..100 {
            for (_, proxy) in &proxies {
                get(*proxy, n);
            }
        }
        let mut times = vec![Vec::new(); proxies.len()];
        for n in 0..1000 {
            for (i, (_, proxy)) in proxies.iter().enumerate() {
                let t = Instant::now();
                assert_eq!(get(*proxy, n), Some(200));
                times[i].push(t.elapsed());
                // An async sidecar publishes after it answered: the pause lets that finish, so
                // it does not fall on the other sidecar's next request.
                std::thread::sleep(Duration::from_millis(3));
            }
        }
        times
    })
    .await
    .unwrap();
    let mut p50 = Vec::new();
    for ((mode, _, _), mut t) in sidecars.iter().zip(times) {
        t.sort();
        println!(
            "{mode}: p50 {:?} p90 {:?} p99 {:?} (1000 sequential requests, one connection each, alternating with the other mode)",
            t[500], t[900], t[990]
        );
        p50.push(t[500]);
    }
    println!(
        "sync adds {:.3} ms p50 over async",
        (p50[1].as_secs_f64() - p50[0].as_secs_f64()) * 1e3
    );

    // The floor of what sync mode adds: one publish to an R3 stream and its acknowledgement,
    // from a fresh client, alone (the sidecars are idle now).
    let js = jetstream(&cluster.urls()).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RTT".into(),
        subjects: vec!["rtt".into()],
        num_replicas: 3,
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut rtt = Vec::new();
    for n in 0..1100 {
        let t = Instant::now();
        js.publish("rtt", format!("{n:0300}").into())
            .await
            .unwrap()
            .await
            .unwrap();
        if n >= 100 {
            rtt.push(t.elapsed());
        }
    }
    rtt.sort();
    println!(
        "one R3 publish and its acknowledgement, sequential: p50 {:?} p90 {:?} p99 {:?}",
        rtt[500], rtt[900], rtt[990]
    );
}

//! The audit hub over a real 3-node JetStream cluster (nats-server on loopback): two logs, each
//! written by the real writer and replicated by the real publisher, are verified by the hub and
//! kept as log folders that `verify_store` accepts, indexes included, although one node of the
//! cluster is killed while the hub takes the streams in and more is appended. Then an entry forged by
//! someone with write access to the stream (not the log's key) is published straight into one
//! stream, under the very message id the sidecar uses, so the stream drops the genuine entry as a
//! duplicate: the hub sees the signed checkpoint disagree with the entries, writes a
//! `replication_fork` alert in its own log, and keeps verifying the other log. With its query
//! listener (`[hub.query]`, mTLS on a loopback port), the hub answers an auditor's subject report
//! spanning both replicated logs, and logs the call in its own log.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_harness;
mod replicate_support;
mod witness_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use replicate_support::{Cluster, Publisher, jetstream};
use s62::admin::Metrics;
use s62::config::{HubConfig, MonitoredLog, WitnessConfig, WitnessPeer};
use s62::ingest::{LogWriter, WriterConfig, WriterTask};
use s62::log::cosignature::{CosignerVerifier, open_cosignatures};
use s62::log::entry::{Actor, Entry, EntryKind, Operation, admin_entry};
use s62::log::epoch::LogKeys;
use s62::log::hash::leaf_hash;
use s62::log::note::SignerKey;
use s62::log::note::parse_note;
use s62::log::store::rocks::RocksStore;
use s62::log::store::{LogStore, Store};
use s62::query::AUDIT_SEQ_HEADER;
use s62::query::pb::{SubjectReportRequest, subject_report_response};
use s62::replicate::{Names, ReplicatedEntry};
use s62::verify::{VerifyOptions, verify_store};
use s62::witness::client::{WitnessClient, WitnessHandle};
use tokio::sync::watch;
use witness_support::WitnessProcess;

struct Sidecar {
    origin: &'static str,
    vkey: String,
    store: Arc<dyn Store>,
    writer: LogWriter,
    task: WriterTask,
    publisher: Publisher,
    /// With a witness: its client's handle, and the client's task (stopped with the sidecar).
    witness: Option<(
        WitnessHandle,
        tokio::task::JoinHandle<()>,
        watch::Sender<bool>,
    )>,
}

impl Sidecar {
    fn start(origin: &'static str, seed: u8, dir: &std::path::Path, urls: Vec<String>) -> Sidecar {
        Sidecar::start_with(origin, seed, dir, urls, None)
    }

    /// A sidecar whose checkpoints `witness` cosigns, as `s62 serve` runs with `[witness]`.
    async fn start_witnessed(
        origin: &'static str,
        seed: u8,
        dir: &std::path::Path,
        urls: Vec<String>,
        witness: &WitnessProcess,
    ) -> Sidecar {
        let store: Arc<dyn Store> =
            Arc::new(RocksStore::open(&dir.join(seed.to_string())).unwrap());
        let cfg = WitnessConfig {
            interval: Duration::from_millis(50),
            max_lag: Duration::from_secs(60),
            quorum: 1,
            timeout: Duration::from_secs(3),
            export_wait: Duration::from_secs(5),
            peers: vec![WitnessPeer {
                name: "dpo".into(),
                url: witness.url().parse().unwrap(),
                key: CosignerVerifier::parse(&witness.vkey).unwrap(),
            }],
        };
        let mut client = WitnessClient::new(&cfg, store.clone(), Arc::new(Metrics::new()));
        client.check_at_start().await.unwrap();
        Sidecar::start_with(origin, seed, dir, urls, Some((store, client)))
    }

    fn start_with(
        origin: &'static str,
        seed: u8,
        dir: &std::path::Path,
        urls: Vec<String>,
        witnessed: Option<(Arc<dyn Store>, WitnessClient)>,
    ) -> Sidecar {
        let (store, client) = match witnessed {
            Some((store, client)) => (store, Some(client)),
            None => (
                Arc::new(RocksStore::open(&dir.join(seed.to_string())).unwrap()) as Arc<dyn Store>,
                None,
            ),
        };
        let key = SignerKey::from_seed(origin, [seed; 32]).unwrap();
        let vkey = key.verifier().to_vkey();
        let (writer, task) =
            LogWriter::start(store.clone(), key, WriterConfig::new(origin)).unwrap();
        let cosigned = client.as_ref().map(|c| c.handle().cosignatures_stored());
        let publisher = Publisher::start_witnessed(urls, origin, store.clone(), &writer, cosigned);
        let witness = client.map(|client| {
            let handle = client.handle();
            let (stop, mut stop_rx) = watch::channel(false);
            let run = tokio::spawn(
                client.run(writer.checkpoints(), writer.clone(), async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                }),
            );
            (handle, run, stop)
        });
        Sidecar {
            origin,
            vkey,
            store,
            writer,
            task,
            publisher,
            witness,
        }
    }

    /// Appends `n` consultations of a person (format 2: the ids live in value rows).
    async fn consult(&self, n: u64) {
        for i in 0..n {
            self.writer
                .append(Entry {
                    kind: EntryKind::Intent as i32,
                    operation: Operation::Consultation as i32,
                    actor: Some(Actor {
                        id: format!("PC-{}", i % 7),
                        ..Default::default()
                    }),
                    subject_ids: vec![format!("P-{}", i % 13)],
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }

    async fn replicated(&self) -> u64 {
        let total = self.store.entry_count().unwrap();
        let acked = self
            .publisher
            .gate
            .acked_at_least(total, Duration::from_secs(30))
            .await;
        assert_eq!(acked, total, "{} is replicated", self.origin);
        total
    }

    async fn stop(self) {
        if let Some((_, run, stop)) = self.witness {
            let _ = stop.send(true);
            run.await.unwrap();
        }
        self.publisher.stop().await;
        self.task.shutdown_async().await;
    }
}

/// The config of a hub with its own key and folder in `hub_dir`, following `logs` on `urls`.
fn hub_config(hub_dir: &std::path::Path, urls: Vec<String>, logs: Vec<MonitoredLog>) -> HubConfig {
    s62::keys::generate(hub_dir, "hub.s62.test/hub").unwrap();
    HubConfig {
        urls,
        credentials_file: None,
        data_dir: hub_dir.to_owned(),
        key_file: hub_dir.join("log.key"),
        origin: "hub.s62.test/hub".into(),
        logs,
        query: None,
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hub_verifies_two_logs_and_alerts_on_an_entry_forged_into_a_stream() {
    let mut cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = Sidecar::start("custody.s62.test/log", 3, dir.path(), cluster.urls());
    let b = Sidecar::start("intel.s62.test/log", 4, dir.path(), cluster.urls());
    a.consult(300).await;
    b.consult(200).await;
    a.replicated().await;
    b.replicated().await;
    // Consultations of P-3 in a log whose first batch held `first` (i = 0..first), with the
    // batch of 100 appended after the kill.
    let p3 = |first: u64| {
        (0..first).filter(|i| i % 13 == 3).count() + (0..100).filter(|i| i % 13 == 3).count()
    };

    let hub_dir = dir.path().join("hub");
    let keys = |s: &Sidecar| LogKeys::parse(&s.vkey).unwrap();
    let pki = query_harness::Pki::new();
    let cfg = HubConfig {
        query: Some(pki.query_config()),
        ..hub_config(
            &hub_dir,
            cluster.urls(),
            vec![
                MonitoredLog::new(a.origin, keys(&a)),
                MonitoredLog::new(b.origin, keys(&b)),
            ],
        )
    };
    let hub = s62::hub::start(&cfg).await.unwrap();
    // One node of the cluster is killed mid-run, while the hub takes the streams in: both
    // sidecars go on publishing and the hub on verifying, through the two nodes left.
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.kill_node(1);
    a.consult(100).await;
    b.consult(100).await;
    let total_a = a.replicated().await;
    let total_b = b.replicated().await;
    // A hub whose server was the one killed resumes on another once it notices and the cluster
    // has placed its consumer: up to 6 s measured (docs/scale.md, 47 s before the hub limited
    // each step), so this waits up to two minutes, not the usual 30 s: slow is not wrong.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(hub.verified(a.origin) == total_a && hub.verified(b.origin) == total_b) {
        assert!(
            Instant::now() < deadline,
            "the hub did not resume after the node was killed: {} of {total_a}, {} of {total_b}",
            hub.verified(a.origin),
            hub.verified(b.origin)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The hub's copies are logs in their own right: chain, tree, checkpoints, signatures and
    // every index record check out.
    for (s, total, consulted) in [(&a, total_a, 300u64), (&b, total_b, 200)] {
        let copy = hub.copy_of(s.origin).unwrap();
        let report = verify_store(&**copy, VerifyOptions::new(keys(s))).unwrap();
        assert_eq!(report.entries, total);
        let about_p3 = copy
            .index_seqs(s62::log::index::IndexFamily::Subject, "P-3", 0, 1000)
            .unwrap();
        assert_eq!(
            about_p3.len(),
            p3(consulted),
            "the subject index of {} is searchable in the hub",
            s.origin
        );
    }
    assert_eq!(hub.findings(a.origin), 0);

    // An auditor asks the hub, over mTLS on its query port, about P-3: one report over both logs.
    let addr = hub.query_address().expect("the hub serves queries");
    let dpo = pki.client("Data Protection", &["dpo@example.police.uk"]);
    let mut client = pki.tls_client(addr, &dpo).await;
    let response = client
        .subject_report(SubjectReportRequest {
            context: query_harness::context(),
            subject: "P-3".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let audit_seq: u64 = response
        .metadata()
        .get(AUDIT_SEQ_HEADER)
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut stream = response.into_inner();
    let mut events = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(subject_report_response::Item::Event(e)) = m.item {
            events.push(e);
        }
    }
    for (s, consulted) in [(&a, 300u64), (&b, 200)] {
        let theirs: Vec<_> = events.iter().filter(|e| e.origin == s.origin).collect();
        assert_eq!(
            theirs.len(),
            p3(consulted),
            "every consultation of P-3 in {}",
            s.origin
        );
        for e in theirs {
            // The very entry the sidecar wrote, under its origin and seq.
            assert_eq!(Some(e.leaf.clone()), s.store.entry(e.seq).unwrap());
        }
    }
    let order: Vec<_> = events
        .iter()
        .map(|e| (e.time_unix_nanos, e.origin.clone(), e.seq))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "one report, in (time, origin, seq) order");
    let opening = hub.own_log().opened(audit_seq).unwrap().unwrap().entry;
    assert_eq!(opening.kind, EntryKind::AuditQuery as i32);
    let q = opening.audit_query.unwrap();
    assert_eq!(
        (q.call.as_str(), q.case_reference.as_str()),
        ("SubjectReport", "PSD-2026-041")
    );
    assert_eq!(opening.actor.unwrap().id, "dpo");

    // The forger: a well-formed entry that links to the log's last one, published under the id
    // the sidecar will use for its next entry (a message holding it alone).
    let names = Names::for_origin(a.origin);
    let last = a.store.entry(total_a - 1).unwrap().unwrap();
    // A copy of the last consultation (its value row still matches its commitments), moved to
    // the next seq and linked to the last entry: only the signed checkpoint can tell.
    let mut forged = s62::log::entry::decode(&last).unwrap();
    forged.seq = total_a;
    forged.checkpoint_follows = false;
    forged.prev_leaf_hash = leaf_hash(&last).0.to_vec();
    let payload = ReplicatedEntry {
        seq: total_a,
        leaf: s62::log::entry::encode(&forged),
        values: a.store.values_rows(total_a - 1, 1).unwrap()[0].1.clone(),
    };
    let js = jetstream(&cluster.urls()).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", names.entries_id(total_a, total_a).as_str());
    js.publish_with_headers(
        names.entries.clone(),
        headers,
        s62::replicate::wire::encode_entries(vec![payload]).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // The sidecar logs its real next entry; the stream keeps the forgery, drops the genuine one.
    a.writer
        .append(admin_entry("real", "the genuine entry"))
        .await
        .unwrap();
    a.replicated().await;
    wait_for("the hub to raise an alert", || hub.findings(a.origin) > 0).await;

    // The alert is an entry of the hub's own log, naming the log and the checkpoint's size.
    let own = hub.own_log().clone();
    let alerts: Vec<_> = own
        .opened_entries(0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.entry.kind == EntryKind::Alert as i32)
        .filter_map(|e| e.entry.alert)
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].detail.contains("another root"), "{alerts:?}");
    assert_eq!(alerts[0].rule, "replication_fork");
    assert_eq!(alerts[0].name, a.origin);
    assert_eq!(alerts[0].sighting_seq, total_a + 1);
    assert_eq!(
        hub.verified(a.origin),
        total_a,
        "nothing unverified is kept"
    );

    // The other log is still followed.
    b.consult(50).await;
    let total_b = b.replicated().await;
    wait_for("the hub to go on with the other log", || {
        hub.verified(b.origin) == total_b
    })
    .await;
    assert_eq!(hub.findings(b.origin), 0);

    hub.stop().await;
    a.stop().await;
    b.stop().await;
}

/// Witnesses through the stream: a sidecar whose checkpoints a real `s62 witness` cosigns
/// publishes each cosigned note; the hub, told the witness's key for that log, checks every
/// cosignature and keeps the cosigned notes with its copy, so the copy's checkpoints carry them.
/// Someone with write access to the stream but not the witness's key publishes a cosignature
/// that does not verify: an alert, nothing of it kept, and the log still followed. A second log,
/// which the hub expects to be witnessed but whose sidecar has no witness, is flagged once as
/// unwitnessed when its checkpoints go longer than allowed without a quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hub_checks_witness_cosignatures_and_flags_forged_and_missing_ones() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (origin_a, origin_b) = ("custody.s62.test/log", "intel.s62.test/log");
    let vkey_a = SignerKey::from_seed(origin_a, [3; 32])
        .unwrap()
        .verifier()
        .to_vkey();
    let witness = WitnessProcess::start(
        &dir.path().join("witness"),
        "w.dpo.s62.test",
        &[(origin_a, format!("keys = [\"{vkey_a}\"]"))],
    );
    let a = Sidecar::start_witnessed(origin_a, 3, dir.path(), cluster.urls(), &witness).await;
    let b = Sidecar::start(origin_b, 4, dir.path(), cluster.urls());
    a.consult(60).await;
    b.consult(60).await;
    let (handle, _, _) = a.witness.as_ref().unwrap();
    let witnessed_at_sidecar = handle
        .witnessed_at_least(a.store.entry_count().unwrap(), Duration::from_secs(30))
        .await
        .expect("the sidecar's latest checkpoint is cosigned");
    a.replicated().await;
    b.replicated().await;

    let hub_dir = dir.path().join("hub");
    let w_key = CosignerVerifier::parse(&witness.vkey).unwrap();
    let witnessed = |s: &Sidecar, max_lag: Duration| MonitoredLog {
        witnesses: vec![w_key.clone()],
        witness_quorum: 1,
        witness_max_lag: max_lag,
        ..MonitoredLog::new(s.origin, LogKeys::parse(&s.vkey).unwrap())
    };
    let cfg = hub_config(
        &hub_dir,
        cluster.urls(),
        vec![
            witnessed(&a, Duration::from_secs(60)),
            witnessed(&b, Duration::from_secs(1)),
        ],
    );
    let hub = s62::hub::start(&cfg).await.unwrap();
    wait_for("the hub to see the witnessed checkpoint", || {
        hub.witnessed(a.origin) >= witnessed_at_sidecar
    })
    .await;
    // The copy's checkpoint carries the witness's cosignature, checked against its key.
    let copy = hub.copy_of(a.origin).unwrap().clone();
    let size = hub.witnessed(a.origin);
    let note = copy.checkpoint(size).unwrap().expect("the copy holds it");
    let (_, found) = open_cosignatures(&note, std::slice::from_ref(&w_key)).unwrap();
    assert_eq!(found.len(), 1, "cosigned in the hub's copy: {note}");
    assert_eq!(
        Some(note),
        a.store.checkpoint(size).unwrap(),
        "the very note the sidecar stored"
    );
    assert_eq!(hub.findings(a.origin), 0);

    // The log expected to be witnessed that is not: one alert, and the log is still followed.
    wait_for("the unwitnessed log to be flagged", || {
        hub.findings(b.origin) == 1
    })
    .await;
    let total_b = b.store.entry_count().unwrap();
    wait_for("the hub to take in the unwitnessed log", || {
        hub.verified(b.origin) == total_b
    })
    .await;

    // A forger with write access to the stream: the witness's name and key ID on a signature
    // made over another checkpoint, attached to a checkpoint the witness never cosigned.
    let witness_key =
        s62::witness::keys::read_cosigner(&dir.path().join("witness/witness.key")).unwrap();
    let target = a
        .store
        .checkpoints(1, usize::MAX)
        .unwrap()
        .into_iter()
        .find(|(_, n)| parse_note(n).unwrap().signatures.len() == 1)
        .expect("a checkpoint no witness cosigned");
    let other_text = parse_note(&a.store.checkpoint(size).unwrap().unwrap())
        .unwrap()
        .text;
    let forged = format!(
        "{}{}",
        target.1,
        witness_key.cosign(&other_text, 1_790_000_000).unwrap()
    );
    let names = Names::for_origin(a.origin);
    let js = jetstream(&cluster.urls()).await;
    js.publish(names.cosignatures.clone(), forged.into())
        .await
        .unwrap()
        .await
        .unwrap();
    wait_for("the hub to flag the forged cosignature", || {
        hub.findings(a.origin) == 1
    })
    .await;
    let alerts: Vec<_> = hub
        .own_log()
        .opened_entries(0, 10_000)
        .unwrap()
        .into_iter()
        .filter_map(|e| e.entry.alert)
        .map(|a| (a.rule, a.name, a.sighting_seq))
        .collect();
    assert!(
        alerts.contains(&(
            "replication_bad_cosignature".into(),
            a.origin.into(),
            target.0
        )),
        "{alerts:?}"
    );
    assert!(
        alerts
            .iter()
            .any(|(rule, name, _)| rule == "replication_unwitnessed" && name == b.origin),
        "{alerts:?}"
    );
    assert_eq!(alerts.len(), 2, "one alert each: {alerts:?}");
    assert_eq!(
        copy.checkpoint(target.0).unwrap(),
        Some(target.1.clone()),
        "nothing of the forgery is kept"
    );
    // Both logs are still followed, and the witnessed one is still witnessed.
    a.consult(20).await;
    b.consult(20).await;
    let (total_a, total_b) = (a.replicated().await, b.replicated().await);
    let witnessed_now = handle
        .witnessed_at_least(total_a, Duration::from_secs(30))
        .await
        .expect("cosigned");
    a.replicated().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(hub.verified(a.origin) == total_a
        && hub.verified(b.origin) == total_b
        && hub.witnessed(a.origin) >= witnessed_now)
    {
        assert!(
            Instant::now() < deadline,
            "the hub did not follow both logs on: {} of {total_a}, {} of {total_b}, witnessed {} of {witnessed_now}",
            hub.verified(a.origin),
            hub.verified(b.origin),
            hub.witnessed(a.origin)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (hub.findings(a.origin), hub.findings(b.origin)),
        (1, 1),
        "an unwitnessed log is flagged once, not once per checkpoint"
    );

    hub.stop().await;
    a.stop().await;
    b.stop().await;
}

/// A stream where entries after a checkpoint's size come before that checkpoint (the publisher
/// sends a checkpoint once its entries are acknowledged, and may have sent more entries by then;
/// with a signing interval, the last entries wait for the next checkpoint). A hub stopped once it
/// stored the checkpoint, and started again, must read those entries again: its cursor may not
/// pass them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hub_restarted_while_entries_wait_for_their_checkpoint_reads_them_again() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let origin = "custody.s62.test/log";
    let store = Arc::new(s62::log::store::memory::MemoryStore::new());
    let key = SignerKey::from_seed(origin, [3; 32]).unwrap();
    let vkey = key.verifier().to_vkey();
    let (writer, task) = LogWriter::start(store.clone(), key, WriterConfig::new(origin)).unwrap();
    for i in 0..10 {
        writer
            .append(admin_entry("test", &format!("entry {i}")))
            .await
            .unwrap();
    }
    task.shutdown_async().await;
    let names = Names::for_origin(origin);
    let js = jetstream(&cluster.urls()).await;
    s62::replicate::ensure_stream(&js, &names, 3, Duration::from_secs(3600))
        .await
        .unwrap();
    let publish = async |subject: &String, payload: Vec<u8>| {
        js.publish(subject.clone(), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    };
    // Entries 0..10 (more may follow the stopped entry: the last one is `stopped`): entry 0 alone
    // as s62 published before batches (an upgraded sidecar's stream), then three to a message, so
    // the checkpoint of size 5 ends inside the message [4, 5, 6]; then only that checkpoint.
    let total = store.entry_count().unwrap();
    let rows: std::collections::HashMap<u64, Vec<u8>> =
        store.values_rows(0, 100).unwrap().into_iter().collect();
    let entries: Vec<ReplicatedEntry> = store
        .entries(0, 100)
        .unwrap()
        .into_iter()
        .map(|(seq, leaf)| {
            let values = rows.get(&seq).cloned().unwrap_or_default();
            ReplicatedEntry { seq, leaf, values }
        })
        .collect();
    publish(&names.entries, prost::Message::encode_to_vec(&entries[0])).await;
    for batch in entries[1..].chunks(3) {
        publish(
            &names.entries,
            s62::replicate::wire::encode_entries(batch.to_vec()),
        )
        .await;
    }
    publish(
        &names.checkpoints,
        store.checkpoint(5).unwrap().unwrap().into_bytes(),
    )
    .await;

    let hub_dir = dir.path().join("hub");
    let cfg = hub_config(
        &hub_dir,
        cluster.urls(),
        vec![MonitoredLog::new(origin, LogKeys::parse(&vkey).unwrap())],
    );
    let hub = s62::hub::start(&cfg).await.unwrap();
    wait_for("the hub to store the checkpoint of size 5", || {
        hub.verified(origin) == 5
    })
    .await;
    hub.stop().await;

    // The checkpoint over everything arrives while the hub is down.
    let last = store.latest_checkpoint().unwrap().unwrap();
    assert_eq!(last.0, total);
    publish(&names.checkpoints, last.1.into_bytes()).await;
    let hub = s62::hub::start(&cfg).await.unwrap();
    wait_for("the restarted hub to store every entry", || {
        hub.verified(origin) == total || hub.findings(origin) > 0
    })
    .await;
    assert_eq!(
        (hub.verified(origin), hub.findings(origin)),
        (total, 0),
        "entries 5.. were read again, not skipped"
    );
    hub.stop().await;
}

/// Not a pass/fail test: prints how fast the hub takes in a log already in the stream
/// (docs/scale.md, benches/README.md). Run with
/// `cargo test --release --test hub_cluster measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, run by hand"]
async fn measure_hub_ingest() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = Sidecar::start("bench.s62.test/log", 8, dir.path(), cluster.urls());
    let n: u64 = std::env::var("HUB_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let producers: Vec<_> = (0..32)
        .map(|_| {
            let w = a.writer.clone();
            tokio::spawn(async move {
                for i in 0..n / 32 {
                    w.append(Entry {
                        kind: EntryKind::Intent as i32,
                        operation: Operation::Consultation as i32,
                        actor: Some(Actor {
                            id: format!("PC-{}", i % 7),
                            ..Default::default()
                        }),
                        subject_ids: vec![format!("P-{}", i % 13)],
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let total = a.store.entry_count().unwrap();
    let acked = a
        .publisher
        .gate
        .acked_at_least(total, Duration::from_secs(300))
        .await;
    assert_eq!(acked, total);
    let checkpoints = a.store.checkpoints(1, usize::MAX).unwrap().len();
    let hub_dir = dir.path().join("hub");
    let cfg = hub_config(
        &hub_dir,
        cluster.urls(),
        vec![MonitoredLog::new(
            a.origin,
            LogKeys::parse(&a.vkey).unwrap(),
        )],
    );
    let t = Instant::now();
    let hub = s62::hub::start(&cfg).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while hub.verified(a.origin) < total {
        assert!(Instant::now() < deadline, "the hub did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = t.elapsed();
    println!(
        "hub ingest: {total} entries ({checkpoints} checkpoints) verified and stored in {took:?}: {:.0} entries/s",
        total as f64 / took.as_secs_f64()
    );
    let origin = a.origin;
    hub.stop().await;
    a.stop().await;
    // For sizing (docs/scale.md): what one entry costs in the stream (per replica) and in the
    // hub's copy, against the sidecar's own folder.
    let js = jetstream(&cluster.urls()).await;
    let mut stream = js
        .get_stream(&Names::for_origin(origin).stream)
        .await
        .unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let on_disk = |p: &std::path::Path| -> u64 {
        std::fs::read_dir(p)
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len())
            .sum()
    };
    let copy = on_disk(&hub_dir.join("logs").join(Names::for_origin(origin).token));
    let sidecar = on_disk(&dir.path().join("8"));
    println!(
        "sizing: stream {} bytes in {} messages ({:.0} B per entry, checkpoints included, per replica); \
         hub copy {copy} bytes on disk ({:.0} B per entry); sidecar folder {sidecar} bytes ({:.0} B per entry); \
         both before compaction, WAL included",
        state.bytes,
        state.messages,
        state.bytes as f64 / total as f64,
        copy as f64 / total as f64,
        sidecar as f64 / total as f64
    );
}

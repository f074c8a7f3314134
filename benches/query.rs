//! Query service benchmarks on a large RocksDB log filled through the real writer:
//!
//! * `subject_search_50`: the planner answering a subject filter that matches 50 entries spread
//!   across the whole log (each subject's entries are `n / 50` seqs apart), decoded and re-checked;
//! * `subject_search_50_grpc`: the same as a full Search call over an in-memory gRPC connection,
//!   including the durable opening audit entry (a synced write) and the stream;
//! * `inclusion_proof`: building an RFC 6962 proof from stored nodes for a random entry;
//! * `export`: the export producer (entries + proofs) written as bundle lines, in entries/s.
//!
//! After the criterion runs, a latency distribution (p50/p99/max over 1,000 random subjects) is
//! printed for both searches, since the target is a p99.
//!
//! `cargo bench --bench query` measures; `cargo test --release --all-targets` smoke-runs it on
//! 2,000 entries. Size: S62_BENCH_QUERY_ENTRIES (default 1,000,000; the target is
//! 10,000,000). S62_BENCH_QUERY_DIR keeps the filled log between runs (filled if empty, reused if
//! it already holds that many entries).

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hyper_util::rt::TokioIo;
use s62::config::{Auditor, AuditorMatch, AuditorRole};
use s62::ingest::{LogWriter, WriterConfig, WriterTask};
use s62::log::entry::{AuditPurpose, Entry};
use s62::log::hash::Hash;
use s62::log::note::SignerKey;
use s62::log::store::rocks::RocksStore;
use s62::log::store::{LogStore, Store, StoreNodes};
use s62::query::export::{ExportPlan, export, select_for_export};
use s62::query::nodes::{CachedNodes, NodeCache, proof_bytes};
use s62::query::pb::audit_query_client::AuditQueryClient;
use s62::query::pb::export_response::Item as ExportItem;
use s62::query::pb::{CallContext, ExportResponse, Filter, SearchRequest, search_response};
use s62::query::plan::{EntryFilter, Matches};
use s62::query::sink::{Sink, Stop};
use s62::query::{Auditors, Connection, PeerInfo, serve_query_incoming};
use s62::verify::bundle::{BundleWriter, ProvedEntry};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const ORIGIN: &str = "bench.s62/query";
const PER_SUBJECT: u64 = 50;

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn entries() -> u64 {
    if !measuring() {
        return 2_000;
    }
    std::env::var("S62_BENCH_QUERY_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [42u8; 32]).expect("key")
}

/// A consultation intent of about 300 bytes; subject `P-(i % subjects)` so that each subject has
/// exactly 50 entries, spread evenly over the log.
fn event(i: u64, subjects: u64) -> Entry {
    common::consultation(i, subjects)
}

struct Bench {
    _dir: Option<tempfile::TempDir>,
    store: Arc<dyn Store>,
    writer: LogWriter,
    task: Option<WriterTask>,
    rt: tokio::runtime::Runtime,
    n: u64,
    subjects: u64,
}

fn open() -> Bench {
    let n = entries();
    let subjects = (n / PER_SUBJECT).max(1);
    let (dir, path) = match std::env::var("S62_BENCH_QUERY_DIR") {
        Ok(p) if measuring() => (None, PathBuf::from(p)),
        _ => {
            let d = tempfile::tempdir().expect("tempdir");
            let p = d.path().to_owned();
            (Some(d), p)
        }
    };
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(&path).expect("open"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (writer, task) = rt.block_on(async {
        LogWriter::start(store.clone(), key(), WriterConfig::new(ORIGIN)).expect("writer")
    });
    let have = store.entry_count().expect("count");
    if have == 0 {
        let started = Instant::now();
        rt.block_on(async {
            let producers = 256u64;
            let mut handles = Vec::new();
            for p in 0..producers {
                let w = writer.clone();
                handles.push(tokio::spawn(async move {
                    let mut i = p;
                    while i < n {
                        w.append(event(i, subjects)).await.expect("append");
                        i += producers;
                    }
                }));
            }
            for h in handles {
                h.await.expect("producer");
            }
        });
        if measuring() {
            eprintln!(
                "filled {n} entries in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
    } else {
        // A reused log must be the same shape (the bench's own audit entries come after it).
        assert!(
            have >= n,
            "S62_BENCH_QUERY_DIR holds {have} entries, fewer than {n}; use an empty folder"
        );
    }
    Bench {
        _dir: dir,
        store,
        writer,
        task: Some(task),
        rt,
        n,
        subjects,
    }
}

/// A cheap deterministic sequence of subjects to ask for.
struct Picker(u64);
impl Picker {
    fn next(&mut self, modulo: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % modulo
    }
}

fn search_50(store: &dyn Store, subject: u64, n: u64) {
    let filter = EntryFilter {
        subject: Some(format!("P-{subject}")),
        ..Default::default()
    };
    let found = Matches::new(store, filter, 0, n)
        .expect("plan")
        .collect::<Result<Vec<_>, _>>()
        .expect("matches");
    assert_eq!(found.len() as u64, PER_SUBJECT);
}

/// The service over in-memory pipes, one client connection with an auditor's identity.
fn grpc_client(b: &Bench) -> AuditQueryClient<tonic::transport::Channel> {
    let auditors = Auditors::new(vec![Auditor {
        name: "bench".into(),
        matcher: AuditorMatch::CommonName("Bench Auditor".into()),
        role: AuditorRole::Auditor,
    }]);
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Bench Auditor");
    let cert = params
        .self_signed(&rcgen::KeyPair::generate().expect("key"))
        .expect("cert");
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (tx, rx) = mpsc::channel(1);
    let peer = PeerInfo {
        remote_addr: None,
        certificates: Some(Arc::new(vec![cert.der().clone()])),
    };
    let (store, writer, verifier) = (b.store.clone(), b.writer.clone(), key().verifier());
    b.rt.block_on(async move {
        tx.send(Ok(Connection::new(server_io, peer)))
            .await
            .expect("queue");
        tokio::spawn(async move {
            let _keep_open = tx;
            serve_query_incoming(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                auditors,
                store,
                writer,
                verifier,
                std::future::pending(),
            )
            .await
            .expect("serve");
        });
        let mut io = Some(client_io);
        let channel = tonic::transport::Endpoint::try_from("http://bench.invalid")
            .expect("endpoint")
            .connect_with_connector(tower::service_fn(move |_| {
                let io = io.take();
                async move {
                    io.map(TokioIo::new)
                        .ok_or_else(|| std::io::Error::other("once"))
                }
            }))
            .await
            .expect("connect");
        AuditQueryClient::new(channel)
    })
}

async fn search_50_grpc(client: &mut AuditQueryClient<tonic::transport::Channel>, subject: u64) {
    let mut stream = client
        .search(SearchRequest {
            context: Some(CallContext {
                purpose: AuditPurpose::IntegrityAndSecurity as i32,
                case_reference: "BENCH-1".into(),
            }),
            filter: Some(Filter {
                subject: format!("P-{subject}"),
                ..Default::default()
            }),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("search")
        .into_inner();
    let mut found = 0u64;
    while let Some(m) = stream.message().await.expect("stream") {
        if let Some(search_response::Item::Entry(_)) = m.item {
            found += 1;
        }
    }
    assert_eq!(found, PER_SUBJECT);
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    eprintln!(
        "{name}: {} samples: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    );
}

/// Writes export messages as bundle lines to nowhere (the client's work), counting entries.
struct BundleSink {
    writer: Option<BundleWriter<std::io::Sink>>,
    entries: u64,
}

fn hashes(raw: &[Vec<u8>]) -> Vec<Hash> {
    raw.iter()
        .map(|b| Hash::from_slice(b).expect("32 bytes"))
        .collect()
}

impl Sink<ExportResponse> for BundleSink {
    fn result(&mut self, item: ExportResponse) -> Result<(), Stop> {
        if let Some(ExportItem::Entry(e)) = item.item {
            let w = self.writer.as_mut().expect("header first");
            w.entry(ProvedEntry {
                seq: e.seq,
                leaf: &e.leaf,
                values: &e.values,
                proof: &hashes(&e.inclusion_proof),
            })
            .expect("write");
            self.entries += 1;
        }
        Ok(())
    }

    fn frame(&mut self, item: ExportResponse) -> Result<(), Stop> {
        if let Some(ExportItem::Header(h)) = item.item {
            let cp = h.checkpoint.expect("checkpoint");
            let audit = h.audit.expect("audit");
            self.writer = Some(
                BundleWriter::start(
                    std::io::sink(),
                    &cp.origin,
                    &h.verifier_key,
                    &cp.note,
                    ProvedEntry {
                        seq: audit.seq,
                        leaf: &audit.leaf,
                        values: &audit.values,
                        proof: &hashes(&audit.inclusion_proof),
                    },
                )
                .expect("header"),
            );
        }
        Ok(())
    }
}

fn query_benches(c: &mut Criterion) {
    let mut b = open();
    let (n, subjects) = (b.n, b.subjects);
    let mut group = c.benchmark_group(format!("query_at_{n}_entries"));
    group.sample_size(if measuring() { 50 } else { 10 });

    let mut pick = Picker(1);
    group.bench_function("subject_search_50", |bench| {
        bench.iter(|| search_50(b.store.as_ref(), pick.next(subjects), n))
    });

    let mut client = grpc_client(&b);
    let mut pick = Picker(2);
    group.bench_function("subject_search_50_grpc", |bench| {
        bench.iter(|| {
            b.rt.block_on(search_50_grpc(&mut client, pick.next(subjects)))
        })
    });

    let nodes = StoreNodes(b.store.as_ref());
    let mut pick = Picker(3);
    group.bench_function("inclusion_proof_uncached", |bench| {
        bench.iter(|| proof_bytes(&nodes, pick.next(n), n).expect("proof"))
    });
    // As the service builds them: upper levels from the shared cache (warm after a while).
    let shared = NodeCache::new();
    let mut pick = Picker(5);
    group.bench_function("inclusion_proof", |bench| {
        bench.iter(|| {
            let cached = CachedNodes::new(b.store.as_ref(), &shared);
            proof_bytes(&cached, pick.next(n), n).expect("proof")
        })
    });

    // One actor's entries: n / 500 of them, spread over the log; at most 20,000 per run.
    let export_cap = (n / 500).clamp(1, 20_000);
    group.throughput(Throughput::Elements(export_cap));
    group.sample_size(10);
    let size = b.store.latest_checkpoint().expect("read").expect("some").0;
    let verifier = key().verifier();
    group.bench_function("export", |bench| {
        bench.iter(|| {
            let mut sink = BundleSink {
                writer: None,
                entries: 0,
            };
            // As the service does it: fix the selection (which the audit entry commits to), then
            // stream it.
            let selected = select_for_export(
                b.store.as_ref(),
                &EntryFilter {
                    actor: Some("pc-7".into()),
                    ..Default::default()
                },
                export_cap,
            )
            .expect("selection");
            export(
                b.store.as_ref(),
                &shared,
                ExportPlan {
                    seqs: selected.seqs,
                    audit_seq: size - 1,
                    checkpoint_size: size,
                    verifier: &verifier,
                },
                &mut sink,
            )
            .map_err(|e| format!("{e:?}"))
            .expect("export");
            assert_eq!(sink.entries, export_cap);
        })
    });
    group.finish();

    if measuring() {
        let mut pick = Picker(4);
        let mut planner = Vec::new();
        for _ in 0..1000 {
            let t = Instant::now();
            search_50(b.store.as_ref(), pick.next(subjects), n);
            planner.push(t.elapsed());
        }
        percentiles(&format!("subject_search_50 at {n}"), planner);
        let mut grpc = Vec::new();
        for _ in 0..1000 {
            let t = Instant::now();
            b.rt.block_on(search_50_grpc(&mut client, pick.next(subjects)));
            grpc.push(t.elapsed());
        }
        percentiles(&format!("subject_search_50_grpc at {n}"), grpc);
        let mut proofs = Vec::new();
        for _ in 0..10_000 {
            let t = Instant::now();
            let cached = CachedNodes::new(b.store.as_ref(), &shared);
            proof_bytes(&cached, pick.next(n), n).expect("proof");
            proofs.push(t.elapsed());
        }
        percentiles(&format!("inclusion_proof (service caches) at {n}"), proofs);
    }
    drop(client);
    if let Some(task) = b.task.take() {
        b.rt.block_on(task.shutdown_async());
    }
}

criterion_group!(benches, query_benches);
criterion_main!(benches);

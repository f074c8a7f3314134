//! Log core benchmarks: durable appends/s by concurrency (real RocksDB, synced), verification
//! entries/s, inclusion/consistency proof latency on a large stored tree, and stored bytes per
//! entry.
//!
//! `cargo bench --bench log` measures; `cargo test --release --all-targets` smoke-runs each with
//! small sizes. Sizes: S62_BENCH_PROOF_ENTRIES (default 1,000,000), S62_BENCH_VERIFY_ENTRIES
//! (default 200,000), S62_BENCH_STORAGE_ENTRIES (default 200,000; 0 skips the bytes-per-entry
//! report). S62_BENCH_VERIFY_DIR keeps the verified logs between runs (see `verify_log`).
//!
//! Appends and verification run for format 3 (what new logs use; the plain names), format 2
//! (names ending `_format2`) and format 1 (names ending `_format1`), in the same run, so the cost
//! of sealing personal values into commitments reads as a ratio.

mod common;

/// The allocator the `s62` binary uses (src/main.rs), so these figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use s62::ingest::{LogWriter, WriterConfig};
use s62::log::entry::Entry;
use s62::log::epoch::{KeyEpochs, LogKeys};
use s62::log::hash::leaf_hash;
use s62::log::merkle::{
    consistency_proof, inclusion_proof, root_at, verify_consistency, verify_inclusion,
};
use s62::log::note::SignerKey;
use s62::log::store::rocks::RocksStore;
use s62::log::store::{LogStore, Store, StoreNodes};
use s62::verify::{VerifyOptions, verify_store};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ORIGIN: &str = "bench.s62/log";

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn size_from_env(var: &str, default: u64) -> u64 {
    if !measuring() {
        return 2_000;
    }
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [42u8; 32]).expect("key")
}

/// A realistic consultation intent, about 300 bytes encoded.
fn event(i: u64) -> Entry {
    common::consultation(i, 100_000)
}

/// Formats compared: (format_version, name suffix).
const FORMATS: [(u32, &str); 3] = [
    (s62::log::seal::FORMAT_V3, ""),
    (s62::log::seal::FORMAT_V2, "_format2"),
    (1, "_format1"),
];

fn writer_config(format: u32) -> WriterConfig {
    let mut cfg = WriterConfig::new(ORIGIN);
    cfg.new_log_format = format;
    cfg
}

/// Fills a RocksDB log with `n` entries through the real writer (format 3).
fn fill(store: Arc<dyn Store>, n: u64) {
    fill_as(store, n, s62::log::seal::FORMAT_V3)
}

/// Fills a RocksDB log with `n` proxy-shaped entries (intent, outcome) of `format` through the
/// real writer, from 256 concurrent producers, so its checkpoints are the ones the writer's
/// default cadence makes under load.
fn fill_as(store: Arc<dyn Store>, n: u64, format: u32) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (writer, task) = LogWriter::start(store, key(), writer_config(format)).expect("writer");
        let producers = 256u64;
        let mut handles = Vec::new();
        for p in 0..producers {
            let w = writer.clone();
            handles.push(tokio::spawn(async move {
                let mut i = p;
                while i < n {
                    w.append(common::proxy_shaped(i, 100_000))
                        .await
                        .expect("append");
                    i += producers;
                }
            }));
        }
        for h in handles {
            h.await.expect("producer");
        }
        task.shutdown_async().await;
    });
}

fn durable_appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    for (producers, (format, suffix)) in [1usize, 16, 256]
        .into_iter()
        .flat_map(|p| FORMATS.map(|f| (p, f)))
    {
        let per_iter = if measuring() {
            (producers as u64 * 64).max(512)
        } else {
            64
        };
        group.throughput(Throughput::Elements(per_iter));
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(RocksStore::open(dir.path()).expect("open"));
        let (writer, task) = rt.block_on(async {
            LogWriter::start(store, key(), writer_config(format)).expect("writer")
        });
        group.bench_function(
            BenchmarkId::from_parameter(format!("{producers}_producers{suffix}")),
            |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let writer = writer.clone();
                    async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let mut handles = Vec::with_capacity(producers);
                            for p in 0..producers {
                                let w = writer.clone();
                                let each = per_iter / producers as u64;
                                handles.push(tokio::spawn(async move {
                                    for i in 0..each {
                                        w.append(event(p as u64 * 1_000_000 + i))
                                            .await
                                            .expect("append");
                                    }
                                }));
                            }
                            for h in handles {
                                h.await.expect("producer");
                            }
                        }
                        start.elapsed()
                    }
                });
            },
        );
        rt.block_on(task.shutdown_async());
    }
    group.finish();
}

/// The storage ceiling: the same puts the writer makes for 256-entry batches (entry, node row,
/// index records, for formats 2 and 3 the value row, a checkpoint), written as synced RocksDB batches
/// with no queue, hashing or signing: the batches are built before the clock starts, so only
/// the store's commit is timed. `durable_append` divided by this is the writer's efficiency, and
/// a sealed format's row over the format-1 row is what the extra bytes and put cost RocksDB alone.
fn baseline_rocksdb_same_puts(c: &mut Criterion) {
    use criterion::BatchSize;
    use s62::log::store::LogStore;
    let mut group = c.benchmark_group("durable_append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    let batch_size = 256u64;
    let batches = if measuring() { 16 } else { 1 };
    group.throughput(Throughput::Elements(batches * batch_size));
    for (format, suffix) in FORMATS {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksStore::open(dir.path()).expect("open");
        let mut next = 0u64;
        group.bench_function(
            format!("baseline_rocksdb_same_puts_batches_of_256{suffix}"),
            |b| {
                b.iter_batched(
                    || {
                        (0..batches)
                            .map(|_| {
                                let batch = stored_batch(next, batch_size, format);
                                next += batch_size;
                                batch
                            })
                            .collect::<Vec<_>>()
                    },
                    |prepared| {
                        for batch in &prepared {
                            store.commit(batch).expect("write");
                        }
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    group.finish();
}

/// The puts of `n` consultation entries from `first` on, as the writer would commit them in
/// `format` (a zero chain and zero node hashes: RocksDB does not look at them).
fn stored_batch(first: u64, n: u64, format: u32) -> s62::log::store::CommitBatch {
    use s62::log::entry::encode;
    use s62::log::index::index_records;
    let mut batch = s62::log::store::CommitBatch::default();
    for seq in first..first + n {
        let mut e = event(seq);
        e.format_version = 1;
        e.seq = seq;
        e.prev_leaf_hash = vec![0u8; 32];
        batch.index.extend(index_records(&e));
        if s62::log::seal::is_sealed(format) {
            let values = s62::log::seal::seal(&mut e, &[7u8; 32], format);
            batch
                .values
                .push((seq, prost::Message::encode_to_vec(&values)));
        }
        batch.nodes.push((
            s62::log::merkle::NodeId {
                level: 0,
                index: seq,
            },
            Default::default(),
        ));
        batch.entries.push((seq, encode(&e)));
    }
    batch.checkpoint = Some((first + n, "x".repeat(200)));
    batch
}

fn verification(c: &mut Criterion) {
    let n = size_from_env("S62_BENCH_VERIFY_ENTRIES", 200_000);
    let mut group = c.benchmark_group("verify");
    group.sample_size(10).throughput(Throughput::Elements(n));
    for (format, suffix) in FORMATS {
        let (store, _dir) = verify_log(n, format);
        for check_indexes in [false, true] {
            let name = if check_indexes {
                format!("with_indexes{suffix}")
            } else {
                format!("chain_tree_checkpoints{suffix}")
            };
            group.bench_function(name, |b| {
                b.iter(|| {
                    let report = verify_store(
                        store.as_ref(),
                        VerifyOptions {
                            check_indexes,
                            ..VerifyOptions::new(LogKeys::from_epochs(KeyEpochs::starting_with(
                                key().verifier(),
                            )))
                        },
                    )
                    .expect("intact");
                    assert_eq!(report.entries, n);
                })
            });
            if check_indexes && measuring() {
                let cps = store.checkpoints(0, usize::MAX).map_or(0, |c| c.len());
                eprintln!("verify{suffix}: {n} entries, {cps} checkpoints");
            }
        }
    }
    group.finish();
}

/// The log `verification` reads: a fresh one in a temporary folder, or, with
/// `S62_BENCH_VERIFY_DIR` set, `<dir>/format<N>-<n>` kept between runs (filled only when it holds
/// no entries yet) beside its `log.pub`, so the same log can be profiled with `s62 verify`.
fn verify_log(n: u64, format: u32) -> (Arc<dyn Store>, Option<tempfile::TempDir>) {
    let (path, temp) = match std::env::var_os("S62_BENCH_VERIFY_DIR") {
        Some(dir) if measuring() => {
            let path = std::path::Path::new(&dir).join(format!("format{format}-{n}"));
            std::fs::create_dir_all(&path).expect("create the verify folder");
            (path, None)
        }
        _ => {
            let temp = tempfile::tempdir().expect("tempdir");
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(&path.join("log")).expect("open"));
    let held = store.entry_count().expect("count");
    assert!(
        held == 0 || held == n,
        "{} holds {held} entries, not {n}: remove it to fill it again",
        path.display()
    );
    if held == 0 {
        fill_as(store.clone(), n, format);
        std::fs::write(
            path.join("log.pub"),
            format!("{}\n", key().verifier().to_vkey()),
        )
        .expect("write log.pub");
    }
    (store, temp)
}

/// Bytes per proxy-shaped entry, including indexes (issue 13's storage figure), for each format:
/// the log is filled through the real writer from 256 producers (so its checkpoints are the
/// writer's), then each key family's keys and values are summed as stored (before compression),
/// and the folder is flushed and compacted to its bottom level and its table files measured (LZ4,
/// as the sidecar writes them). Printed, not timed. `S62_BENCH_STORAGE_ENTRIES` (default 200,000;
/// 0 skips it).
fn storage(_c: &mut Criterion) {
    let n = size_from_env("S62_BENCH_STORAGE_ENTRIES", 200_000);
    if n == 0 {
        return;
    }
    for (format, suffix) in FORMATS {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(RocksStore::open(dir.path()).expect("open"));
        fill_as(store.clone(), n, format);
        let mut families = std::collections::BTreeMap::<u8, (u64, u64)>::new();
        let mut from = Vec::new();
        loop {
            let page = store.scan(&[], &from, 50_000).expect("scan");
            let Some((last, _)) = page.last() else { break };
            from = last.clone();
            from.push(0);
            for (k, v) in &page {
                let f = families.entry(k[0]).or_default();
                f.0 += 1;
                f.1 += (k.len() + v.len()) as u64;
            }
        }
        store
            .purge(&[(Vec::new(), vec![0xff])])
            .expect("flush and compact");
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|f| f.path().extension().is_some_and(|x| x == "sst"))
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum();
        let stored: u64 = families.values().map(|f| f.1).sum();
        let per = |b: u64| b as f64 / n as f64;
        let detail: Vec<String> = families
            .iter()
            .map(|(f, (keys, bytes))| format!("{} {keys} keys {:.1} B", *f as char, per(*bytes)))
            .collect();
        eprintln!(
            "storage{suffix}: {n} proxy-shaped entries, {:.1} B/entry stored ({}), {:.1} B/entry in compacted LZ4 tables",
            per(stored),
            detail.join(", "),
            per(on_disk)
        );
        assert_eq!(
            families.get(&b'e').map(|f| f.0),
            Some(n),
            "one leaf per entry"
        );
        let value_rows = families.get(&b'v').map_or(0, |f| f.0);
        assert_eq!(value_rows, if format == 1 { 0 } else { n }, "value rows");
        assert!(on_disk > 0, "the compacted log has table files");
    }
}

fn proofs(c: &mut Criterion) {
    let n = size_from_env("S62_BENCH_PROOF_ENTRIES", 1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(dir.path()).expect("open"));
    fill(store.clone(), n);
    let nodes = StoreNodes(store.as_ref());
    let root = root_at(&nodes, n).expect("root");
    let mut group = c.benchmark_group(format!("proof_at_{n}_entries"));
    let mut i = 0u64;
    group.bench_function("inclusion_generate_and_verify", |b| {
        b.iter(|| {
            i = (i + 7_919) % n;
            let proof = inclusion_proof(&nodes, i, n).expect("proof");
            let leaf = leaf_hash(&store.entry(i).expect("read").expect("present"));
            verify_inclusion(&leaf, i, n, &proof, &root).expect("verifies");
        })
    });
    let mut j = 1u64;
    group.bench_function("consistency_generate_and_verify", |b| {
        b.iter(|| {
            j = (j + 7_919) % (n - 1) + 1;
            let old_root = root_at(&nodes, j).expect("old root");
            let proof = consistency_proof(&nodes, j, n).expect("proof");
            verify_consistency(j, n, &proof, &old_root, &root).expect("verifies");
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    durable_appends,
    baseline_rocksdb_same_puts,
    storage,
    verification,
    proofs
);
criterion_main!(benches);

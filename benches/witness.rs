//! Witness throughput: `add-checkpoint` requests per second through `s62 witness`'s core (parse
//! the body, verify the log's signature, check the consistency proof, cosign, persist the state
//! durably: temp file, fsync, rename, fsync of the folder), against a baseline measured in the
//! same run: one Ed25519 signature verification plus one signing (the crypto floor of a request),
//! and one durable file replacement written with `std::fs` alone (the storage floor).
//!
//! `cargo bench --bench witness` measures; `cargo test --release --all-targets` smoke-runs it.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer as _, SigningKey};
use s62::log::checkpoint::Checkpoint;
use s62::log::cosignature::CosignerKey;
use s62::log::hash::leaf_hash;
use s62::log::merkle::{MemoryNodes, consistency_proof, root_of};
use s62::log::note::SignerKey;
use s62::log::tlog_witness::AddCheckpoint;
use s62::witness::server::Witness;
use s62::witness::verdict::TrustedLog;
use std::time::{Duration, Instant};

const ORIGIN: &str = "bench.s62/log";
/// Entries between two submitted checkpoints.
const STEP: u64 = 64;

/// `n` request bodies for sizes STEP, 2·STEP, …, each with the proof from the previous one.
fn bodies(n: u64) -> (Vec<String>, TrustedLog) {
    let key = SignerKey::from_seed(ORIGIN, [42u8; 32]).expect("key");
    let leaves: Vec<_> = (0..n * STEP)
        .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
        .collect();
    let (nodes, _) = MemoryNodes::from_leaves(&leaves);
    let mut out = Vec::new();
    for k in 1..=n {
        let (old, size) = ((k - 1) * STEP, k * STEP);
        let note = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: root_of(&leaves[..size as usize]),
            extensions: vec![],
        }
        .sign(&key)
        .expect("sign");
        let proof = if old == 0 {
            vec![]
        } else {
            consistency_proof(&nodes, old, size).expect("proof")
        };
        out.push(
            AddCheckpoint {
                old_size: old,
                proof,
                checkpoint: note,
            }
            .to_body()
            .expect("body"),
        );
    }
    (
        out,
        TrustedLog {
            origin: ORIGIN.into(),
            keys: vec![key.verifier()],
        },
    )
}

fn witness(c: &mut Criterion) {
    let mut g = c.benchmark_group("witness");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("add_checkpoint_durable", |b| {
        b.iter_custom(|iters| {
            let (bodies, log) = bodies(iters);
            let dir = tempfile::tempdir().expect("tempdir");
            let w = Witness::open(
                CosignerKey::from_seed("bench.witness", [7u8; 32]).expect("key"),
                vec![log],
                dir.path(),
            )
            .expect("witness");
            let start = Instant::now();
            for (i, body) in bodies.iter().enumerate() {
                let a = w.add_checkpoint(body.as_bytes(), 1_800_000_000 + i as u64);
                assert_eq!(a.status, 200, "{a:?}");
            }
            start.elapsed()
        })
    });
    let sk = SigningKey::from_bytes(&[9u8; 32]);
    let vk = sk.verifying_key();
    let msg = b"bench.s62/log\n4096\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    let sig = sk.sign(msg);
    g.bench_function("baseline_ed25519_verify_and_sign", |b| {
        b.iter(|| {
            vk.verify_strict(msg, &sig).expect("verifies");
            sk.sign(msg)
        })
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, tmp) = (dir.path().join("state"), dir.path().join(".state.tmp"));
    g.bench_function("baseline_durable_replace", |b| {
        b.iter(|| {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp).expect("create");
            f.write_all(&[b'x'; 400]).expect("write");
            f.sync_all().expect("fsync");
            std::fs::rename(&tmp, &path).expect("rename");
            std::fs::File::open(dir.path())
                .and_then(|d| d.sync_all())
                .expect("fsync dir");
        })
    });
    g.finish();
}

criterion_group!(benches, witness);
criterion_main!(benches);

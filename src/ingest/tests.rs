//! Scenarios for the group-commit writer over the in-memory store.

use super::*;
use crate::log::checkpoint::open_checkpoint;
use crate::log::merkle::root_of;
use crate::log::store::memory::MemoryStore;

fn key() -> SignerKey {
    SignerKey::from_seed("test.s62/log", [7u8; 32]).expect("valid key name")
}

fn consultation(subject: &str) -> Entry {
    Entry {
        kind: EntryKind::Intent as i32,
        operation: Operation::Consultation as i32,
        subject_ids: vec![subject.to_owned()],
        ..Default::default()
    }
}

fn start(store: Arc<dyn Store>, cfg: WriterConfig) -> (LogWriter, WriterTask) {
    LogWriter::start(store, key(), cfg).expect("writer starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_distinct_consecutive_seqs_all_soon_covered_by_a_signed_checkpoint()
{
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), WriterConfig::new("test.s62/log"));
    let mut handles = Vec::new();
    for i in 0..200 {
        let w = writer.clone();
        handles.push(tokio::spawn(async move {
            w.append(consultation(&format!("P-{i}"))).await
        }));
    }
    let mut receipts = Vec::new();
    for h in handles {
        receipts.push(h.await.expect("task").expect("appended"));
    }
    receipts.sort_by_key(|r| r.seq);
    assert_eq!(
        receipts.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );
    for r in &receipts {
        // Signed in its own commit, or by the writer's next checkpoint (it goes idle here).
        let size = match r.checkpoint_size {
            Some(size) => size,
            None => writer.covered(r.seq).await.expect("covered"),
        };
        assert!(
            size > r.seq,
            "receipt {r:?} is covered by checkpoint {size}"
        );
        let note = store
            .checkpoint(size)
            .expect("read")
            .expect("checkpoint stored");
        let (cp, _) =
            open_checkpoint(&note, &[key().verifier()], Some("test.s62/log")).expect("verifies");
        assert_eq!(cp.size, size);
    }
    assert!(
        writer.stats().batches.load(Ordering::Relaxed) < 200,
        "200 concurrent appends were group-committed"
    );
    let latest = writer
        .checkpoints()
        .borrow()
        .clone()
        .expect("a checkpoint was announced");
    assert_eq!(latest.0, 200);
    assert_eq!(
        store.checkpoint(200).expect("read").as_deref(),
        Some(&*latest.1),
        "the announced checkpoint is the stored one"
    );
    task.shutdown_async().await;

    // The stored bytes chain and form the tree the last checkpoint signs.
    let stored = store.entries(0, 1000).expect("entries");
    let leaves: Vec<Hash> = stored.iter().map(|(_, b)| leaf_hash(b)).collect();
    let mut prev = Hash::GENESIS;
    let mut last_time = 0;
    for ((seq, bytes), leaf) in stored.iter().zip(&leaves) {
        let e = entry::decode(bytes).expect("decodes");
        assert_eq!(e.seq, *seq);
        assert_eq!(Hash::from_slice(&e.prev_leaf_hash), Some(prev));
        assert!(e.time_unix_nanos >= last_time, "time never goes backwards");
        last_time = e.time_unix_nanos;
        prev = *leaf;
    }
    let (size, note) = store.latest_checkpoint().expect("read").expect("some");
    let (cp, _) = open_checkpoint(&note, &[key().verifier()], None).expect("verifies");
    assert_eq!(size, 200);
    assert_eq!(cp.root, root_of(&leaves));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_append_is_committed_by_the_writer_thread_itself_unless_configured_otherwise() {
    for inline in [true, false] {
        let store = Arc::new(MemoryStore::new());
        let cfg = WriterConfig {
            inline_idle_commits: inline,
            ..WriterConfig::new(ORIGIN)
        };
        let (writer, task) = start(store.clone(), cfg);
        for i in 0..5 {
            let r = writer
                .append(consultation(&format!("P-{i}")))
                .await
                .expect("appended");
            assert_eq!((r.seq, r.checkpoint_size), (i, Some(i + 1)));
        }
        let stats = writer.stats();
        assert_eq!(stats.batches.load(Ordering::Relaxed), 5);
        assert_eq!(
            stats.inline_batches.load(Ordering::Relaxed),
            if inline { 5 } else { 0 },
            "one append at a time, nothing in flight: inline {inline}"
        );
        task.shutdown_async().await;
        verify(&store).expect("verifies");
    }
}

#[tokio::test]
async fn a_failed_write_refuses_the_batch_and_the_next_batch_continues_without_a_gap() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), WriterConfig::new("test.s62/log"));
    let first = writer.append(consultation("P-1")).await.expect("appended");
    store.set_failing(true);
    let refused = writer.append(consultation("P-2")).await;
    assert!(
        matches!(&refused, Err(AppendError::Storage(msg)) if msg.contains("No space left")),
        "{refused:?}"
    );
    assert_eq!(
        store.entry_count().expect("count"),
        1,
        "nothing of the failed batch is stored"
    );
    assert!(writer.stats().last_error().is_some());
    store.set_failing(false);
    let next = writer
        .append(consultation("P-3"))
        .await
        .expect("appended after recovery");
    assert_eq!(
        next.seq,
        first.seq + 1,
        "the refused entry left no hole in the sequence"
    );
    let stored = store.opened(1).expect("read").expect("present").entry;
    assert_eq!(stored.subject_ids, ["P-3"]);
    assert_eq!(
        Hash::from_slice(&stored.prev_leaf_hash),
        Some(first.leaf_hash)
    );
    assert!(writer.stats().last_error().is_none());
    task.shutdown_async().await;
}

/// A store whose writes wait until the test opens the gate, and fail once when the test arms
/// `fail_next`, or panic once (a bug below the writer, not an I/O error) when it arms
/// `panic_next`.
#[derive(Default)]
struct GatedStore {
    inner: MemoryStore,
    gate: std::sync::Mutex<()>,
    fail_next: std::sync::atomic::AtomicBool,
    panic_next: std::sync::atomic::AtomicBool,
}

impl Store for GatedStore {
    fn write(&self, puts: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        if self.panic_next.swap(false, Ordering::SeqCst) {
            panic!("injected: a panic inside the store's write");
        }
        let _open = self
            .gate
            .lock()
            .map_err(|_| StoreError::Backend("gate".into()))?;
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Backend("injected I/O error".into()));
        }
        self.inner.write(puts)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn scan(&self, p: &[u8], f: &[u8], l: usize) -> Result<crate::log::store::Pairs, StoreError> {
        self.inner.scan(p, f, l)
    }
    fn last(&self, p: &[u8]) -> Result<Option<crate::log::store::Pair>, StoreError> {
        self.inner.last(p)
    }
}

// The gate is a std mutex on purpose: the writer is an OS thread that blocks on it.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_stays_full_fails_the_append_after_the_configured_wait() {
    let store = Arc::new(GatedStore::default());
    let cfg = WriterConfig {
        queue_capacity: 2,
        queue_wait: Duration::from_millis(100),
        max_batch: 1,
        ..WriterConfig::new("test.s62/log")
    };
    let (writer, task) = start(store.clone(), cfg);
    let gate = store.gate.lock().expect("gate");
    // One entry is stuck in the commit thread, one prepared behind it, two fill the queue.
    let stuck: Vec<_> = (0..4)
        .map(|i| {
            let w = writer.clone();
            tokio::spawn(async move { w.append(consultation(&format!("P-{i}"))).await })
        })
        .collect();
    // Wait (polling, not a fixed sleep) until that is so: two queued behind the stuck one.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while writer.queue_depth() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never filled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let over = writer.append(consultation("P-over")).await;
    assert!(matches!(over, Err(AppendError::QueueFull(_))), "{over:?}");
    drop(gate);
    for h in stuck {
        h.await
            .expect("task")
            .expect("the queued entries are written once the log frees up");
    }
    assert_eq!(
        store.inner.entry_count().expect("count"),
        4,
        "the refused entry was not written"
    );
    task.shutdown_async().await;
}

#[tokio::test]
async fn a_restarted_writer_continues_the_chain_and_tree() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), WriterConfig::new("test.s62/log"));
    let before = writer.append(consultation("P-1")).await.expect("appended");
    task.shutdown_async().await;

    let (writer, task) = start(store.clone(), WriterConfig::new("test.s62/log"));
    let after = writer.append(consultation("P-2")).await.expect("appended");
    assert_eq!(after.seq, before.seq + 1);
    let e = entry::decode(&store.entry(after.seq).expect("read").expect("present")).expect("ok");
    assert_eq!(Hash::from_slice(&e.prev_leaf_hash), Some(before.leaf_hash));
    task.shutdown_async().await;
}

#[tokio::test]
async fn a_folder_holding_another_log_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), WriterConfig::new("test.s62/log"));
    writer.append(consultation("P-1")).await.expect("appended");
    task.shutdown_async().await;
    let other = LogWriter::start(store, key(), WriterConfig::new("other.s62/log"));
    assert!(matches!(other, Err(OpenError::OriginMismatch { .. })));
}

#[tokio::test]
async fn a_truncated_folder_is_refused_at_start() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), WriterConfig::new("test.s62/log"));
    writer.append(consultation("P-1")).await.expect("appended");
    writer.append(consultation("P-2")).await.expect("appended");
    task.shutdown_async().await;
    store.tamper(&crate::log::store::entry_key(1), None);
    let reopened = LogWriter::start(store, key(), WriterConfig::new("test.s62/log"));
    assert!(matches!(reopened, Err(OpenError::Inconsistent(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_what_was_queued_and_then_refuses() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), WriterConfig::new("test.s62/log"));
    let pending: Vec<_> = (0..50)
        .map(|i| {
            let w = writer.clone();
            tokio::spawn(async move { w.append(consultation(&format!("P-{i}"))).await })
        })
        .collect();
    tokio::task::yield_now().await;
    task.shutdown_async().await;
    let mut written = 0;
    for h in pending {
        match h.await.expect("task") {
            Ok(_) => written += 1,
            Err(AppendError::Closed) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(
        store.entry_count().expect("count"),
        written,
        "every Ok receipt is stored, nothing else"
    );
    assert!(matches!(
        writer.append(consultation("late")).await,
        Err(AppendError::Closed)
    ));
}

#[tokio::test]
async fn a_rotated_key_takes_over_and_the_handover_checkpoint_carries_both_signatures() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), WriterConfig::new("test.s62/log"));
    writer.append(consultation("P-1")).await.expect("appended");
    task.shutdown_async().await;

    let new_key = SignerKey::from_seed("test.s62/log", [8u8; 32]).expect("key");
    let stranger = SignerKey::from_seed("test.s62/log", [9u8; 32]).expect("key");
    assert!(
        matches!(
            rotate_key(
                store.clone(),
                stranger,
                SignerKey::from_seed("test.s62/log", [8u8; 32]).expect("key"),
                "test.s62/log"
            ),
            Err(RotateError::NotCurrentKey(_))
        ),
        "only the current key can hand over"
    );
    let handover = rotate_key(store.clone(), key(), new_key, "test.s62/log").expect("rotated");
    assert_eq!(handover.seq, 1);
    let note = store.checkpoint(2).expect("read").expect("stored");
    let new_key = SignerKey::from_seed("test.s62/log", [8u8; 32]).expect("key");
    for k in [key(), new_key] {
        open_checkpoint(&note, &[k.verifier()], None)
            .expect("each key alone verifies the handover");
    }

    let new_key = SignerKey::from_seed("test.s62/log", [8u8; 32]).expect("key");
    let (writer, task) =
        LogWriter::start(store.clone(), new_key, WriterConfig::new("test.s62/log"))
            .expect("starts");
    writer.append(consultation("P-2")).await.expect("appended");
    task.shutdown_async().await;
    let after = store.checkpoint(3).expect("read").expect("stored");
    assert!(
        open_checkpoint(&after, &[key().verifier()], None).is_err(),
        "the old key no longer signs"
    );
    let mut epochs = crate::log::epoch::KeyEpochs::starting_with(key().verifier());
    epochs
        .hand_over(
            2,
            SignerKey::from_seed("test.s62/log", [8u8; 32])
                .expect("key")
                .verifier(),
        )
        .expect("handover");
    let report = crate::verify::verify_store(
        store.as_ref(),
        crate::verify::VerifyOptions::new(crate::log::epoch::LogKeys::from_epochs(epochs)),
    )
    .expect("the whole log verifies with the key set");
    assert_eq!(report.entries, 3);
    assert_eq!(report.epochs.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Insiders with access to the folder but not the key (issue 8): each attack, then its refusal.
// ---------------------------------------------------------------------------------------------

const ORIGIN: &str = "test.s62/log";

fn justified(subject: &str, why: &str) -> Entry {
    Entry {
        justification: Some(crate::log::entry::Justification {
            text: why.to_owned(),
            ..Default::default()
        }),
        ..consultation(subject)
    }
}

/// A log of `n` entries with a checkpoint at every commit, for the tamper scenarios.
async fn log_of(store: &Arc<MemoryStore>, n: u64, batch: usize) {
    let cfg = WriterConfig {
        max_batch: batch,
        cadence: Cadence::every_commit(),
        ..WriterConfig::new(ORIGIN)
    };
    let (writer, task) = start(store.clone(), cfg);
    for i in 0..n {
        writer
            .append(justified(&format!("P-{i}"), "routine enquiry"))
            .await
            .expect("appended");
    }
    task.shutdown_async().await;
}

fn checkpoint_note(size: u64, root: Hash, signer: &SignerKey) -> String {
    Checkpoint {
        origin: ORIGIN.into(),
        size,
        root,
        extensions: Vec::new(),
    }
    .sign(signer)
    .expect("signs")
}

#[tokio::test]
async fn a_keyless_rewrite_is_refused_at_start_instead_of_being_signed_with_the_real_key() {
    use crate::log::store::{checkpoint_key, forge};
    let store = Arc::new(MemoryStore::new());
    log_of(&store, 10, 1).await;
    // The insider changes entry 4's justification, re-links everything after it, and tops the
    // rewritten tree with a checkpoint signed by a key of their own.
    let (size, root) = forge::rewrite_from(&store, 4, |e| {
        e.justification = Some(crate::log::entry::Justification {
            text: "authorised by the superintendent".into(),
            ..Default::default()
        });
    });
    let insider = SignerKey::from_seed(ORIGIN, [66u8; 32]).expect("key");
    store.tamper(
        &checkpoint_key(size),
        Some(checkpoint_note(size, root, &insider).into_bytes()),
    );
    let started = LogWriter::start(store.clone(), key(), WriterConfig::new(ORIGIN));
    let Err(err) = started else {
        panic!("the writer started on a forged folder");
    };
    assert!(
        matches!(err, OpenError::UntrustedCheckpoint { size: 10, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("tree size 10"), "{err}");
    assert!(
        store.checkpoint(11).expect("read").is_none(),
        "nothing was signed over the forged tree"
    );
}

#[tokio::test]
async fn a_retired_key_cannot_start_the_writer_at_the_handover_or_after_it() {
    let store = Arc::new(MemoryStore::new());
    log_of(&store, 2, 1).await;
    let new_key = || SignerKey::from_seed(ORIGIN, [8u8; 32]).expect("key");
    rotate_key(store.clone(), key(), new_key(), ORIGIN).expect("rotated");
    // The handover checkpoint carries the old key's signature too; the handover entry retires it.
    let at_handover = LogWriter::start(store.clone(), key(), WriterConfig::new(ORIGIN));
    assert!(
        matches!(at_handover, Err(OpenError::RetiredKey { seq: 2, .. })),
        "{:?}",
        at_handover.err()
    );
    let (writer, task) =
        LogWriter::start(store.clone(), new_key(), WriterConfig::new(ORIGIN)).expect("new key");
    writer.append(consultation("P-9")).await.expect("appended");
    task.shutdown_async().await;
    let later = LogWriter::start(store.clone(), key(), WriterConfig::new(ORIGIN));
    assert!(
        matches!(later, Err(OpenError::UntrustedCheckpoint { size: 4, .. })),
        "{:?}",
        later.err()
    );
    assert!(
        matches!(
            rotate_key(
                store,
                key(),
                SignerKey::from_seed(ORIGIN, [9u8; 32]).expect("key"),
                ORIGIN
            ),
            Err(RotateError::NotCurrentKey(_))
        ),
        "a retired key cannot hand the log over again"
    );
}

#[tokio::test]
async fn a_cut_tail_is_refused_against_a_kept_checkpoint() {
    use crate::log::store::forge;
    let store = Arc::new(MemoryStore::new());
    log_of(&store, 8, 1).await;
    let kept_note = store.checkpoint(8).expect("read").expect("stored");
    let (kept, _) = open_checkpoint(&kept_note, &[key().verifier()], Some(ORIGIN)).expect("ok");
    forge::cut_tail(&store, 5);
    let kept = KeptCheckpoint {
        place: "admin.checkpoint_dir/checkpoint".into(),
        size: kept.size,
        root: Some(kept.root),
    };
    let cfg = WriterConfig {
        kept: vec![kept.clone()],
        ..WriterConfig::new(ORIGIN)
    };
    let refused = LogWriter::start(store.clone(), key(), cfg);
    let Err(err) = refused else {
        panic!("the writer started on a cut folder and would fork the log");
    };
    assert!(
        matches!(
            &err,
            OpenError::Behind {
                kept: 8,
                ours: 5,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("admin.checkpoint_dir"), "{err}");
    // Without the kept checkpoint the cut prefix looks whole: that is why it must be kept.
    LogWriter::start(store, key(), WriterConfig::new(ORIGIN))
        .expect("nothing inside the folder shows the cut")
        .1
        .shutdown_async()
        .await;
}

#[tokio::test]
async fn a_fork_from_a_kept_checkpoint_is_refused_and_a_kept_prefix_is_accepted() {
    let honest = Arc::new(MemoryStore::new());
    log_of(&honest, 6, 1).await;
    let note = honest.checkpoint(4).expect("read").expect("stored");
    let (cp, _) = open_checkpoint(&note, &[key().verifier()], Some(ORIGIN)).expect("ok");
    let kept = |cp: &Checkpoint| KeptCheckpoint {
        place: "witness w1".into(),
        size: cp.size,
        root: Some(cp.root),
    };
    // The same key writes a different history: a fork of the kept size-4 tree.
    let fork = Arc::new(MemoryStore::new());
    let (writer, task) = start(
        fork.clone(),
        WriterConfig {
            cadence: Cadence::every_commit(),
            ..WriterConfig::new(ORIGIN)
        },
    );
    for i in 0..6 {
        writer
            .append(consultation(&format!("Q-{i}")))
            .await
            .expect("appended");
    }
    task.shutdown_async().await;
    let cfg = WriterConfig {
        kept: vec![kept(&cp)],
        ..WriterConfig::new(ORIGIN)
    };
    assert!(
        matches!(
            LogWriter::start(fork, key(), cfg.clone()),
            Err(OpenError::Forked { size: 4, .. })
        ),
        "a folder disagreeing with a kept checkpoint is refused"
    );
    LogWriter::start(honest, key(), cfg)
        .expect("the honest folder contains the kept checkpoint")
        .1
        .shutdown_async()
        .await;
}

#[tokio::test]
async fn an_over_long_indexed_value_is_refused_and_the_rest_of_its_batch_is_stored() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), WriterConfig::new(ORIGIN));
    let long = "P".repeat(crate::log::index::MAX_INDEXED_VALUE_BYTES + 1);
    let (a, b, c) = tokio::join!(
        writer.append(consultation("P-1")),
        writer.append(consultation(&long)),
        writer.append(consultation("P-2")),
    );
    assert!(a.is_ok() && c.is_ok());
    assert!(
        matches!(b, Err(AppendError::ValueTooLong { family: "subject", bytes }) if bytes == long.len()),
        "{b:?}"
    );
    task.shutdown_async().await;
    assert_eq!(store.entry_count().expect("count"), 2);
    let keys = crate::log::epoch::LogKeys::from_epochs(
        crate::log::epoch::KeyEpochs::starting_with(key().verifier()),
    );
    crate::verify::verify_store(store.as_ref(), crate::verify::VerifyOptions::new(keys))
        .expect("the log and its indexes agree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_every_commit_the_last_entry_of_every_batch_announces_its_checkpoint() {
    let store = Arc::new(MemoryStore::new());
    let cfg = WriterConfig {
        cadence: Cadence::every_commit(),
        ..WriterConfig::new(ORIGIN)
    };
    let (writer, task) = start(store.clone(), cfg);
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let w = writer.clone();
            tokio::spawn(async move { w.append(consultation(&format!("P-{i}"))).await })
        })
        .collect();
    for h in handles {
        h.await.expect("task").expect("appended");
    }
    task.shutdown_async().await;
    let mut marked = 0;
    for (seq, bytes) in store.entries(0, 100).expect("entries") {
        let e = entry::decode(&bytes).expect("decodes");
        let stored = store.checkpoint(seq + 1).expect("read").is_some();
        assert_eq!(
            e.checkpoint_follows,
            stored,
            "entry {seq}: the mark says whether a checkpoint of size {} exists",
            seq + 1
        );
        marked += usize::from(stored);
    }
    assert_eq!(
        marked as u64,
        writer.stats().batches.load(Ordering::Relaxed),
        "one mark per committed batch"
    );
}

/// A writer that never goes idle long enough to sign on its own: only the cadence's rules, a
/// request or shutdown make it sign.
fn cadence(interval_ms: u64, max_entries: u64) -> WriterConfig {
    WriterConfig {
        cadence: Cadence {
            interval: Duration::from_millis(interval_ms),
            max_entries,
            idle: Duration::from_secs(3600),
        },
        ..WriterConfig::new(ORIGIN)
    }
}

fn stored_checkpoint_sizes(store: &MemoryStore) -> Vec<u64> {
    store
        .checkpoints(0, 10_000)
        .expect("read")
        .into_iter()
        .map(|(size, _)| size)
        .collect()
}

fn verify(store: &MemoryStore) -> Result<crate::verify::Report, crate::verify::VerifyError> {
    let keys = crate::log::epoch::LogKeys::from_epochs(
        crate::log::epoch::KeyEpochs::starting_with(key().verifier()),
    );
    crate::verify::verify_store(store, crate::verify::VerifyOptions::new(keys))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_checkpoint_is_signed_every_max_entries_not_every_commit() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), cadence(3_600_000, 50));
    // Eight producers, each appending one entry after another: many small commits.
    let handles: Vec<_> = (0..8)
        .map(|p| {
            let w = writer.clone();
            tokio::spawn(async move {
                let mut receipts = Vec::new();
                for i in 0..50 {
                    let r = w.append(consultation(&format!("P-{p}-{i}"))).await;
                    receipts.push(r.expect("appended"));
                }
                receipts
            })
        })
        .collect();
    let mut receipts = Vec::new();
    for h in handles {
        receipts.extend(h.await.expect("task"));
    }
    receipts.sort_by_key(|r| r.seq);
    let batches = writer.stats().batches.load(Ordering::Relaxed);
    task.shutdown_async().await;
    // The first commit of a log always signs (so a folder never holds entries and no
    // checkpoint); from there, one per 50 entries.
    let first = receipts
        .iter()
        .find_map(|r| r.checkpoint_size)
        .expect("the first commit signs");
    let expected: Vec<u64> = std::iter::once(first)
        .chain((1..).map(|i| first + i * 50).take_while(|s| *s <= 400))
        .chain((!(400 - first).is_multiple_of(50)).then_some(400))
        .collect();
    assert_eq!(
        stored_checkpoint_sizes(&store),
        expected,
        "one checkpoint per 50 entries, whatever the batches ({batches} commits), and one at shutdown"
    );
    for r in &receipts {
        if let Some(size) = r.checkpoint_size {
            assert!(
                expected.contains(&size) && size > r.seq && size - r.seq <= 50,
                "{r:?} names its own commit's checkpoint"
            );
        }
    }
    let report = verify(&store).expect("the log verifies against its recorded cadence");
    assert_eq!(report.entries, 400);
    assert!(
        batches > 9,
        "more commits ({batches}) than checkpoints, or this shows nothing"
    );
}

#[tokio::test]
async fn a_commit_at_least_interval_ms_after_its_stretch_began_signs() {
    use std::sync::atomic::AtomicI64;
    let now = Arc::new(AtomicI64::new(1_000_000_000));
    let clock = {
        let now = now.clone();
        // Each commit reads the clock once; 30 ms pass between commits.
        Clock::from_fn(move || now.fetch_add(30_000_000, Ordering::SeqCst))
    };
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(
        store.clone(),
        WriterConfig {
            clock,
            ..cadence(100, 1_000_000)
        },
    );
    // The first commit of a log always signs; the interval runs from the next one.
    let mut signed = Vec::new();
    for i in 0..11 {
        let r = writer
            .append(consultation(&format!("P-{i}")))
            .await
            .expect("appended");
        signed.push(r.checkpoint_size);
    }
    // Then stretches begin every 150 ms: the commit 120 ms into one is the first at least
    // 100 ms after its start, so sizes 1, 6 and 11 are signed, and nothing between.
    assert_eq!(
        signed,
        [
            Some(1),
            None,
            None,
            None,
            None,
            Some(6),
            None,
            None,
            None,
            None,
            Some(11)
        ]
    );
    task.shutdown_async().await;
    assert_eq!(stored_checkpoint_sizes(&store), [1, 6, 11]);
    verify(&store).expect("verifies");
}

#[tokio::test]
async fn an_idle_writer_signs_what_it_holds_and_a_requested_signature_is_immediate() {
    let store = Arc::new(MemoryStore::new());
    let cfg = WriterConfig {
        cadence: Cadence {
            interval: Duration::from_secs(3600),
            max_entries: 1_000_000,
            idle: Duration::from_millis(20),
        },
        ..WriterConfig::new(ORIGIN)
    };
    let (writer, task) = start(store.clone(), cfg);
    let first = writer.append(consultation("P-0")).await.expect("appended");
    assert_eq!(first.checkpoint_size, Some(1), "a log's first commit signs");
    let r = writer.append(consultation("P-1")).await.expect("appended");
    assert_eq!(r.checkpoint_size, None, "durable, not yet signed");
    assert_eq!(writer.covered(r.seq).await, Some(2), "signed once idle");
    let signed = writer
        .append_signed(consultation("P-2"))
        .await
        .expect("appended");
    assert_eq!(signed.checkpoint_size, 3);
    assert!(store.checkpoint(3).expect("read").is_some());
    task.shutdown_async().await;
    verify(&store).expect("verifies");
}

/// Five consultations, one commit each, by a writer at `cfg` that signs only its first commit;
/// then the power goes: what the folder holds (five durable entries, one checkpoint).
async fn five_commits_then_a_power_cut(cfg: WriterConfig) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), cfg);
    for i in 0..5 {
        writer
            .append(consultation(&format!("P-{i}")))
            .await
            .expect("appended");
    }
    let crashed = Arc::new(store.crashed_copy());
    task.shutdown_async().await;
    assert_eq!(stored_checkpoint_sizes(&crashed), [1]);
    crashed
}

#[tokio::test]
async fn after_a_crash_the_restarted_writer_checks_and_signs_the_unsigned_tail() {
    let crashed = five_commits_then_a_power_cut(cadence(3_600_000, 1_000_000)).await;
    let report = verify(&crashed).expect("the signed prefix verifies");
    assert_eq!(
        report.unsigned_tail, 4,
        "and the tail is reported as unsigned"
    );

    let (writer, task) = start(crashed.clone(), cadence(3_600_000, 1_000_000));
    assert_eq!(stored_checkpoint_sizes(&crashed), [1, 5], "signed at start");
    let next = writer.append(consultation("P-5")).await.expect("appended");
    assert_eq!(next.seq, 5, "appends continue after the tail");
    task.shutdown_async().await;
    let report = verify(&crashed).expect("the recovered log verifies, cadence records included");
    assert_eq!(report.unsigned_tail, 0);
}

#[tokio::test]
async fn an_unsigned_tail_that_announces_a_checkpoint_is_refused_instead_of_signed() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), cadence(0, 1_000_000));
    for i in 0..4 {
        writer
            .append(consultation(&format!("P-{i}")))
            .await
            .expect("appended");
    }
    task.shutdown_async().await;
    // An insider deletes the last two checkpoints, hoping the restart signs a tail they edit.
    store.tamper(&crate::log::store::checkpoint_key(4), None);
    store.tamper(&crate::log::store::checkpoint_key(3), None);
    // A log that signs every commit never has an unsigned tail: refused outright.
    let reopened = LogWriter::start(store.clone(), key(), cadence(0, 1_000_000));
    assert!(
        matches!(&reopened, Err(OpenError::Inconsistent(why)) if why.contains("signs every commit")),
        "{:?}",
        reopened.err()
    );
    // Even configured to sign at an interval, a tail holding an announcing entry is refused.
    let reopened = LogWriter::start(store, key(), cadence(3_600_000, 1_000_000));
    assert!(
        matches!(&reopened, Err(OpenError::Inconsistent(why)) if why.contains("announces a checkpoint of size 3")),
        "{:?}",
        reopened.err()
    );
}

#[tokio::test]
async fn a_restart_refuses_to_sign_a_tail_longer_or_older_than_its_cadence_allows() {
    use std::sync::atomic::AtomicI64;
    // 30 ms pass between commits; a writer that would sign only hourly or every million.
    let clock = |now: &Arc<AtomicI64>| {
        let now = now.clone();
        Clock::from_fn(move || now.fetch_add(30_000_000, Ordering::SeqCst))
    };
    let now = Arc::new(AtomicI64::new(1_000_000_000));
    // A power cut leaves entries 1..=4 unsigned: four entries whose times span 90 ms.
    let crashed = five_commits_then_a_power_cut(WriterConfig {
        clock: clock(&now),
        ..cadence(3_600_000, 1_000_000)
    })
    .await;
    let restart = |interval_ms, max_entries| {
        LogWriter::start(
            crashed.clone(),
            key(),
            WriterConfig {
                clock: clock(&now),
                ..cadence(interval_ms, max_entries)
            },
        )
    };
    // A writer holding at most 3 unsigned entries could not have left 4.
    let refused = restart(3_600_000, 3);
    assert!(
        matches!(&refused, Err(OpenError::Inconsistent(why)) if why.contains("4 unsigned entries") && why.contains("max_entries")),
        "{:?}",
        refused.err()
    );
    // A writer signing every 60 ms would have signed the commit 60 ms into the tail.
    let refused = restart(60, 1_000_000);
    assert!(
        matches!(&refused, Err(OpenError::Inconsistent(why)) if why.contains("entry 3, unsigned")),
        "{:?}",
        refused.err()
    );
    assert_eq!(stored_checkpoint_sizes(&crashed), [1], "nothing was signed");
    // Within both limits (4 entries, 90 ms < 100 ms), the tail is checked and signed.
    let (_writer, task) = restart(100, 4).expect("a tail within the cadence is signed");
    assert_eq!(stored_checkpoint_sizes(&crashed), [1, 5]);
    task.shutdown_async().await;
}

#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_prepared_on_top_of_a_failed_commit_is_refused_even_if_the_disk_recovered() {
    let store = Arc::new(GatedStore::default());
    // Never idle: no checkpoint of its own gets between the two batches. P-1 must go through
    // the commit thread for P-2 to be prepared beside it (an idle writer commits P-1 itself,
    // and P-2 then waits in the queue).
    let cfg = WriterConfig {
        max_batch: 1,
        inline_idle_commits: false,
        ..cadence(3_600_000, 1_000_000)
    };
    let (writer, task) = start(store.clone(), cfg);
    writer.append(consultation("P-0")).await.expect("appended");
    store.fail_next.store(true, Ordering::SeqCst);
    let gate = store.gate.lock().expect("gate");
    let w = writer.clone();
    let failing = tokio::spawn(async move { w.append(consultation("P-1")).await });
    // Let P-1 reach the store (held at the gate), then P-2 be prepared on top of it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let w = writer.clone();
    let on_top = tokio::spawn(async move { w.append(consultation("P-2")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(writer.queue_depth(), 0, "P-2 was taken and prepared");
    drop(gate);
    let failed = failing.await.expect("task");
    assert!(matches!(failed, Err(AppendError::Storage(_))), "{failed:?}");
    let refused = on_top.await.expect("task");
    assert!(
        matches!(&refused, Err(AppendError::Storage(why)) if why.contains("earlier commit failed")),
        "an entry chained to a failed one must not be stored: {refused:?}"
    );
    let next = writer.append(consultation("P-3")).await.expect("appended");
    assert_eq!(next.seq, 1, "no refused entry left a hole");
    task.shutdown_async().await;
    verify(&store.inner).expect("verifies");
}

#[tokio::test]
async fn a_failed_commit_also_refuses_the_batch_prepared_on_top_of_it() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start(store.clone(), WriterConfig::new(ORIGIN));
    writer.append(consultation("P-0")).await.expect("appended");
    store.set_failing(true);
    let handles: Vec<_> = (1..40)
        .map(|i| {
            let w = writer.clone();
            tokio::spawn(async move { w.append(consultation(&format!("P-{i}"))).await })
        })
        .collect();
    for h in handles {
        let r = h.await.expect("task");
        assert!(matches!(r, Err(AppendError::Storage(_))), "{r:?}");
    }
    store.set_failing(false);
    let next = writer.append(consultation("P-40")).await.expect("appended");
    assert_eq!(next.seq, 1, "no refused entry left a hole");
    task.shutdown_async().await;
    verify(&store).expect("verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_commit_acknowledges_nothing_and_every_later_append_is_refused() {
    // Committed by the writer thread itself (an idle writer), and by the commit thread.
    for inline in [true, false] {
        let store = Arc::new(GatedStore::default());
        let cfg = WriterConfig {
            inline_idle_commits: inline,
            ..WriterConfig::new("test.s62/log")
        };
        let (writer, task) = start(store.clone(), cfg);
        let first = writer.append(consultation("P-0")).await.expect("appended");
        store.panic_next.store(true, Ordering::SeqCst);
        let hit = tokio::time::timeout(Duration::from_secs(20), writer.append(consultation("P-1")))
            .await
            .expect("answered, not left waiting");
        assert!(
            hit.is_err(),
            "inline {inline}: an entry whose commit panicked was acknowledged: {hit:?}"
        );
        // The writer does not carry on past a panic it cannot reason about: everything after is
        // refused (the proxy answers 503 and forwards nothing), promptly, until a restart.
        for i in 2..6 {
            let later = tokio::time::timeout(
                Duration::from_secs(20),
                writer.append(consultation(&format!("P-{i}"))),
            )
            .await
            .expect("refused, not left waiting");
            assert!(
                matches!(later, Err(AppendError::Closed)),
                "inline {inline}: {later:?}"
            );
        }
        tokio::time::timeout(Duration::from_secs(20), task.shutdown_async())
            .await
            .expect("shutdown returns");
        assert_eq!(
            store.inner.entry_count().expect("count"),
            first.seq + 1,
            "inline {inline}: nothing after the panic was stored"
        );
        verify(&store.inner).expect("what was acknowledged verifies");

        // A restart over the same folder continues the chain.
        let (writer, task) = start(store.clone(), WriterConfig::new("test.s62/log"));
        let next = writer.append(consultation("P-9")).await.expect("appended");
        assert_eq!(next.seq, first.seq + 1, "inline {inline}");
        task.shutdown_async().await;
    }
}

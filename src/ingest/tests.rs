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
async fn concurrent_appends_get_distinct_consecutive_seqs_all_covered_by_a_signed_checkpoint() {
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
        assert!(
            r.checkpoint_size > r.seq,
            "receipt {r:?} is covered by its checkpoint"
        );
        let note = store
            .checkpoint(r.checkpoint_size)
            .expect("read")
            .expect("checkpoint stored");
        let (cp, _) =
            open_checkpoint(&note, &[key().verifier()], Some("test.s62/log")).expect("verifies");
        assert_eq!(cp.size, r.checkpoint_size);
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
    let stored = entry::decode(&store.entry(1).expect("read").expect("present")).expect("decodes");
    assert_eq!(stored.subject_ids, ["P-3"]);
    assert_eq!(
        Hash::from_slice(&stored.prev_leaf_hash),
        Some(first.leaf_hash)
    );
    assert!(writer.stats().last_error().is_none());
    task.shutdown_async().await;
}

/// A store whose writes wait until the test opens the gate.
struct GatedStore {
    inner: MemoryStore,
    gate: std::sync::Mutex<()>,
}

impl Store for GatedStore {
    fn write(&self, puts: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let _open = self
            .gate
            .lock()
            .map_err(|_| StoreError::Backend("gate".into()))?;
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
    let store = Arc::new(GatedStore {
        inner: MemoryStore::new(),
        gate: std::sync::Mutex::new(()),
    });
    let cfg = WriterConfig {
        queue_capacity: 2,
        queue_wait: Duration::from_millis(100),
        max_batch: 1,
        ..WriterConfig::new("test.s62/log")
    };
    let (writer, task) = start(store.clone(), cfg);
    let gate = store.gate.lock().expect("gate");
    // One entry is stuck in the writer, two fill the queue.
    let stuck: Vec<_> = (0..3)
        .map(|i| {
            let w = writer.clone();
            tokio::spawn(async move { w.append(consultation(&format!("P-{i}"))).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
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
        3,
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
    let both = [
        key().verifier(),
        SignerKey::from_seed("test.s62/log", [8u8; 32])
            .expect("key")
            .verifier(),
    ];
    let report = crate::verify::verify_store(
        store.as_ref(),
        crate::verify::VerifyOptions {
            keys: both.to_vec(),
            check_indexes: true,
            ..Default::default()
        },
    )
    .expect("the whole log verifies with the key set");
    assert_eq!(report.entries, 3);
}

//! Scenarios for checkpoint publication: a witness fetches `GET /checkpoint` and copies the
//! published folder; both hold the log's latest signed checkpoint, which verifies with the log's
//! public key and matches the log's size.

mod admin_common;

use admin_common::{Admin, ORIGIN, entry, key, start_writer};
use s62::admin::publish::{LATEST, checkpoint_path};
use s62::admin::{AdminState, Metrics, publish_checkpoint};
use s62::log::checkpoint::open_checkpoint;
use s62::log::entry::{EntryKind, Operation};
use s62::log::store::memory::MemoryStore;
use s62::log::store::{LogStore, Store};
use std::io::ErrorKind;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_fetches_the_latest_signed_checkpoint_and_it_verifies() {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start_writer(store.clone());
    let admin = Admin::start(AdminState::new(
        writer.clone(),
        store.clone(),
        Arc::new(Metrics::new()),
    ))
    .await;

    let empty = admin.get("/checkpoint").await;
    assert_eq!(
        (empty.status, empty.body.as_str()),
        (404, "no checkpoint yet\n")
    );

    let mut last = None;
    for _ in 0..4 {
        last = Some(
            writer
                .append(entry(EntryKind::Intent, Operation::Consultation))
                .await
                .expect("appended"),
        );
    }
    let receipt = last.expect("four receipts");
    // Durable now; signed in its own commit or once the writer is idle.
    let covering = match receipt.checkpoint_size {
        Some(size) => size,
        None => writer.covered(receipt.seq).await.expect("covered"),
    };

    let resp = admin.get("/checkpoint").await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let known = [key().verifier()];
    let (cp, signers) = open_checkpoint(&resp.body, &known, Some(ORIGIN)).expect("verifies");
    assert_eq!(signers.len(), 1);
    assert_eq!(cp.size, 4);
    assert_eq!(cp.size, covering);
    let stored = store.latest_checkpoint().expect("read").expect("stored");
    assert_eq!(resp.body, stored.1, "served byte for byte as stored");

    admin.stop().await;
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_checkpoint_published_to_a_folder_verifies_and_the_latest_matches_the_listener()
 {
    let store = Arc::new(MemoryStore::new());
    let (writer, task) = start_writer(store.clone());
    let admin = Admin::start(AdminState::new(
        writer.clone(),
        store.clone() as Arc<dyn Store>,
        Arc::new(Metrics::new()),
    ))
    .await;
    let published = tempfile::tempdir().expect("tempdir");
    let dir = published.path().join("checkpoints");

    // As the writer hook will: publish each checkpoint right after its batch commits.
    for _ in 0..3 {
        let r = writer
            .append_signed(entry(EntryKind::Intent, Operation::Disclosure))
            .await
            .expect("appended");
        let note = store
            .checkpoint(r.checkpoint_size)
            .expect("read")
            .expect("stored");
        publish_checkpoint(&dir, r.checkpoint_size, &note).expect("published");
    }

    for size in 1..=3u64 {
        let text = std::fs::read_to_string(checkpoint_path(&dir, size)).expect("published file");
        let (cp, _) = open_checkpoint(&text, &[key().verifier()], Some(ORIGIN)).expect("verifies");
        assert_eq!(cp.size, size);
    }
    let latest = std::fs::read_to_string(dir.join(LATEST)).expect("latest");
    assert_eq!(latest, admin.get("/checkpoint").await.body);

    // A rolled-back log re-signs a different checkpoint for a size already published: the
    // folder keeps the original, which is what `s62 verify --trust-checkpoint` needs.
    let forked = s62::log::checkpoint::Checkpoint {
        origin: ORIGIN.into(),
        size: 3,
        root: s62::log::hash::sha256(b"a different history"),
        extensions: Vec::new(),
    }
    .sign(&key())
    .expect("signs");
    let err = publish_checkpoint(&dir, 3, &forked).expect_err("fork refused");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        std::fs::read_to_string(checkpoint_path(&dir, 3)).expect("kept"),
        store.checkpoint(3).expect("read").expect("stored")
    );

    admin.stop().await;
    task.shutdown_async().await;
}

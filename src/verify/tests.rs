//! Tampering scenarios: each kind of change to a stored log is caught at the right place.

use super::*;
use crate::ingest::{LogWriter, WriterConfig};
use crate::log::entry::{Actor, Entry, EntryKind, Operation};
use crate::log::index::IndexRecord;
use crate::log::note::SignerKey;
use crate::log::store::memory::MemoryStore;
use crate::log::store::{checkpoint_key, entry_key, index_key, node_row_key};
use std::sync::Arc;

const ORIGIN: &str = "test.s62/verify";

fn key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [9u8; 32]).expect("key")
}

fn other_key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [10u8; 32]).expect("key")
}

fn event(i: u64) -> Entry {
    Entry {
        kind: EntryKind::Intent as i32,
        operation: Operation::Consultation as i32,
        actor: Some(Actor {
            id: format!("officer-{}", i % 3),
            ..Default::default()
        }),
        subject_ids: vec![format!("P-{i}")],
        ..Default::default()
    }
}

/// A log of `n` entries written by the real writer, in batches of `batch`.
fn build_log(n: u64, batch: usize, k: SignerKey) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cfg = WriterConfig {
            max_batch: batch,
            ..WriterConfig::new(ORIGIN)
        };
        let (writer, task) = LogWriter::start(store.clone(), k, cfg).expect("writer");
        for i in 0..n {
            writer.append(event(i)).await.expect("append");
        }
        task.shutdown_async().await;
    });
    store
}

fn opts() -> VerifyOptions<'static> {
    VerifyOptions {
        keys: vec![key().verifier()],
        check_indexes: true,
        ..Default::default()
    }
}

fn seq_of(r: Result<Report, VerifyError>) -> Option<u64> {
    match r {
        Err(VerifyError::Tampered { seq, .. }) => seq,
        other => panic!("expected tampering to be found, got {other:?}"),
    }
}

#[test]
fn an_untouched_log_verifies() {
    let store = build_log(40, 7, key());
    let report = verify_store(store.as_ref(), opts()).expect("intact");
    assert_eq!(report.entries, 40);
    assert_eq!(report.origin, ORIGIN);
    assert!(report.checkpoints >= 40, "one checkpoint per commit");
    assert!(report.index_records >= 40 * 3);
}

#[test]
fn a_flipped_bit_in_a_stored_entry_is_caught_at_that_entry() {
    let store = build_log(20, 4, key());
    let mut bytes = store.entry(11).expect("read").expect("present");
    bytes[5] ^= 0x01;
    store.tamper(&entry_key(11), Some(bytes));
    assert_eq!(seq_of(verify_store(store.as_ref(), opts())), Some(11));
}

#[test]
fn every_single_bit_flip_in_an_entry_is_caught() {
    let store = build_log(6, 2, key());
    let original = store.entry(3).expect("read").expect("present");
    for bit in 0..original.len() * 8 {
        let mut bytes = original.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        store.tamper(&entry_key(3), Some(bytes));
        assert_eq!(
            seq_of(verify_store(store.as_ref(), opts())),
            Some(3),
            "bit {bit}"
        );
    }
    store.tamper(&entry_key(3), Some(original));
    verify_store(store.as_ref(), opts()).expect("restored log verifies again");
}

#[test]
fn a_deleted_entry_is_caught_where_it_was() {
    let store = build_log(20, 4, key());
    store.tamper(&entry_key(8), None);
    assert_eq!(seq_of(verify_store(store.as_ref(), opts())), Some(8));
}

#[test]
fn a_deleted_last_entry_is_caught() {
    let store = build_log(20, 4, key());
    store.tamper(&entry_key(19), None);
    assert_eq!(seq_of(verify_store(store.as_ref(), opts())), Some(19));
}

#[test]
fn swapped_entries_are_caught_at_the_first() {
    let store = build_log(20, 4, key());
    let a = store.entry(5).expect("read");
    let b = store.entry(12).expect("read");
    store.tamper(&entry_key(5), b);
    store.tamper(&entry_key(12), a);
    assert_eq!(seq_of(verify_store(store.as_ref(), opts())), Some(5));
}

#[test]
fn a_cleanly_truncated_tail_is_caught_only_against_a_kept_checkpoint() {
    let store = build_log(20, 1, key());
    let kept = store.checkpoint(20).expect("read").expect("present");
    // A careful attacker removes entries 15.. with their nodes and checkpoints: a valid prefix.
    for seq in 15..20 {
        store.tamper(&entry_key(seq), None);
        store.tamper(&checkpoint_key(seq + 1), None);
    }
    for seq in 15..20 {
        store.tamper(&node_row_key(seq), None);
    }
    let mut after: Option<IndexRecord> = None;
    loop {
        let recs = store.index_records(after.as_ref(), 100).expect("index");
        let Some(last) = recs.last().cloned() else {
            break;
        };
        for r in recs.iter().filter(|r| r.seq >= 15) {
            store.tamper(&index_key(r), None);
        }
        after = Some(last);
    }
    verify_store(store.as_ref(), opts()).expect("without outside evidence the prefix looks whole");

    let with_kept = VerifyOptions {
        trusted_checkpoints: vec![kept],
        ..opts()
    };
    let err = verify_store(store.as_ref(), with_kept).expect_err("the kept checkpoint exposes it");
    assert!(
        matches!(&err, VerifyError::Tampered { seq: Some(15), problem } if problem.contains("truncation")),
        "{err}"
    );
}

#[test]
fn a_rewritten_history_is_caught_against_a_kept_checkpoint() {
    let honest = build_log(10, 3, key());
    let kept = honest.checkpoint(10).expect("read").expect("present");
    // The same key (stolen) signs a different history of the same length and more.
    let store = Arc::new(MemoryStore::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (writer, task) =
            LogWriter::start(store.clone(), key(), WriterConfig::new(ORIGIN)).expect("writer");
        for i in 100..112 {
            writer.append(event(i)).await.expect("append");
        }
        task.shutdown_async().await;
    });
    verify_store(store.as_ref(), opts()).expect("internally consistent");
    let err = verify_store(
        store.as_ref(),
        VerifyOptions {
            trusted_checkpoints: vec![kept],
            ..opts()
        },
    )
    .expect_err("caught");
    assert!(
        matches!(&err, VerifyError::Tampered { seq: Some(9), problem } if problem.contains("trusted checkpoint")),
        "{err}"
    );
}

#[test]
fn a_checkpoint_resigned_by_another_key_is_caught() {
    let store = build_log(12, 4, key());
    let note = store.checkpoint(8).expect("read").expect("present");
    let text = crate::log::note::parse_note(&note).expect("note").text;
    let forged = other_key().sign_note(&text).expect("sign");
    store.tamper(&checkpoint_key(8), Some(forged.into_bytes()));
    let err = verify_store(store.as_ref(), opts()).expect_err("caught");
    assert!(
        matches!(&err, VerifyError::Tampered { seq: Some(7), problem } if problem.contains("size 8")),
        "{err}"
    );
}

#[test]
fn a_tampered_tree_node_is_caught() {
    let store = build_log(16, 16, key());
    // Node (2, 1) covers leaves 4..8: it is the third hash in leaf 7's row.
    let mut row = store.get(&node_row_key(7)).expect("read").expect("present");
    row[64..96].fill(0);
    store.tamper(&node_row_key(7), Some(row));
    assert_eq!(
        seq_of(verify_store(store.as_ref(), opts())),
        Some(7),
        "node (2,1) completes at entry 7"
    );
}

#[test]
fn a_removed_index_record_is_caught_at_its_entry() {
    let store = build_log(10, 5, key());
    store.tamper(
        &index_key(&IndexRecord {
            family: crate::log::index::IndexFamily::Subject,
            value: "P-6".into(),
            seq: 6,
        }),
        None,
    );
    assert_eq!(seq_of(verify_store(store.as_ref(), opts())), Some(6));
}

#[test]
fn an_index_record_pointing_at_the_wrong_entry_is_caught() {
    let store = build_log(10, 5, key());
    store.tamper(
        &index_key(&IndexRecord {
            family: crate::log::index::IndexFamily::Subject,
            value: "P-6".into(),
            seq: 2,
        }),
        Some(Vec::new()),
    );
    assert_eq!(seq_of(verify_store(store.as_ref(), opts())), Some(2));
}

#[test]
fn a_log_checked_with_the_wrong_key_does_not_verify() {
    let store = build_log(3, 1, key());
    let wrong = VerifyOptions {
        keys: vec![other_key().verifier()],
        ..opts()
    };
    assert!(matches!(
        verify_store(store.as_ref(), wrong),
        Err(VerifyError::Tampered { .. })
    ));
}

#[test]
fn an_empty_log_cannot_be_verified() {
    let store = MemoryStore::new();
    assert!(matches!(
        verify_store(&store, opts()),
        Err(VerifyError::CouldNotRun(_))
    ));
}

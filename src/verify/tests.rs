//! Tampering scenarios: each kind of change to a stored log is caught at the right place.

use super::*;
use crate::ingest::{LogWriter, WriterConfig};
use crate::log::entry::{Actor, Entry, EntryKind, Operation};
use crate::log::epoch::{KeyEpochs, LogKeys};
use crate::log::index::IndexRecord;
use crate::log::note::SignerKey;
use crate::log::store::memory::MemoryStore;
use crate::log::store::{checkpoint_key, entry_key, index_key, node_row_key, values_key};
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
    append_events(&store, 0..n, batch, k);
    store
}

/// Appends events `range` to `store` with the real writer, in batches of `batch`, signing with `k`.
fn append_events(
    store: &Arc<MemoryStore>,
    range: std::ops::Range<u64>,
    batch: usize,
    k: SignerKey,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // A checkpoint per commit, so the scenarios can remove one at a known size.
        let cfg = WriterConfig {
            max_batch: batch,
            cadence: crate::ingest::Cadence::every_commit(),
            ..WriterConfig::new(ORIGIN)
        };
        let (writer, task) = LogWriter::start(store.clone(), k, cfg).expect("writer");
        for i in range {
            writer.append(event(i)).await.expect("append");
        }
        task.shutdown_async().await;
    });
}

fn keys_of(k: &SignerKey) -> LogKeys {
    LogKeys::from_epochs(KeyEpochs::starting_with(k.verifier()))
}

fn opts() -> VerifyOptions<'static> {
    VerifyOptions::new(keys_of(&key()))
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

/// Verification reads, opens and folds a log in chunks on separate threads. Across chunks, the
/// first problem in seq order is the one reported, whichever thread meets it, and the index
/// scan running beside the pass never reports ahead of it.
#[test]
fn across_chunks_the_first_problem_in_seq_order_is_reported() {
    let n = 3 * CHUNK as u64 + 100;
    let store = build_log(n, 64, key());
    let report = verify_store(store.as_ref(), opts()).expect("intact");
    assert_eq!(report.entries, n);
    let (early, late) = (CHUNK as u64 + 7, 2 * CHUNK as u64 + 3);
    let entry = |seq| store.entry(seq).expect("read").expect("present");
    let row = |seq| store.get(&values_key(seq)).expect("read").expect("present");
    let flipped = |mut bytes: Vec<u8>| {
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        bytes
    };
    let first_found = |tampers: &[(Vec<u8>, Option<Vec<u8>>)]| {
        let kept: Vec<_> = tampers
            .iter()
            .map(|(k, _)| (k.clone(), store.get(k).expect("read")))
            .collect();
        for (k, v) in tampers {
            store.tamper(k, v.clone());
        }
        let found = verify_store(store.as_ref(), opts());
        for (k, v) in kept {
            store.tamper(&k, v);
        }
        found
    };

    // A changed value early (met when opening) and a deleted entry later (met when reading).
    let found = first_found(&[
        (values_key(early), Some(flipped(row(early)))),
        (entry_key(late), None),
    ]);
    assert_eq!(seq_of(found), Some(early));
    // A changed entry early (met when folding) and a value row for no entry later (reading).
    let found = first_found(&[
        (entry_key(early), Some(flipped(entry(early)))),
        (values_key(n + 5), Some(row(late))),
    ]);
    assert_eq!(seq_of(found), Some(early));
    // A removed index record is reported only when the entries themselves are sound.
    let record = crate::log::index::index_records(
        &store.opened(early).expect("read").expect("present").entry,
    )
    .into_iter()
    .next()
    .expect("an index record");
    let record_key = index_key(&record).expect("short value");
    let found = first_found(&[
        (record_key.clone(), None),
        (entry_key(late), Some(flipped(entry(late)))),
    ]);
    assert_eq!(seq_of(found), Some(late));
    assert_eq!(seq_of(first_found(&[(record_key, None)])), Some(early));
    // A value row past the end, alone.
    let found = first_found(&[(values_key(n + 5), Some(row(late)))]);
    assert!(
        matches!(&found, Err(VerifyError::Tampered { seq: Some(s), problem })
            if *s == n + 5 && problem.contains("no entry")),
        "{found:?}"
    );
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
        store.tamper(&values_key(seq), None);
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
            store.tamper(&index_key(r).expect("short value"), None);
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
fn a_broken_signature_among_hundreds_of_checkpoints_is_caught_at_its_size_batched_or_strict() {
    use base64::Engine;
    let store = build_log(700, 1, key());
    let note = store.checkpoint(450).expect("read").expect("present");
    let mut parsed = crate::log::note::parse_note(&note).expect("note");
    let sig = &mut parsed.signatures[0];
    sig.signature[20] ^= 0x01;
    let blob = [&sig.key_id[..], &sig.signature].concat();
    let forged = format!(
        "{}\n\u{2014} {} {}\n",
        parsed.text,
        sig.name,
        base64::engine::general_purpose::STANDARD.encode(blob)
    );
    store.tamper(&checkpoint_key(450), Some(forged.into_bytes()));
    for strict_signatures in [false, true] {
        let err = verify_store(
            store.as_ref(),
            VerifyOptions {
                strict_signatures,
                ..opts()
            },
        )
        .expect_err("caught");
        assert!(
            matches!(&err, VerifyError::Tampered { seq: Some(449), problem }
                if problem.contains("checkpoint at size 450") && problem.contains("signature")),
            "strict: {strict_signatures}: {err}"
        );
    }
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
        })
        .expect("short value"),
        None,
    );
    assert_eq!(seq_of(verify_store(store.as_ref(), opts())), Some(6));
}

/// `event(i)` made under case `OP-{i}` for the purpose `investigation`.
fn justified(i: u64) -> Entry {
    Entry {
        justification: Some(crate::log::entry::Justification {
            purpose_code: "investigation".into(),
            text: "why".into(),
            case_reference: format!("OP-{i}"),
        }),
        ..event(i)
    }
}

/// Appends `justified(i)` for `range` with the real writer (one batch each).
fn append_justified(store: &Arc<MemoryStore>, range: std::ops::Range<u64>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (writer, task) =
            LogWriter::start(store.clone(), key(), WriterConfig::new(ORIGIN)).expect("writer");
        for i in range {
            writer.append(justified(i)).await.expect("append");
        }
        task.shutdown_async().await;
    });
}

#[test]
fn a_removed_case_reference_or_purpose_record_is_caught_at_its_entry() {
    use crate::log::index::IndexFamily;
    for (family, value) in [
        (IndexFamily::CaseReference, "OP-4"),
        (IndexFamily::Purpose, "investigation"),
    ] {
        let store = Arc::new(MemoryStore::new());
        append_justified(&store, 0..8);
        verify_store(store.as_ref(), opts()).expect("intact before");
        store.tamper(
            &index_key(&IndexRecord {
                family,
                value: value.into(),
                seq: 4,
            })
            .expect("short value"),
            None,
        );
        assert_eq!(
            seq_of(verify_store(store.as_ref(), opts())),
            Some(4),
            "{family:?}"
        );
    }
}

#[test]
fn a_log_from_before_the_case_and_purpose_indexes_verifies_and_the_next_writer_builds_them() {
    use crate::log::index::IndexFamily;
    use crate::log::store::index_families_key;
    let new_families = [IndexFamily::CaseReference, IndexFamily::Purpose];
    let store = Arc::new(MemoryStore::new());
    append_justified(&store, 0..12);
    // As a writer before these families wrote it: no such records, no record of them as built.
    let mut removed = 0;
    for rec in store.index_records(None, 10_000).expect("index") {
        if new_families.contains(&rec.family) {
            store.tamper(&index_key(&rec).expect("short value"), None);
            removed += 1;
        }
    }
    assert!(removed >= 24, "the case and the purpose of each entry");
    store.tamper(&index_families_key(), None);
    let old = verify_store(store.as_ref(), opts()).expect("an old log is intact");
    assert_eq!(old.unbuilt_index_families, new_families);

    // The next writer to open it builds them, and from then on they are checked.
    append_justified(&store, 12..14);
    let now = verify_store(store.as_ref(), opts()).expect("intact");
    assert!(now.unbuilt_index_families.is_empty());
    assert!(now.index_records > old.index_records + 24);
    assert_eq!(
        store
            .index_seqs(IndexFamily::CaseReference, "OP-3", 0, 10)
            .expect("index"),
        [3]
    );
    store.tamper(
        &index_key(&IndexRecord {
            family: IndexFamily::CaseReference,
            value: "OP-3".into(),
            seq: 3,
        })
        .expect("short value"),
        None,
    );
    assert_eq!(seq_of(verify_store(store.as_ref(), opts())), Some(3));
}

#[test]
fn an_index_record_pointing_at_the_wrong_entry_is_caught() {
    let store = build_log(10, 5, key());
    store.tamper(
        &index_key(&IndexRecord {
            family: crate::log::index::IndexFamily::Subject,
            value: "P-6".into(),
            seq: 2,
        })
        .expect("short value"),
        Some(Vec::new()),
    );
    assert_eq!(seq_of(verify_store(store.as_ref(), opts())), Some(2));
}

#[test]
fn a_log_checked_with_the_wrong_key_does_not_verify() {
    let store = build_log(3, 1, key());
    let wrong = VerifyOptions::new(keys_of(&other_key()));
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

// ---------------------------------------------------------------------------------------------
// Insiders (issue 8): deleted checkpoints, retired keys, other origins, key files that disagree.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_deleted_intermediate_checkpoint_is_caught_at_the_entry_that_announced_it() {
    let store = build_log(12, 4, key());
    let sizes: Vec<u64> = store
        .checkpoints(0, 100)
        .expect("read")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let victim = sizes[sizes.len() / 2];
    assert!(victim < 12, "an intermediate checkpoint");
    store.tamper(&checkpoint_key(victim), None);
    let err = verify_store(store.as_ref(), opts()).expect_err("caught");
    assert!(
        matches!(&err, VerifyError::Tampered { seq: Some(s), problem }
            if *s == victim - 1 && problem.contains("checkpoints were deleted")),
        "{err}"
    );
}

/// A log whose key was handed over from `key()` to `other_key()` after entry 2 (handover size 3),
/// with three more entries by the new key.
fn rotated_log() -> Arc<MemoryStore> {
    let store = build_log(2, 1, key());
    crate::ingest::rotate_key(store.clone(), key(), other_key(), ORIGIN).expect("rotated");
    append_events(&store, 10..13, 1, other_key());
    store
}

fn rotated_keys() -> LogKeys {
    let mut epochs = KeyEpochs::starting_with(key().verifier());
    epochs
        .hand_over(3, other_key().verifier())
        .expect("handover");
    LogKeys::from_epochs(epochs)
}

#[test]
fn a_rotated_log_verifies_with_its_epochs_whether_or_not_the_key_file_states_them() {
    let store = rotated_log();
    let report = verify_store(store.as_ref(), VerifyOptions::new(rotated_keys())).expect("intact");
    assert_eq!(report.entries, 6);
    assert_eq!(report.epochs.len(), 2);
    assert_eq!(report.epochs[0].until_size, Some(3));
    // A plain two-key file: the first key is found from the first checkpoint, the rest from the log.
    let plain = LogKeys::parse(&format!(
        "{}\n{}\n",
        other_key().verifier().to_vkey(),
        key().verifier().to_vkey()
    ))
    .expect("parses");
    verify_store(store.as_ref(), VerifyOptions::new(plain)).expect("intact");
}

#[test]
fn a_retired_key_signing_after_its_handover_is_caught_naming_the_size() {
    let store = rotated_log();
    // The holder of the old key signs a later checkpoint (e.g. over entries it appended itself).
    let note = store.checkpoint(5).expect("read").expect("present");
    let text = crate::log::note::parse_note(&note).expect("note").text;
    store.tamper(
        &checkpoint_key(5),
        Some(key().sign_note(&text).expect("sign").into_bytes()),
    );
    let err = verify_store(store.as_ref(), VerifyOptions::new(rotated_keys())).expect_err("caught");
    assert!(
        matches!(&err, VerifyError::Tampered { seq: Some(4), problem }
            if problem.contains("size 5") && problem.contains("retired")),
        "{err}"
    );
}

#[test]
fn a_handover_to_a_key_the_verifier_does_not_trust_is_caught() {
    let store = rotated_log();
    let only_old = LogKeys::from_epochs(KeyEpochs::starting_with(key().verifier()));
    let err = verify_store(store.as_ref(), VerifyOptions::new(only_old)).expect_err("caught");
    assert!(
        matches!(&err, VerifyError::Tampered { .. }),
        "a log continued by a key the verifier never trusted is not intact: {err}"
    );
}

#[test]
fn a_key_file_whose_epochs_disagree_with_the_log_is_caught() {
    let store = rotated_log();
    let mut wrong = KeyEpochs::starting_with(key().verifier());
    wrong
        .hand_over(2, other_key().verifier())
        .expect("handover");
    let err = verify_store(
        store.as_ref(),
        VerifyOptions::new(LogKeys::from_epochs(wrong)),
    )
    .expect_err("caught");
    assert!(matches!(&err, VerifyError::Tampered { .. }), "{err}");
}

#[test]
fn a_log_resigned_under_another_origin_is_tampered_not_unverifiable() {
    let store = build_log(4, 1, key());
    // The key holder re-signs the whole history under a new origin.
    for (size, note) in store.checkpoints(0, 10).expect("read") {
        let text = crate::log::note::parse_note(&note).expect("note").text;
        let moved = text.replacen(ORIGIN, "elsewhere.example/log", 1);
        store.tamper(
            &checkpoint_key(size),
            Some(key().sign_note(&moved).expect("sign").into_bytes()),
        );
    }
    let err = verify_store(store.as_ref(), opts()).expect_err("caught");
    assert!(
        matches!(&err, VerifyError::Tampered { problem, .. } if problem.contains("origin")),
        "{err}"
    );
    let pinned = VerifyOptions {
        origin: Some("elsewhere.example/log".into()),
        ..opts()
    };
    verify_store(store.as_ref(), pinned).expect("consistent under the origin it now claims");
}

#[test]
fn a_keyless_rewrite_topped_with_a_foreign_checkpoint_does_not_verify() {
    let store = build_log(10, 1, key());
    let (size, root) = crate::log::store::forge::rewrite_from(&store, 4, |e| {
        e.subject_ids = vec!["P-somebody-else".into()];
    });
    let insider = SignerKey::from_seed(ORIGIN, [66u8; 32]).expect("key");
    let note = crate::log::checkpoint::Checkpoint {
        origin: ORIGIN.into(),
        size,
        root,
        extensions: Vec::new(),
    }
    .sign(&insider)
    .expect("sign");
    store.tamper(&checkpoint_key(size), Some(note.into_bytes()));
    assert!(matches!(
        verify_store(store.as_ref(), opts()),
        Err(VerifyError::Tampered { .. })
    ));
    // Removing the foreign checkpoint leaves entries that no genuine checkpoint covers.
    store.tamper(&checkpoint_key(size), None);
    assert!(matches!(
        verify_store(store.as_ref(), opts()),
        Err(VerifyError::Tampered { .. })
    ));
}

mod whatever_the_writer_accepts {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "\\PC{0,24}",
            1 => "[a-zA-Z0-9]{4090,4100}",
            1 => "\\PC{1200,1400}",
        ]
    }

    fn arbitrary_entry() -> impl Strategy<Value = Entry> {
        (
            text(),
            proptest::collection::vec(text(), 0..4),
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec(text(), 0..3),
            text(),
            proptest::collection::vec(text(), 0..3),
            0i32..7,
            0i32..8,
        )
            .prop_map(
                |(actor, subjects, records, recipients, route, returned, kind, op)| Entry {
                    kind,
                    operation: op,
                    actor: Some(Actor {
                        id: actor,
                        ..Default::default()
                    }),
                    subject_ids: subjects,
                    record_ids: records,
                    recipients,
                    request: Some(crate::log::entry::Request {
                        route,
                        ..Default::default()
                    }),
                    outcome: Some(crate::log::entry::Outcome {
                        returned_subject_ids: returned,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// An honest log never fails verification, whatever a client sends: the writer either
        /// refuses an entry outright or stores it with index records verify recomputes exactly.
        #[test]
        fn is_verified_with_its_indexes(entries in proptest::collection::vec(arbitrary_entry(), 1..6)) {
            let store = Arc::new(MemoryStore::new());
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let accepted = rt.block_on(async {
                let (writer, task) =
                    LogWriter::start(store.clone(), key(), WriterConfig::new(ORIGIN)).expect("writer");
                let mut accepted = 0u64;
                for e in entries {
                    match writer.append(e).await {
                        Ok(_) => accepted += 1,
                        Err(crate::ingest::AppendError::ValueTooLong { .. }) => {}
                        Err(other) => panic!("unexpected refusal: {other}"),
                    }
                }
                task.shutdown_async().await;
                accepted
            });
            if accepted > 0 {
                let report = verify_store(store.as_ref(), opts());
                prop_assert!(report.is_ok(), "{:?}", report.err());
                prop_assert_eq!(report.map(|r| r.entries).unwrap_or(0), accepted);
            }
        }
    }
}

/// Entries as the verifier meets them: (time in ms, a stored checkpoint follows it), seqs from 0,
/// the first one recording `cadence`.
fn stretch_outcome(
    cadence: (u32, u64),
    entries: &[(i64, bool)],
) -> Result<(), (Option<u64>, String)> {
    let mut stretch = Stretch::default();
    for (seq, (ms, checkpoint)) in entries.iter().enumerate() {
        let e = Entry {
            seq: seq as u64,
            time_unix_nanos: ms * 1_000_000,
            checkpoint_cadence: (seq == 0).then_some(entry::CheckpointCadence {
                interval_ms: cadence.0,
                max_entries: cadence.1,
            }),
            ..Default::default()
        };
        if let Err(VerifyError::Tampered { seq, problem }) = stretch.check(&e, *checkpoint) {
            return Err((seq, problem));
        }
    }
    Ok(())
}

#[test]
fn a_log_signed_at_its_recorded_cadence_passes_the_cadence_checks() {
    // 100 ms, 3 entries: commits at 0 (signed), 10+10, 50, 120+120 (signed: 120 ms after 10),
    // 130, 131, 132 (signed: the third entry).
    let entries = [
        (0, true),
        (10, false),
        (10, false),
        (50, false),
        (120, false),
        (120, true),
    ];
    assert_eq!(stretch_outcome((100, 10), &entries), Ok(()));
    let counted = [(0, true), (130, false), (131, false), (132, true)];
    assert_eq!(stretch_outcome((1000, 3), &counted), Ok(()));
}

#[test]
fn a_stretch_longer_than_the_recorded_max_entries_is_a_missing_checkpoint() {
    let entries = [(0, true), (1, false), (2, false), (3, false), (4, true)];
    let (seq, problem) = stretch_outcome((1000, 3), &entries).expect_err("caught");
    assert_eq!(seq, Some(4));
    assert!(
        problem.contains("more than the writer's cadence of 3"),
        "{problem}"
    );
}

#[test]
fn a_commit_past_the_interval_that_signed_nothing_is_caught_at_its_entry() {
    // The commit at 120 ms is 110 ms after its stretch began at 10 ms, yet the next entry comes
    // in a later commit with no checkpoint between.
    let entries = [(0, true), (10, false), (120, false), (130, true)];
    let (seq, problem) = stretch_outcome((100, 1000), &entries).expect_err("caught");
    assert_eq!(seq, Some(2));
    assert!(
        problem.contains("interval (100 ms) had passed"),
        "{problem}"
    );
}

#[test]
fn a_cadence_recorded_in_mid_stretch_is_refused() {
    let mut stretch = Stretch::default();
    let plain = |seq: u64| Entry {
        seq,
        ..Default::default()
    };
    stretch
        .check(&plain(0), false)
        .expect("legacy entries pass");
    let restarted = Entry {
        checkpoint_cadence: Some(entry::CheckpointCadence {
            interval_ms: 250,
            max_entries: 10,
        }),
        ..plain(1)
    };
    let err = stretch.check(&restarted, true).expect_err("caught");
    assert!(
        err.to_string().contains("right after a checkpoint"),
        "{err}"
    );
}

#[test]
fn the_real_writer_under_concurrent_load_keeps_its_cadence_and_verifies() {
    let store = Arc::new(MemoryStore::new());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cfg = WriterConfig {
            // Never idle long enough: the interval and the count make every checkpoint.
            cadence: crate::ingest::Cadence {
                interval: std::time::Duration::from_millis(1),
                max_entries: 97,
                idle: std::time::Duration::from_secs(3600),
            },
            ..WriterConfig::new(ORIGIN)
        };
        let (writer, task) = LogWriter::start(store.clone(), key(), cfg).expect("writer");
        let producers: Vec<_> = (0..16u64)
            .map(|p| {
                let w = writer.clone();
                tokio::spawn(async move {
                    for i in 0..100u64 {
                        w.append(event(p * 1000 + i)).await.expect("append");
                    }
                })
            })
            .collect();
        for p in producers {
            p.await.expect("producer");
        }
        task.shutdown_async().await;
    });
    let report = verify_store(store.as_ref(), VerifyOptions::new(keys_of(&key())))
        .expect("what the writer does is what the verifier holds it to");
    assert_eq!(report.entries, 1600);
    assert!(
        report.checkpoints < 1600,
        "{} checkpoints",
        report.checkpoints
    );
}

#[test]
fn a_rewritten_last_entry_left_unsigned_in_a_log_that_signs_every_commit_is_tampered() {
    // An insider without the key rewrites the newest entry, clears its announcement and deletes
    // its checkpoint, hoping verify reads it as a tail not yet signed.
    let store = build_log(10, 1, key());
    crate::log::store::forge::rewrite_from(&store, 9, |e| {
        e.checkpoint_follows = false;
        e.subject_ids = vec!["P-forged".into()];
    });
    let err = verify_store(store.as_ref(), VerifyOptions::new(keys_of(&key())))
        .expect_err("a log that signs every commit has no unsigned tail");
    assert!(
        matches!(&err, VerifyError::Tampered { seq: Some(9), problem } if problem.contains("signs every commit")),
        "{err}"
    );
}

#[test]
fn an_unsigned_tail_past_the_recorded_interval_is_tampered() {
    let mut stretch = Stretch::default();
    let at = |seq: u64, ms: i64| Entry {
        seq,
        time_unix_nanos: ms * 1_000_000,
        checkpoint_cadence: (seq == 0).then_some(entry::CheckpointCadence {
            interval_ms: 100,
            max_entries: 1000,
        }),
        ..Default::default()
    };
    stretch.check(&at(0, 0), true).expect("signed");
    stretch.check(&at(1, 10), false).expect("unsigned, in time");
    stretch
        .finish(1)
        .expect("a tail inside the interval is only not yet signed");
    stretch
        .check(&at(2, 120), false)
        .expect("its commit should have signed");
    let err = stretch.finish(1).expect_err("caught at the end of the log");
    assert!(
        err.to_string().contains("interval (100 ms) had passed"),
        "{err}"
    );
}

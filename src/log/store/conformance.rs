//! One suite, every backend: the in-memory store and RocksDB must answer alike.

use super::memory::MemoryStore;
use super::rocks::RocksStore;
use super::*;

fn sample_batch(from: u64, n: u64) -> CommitBatch {
    CommitBatch {
        entries: (from..from + n)
            .map(|s| (s, format!("entry {s}").into_bytes()))
            .collect(),
        nodes: (from..from + n)
            .map(|s| (NodeId { level: 0, index: s }, Hash([s as u8; 32])))
            .collect(),
        index: (from..from + n)
            .map(|s| IndexRecord {
                family: IndexFamily::Subject,
                value: if s % 2 == 0 {
                    "P-even".into()
                } else {
                    "P-odd".into()
                },
                seq: s,
            })
            .collect(),
        checkpoint: Some((from + n, format!("checkpoint at {}\n", from + n))),
        ..CommitBatch::default()
    }
}

fn suite(store: &dyn Store) {
    assert_eq!(
        store.entry_count().expect("count"),
        0,
        "a new store is empty"
    );
    assert_eq!(store.latest_checkpoint().expect("latest"), None);

    store.commit(&sample_batch(0, 5)).expect("first commit");
    store.commit(&sample_batch(5, 300)).expect("second commit");

    assert_eq!(store.entry_count().expect("count"), 305);
    assert_eq!(
        store.entry(3).expect("get").as_deref(),
        Some(&b"entry 3"[..])
    );
    assert_eq!(store.entry(305).expect("get"), None);

    let page = store.entries(100, 10).expect("page");
    assert_eq!(page.len(), 10);
    assert_eq!(page[0].0, 100);
    assert_eq!(page[9].0, 109);
    assert_eq!(
        store.entries(300, 100).expect("tail").len(),
        5,
        "stops at the end"
    );

    assert_eq!(
        store.node(NodeId { level: 0, index: 7 }).expect("node"),
        Some(Hash([7; 32]))
    );
    assert_eq!(
        store.node(NodeId { level: 1, index: 0 }).expect("node"),
        None
    );
    let rows = store.node_rows(300, 100).expect("rows");
    assert_eq!(
        rows.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [300, 301, 302, 303, 304]
    );
    assert_eq!(
        store.latest_checkpoint().expect("latest"),
        Some((305, "checkpoint at 305\n".to_string()))
    );
    assert_eq!(
        store.checkpoint(5).expect("cp").as_deref(),
        Some("checkpoint at 5\n")
    );
    assert_eq!(store.checkpoints(0, 10).expect("cps").len(), 2);

    let odd = store
        .index_seqs(IndexFamily::Subject, "P-odd", 0, 3)
        .expect("idx");
    assert_eq!(odd, [1, 3, 5]);
    let odd_later = store
        .index_seqs(IndexFamily::Subject, "P-odd", 200, 2)
        .expect("idx");
    assert_eq!(odd_later, [201, 203]);
    assert!(
        store
            .index_seqs(IndexFamily::Subject, "P-od", 0, 10)
            .expect("idx")
            .is_empty(),
        "a value is matched exactly, never as a prefix"
    );
    assert!(
        store
            .index_seqs(IndexFamily::Actor, "P-odd", 0, 10)
            .expect("idx")
            .is_empty()
    );

    let first = store.index_records(None, 2).expect("records");
    assert_eq!(first.len(), 2);
    let next = store.index_records(Some(&first[1]), 1000).expect("records");
    assert_eq!(
        first.len() + next.len(),
        305,
        "paging index records sees each once"
    );
    assert!(!next.contains(&first[1]));

    // Cosignatures: a stored checkpoint only ever grows by signature lines.
    let signed = "o\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} log AAAAAAE=\n";
    store
        .write(&[(checkpoint_key(5), signed.as_bytes().to_vec())])
        .expect("put a signed note");
    let cosigned = format!("{signed}\u{2014} witness BBBBBBE=\n");
    assert!(store.replace_checkpoint_note(5, &cosigned).expect("adds"));
    assert!(
        !store
            .replace_checkpoint_note(5, &cosigned)
            .expect("same again")
    );
    assert_eq!(store.checkpoint(5).expect("read"), Some(cosigned.clone()));
    for (bad, what) in [
        (
            "o\n5\nAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} log AAAAAAE=\n\u{2014} witness BBBBBBE=\n\u{2014} w2 CCCCCCE=\n".to_string(),
            "another root",
        ),
        (
            "o\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} witness BBBBBBE=\n".to_string(),
            "the log signature dropped",
        ),
        (format!("{cosigned}not a signature line\n"), "a non-note"),
    ] {
        assert!(
            matches!(
                store.replace_checkpoint_note(5, &bad),
                Err(CheckpointUpdateError::WouldChange { size: 5, .. })
            ),
            "{what} must be refused"
        );
        assert_eq!(store.checkpoint(5).expect("read"), Some(cosigned.clone()), "{what}");
    }
    assert!(matches!(
        store.replace_checkpoint_note(6, &cosigned),
        Err(CheckpointUpdateError::Missing(6))
    ));

    // Values rows and removals in one atomic write (what a redaction does).
    let values = |v: &str| {
        use prost::Message;
        crate::log::entry::EntryValues {
            values: vec![crate::log::entry::FieldValue {
                field: crate::log::entry::PersonalField::SubjectId as i32,
                index: 0,
                salt: vec![7; 16],
                value: v.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec()
    };
    let even = index_key(&IndexRecord {
        family: IndexFamily::Subject,
        value: "P-even".into(),
        seq: 2,
    })
    .expect("short");
    store
        .write_with_deletes(&[(values_key(2), values("P-2"))], &[])
        .expect("values");
    assert_eq!(store.values(2).expect("read").values[0].value, "P-2");
    assert!(store.get(&even).expect("read").is_some());
    store
        .write_with_deletes(
            &[(values_key(2), values("P-x"))],
            std::slice::from_ref(&even),
        )
        .expect("rewrite and remove");
    assert_eq!(store.values(2).expect("read").values[0].value, "P-x");
    assert!(store.get(&even).expect("read").is_none(), "removed");
    assert!(
        store.values(3).expect("read").values.is_empty(),
        "no row: no values"
    );
}

#[test]
fn memory_store_conforms() {
    suite(&MemoryStore::new());
}

#[test]
fn rocksdb_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite(&RocksStore::open(dir.path()).expect("open"));
}

#[test]
fn a_reader_beside_a_live_writer_sees_new_commits_after_catching_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = RocksStore::open(dir.path()).expect("open");
    writer.commit(&sample_batch(0, 3)).expect("commit");
    let reader = RocksStore::open_reader(dir.path()).expect("reader opens beside the writer");
    assert_eq!(reader.entry_count().expect("count"), 3);
    writer.commit(&sample_batch(3, 2)).expect("commit");
    reader.catch_up().expect("catch up");
    assert_eq!(reader.entry_count().expect("count"), 5);
    assert!(
        reader.commit(&sample_batch(5, 1)).is_err(),
        "a reader cannot write"
    );
}

#[test]
fn a_reader_refuses_a_folder_that_is_not_a_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(RocksStore::open_reader(dir.path()).is_err());
}

#[test]
fn two_writers_cannot_open_the_same_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = RocksStore::open(dir.path()).expect("open");
    assert!(
        RocksStore::open(dir.path()).is_err(),
        "RocksDB's lock keeps a second writer out"
    );
}

#[test]
fn every_perfect_subtree_is_readable_from_its_node_row() {
    use crate::log::hash::leaf_hash;
    use crate::log::merkle::{Frontier, root_of};
    let store = MemoryStore::new();
    let mut frontier = Frontier::new();
    let mut batch = CommitBatch::default();
    let leaves: Vec<Hash> = (0..13u8).map(|i| leaf_hash(&[i])).collect();
    for leaf in &leaves {
        frontier.push(*leaf, &mut batch.nodes);
    }
    batch.checkpoint = Some((13, String::new()));
    store.commit(&batch).expect("commit");
    for level in 0..4u8 {
        for index in 0..(13u64 >> level) {
            let first = (index << level) as usize;
            let want = root_of(&leaves[first..first + (1usize << level)]);
            assert_eq!(
                store.node(NodeId { level, index }).expect("read"),
                Some(want),
                "({level}, {index})"
            );
        }
    }
    assert_eq!(
        store.node(NodeId { level: 4, index: 0 }).expect("read"),
        None,
        "not complete yet"
    );
    assert_eq!(
        store
            .node(NodeId {
                level: 63,
                index: u64::MAX
            })
            .expect("read"),
        None
    );
}

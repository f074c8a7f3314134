//! The witness core without HTTP: durable state, the lock that makes check-and-persist atomic,
//! evidence, and no cosignature without a durable state.

use super::*;
use crate::log::checkpoint::open_checkpoint;
use crate::log::cosignature::open_cosignatures;
use crate::witness::verdict::tests::{ORIGIN, TestLog};

fn witness_key() -> CosignerKey {
    CosignerKey::from_seed("witness.dpo.example.police.uk", [77; 32]).expect("key")
}

fn open(log: &TestLog, dir: &Path) -> Witness {
    Witness::open(witness_key(), log.trusted(), dir).expect("open")
}

#[test]
fn the_state_survives_a_restart_and_its_file_is_a_cosigned_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = TestLog::new(1, 20, "a");
    let w = open(&log, dir.path());
    let a = w.add_checkpoint(log.body(0, 5).as_bytes(), 1_800_000_000);
    assert_eq!(a.status, 200, "{a:?}");
    let keys = [w.verifier()];
    let (_, found) = open_cosignatures(&format!("{}{}", log.note(5), a.body), &keys)
        .expect("the answer is a valid cosignature line");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].timestamp, 1_800_000_000);
    drop(w);

    let w = open(&log, dir.path());
    let a = w.add_checkpoint(log.body(0, 8).as_bytes(), 1_800_000_001);
    assert_eq!(
        (a.status, a.content_type, a.body.as_str()),
        (409, "text/x.tlog.size", "5\n"),
        "after a restart the witness still knows it cosigned 5"
    );
    let kept = std::fs::read_to_string(checkpoint_file(dir.path(), ORIGIN)).expect("state file");
    let (cp, _) = open_checkpoint(&kept, &[log.key.verifier()], Some(ORIGIN))
        .expect("the kept file carries the log's signature");
    assert_eq!(cp.size, 5);
    let (_, found) = open_cosignatures(&kept, &keys).expect("and the cosignature");
    assert_eq!(found.len(), 1);
}

/// The spec's race: A (5 → 10) and B (5 → 15) both checked against 5 before either persists
/// would both be cosigned, and the later persist would roll the state back. Under the lock
/// exactly one wins, the other gets 409, and the state is the winner's.
#[test]
fn two_racing_submissions_cannot_roll_the_state_back() {
    let log = TestLog::new(1, 20, "a");
    for round in 0..20 {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = open(&log, dir.path());
        assert_eq!(w.add_checkpoint(log.body(0, 5).as_bytes(), 1).status, 200);
        let barrier = std::sync::Barrier::new(2);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                barrier.wait();
                w.add_checkpoint(log.body(5, 10).as_bytes(), 2)
            });
            let b = s.spawn(|| {
                barrier.wait();
                w.add_checkpoint(log.body(5, 15).as_bytes(), 2)
            });
            (a.join().expect("a"), b.join().expect("b"))
        });
        let statuses = [a.status, b.status];
        assert!(
            statuses == [200, 409] || statuses == [409, 200],
            "round {round}: exactly one may win, got {statuses:?}"
        );
        let winner = if a.status == 200 { 10 } else { 15 };
        let loser = if a.status == 200 { &b } else { &a };
        assert_eq!(loser.body, format!("{winner}\n"));
        drop(w);
        let w = open(&log, dir.path());
        let probe = w.add_checkpoint(log.body(0, 20).as_bytes(), 3);
        assert_eq!(
            probe.body,
            format!("{winner}\n"),
            "round {round}: the durable state"
        );
    }
}

#[test]
fn a_fork_is_kept_as_evidence_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = TestLog::new(1, 20, "a");
    let fork = log.forked_at(3, "b");
    let w = open(&log, dir.path());
    assert_eq!(w.add_checkpoint(log.body(0, 10).as_bytes(), 1).status, 200);
    let a = w.add_checkpoint(fork.body(10, 10).as_bytes(), 2);
    assert_eq!((a.status, a.body.as_str()), (409, "10\n"));
    let a = w.add_checkpoint(fork.body(10, 14).as_bytes(), 3);
    assert_eq!(a.status, 422);
    let evidence: Vec<_> = std::fs::read_dir(dir.path().join("evidence"))
        .expect("evidence folder")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
        .collect();
    assert_eq!(evidence.len(), 2);
    assert!(evidence.contains(&fork.body(10, 14)));
    // The honest log continues from 10.
    assert_eq!(w.add_checkpoint(log.body(10, 14).as_bytes(), 4).status, 200);
}

#[test]
fn no_cosignature_leaves_when_the_state_cannot_be_made_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let log = TestLog::new(1, 20, "a");
    let w = open(&log, &state);
    // The state folder disappears and a file takes its name: every write fails.
    std::fs::remove_dir_all(&state).expect("rm");
    std::fs::write(&state, b"not a folder").expect("file");
    let a = w.add_checkpoint(log.body(0, 5).as_bytes(), 1);
    assert_eq!(a.status, 500);
    assert!(!a.body.contains('\u{2014}'), "no signature line: {a:?}");
    // Nothing was recorded in memory either: once the folder is back, old 0 is still right.
    std::fs::remove_file(&state).expect("rm file");
    std::fs::create_dir(&state).expect("mkdir");
    assert_eq!(w.add_checkpoint(log.body(0, 5).as_bytes(), 2).status, 200);
}

//! The witness's decisions, one status code at a time, over a small real log (RFC 6962 tree,
//! signed checkpoints, real consistency proofs).

use super::*;
use crate::log::hash::{leaf_hash, sha256};
use crate::log::merkle::{MemoryNodes, consistency_proof, root_of};
use crate::log::note::SignerKey;

pub(crate) const ORIGIN: &str = "records.example.police.uk/s62";

/// A log held in memory: its key, its leaves, checkpoints and proofs at any size.
pub(crate) struct TestLog {
    pub seed: u8,
    pub key: SignerKey,
    pub leaves: Vec<Hash>,
}

impl TestLog {
    /// `n` leaves; `tag` varies their content (two logs with different tags fork at leaf 0).
    pub fn new(key_seed: u8, n: u64, tag: &str) -> Self {
        TestLog {
            seed: key_seed,
            key: SignerKey::from_seed(ORIGIN, [key_seed; 32]).expect("key"),
            leaves: (0..n)
                .map(|i| leaf_hash(format!("{tag} entry {i}").as_bytes()))
                .collect(),
        }
    }

    /// This log with leaves from `at` on replaced (a fork or rewrite from `at`).
    pub fn forked_at(&self, at: usize, tag: &str) -> Self {
        let mut leaves = self.leaves.clone();
        for (i, l) in leaves.iter_mut().enumerate().skip(at) {
            *l = leaf_hash(format!("{tag} rewritten {i}").as_bytes());
        }
        TestLog {
            seed: self.seed,
            key: SignerKey::from_seed(ORIGIN, [self.seed; 32]).expect("key"),
            leaves,
        }
    }

    pub fn root(&self, size: u64) -> Hash {
        root_of(&self.leaves[..size as usize])
    }

    pub fn note(&self, size: u64) -> String {
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: self.root(size),
            extensions: vec![],
        }
        .sign(&self.key)
        .expect("sign")
    }

    pub fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        if old == 0 || old == new {
            return vec![];
        }
        let (nodes, _) = MemoryNodes::from_leaves(&self.leaves);
        consistency_proof(&nodes, old, new).expect("proof")
    }

    pub fn body(&self, old: u64, size: u64) -> String {
        AddCheckpoint {
            old_size: old,
            proof: self.proof(old, size),
            checkpoint: self.note(size),
        }
        .to_body()
        .expect("body")
    }

    pub fn trusted(&self) -> Vec<TrustedLog> {
        vec![TrustedLog {
            origin: ORIGIN.into(),
            keys: vec![self.key.verifier()],
        }]
    }
}

fn decide(body: &str, logs: &[TrustedLog], latest: Option<Latest>) -> Result<u64, Refusal> {
    let (sub, _) = admit(body.as_bytes(), logs)?;
    check(&sub, latest.as_ref())?;
    Ok(sub.checkpoint.size)
}

fn at(log: &TestLog, size: u64) -> Option<Latest> {
    Some(Latest {
        size,
        root: log.root(size),
    })
}

#[test]
fn a_first_checkpoint_with_old_zero_and_a_consistent_next_one_are_accepted() {
    let log = TestLog::new(1, 20, "a");
    assert_eq!(decide(&log.body(0, 5), &log.trusted(), None), Ok(5));
    for (old, new) in [(5, 13), (13, 16), (16, 20), (20, 20)] {
        assert_eq!(
            decide(&log.body(old, new), &log.trusted(), at(&log, old)),
            Ok(new),
            "{old} -> {new}"
        );
    }
}

#[test]
fn malformed_bodies_and_notes_are_400() {
    let log = TestLog::new(1, 5, "a");
    let note = log.note(5);
    for body in [
        "old 0\n".to_string(),
        format!("old 00\n\n{note}"),
        format!("old 0\n\n{}", note.replace('\u{2014}', "-")),
        format!(
            "old 0\n\nnot a checkpoint\n\n{}",
            &note[note.find('\u{2014}').expect("sig")..]
        ),
    ] {
        let r = decide(&body, &log.trusted(), None).expect_err("malformed");
        assert_eq!(r.status(), 400, "{body:?}: {r}");
    }
    let r = admit(&[0xff, 0xfe], &log.trusted()).expect_err("not utf-8");
    assert_eq!(r.status(), 400);
}

#[test]
fn an_unknown_origin_is_404_and_an_untrusted_signature_403() {
    let log = TestLog::new(1, 5, "a");
    let other_origin = vec![TrustedLog {
        origin: "another.example/log".into(),
        keys: vec![log.key.verifier()],
    }];
    assert_eq!(
        decide(&log.body(0, 5), &other_origin, None).map_err(|r| r.status()),
        Err(404)
    );
    let impostor = TestLog::new(2, 5, "a");
    assert_eq!(
        decide(&impostor.body(0, 5), &log.trusted(), None).map_err(|r| r.status()),
        Err(403),
        "same origin, signed by a key the witness does not trust"
    );
    // A trusted key's signature that does not verify (the root was changed after signing).
    let note = log.note(5);
    let tampered = note.replacen(&log.root(5).to_base64(), &sha256(b"x").to_base64(), 1);
    let body = format!("old 0\n\n{tampered}");
    assert_eq!(
        decide(&body, &log.trusted(), None).map_err(|r| r.status()),
        Err(403)
    );
}

#[test]
fn an_old_size_above_the_checkpoint_is_400_and_a_wrong_one_409_with_the_size() {
    let log = TestLog::new(1, 20, "a");
    let body = format!("old 9\n\n{}", log.note(5));
    assert_eq!(
        decide(&body, &log.trusted(), at(&log, 9)),
        Err(Refusal::OldBeyondCheckpoint { old: 9, size: 5 })
    );
    let r = decide(&log.body(5, 13), &log.trusted(), at(&log, 8)).expect_err("stale old");
    assert_eq!(r, Refusal::OldSizeMismatch { old: 5, latest: 8 });
    assert_eq!(r.status(), 409);
    assert_eq!(r.body(), ("text/x.tlog.size", "8\n".to_string()));
    let r = decide(&log.body(5, 13), &log.trusted(), None).expect_err("never cosigned");
    assert_eq!(r.body().1, "0\n");
}

/// Attack: the operator cuts the tail (or restores an older copy) after the witness cosigned
/// size 16. Whatever old size the log sends, the witness will not cosign the shorter tree.
#[test]
fn a_cut_tail_or_rollback_is_refused() {
    let log = TestLog::new(1, 20, "a");
    let witness = at(&log, 16);
    // The truncated log honestly says it last saw 10: 409, and the body says 16.
    let r = decide(&log.body(10, 12), &log.trusted(), witness).expect_err("cut");
    assert_eq!((r.status(), r.body().1), (409, "16\n".to_string()));
    // It resyncs to 16 as the protocol says: 16 is above its size 12, so 400.
    let body = format!("old 16\n\n{}", log.note(12));
    assert_eq!(
        decide(&body, &log.trusted(), witness).map_err(|r| r.status()),
        Err(400)
    );
}

/// Attack: the operator rewrites history from entry 7 and re-signs with the real key. The
/// witness, at 10, refuses the rewritten tree: 409 at the same size, 422 beyond it.
#[test]
fn a_fork_is_refused_and_kept_as_evidence() {
    let log = TestLog::new(1, 20, "a");
    let fork = log.forked_at(7, "b");
    let witness = at(&log, 10);
    let r = decide(&fork.body(10, 10), &log.trusted(), witness).expect_err("same size");
    assert_eq!(r, Refusal::RootMismatch { size: 10 });
    assert_eq!(r.body(), ("text/x.tlog.size", "10\n".to_string()));
    assert!(r.is_evidence());
    // The fork's own proof from 10 to 15 is against its own root at 10, not the witness's.
    let r = decide(&fork.body(10, 15), &log.trusted(), witness).expect_err("beyond");
    assert_eq!(r.status(), 422);
    assert!(r.is_evidence());
    // The honest log still goes on.
    assert_eq!(decide(&log.body(10, 15), &log.trusted(), witness), Ok(15));
}

#[test]
fn a_proof_that_does_not_verify_or_is_sent_with_old_zero_is_422() {
    let log = TestLog::new(1, 20, "a");
    let mut req = AddCheckpoint::parse(&log.body(5, 13)).expect("parse");
    req.proof[0] = sha256(b"wrong");
    let body = req.to_body().expect("body");
    assert_eq!(
        decide(&body, &log.trusted(), at(&log, 5)).map_err(|r| r.status()),
        Err(422)
    );
    req.proof.pop();
    assert_eq!(
        decide(&req.to_body().expect("b"), &log.trusted(), at(&log, 5)).map_err(|r| r.status()),
        Err(422),
        "a short proof"
    );
    let with_proof = AddCheckpoint {
        old_size: 0,
        proof: vec![sha256(b"extra")],
        checkpoint: log.note(5),
    };
    assert_eq!(
        decide(&with_proof.to_body().expect("b"), &log.trusted(), None).map_err(|r| r.status()),
        Err(422)
    );
    let same_size = AddCheckpoint {
        old_size: 5,
        proof: vec![sha256(b"extra")],
        checkpoint: log.note(5),
    };
    assert_eq!(
        decide(
            &same_size.to_body().expect("b"),
            &log.trusted(),
            at(&log, 5)
        )
        .map_err(|r| r.status()),
        Err(422)
    );
}

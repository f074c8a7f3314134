//! `s62 witness` (a real process on a loopback port) against a log client written from the specs
//! with other people's code: tree hashes and consistency proofs from `tlog_tiles` (Cloudflare's
//! port of Go's sumdb/tlog), checkpoint notes signed and opened with `signed_note` (a port of Go's
//! sumdb/note), cosignatures checked by a `cosignature/v1` verifier written here from
//! c2sp.org/tlog-cosignature, request bodies and HTTP built by hand. Every status code of
//! c2sp.org/tlog-witness `add-checkpoint` is exercised, with the 409 body and content type.

mod witness_support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use signed_note::{Note, StandardSigner, StandardVerifier, Verifier, VerifierList};
use std::cell::RefCell;
use tlog_tiles::{Hash, HashReader, prove_tree, stored_hashes, tree_hash};
use witness_support::{WitnessProcess, add_checkpoint, request};

const ORIGIN: &str = "spec-client.example/log";

/// A log built with third-party code only.
struct SpecLog {
    origin: String,
    skey: String,
    vkey: String,
    stored: RefCell<Vec<Hash>>,
}

impl HashReader for SpecLog {
    fn read_hashes(&self, idx: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let s = self.stored.borrow();
        Ok(idx.iter().map(|i| s[*i as usize]).collect())
    }
}

impl SpecLog {
    /// `n` records; record `i` is `"{tag(i)} {i}"`.
    fn new(origin: &str, seed: u8, n: u64, tag: impl Fn(u64) -> &'static str) -> SpecLog {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let mut pubkey = vec![0x01];
        pubkey.extend_from_slice(sk.verifying_key().as_bytes());
        let id = signed_note::key_id(origin, &pubkey);
        let mut secret = vec![0x01];
        secret.extend_from_slice(&[seed; 32]);
        let log = SpecLog {
            origin: origin.into(),
            skey: format!("PRIVATE+KEY+{origin}+{id:08x}+{}", B64.encode(&secret)),
            vkey: format!("{origin}+{id:08x}+{}", B64.encode(&pubkey)),
            stored: RefCell::new(Vec::new()),
        };
        for i in 0..n {
            let record = format!("{} {i}", tag(i));
            let new = stored_hashes(i, record.as_bytes(), &log).expect("stored hashes");
            log.stored.borrow_mut().extend(new);
        }
        log
    }

    fn note(&self, size: u64) -> String {
        let root = tree_hash(size, self).expect("root");
        let text = format!("{}\n{size}\n{}\n", self.origin, B64.encode(root.0));
        let mut note = Note::new(text.as_bytes(), &[]).expect("note");
        let signer = StandardSigner::new(&self.skey).expect("signer");
        note.add_sigs(&[&signer]).expect("sign");
        String::from_utf8(note.to_bytes()).expect("utf-8")
    }

    fn proof(&self, old: u64, new: u64) -> Vec<String> {
        if old == 0 || old == new {
            return vec![];
        }
        prove_tree(new, old, self)
            .expect("proof")
            .iter()
            .map(|h| B64.encode(h.0))
            .collect()
    }

    /// The add-checkpoint body, from the spec: "old N\n", proof lines, "\n", the note.
    fn body(&self, old: u64, size: u64) -> String {
        body_with(old, &self.proof(old, size), &self.note(size))
    }
}

fn body_with(old: u64, proof: &[String], note: &str) -> String {
    let mut b = format!("old {old}\n");
    for line in proof {
        b.push_str(line);
        b.push('\n');
    }
    b.push('\n');
    b.push_str(note);
    b
}

/// A `cosignature/v1` verifier written from c2sp.org/tlog-cosignature for signed_note.
struct CosignatureV1 {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl CosignatureV1 {
    fn from_vkey(vkey: &str) -> CosignatureV1 {
        let mut parts = vkey.splitn(3, '+');
        let (name, id, key) = (
            parts.next().expect("name"),
            parts.next().expect("id"),
            parts.next().expect("key"),
        );
        let raw = B64.decode(key).expect("base64");
        assert_eq!(raw[0], 0x04, "a cosigner vkey has type 0x04");
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update(b"\n");
        h.update(&raw);
        let d = h.finalize();
        let derived = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        assert_eq!(
            format!("{derived:08x}"),
            id,
            "key ID = SHA-256(name ‖ \\n ‖ 0x04 ‖ key)[:4]"
        );
        CosignatureV1 {
            name: name.into(),
            id: derived,
            key: VerifyingKey::from_bytes(&<[u8; 32]>::try_from(&raw[1..]).expect("32"))
                .expect("key"),
        }
    }
}

impl Verifier for CosignatureV1 {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 72 {
            return false;
        }
        let t = u64::from_be_bytes(sig[..8].try_into().expect("8"));
        if t > (1 << 63) - 1 {
            return false;
        }
        let mut m = format!("cosignature/v1\ntime {t}\n").into_bytes();
        m.extend_from_slice(msg);
        let Ok(s) = ed25519_dalek::Signature::from_slice(&sig[8..]) else {
            return false;
        };
        self.key.verify_strict(&m, &s).is_ok()
    }
}

/// The spec's client step: append the answer to the checkpoint and open the note with the
/// witness key; returns how many cosignatures from it verified.
fn cosignatures(note: &str, answer: &str, witness_vkey: &str) -> usize {
    assert!(
        answer.ends_with('\n') && answer.starts_with('\u{2014}'),
        "{answer:?}"
    );
    let combined = format!("{note}{answer}");
    let note = Note::from_bytes(combined.as_bytes()).expect("a note");
    let (verified, _) = note
        .verify(&VerifierList::new(vec![Box::new(
            CosignatureV1::from_vkey(witness_vkey),
        )]))
        .expect("the witness's cosignature verifies");
    verified.len()
}

fn keys_line(log: &SpecLog) -> String {
    format!("keys = [\"{}\"]", log.vkey)
}

#[test]
fn every_status_code_of_the_spec_from_a_hand_written_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SpecLog::new(ORIGIN, 1, 20, |_| "honest");
    let w = WitnessProcess::start(dir.path(), "witness.test/w1", &[(ORIGIN, keys_line(&log))]);

    // 200: a first checkpoint, old 0, empty proof; the answer is a valid cosignature line.
    let a = add_checkpoint(w.addr, &log.body(0, 5));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(cosignatures(&log.note(5), &a.body, &w.vkey), 1);

    // 409: the old size is not what the witness cosigned; the body is that size.
    let a = add_checkpoint(w.addr, &log.body(0, 8));
    assert_eq!(
        (a.status, a.content_type.as_str(), a.body.as_str()),
        (409, "text/x.tlog.size", "5\n")
    );

    // 422: a consistency proof with one hash changed.
    let mut proof = log.proof(5, 8);
    proof[0] = B64.encode([0u8; 32]);
    let a = add_checkpoint(w.addr, &body_with(5, &proof, &log.note(8)));
    assert_eq!(a.status, 422, "{a:?}");

    // 200: resynced to 5 with the right proof.
    let a = add_checkpoint(w.addr, &log.body(5, 8));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(cosignatures(&log.note(8), &a.body, &w.vkey), 1);

    // 400: old size above the checkpoint size; a body that is not the format; 64 proof lines.
    assert_eq!(
        add_checkpoint(w.addr, &body_with(9, &[], &log.note(8))).status,
        400
    );
    assert_eq!(add_checkpoint(w.addr, "hello\n").status, 400);
    let long = vec![B64.encode([1u8; 32]); 64];
    assert_eq!(
        add_checkpoint(w.addr, &body_with(8, &long, &log.note(9))).status,
        400
    );

    // 404: an origin the witness does not follow (signed by a key it trusts for another log).
    let stranger = SpecLog::new("stranger.example/log", 1, 3, |_| "x");
    assert_eq!(add_checkpoint(w.addr, &stranger.body(0, 3)).status, 404);

    // 403: the right origin signed by a key it does not trust.
    let impostor = SpecLog::new(ORIGIN, 2, 20, |_| "honest");
    assert_eq!(add_checkpoint(w.addr, &impostor.body(8, 12)).status, 403);

    // 409 at the same size: a forked log (rewritten from record 6, re-signed with the real key).
    let fork = SpecLog::new(
        ORIGIN,
        1,
        20,
        |i| if i < 6 { "honest" } else { "rewritten" },
    );
    let a = add_checkpoint(w.addr, &fork.body(8, 8));
    assert_eq!(
        (a.status, a.content_type.as_str(), a.body.as_str()),
        (409, "text/x.tlog.size", "8\n")
    );
    // 422 beyond it: the fork's proof does not lead from the witness's 8.
    assert_eq!(add_checkpoint(w.addr, &fork.body(8, 12)).status, 422);

    // The honest log goes on; other methods and paths are not the protocol.
    assert_eq!(add_checkpoint(w.addr, &log.body(8, 12)).status, 200);
    assert_eq!(request(w.addr, "GET", "/add-checkpoint", "").status, 405);
    assert_eq!(
        request(w.addr, "POST", "/add-checkpoints", &log.body(12, 13)).status,
        404
    );
}

#[test]
fn the_state_survives_a_kill_and_its_file_is_a_cosigned_checkpoint_others_can_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SpecLog::new(ORIGIN, 3, 12, |_| "honest");
    let mut w = WitnessProcess::start(dir.path(), "witness.test/w2", &[(ORIGIN, keys_line(&log))]);
    assert_eq!(add_checkpoint(w.addr, &log.body(0, 10)).status, 200);

    w.restart(); // SIGKILL, then start again
    // A rolled-back copy of the log (size 6) is not cosigned: the witness remembers 10.
    let a = add_checkpoint(w.addr, &log.body(0, 6));
    assert_eq!((a.status, a.body.as_str()), (409, "10\n"));
    assert_eq!(
        add_checkpoint(w.addr, &body_with(10, &[], &log.note(6))).status,
        400
    );

    // The kept file opens with the log's key and with the witness's key, in other people's code.
    let kept = std::fs::read_to_string(w.checkpoint_file(ORIGIN)).expect("state file");
    let note = Note::from_bytes(kept.as_bytes()).expect("note");
    let (by_log, _) = note
        .verify(&VerifierList::new(vec![Box::new(
            StandardVerifier::new(&log.vkey).expect("vkey"),
        )]))
        .expect("log signature");
    assert_eq!(by_log.len(), 1);
    let (by_witness, _) = note
        .verify(&VerifierList::new(vec![Box::new(
            CosignatureV1::from_vkey(&w.vkey),
        )]))
        .expect("cosignature");
    assert_eq!(by_witness.len(), 1);
    assert!(kept.starts_with(&format!("{ORIGIN}\n10\n")));
}

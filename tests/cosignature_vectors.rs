//! Known-answer tests for `s62::log::cosignature` (c2sp.org/tlog-cosignature, Ed25519
//! `cosignature/v1`) against other people's keys and signatures, and against the spec's
//! construction computed here independently (sha2 and ed25519-dalek directly, not through the
//! module under test).
//!
//! Vectors: `tests/vectors/cosignatures.json`, each with its source. The real checkpoint's two
//! signatures (the log's and the witness remora.n621.de's) were also verified with Python's pyca
//! `cryptography` when the file was written.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use s62::log::checkpoint::open_checkpoint;
use s62::log::cosignature::{
    CosignatureError, CosignerKey, CosignerVerifier, cosigner_key_id, open_cosignatures,
    signed_message,
};
use s62::log::note::{NoteError, VerifierKey, open_note};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn vector(id: &str) -> Value {
    let path = format!(
        "{}/tests/vectors/cosignatures.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    let found: Vec<&Value> = all["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .filter(|v| v["id"] == id)
        .collect();
    assert_eq!(found.len(), 1, "exactly one vector {id}");
    found[0].clone()
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_else(|| panic!("field {field}"))
}

/// SHA-256(name ‖ "\n" ‖ type ‖ pubkey)[:4], written out from the spec.
fn spec_key_id(name: &str, alg: u8, pubkey: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(pubkey);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A public witness's vkey (transparency-dev/formats): it parses as a cosigner key, its key ID is
/// SHA-256(name ‖ 0x0A ‖ 0x04 ‖ pubkey)[:4], and it prints back byte for byte.
#[test]
fn a_published_witness_vkey_parses_with_the_type_0x04_key_id() {
    let v = vector("transparency-dev-cosigner-vkey");
    let key = CosignerVerifier::parse(s(&v, "vkey")).expect("a published cosigner vkey parses");
    let id = hex::decode(s(&v, "key_id_hex")).expect("hex");
    assert_eq!(key.key_id().as_slice(), id.as_slice());
    assert_eq!(
        key.key_id(),
        spec_key_id(key.name(), 0x04, &key.public_key())
    );
    assert_ne!(
        key.key_id(),
        spec_key_id(key.name(), 0x01, &key.public_key()),
        "the type byte is part of the key ID"
    );
    assert_eq!(key.to_vkey(), s(&v, "vkey"));
}

/// A real checkpoint as published, cosigned by public witnesses: the log's Ed25519 line verifies
/// with our signed-note code and the witness remora.n621.de's line with our cosignature code;
/// the other witnesses' lines (keys we were not given) are ignored.
#[test]
fn a_real_cosignature_on_a_published_checkpoint_verifies() {
    let v = vector("arche2025h1-cosigned-checkpoint");
    let note = s(&v, "note");
    let log_key = VerifierKey::parse(s(&v, "log_vkey")).expect("log vkey");
    let (cp, signers) = open_checkpoint(note, std::slice::from_ref(&log_key), None)
        .expect("the log's own Ed25519 signature verifies");
    assert_eq!(signers.len(), 1);
    assert_eq!(Some(cp.size), v["size"].as_u64());

    let witness = CosignerVerifier::parse(s(&v, "witness_vkey")).expect("witness vkey");
    let keys = [witness];
    let (_, found) = open_cosignatures(note, &keys).expect("the cosignature verifies");
    assert_eq!(found.len(), 1, "one cosignature from the given witness");
    assert_eq!(Some(found[0].timestamp), v["witness_timestamp"].as_u64());
    assert_eq!(found[0].witness.name(), "remora.n621.de");

    // The same line checked by hand from the spec: message = "cosignature/v1\ntime <t>\n" ‖ text.
    let text = note.split_once("\n\n").expect("text").0.to_owned() + "\n";
    let line = note
        .lines()
        .find(|l| l.starts_with("— remora.n621.de "))
        .expect("witness line");
    let blob = B64
        .decode(line.rsplit(' ').next().expect("base64"))
        .expect("base64");
    let ts = u64::from_be_bytes(blob[4..12].try_into().expect("8 bytes"));
    let message = format!("cosignature/v1\ntime {ts}\n{text}");
    assert_eq!(signed_message(ts, &text), message.as_bytes());
    let pk = ed25519_dalek::VerifyingKey::from_bytes(&keys[0].public_key()).expect("key");
    let sig = ed25519_dalek::Signature::from_slice(&blob[12..]).expect("64 bytes");
    pk.verify(message.as_bytes(), &sig)
        .expect("independent verification");

    // Change the size, as a rolled-back copy would: the cosignature no longer verifies.
    let forged = note.replacen(&format!("\n{}\n", cp.size), "\n42\n", 1);
    assert!(matches!(
        open_cosignatures(&forged, &keys),
        Err(CosignatureError::BadCosignature { .. })
    ));
}

/// transparency-dev/formats' timestamp example decodes to the same POSIX time.
#[test]
fn a_cosignature_timestamp_is_the_8_big_endian_bytes_after_the_key_id() {
    let v = vector("transparency-dev-cosignature-timestamp");
    let blob = B64.decode(s(&v, "signature_base64")).expect("base64");
    assert_eq!(blob.len(), 4 + 8 + 64);
    let ts = u64::from_be_bytes(blob[4..12].try_into().expect("8"));
    assert_eq!(Some(ts), v["timestamp"].as_u64());
}

/// The spec's signed-message example, byte for byte; and a signature made here with
/// ed25519-dalek directly over that hand-built message verifies through the module, while one
/// over the bare text (a log-style signature) does not.
#[test]
fn the_signed_message_is_the_spec_construction() {
    let v = vector("c2sp-signed-message-example");
    let ts = v["timestamp"].as_u64().expect("timestamp");
    let text = s(&v, "text");
    assert_eq!(signed_message(ts, text), s(&v, "message").as_bytes());

    let seed = [42u8; 32];
    let name = "witness.example/w1";
    let ours = CosignerKey::from_seed(name, seed).expect("key");
    let raw = SigningKey::from_bytes(&seed);
    let pubkey = raw.verifying_key().to_bytes();
    assert_eq!(ours.key_id(), spec_key_id(name, 0x04, &pubkey));
    assert_eq!(
        cosigner_key_id(name, &pubkey),
        spec_key_id(name, 0x04, &pubkey)
    );

    // Independently built line.
    let mut blob = spec_key_id(name, 0x04, &pubkey).to_vec();
    blob.extend_from_slice(&ts.to_be_bytes());
    blob.extend_from_slice(&raw.sign(s(&v, "message").as_bytes()).to_bytes());
    let line = format!("— {name} {}\n", B64.encode(&blob));
    assert_eq!(
        ours.cosign(text, ts).expect("cosign"),
        line,
        "Ed25519 is deterministic: our line is the hand-built one"
    );
    let note = format!("{text}\n{line}");
    let keys = [ours.verifier()];
    let (_, found) = open_cosignatures(&note, &keys).expect("verifies");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].timestamp, ts);

    // A plain Ed25519 signature over the text under the same key ID is not a cosignature.
    let mut plain = spec_key_id(name, 0x04, &pubkey).to_vec();
    plain.extend_from_slice(&ts.to_be_bytes());
    plain.extend_from_slice(&raw.sign(text.as_bytes()).to_bytes());
    let bad = format!("{text}\n— {name} {}\n", B64.encode(&plain));
    assert!(matches!(
        open_cosignatures(&bad, &keys),
        Err(CosignatureError::BadCosignature { .. })
    ));
}

/// Log keys and cosigner keys never stand in for each other, even with the same name and seed:
/// a cosigner vkey is refused as a log key and the other way round, and each kind of line is
/// ignored (not counted) by the other kind of verifier.
#[test]
fn a_log_key_is_never_a_cosigner_key() {
    let seed = [9u8; 32];
    let name = "records.example.police.uk/s62";
    let log = s62::log::note::SignerKey::from_seed(name, seed).expect("log key");
    let cosigner = CosignerKey::from_seed(name, seed).expect("cosigner key");
    assert!(matches!(
        CosignerVerifier::parse(&log.verifier().to_vkey()),
        Err(CosignatureError::NotACosignerKey { alg: 0x01 })
    ));
    assert!(matches!(
        VerifierKey::parse(&cosigner.verifier().to_vkey()),
        Err(NoteError::UnsupportedAlgorithm { alg: 0x04 })
    ));
    let text = format!("{name}\n3\n{}\n", B64.encode([7u8; 32]));
    let signed = log.sign_note(&text).expect("sign");
    let cosigners = [cosigner.verifier()];
    let (_, found) = open_cosignatures(&signed, &cosigners).expect("log line is ignored");
    assert!(
        found.is_empty(),
        "a log signature does not count as a cosignature"
    );
    let only_cosigned = format!("{text}\n{}", cosigner.cosign(&text, 1).expect("cosign"));
    assert!(matches!(
        open_note(&only_cosigned, &[log.verifier()]),
        Err(NoteError::NoKnownSignature)
    ));
}

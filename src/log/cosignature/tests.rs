use super::*;

const TEXT: &str =
    "records.example.police.uk/s62\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

fn key(name: &str, seed: u8) -> CosignerKey {
    CosignerKey::from_seed(name, [seed; 32]).expect("key")
}

#[test]
fn a_secret_key_string_round_trips_and_a_wrong_key_id_is_refused() {
    let k = key("witness.example/w1", 1);
    let skey = k.to_skey();
    assert!(skey.starts_with("PRIVATE+KEY+witness.example/w1+"));
    let back = CosignerKey::parse(&skey).expect("parses");
    assert_eq!(back.verifier(), k.verifier());
    assert!(!format!("{back:?}").contains(skey.rsplit('+').next().expect("b64")));
    let id = hex::encode(k.key_id());
    let wrong = skey.replacen(&id, "00000000", 1);
    assert!(matches!(
        CosignerKey::parse(&wrong),
        Err(CosignatureError::Note(NoteError::KeyIdMismatch { .. }))
    ));
    let vkey = k.verifier().to_vkey();
    assert_eq!(CosignerVerifier::parse(&vkey).expect("vkey"), k.verifier());
    assert!(matches!(
        CosignerVerifier::parse(&vkey.replacen(&id, "00000000", 1)),
        Err(CosignatureError::Note(NoteError::KeyIdMismatch { .. }))
    ));
}

#[test]
fn timestamps_above_2_pow_63_minus_1_are_refused_when_signing_and_verifying() {
    let k = key("w", 2);
    assert!(k.cosign(TEXT, MAX_TIMESTAMP).is_ok());
    assert!(matches!(
        k.cosign(TEXT, MAX_TIMESTAMP + 1),
        Err(CosignatureError::TimestampTooLarge(_))
    ));
    // A correctly signed line carrying 2^63 is still refused by the verifier.
    let ts = MAX_TIMESTAMP + 1;
    let sig = k.key.sign(&signed_message(ts, TEXT));
    let mut signature = ts.to_be_bytes().to_vec();
    signature.extend_from_slice(&sig.to_bytes());
    assert_eq!(k.verifier().verify(TEXT, &signature), None);
    signature[0] = 0x7f; // the same signature under another timestamp
    assert_eq!(k.verifier().verify(TEXT, &signature), None);
}

#[test]
fn a_bad_line_from_a_known_witness_rejects_and_unknown_lines_are_ignored() {
    let (a, b) = (key("a.example/w", 3), key("b.example/w", 4));
    let good_a = a.cosign(TEXT, 100).expect("a");
    let good_b = b.cosign(TEXT, 100).expect("b");
    let note = format!("{TEXT}\n{good_a}{good_b}");
    let known = [a.verifier()];
    let (_, found) = open_cosignatures(&note, &known).expect("b is unknown, ignored");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, 0);
    // a's line over another text: known key, bad signature → the note is rejected.
    let other = TEXT.replace("\n5\n", "\n6\n");
    let moved = format!("{other}\n{good_a}");
    assert!(matches!(
        open_cosignatures(&moved, &known),
        Err(CosignatureError::BadCosignature { .. })
    ));
    // A truncated signature from a known key is bad too, not ignored.
    let short = format!(
        "{TEXT}\n— a.example/w {}\n",
        B64.encode([&a.key_id()[..], &[0u8; 8][..]].concat())
    );
    assert!(matches!(
        open_cosignatures(&short, &known),
        Err(CosignatureError::BadCosignature { .. })
    ));
}

#[test]
fn two_keys_of_one_witness_count_once_and_a_repeated_line_once() {
    let (old, new) = (key("w.example", 5), key("w.example", 6));
    let other = key("x.example", 7);
    let note = format!(
        "{TEXT}\n{}{}{}{}",
        old.cosign(TEXT, 1).expect("1"),
        new.cosign(TEXT, 2).expect("2"),
        new.cosign(TEXT, 3).expect("3"),
        other.cosign(TEXT, 4).expect("4"),
    );
    let known = [old.verifier(), new.verifier(), other.verifier()];
    let (_, found) = open_cosignatures(&note, &known).expect("verifies");
    assert_eq!(found.len(), 3, "one per key");
    assert_eq!(found[1].timestamp, 2, "the first line of a key is kept");
    assert_eq!(distinct_witnesses(&found), 2, "w.example counts once");
}

#[test]
fn adding_lines_keeps_the_note_and_skips_a_witness_already_there() {
    let log_line = "— records.example.police.uk/s62 AAAAAAE=\n";
    let note = format!("{TEXT}\n{log_line}");
    let w = key("w.example", 8);
    let first = parse_note(&format!("{TEXT}\n{}", w.cosign(TEXT, 10).expect("c")))
        .expect("note")
        .signatures;
    let once = add_signature_lines(&note, &first).expect("adds");
    assert!(once.starts_with(&note));
    let again = parse_note(&format!("{TEXT}\n{}", w.cosign(TEXT, 20).expect("c")))
        .expect("note")
        .signatures;
    assert_eq!(
        add_signature_lines(&once, &again).expect("adds nothing"),
        once,
        "a second cosignature by the same key is not added"
    );
    let keys = [w.verifier()];
    let (_, found) = open_cosignatures(&once, &keys).expect("verifies");
    assert_eq!(found[0].timestamp, 10);
}

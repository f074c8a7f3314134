//! What the format-2 and format-3 test vectors of docs/format.md share: the entry both seal, the
//! batch seed, the independent Python implementations' output and the published page. Test
//! support only: depends on nothing of s62 but its entry types.

use s62::log::entry::{Actor, AuthMethod, Entry, EntryKind, Justification, Operation, Request};

/// The vectors' entry, as the writer holds it before sealing (seq and time already set).
pub fn vector_entry() -> Entry {
    Entry {
        seq: 7,
        time_unix_nanos: 1_764_547_200_000_000_000, // 2025-12-01T00:00:00Z
        kind: EntryKind::Intent as i32,
        operation: Operation::Consultation as i32,
        prev_leaf_hash: vec![0x11; 32],
        actor: Some(Actor {
            id: "PC-4471".into(),
            display_name: "PC A. Officer".into(),
            roles: vec!["constable".into()],
            source_address: "10.0.0.7".into(),
            auth_method: AuthMethod::Mtls as i32,
        }),
        justification: Some(Justification {
            purpose_code: "investigation".into(),
            text: "checking an alibi".into(),
            case_reference: "CR-2026-0042".into(),
        }),
        subject_ids: vec!["P-1001".into()],
        request: Some(Request {
            method: "GET".into(),
            path: "/people/P-1001".into(),
            route: "person".into(),
            request_id: "r-1".into(),
            ..Default::default()
        }),
        checkpoint_follows: true,
        ..Default::default()
    }
}

/// The vectors' per-batch seed: bytes 0x00, 0x01, ..., 0x1f.
pub fn vector_seed() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

/// Runs `tests/vectors/<script>` (an independent implementation of the spec) and returns the
/// JSON it prints.
pub fn independent(script: &str) -> serde_json::Value {
    let path = format!("{}/tests/vectors/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Fails unless docs/format.md carries every (what, hex) of a vector, whitespace ignored.
pub fn assert_published(vector: &str, blocks: &[(&str, &str)]) {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/format.md"))
        .expect("docs/format.md exists");
    let flat: String = doc.split_whitespace().collect();
    for (what, hex) in blocks {
        assert!(
            flat.contains(hex),
            "docs/format.md does not carry the {vector} vector's {what}"
        );
    }
}

/// Fails if the leaf (hex) holds any of the vector entry's personal values in clear.
pub fn assert_no_value_in_clear(leaf_hex: &str) {
    let leaf_text =
        String::from_utf8_lossy(&hex::decode(leaf_hex).unwrap_or_default()).into_owned();
    for secret in [
        "PC-4471",
        "PC A. Officer",
        "constable",
        "10.0.0.7",
        "alibi",
        "CR-2026",
        "P-1001",
    ] {
        assert!(!leaf_text.contains(secret), "{secret} is in the leaf");
    }
}

/// Fails unless the opened vector entry has exactly its subject id removed, shown empty.
pub fn assert_subject_redacted(opened: &s62::log::seal::Opened) {
    assert_eq!(opened.entry.subject_ids, vec![String::new()]);
    let redacted: Vec<String> = opened.redacted.iter().map(ToString::to_string).collect();
    assert_eq!(redacted, ["subject_id[0]"]);
}

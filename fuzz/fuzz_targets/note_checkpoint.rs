//! Signed notes (c2sp.org/signed-note), checkpoints (c2sp.org/tlog-checkpoint) and note verifier
//! keys: strict parsers over text a stranger can hand a verifier. What parses must re-encode to
//! the same text (checkpoints) and a signature check must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s62::log::checkpoint::{Checkpoint, open_checkpoint};
use s62::log::note::{SignerKey, VerifierKey, parse_note};
use std::sync::OnceLock;

fn known() -> &'static [VerifierKey] {
    static K: OnceLock<Vec<VerifierKey>> = OnceLock::new();
    K.get_or_init(|| {
        vec![
            SignerKey::from_seed("fuzz.s62.test/log", [7u8; 32])
                .expect("key")
                .verifier(),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(note) = parse_note(text) {
        assert!(!note.signatures.is_empty());
    }
    if let Ok(c) = Checkpoint::parse_text(text) {
        assert_eq!(c.to_text(), text, "a checkpoint text round-trips");
    }
    let _ = open_checkpoint(text, known(), None);
    let _ = VerifierKey::parse(text.trim_end());
    let _ = VerifierKey::parse_many(text);
});

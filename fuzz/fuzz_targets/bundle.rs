//! The export bundle reader (`s62 verify-bundle`): any input is either verified or refused with
//! a reason, never a panic, against a fixed key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s62::log::epoch::LogKeys;
use s62::log::note::SignerKey;
use s62::verify::bundle::verify_bundle;
use std::sync::OnceLock;

fn keys() -> &'static LogKeys {
    static K: OnceLock<LogKeys> = OnceLock::new();
    K.get_or_init(|| {
        let vkey = SignerKey::from_seed("fuzz.s62.test/log", [7u8; 32])
            .expect("key")
            .verifier()
            .to_vkey();
        LogKeys::parse(&vkey).expect("log.pub")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = verify_bundle(data, keys(), None);
});

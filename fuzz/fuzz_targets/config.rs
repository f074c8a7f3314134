//! The config loader: any text either parses into a config whose routes compile, or yields at
//! least one problem with a message; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s62::classify::Classifier;
use s62::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text) {
        Ok(cfg) => {
            let _ = Classifier::new(&cfg.routes, &cfg.justification);
            let _ = s62::proxy::RequestPolicy::from_routes(&cfg.routes);
        }
        Err(e) => {
            assert!(!e.problems.is_empty());
            assert!(e.problems.iter().all(|p| !p.message.is_empty()));
            let _ = e.to_string();
        }
    }
});

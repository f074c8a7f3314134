//! Route templates and request paths: `PathTemplate::parse`, `split_path`, matching, parameter
//! character classes, and the example config's classifier over arbitrary paths and queries.
//! Input: `template \n path?query \n class`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s62::classify::template::{ParamChars, PathTemplate, percent_decode, split_path};
use s62::classify::{Classifier, RequestView};
use s62::config::Config;
use std::sync::OnceLock;

fn example() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| {
        let cfg = Config::from_toml_str(include_str!("../../config/sidecar.example.toml"))
            .expect("the example parses");
        Classifier::new(&cfg.routes, &cfg.justification)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let template = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let class = parts.next();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let segments = split_path(path);
    assert!(segments.iter().all(|s| s != "." && s != ".."));
    let _ = percent_decode(target, true);
    if let Ok(t) = PathTemplate::parse(template) {
        assert_eq!(t.as_str(), template);
        if let Some(params) = t.matches(&segments) {
            for name in t.params() {
                assert!(params.get(name).is_some(), "every parameter is bound");
            }
            if let Some(chars) = class.and_then(|c| ParamChars::parse(c).ok()) {
                if let Some(name) = params.first_outside(&chars) {
                    assert!(t.has_param(name));
                }
            }
        }
    }
    if let Some(Ok(chars)) = class.map(ParamChars::parse) {
        assert!(!chars.allows(""));
        assert!(!chars.allows("/") && !chars.allows(";"));
    }
    let headers = http::HeaderMap::new();
    for method in [http::Method::GET, http::Method::POST, http::Method::DELETE] {
        if let Ok(c) = example().classify(&RequestView {
            method: &method,
            path,
            query,
            headers: &headers,
            json_body: None,
        }) {
            assert!(c.subject_ids.iter().all(|s| !s.is_empty()));
        }
    }
});

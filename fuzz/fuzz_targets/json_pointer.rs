//! JSON bodies and pointers: the strict body reader (duplicate members refused) must accept
//! exactly what serde_json accepts when no member repeats and agree with it on the value; pointer
//! parsing, id extraction and the case-variant check must not panic on any document.
//! Input: `pointer \n json`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s62::classify::pointer::JsonPointer;
use s62::proxy::json::{self, JsonError};

fuzz_target!(|data: &[u8]| {
    let (pointer, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let loose = json::parse(body, false);
    let strict = json::parse(body, true);
    let plain: Result<serde_json::Value, _> = serde_json::from_slice(body);
    assert_eq!(loose.is_ok(), plain.is_ok());
    match (&strict, &plain) {
        (Ok(s), Ok(p)) => assert_eq!(s, p, "the strict reader reads what serde_json reads"),
        (Ok(_), Err(_)) => panic!("the strict reader accepted what serde_json refuses"),
        (Err(JsonError::Invalid), Ok(_)) => panic!("the strict reader refused valid JSON"),
        _ => {}
    }
    let Ok(pointer) = std::str::from_utf8(pointer) else {
        return;
    };
    let Ok(p) = JsonPointer::parse(pointer) else {
        return;
    };
    assert_eq!(p.as_str(), pointer);
    if let Ok(doc) = loose {
        let mut ids = Vec::new();
        p.collect_ids(&doc, &mut ids);
        assert!(ids.iter().all(|s| !s.is_empty()));
        let _ = p.has_case_variant(&doc);
        let _ = p.select(&doc);
    }
});

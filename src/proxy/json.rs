//! Reading a request or response body as JSON the way the strictest upstream would: optionally
//! refusing duplicate member names, which parsers resolve differently (first wins, last wins,
//! merged), so the ids s62 logs and the ids the records system acts on could differ.
//!
//! Pure: bytes in, a `serde_json::Value` or a typed error out. Must not import the log, the
//! writer, hyper or the classifier.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Why a body is not usable JSON.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all (or trailing bytes after it).
    #[error("not JSON")]
    Invalid,
    /// An object names a member twice (only when duplicates are refused).
    #[error("an object names a member twice")]
    DuplicateKey,
}

/// Parses `bytes` as one JSON document; with `refuse_duplicates`, an object anywhere that names
/// a member twice is an error. Nesting is limited by serde_json's recursion limit (128).
pub fn parse(bytes: &[u8], refuse_duplicates: bool) -> Result<Value, JsonError> {
    if !refuse_duplicates {
        return serde_json::from_slice(bytes).map_err(|_| JsonError::Invalid);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict.deserialize(&mut de).map_err(|e| {
        if e.to_string().starts_with(DUPLICATE) {
            JsonError::DuplicateKey
        } else {
            JsonError::Invalid
        }
    })?;
    de.end().map_err(|_| JsonError::Invalid)?;
    Ok(value)
}

const DUPLICATE: &str = "s62: duplicate member";

/// Builds a `Value`, failing on a repeated member name.
#[derive(Clone, Copy)]
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Strict)?;
            if members.insert(key, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_repeated_member_anywhere_is_refused_only_when_asked() {
        for doc in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"x":[{"id":"P-1","id":"P-2"}]}"#,
            br#"{"x":{"y":{"z":1,"z":1}}}"#,
        ] {
            assert_eq!(parse(doc, true), Err(JsonError::DuplicateKey));
            assert!(parse(doc, false).is_ok());
        }
    }

    #[test]
    fn the_strict_reader_reads_what_serde_json_reads() {
        let doc = br#"{"a":[1,-2,3.5,true,null,"s"],"b":{"c":18446744073709551615},"A":0}"#;
        let strict = parse(doc, true).expect("valid");
        let plain: Value = serde_json::from_slice(doc).expect("valid");
        assert_eq!(strict, plain);
        assert_eq!(strict["a"][0], json!(1));
    }

    #[test]
    fn anything_but_one_json_document_is_invalid() {
        for doc in [&b""[..], b"{", b"{} {}", b"recipient=x", b"\xff"] {
            assert_eq!(parse(doc, true), Err(JsonError::Invalid), "{doc:?}");
            assert_eq!(parse(doc, false), Err(JsonError::Invalid), "{doc:?}");
        }
    }
}

//! Reading a JSON document for a few pointers: one pass over the bytes that checks the whole
//! document is JSON (the same acceptance as `serde_json::from_slice::<Value>` on every value the
//! pointers can reach, UTF-8 checked everywhere) but builds only the values the pointers can
//! reach. Everything else is skipped without allocating: a 100-byte person read for `/id` builds
//! one string instead of a map with a key and a value per member.
//!
//! Where a pointer can reach nothing, the result holds `null` (array elements keep their places,
//! so indices still resolve) or omits the member; every pointer selects from the result exactly
//! what it selects from the full document, which is what [`super::ResponseExtract`] needs.
//! One difference in acceptance: a `\u` escape of a lone surrogate in a string no pointer reaches
//! is skipped as RFC 8259 allows, where building a `Value` would refuse it.
//!
//! Pure: depends on `serde_json` and [`super::pointer`] only; no I/O.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::pointer::{JsonPointer, Segment, array_index};

/// At most this many pointers are followed at once (one bit each); more read the whole document.
const MAX_POINTERS: usize = 64;

/// Why the bytes are not one JSON document.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not JSON")]
pub struct NotJson;

/// Parses `bytes` as one JSON document, building only what `pointers` can reach.
pub fn parse_reachable(bytes: &[u8], pointers: &[&JsonPointer]) -> Result<Value, NotJson> {
    if pointers.len() > MAX_POINTERS {
        return serde_json::from_slice(bytes).map_err(|_| NotJson);
    }
    // Validating UTF-8 once up front keeps skipped strings to the same rule as built ones.
    let text = std::str::from_utf8(bytes).map_err(|_| NotJson)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let all = if pointers.len() == MAX_POINTERS {
        u64::MAX
    } else {
        (1u64 << pointers.len()) - 1
    };
    let value = Reach {
        pointers,
        depth: 0,
        active: all,
    }
    .deserialize(&mut de)
    .map_err(|_| NotJson)?;
    de.end().map_err(|_| NotJson)?;
    Ok(value)
}

/// Builds the value at `depth` for the `active` pointers (a bit per pointer).
#[derive(Clone, Copy)]
struct Reach<'p> {
    pointers: &'p [&'p JsonPointer],
    depth: usize,
    active: u64,
}

impl Reach<'_> {
    /// True when an active pointer ends here: the value itself is selected, so it is built whole.
    fn ends_here(&self) -> bool {
        self.bits()
            .any(|i| self.pointers[i].segment(self.depth).is_none())
    }

    fn bits(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.pointers.len()).filter(|i| self.active & (1u64 << i) != 0)
    }

    /// The pointers that go on into member `key` (`Some`) or array element `index`.
    fn child(&self, key: Option<&str>, index: usize) -> u64 {
        let mut next = 0u64;
        for i in self.bits() {
            let go = match self.pointers[i].segment(self.depth) {
                Some(Segment::Every) => true,
                Some(Segment::Key(k)) => match key {
                    Some(key) => k == key,
                    None => array_index(k) == Some(index),
                },
                None => false,
            };
            if go {
                next |= 1u64 << i;
            }
        }
        next
    }

    fn descend(&self, active: u64) -> Reach<'_> {
        Reach {
            pointers: self.pointers,
            depth: self.depth + 1,
            active,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Reach<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.active == 0 {
            <IgnoredAny as serde::Deserialize>::deserialize(d)?;
            return Ok(Value::Null);
        }
        if self.ends_here() {
            return <Value as serde::Deserialize>::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Reach<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    // Scalars on the way are not containers: the pointers reach nothing below them.
    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let next = self.descend(self.child(None, items.len()));
            match seq.next_element_seed(next)? {
                Some(v) => items.push(v),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let active = self.child(Some(&key), 0);
            if active == 0 {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = map.next_value_seed(self.descend(active))?;
            // Last wins, as in `serde_json`'s own map.
            members.insert(key.into_owned(), value);
        }
        Ok(Value::Object(members))
    }
}

/// A member name, borrowed from the input unless it holds escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointers(texts: &[&str]) -> Vec<JsonPointer> {
        texts
            .iter()
            .map(|t| JsonPointer::parse(t).expect("pointer"))
            .collect()
    }

    /// Every pointer selects from the reduced document what it selects from the whole one.
    fn agrees(doc: &str, texts: &[&str]) -> Value {
        let ps = pointers(texts);
        let refs: Vec<&JsonPointer> = ps.iter().collect();
        let reduced = parse_reachable(doc.as_bytes(), &refs).expect("JSON");
        let whole: Value = serde_json::from_str(doc).expect("JSON");
        for p in &ps {
            assert_eq!(p.select(&reduced), p.select(&whole), "{p} in {doc}");
        }
        reduced
    }

    #[test]
    fn only_what_the_pointers_reach_is_built_and_they_read_the_same() {
        let doc = r#"{"id":"P-1","address_id":"L-3","name":"Daniel","links":[{"id":"E-4"},{"id":"P-9"}],"n":{"x":1}}"#;
        let reduced = agrees(doc, &["/id", "/address_id"]);
        assert_eq!(reduced, json!({"id": "P-1", "address_id": "L-3"}));
        let reduced = agrees(
            doc,
            &["/links/*/id", "/links/1/id", "/n", "/missing", "/id/x"],
        );
        assert_eq!(
            reduced,
            json!({"links": [{"id": "E-4"}, {"id": "P-9"}], "n": {"x": 1}, "id": null})
        );
        agrees(doc, &["/*/id", "/links/0", ""]);
        agrees(
            r#"[{"a":1},{"a":2},{"b":3}]"#,
            &["/2/b", "/*/a", "/01/a", "/-/a"],
        );
        agrees(r#""P-1""#, &["", "/x"]);
        agrees(r#"{"a~/b":{"c":7}}"#, &["/a~0~1b/c"]);
    }

    #[test]
    fn a_repeated_member_reads_as_the_last_one_like_serde_json() {
        let reduced = agrees(r#"{"id":"P-1","id":"P-2"}"#, &["/id"]);
        assert_eq!(reduced, json!({"id": "P-2"}));
    }

    #[test]
    fn what_is_not_one_json_document_is_refused_even_where_no_pointer_reaches() {
        let ps = pointers(&["/id"]);
        let refs: Vec<&JsonPointer> = ps.iter().collect();
        for doc in [
            &b""[..],
            b"{",
            b"{} {}",
            b"{\"id\":\"P-1\",\"x\":\"\xff\"}",
            b"{\"id\":\"P-1\",\"x\":[1,}",
            b"{\"id\":\"P-1\",\"x\":tru}",
            b"{\"id\":\"P-1\",\"x\":\"a\\qb\"}",
            b"{\"id\":\"P-1\",\"x\":\"tab\there\"}",
            b"recipient=x",
        ] {
            assert_eq!(parse_reachable(doc, &refs), Err(NotJson), "{doc:?}");
            assert!(serde_json::from_slice::<Value>(doc).is_err(), "{doc:?}");
        }
    }

    #[test]
    fn more_pointers_than_bits_read_the_whole_document() {
        let texts: Vec<String> = (0..70).map(|i| format!("/k{i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let reduced = agrees(r#"{"k69":"x","other":1}"#, &refs);
        assert_eq!(reduced, json!({"k69": "x", "other": 1}));
    }
}

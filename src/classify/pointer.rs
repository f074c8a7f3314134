//! JSON pointers (RFC 6901) with one extension: a `*` segment means every element of an array or
//! every member value of an object, so `/results/*/person_id` reads an id from each search hit.
//!
//! Pure: depends on `serde_json` and nothing else in the crate; no I/O. A pointer is parsed once
//! (at config load) and then only evaluated. `*` is always the wildcard: RFC 6901 has no escape for
//! it, so an object member literally named `*` cannot be addressed.

use std::fmt;

use serde_json::Value;

/// A parsed JSON pointer, possibly with `*` wildcards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPointer {
    /// The pointer as written, for display and error messages.
    text: String,
    tokens: Vec<Token>,
}

/// One reference token of a pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A member name or array index, unescaped (`~1` → `/`, `~0` → `~`).
    Key(String),
    /// `*`: every array element or object member value.
    Every,
}

/// One reference token as [`JsonPointer::segment`] shows it to other evaluators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    /// A member name or array index, unescaped.
    Key(&'a str),
    /// `*`: every array element or object member value.
    Every,
}

/// Why a string is not a JSON pointer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    /// A non-empty pointer must start with `/` (RFC 6901 §3).
    #[error("a JSON pointer must be empty or start with '/' (got {0:?})")]
    NotAbsolute(String),
    /// `~` must be followed by `0` or `1` (RFC 6901 §3).
    #[error("'~' at byte {0} must be followed by '0' or '1' (write '~0' for '~' and '~1' for '/')")]
    BadEscape(usize),
}

impl JsonPointer {
    /// Parses a pointer: `""` is the whole document, otherwise `/`-separated reference tokens.
    pub fn parse(text: &str) -> Result<Self, PointerError> {
        if text.is_empty() {
            return Ok(JsonPointer {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError::NotAbsolute(text.to_owned()));
        };
        let mut tokens = Vec::new();
        let mut offset = 1;
        for raw in rest.split('/') {
            tokens.push(if raw == "*" {
                Token::Every
            } else {
                Token::Key(unescape(raw, offset)?)
            });
            offset += raw.len() + 1;
        }
        Ok(JsonPointer {
            text: text.to_owned(),
            tokens,
        })
    }

    /// Reference token `i` (from 0); `None` past the last one.
    pub fn segment(&self, i: usize) -> Option<Segment<'_>> {
        self.tokens.get(i).map(|t| match t {
            Token::Key(k) => Segment::Key(k),
            Token::Every => Segment::Every,
        })
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Every value the pointer reaches in `doc`, in document order; empty when nothing matches.
    pub fn select<'v>(&self, doc: &'v Value) -> Vec<&'v Value> {
        let mut current = vec![doc];
        for token in &self.tokens {
            let mut next = Vec::new();
            for value in current {
                match (token, value) {
                    (Token::Every, Value::Array(items)) => next.extend(items.iter()),
                    (Token::Every, Value::Object(members)) => next.extend(members.values()),
                    (Token::Key(key), Value::Object(members)) => next.extend(members.get(key)),
                    (Token::Key(key), Value::Array(items)) => {
                        next.extend(array_index(key).and_then(|i| items.get(i)))
                    }
                    _ => {}
                }
            }
            if next.is_empty() {
                return next;
            }
            current = next;
        }
        current
    }

    /// True when an object on the pointer's way holds a member whose name differs from the
    /// pointer's token only in case (`Recipient` for `/recipient`): a case-insensitive binder
    /// upstream would read a value this pointer does not see.
    pub fn has_case_variant(&self, doc: &Value) -> bool {
        let mut current = vec![doc];
        for token in &self.tokens {
            let mut next = Vec::new();
            for value in current {
                match (token, value) {
                    (Token::Key(key), Value::Object(members)) => {
                        if members
                            .keys()
                            .any(|k| k != key && k.to_lowercase() == key.to_lowercase())
                        {
                            return true;
                        }
                        next.extend(members.get(key));
                    }
                    (Token::Every, Value::Array(items)) => next.extend(items.iter()),
                    (Token::Every, Value::Object(members)) => next.extend(members.values()),
                    (Token::Key(key), Value::Array(items)) => {
                        next.extend(array_index(key).and_then(|i| items.get(i)))
                    }
                    _ => {}
                }
            }
            current = next;
        }
        false
    }

    /// Appends the ids the pointer reaches: strings as they are (empty ones skipped), numbers as
    /// their decimal text; booleans, nulls, arrays and objects are not ids and are ignored.
    pub fn collect_ids(&self, doc: &Value, out: &mut Vec<String>) {
        for value in self.select(doc) {
            if let Some(id) = id_text(value) {
                out.push(id);
            }
        }
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A JSON value as an identifier, if it can be one.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// RFC 6901 §4: an array index is `0` or digits without a leading zero; `-` (past the end) and
/// anything else reach nothing.
pub(crate) fn array_index(token: &str) -> Option<usize> {
    let digits = token.bytes().all(|b| b.is_ascii_digit());
    if token.is_empty() || !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

fn unescape(raw: &str, offset: usize) -> Result<String, PointerError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some((_, '0')) => out.push('~'),
                Some((_, '1')) => out.push('/'),
                _ => return Err(PointerError::BadEscape(offset + i)),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(pointer: &str, doc: &Value) -> Vec<String> {
        let mut out = Vec::new();
        JsonPointer::parse(pointer)
            .expect("valid pointer")
            .collect_ids(doc, &mut out);
        out
    }

    #[test]
    fn a_plain_pointer_reads_one_member() {
        let doc = json!({"person": {"id": "P-1"}});
        assert_eq!(ids("/person/id", &doc), ["P-1"]);
    }

    #[test]
    fn a_wildcard_reads_every_search_hit() {
        let doc = json!({"results": [
            {"person_id": "P-1"}, {"person_id": 42}, {"other": 1}, {"person_id": null}
        ]});
        assert_eq!(ids("/results/*/person_id", &doc), ["P-1", "42"]);
    }

    #[test]
    fn a_wildcard_over_an_object_reads_its_member_values() {
        let doc = json!({"links": {"a": {"id": "R-1"}, "b": {"id": "R-2"}}});
        assert_eq!(ids("/links/*/id", &doc), ["R-1", "R-2"]);
    }

    #[test]
    fn a_member_named_like_a_token_in_another_case_is_noticed() {
        let p = JsonPointer::parse("/people/*/id").expect("valid");
        assert!(!p.has_case_variant(&json!({"people": [{"id": 1}], "ID": 2})));
        assert!(p.has_case_variant(&json!({"People": [{"id": 1}]})));
        assert!(p.has_case_variant(&json!({"people": [{"id": 1}, {"Id": 2}]})));
        assert!(!p.has_case_variant(&json!({"people": "x"})));
    }

    #[test]
    fn array_indexes_follow_rfc_6901() {
        let doc = json!({"a": ["x", "y"]});
        assert_eq!(ids("/a/1", &doc), ["y"]);
        assert!(
            ids("/a/01", &doc).is_empty(),
            "leading zero is not an index"
        );
        assert!(ids("/a/-", &doc).is_empty(), "'-' is past the end");
        assert!(ids("/a/2", &doc).is_empty());
    }

    #[test]
    fn escapes_are_decoded() {
        let doc = json!({"a/b": {"m~n": "ok"}});
        assert_eq!(ids("/a~1b/m~0n", &doc), ["ok"]);
    }

    #[test]
    fn the_empty_pointer_is_the_whole_document() {
        assert_eq!(ids("", &json!("P-9")), ["P-9"]);
    }

    #[test]
    fn non_id_values_and_missing_paths_yield_nothing() {
        let doc = json!({"a": true, "b": {"c": 1}, "e": ""});
        assert!(ids("/a", &doc).is_empty());
        assert!(ids("/b", &doc).is_empty());
        assert!(ids("/e", &doc).is_empty());
        assert!(ids("/zz/*/id", &doc).is_empty());
    }

    #[test]
    fn malformed_pointers_are_refused() {
        assert_eq!(
            JsonPointer::parse("results/id"),
            Err(PointerError::NotAbsolute("results/id".into()))
        );
        assert_eq!(JsonPointer::parse("/a~2"), Err(PointerError::BadEscape(2)));
        assert_eq!(
            JsonPointer::parse("/ok/x~"),
            Err(PointerError::BadEscape(5))
        );
    }
}

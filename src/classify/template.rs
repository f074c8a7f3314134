//! Path templates (`/people/{id}/links/{other}`, `/files/{*rest}`) and the request-path splitting
//! they are matched against.
//!
//! Pure: depends on nothing else in the crate; no I/O. Matching is on percent-decoded segments
//! after `.`/`..` are resolved (so `/people/1/../2` is classified as `/people/2`, which is what most
//! upstreams serve), and a trailing slash is ignored.

use std::fmt;

/// A parsed, well-formed path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    /// The template as written, for display.
    text: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// Must equal the request segment exactly (after percent-decoding both).
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param(String),
    /// `{*name}`: one or more remaining segments, joined with `/`; only ever last.
    Rest(String),
}

/// Why a string is not a path template.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Templates are absolute paths.
    #[error("a path template must start with '/' (got {0:?})")]
    NotAbsolute(String),
    /// Templates match the path only; the query is read with `query:` sources.
    #[error("a path template cannot contain '?' or '#'; read query parameters with \"query:name\"")]
    HasQuery,
    /// `//` in the middle of a template.
    #[error("segment {0} is empty ('//')")]
    EmptySegment(usize),
    /// A segment mixes literal text and braces, e.g. `id{id}` or `{id`.
    #[error("segment {0:?} must be literal text or exactly one {{param}} / {{*rest}}")]
    MixedSegment(String),
    /// A parameter name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("parameter name {0:?} must be letters, digits and '_', not starting with a digit")]
    BadParamName(String),
    /// The same parameter appears twice.
    #[error("parameter {{{0}}} appears more than once")]
    DuplicateParam(String),
    /// `{*rest}` is not the final segment.
    #[error("{{*{0}}} must be the last segment")]
    RestNotLast(String),
}

impl PathTemplate {
    /// Parses a template: literal segments, `{param}` segments and an optional final `{*rest}`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if !text.starts_with('/') {
            return Err(TemplateError::NotAbsolute(text.to_owned()));
        }
        if text.contains(['?', '#']) {
            return Err(TemplateError::HasQuery);
        }
        let body = &text[1..];
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut segments: Vec<Segment> = Vec::new();
        if !body.is_empty() {
            for (i, raw) in body.split('/').enumerate() {
                if let Some(Segment::Rest(name)) = segments.last() {
                    return Err(TemplateError::RestNotLast(name.clone()));
                }
                segments.push(parse_segment(raw, i + 1)?);
                if let Some(Segment::Param(name) | Segment::Rest(name)) = segments.last() {
                    let seen = segments[..segments.len() - 1]
                        .iter()
                        .any(|s| matches!(s, Segment::Param(n) | Segment::Rest(n) if n == name));
                    if seen {
                        return Err(TemplateError::DuplicateParam(name.clone()));
                    }
                }
            }
        }
        Ok(PathTemplate {
            text: text.to_owned(),
            segments,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `{name}` or `{*name}` appears in the template.
    pub fn has_param(&self, name: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Param(n) | Segment::Rest(n) if n == name))
    }

    /// Names of the template's parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Rest(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The path with every parameter replaced by `value`, or `None` when `value` is empty or
    /// holds a character outside `A-Za-z0-9-._~:@` (nothing is percent-encoded, so a probe
    /// always asks for exactly the id that was logged).
    pub fn fill(&self, value: &str) -> Option<String> {
        let safe = |c: char| c.is_ascii_alphanumeric() || "-._~:@".contains(c);
        if value.is_empty() || !value.chars().all(safe) || value == "." || value == ".." {
            return None;
        }
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) | Segment::Rest(_) => out.push_str(value),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        Some(out)
    }

    /// Matches decoded request segments (from [`split_path`]); `Some(params)` on a match.
    pub fn matches(&self, path: &[String]) -> Option<PathParams> {
        let mut params = Vec::new();
        let mut rest = path;
        for segment in &self.segments {
            match segment {
                Segment::Rest(name) => {
                    if rest.is_empty() {
                        return None;
                    }
                    params.push((name.clone(), rest.join("/")));
                    rest = &[];
                }
                Segment::Literal(lit) => {
                    let (first, tail) = rest.split_first()?;
                    if first != lit {
                        return None;
                    }
                    rest = tail;
                }
                Segment::Param(name) => {
                    let (first, tail) = rest.split_first()?;
                    if first.is_empty() {
                        return None;
                    }
                    params.push((name.clone(), first.clone()));
                    rest = tail;
                }
            }
        }
        rest.is_empty().then_some(PathParams(params))
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The characters a `{param}` (or each segment of a `{*rest}`) value may hold once
/// percent-decoded, written like the inside of a regex bracket: single characters and `a-z`
/// ranges, a `-` first or last is literal. The default, [`ParamChars::DEFAULT`], has no `.`, so
/// `/people/P-1001.json` (served as `P-1001` by suffix-matching frameworks) is refused rather
/// than logged with `P-1001.json` as the subject; a route whose ids contain dots says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamChars {
    text: String,
    ranges: Vec<(char, char)>,
}

/// Why a string is not a parameter character class.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamCharsError {
    /// Nothing allowed.
    #[error("must allow at least one character")]
    Empty,
    /// `z-a`.
    #[error("range {0:?}-{1:?} is backwards")]
    Backwards(char, char),
    /// `/`, `;`, `%` and control characters are never allowed in a parameter value.
    #[error("{0:?} can never be part of a parameter value")]
    Forbidden(char),
}

impl ParamChars {
    /// Letters, digits, `_`, `~`, `:`, `@` and `-`.
    pub const DEFAULT: &'static str = "A-Za-z0-9_~:@-";

    /// Parses a class such as `"A-Za-z0-9._-"`.
    pub fn parse(text: &str) -> Result<Self, ParamCharsError> {
        let chars: Vec<char> = text.chars().collect();
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let lo = chars[i];
            let (lo, hi) = if i + 2 < chars.len() && chars[i + 1] == '-' {
                i += 3;
                (lo, chars[i - 1])
            } else {
                i += 1;
                (lo, lo)
            };
            if lo > hi {
                return Err(ParamCharsError::Backwards(lo, hi));
            }
            let overlaps = |a: char, b: char| lo <= b && hi >= a;
            if let Some(bad) = ['/', ';', '%', '?', '#']
                .into_iter()
                .find(|c| (lo..=hi).contains(c))
            {
                return Err(ParamCharsError::Forbidden(bad));
            }
            if overlaps('\0', '\u{1f}') || overlaps('\u{7f}', '\u{9f}') {
                return Err(ParamCharsError::Forbidden(lo.max('\0')));
            }
            ranges.push((lo, hi));
        }
        if ranges.is_empty() {
            return Err(ParamCharsError::Empty);
        }
        Ok(ParamChars {
            text: text.to_owned(),
            ranges,
        })
    }

    /// The class as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether every character of a non-empty `value` is in the class.
    pub fn allows(&self, value: &str) -> bool {
        !value.is_empty()
            && value
                .chars()
                .all(|c| self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)))
    }
}

impl Default for ParamChars {
    fn default() -> Self {
        // Invariant: DEFAULT is a well-formed class (tested below).
        #[allow(clippy::expect_used)]
        ParamChars::parse(Self::DEFAULT).expect("the default class parses")
    }
}

/// Decoded values of a template's parameters for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathParams(Vec<(String, String)>);

impl PathParams {
    /// The decoded value of `{name}`, if the template has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first parameter whose value (each `/`-separated part, for `{*rest}`) has a character
    /// outside `chars`.
    pub fn first_outside(&self, chars: &ParamChars) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, v)| !v.split('/').all(|part| chars.allows(part)))
            .map(|(n, _)| n.as_str())
    }
}

/// Splits a request path (no query) into percent-decoded segments, resolving `.` and `..` and
/// ignoring a trailing slash. `/` is no segments.
pub fn split_path(path: &str) -> Vec<String> {
    let body = path.strip_prefix('/').unwrap_or(path);
    let body = body.strip_suffix('/').unwrap_or(body);
    let mut out: Vec<String> = Vec::new();
    if body.is_empty() {
        return out;
    }
    for raw in body.split('/') {
        let segment = percent_decode(raw, false);
        match segment.as_str() {
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(segment),
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`, for query strings). Malformed
/// escapes are kept as written; bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    if !s.contains(['%', '+']) {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

fn parse_segment(raw: &str, index: usize) -> Result<Segment, TemplateError> {
    if raw.is_empty() {
        return Err(TemplateError::EmptySegment(index));
    }
    if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        let (rest, name) = match inner.strip_prefix('*') {
            Some(name) => (true, name),
            None => (false, inner),
        };
        if name.contains(['{', '}']) {
            return Err(TemplateError::MixedSegment(raw.to_owned()));
        }
        if !is_param_name(name) {
            return Err(TemplateError::BadParamName(name.to_owned()));
        }
        return Ok(if rest {
            Segment::Rest(name.to_owned())
        } else {
            Segment::Param(name.to_owned())
        });
    }
    if raw.contains(['{', '}']) {
        return Err(TemplateError::MixedSegment(raw.to_owned()));
    }
    Ok(Segment::Literal(percent_decode(raw, false)))
}

fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> PathTemplate {
        PathTemplate::parse(s).expect("valid template")
    }

    #[test]
    fn a_template_binds_its_params_from_decoded_segments() {
        let params = t("/people/{id}/links/{other}")
            .matches(&split_path("/people/P%2D1/links/O%201"))
            .expect("matches");
        assert_eq!(params.get("id"), Some("P-1"));
        assert_eq!(params.get("other"), Some("O 1"));
    }

    #[test]
    fn a_trailing_slash_is_tolerated_on_both_sides() {
        assert!(t("/people/").matches(&split_path("/people")).is_some());
        assert!(t("/people").matches(&split_path("/people/")).is_some());
        assert!(t("/").matches(&split_path("/")).is_some());
    }

    #[test]
    fn literals_params_and_lengths_must_agree() {
        let tpl = t("/people/{id}");
        assert!(tpl.matches(&split_path("/people")).is_none());
        assert!(tpl.matches(&split_path("/people/1/links")).is_none());
        assert!(tpl.matches(&split_path("/objects/1")).is_none());
        assert!(
            tpl.matches(&split_path("/People/1")).is_none(),
            "case-sensitive"
        );
    }

    #[test]
    fn rest_takes_the_remaining_segments() {
        let tpl = t("/files/{*path}");
        let params = tpl.matches(&split_path("/files/a/b%2Fc")).expect("matches");
        assert_eq!(params.get("path"), Some("a/b/c"));
        assert!(tpl.matches(&split_path("/files")).is_none());
    }

    #[test]
    fn dot_segments_are_resolved_before_matching() {
        assert_eq!(split_path("/people/1/../2"), ["people", "2"]);
        assert_eq!(split_path("/people/./%2e%2e/exports"), ["exports"]);
        assert_eq!(split_path("/../x"), ["x"]);
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%zz%4", false), "a%zz%4");
        assert_eq!(percent_decode("a+b%2B", true), "a b+");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("caf%C3%A9", false), "café");
    }

    #[test]
    fn malformed_templates_are_refused_with_a_reason() {
        use TemplateError::*;
        let err = |s: &str| PathTemplate::parse(s).expect_err(s);
        assert_eq!(err("people"), NotAbsolute("people".into()));
        assert_eq!(err("/people?x=1"), HasQuery);
        assert_eq!(err("/people//x"), EmptySegment(2));
        assert_eq!(err("/people/id{id}"), MixedSegment("id{id}".into()));
        assert_eq!(err("/people/{id"), MixedSegment("{id".into()));
        assert_eq!(err("/people/{1d}"), BadParamName("1d".into()));
        assert_eq!(err("/a/{id}/b/{id}"), DuplicateParam("id".into()));
        assert_eq!(err("/a/{*rest}/b"), RestNotLast("rest".into()));
    }

    #[test]
    fn parameter_values_are_held_to_their_character_class() {
        let default = ParamChars::default();
        assert!(default.allows("P-1001"));
        assert!(default.allows("user@example:1"));
        for suffixed in ["P-1001.json", "P-1001 x", "P,1", ""] {
            assert!(!default.allows(suffixed), "{suffixed:?}");
        }
        let dotted = ParamChars::parse("A-Za-z0-9._-").expect("class");
        assert!(dotted.allows("2024.01-x"));
        assert!(!dotted.allows("a:b"));
        let p = t("/files/{*path}")
            .matches(&split_path("/files/a/b.c"))
            .expect("matches");
        assert_eq!(p.first_outside(&default), Some("path"));
        assert_eq!(p.first_outside(&dotted), None);
        assert_eq!(ParamChars::parse(""), Err(ParamCharsError::Empty));
        assert_eq!(
            ParamChars::parse("z-a"),
            Err(ParamCharsError::Backwards('z', 'a'))
        );
        assert_eq!(
            ParamChars::parse("a-z;"),
            Err(ParamCharsError::Forbidden(';'))
        );
        assert_eq!(
            ParamChars::parse("!-~"),
            Err(ParamCharsError::Forbidden('/'))
        );
    }

    #[test]
    fn params_are_listed_in_order() {
        let names: Vec<_> = t("/a/{x}/{*y}").params().map(str::to_owned).collect();
        assert_eq!(names, ["x", "y"]);
        assert!(t("/a/{x}").has_param("x"));
        assert!(!t("/a/{x}").has_param("y"));
    }
}

//! `[routes]` and `[[routes.rule]]`: method + path template → s62 operation, and where the ids,
//! recipients and returned ids of each request come from.

use http::{HeaderName, Method};
use serde::Deserialize;

use super::check::{Checker, Section, at};
use crate::classify::pointer::JsonPointer;
use crate::classify::template::{ParamChars, PathTemplate};
use crate::log::entry::Operation;

/// `[routes]`: the rule table, first match wins.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutesConfig {
    /// Refuse (and log a denial for) requests that no rule matches.
    pub strict: bool,
    pub rules: Vec<RouteRule>,
    /// Refuse JSON bodies with a duplicate member name anywhere, or with a member named like a
    /// `body:` pointer's token in another case: parsers disagree on which one counts.
    pub strict_json_keys: bool,
    /// Headers that make frameworks change the method or the path after s62 classified the
    /// request; a request carrying any of them, in any spelling (`_` for `-`, any case), is
    /// refused. Stored lower-case with `_` as `-`.
    pub refused_headers: Vec<String>,
    /// Query keys (and urlencoded form fields) refused for the same reason, compared as sent
    /// and percent-decoded, ignoring case.
    pub refused_query_keys: Vec<String>,
}

/// Method-override and URL-rewrite headers obeyed by common frameworks.
pub const DEFAULT_REFUSED_HEADERS: [&str; 7] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
    "x-original-method",
    "x-forwarded-path",
];

impl Default for RoutesConfig {
    fn default() -> Self {
        RoutesConfig {
            strict: false,
            rules: Vec::new(),
            strict_json_keys: true,
            refused_headers: DEFAULT_REFUSED_HEADERS.map(str::to_owned).to_vec(),
            refused_query_keys: vec!["_method".to_owned()],
        }
    }
}

/// A header name as frameworks that fold `_` into `-` (CGI, WSGI, PHP) and ignore case see it.
pub fn header_spelling(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// One `[[routes.rule]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteRule {
    pub name: String,
    pub methods: MethodMatch,
    pub path: PathTemplate,
    /// Characters a `{param}` value may hold; `None`: [`ParamChars::DEFAULT`].
    pub param_pattern: Option<ParamChars>,
    pub operation: Operation,
    pub subjects: Vec<IdSource>,
    pub records: Vec<IdSource>,
    pub recipients: Vec<IdSource>,
    /// Read from the JSON response body: what the person actually received.
    pub returned_subjects: Vec<JsonPointer>,
    pub returned_records: Vec<JsonPointer>,
    /// Overrides [`super::JustificationConfig::required_for`] for this rule.
    pub justification_required: Option<bool>,
    pub stream_request: bool,
    pub stream_response: bool,
    /// On an erasure rule: how to check that the records system really erased the subject.
    pub erasure_probe: Option<ErasureProbe>,
}

/// `verify_with`, `expect` and `recheck_after` of an erasure rule: after a 2xx erasure the
/// sidecar asks the records system for each erased subject, at once and again after each delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureProbe {
    pub method: Method,
    /// One parameter, filled with each erased subject id.
    pub path: PathTemplate,
    /// Statuses that confirm the erasure (default 404 and 410).
    pub expect: Vec<u16>,
    /// Delays after the erasure for the later checks, in order.
    pub recheck_after: Vec<std::time::Duration>,
}

/// Which methods a rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MethodMatch {
    /// `"*"`.
    Any,
    /// The listed methods; `GET` also covers `HEAD`.
    Only(Vec<Method>),
}

impl MethodMatch {
    /// Whether a request with `method` is covered.
    pub fn allows(&self, method: &Method) -> bool {
        match self {
            MethodMatch::Any => true,
            MethodMatch::Only(list) => {
                list.contains(method) || (*method == Method::HEAD && list.contains(&Method::GET))
            }
        }
    }
}

/// Where an id is read from in the request (`"path:id"`, `"query:q"`, `"header:x-h"`,
/// `"body:/p"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdSource {
    /// A template parameter, percent-decoded.
    Path(String),
    /// Every value of a query parameter (form-decoded).
    Query(String),
    /// Every value of a request header, trimmed.
    Header(HeaderName),
    /// A pointer into the JSON request body.
    Body(JsonPointer),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoutes {
    strict: Option<bool>,
    strict_json_keys: Option<bool>,
    refused_headers: Option<Vec<String>>,
    refused_query_keys: Option<Vec<String>>,
    rule: Option<Vec<toml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    name: Option<String>,
    /// A string or a list of strings.
    method: Option<toml::Value>,
    path: Option<String>,
    param_pattern: Option<String>,
    operation: Option<String>,
    subjects: Option<Vec<String>>,
    records: Option<Vec<String>>,
    recipients: Option<Vec<String>>,
    returned_subjects: Option<Vec<String>>,
    returned_records: Option<Vec<String>>,
    justification_required: Option<bool>,
    stream_request: Option<bool>,
    stream_response: Option<bool>,
    verify_with: Option<RawProbe>,
    expect: Option<Vec<i64>>,
    recheck_after: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    method: Option<String>,
    path: Option<String>,
}

impl Section for RoutesConfig {
    const KEY: &'static str = "routes";
    type Raw = RawRoutes;

    fn check(raw: RawRoutes, c: &mut Checker<'_>) -> Option<Self> {
        let mut rules = Vec::new();
        let mut ok = true;
        let mut names: Vec<(String, usize)> = Vec::new();
        for (i, value) in raw.rule.into_iter().flatten().enumerate() {
            let path = format!("routes.rule[{i}]");
            let Some(raw_rule) = c.table::<RawRule>(&path, value) else {
                ok = false;
                continue;
            };
            if let Some(name) = &raw_rule.name {
                if let Some((_, first)) = names.iter().find(|(n, _)| n == name) {
                    c.push(
                        &format!("{path}.name"),
                        format!("{name:?} is already the name of routes.rule[{first}]"),
                    );
                    ok = false;
                }
                names.push((name.clone(), i));
            }
            match rule(&path, raw_rule, c) {
                Some(rule) => rules.push(rule),
                None => ok = false,
            }
        }
        let d = RoutesConfig::default();
        let mut refused_headers = Vec::new();
        for (i, h) in raw.refused_headers.iter().flatten().enumerate() {
            match c.header(&format!("routes.refused_headers[{i}]"), h) {
                Some(name) => refused_headers.push(header_spelling(name.as_str())),
                None => ok = false,
            }
        }
        let mut refused_query_keys = Vec::new();
        for (i, k) in raw.refused_query_keys.iter().flatten().enumerate() {
            if k.is_empty() || k.contains(['&', '=', '%']) {
                c.push(
                    &format!("routes.refused_query_keys[{i}]"),
                    format!("{k:?} must be a non-empty key without '&', '=' or '%'"),
                );
                ok = false;
            } else {
                refused_query_keys.push(k.to_ascii_lowercase());
            }
        }
        ok.then_some(RoutesConfig {
            strict: raw.strict.unwrap_or(false),
            rules,
            strict_json_keys: raw.strict_json_keys.unwrap_or(d.strict_json_keys),
            refused_headers: match raw.refused_headers {
                Some(_) => refused_headers,
                None => d.refused_headers,
            },
            refused_query_keys: match raw.refused_query_keys {
                Some(_) => refused_query_keys,
                None => d.refused_query_keys,
            },
        })
    }
}

fn rule(path: &str, raw: RawRule, c: &mut Checker<'_>) -> Option<RouteRule> {
    let before = c.problems.len();
    let name = c.required(&at(path, "name"), raw.name);
    if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        c.push(&at(path, "name"), "must not be empty");
    }
    let methods = c
        .required(&at(path, "method"), raw.method)
        .and_then(|m| method_match(&at(path, "method"), m, c));
    let template = c
        .required(&at(path, "path"), raw.path)
        .and_then(|t| match PathTemplate::parse(&t) {
            Ok(t) => Some(t),
            Err(e) => {
                c.push(&at(path, "path"), e.to_string());
                None
            }
        });
    let param_pattern = match raw.param_pattern {
        None => Some(None),
        Some(p) => match ParamChars::parse(&p) {
            Ok(chars) => Some(Some(chars)),
            Err(e) => {
                c.push(&at(path, "param_pattern"), e.to_string());
                None
            }
        },
    };
    let operation = c
        .required(&at(path, "operation"), raw.operation)
        .and_then(|o| c.operation(&at(path, "operation"), &o));

    let sources = |c: &mut Checker<'_>, key: &str, list: Option<Vec<String>>| -> Vec<IdSource> {
        let mut out = Vec::new();
        for (i, s) in list.into_iter().flatten().enumerate() {
            if let Some(src) = id_source(&format!("{path}.{key}[{i}]"), &s, template.as_ref(), c) {
                out.push(src);
            }
        }
        out
    };
    let subjects = sources(c, "subjects", raw.subjects);
    let records = sources(c, "records", raw.records);
    let recipients = sources(c, "recipients", raw.recipients);
    let returned = |c: &mut Checker<'_>, key: &str, list: Option<Vec<String>>| {
        let mut out = Vec::new();
        for (i, s) in list.into_iter().flatten().enumerate() {
            if let Some(p) = response_pointer(&format!("{path}.{key}[{i}]"), &s, c) {
                out.push(p);
            }
        }
        out
    };
    let returned_subjects = returned(c, "returned_subjects", raw.returned_subjects);
    let returned_records = returned(c, "returned_records", raw.returned_records);

    let stream_request = raw.stream_request.unwrap_or(false);
    let stream_response = raw.stream_response.unwrap_or(false);
    let body_sources = [&subjects, &records, &recipients]
        .into_iter()
        .flatten()
        .any(|s| matches!(s, IdSource::Body(_)));
    if stream_request && body_sources {
        c.push(
            &at(path, "stream_request"),
            "a streamed request body cannot be read: remove the \"body:\" sources or stream_request",
        );
    }
    if stream_response && !(returned_subjects.is_empty() && returned_records.is_empty()) {
        c.push(
            &at(path, "stream_response"),
            "a streamed response cannot be read: remove returned_subjects/returned_records or stream_response",
        );
    }
    if operation == Some(Operation::Disclosure) && recipients.is_empty() {
        c.push(
            &at(path, "recipients"),
            "a disclosure rule must say where the recipients come from (s62(3))",
        );
    }
    let erasure_probe = probe(
        path,
        (raw.verify_with, raw.expect, raw.recheck_after),
        operation,
        c,
    );
    if c.problems.len() > before {
        return None;
    }
    Some(RouteRule {
        name: name?,
        methods: methods?,
        path: template?,
        param_pattern: param_pattern?,
        operation: operation?,
        subjects,
        records,
        recipients,
        returned_subjects,
        returned_records,
        justification_required: raw.justification_required,
        stream_request,
        stream_response,
        erasure_probe,
    })
}

/// `verify_with` / `expect` / `recheck_after`: only on an erasure rule, and only together.
type RawProbeKeys = (Option<RawProbe>, Option<Vec<i64>>, Option<Vec<String>>);

fn probe(
    path: &str,
    (with, expect_raw, recheck_raw): RawProbeKeys,
    operation: Option<Operation>,
    c: &mut Checker<'_>,
) -> Option<ErasureProbe> {
    let Some(with) = with else {
        for (key, set) in [
            ("expect", expect_raw.is_some()),
            ("recheck_after", recheck_raw.is_some()),
        ] {
            if set {
                c.push(&at(path, key), "only applies together with verify_with");
            }
        }
        return None;
    };
    let key = at(path, "verify_with");
    if operation.is_some_and(|o| o != Operation::Erasure) {
        c.push(&key, "only an erasure rule can be verified by a probe");
    }
    let method = match with.method.as_deref().unwrap_or("GET") {
        m @ ("GET" | "HEAD") => Method::from_bytes(m.as_bytes()).ok(),
        other => {
            c.push(
                &format!("{key}.method"),
                format!("{other:?}: a probe only reads (GET or HEAD)"),
            );
            None
        }
    };
    let template = match with.path.as_deref() {
        None => {
            c.push(&format!("{key}.path"), "is required");
            None
        }
        Some(t) => match PathTemplate::parse(t) {
            Ok(t) if t.params().count() == 1 => Some(t),
            Ok(_) => {
                c.push(
                    &format!("{key}.path"),
                    "must have exactly one {parameter}, filled with each erased subject id",
                );
                None
            }
            Err(e) => {
                c.push(&format!("{key}.path"), e.to_string());
                None
            }
        },
    };
    let mut expect = Vec::new();
    for (i, s) in expect_raw
        .unwrap_or_else(|| vec![404, 410])
        .into_iter()
        .enumerate()
    {
        match u16::try_from(s) {
            Ok(s) if (100..600).contains(&s) => expect.push(s),
            _ => c.push(
                &format!("{}[{i}]", at(path, "expect")),
                format!("{s} is not an HTTP status"),
            ),
        }
    }
    if expect.is_empty() {
        c.push(&at(path, "expect"), "must name at least one status");
    }
    let mut recheck_after = Vec::new();
    for (i, text) in recheck_raw.iter().flatten().enumerate() {
        let key = format!("{}[{i}]", at(path, "recheck_after"));
        recheck_after.extend(c.span(&key, text));
    }
    Some(ErasureProbe {
        method: method?,
        path: template?,
        expect,
        recheck_after,
    })
}

fn method_match(path: &str, value: toml::Value, c: &mut Checker<'_>) -> Option<MethodMatch> {
    let list: Vec<(String, String)> = match value {
        toml::Value::String(s) => vec![(path.to_owned(), s)],
        toml::Value::Array(items) => {
            let mut list = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let p = format!("{path}[{i}]");
                match item {
                    toml::Value::String(s) => list.push((p, s)),
                    other => c.push(&p, format!("expected a string, found {}", other.type_str())),
                }
            }
            if list.is_empty() {
                c.push(path, "must name at least one method");
                return None;
            }
            list
        }
        other => {
            c.push(
                path,
                format!(
                    "expected a method or a list of methods, found {}",
                    other.type_str()
                ),
            );
            return None;
        }
    };
    if list.iter().any(|(_, m)| m == "*") {
        if list.len() > 1 {
            c.push(path, "\"*\" already covers every method; list nothing else");
            return None;
        }
        return Some(MethodMatch::Any);
    }
    let mut methods = Vec::new();
    let mut ok = true;
    for (p, m) in list {
        if m.bytes().any(|b| b.is_ascii_lowercase()) {
            c.push(
                &p,
                format!(
                    "methods are case-sensitive; write {:?}",
                    m.to_ascii_uppercase()
                ),
            );
            ok = false;
            continue;
        }
        match Method::from_bytes(m.as_bytes()) {
            Ok(method) if !m.is_empty() => {
                if !methods.contains(&method) {
                    methods.push(method);
                }
            }
            _ => {
                c.push(&p, format!("{m:?} is not an HTTP method token"));
                ok = false;
            }
        }
    }
    ok.then_some(MethodMatch::Only(methods))
}

fn id_source(
    path: &str,
    text: &str,
    template: Option<&PathTemplate>,
    c: &mut Checker<'_>,
) -> Option<IdSource> {
    let Some((kind, arg)) = text.split_once(':') else {
        c.push(
            path,
            format!("{text:?} must be \"path:<param>\", \"query:<name>\", \"header:<name>\" or \"body:<json pointer>\""),
        );
        return None;
    };
    match kind {
        "path" => {
            if let Some(t) = template
                && !t.has_param(arg)
            {
                let params: Vec<&str> = t.params().collect();
                c.push(
                    path,
                    format!(
                        "the template {:?} has no {{{arg}}} (its parameters: {})",
                        t.as_str(),
                        if params.is_empty() {
                            "none".to_owned()
                        } else {
                            params.join(", ")
                        }
                    ),
                );
                return None;
            }
            Some(IdSource::Path(arg.to_owned()))
        }
        "query" if !arg.is_empty() => Some(IdSource::Query(arg.to_owned())),
        "query" => {
            c.push(path, "\"query:\" needs a parameter name");
            None
        }
        "header" => c.header(path, arg).map(IdSource::Header),
        "body" => match JsonPointer::parse(arg) {
            Ok(p) => Some(IdSource::Body(p)),
            Err(e) => {
                c.push(path, e.to_string());
                None
            }
        },
        "response" => {
            c.push(
                path,
                "\"response:\" is read after the upstream answers; put it in returned_subjects or returned_records",
            );
            None
        }
        other => {
            c.push(
                path,
                format!("unknown source kind {other:?} (expected path, query, header or body)"),
            );
            None
        }
    }
}

fn response_pointer(path: &str, text: &str, c: &mut Checker<'_>) -> Option<JsonPointer> {
    let Some(pointer) = text.strip_prefix("response:") else {
        c.push(
            path,
            format!("{text:?} must be \"response:<json pointer>\""),
        );
        return None;
    };
    match JsonPointer::parse(pointer) {
        Ok(p) => Some(p),
        Err(e) => {
            c.push(path, e.to_string());
            None
        }
    }
}

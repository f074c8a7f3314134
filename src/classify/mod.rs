//! Route classification: a request's method, path, query, headers and JSON body, plus the route
//! rules, give its DPA 2018 s62 operation, the data subject and record ids it touches, its
//! recipients, whether it needs a justification, and how to read returned ids from the response.
//!
//! Pure: no I/O, no async, no clock, no logging. Depends only on the typed config, `http` types,
//! `serde_json` and `crate::log::entry`; it must not import the proxy, the store or a runtime.
//! Everything is compiled once in [`Classifier::new`]; [`Classifier::classify`] only reads.

pub mod pointer;
pub mod reach;
pub mod template;

use std::collections::HashSet;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Method};
use serde_json::Value;

use crate::config::{IdSource, JustificationConfig, MethodMatch, RoutesConfig};
use crate::log::entry::{Justification, Operation};
use pointer::JsonPointer;
use template::{ParamChars, PathTemplate, split_path};

/// The route rules, compiled; build once per config and share.
#[derive(Clone, Debug)]
pub struct Classifier {
    rules: Vec<CompiledRule>,
    strict: bool,
    required_for: Vec<Operation>,
}

#[derive(Clone, Debug)]
struct CompiledRule {
    name: String,
    methods: MethodMatch,
    template: PathTemplate,
    param_chars: ParamChars,
    operation: Operation,
    subjects: Vec<IdSource>,
    records: Vec<IdSource>,
    recipients: Vec<IdSource>,
    justification_required: bool,
    stream_request: bool,
    stream_response: bool,
    response_extract: ResponseExtract,
}

/// What the classifier looks at; the proxy fills it from the request head and buffered body.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// The path only, as received (still percent-encoded), without `?query`.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The request body parsed as JSON; `None` when absent, streamed or not JSON.
    pub json_body: Option<&'a Value>,
}

/// The s62 view of one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Classified {
    /// Name of the matching rule; empty when the method default applied.
    pub route: String,
    pub operation: Operation,
    /// Deduplicated, in the order found.
    pub subject_ids: Vec<String>,
    pub record_ids: Vec<String>,
    pub recipients: Vec<String>,
    /// The rule's override if it has one, else whether `required_for` lists the operation.
    pub justification_required: bool,
    pub stream_request: bool,
    pub stream_response: bool,
    /// How to read what the person received from the response body.
    pub response_extract: ResponseExtract,
    /// The rule reads ids from the request body (`body:` sources): a non-empty body must then
    /// be read as JSON whatever its Content-Type.
    pub reads_body: bool,
    /// An object on the way of a `body:` pointer has a member named like the pointer's token
    /// in another case (see [`JsonPointer::has_case_variant`]).
    pub body_case_variant: bool,
}

/// Why a request was not classified (only when routes are strict).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unmatched {
    /// No rule's path template matches the path. (The path is not included: it may hold ids.)
    #[error("no route rule matches this path (routes are strict)")]
    Path {
        /// The request method.
        method: Method,
    },
    /// A rule matches, but a parameter's value has characters its `param_pattern` does not
    /// allow (a `.json` suffix, a space, ...). Refused rather than logged with a disguised id.
    #[error(
        "parameter {{{param}}} of route rule {route:?} holds characters its pattern does not allow"
    )]
    ParamValue {
        /// The rule whose template matched.
        route: String,
        /// The parameter's name (never its value).
        param: String,
    },
    /// Rules match the path but none covers the method.
    #[error("route rules {routes:?} match this path but not method {method} (routes are strict)")]
    Method {
        /// The request method.
        method: Method,
        /// Names of the rules whose template matched.
        routes: Vec<String>,
    },
}

impl Unmatched {
    /// The machine-readable denial reason for the log.
    pub fn reason(&self) -> &'static str {
        match self {
            Unmatched::ParamValue { .. } => "param_rejected",
            Unmatched::Path { .. } | Unmatched::Method { .. } => "unmatched_route",
        }
    }
}

/// Compiled response pointers; cloning is cheap (shared).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponseExtract(Option<Arc<ResponsePointers>>);

#[derive(Debug, PartialEq)]
struct ResponsePointers {
    subjects: Vec<JsonPointer>,
    records: Vec<JsonPointer>,
}

impl ResponseExtract {
    /// Pointers for returned subject ids and record ids.
    pub fn new(subjects: Vec<JsonPointer>, records: Vec<JsonPointer>) -> Self {
        if subjects.is_empty() && records.is_empty() {
            return ResponseExtract(None);
        }
        ResponseExtract(Some(Arc::new(ResponsePointers { subjects, records })))
    }

    /// Nothing to extract: the proxy need not parse the response.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The (subject ids, record ids) the response body carries, each deduplicated in order.
    pub fn extract(&self, body: &Value) -> (Vec<String>, Vec<String>) {
        let Some(p) = &self.0 else {
            return (Vec::new(), Vec::new());
        };
        let read = |pointers: &[JsonPointer]| {
            let mut out = Vec::new();
            for ptr in pointers {
                ptr.collect_ids(body, &mut out);
            }
            dedup(out)
        };
        (read(&p.subjects), read(&p.records))
    }

    /// [`ResponseExtract::extract`] straight from the response bytes: the same ids, and the
    /// same refusal of what is not JSON, but only the values the pointers can reach are built
    /// ([`reach`]).
    pub fn extract_from_slice(
        &self,
        body: &[u8],
    ) -> Result<(Vec<String>, Vec<String>), reach::NotJson> {
        let Some(p) = &self.0 else {
            return Ok((Vec::new(), Vec::new()));
        };
        let pointers: Vec<&JsonPointer> = p.subjects.iter().chain(&p.records).collect();
        let doc = reach::parse_reachable(body, &pointers)?;
        Ok(self.extract(&doc))
    }
}

impl Classifier {
    /// Compiles the rules.
    pub fn new(cfg: &RoutesConfig, justification: &JustificationConfig) -> Self {
        let rules = cfg
            .rules
            .iter()
            .map(|r| CompiledRule {
                name: r.name.clone(),
                methods: r.methods.clone(),
                template: r.path.clone(),
                param_chars: r.param_pattern.clone().unwrap_or_default(),
                operation: r.operation,
                subjects: r.subjects.clone(),
                records: r.records.clone(),
                recipients: r.recipients.clone(),
                justification_required: r
                    .justification_required
                    .unwrap_or_else(|| justification.is_required_for(r.operation)),
                stream_request: r.stream_request,
                stream_response: r.stream_response,
                response_extract: ResponseExtract::new(
                    r.returned_subjects.clone(),
                    r.returned_records.clone(),
                ),
            })
            .collect();
        Classifier {
            rules,
            strict: cfg.strict,
            required_for: justification.required_for.clone(),
        }
    }

    /// Classifies a request: the first rule (in file order) whose template and method match wins;
    /// otherwise the method default, or [`Unmatched`] when routes are strict.
    pub fn classify(&self, req: &RequestView<'_>) -> Result<Classified, Unmatched> {
        let segments = split_path(req.path);
        let mut path_matched = Vec::new();
        for rule in &self.rules {
            let Some(params) = rule.template.matches(&segments) else {
                continue;
            };
            if !rule.methods.allows(req.method) {
                path_matched.push(rule.name.clone());
                continue;
            }
            if let Some(param) = params.first_outside(&rule.param_chars) {
                return Err(Unmatched::ParamValue {
                    route: rule.name.clone(),
                    param: param.to_owned(),
                });
            }
            let mut case_variant = false;
            let mut read = |sources: &[IdSource]| {
                let mut out = Vec::new();
                for source in sources {
                    match source {
                        IdSource::Path(name) => out.extend(
                            params
                                .get(name)
                                .filter(|v| !v.is_empty())
                                .map(str::to_owned),
                        ),
                        IdSource::Query(name) => out.extend(query_values(req.query, name)),
                        IdSource::Header(name) => out.extend(header_values(req.headers, name)),
                        IdSource::Body(ptr) => {
                            if let Some(body) = req.json_body {
                                ptr.collect_ids(body, &mut out);
                                case_variant |= ptr.has_case_variant(body);
                            }
                        }
                    }
                }
                dedup(out)
            };
            let subject_ids = read(&rule.subjects);
            let record_ids = read(&rule.records);
            let recipients = read(&rule.recipients);
            let reads_body = [&rule.subjects, &rule.records, &rule.recipients]
                .into_iter()
                .flatten()
                .any(|s| matches!(s, IdSource::Body(_)));
            return Ok(Classified {
                route: rule.name.clone(),
                operation: rule.operation,
                subject_ids,
                record_ids,
                recipients,
                justification_required: rule.justification_required,
                stream_request: rule.stream_request,
                stream_response: rule.stream_response,
                response_extract: rule.response_extract.clone(),
                reads_body,
                body_case_variant: case_variant,
            });
        }
        if self.strict {
            let method = req.method.clone();
            return Err(if path_matched.is_empty() {
                Unmatched::Path { method }
            } else {
                Unmatched::Method {
                    method,
                    routes: path_matched,
                }
            });
        }
        let operation = default_operation(req.method);
        Ok(Classified {
            route: String::new(),
            operation,
            subject_ids: Vec::new(),
            record_ids: Vec::new(),
            recipients: Vec::new(),
            justification_required: self.required_for.contains(&operation),
            stream_request: false,
            stream_response: false,
            response_extract: ResponseExtract::default(),
            reads_body: false,
            body_case_variant: false,
        })
    }
}

/// The operation for a request no rule matches: GET/HEAD consultation, POST collection, PUT/PATCH
/// alteration, DELETE erasure, anything else consultation.
pub fn default_operation(method: &Method) -> Operation {
    match *method {
        Method::POST => Operation::Collection,
        Method::PUT | Method::PATCH => Operation::Alteration,
        Method::DELETE => Operation::Erasure,
        _ => Operation::Consultation,
    }
}

/// Reads the purpose code, free text and case reference from the configured headers (trimmed;
/// empty means absent). `None` when all three are absent. Whether that is enough is policy's call.
pub fn justification(headers: &HeaderMap, cfg: &JustificationConfig) -> Option<Justification> {
    let first = |name: &HeaderName| header_values(headers, name).into_iter().next();
    let purpose_code = first(&cfg.purpose_header);
    let text = first(&cfg.text_header);
    let case_reference = first(&cfg.case_header);
    if purpose_code.is_none() && text.is_none() && case_reference.is_none() {
        return None;
    }
    Some(Justification {
        purpose_code: purpose_code.unwrap_or_default(),
        text: text.unwrap_or_default(),
        case_reference: case_reference.unwrap_or_default(),
    })
}

/// Every value of a header, as UTF-8 (invalid bytes replaced), trimmed, empty ones skipped.
fn header_values(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Every non-empty value of query parameter `name`, matched and taken exactly as sent: no
/// decoding, because upstreams disagree on whether `%73urname` is `surname` and on what
/// `a+b` means. The request target is logged as sent beside them.
fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| v.to_owned())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Drops repeats, keeping the first occurrence of each id.
fn dedup(ids: Vec<String>) -> Vec<String> {
    // A handful of ids (the usual case) is cheaper to compare than to hash and copy.
    if ids.len() <= 16 {
        let mut out: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        return out;
    }
    let mut seen = HashSet::with_capacity(ids.len());
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use http::HeaderValue;
    use serde_json::json;

    const EXAMPLE: &str = include_str!("../../config/sidecar.example.toml");

    fn example() -> (Classifier, JustificationConfig) {
        let cfg = Config::from_toml_str(EXAMPLE).expect("example parses");
        (
            Classifier::new(&cfg.routes, &cfg.justification),
            cfg.justification,
        )
    }

    fn lenient() -> Classifier {
        let cfg = Config::from_toml_str(EXAMPLE).expect("example parses");
        let routes = RoutesConfig {
            strict: false,
            ..cfg.routes
        };
        Classifier::new(&routes, &cfg.justification)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    fn classify(
        c: &Classifier,
        method: Method,
        target: &str,
        h: &HeaderMap,
        body: Option<&Value>,
    ) -> Result<Classified, Unmatched> {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        c.classify(&RequestView {
            method: &method,
            path,
            query,
            headers: h,
            json_body: body,
        })
    }

    #[test]
    fn reading_a_person_is_a_consultation_of_that_subject() {
        let (c, _) = example();
        let r = classify(&c, Method::GET, "/people/P-17", &HeaderMap::new(), None).expect("ok");
        assert_eq!(r.route, "person-read");
        assert_eq!(r.operation, Operation::Consultation);
        assert_eq!(r.subject_ids, ["P-17"]);
        assert!(r.justification_required);
        let (seen, _) = r
            .response_extract
            .extract(&serde_json::json!({"id": "P-17", "surname": "X"}));
        assert_eq!(
            seen,
            ["P-17"],
            "what the officer saw is read from the response"
        );
    }

    #[test]
    fn a_search_records_the_query_and_reads_every_returned_person() {
        let (c, _) = example();
        let r = classify(
            &c,
            Method::GET,
            "/people?surname=O%27Brien&surname=Smith+Jones",
            &HeaderMap::new(),
            None,
        )
        .expect("ok");
        assert_eq!(r.route, "person-search");
        assert_eq!(
            r.record_ids,
            ["O%27Brien", "Smith+Jones"],
            "values exactly as sent"
        );
        let encoded_key = classify(
            &c,
            Method::GET,
            "/people?%73urname=Smith",
            &HeaderMap::new(),
            None,
        )
        .expect("ok");
        assert!(
            encoded_key.record_ids.is_empty(),
            "an encoded key is not the configured key"
        );
        let response = json!({"results": [{"id": "P-1"}, {"id": 2}, {"id": "P-1"}, {"name": "x"}]});
        let (subjects, records) = r.response_extract.extract(&response);
        assert_eq!(subjects, ["P-1", "2"]);
        assert!(records.is_empty());
    }

    #[test]
    fn linking_two_people_is_a_combination_of_both() {
        let (c, _) = example();
        let body = json!({"event_id": 991});
        let r = classify(
            &c,
            Method::PUT,
            "/people/P-1/links/P-2",
            &HeaderMap::new(),
            Some(&body),
        )
        .expect("ok");
        assert_eq!(r.operation, Operation::Combination);
        assert_eq!(r.subject_ids, ["P-1", "P-2"]);
        assert_eq!(r.record_ids, ["991"]);
        assert!(r.justification_required, "required_for lists combination");
    }

    #[test]
    fn an_export_is_a_disclosure_to_the_named_recipients() {
        let (c, _) = example();
        let h = headers(&[
            ("x-recipient", "  Crown Prosecution Service "),
            ("x-recipient", ""),
        ]);
        let body = json!({"people": [{"id": "P-1"}, {"id": "P-2"}], "recipient": "Crown Prosecution Service"});
        let r = classify(&c, Method::POST, "/exports", &h, Some(&body)).expect("ok");
        assert_eq!(r.operation, Operation::Disclosure);
        assert_eq!(r.subject_ids, ["P-1", "P-2"]);
        assert_eq!(
            r.recipients,
            ["Crown Prosecution Service"],
            "deduplicated, trimmed, empties skipped"
        );
        assert!(r.justification_required);
        let (_, records) = r.response_extract.extract(&json!({"export_id": "X-5"}));
        assert_eq!(records, ["X-5"]);
    }

    #[test]
    fn deleting_a_person_is_an_erasure_with_a_rule_override() {
        let (c, _) = example();
        let r = classify(&c, Method::DELETE, "/people/P-3/", &HeaderMap::new(), None).expect("ok");
        assert_eq!(r.route, "person-erase");
        assert_eq!(r.operation, Operation::Erasure);
        assert_eq!(r.subject_ids, ["P-3"]);
        assert!(r.justification_required, "the rule overrides required_for");
        let health = classify(&c, Method::GET, "/health", &HeaderMap::new(), None).expect("ok");
        assert!(!health.justification_required, "the rule turns it off");
    }

    #[test]
    fn path_parameters_are_percent_decoded_and_held_to_their_pattern() {
        let (c, _) = example();
        let r = classify(&c, Method::GET, "/people/P%2D1", &HeaderMap::new(), None).expect("ok");
        assert_eq!(r.subject_ids, ["P-1"]);
        for disguised in ["/people/P-1.json", "/people/P%2F1%20a"] {
            let e =
                classify(&c, Method::GET, disguised, &HeaderMap::new(), None).expect_err(disguised);
            assert_eq!(
                e,
                Unmatched::ParamValue {
                    route: "person-read".into(),
                    param: "id".into()
                }
            );
            assert_eq!(e.reason(), "param_rejected");
        }
        let rest = classify(
            &c,
            Method::GET,
            "/events/bulk/2024/01",
            &HeaderMap::new(),
            None,
        )
        .expect("ok");
        assert_eq!(rest.record_ids, ["2024/01"]);
        assert!(rest.stream_response);
    }

    #[test]
    fn head_is_covered_by_a_get_rule() {
        let (c, _) = example();
        let r = classify(&c, Method::HEAD, "/people/P-9", &HeaderMap::new(), None).expect("ok");
        assert_eq!(r.route, "person-read");
    }

    #[test]
    fn strict_mode_rejects_unmatched_paths_and_methods() {
        let (c, _) = example();
        let e = classify(&c, Method::GET, "/secret", &HeaderMap::new(), None).expect_err("strict");
        assert_eq!(
            e,
            Unmatched::Path {
                method: Method::GET
            }
        );
        assert_eq!(e.reason(), "unmatched_route");
        let e = classify(&c, Method::OPTIONS, "/people/P-1", &HeaderMap::new(), None)
            .expect_err("strict");
        assert_eq!(
            e,
            Unmatched::Method {
                method: Method::OPTIONS,
                routes: vec![
                    "person-read".into(),
                    "person-update".into(),
                    "person-erase".into()
                ],
            }
        );
        assert!(!e.to_string().contains("P-1"), "no ids in error text");
    }

    #[test]
    fn unmatched_requests_fall_back_to_method_defaults_when_not_strict() {
        let c = lenient();
        let h = HeaderMap::new();
        for (method, op, required) in [
            (Method::GET, Operation::Consultation, true),
            (Method::HEAD, Operation::Consultation, true),
            (Method::POST, Operation::Collection, false),
            (Method::PUT, Operation::Alteration, false),
            (Method::PATCH, Operation::Alteration, false),
            (Method::DELETE, Operation::Erasure, false),
            (Method::OPTIONS, Operation::Consultation, true),
        ] {
            let r = classify(&c, method.clone(), "/unknown/thing", &h, None).expect("lenient");
            assert_eq!((r.route.as_str(), r.operation), ("", op), "{method}");
            assert_eq!(r.justification_required, required, "{method}");
            assert!(r.subject_ids.is_empty() && r.response_extract.is_empty());
        }
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let text = format!(
            "{}\n[[routes.rule]]\nname = \"first\"\nmethod = \"*\"\npath = \"/a/{{*rest}}\"\n\
             operation = \"erasure\"\n[[routes.rule]]\nname = \"second\"\nmethod = \"GET\"\n\
             path = \"/a/{{x}}\"\noperation = \"consultation\"\n",
            EXAMPLE.split("[[routes.rule]]").next().unwrap_or_default()
        );
        let cfg = Config::from_toml_str(&text).expect("valid");
        let c = Classifier::new(&cfg.routes, &cfg.justification);
        let r = classify(&c, Method::GET, "/a/1", &HeaderMap::new(), None).expect("ok");
        assert_eq!(r.route, "first");
    }

    #[test]
    fn header_and_body_sources_read_every_value() {
        let text = format!(
            "{}\n[[routes.rule]]\nname = \"r\"\nmethod = \"POST\"\npath = \"/r\"\n\
             operation = \"collection\"\nsubjects = [\"header:x-subject\", \"body:/ids/*\", \"body:/flag\"]\n\
             records = [\"query:ref\"]\n",
            EXAMPLE.split("[[routes.rule]]").next().unwrap_or_default()
        );
        let cfg = Config::from_toml_str(&text).expect("valid");
        let c = Classifier::new(&cfg.routes, &cfg.justification);
        let h = headers(&[("x-subject", "S-1"), ("x-subject", "S-2")]);
        let body = json!({"ids": ["S-2", 3, null, {"x": 1}], "flag": true});
        let r = classify(&c, Method::POST, "/r?ref=&ref=R%201", &h, Some(&body)).expect("ok");
        assert_eq!(r.subject_ids, ["S-1", "S-2", "3"]);
        assert_eq!(r.record_ids, ["R%201"]);
        assert!(r.reads_body && !r.body_case_variant);
        let variant = json!({"IDS": ["S-9"], "ids": ["S-2"]});
        let v = classify(&c, Method::POST, "/r", &HeaderMap::new(), Some(&variant)).expect("ok");
        assert!(v.body_case_variant);
        let no_body = classify(&c, Method::POST, "/r", &HeaderMap::new(), None).expect("ok");
        assert!(no_body.subject_ids.is_empty());
    }

    #[test]
    fn justification_is_read_trimmed_from_the_configured_headers() {
        let (_, cfg) = example();
        let h = headers(&[
            ("x-s62-purpose", " INVESTIGATION "),
            ("x-s62-justification", "Checking alibi"),
            ("x-s62-case-ref", "   "),
        ]);
        let j = justification(&h, &cfg).expect("present");
        assert_eq!(j.purpose_code, "INVESTIGATION");
        assert_eq!(j.text, "Checking alibi");
        assert_eq!(j.case_reference, "", "blank is absent");
        assert_eq!(
            justification(&headers(&[("x-s62-case-ref", " ")]), &cfg),
            None
        );
        assert_eq!(justification(&HeaderMap::new(), &cfg), None);
    }
}

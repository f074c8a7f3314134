//! Why the proxy answered a request itself, and the one function that turns that into an HTTP
//! response: RFC 9457 `application/problem+json`.
//!
//! Invariant: a problem body names headers, limits and the request id, never a value the client
//! sent (no identity, justification text, subject or record id), so it is safe to log and to show.
//! Must not import the log writer or the upstream client.

use super::body::ProxyBody;
use crate::ingest::AppendError;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};

/// A request the proxy refused or could not complete, answered by the proxy itself.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// No identity was established and one is required.
    #[error("no identity was established for the request")]
    NoIdentity {
        /// What was tried, for the client and the denial entry (header names, never values).
        detail: String,
    },
    /// Strict routing is on and no route rule matches the method and path.
    #[error("no route rule matches the request")]
    UnmatchedRoute,
    /// The operation needs a justification and the header carrying it is missing or empty.
    #[error("a justification is required (header {header})")]
    NoJustification {
        /// The header the client must set.
        header: String,
        /// The s62 operation that needs it.
        operation: &'static str,
    },
    /// The request body is larger than the configured limit and the route does not stream.
    #[error("the request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The request headers are larger than the configured limit.
    #[error("the request headers exceed {limit} bytes")]
    HeadersTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body says it is JSON but does not parse, so the ids it names cannot be logged.
    #[error("the request body is not valid JSON")]
    InvalidJsonBody,
    /// The path has dot segments or encoded slashes that the upstream could read differently
    /// from the route rules.
    #[error("the request path is ambiguous")]
    AmbiguousPath,
    /// The request target or method is not something a reverse proxy forwards (CONNECT,
    /// absolute-form targets for another host, `*`).
    #[error("the request target is not supported")]
    UnsupportedTarget,
    /// The client stopped sending the body, or took longer than the request timeout.
    #[error("the request body could not be read")]
    BodyUnreadable {
        /// True when the request timeout elapsed.
        timed_out: bool,
    },
    /// The audit log did not accept the entry: nothing was forwarded or released.
    #[error("the audit log is unavailable: {0}")]
    LogUnavailable(#[source] AppendError),
    /// The upstream could not be reached.
    #[error("the records system could not be reached")]
    UpstreamUnreachable,
    /// The upstream did not answer within the response timeout.
    #[error("the records system did not answer in time")]
    UpstreamTimeout,
    /// The upstream broke the exchange (reset, malformed response, body error).
    #[error("the records system failed the request")]
    UpstreamFailed,
    /// The upstream's response was too large to log and the proxy could not stream it.
    #[error("the response could not be relayed")]
    ResponseUnrelayable,
    /// An identity header came more than once (in any spelling).
    #[error("identity header {header} was sent more than once")]
    AmbiguousIdentity {
        /// The configured header name.
        header: String,
    },
    /// The route reads ids from the body, and the body is not JSON.
    #[error("the request body is not JSON")]
    UnsupportedBody,
    /// The JSON body has a duplicate member name, or a member named like a configured
    /// pointer's token in another case.
    #[error("the JSON body has ambiguous member names")]
    AmbiguousJson,
    /// A method-override or URL-rewrite header, or a refused query key / form field.
    #[error("{name} would let the records system serve another request than the one logged")]
    RewriteRefused {
        /// The header or key name as configured (never its value).
        name: String,
    },
    /// `;` (or `%3B`) in the path: path parameters that frameworks strip before routing.
    #[error("the path has ';' parameters")]
    PathParameters,
    /// A route parameter's value has characters its `param_pattern` does not allow.
    #[error("parameter {{{param}}} of route {route} has characters the route does not allow")]
    ParamRejected {
        /// The route rule.
        route: String,
        /// The parameter's name (never its value).
        param: String,
    },
    /// A disclosure request in which no recipient was found (s62(3)).
    #[error("a disclosure must name its recipient")]
    NoRecipient,
    /// The route reads returned ids from the response, and this response cannot be read:
    /// too large, compressed, ranged or not JSON. Nothing of it is released.
    #[error("the response could not be read for the ids it returns")]
    ResponseUnextractable,
    /// The whole exchange took longer than `limits.exchange_timeout_ms`.
    #[error("the exchange took longer than allowed")]
    ExchangeTimeout,
    /// A value the request names is longer, or a list has more values, than `[limits]` allows.
    #[error("a value in the request is over its limit")]
    ValueOverLimit {
        /// Field names with lengths or counts (never the values), from [`super::bounds`].
        overruns: String,
    },
    /// The response returned an id longer, or more ids, than `[limits]` allows; it is withheld.
    #[error("the response returned values over their limits")]
    ReturnedOverLimit {
        /// Field names with lengths or counts (never the values).
        overruns: String,
    },
}

impl Problem {
    /// Machine-readable reason, used in the problem `type`, in denial entries and in outcome
    /// `error` fields.
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::NoIdentity { .. } => "no_identity",
            Problem::UnmatchedRoute => "unmatched_route",
            Problem::NoJustification { .. } => "no_justification",
            Problem::BodyTooLarge { .. } => "body_too_large",
            Problem::HeadersTooLarge { .. } => "headers_too_large",
            Problem::InvalidJsonBody => "invalid_json_body",
            Problem::AmbiguousPath => "ambiguous_path",
            Problem::UnsupportedTarget => "unsupported_target",
            Problem::BodyUnreadable { timed_out: true } => "request_timeout",
            Problem::BodyUnreadable { timed_out: false } => "body_unreadable",
            Problem::LogUnavailable(_) => "log_unavailable",
            Problem::UpstreamUnreachable => "upstream_unreachable",
            Problem::UpstreamTimeout => "upstream_timeout",
            Problem::UpstreamFailed => "upstream_error",
            Problem::ResponseUnrelayable => "response_unrelayable",
            Problem::AmbiguousIdentity { .. } => "ambiguous_identity",
            Problem::UnsupportedBody => "unsupported_body",
            Problem::AmbiguousJson => "ambiguous_json",
            Problem::RewriteRefused { .. } => "rewrite_refused",
            Problem::PathParameters => "path_parameters",
            Problem::ParamRejected { .. } => "param_rejected",
            Problem::NoRecipient => "no_recipient",
            Problem::ResponseUnextractable => "response_unextractable",
            Problem::ExchangeTimeout => "exchange_timeout",
            Problem::ValueOverLimit { .. } => "value_over_limit",
            Problem::ReturnedOverLimit { .. } => "returned_value_over_limit",
        }
    }

    /// What an outcome entry's `error` records: the reason, and for returned values over their
    /// limits which fields and how long or how many (never the values).
    pub fn outcome_error(&self) -> String {
        match self {
            Problem::ReturnedOverLimit { overruns } => format!("{}: {overruns}", self.reason()),
            _ => self.reason().to_owned(),
        }
    }

    /// The HTTP status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            Problem::NoIdentity { .. } => StatusCode::UNAUTHORIZED,
            Problem::UnmatchedRoute | Problem::NoJustification { .. } => StatusCode::FORBIDDEN,
            Problem::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Problem::InvalidJsonBody | Problem::AmbiguousPath => StatusCode::BAD_REQUEST,
            Problem::UnsupportedTarget => StatusCode::METHOD_NOT_ALLOWED,
            Problem::BodyUnreadable { timed_out: true } => StatusCode::REQUEST_TIMEOUT,
            Problem::BodyUnreadable { timed_out: false } => StatusCode::BAD_REQUEST,
            Problem::LogUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Problem::UpstreamUnreachable
            | Problem::UpstreamFailed
            | Problem::ResponseUnrelayable => StatusCode::BAD_GATEWAY,
            Problem::UpstreamTimeout | Problem::ExchangeTimeout => StatusCode::GATEWAY_TIMEOUT,
            Problem::AmbiguousIdentity { .. }
            | Problem::AmbiguousJson
            | Problem::RewriteRefused { .. }
            | Problem::PathParameters
            | Problem::ParamRejected { .. } => StatusCode::BAD_REQUEST,
            Problem::UnsupportedBody => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Problem::NoRecipient => StatusCode::FORBIDDEN,
            Problem::ResponseUnextractable | Problem::ReturnedOverLimit { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Problem::ValueOverLimit { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// True when the request was refused before being forwarded and must be logged as `denied`.
    pub fn is_denial(&self) -> bool {
        matches!(
            self,
            Problem::NoIdentity { .. }
                | Problem::UnmatchedRoute
                | Problem::NoJustification { .. }
                | Problem::BodyTooLarge { .. }
                | Problem::HeadersTooLarge { .. }
                | Problem::InvalidJsonBody
                | Problem::AmbiguousPath
                | Problem::UnsupportedTarget
                | Problem::AmbiguousIdentity { .. }
                | Problem::UnsupportedBody
                | Problem::AmbiguousJson
                | Problem::RewriteRefused { .. }
                | Problem::PathParameters
                | Problem::ParamRejected { .. }
                | Problem::NoRecipient
                | Problem::ValueOverLimit { .. }
        )
    }

    fn title(&self) -> &'static str {
        match self {
            Problem::NoIdentity { .. } => "Identity required",
            Problem::UnmatchedRoute => "Route not permitted",
            Problem::NoJustification { .. } => "Justification required",
            Problem::BodyTooLarge { .. } => "Request body too large",
            Problem::HeadersTooLarge { .. } => "Request headers too large",
            Problem::InvalidJsonBody => "Invalid JSON body",
            Problem::AmbiguousPath => "Ambiguous request path",
            Problem::UnsupportedTarget => "Request target not supported",
            Problem::BodyUnreadable { timed_out: true } => "Request timed out",
            Problem::BodyUnreadable { timed_out: false } => "Request body unreadable",
            Problem::LogUnavailable(_) => "Audit log unavailable",
            Problem::UpstreamUnreachable => "Records system unreachable",
            Problem::UpstreamTimeout => "Records system timed out",
            Problem::UpstreamFailed => "Records system error",
            Problem::ResponseUnrelayable => "Response could not be relayed",
            Problem::AmbiguousIdentity { .. } => "Ambiguous identity",
            Problem::UnsupportedBody => "Request body is not JSON",
            Problem::AmbiguousJson => "Ambiguous JSON body",
            Problem::RewriteRefused { .. } => "Method or URL override refused",
            Problem::PathParameters => "Path parameters refused",
            Problem::ParamRejected { .. } => "Path parameter not allowed",
            Problem::NoRecipient => "Recipient required",
            Problem::ResponseUnextractable => "Response could not be checked",
            Problem::ExchangeTimeout => "Exchange timed out",
            Problem::ValueOverLimit { .. } => "Value over its limit",
            Problem::ReturnedOverLimit { .. } => "Response over the logging limits",
        }
    }

    /// Human-readable explanation for the client; also the `detail` of a denial entry.
    pub fn detail(&self) -> String {
        match self {
            Problem::NoIdentity { detail } => detail.clone(),
            Problem::UnmatchedRoute => {
                "No route rule matches this method and path, and the audit policy is strict. \
                 The refusal has been logged."
                    .into()
            }
            Problem::NoJustification { header, operation } => format!(
                "This request ({operation} of personal data) must state why: set the {header} \
                 header (and, where your force requires it, the free-text and case reference \
                 headers). The refusal has been logged."
            ),
            Problem::BodyTooLarge { limit } => format!(
                "The request body is larger than {limit} bytes, the most this route accepts. \
                 Nothing was forwarded."
            ),
            Problem::HeadersTooLarge { limit } => {
                format!("The request headers are larger than {limit} bytes. Nothing was forwarded.")
            }
            Problem::InvalidJsonBody => "The request declares a JSON body that does not parse, \
                 so the records it concerns cannot be logged. Nothing was forwarded."
                .into(),
            Problem::AmbiguousPath => "The path contains dot segments or encoded slashes. \
                 Send the normalised path. Nothing was forwarded."
                .into(),
            Problem::UnsupportedTarget => {
                "Only origin-form requests for this records system are forwarded.".into()
            }
            Problem::BodyUnreadable { timed_out: true } => {
                "The request was not received within the time allowed. Nothing was forwarded."
                    .into()
            }
            Problem::BodyUnreadable { timed_out: false } => {
                "The request body could not be read. Nothing was forwarded.".into()
            }
            Problem::LogUnavailable(_) => {
                "The audit log cannot record this request, so it was not performed: nothing was \
                 sent to the records system or returned. Try again shortly; if this persists, \
                 tell the system administrator."
                    .into()
            }
            Problem::UpstreamUnreachable => {
                "The records system could not be reached. The attempt has been logged.".into()
            }
            Problem::UpstreamTimeout => {
                "The records system did not answer in time. The attempt has been logged.".into()
            }
            Problem::UpstreamFailed => {
                "The records system failed the request. The attempt has been logged.".into()
            }
            Problem::ResponseUnrelayable => {
                "The response from the records system could not be relayed.".into()
            }
            Problem::AmbiguousIdentity { header } => format!(
                "The {header} header was sent more than once (in some spelling); the acting \
                 person must be unambiguous. Nothing was forwarded. The refusal has been logged."
            ),
            Problem::UnsupportedBody => "This route reads the records it concerns from a JSON \
                 body, and this body is not JSON. Send JSON. Nothing was forwarded. The refusal \
                 has been logged."
                .into(),
            Problem::AmbiguousJson => "The JSON body names a member twice, or in two spellings \
                 that differ only in case, so what it concerns cannot be logged unambiguously. \
                 Nothing was forwarded. The refusal has been logged."
                .into(),
            Problem::RewriteRefused { name } => format!(
                "{name} asks the records system to serve a different method or path than the \
                 one requested. Send the request you mean. Nothing was forwarded. The refusal \
                 has been logged."
            ),
            Problem::PathParameters => "The path contains ';' parameters, which records \
                 systems may strip before routing. Nothing was forwarded. The refusal has been \
                 logged."
                .into(),
            Problem::ParamRejected { route, param } => format!(
                "The {{{param}}} part of the path holds characters route {route} does not \
                 allow (a suffix such as .json, a space, ...). Nothing was forwarded. The \
                 refusal has been logged."
            ),
            Problem::NoRecipient => "A disclosure must name its recipient (DPA 2018 s62(3)); \
                 none was found in this request. Nothing was forwarded. The refusal has been \
                 logged."
                .into(),
            Problem::ResponseUnextractable => "The records system's response could not be read \
                 for the records it returns (too large, compressed or not JSON), so it was not \
                 released. The attempt has been logged."
                .into(),
            Problem::ExchangeTimeout => "The exchange took longer than allowed. The attempt \
                 has been logged."
                .into(),
            Problem::ValueOverLimit { overruns } => format!(
                "The request holds more, or longer, values than this sidecar logs ({overruns}). \
                 Nothing was forwarded. The refusal has been logged."
            ),
            Problem::ReturnedOverLimit { overruns } => format!(
                "The records system returned more, or longer, ids than this sidecar logs \
                 ({overruns}), so the response was not released. The attempt has been logged."
            ),
        }
    }
}

/// The one place a [`Problem`] becomes an HTTP response (RFC 9457 problem details).
pub fn problem_response(
    problem: &Problem,
    request_id: &str,
    head_only: bool,
) -> Response<ProxyBody> {
    let mut body = Map::new();
    body.insert(
        "type".into(),
        json!(format!("urn:s62:problem:{}", problem.reason())),
    );
    body.insert("title".into(), json!(problem.title()));
    body.insert("status".into(), json!(problem.status().as_u16()));
    body.insert("detail".into(), json!(problem.detail()));
    body.insert("request_id".into(), json!(request_id));
    if let Problem::NoJustification { header, .. } = problem {
        body.insert("header".into(), json!(header));
    }
    let bytes = Value::Object(body).to_string().into_bytes();
    let len = bytes.len();
    let mut resp = Response::new(if head_only {
        ProxyBody::empty()
    } else {
        ProxyBody::full(bytes.into())
    });
    *resp.status_mut() = problem.status();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(super::headers::X_REQUEST_ID, v);
    }
    if matches!(problem, Problem::NoIdentity { .. }) {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Mutual-TLS, Trusted-Gateway"),
        );
    }
    if matches!(problem, Problem::LogUnavailable(_)) {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_missing_justification_is_an_rfc9457_problem_naming_the_header() {
        let p = Problem::NoJustification {
            header: "X-Justification".into(),
            operation: "consultation",
        };
        let resp = problem_response(&p, "req-1", false);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["type"], "urn:s62:problem:no_justification");
        assert_eq!(v["status"], 403);
        assert_eq!(v["header"], "X-Justification");
        assert!(
            v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("X-Justification"))
        );
        assert_eq!(v["request_id"], "req-1");
    }

    #[test]
    fn statuses_follow_the_fail_closed_rules() {
        assert_eq!(Problem::LogUnavailable(AppendError::Closed).status(), 503);
        assert_eq!(Problem::UpstreamUnreachable.status(), 502);
        assert_eq!(Problem::UpstreamTimeout.status(), 504);
        assert_eq!(Problem::BodyTooLarge { limit: 1 }.status(), 413);
        assert!(!Problem::LogUnavailable(AppendError::Closed).is_denial());
        assert!(Problem::UnmatchedRoute.is_denial());
    }
}

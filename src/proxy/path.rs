//! The request path — the product's invariant, in order:
//!
//! 1. identify the actor (certificate, or a header from a trusted gateway);
//! 2. check the request head (size, target, unambiguous path);
//! 3. classify the route and check the justification;
//! 4. buffer the body (up to the limit), digest it, read ids from JSON;
//! 5. append the INTENT entry and wait until it is durable — only then forward;
//! 6. buffer the response (up to the limit), extract returned ids, append the OUTCOME entry and
//!    wait until it is durable — only then release a byte; larger responses stream after the
//!    intent and log their outcome when they end ([`super::body::LoggedStream`]).
//!
//! Every refusal before step 5 is appended as a `denied` entry before it is answered; if that
//! entry (or the intent, or the outcome) cannot be written the answer is 503 and nothing moves.
//! Tracing carries only seq numbers, request ids, routes and statuses — never ids, names, bodies or
//! justification text.

use super::Shared;
use super::body::{BoxError, LoggedStream, ProxyBody, UpstreamBody};
use super::headers::{self, X_REQUEST_ID};
use super::identity::{self, CertIdentity, Identify};
use super::problem::{Problem, problem_response};
use super::upstream::ForwardError;
use crate::classify::{self, Classified, RequestView};
use crate::log::entry::{
    Actor, Denial, Entry, EntryKind, Justification, Operation, Outcome, Request as LoggedRequest,
};
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Incoming;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio_stream::StreamExt;

/// What the proxy knows about the connection a request came on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The verified client certificate's identity, if one was presented.
    pub cert: Option<Arc<CertIdentity>>,
    pub tls: bool,
}

/// What has been established about a request so far; denial and outcome entries are built from it.
struct Exchange {
    request_id: String,
    method: Method,
    /// Path and query as received.
    target: String,
    actor: Actor,
    justification: Option<Justification>,
    classified: Option<Classified>,
    body_sha256: Vec<u8>,
    body_bytes: u64,
}

impl Exchange {
    fn logged_request(&self, with_body: bool) -> LoggedRequest {
        LoggedRequest {
            method: self.method.as_str().to_owned(),
            path: self.target.clone(),
            route: self
                .classified
                .as_ref()
                .map(|c| c.route.clone())
                .unwrap_or_default(),
            request_id: self.request_id.clone(),
            body_sha256: if with_body {
                self.body_sha256.clone()
            } else {
                Vec::new()
            },
            body_bytes: if with_body { self.body_bytes } else { 0 },
        }
    }

    fn operation(&self) -> Operation {
        self.classified
            .as_ref()
            .map_or(Operation::Unspecified, |c| c.operation)
    }

    fn route(&self) -> &str {
        self.classified.as_ref().map_or("", |c| c.route.as_str())
    }

    fn intent(&self) -> Entry {
        let c = self.classified.as_ref();
        Entry {
            kind: EntryKind::Intent as i32,
            operation: self.operation() as i32,
            actor: Some(self.actor.clone()),
            justification: self.justification.clone(),
            recipients: c.map(|c| c.recipients.clone()).unwrap_or_default(),
            subject_ids: c.map(|c| c.subject_ids.clone()).unwrap_or_default(),
            record_ids: c.map(|c| c.record_ids.clone()).unwrap_or_default(),
            request: Some(self.logged_request(true)),
            ..Default::default()
        }
    }

    fn denied(&self, problem: &Problem) -> Entry {
        Entry {
            kind: EntryKind::Denied as i32,
            denial: Some(Denial {
                reason: problem.reason().to_owned(),
                detail: problem.detail(),
            }),
            ..self.intent()
        }
    }

    /// The outcome entry for `intent_seq`, before its body digest is known.
    fn outcome(&self, intent_seq: u64, status: StatusCode, error: &str) -> Entry {
        Entry {
            kind: EntryKind::Outcome as i32,
            operation: self.operation() as i32,
            actor: Some(self.actor.clone()),
            request: Some(self.logged_request(false)),
            answers_seq: Some(intent_seq),
            outcome: Some(Outcome {
                status: u32::from(status.as_u16()),
                error: error.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Answers one request. Never panics on client input; every error becomes a problem response.
pub(super) async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let head_only = req.method() == Method::HEAD;
    let mut ex = Exchange {
        request_id: headers::request_id(req.headers()),
        method: req.method().clone(),
        target: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned()),
        actor: Actor::default(),
        justification: None,
        classified: None,
        body_sha256: Vec::new(),
        body_bytes: 0,
    };
    let result = run(&shared, &conn, req, &mut ex).await;
    let mut resp = match result {
        Ok(resp) => resp,
        Err(problem) => {
            let problem = if problem.is_denial() {
                match shared.writer.append(ex.denied(&problem)).await {
                    Ok(r) => {
                        tracing::info!(
                            seq = r.seq,
                            request_id = %ex.request_id,
                            route = ex.route(),
                            reason = problem.reason(),
                            "request denied"
                        );
                        problem
                    }
                    Err(e) => Problem::LogUnavailable(e),
                }
            } else {
                problem
            };
            if problem.is_denial() || matches!(problem, Problem::LogUnavailable(_)) {
                shared.metrics.rejected(problem.reason());
            }
            if let Problem::LogUnavailable(e) = &problem {
                tracing::warn!(request_id = %ex.request_id, error = %e, "audit log unavailable; request failed closed");
            }
            problem_response(&problem, &ex.request_id, head_only)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&ex.request_id) {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
    tracing::debug!(
        request_id = %ex.request_id,
        status = resp.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "answered"
    );
    resp
}

/// The request body, as the path holds it.
enum RequestBody {
    /// Read in full (and digested).
    Buffered(Bytes),
    /// Larger than the limit on a route that streams requests: what was read, then the rest.
    Streaming(Vec<Bytes>, Incoming),
}

async fn run(
    shared: &Shared,
    conn: &ConnInfo,
    req: Request<Incoming>,
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, Problem> {
    let (parts, body) = req.into_parts();

    // 1. Who is asking.
    ex.actor = match shared
        .identity
        .identify(conn.peer, conn.cert.as_deref(), &parts.headers)
    {
        Ok(actor) => actor,
        Err(refused) => {
            ex.actor = refused.actor;
            return Err(refused.problem);
        }
    };

    // 2. The request head.
    if headers::header_bytes(&parts.headers) > shared.limits.max_header_bytes {
        return Err(Problem::HeadersTooLarge {
            limit: shared.limits.max_header_bytes,
        });
    }
    if parts.method == Method::CONNECT || !parts.uri.path().starts_with('/') {
        return Err(Problem::UnsupportedTarget);
    }
    if is_ambiguous(parts.uri.path()) {
        return Err(Problem::AmbiguousPath);
    }

    // 3. Route and justification (from the head; ids in the body are read after buffering).
    ex.classified = Some(
        shared
            .classifier
            .classify(&view(&parts, None))
            .map_err(|_| Problem::UnmatchedRoute)?,
    );
    let (operation, justification_required, stream_request) = match &ex.classified {
        Some(c) => (c.operation, c.justification_required, c.stream_request),
        None => (Operation::Unspecified, false, false),
    };
    ex.justification = classify::justification(&parts.headers, &shared.justification);
    let justified = ex
        .justification
        .as_ref()
        .is_some_and(|j| !j.purpose_code.is_empty() || !j.text.is_empty());
    if justification_required && !justified {
        return Err(Problem::NoJustification {
            header: shared.justification.purpose_header.to_string(),
            operation: operation.label(),
        });
    }

    // 4. The body.
    let limit = shared.limits.max_request_body_bytes;
    let declared = content_length(&parts.headers);
    if declared.is_some_and(|n| n > limit as u64) && !stream_request {
        return Err(Problem::BodyTooLarge {
            limit: limit as u64,
        });
    }
    let body = match tokio::time::timeout(shared.limits.request_timeout, read_request(body, limit))
        .await
    {
        Err(_) => return Err(Problem::BodyUnreadable { timed_out: true }),
        Ok(Err(_)) => return Err(Problem::BodyUnreadable { timed_out: false }),
        Ok(Ok(Read::Complete(bytes))) => RequestBody::Buffered(bytes),
        Ok(Ok(Read::Over(prefix, rest))) if stream_request => RequestBody::Streaming(prefix, rest),
        Ok(Ok(Read::Over(..))) => {
            return Err(Problem::BodyTooLarge {
                limit: limit as u64,
            });
        }
    };
    if let RequestBody::Buffered(bytes) = &body
        && !bytes.is_empty()
    {
        ex.body_sha256 = Sha256::digest(bytes).to_vec();
        ex.body_bytes = bytes.len() as u64;
        if headers::is_json(&parts.headers) {
            let json: Value =
                serde_json::from_slice(bytes).map_err(|_| Problem::InvalidJsonBody)?;
            ex.classified = Some(
                shared
                    .classifier
                    .classify(&view(&parts, Some(&json)))
                    .map_err(|_| Problem::UnmatchedRoute)?,
            );
        }
    }

    // 5. The intent, durable before anything is forwarded.
    let receipt = shared
        .writer
        .append(ex.intent())
        .await
        .map_err(Problem::LogUnavailable)?;
    let intent_seq = receipt.seq;
    tracing::debug!(seq = intent_seq, request_id = %ex.request_id, route = ex.route(), "intent logged");

    // Forward.
    let up_req = upstream_request(shared, conn, parts, body, ex)?;
    let sent = Instant::now();
    let resp = match shared.upstream.send(up_req).await {
        Ok(resp) => {
            shared
                .metrics
                .upstream_response(resp.status().as_u16(), sent.elapsed());
            resp
        }
        Err(e) => {
            shared.metrics.upstream_error(sent.elapsed());
            let problem = match &e {
                ForwardError::Unreachable(_) => Problem::UpstreamUnreachable,
                ForwardError::Timeout(_) => Problem::UpstreamTimeout,
                ForwardError::Failed(_) => Problem::UpstreamFailed,
            };
            tracing::warn!(seq = intent_seq, request_id = %ex.request_id, error = %e, "upstream exchange failed");
            return Err(log_failure(shared, ex, intent_seq, problem).await);
        }
    };

    // 6. The response.
    let (mut rparts, rbody) = resp.into_parts();
    headers::strip_hop_by_hop(&mut rparts.headers);
    let status = rparts.status;
    let no_body = ex.method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let max = shared.limits.max_buffered_response_bytes;
    let rbody: UpstreamBody = rbody.map_err(BoxError::from).boxed_unsync();
    let read = if no_body {
        Read::Complete(Bytes::new())
    } else if ex.classified.as_ref().is_some_and(|c| c.stream_response)
        || content_length(&rparts.headers).is_some_and(|n| n > max as u64)
    {
        // The route streams its responses, or this one is too large to hold: it is released
        // after the intent only, and its outcome is written when the stream ends.
        Read::Over(Vec::new(), rbody)
    } else {
        match tokio::time::timeout(shared.upstream.response_timeout(), read_upto(rbody, max)).await
        {
            Err(_) => {
                return Err(log_failure(shared, ex, intent_seq, Problem::UpstreamTimeout).await);
            }
            Ok(Err(_)) => {
                return Err(log_failure(shared, ex, intent_seq, Problem::UpstreamFailed).await);
            }
            Ok(Ok(r)) => r,
        }
    };
    match read {
        Read::Complete(bytes) => {
            let mut entry = ex.outcome(intent_seq, status, "");
            if let Some(o) = entry.outcome.as_mut() {
                o.response_sha256 = if bytes.is_empty() {
                    Vec::new()
                } else {
                    Sha256::digest(&bytes).to_vec()
                };
                o.response_bytes = bytes.len() as u64;
                if let Some(c) = ex
                    .classified
                    .as_ref()
                    .filter(|c| !c.response_extract.is_empty())
                    && headers::is_json(&rparts.headers)
                    && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
                {
                    (o.returned_subject_ids, o.returned_record_ids) =
                        c.response_extract.extract(&v);
                }
            }
            let r = shared
                .writer
                .append(entry)
                .await
                .map_err(Problem::LogUnavailable)?;
            tracing::debug!(seq = r.seq, request_id = %ex.request_id, status = status.as_u16(), "outcome logged; releasing response");
            if !no_body {
                rparts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            }
            Ok(Response::from_parts(rparts, ProxyBody::full(bytes)))
        }
        Read::Over(prefix, rest) => {
            tracing::debug!(seq = intent_seq, request_id = %ex.request_id, status = status.as_u16(), "streaming a large response");
            let entry = ex.outcome(intent_seq, status, "");
            let stream = LoggedStream::new(prefix, rest, shared.writer.clone(), entry);
            Ok(Response::from_parts(rparts, ProxyBody::stream(stream)))
        }
    }
}

fn view<'a>(parts: &'a http::request::Parts, json: Option<&'a Value>) -> RequestView<'a> {
    RequestView {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        json_body: json,
    }
}

/// Logs the outcome of a failed exchange; the problem to answer with (503 if even that fails).
async fn log_failure(shared: &Shared, ex: &Exchange, intent_seq: u64, problem: Problem) -> Problem {
    match shared
        .writer
        .append(ex.outcome(intent_seq, problem.status(), problem.reason()))
        .await
    {
        Ok(r) => {
            tracing::info!(seq = r.seq, request_id = %ex.request_id, status = problem.status().as_u16(), "failure outcome logged");
            problem
        }
        Err(e) => Problem::LogUnavailable(e),
    }
}

/// The request sent upstream: same method and target, cleaned headers, this hop recorded.
fn upstream_request(
    shared: &Shared,
    conn: &ConnInfo,
    parts: http::request::Parts,
    body: RequestBody,
    ex: &Exchange,
) -> Result<Request<UpstreamBody>, Problem> {
    let mut h: HeaderMap = parts.headers;
    headers::strip_hop_by_hop(&mut h);
    h.remove(header::EXPECT);
    if !identity::trusts(&shared.identity, conn.peer.ip()) {
        // The upstream must not trust what an arbitrary client claims either.
        for name in identity::identity_headers(&shared.identity).chain([
            &shared.justification.purpose_header,
            &shared.justification.text_header,
            &shared.justification.case_header,
        ]) {
            h.remove(name);
        }
    }
    let client_host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            h.get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    headers::add_forwarded(&mut h, conn.peer, conn.tls, client_host.as_deref());
    if let Ok(v) = HeaderValue::from_str(shared.upstream.authority().as_str()) {
        h.insert(header::HOST, v);
    }
    if let Ok(v) = HeaderValue::from_str(&ex.request_id) {
        h.insert(X_REQUEST_ID, v);
    }
    let body: UpstreamBody = match body {
        RequestBody::Buffered(bytes) => {
            if !bytes.is_empty() || h.contains_key(header::CONTENT_LENGTH) {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            }
            http_body_util::Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync()
        }
        RequestBody::Streaming(prefix, rest) => {
            let head = tokio_stream::iter(
                prefix
                    .into_iter()
                    .map(|b| Ok::<_, BoxError>(http_body::Frame::data(b))),
            );
            let tail = BodyStream::new(rest.map_err(BoxError::from));
            StreamBody::new(head.chain(tail)).boxed_unsync()
        }
    };
    let uri = shared
        .upstream
        .uri_for(&ex.target)
        .map_err(|_| Problem::UnsupportedTarget)?;
    let mut req = Request::new(body);
    *req.method_mut() = parts.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = h;
    Ok(req)
}

/// How far a body was read.
enum Read<B> {
    /// All of it, within the limit.
    Complete(Bytes),
    /// More than the limit: the frames read so far and the rest of the body.
    Over(Vec<Bytes>, B),
}

async fn read_request(body: Incoming, limit: usize) -> Result<Read<Incoming>, hyper::Error> {
    read_upto(body, limit).await
}

/// Reads data frames until the end of the body or until more than `limit` bytes arrived.
/// Trailers are dropped.
async fn read_upto<B>(mut body: B, limit: usize) -> Result<Read<B>, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut frames: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        frames.push(data);
        if total > limit {
            return Ok(Read::Over(frames, body));
        }
    }
    Ok(Read::Complete(match frames.len() {
        0 => Bytes::new(),
        1 => frames.pop().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(total);
            for f in frames {
                all.extend_from_slice(&f);
            }
            all.freeze()
        }
    }))
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// True for paths the upstream could resolve differently from the route rules: dot segments,
/// empty segments, backslashes, or encoded `/`, `\`, `.` and `%`.
fn is_ambiguous(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%2e")
        || lower.contains("%25")
        || path.contains('\\')
    {
        return true;
    }
    let body = path.strip_prefix('/').unwrap_or(path);
    let body = body.strip_suffix('/').unwrap_or(body);
    !body.is_empty()
        && body
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_be_read_two_ways_are_ambiguous() {
        for p in [
            "/api/people/../admin",
            "/api/./people",
            "/api//people",
            "/api/people%2F1",
            "/a/%2e%2e/b",
            "/a\\b",
            "/a/%252f",
        ] {
            assert!(is_ambiguous(p), "{p}");
        }
        for p in [
            "/",
            "/api/people",
            "/api/people/",
            "/api/people/P-1001",
            "/api/people?q=a/../b",
            "/api/search%20x",
        ] {
            assert!(!is_ambiguous(p.split('?').next().unwrap_or(p)), "{p}");
        }
    }

    #[tokio::test]
    async fn a_body_is_read_up_to_its_limit_and_no_further() {
        let small = http_body_util::Full::new(Bytes::from_static(b"12345"));
        assert!(
            matches!(read_upto(small, 5).await, Ok(Read::Complete(b)) if b.as_ref() == b"12345")
        );
        let big = http_body_util::Full::new(Bytes::from_static(b"123456"));
        assert!(matches!(read_upto(big, 5).await, Ok(Read::Over(frames, _)) if frames.len() == 1));
    }
}

//! The `s62.query.v1.AuditQuery` service: every call is identified, purpose-checked and logged
//! before anything is read, then answered from the store.
//!
//! Order of a call: (1) the connection's certificate must name a configured auditor, else
//! UNAUTHENTICATED / PERMISSION_DENIED and a `denied` entry; (2) the context must carry a purpose
//! and a case reference, else INVALID_ARGUMENT; the caller's role must be granted the call and
//! then the purpose (`[query.roles]`, checked in `check_call` and nowhere else), else
//! PERMISSION_DENIED (`role_not_allowed`, `purpose_not_allowed_for_role`); and the arguments must
//! parse, else INVALID_ARGUMENT — each refusal with a `denied` entry;
//! (3) the opening `audit-query` entry is appended and awaited (durable and covered by a signed
//! checkpoint) — if that fails, UNAVAILABLE and nothing else happens; (4) the answer is computed on a
//! blocking thread and (5) the closing entry is appended: for unary calls before the response is
//! released, for streams when the stream ends (however it ends). The opening entry's seq is sent in
//! the `s62-audit-seq` response header. A search only ever sees entries before its opening entry.
//! `ReviewAlert` is the one call whose log entry is its result: after (1)–(2) and a check that
//! the seq is an alert (refused and logged like any refusal), a single `alert-review` entry is
//! appended and awaited, and its seq is the answer (and the `s62-audit-seq` header).
//!
//! Logs: the service reads a set of logs by checkpoint origin and writes one ([`QueryLogs`]). A
//! sidecar's is its one log, read and written; an audit hub reads its verified copies of the logs
//! it follows (and its own log, when named) and writes its own. Search, SubjectReport and
//! ActorReport span the logs a call's `origin` selects (every followed log when empty), merged by
//! (time, origin, seq); a copy is read as it stood when the call opened. Every other call
//! addresses one log. Export and RedactValues must address the log the service writes (else
//! FAILED_PRECONDITION): an export proves its own audit entry in the log it exports, and a
//! redaction is an entry of the log it redacts (on a hub: redact at the origin sidecar; the
//! redaction entry replicates).
//!
//! Application logs carry call names, seqs and status codes only: never subject ids, auditor
//! names, case references or filters. Must not import hyper-level proxy code or RocksDB.

use super::actor_report::{actor_report, sum_reports};
use super::alerts::{AlertQuery, REVIEW_OUTCOMES, check_reviewable, list_alerts};
use super::audit::{AuditTrail, OpenCall};
use super::auth::{Auditors, Caller, PeerInfo, Refusal};
use super::coverage::coverage_report;
use super::error::{QueryError, to_status};
use super::export::{ExportPlan, ResultCommitment, export, select_for_export};
use super::logs::{Log, Logs, Merge, QueryLogs, SpanToken};
use super::nodes::{CachedNodes, proof_bytes, proof_error};
use super::pb::audit_query_server::AuditQuery;
use super::pb::{
    ActorReportRequest, ActorReportResponse, CallContext, CheckpointAtRequest, CheckpointResponse,
    ConsistencyProofRequest, ConsistencyProofResponse, CoverageReportRequest,
    CoverageReportResponse, ExportRequest, ExportResponse, GetEntryRequest, GetEntryResponse,
    InclusionProofRequest, InclusionProofResponse, LatestCheckpointRequest, ListAlertsRequest,
    ListAlertsResponse, LoggedEntry, PageEnd, RedactValuesRequest, RedactValuesResponse,
    ReviewAlertRequest, ReviewAlertResponse, SearchRequest, SearchResponse, SubjectReportRequest,
    SubjectReportResponse, search_response,
};
use super::plan::{EntryFilter, Matches, PageToken};
use super::purpose::{self, StatedPurpose};
use super::report::{ReportLog, subject_report};
use super::sink::{Sink, Stop};
use super::{checkpoint_pb, filter_from_pb, time_bound};
use crate::config::QueryCall;
use crate::ingest::LogWriter;
use crate::log::hash::leaf_hash;
use crate::log::merkle::consistency_proof;
use crate::log::note::VerifierKey;
use crate::log::store::{LogStore, OpenedEntry, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

/// Response header carrying the seq of the call's opening audit-query entry.
pub const AUDIT_SEQ_HEADER: &str = "s62-audit-seq";

/// Default and largest search page.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Messages buffered per streaming call before the producer waits for the client.
const STREAM_BUFFER: usize = 64;

struct Shared {
    /// What the service reads, by origin.
    logs: Logs,
    trail: AuditTrail,
    auditors: Auditors,
    /// The key of the log the service writes, handed out with its exports.
    verifier: VerifierKey,
    metrics: Option<Arc<crate::admin::Metrics>>,
    /// With `[witness]`: exports wait (bounded) for a witnessed checkpoint.
    witness: Option<(crate::witness::client::WitnessHandle, std::time::Duration)>,
}

/// The largest arguments a call may have, as their JSON is recorded in the opening entry: far
/// below the log's entry limit (1 MiB), far above any real filter.
pub const MAX_RECORDED_ARGUMENT_BYTES: usize = 64 << 10;

/// The service over its logs. Cheap to clone.
#[derive(Clone)]
pub struct QueryService {
    shared: Arc<Shared>,
}

type Stream<T> = ReceiverStream<Result<T, Status>>;

impl QueryService {
    /// A service reading `store`, writing its audit entries through `writer` (which must write
    /// the same log), answering the auditors in `auditors`; `verifier` is the log's public key,
    /// handed out with checkpoints and exports.
    pub fn new(
        store: Arc<dyn Store>,
        writer: LogWriter,
        verifier: VerifierKey,
        auditors: Auditors,
    ) -> Self {
        let logs = QueryLogs::single(writer.origin().to_owned(), store, verifier);
        Self::over(logs, writer, auditors)
    }

    /// A service reading `logs` and writing its entries through `writer`, which must write the
    /// log `logs` names as its own (an audit hub's own log).
    pub fn over(logs: QueryLogs, writer: LogWriter, auditors: Auditors) -> Self {
        QueryService {
            shared: Arc::new(Shared {
                verifier: logs.own_key.clone(),
                logs: Logs::new(logs),
                trail: AuditTrail::new(writer),
                auditors,
                metrics: None,
                witness: None,
            }),
        }
    }

    /// Counts admitted calls by purpose in `metrics` (call right after [`QueryService::new`]).
    pub fn with_metrics(mut self, metrics: Arc<crate::admin::Metrics>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.metrics = Some(metrics);
        }
        self
    }

    /// Makes exports prove against a checkpoint that carries a quorum of witness cosignatures:
    /// after the export's audit entry is durable, wait up to `wait` for the witness client to
    /// store a quorum-cosigned checkpoint at least that large (it is asked to submit at once).
    /// On timeout the export proves against the log-signed checkpoint alone, and
    /// `verify-bundle --quorum` will say so (call right after [`QueryService::new`]).
    pub fn with_witness(
        mut self,
        witness: crate::witness::client::WitnessHandle,
        wait: std::time::Duration,
    ) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.witness = Some((witness, wait));
        }
        self
    }

    /// Steps (1)–(3): identify, check purpose, role and arguments, append the opening entry.
    async fn admit<T, A>(
        &self,
        req: &Request<T>,
        call: QueryCall,
        ctx: Option<&CallContext>,
        parse: impl FnOnce() -> Result<(A, Value), QueryError>,
    ) -> Result<(A, OpenCall), Status> {
        let checked = self.check_call(req, call, ctx, parse).await?;
        self.open_call(checked, call, None).await
    }

    /// Steps (1)–(2): identify the caller, check the stated purpose, that the caller's role may
    /// make this call for that purpose (`[query.roles]`; the one place roles are enforced), and
    /// the arguments. Every refusal is logged as a `denied` entry before it is answered.
    async fn check_call<T, A>(
        &self,
        req: &Request<T>,
        query_call: QueryCall,
        ctx: Option<&CallContext>,
        parse: impl FnOnce() -> Result<(A, Value), QueryError>,
    ) -> Result<Checked<A>, Status> {
        let call = query_call.name();
        let peer = req
            .extensions()
            .get::<PeerInfo>()
            .cloned()
            .unwrap_or_default();
        let caller = match self.shared.auditors.identify(&peer) {
            Ok(c) => c,
            Err(refusal) => {
                let err = match &refusal {
                    Refusal::NotAnAuditor(_) => QueryError::NotAnAuditor,
                    Refusal::NoCertificate => {
                        QueryError::Unauthenticated("no client certificate was presented".into())
                    }
                    Refusal::Unreadable(why) => QueryError::Unauthenticated(why.clone()),
                };
                tracing::warn!(call, reason = refusal.reason(), "query refused");
                self.deny(
                    refusal.actor(peer.remote_addr),
                    refusal.reason(),
                    call,
                    None,
                )
                .await?;
                return Err(to_status(&err));
            }
        };
        let purpose = match purpose::check(ctx) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(call, "query refused: no purpose or case reference");
                self.deny(caller.actor(), "no_purpose_or_case_reference", call, None)
                    .await?;
                return Err(to_status(&e));
            }
        };
        if let Err(refusal) = self
            .shared
            .auditors
            .authorize(&caller, query_call, purpose.purpose)
        {
            let e = QueryError::from(refusal);
            tracing::warn!(
                call,
                reason = e.reason(),
                "query refused: not granted to the role"
            );
            self.deny(caller.actor(), e.reason(), call, Some(&purpose))
                .await?;
            return Err(to_status(&e));
        }
        let parsed = parse().and_then(|(args, json)| {
            // The opening entry records the arguments whole; ones too large to record are
            // refused as such, not failed later as an unwritable log.
            let bytes = json.to_string().len();
            if bytes > MAX_RECORDED_ARGUMENT_BYTES {
                return Err(QueryError::InvalidArgument(format!(
                    "the call's arguments are {bytes} bytes as recorded; at most \
                     {MAX_RECORDED_ARGUMENT_BYTES} can be recorded in its audit entry"
                )));
            }
            Ok((args, json))
        });
        let (args, args_json) = match parsed {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(call, "query refused: invalid arguments");
                self.deny(caller.actor(), "invalid_argument", call, Some(&purpose))
                    .await?;
                return Err(to_status(&e));
            }
        };
        Ok(Checked {
            caller,
            purpose,
            args,
            args_json,
        })
    }

    /// Step (3): append the opening entry, committing to `results` when the call fixed them.
    async fn open_call<A>(
        &self,
        checked: Checked<A>,
        call: QueryCall,
        results: Option<ResultCommitment>,
    ) -> Result<(A, OpenCall), Status> {
        let call = call.name();
        let open = self
            .shared
            .trail
            .open(
                &checked.caller,
                &checked.purpose,
                call,
                checked.args_json.to_string(),
                results,
            )
            .await
            .map_err(|e| {
                tracing::error!(call, error = %e, "opening audit entry not written; query refused");
                to_status(&QueryError::LogUnavailable(e))
            })?;
        tracing::info!(call, audit_seq = open.seq, "query opened");
        if let Some(m) = &self.shared.metrics {
            m.query_call(checked.purpose.purpose.label());
        }
        Ok((checked.args, open))
    }

    /// Refuses a call that passed steps (1)–(2): logs a `denied` entry, then answers `e`.
    async fn refuse<A>(&self, checked: &Checked<A>, call: QueryCall, e: QueryError) -> Status {
        tracing::warn!(call = call.name(), reason = e.reason(), "query refused");
        let logged = self
            .deny(
                checked.caller.actor(),
                e.reason(),
                call.name(),
                Some(&checked.purpose),
            )
            .await;
        match logged {
            Ok(()) => to_status(&e),
            Err(unlogged) => unlogged,
        }
    }

    async fn deny(
        &self,
        actor: crate::log::entry::Actor,
        reason: &str,
        call: &'static str,
        purpose: Option<&StatedPurpose>,
    ) -> Result<(), Status> {
        match self.shared.trail.denied(actor, reason, call, purpose).await {
            Ok(r) => {
                tracing::info!(call, denied_seq = r.seq, "refusal logged");
                Ok(())
            }
            Err(e) => {
                tracing::error!(call, error = %e, "refusal could not be logged");
                Err(to_status(&QueryError::LogUnavailable(e)))
            }
        }
    }

    /// Steps (4)–(5) for a unary call: compute, append the closing entry, then release.
    async fn unary<R: Send + 'static>(
        &self,
        open: OpenCall,
        work: impl FnOnce() -> Result<R, QueryError> + Send + 'static,
    ) -> Result<Response<R>, Status> {
        let result = tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|e| Err(QueryError::Internal(format!("query worker failed: {e}"))));
        let (code, reason, n) = match &result {
            Ok(_) => (Code::Ok, "", 1),
            Err(e) => (e.code(), e.reason(), 0),
        };
        if let Err(e) = self
            .shared
            .trail
            .close(&open, n, code as i32 as u32, reason)
            .await
        {
            tracing::error!(call = open.call, audit_seq = open.seq, error = %e, "closing audit entry not written; result withheld");
            return Err(to_status(&QueryError::LogUnavailable(e)));
        }
        tracing::info!(call = open.call, audit_seq = open.seq, code = ?code, "query closed");
        let mut response = Response::new(result.map_err(|e| to_status(&e))?);
        set_audit_seq(&mut response, open.seq);
        Ok(response)
    }

    /// Steps (4)–(5) for a streaming call: a producer on a blocking thread fills the stream; when
    /// it ends (done, failed, or the client left) the closing entry is appended.
    fn stream<T: Send + 'static>(
        &self,
        open: OpenCall,
        work: impl FnOnce(&mut dyn Sink<T>) -> Result<(), Stop> + Send + 'static,
    ) -> Response<Stream<T>> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let shared = self.shared.clone();
        let audit_seq = open.seq;
        tokio::spawn(async move {
            let producer_tx = tx.clone();
            let produced = tokio::task::spawn_blocking(move || {
                let mut sink = ChannelSink {
                    tx: producer_tx,
                    results: 0,
                };
                let r = work(&mut sink);
                (r, sink.results)
            })
            .await;
            let (result, n) = produced.unwrap_or_else(|e| {
                (
                    Err(Stop::Failed(QueryError::Internal(format!(
                        "query worker failed: {e}"
                    )))),
                    0,
                )
            });
            let (code, reason) = match &result {
                Ok(()) => (Code::Ok, ""),
                Err(Stop::Disconnected) => (Code::Cancelled, "client_disconnected"),
                Err(Stop::Failed(e)) => (e.code(), e.reason()),
            };
            if let Err(Stop::Failed(e)) = result {
                // The client may be gone too; then there is nobody to tell.
                let _ = tx.send(Err(to_status(&e))).await;
            }
            match shared
                .trail
                .close(&open, n, code as i32 as u32, reason)
                .await
            {
                Ok(r) => {
                    tracing::info!(call = open.call, audit_seq = open.seq, closing_seq = r.seq, code = ?code, "query closed")
                }
                Err(e) => {
                    tracing::error!(call = open.call, audit_seq = open.seq, error = %e, "closing audit entry not written")
                }
            }
        });
        let mut response = Response::new(ReceiverStream::new(rx));
        set_audit_seq(&mut response, audit_seq);
        response
    }
}

fn set_audit_seq<T>(response: &mut Response<T>, seq: u64) {
    if let Ok(v) = seq.to_string().parse() {
        response.metadata_mut().insert(AUDIT_SEQ_HEADER, v);
    }
}

/// Feeds a streaming response from a blocking thread.
struct ChannelSink<T> {
    tx: mpsc::Sender<Result<T, Status>>,
    results: u64,
}

impl<T> Sink<T> for ChannelSink<T> {
    fn result(&mut self, item: T) -> Result<(), Stop> {
        self.frame(item)?;
        self.results += 1;
        Ok(())
    }

    fn frame(&mut self, item: T) -> Result<(), Stop> {
        self.tx
            .blocking_send(Ok(item))
            .map_err(|_| Stop::Disconnected)
    }
}

/// An opened entry as the API returns it: leaf, value row, the entry with its values, and what
/// was redacted.
/// `origin` names the log it is in (empty from a service that serves one log).
pub(crate) fn logged(o: OpenedEntry, origin: &str) -> LoggedEntry {
    LoggedEntry {
        origin: origin.to_owned(),
        seq: o.seq,
        leaf: o.leaf,
        entry: Some(o.entry),
        values: o.values,
        redacted: o.redacted.iter().map(ToString::to_string).collect(),
    }
}

fn latest_size(store: &dyn Store) -> Result<(u64, String), QueryError> {
    store
        .latest_checkpoint()?
        .ok_or_else(|| QueryError::NotFound("the log has no checkpoint yet".into()))
}

/// The tree size to prove against: `requested`, or the latest checkpoint's when 0. Never beyond
/// the latest checkpoint.
fn proof_size(store: &dyn Store, requested: u64) -> Result<u64, QueryError> {
    let (latest, _) = latest_size(store)?;
    match requested {
        0 => Ok(latest),
        n if n > latest => Err(QueryError::OutOfRange(format!(
            "tree size {n} is beyond the latest checkpoint ({latest})"
        ))),
        n => Ok(n),
    }
}

/// A search's parsed arguments: filter, page size, where to resume, and the logs it reads.
type SearchArgs = (EntryFilter, u32, Option<SpanToken>, Vec<Arc<Log>>);

/// A page size as Search and ListAlerts take it: 0 is the default, at most [`MAX_PAGE_SIZE`].
fn page_size_arg(n: u32) -> Result<u32, QueryError> {
    match n {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n > MAX_PAGE_SIZE => Err(QueryError::InvalidArgument(format!(
            "page_size must be at most {MAX_PAGE_SIZE}"
        ))),
        n => Ok(n),
    }
}

/// A page token this service issued, or none for a first page.
fn page_token_arg(t: &str) -> Result<Option<PageToken>, QueryError> {
    match t {
        "" => Ok(None),
        t => Ok(Some(PageToken::parse(t).ok_or_else(|| {
            QueryError::InvalidArgument("page_token is not one this service issued".into())
        })?)),
    }
}

fn search_args(r: &SearchRequest, logs: &Logs) -> Result<(SearchArgs, Value), QueryError> {
    let (filter, origin) = filter_and_origin(r.filter.as_ref())?;
    let span = logs.span(origin)?;
    let page_size = page_size_arg(r.page_size)?;
    // A token names every log the search reads: a token for another set of logs is not one of
    // this search's.
    let token = match r.page_token.as_str() {
        "" => None,
        t => Some(
            SpanToken::parse(t)
                .filter(|t| t.positions.keys().eq(span.iter().map(|l| &l.origin)))
                .ok_or_else(|| {
                    QueryError::InvalidArgument(
                        "page_token is not one this service issued for these logs".into(),
                    )
                })?,
        ),
    };
    let mut args = json!({"filter": filter_json(&filter, origin), "page_size": page_size});
    if !r.page_token.is_empty() {
        args["page_token"] = json!(r.page_token);
    }
    Ok(((filter, page_size, token, span), args))
}

/// The wire filter as a planner filter, and the origin it names ("" for none).
fn filter_and_origin(f: Option<&super::pb::Filter>) -> Result<(EntryFilter, &str), QueryError> {
    Ok((filter_from_pb(f)?, f.map_or("", |f| f.origin.as_str())))
}

/// The wire filter of a single-log call (Export, RedactValues): the planner filter, the log it
/// addresses, and the origin as the caller named it.
fn filter_and_log(
    f: Option<&super::pb::Filter>,
    logs: &Logs,
) -> Result<(EntryFilter, (Arc<Log>, String)), QueryError> {
    let (filter, origin) = filter_and_origin(f)?;
    Ok((filter, (logs.one(origin)?, origin.to_owned())))
}

/// A filter as an opening entry records it: the planner filter's JSON, with the origin when the
/// caller named one.
fn filter_json(filter: &EntryFilter, origin: &str) -> Value {
    with_origin(filter.to_json(), origin)
}

/// Call arguments with the origin the caller named, if any.
fn with_origin(mut args: Value, origin: &str) -> Value {
    if !origin.is_empty() {
        args["origin"] = json!(origin);
    }
    args
}

/// Longest rule name `ListAlerts` accepts, in characters.
pub const MAX_RULE_NAME: usize = 200;

fn list_alerts_args(
    r: &ListAlertsRequest,
) -> Result<((AlertQuery, Option<PageToken>), Value), QueryError> {
    let rule = match r.rule.as_str() {
        "" => None,
        rule if rule.chars().count() > MAX_RULE_NAME || rule.chars().any(char::is_control) => {
            return Err(QueryError::InvalidArgument(format!(
                "rule must be at most {MAX_RULE_NAME} characters, without control characters"
            )));
        }
        rule => Some(rule.to_owned()),
    };
    let query = AlertQuery {
        rule,
        unreviewed_only: r.unreviewed_only,
        from_seq: r.from_seq,
        page_size: page_size_arg(r.page_size)?,
    };
    let token = page_token_arg(&r.page_token)?;
    let mut args = json!({
        "unreviewed_only": query.unreviewed_only,
        "from_seq": query.from_seq,
        "page_size": query.page_size,
    });
    if let Some(rule) = &query.rule {
        args["rule"] = json!(rule);
    }
    if !r.page_token.is_empty() {
        args["page_token"] = json!(r.page_token);
    }
    Ok(((query, token), args))
}

fn review_alert_args(r: &ReviewAlertRequest) -> Result<((u64, String), Value), QueryError> {
    if !REVIEW_OUTCOMES.contains(&r.outcome.as_str()) {
        return Err(QueryError::InvalidArgument(format!(
            "outcome must be one of {}",
            REVIEW_OUTCOMES.join(", ")
        )));
    }
    Ok((
        (r.alert_seq, r.outcome.clone()),
        json!({"alert_seq": r.alert_seq, "outcome": r.outcome}),
    ))
}

#[tonic::async_trait]
impl AuditQuery for QueryService {
    type SearchStream = Stream<SearchResponse>;
    type ListAlertsStream = Stream<ListAlertsResponse>;
    type SubjectReportStream = Stream<SubjectReportResponse>;
    type ExportStream = Stream<ExportResponse>;

    async fn search(
        &self,
        request: Request<SearchRequest>,
    ) -> Result<Response<Self::SearchStream>, Status> {
        let r = request.get_ref();
        let logs = &self.shared.logs;
        let ((filter, page_size, token, span), open) = self
            .admit(&request, QueryCall::Search, r.context.as_ref(), || {
                search_args(r, logs)
            })
            .await?;
        let tags: Vec<String> = span.iter().map(|l| logs.tag(l)).collect();
        let audit_seq = open.seq;
        Ok(self.stream(open, move |sink| {
            // A search sees each log as it was when its first page was asked for.
            let mut ranges = Vec::new();
            for log in &span {
                let now = log.end(audit_seq)?;
                ranges.push(
                    match token.as_ref().and_then(|t| t.positions.get(&log.origin)) {
                        Some(t) => PageToken {
                            next: t.next,
                            end: t.end.min(now),
                        },
                        None => PageToken { next: 0, end: now },
                    },
                );
            }
            let streams = span
                .iter()
                .zip(&ranges)
                .map(|(log, p)| Matches::new(log.store.as_ref(), filter.clone(), p.next, p.end))
                .collect::<Result<Vec<_>, _>>()?;
            let mut merged =
                Merge::new(streams, |o: &OpenedEntry| (o.entry.time_unix_nanos, o.seq));
            let mut returned = 0u64;
            let mut next_page_token = String::new();
            while let Some(i) = merged.peek()? {
                if returned == u64::from(page_size) {
                    // Each log resumes at the entry it had read ahead, or at its end.
                    let positions = span
                        .iter()
                        .zip(&ranges)
                        .enumerate()
                        .map(|(j, (log, p))| {
                            let next = merged.head(j).map_or(p.end, |h| h.seq);
                            (log.origin.clone(), PageToken { next, end: p.end })
                        })
                        .collect();
                    next_page_token = SpanToken { positions }.encode();
                    break;
                }
                let Some(opened) = merged.take_head(i) else {
                    break;
                };
                sink.result(SearchResponse {
                    item: Some(search_response::Item::Entry(logged(opened, &tags[i]))),
                })?;
                returned += 1;
            }
            sink.frame(SearchResponse {
                item: Some(search_response::Item::PageEnd(PageEnd {
                    next_page_token,
                    returned,
                })),
            })
        }))
    }

    async fn get_entry(
        &self,
        request: Request<GetEntryRequest>,
    ) -> Result<Response<GetEntryResponse>, Status> {
        let r = request.get_ref();
        let (seq, size) = (r.seq, r.tree_size);
        let logs = &self.shared.logs;
        let (log, open) = self
            .admit(&request, QueryCall::GetEntry, r.context.as_ref(), || {
                let args = json!({"seq": seq, "tree_size": size});
                Ok((logs.one(&r.origin)?, with_origin(args, &r.origin)))
            })
            .await?;
        let origin = logs.tag(&log);
        self.unary(open, move || {
            let store = log.store.as_ref();
            let size = match size {
                0 => latest_size(store)?.0,
                n => n,
            };
            let note = store.checkpoint(size)?.ok_or_else(|| {
                QueryError::NotFound(format!("no checkpoint was signed at size {size}"))
            })?;
            if seq >= size {
                return Err(QueryError::OutOfRange(format!(
                    "entry {seq} is not in the tree of size {size}"
                )));
            }
            let opened = store
                .opened(seq)?
                .ok_or_else(|| QueryError::Inconsistent(format!("entry {seq} is missing")))?;
            Ok(GetEntryResponse {
                inclusion_proof: proof_bytes(&CachedNodes::new(store, &log.nodes), seq, size)?,
                entry: Some(logged(opened, &origin)),
                checkpoint: Some(checkpoint_pb(&note)?),
            })
        })
        .await
    }

    async fn latest_checkpoint(
        &self,
        request: Request<LatestCheckpointRequest>,
    ) -> Result<Response<CheckpointResponse>, Status> {
        let r = request.get_ref();
        let logs = &self.shared.logs;
        let (log, open) = self
            .admit(
                &request,
                QueryCall::LatestCheckpoint,
                r.context.as_ref(),
                || Ok((logs.one(&r.origin)?, with_origin(json!({}), &r.origin))),
            )
            .await?;
        self.unary(open, move || {
            let (_, note) = latest_size(log.store.as_ref())?;
            Ok(CheckpointResponse {
                checkpoint: Some(checkpoint_pb(&note)?),
                verifier_key: log.verifier_for(&note),
            })
        })
        .await
    }

    async fn checkpoint_at(
        &self,
        request: Request<CheckpointAtRequest>,
    ) -> Result<Response<CheckpointResponse>, Status> {
        let r = request.get_ref();
        let size = r.size;
        let logs = &self.shared.logs;
        let (log, open) = self
            .admit(
                &request,
                QueryCall::CheckpointAt,
                r.context.as_ref(),
                || {
                    let args = json!({"size": size});
                    Ok((logs.one(&r.origin)?, with_origin(args, &r.origin)))
                },
            )
            .await?;
        self.unary(open, move || {
            let note = log.store.checkpoint(size)?.ok_or_else(|| {
                QueryError::NotFound(format!("no checkpoint was signed at size {size}"))
            })?;
            Ok(CheckpointResponse {
                checkpoint: Some(checkpoint_pb(&note)?),
                verifier_key: log.verifier_for(&note),
            })
        })
        .await
    }

    async fn inclusion_proof(
        &self,
        request: Request<InclusionProofRequest>,
    ) -> Result<Response<InclusionProofResponse>, Status> {
        let r = request.get_ref();
        let (seq, size) = (r.seq, r.tree_size);
        let logs = &self.shared.logs;
        let (log, open) = self
            .admit(
                &request,
                QueryCall::InclusionProof,
                r.context.as_ref(),
                || {
                    let args = json!({"seq": seq, "tree_size": size});
                    Ok((logs.one(&r.origin)?, with_origin(args, &r.origin)))
                },
            )
            .await?;
        self.unary(open, move || {
            let store = log.store.as_ref();
            let size = proof_size(store, size)?;
            if seq >= size {
                return Err(QueryError::OutOfRange(format!(
                    "entry {seq} is not in the tree of size {size}"
                )));
            }
            let leaf = store
                .entry(seq)?
                .ok_or_else(|| QueryError::Inconsistent(format!("entry {seq} is missing")))?;
            Ok(InclusionProofResponse {
                seq,
                tree_size: size,
                leaf_hash: leaf_hash(&leaf).0.to_vec(),
                proof: proof_bytes(&CachedNodes::new(store, &log.nodes), seq, size)?,
            })
        })
        .await
    }

    async fn consistency_proof(
        &self,
        request: Request<ConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProofResponse>, Status> {
        let r = request.get_ref();
        let (old, new) = (r.old_size, r.new_size);
        let logs = &self.shared.logs;
        let (log, open) = self
            .admit(
                &request,
                QueryCall::ConsistencyProof,
                r.context.as_ref(),
                || {
                    if old == 0 {
                        return Err(QueryError::InvalidArgument(
                            "old_size must be at least 1".into(),
                        ));
                    }
                    let args = json!({"old_size": old, "new_size": new});
                    Ok((logs.one(&r.origin)?, with_origin(args, &r.origin)))
                },
            )
            .await?;
        self.unary(open, move || {
            let store = log.store.as_ref();
            let new = proof_size(store, new)?;
            if old > new {
                return Err(QueryError::OutOfRange(format!(
                    "old size {old} is larger than new size {new}"
                )));
            }
            let proof = consistency_proof(&CachedNodes::new(store, &log.nodes), old, new)
                .map_err(proof_error)?;
            Ok(ConsistencyProofResponse {
                old_size: old,
                new_size: new,
                proof: proof.into_iter().map(|h| h.0.to_vec()).collect(),
            })
        })
        .await
    }

    async fn subject_report(
        &self,
        request: Request<SubjectReportRequest>,
    ) -> Result<Response<Self::SubjectReportStream>, Status> {
        let r = request.get_ref();
        let logs = &self.shared.logs;
        let ((subject, since, until, span), open) = self
            .admit(
                &request,
                QueryCall::SubjectReport,
                r.context.as_ref(),
                || {
                    if r.subject.is_empty() {
                        return Err(QueryError::InvalidArgument("subject is required".into()));
                    }
                    let (since, until) = time_bound(r.since_unix_nanos, r.until_unix_nanos)?;
                    let filter = EntryFilter {
                        subject: Some(r.subject.clone()),
                        since,
                        until,
                        ..Default::default()
                    };
                    Ok((
                        (r.subject.clone(), since, until, logs.span(&r.origin)?),
                        json!({"filter": filter_json(&filter, &r.origin)}),
                    ))
                },
            )
            .await?;
        let tags: Vec<String> = span.iter().map(|l| logs.tag(l)).collect();
        let audit_seq = open.seq;
        Ok(self.stream(open, move |sink| {
            let mut read = Vec::new();
            for (log, origin) in span.iter().zip(tags) {
                read.push(ReportLog {
                    origin,
                    store: log.store.as_ref(),
                    end: log.end(audit_seq)?,
                });
            }
            subject_report(&read, &subject, since, until, sink)
        }))
    }

    async fn actor_report(
        &self,
        request: Request<ActorReportRequest>,
    ) -> Result<Response<ActorReportResponse>, Status> {
        let r = request.get_ref();
        let logs = &self.shared.logs;
        let ((actor, since, until, span), open) = self
            .admit(&request, QueryCall::ActorReport, r.context.as_ref(), || {
                if r.actor.is_empty() {
                    return Err(QueryError::InvalidArgument("actor is required".into()));
                }
                let (since, until) = time_bound(r.since_unix_nanos, r.until_unix_nanos)?;
                let filter = EntryFilter {
                    actor: Some(r.actor.clone()),
                    since,
                    until,
                    ..Default::default()
                };
                Ok((
                    (r.actor.clone(), since, until, logs.span(&r.origin)?),
                    json!({"filter": filter_json(&filter, &r.origin)}),
                ))
            })
            .await?;
        let origins: Vec<String> = match logs.many() {
            true => span.iter().map(|l| l.origin.clone()).collect(),
            false => Vec::new(),
        };
        let audit_seq = open.seq;
        self.unary(open, move || {
            let mut reports = Vec::new();
            for log in &span {
                let end = log.end(audit_seq)?;
                reports.push(actor_report(log.store.as_ref(), &actor, since, until, end)?);
            }
            let mut report = sum_reports(origins, reports);
            report.actor = actor;
            Ok(report)
        })
        .await
    }

    async fn list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<Self::ListAlertsStream>, Status> {
        let r = request.get_ref();
        let ((query, token), open) = self
            .admit(&request, QueryCall::ListAlerts, r.context.as_ref(), || {
                list_alerts_args(r)
            })
            .await?;
        // As a search: the log as it was when the first page was asked for.
        let (from, end) = token.map_or((query.from_seq, open.seq), |t| {
            (t.next.max(query.from_seq), t.end.min(open.seq))
        });
        // The alerts of the log the service writes: a hub's are its own findings.
        let own = self.shared.logs.own().clone();
        let origin = self.shared.logs.tag(&own);
        Ok(self.stream(open, move |sink| {
            list_alerts(own.store.as_ref(), &origin, &query, from, end, sink)
        }))
    }

    async fn review_alert(
        &self,
        request: Request<ReviewAlertRequest>,
    ) -> Result<Response<ReviewAlertResponse>, Status> {
        const CALL: QueryCall = QueryCall::ReviewAlert;
        let r = request.get_ref();
        let checked = self
            .check_call(&request, CALL, r.context.as_ref(), || review_alert_args(r))
            .await?;
        let (alert_seq, outcome) = checked.args.clone();
        // Only an alert can be reviewed; a refusal is logged like every other.
        let own = self.shared.logs.own().clone();
        let reviewable =
            tokio::task::spawn_blocking(move || check_reviewable(own.store.as_ref(), alert_seq))
                .await
                .unwrap_or_else(|e| Err(QueryError::Internal(format!("query worker failed: {e}"))));
        if let Err(e) = reviewable {
            return Err(self.refuse(&checked, CALL, e).await);
        }
        // The call's one entry is the review itself.
        let receipt = self
            .shared
            .trail
            .review(
                &checked.caller,
                &checked.purpose,
                CALL.name(),
                checked.args_json.to_string(),
                alert_seq,
                &outcome,
            )
            .await
            .map_err(|e| {
                tracing::error!(call = CALL.name(), error = %e, "alert review not written");
                to_status(&QueryError::LogUnavailable(e))
            })?;
        if let Some(m) = &self.shared.metrics {
            m.query_call(checked.purpose.purpose.label());
        }
        tracing::info!(
            call = CALL.name(),
            alert_seq,
            review_seq = receipt.seq,
            "alert reviewed"
        );
        let mut response = Response::new(ReviewAlertResponse {
            review_seq: receipt.seq,
            checkpoint_size: receipt.checkpoint_size,
        });
        set_audit_seq(&mut response, receipt.seq);
        Ok(response)
    }

    async fn coverage_report(
        &self,
        request: Request<CoverageReportRequest>,
    ) -> Result<Response<CoverageReportResponse>, Status> {
        let r = request.get_ref();
        let logs = &self.shared.logs;
        let ((since, until, log), open) = self
            .admit(
                &request,
                QueryCall::CoverageReport,
                r.context.as_ref(),
                || {
                    let (since, until) = time_bound(r.since_unix_nanos, r.until_unix_nanos)?;
                    let filter = EntryFilter {
                        since,
                        until,
                        ..Default::default()
                    };
                    Ok((
                        (since, until, logs.one(&r.origin)?),
                        json!({"filter": filter_json(&filter, &r.origin)}),
                    ))
                },
            )
            .await?;
        let audit_seq = open.seq;
        self.unary(open, move || {
            let end = log.end(audit_seq)?;
            Ok(coverage_report(log.store.as_ref(), since, until, end)?)
        })
        .await
    }

    async fn export(
        &self,
        request: Request<ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        const CALL: QueryCall = QueryCall::Export;
        let r = request.get_ref();
        let max_entries = r.max_entries;
        let logs = &self.shared.logs;
        let mut checked = self
            .check_call(&request, CALL, r.context.as_ref(), || {
                let (filter, log) = filter_and_log(r.filter.as_ref(), logs)?;
                let mut args = json!({"filter": filter_json(&filter, &log.1)});
                if max_entries != 0 {
                    args["max_entries"] = json!(max_entries);
                }
                Ok(((filter, log.0), args))
            })
            .await?;
        let (filter, log) = checked.args.clone();
        if !log.own {
            let e = QueryError::FailedPrecondition(format!(
                "{:?} is a log this service reads but does not write; export at its sidecar \
                 (a bundle proves its own audit entry in the log it exports)",
                log.origin
            ));
            return Err(self.refuse(&checked, CALL, e).await);
        }
        // The result set is fixed before the opening entry, which commits to it: a bundle that
        // drops or adds an entry no longer matches its own audit entry. Nothing leaves yet.
        let reader = log.clone();
        let selected = tokio::task::spawn_blocking(move || {
            select_for_export(reader.store.as_ref(), &filter, max_entries)
        })
        .await
        .unwrap_or_else(|e| Err(QueryError::Internal(format!("query worker failed: {e}"))));
        let selected = match selected {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(call = CALL.name(), error = %e, "export selection failed; query refused");
                return Err(self.refuse(&checked, CALL, e).await);
            }
        };
        checked.args_json["before_seq"] = json!(selected.end);
        let commitment = selected.commitment();
        let (_, open) = self.open_call(checked, CALL, Some(commitment)).await?;
        let verifier = self.shared.verifier.clone();
        let (audit_seq, mut checkpoint_size) = (open.seq, open.checkpoint_size);
        if let Some((witness, wait)) = &self.shared.witness {
            match witness.witnessed_at_least(checkpoint_size, *wait).await {
                Some(witnessed) => checkpoint_size = witnessed,
                None => tracing::warn!(
                    seq = audit_seq,
                    size = checkpoint_size,
                    "export proves against a checkpoint without a witness quorum (none within the wait)"
                ),
            }
        }
        Ok(self.stream(open, move |sink| {
            export(
                log.store.as_ref(),
                &log.nodes,
                ExportPlan {
                    seqs: selected.seqs,
                    audit_seq,
                    checkpoint_size,
                    verifier: &verifier,
                },
                sink,
            )
        }))
    }

    async fn redact_values(
        &self,
        request: Request<RedactValuesRequest>,
    ) -> Result<Response<RedactValuesResponse>, Status> {
        use crate::log::entry::{Entry, Justification, Redaction, RedactionTarget};
        const CALL: QueryCall = QueryCall::RedactValues;
        let r = request.get_ref();
        let logs = &self.shared.logs;
        let mut checked = self
            .check_call(&request, CALL, r.context.as_ref(), || redact_args(r, logs))
            .await?;
        let log = checked.args.log.clone();
        if !log.own {
            let e = QueryError::FailedPrecondition(format!(
                "{:?} is a log this service reads but does not write: redact at the origin \
                 sidecar; the redaction entry replicates",
                log.origin
            ));
            return Err(self.refuse(&checked, CALL, e).await);
        }
        // As for exports, the set is fixed first and the opening entry commits to it.
        let (filter, most) = (checked.args.filter.clone(), checked.args.max_entries);
        let selected = tokio::task::spawn_blocking(move || {
            select_for_export(log.store.as_ref(), &filter, most + 1)
        })
        .await
        .unwrap_or_else(|e| Err(QueryError::Internal(format!("query worker failed: {e}"))))
        .and_then(|s| {
            if s.seqs.len() as u64 > most {
                Err(QueryError::FailedPrecondition(format!(
                    "more than {most} entries match; narrow the filter or split the redaction"
                )))
            } else {
                Ok(s)
            }
        });
        let selected = match selected {
            Ok(s) => s,
            Err(e) => return Err(self.refuse(&checked, CALL, e).await),
        };
        checked.args_json["before_seq"] = json!(selected.end);
        let (caller, purpose) = (checked.caller.actor(), checked.purpose.clone());
        let (args, open) = self
            .open_call(checked, CALL, Some(selected.commitment()))
            .await?;
        let runs = seq_runs(&selected.seqs);
        let result = if runs.is_empty() {
            Ok(RedactValuesResponse {
                entries: 0,
                redaction_seq: None,
                checkpoint_size: open.checkpoint_size,
            })
        } else {
            let fields: Vec<i32> = args.fields.iter().map(|f| *f as i32).collect();
            let entry = Entry {
                actor: Some(caller),
                justification: Some(Justification {
                    purpose_code: purpose.purpose.label().to_owned(),
                    text: String::new(),
                    case_reference: purpose.case_reference.clone(),
                }),
                answers_seq: Some(open.seq),
                redaction: Some(Redaction {
                    targets: runs
                        .into_iter()
                        .map(|(from_seq, to_seq)| RedactionTarget {
                            from_seq,
                            to_seq,
                            fields: fields.clone(),
                            index: None,
                        })
                        .collect(),
                    reason: args.reason,
                    detail: args.detail,
                    purpose: purpose.purpose as i32,
                }),
                ..Default::default()
            };
            match self.shared.trail.writer().redact(entry).await {
                Ok(receipt) => Ok(RedactValuesResponse {
                    entries: selected.seqs.len() as u64,
                    redaction_seq: Some(receipt.seq),
                    checkpoint_size: receipt.checkpoint_size,
                }),
                Err(crate::ingest::AppendError::Redaction(why)) => {
                    Err(QueryError::FailedPrecondition(why))
                }
                Err(e) => Err(QueryError::LogUnavailable(e)),
            }
        };
        let (code, reason, n) = match &result {
            Ok(r) => (Code::Ok, "", r.entries),
            Err(e) => (e.code(), e.reason(), 0),
        };
        if let Err(e) = self
            .shared
            .trail
            .close(&open, n, code as i32 as u32, reason)
            .await
        {
            tracing::error!(call = CALL.name(), audit_seq = open.seq, error = %e, "closing audit entry not written");
            return Err(to_status(&QueryError::LogUnavailable(e)));
        }
        tracing::info!(call = CALL.name(), audit_seq = open.seq, code = ?code, entries = n, "query closed");
        let mut response = Response::new(result.map_err(|e| to_status(&e))?);
        set_audit_seq(&mut response, open.seq);
        Ok(response)
    }
}

/// Reasons a caller may give for `RedactValues` (`retention` is the sidecar's own).
pub const REDACTION_REASONS: [&str; 3] = ["correction", "court-order", "erasure-request"];

/// Longest `RedactValues` detail text.
pub const MAX_REDACTION_DETAIL: usize = 200;

/// `RedactValues`' parsed arguments.
struct RedactArgs {
    filter: EntryFilter,
    /// The log to redact (only the log the service writes can be).
    log: Arc<Log>,
    fields: Vec<crate::log::entry::PersonalField>,
    reason: String,
    detail: String,
    max_entries: u64,
}

fn redact_args(r: &RedactValuesRequest, logs: &Logs) -> Result<(RedactArgs, Value), QueryError> {
    use crate::log::entry::PersonalField;
    let invalid = |m: String| Err(QueryError::InvalidArgument(m));
    let (filter, (log, origin)) = filter_and_log(r.filter.as_ref(), logs)?;
    if filter == EntryFilter::default() {
        return invalid("a redaction needs a filter with at least one criterion".into());
    }
    if !REDACTION_REASONS.contains(&r.reason.as_str()) {
        return invalid(format!(
            "reason must be one of {}",
            REDACTION_REASONS.join(", ")
        ));
    }
    if r.detail.chars().count() > MAX_REDACTION_DETAIL || r.detail.chars().any(char::is_control) {
        return invalid(format!(
            "detail must be at most {MAX_REDACTION_DETAIL} characters, without control characters"
        ));
    }
    let mut fields = Vec::new();
    for f in &r.fields {
        match PersonalField::from_label(f) {
            Some(p) if p != PersonalField::Unspecified => fields.push(p),
            _ => {
                return invalid(format!(
                    "{f:?} is not a personal field (see docs/format.md)"
                ));
            }
        }
    }
    let most = crate::ingest::MAX_REDACTED_ENTRIES;
    let max_entries = match r.max_entries {
        0 => most,
        n if n > most => return invalid(format!("max_entries must be at most {most}")),
        n => n,
    };
    let args = json!({
        "filter": filter_json(&filter, &origin),
        "fields": fields.iter().map(|f| f.label()).collect::<Vec<_>>(),
        "reason": r.reason,
        "max_entries": max_entries,
    });
    Ok((
        RedactArgs {
            filter,
            log,
            fields,
            reason: r.reason.clone(),
            detail: r.detail.clone(),
            max_entries,
        },
        args,
    ))
}

/// Ascending seqs as the fewest `from..=to` runs.
fn seq_runs(seqs: &[u64]) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &s in seqs {
        match runs.last_mut() {
            Some((_, to)) if to.checked_add(1) == Some(s) => *to = s,
            _ => runs.push((s, s)),
        }
    }
    runs
}

/// What a call passed steps (1)–(2) with.
struct Checked<A> {
    caller: Caller,
    purpose: StatedPurpose,
    args: A,
    args_json: Value,
}

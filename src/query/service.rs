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
//! Application logs carry call names, seqs and status codes only: never subject ids, auditor
//! names, case references or filters. Must not import hyper-level proxy code or RocksDB.

use super::actor_report::actor_report;
use super::alerts::{AlertQuery, REVIEW_OUTCOMES, check_reviewable, list_alerts};
use super::audit::{AuditTrail, OpenCall};
use super::auth::{Auditors, Caller, PeerInfo, Refusal};
use super::coverage::coverage_report;
use super::error::{QueryError, to_status};
use super::export::{ExportPlan, ResultCommitment, export, select_for_export};
use super::nodes::{CachedNodes, NodeCache, proof_bytes, proof_error};
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
use super::report::subject_report;
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
    store: Arc<dyn Store>,
    /// Upper tree levels, shared by every proof this service builds.
    nodes: NodeCache,
    trail: AuditTrail,
    auditors: Auditors,
    verifier: VerifierKey,
    metrics: Option<Arc<crate::admin::Metrics>>,
    /// With `[witness]`: exports wait (bounded) for a witnessed checkpoint.
    witness: Option<(crate::witness::client::WitnessHandle, std::time::Duration)>,
}

/// The service over one log. Cheap to clone.
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
        QueryService {
            shared: Arc::new(Shared {
                store,
                nodes: NodeCache::new(),
                trail: AuditTrail::new(writer),
                auditors,
                verifier,
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
        let (args, args_json) = match parse() {
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
        work: impl FnOnce(&dyn Store, &NodeCache) -> Result<R, QueryError> + Send + 'static,
    ) -> Result<Response<R>, Status> {
        let shared = self.shared.clone();
        let result =
            tokio::task::spawn_blocking(move || work(shared.store.as_ref(), &shared.nodes))
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
        work: impl FnOnce(&dyn Store, &NodeCache, &mut dyn Sink<T>) -> Result<(), Stop> + Send + 'static,
    ) -> Response<Stream<T>> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let shared = self.shared.clone();
        let audit_seq = open.seq;
        tokio::spawn(async move {
            let producer = shared.clone();
            let producer_tx = tx.clone();
            let produced = tokio::task::spawn_blocking(move || {
                let mut sink = ChannelSink {
                    tx: producer_tx,
                    results: 0,
                };
                let r = work(producer.store.as_ref(), &producer.nodes, &mut sink);
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
pub(crate) fn logged(o: OpenedEntry) -> LoggedEntry {
    LoggedEntry {
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

/// A search's parsed arguments: filter, page size, where to resume.
type SearchArgs = (EntryFilter, u32, Option<PageToken>);

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

fn search_args(r: &SearchRequest) -> Result<(SearchArgs, Value), QueryError> {
    let filter = filter_from_pb(r.filter.as_ref())?;
    let page_size = page_size_arg(r.page_size)?;
    let token = page_token_arg(&r.page_token)?;
    let mut args = json!({"filter": filter.to_json(), "page_size": page_size});
    if !r.page_token.is_empty() {
        args["page_token"] = json!(r.page_token);
    }
    Ok(((filter, page_size, token), args))
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
        let ((filter, page_size, token), open) = self
            .admit(&request, QueryCall::Search, r.context.as_ref(), || {
                search_args(r)
            })
            .await?;
        // A search sees the log as it was when its first page was asked for.
        let (from, end) = token.map_or((0, open.seq), |t| (t.next, t.end.min(open.seq)));
        Ok(self.stream(open, move |store, _, sink| {
            let mut matches = Matches::new(store, filter, from, end)?;
            let mut returned = 0u64;
            let mut next_page_token = String::new();
            for m in matches.by_ref() {
                let opened = m?;
                if returned == u64::from(page_size) {
                    next_page_token = PageToken {
                        next: opened.seq,
                        end,
                    }
                    .encode();
                    break;
                }
                sink.result(SearchResponse {
                    item: Some(search_response::Item::Entry(logged(opened))),
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
        let ((), open) = self
            .admit(&request, QueryCall::GetEntry, r.context.as_ref(), || {
                Ok(((), json!({"seq": seq, "tree_size": size})))
            })
            .await?;
        self.unary(open, move |store, nodes| {
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
                inclusion_proof: proof_bytes(&CachedNodes::new(store, nodes), seq, size)?,
                entry: Some(logged(opened)),
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
        let ((), open) = self
            .admit(
                &request,
                QueryCall::LatestCheckpoint,
                r.context.as_ref(),
                || Ok(((), json!({}))),
            )
            .await?;
        let vkey = self.shared.verifier.to_vkey();
        self.unary(open, move |store, _| {
            let (_, note) = latest_size(store)?;
            Ok(CheckpointResponse {
                checkpoint: Some(checkpoint_pb(&note)?),
                verifier_key: vkey,
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
        let ((), open) = self
            .admit(
                &request,
                QueryCall::CheckpointAt,
                r.context.as_ref(),
                || Ok(((), json!({"size": size}))),
            )
            .await?;
        let vkey = self.shared.verifier.to_vkey();
        self.unary(open, move |store, _| {
            let note = store.checkpoint(size)?.ok_or_else(|| {
                QueryError::NotFound(format!("no checkpoint was signed at size {size}"))
            })?;
            Ok(CheckpointResponse {
                checkpoint: Some(checkpoint_pb(&note)?),
                verifier_key: vkey,
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
        let ((), open) = self
            .admit(
                &request,
                QueryCall::InclusionProof,
                r.context.as_ref(),
                || Ok(((), json!({"seq": seq, "tree_size": size}))),
            )
            .await?;
        self.unary(open, move |store, nodes| {
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
                proof: proof_bytes(&CachedNodes::new(store, nodes), seq, size)?,
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
        let ((), open) = self
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
                    Ok(((), json!({"old_size": old, "new_size": new})))
                },
            )
            .await?;
        self.unary(open, move |store, nodes| {
            let new = proof_size(store, new)?;
            if old > new {
                return Err(QueryError::OutOfRange(format!(
                    "old size {old} is larger than new size {new}"
                )));
            }
            let proof = consistency_proof(&CachedNodes::new(store, nodes), old, new)
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
        let ((subject, since, until), open) = self
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
                        (r.subject.clone(), since, until),
                        json!({"filter": filter.to_json()}),
                    ))
                },
            )
            .await?;
        let end = open.seq;
        Ok(self.stream(open, move |store, _, sink| {
            subject_report(store, &subject, since, until, end, sink)
        }))
    }

    async fn actor_report(
        &self,
        request: Request<ActorReportRequest>,
    ) -> Result<Response<ActorReportResponse>, Status> {
        let r = request.get_ref();
        let ((actor, since, until), open) = self
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
                    (r.actor.clone(), since, until),
                    json!({"filter": filter.to_json()}),
                ))
            })
            .await?;
        let end = open.seq;
        self.unary(open, move |store, _| {
            Ok(actor_report(store, &actor, since, until, end)?)
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
        Ok(self.stream(open, move |store, _, sink| {
            list_alerts(store, &query, from, end, sink)
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
        let store = self.shared.store.clone();
        let reviewable =
            tokio::task::spawn_blocking(move || check_reviewable(store.as_ref(), alert_seq))
                .await
                .unwrap_or_else(|e| Err(QueryError::Internal(format!("query worker failed: {e}"))));
        if let Err(e) = reviewable {
            tracing::warn!(
                call = CALL.name(),
                alert_seq,
                reason = e.reason(),
                "review refused"
            );
            self.deny(
                checked.caller.actor(),
                e.reason(),
                CALL.name(),
                Some(&checked.purpose),
            )
            .await?;
            return Err(to_status(&e));
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
        let ((since, until), open) = self
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
                    Ok(((since, until), json!({"filter": filter.to_json()})))
                },
            )
            .await?;
        let end = open.seq;
        self.unary(open, move |store, _| {
            Ok(coverage_report(store, since, until, end)?)
        })
        .await
    }

    async fn export(
        &self,
        request: Request<ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let r = request.get_ref();
        let max_entries = r.max_entries;
        let mut checked = self
            .check_call(&request, QueryCall::Export, r.context.as_ref(), || {
                let filter = filter_from_pb(r.filter.as_ref())?;
                let mut args = json!({"filter": filter.to_json()});
                if max_entries != 0 {
                    args["max_entries"] = json!(max_entries);
                }
                Ok((filter, args))
            })
            .await?;
        // The result set is fixed before the opening entry, which commits to it: a bundle that
        // drops or adds an entry no longer matches its own audit entry. Nothing leaves yet.
        let store = self.shared.store.clone();
        let filter = checked.args.clone();
        let selected = tokio::task::spawn_blocking(move || {
            select_for_export(store.as_ref(), &filter, max_entries)
        })
        .await
        .unwrap_or_else(|e| Err(QueryError::Internal(format!("query worker failed: {e}"))));
        let selected = match selected {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(call = "Export", error = %e, "export selection failed; query refused");
                self.deny(
                    checked.caller.actor(),
                    e.reason(),
                    "Export",
                    Some(&checked.purpose),
                )
                .await?;
                return Err(to_status(&e));
            }
        };
        checked.args_json["before_seq"] = json!(selected.end);
        let commitment = selected.commitment();
        let (_, open) = self
            .open_call(checked, QueryCall::Export, Some(commitment))
            .await?;
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
        Ok(self.stream(open, move |store, nodes, sink| {
            export(
                store,
                nodes,
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
        let mut checked = self
            .check_call(&request, CALL, r.context.as_ref(), || redact_args(r))
            .await?;
        // As for exports, the set is fixed first and the opening entry commits to it.
        let store = self.shared.store.clone();
        let (filter, most) = (checked.args.filter.clone(), checked.args.max_entries);
        let selected = tokio::task::spawn_blocking(move || {
            select_for_export(store.as_ref(), &filter, most + 1)
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
            Err(e) => {
                tracing::warn!(call = CALL.name(), reason = e.reason(), "redaction refused");
                self.deny(
                    checked.caller.actor(),
                    e.reason(),
                    CALL.name(),
                    Some(&checked.purpose),
                )
                .await?;
                return Err(to_status(&e));
            }
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
    fields: Vec<crate::log::entry::PersonalField>,
    reason: String,
    detail: String,
    max_entries: u64,
}

fn redact_args(r: &RedactValuesRequest) -> Result<(RedactArgs, Value), QueryError> {
    use crate::log::entry::PersonalField;
    let invalid = |m: String| Err(QueryError::InvalidArgument(m));
    let filter = filter_from_pb(r.filter.as_ref())?;
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
        "filter": filter.to_json(),
        "fields": fields.iter().map(|f| f.label()).collect::<Vec<_>>(),
        "reason": r.reason,
        "max_entries": max_entries,
    });
    Ok((
        RedactArgs {
            filter,
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

//! The auditor query service (DPA 2018 s62(4)/(5)): gRPC over its own TLS listener with required
//! client certificates, purpose-bound, role-checked and self-logging, with proofs, export bundles,
//! subject access, actor and coverage reports and alert review; plus the `s62 query` client.
//!
//! Job: let named auditors read the log lawfully and prove what they read. Every call is
//! identified by certificate, states a purpose and case reference, and has an `audit-query` entry
//! durable in the same log before any result leaves ([`service`]). Reads go through the [`Store`]
//! trait (read-only); the only writes are the service's own entries, through [`LogWriter`].
//!
//! Boundaries: this module must not import hyper-level proxy code or `rocksdb`; the planner,
//! report, alert and export producers ([`plan`], [`report`], [`actor_report`], [`coverage`],
//! [`alerts`], [`export`]) are synchronous code over the store trait, testable without a
//! runtime. The bundle file format is owned by [`crate::verify::bundle`].
//!
//! Wiring (from `app.rs`): [`QueryListener::bind`] at startup (binds, reads the TLS files: fails
//! early), then [`QueryListener::serve`] in a task until shutdown; [`serve_query`] does both;
//! [`serve_query_incoming`] serves any stream of connections (tests use in-memory duplex pipes).
//! The audit hub serves the same service over its copies of the logs it follows
//! ([`QueryListener::serve_logs`], [`serve_logs_incoming`]; see [`logs`]).

pub mod actor_report;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod client;
pub mod coverage;
pub mod csv;
pub mod error;
pub mod export;
pub mod logs;
pub mod nodes;
pub mod plan;
pub mod purpose;
pub mod report;
pub mod report_output;
pub mod service;
pub mod sink;
pub mod tls;

/// Messages and the tonic client/server generated from `proto/s62/query/v1/query.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("s62.query.v1");
}

/// The encoded `FileDescriptorSet` of the query API and the entry schema it imports, served by
/// gRPC reflection (`$OUT_DIR/s62_query_descriptor.bin`, written by `build.rs`).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("s62_query_descriptor");

pub use auth::{Auditors, PeerInfo};
pub use error::{QueryError, to_status};
pub use logs::{QueryLogs, ServedLog};
pub use service::{AUDIT_SEQ_HEADER, QueryService};
pub use tls::{Connection, ServeError};

use crate::config::QueryConfig;
use crate::ingest::LogWriter;
use crate::log::checkpoint::Checkpoint;
use crate::log::entry::{EntryKind, Operation};
use crate::log::note::{VerifierKey, parse_note};
use crate::log::store::Store;
use plan::EntryFilter;
use std::future::Future;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::Stream;

/// Calls one connection may have in flight.
pub const CALLS_PER_CONNECTION: usize = 16;

/// The query listener, bound and configured but not yet serving: everything that can fail at
/// startup (binding the address, reading the certificate, key and client CA) has been done, so
/// `s62 serve` can refuse to start instead of failing later in a background task.
pub struct QueryListener {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    auditors: Auditors,
    metrics: Option<Arc<crate::admin::Metrics>>,
    witness: Option<(crate::witness::client::WitnessHandle, std::time::Duration)>,
}

impl QueryListener {
    /// Binds `cfg.address` and loads the TLS material.
    pub async fn bind(cfg: &QueryConfig) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(cfg.address)
            .await
            .map_err(|source| ServeError::Bind {
                address: cfg.address,
                source,
            })?;
        Self::from_listener(listener, cfg)
    }

    /// Uses an already-bound listener (tests bind port 0) and loads the TLS material.
    pub fn from_listener(listener: TcpListener, cfg: &QueryConfig) -> Result<Self, ServeError> {
        Ok(QueryListener {
            listener,
            tls: tls::server_config(cfg)?,
            auditors: Auditors::with_roles(cfg.auditors.clone(), cfg.roles.clone()),
            metrics: None,
            witness: None,
        })
    }

    /// Counts calls by purpose in the admin listener's metrics.
    pub fn with_metrics(mut self, metrics: Arc<crate::admin::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Exports wait up to `wait` for a witnessed checkpoint covering their audit entry and prove
    /// against it (see [`QueryService::with_witness`]).
    pub fn with_witness(
        mut self,
        witness: crate::witness::client::WitnessHandle,
        wait: std::time::Duration,
    ) -> Self {
        self.witness = Some((witness, wait));
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains the calls in flight.
    ///
    /// `store` is read; `writer` appends the service's audit entries to the same log; `verifier`
    /// is the log's public key (`SignerKey::verifier()`), handed out with checkpoints and exports.
    pub async fn serve(
        self,
        store: Arc<dyn Store>,
        writer: LogWriter,
        verifier: VerifierKey,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let logs = QueryLogs::single(writer.origin().to_owned(), store, verifier);
        self.serve_logs(logs, writer, shutdown).await
    }

    /// Serves `logs` (an audit hub's copies and its own log) until `shutdown` completes; `writer`
    /// appends the service's audit entries (and the TLS refusals) to the log `logs` names as its
    /// own.
    pub async fn serve_logs(
        self,
        logs: QueryLogs,
        writer: LogWriter,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let trail = audit::AuditTrail::new(writer.clone());
        let (incoming, accept) = tls::accept_loop(self.listener, self.tls, trail);
        let service = QueryService::over(logs, writer, self.auditors);
        let service = match self.metrics {
            Some(m) => service.with_metrics(m),
            None => service,
        };
        let service = match self.witness {
            Some((w, wait)) => service.with_witness(w, wait),
            None => service,
        };
        let result = serve_service(incoming, service, shutdown).await;
        accept.abort();
        result
    }
}

/// [`QueryListener::bind`] then [`QueryListener::serve`].
pub async fn serve_query(
    cfg: &QueryConfig,
    store: Arc<dyn Store>,
    writer: LogWriter,
    verifier: VerifierKey,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    QueryListener::bind(cfg)
        .await?
        .serve(store, writer, verifier, shutdown)
        .await
}

/// [`QueryListener::from_listener`] then [`QueryListener::serve`].
pub async fn serve_query_on(
    listener: TcpListener,
    cfg: &QueryConfig,
    store: Arc<dyn Store>,
    writer: LogWriter,
    verifier: VerifierKey,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    QueryListener::from_listener(listener, cfg)?
        .serve(store, writer, verifier, shutdown)
        .await
}

/// Serves the query service (with health and reflection) over any stream of connections, each
/// carrying the [`PeerInfo`] its transport established. The caller is responsible for that
/// identity: [`serve_query_on`] passes only TLS-verified certificate chains.
pub async fn serve_query_incoming<S, IO>(
    incoming: S,
    auditors: Auditors,
    store: Arc<dyn Store>,
    writer: LogWriter,
    verifier: VerifierKey,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError>
where
    S: Stream<Item = Result<Connection<IO>, std::io::Error>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let logs = QueryLogs::single(writer.origin().to_owned(), store, verifier);
    serve_logs_incoming(incoming, auditors, logs, writer, shutdown).await
}

/// [`serve_query_incoming`] over several logs (an audit hub's; see [`QueryLogs::hub`]).
pub async fn serve_logs_incoming<S, IO>(
    incoming: S,
    auditors: Auditors,
    logs: QueryLogs,
    writer: LogWriter,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError>
where
    S: Stream<Item = Result<Connection<IO>, std::io::Error>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_service(
        incoming,
        QueryService::over(logs, writer, auditors),
        shutdown,
    )
    .await
}

async fn serve_service<S, IO>(
    incoming: S,
    service: QueryService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError>
where
    S: Stream<Item = Result<Connection<IO>, std::io::Error>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::audit_query_server::AuditQueryServer<QueryService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    tracing::info!("auditor query service serving");
    tonic::transport::Server::builder()
        // An auditor's client needs a handful of calls at once; this bounds what one connection
        // can hold open (each streaming call holds a blocking worker while it produces).
        .concurrency_limit_per_connection(CALLS_PER_CONNECTION)
        // The auditor's web console: its embedded files, and gRPC-Web for the same services.
        .layer(crate::console::ConsoleLayer)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pb::audit_query_server::AuditQueryServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(ServeError::Transport)
}

/// A stored signed checkpoint note as the wire's `Checkpoint` (its body fields parsed out).
pub(crate) fn checkpoint_pb(note: &str) -> Result<pb::Checkpoint, QueryError> {
    let text = parse_note(note)
        .map_err(|e| QueryError::Inconsistent(format!("a stored checkpoint is not a note: {e}")))?
        .text;
    let cp = Checkpoint::parse_text(&text).map_err(|e| {
        QueryError::Inconsistent(format!("a stored checkpoint does not parse: {e}"))
    })?;
    Ok(pb::Checkpoint {
        note: note.to_owned(),
        origin: cp.origin,
        size: cp.size,
        root_hash: cp.root.0.to_vec(),
    })
}

/// `[since, until)` from the wire (0 = unbounded), refusing an empty or inverted range.
pub(crate) fn time_bound(since: i64, until: i64) -> Result<(Option<i64>, Option<i64>), QueryError> {
    let since = (since != 0).then_some(since);
    let until = (until != 0).then_some(until);
    if let (Some(s), Some(u)) = (since, until)
        && u <= s
    {
        return Err(QueryError::InvalidArgument(
            "until must be later than since".into(),
        ));
    }
    Ok((since, until))
}

/// The wire filter as a planner filter: empty strings and UNSPECIFIED enums mean "any".
pub(crate) fn filter_from_pb(f: Option<&pb::Filter>) -> Result<EntryFilter, QueryError> {
    let Some(f) = f else {
        return Ok(EntryFilter::default());
    };
    let text = |s: &String| (!s.is_empty()).then(|| s.clone());
    let operation = match Operation::try_from(f.operation) {
        Ok(Operation::Unspecified) => None,
        Ok(op) => Some(op),
        Err(_) => {
            return Err(QueryError::InvalidArgument(format!(
                "unknown operation {}",
                f.operation
            )));
        }
    };
    let kind = match EntryKind::try_from(f.kind) {
        Ok(EntryKind::Unspecified) => None,
        Ok(k) => Some(k),
        Err(_) => {
            return Err(QueryError::InvalidArgument(format!(
                "unknown entry kind {}",
                f.kind
            )));
        }
    };
    let (since, until) = time_bound(f.since_unix_nanos, f.until_unix_nanos)?;
    Ok(EntryFilter {
        actor: text(&f.actor),
        subject: text(&f.subject),
        record: text(&f.record),
        recipient: text(&f.recipient),
        operation,
        kind,
        route: text(&f.route),
        case_reference: text(&f.case_reference),
        purpose: text(&f.purpose),
        since,
        until,
    })
}

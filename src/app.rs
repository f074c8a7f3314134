//! Wiring: a checked [`Config`] → the RocksDB log folder → the group-commit writer → the proxy on
//! its listener (and the admin listener and checkpoint publication when configured); and an orderly stop (stop accepting, let requests in flight finish and log their
//! outcomes, then drain the writer's queue).
//!
//! The only place that chooses a store backend for the running service. Must not contain request
//! logic (that is [`crate::proxy`]) or log-format logic (that is [`crate::log`]).

use crate::admin::{self, AdminState, Check};
use crate::config::{Config, LoadError};
use crate::ingest::{
    AppendError, KeptCheckpoint, LatestCheckpoint, LogWriter, OpenError, WriterConfig, WriterTask,
};
use crate::keys::KeyFileError;
#[cfg(feature = "rocksdb")]
use crate::keys::read_signer;
use crate::log::checkpoint::Checkpoint;
use crate::log::entry::admin_entry;
use crate::log::note::SignerKey;
use crate::log::note::parse_note;
#[cfg(feature = "rocksdb")]
use crate::log::store::rocks::RocksStore;
use crate::log::store::{Store, StoreError};
use crate::proxy::{Proxy, ProxySettings, SetupError};
use crate::witness::client::WitnessClient;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The config file could not be read or has problems (each listed with its key path).
    #[error(transparent)]
    Config(#[from] LoadError),
    /// Files the config names are missing.
    #[error("the configuration names files that are not there:\n{0}")]
    Files(String),
    /// The signing key file could not be read, is readable by others, or does not parse.
    #[error("log.key_file: {0}")]
    Key(#[from] KeyFileError),
    /// The log folder could not be opened.
    #[error("log.data_dir {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    /// The log folder is inconsistent, or holds another log.
    #[error(transparent)]
    Writer(#[from] OpenError),
    /// The proxy could not be set up (TLS material, upstream).
    #[error(transparent)]
    Proxy(#[from] SetupError),
    /// A listener could not be bound.
    #[error("{what} {address}: {source}")]
    Bind {
        /// The config key (`listen.address`, `admin.address`).
        what: &'static str,
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The startup entry could not be written: the log is not writable, so nothing is served.
    #[error("the audit log is not writable: {0}")]
    Log(#[from] AppendError),
    /// The auditor query listener could not be set up (address, TLS files, auditors).
    #[error("query: {0}")]
    Query(#[from] crate::query::ServeError),
    /// A witness has seen more of this log than the folder holds, or finds it inconsistent.
    #[error("witness: {0}")]
    Witness(#[from] crate::witness::client::StartRefusal),
    /// `[retention]` is set but cannot be applied to this log.
    #[error("retention: {0}")]
    Retention(#[from] crate::retention::RetentionError),
    /// The async runtime could not be started.
    #[error("could not start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The latest published checkpoint cannot be read: the writer could not check it is not
    /// behind it, so it does not start.
    #[error("admin.checkpoint_dir: {path}: {why}")]
    Published { path: PathBuf, why: String },
}

/// Writer settings from the config. The latest checkpoint published to `admin.checkpoint_dir`
/// becomes a kept checkpoint: the writer refuses a folder behind it or forked from it.
pub fn writer_config(cfg: &Config) -> Result<WriterConfig, AppError> {
    let mut kept = Vec::new();
    if let Some(dir) = cfg.admin.as_ref().and_then(|a| a.checkpoint_dir.as_ref()) {
        kept.extend(published_checkpoint(dir, &cfg.log.origin)?);
    }
    Ok(WriterConfig {
        origin: cfg.log.origin.clone(),
        queue_capacity: cfg.log.queue_capacity,
        queue_wait: cfg.log.queue_wait,
        max_batch: cfg.log.max_batch,
        kept,
        cadence: crate::ingest::Cadence {
            interval: cfg.log.checkpoint_interval,
            max_entries: cfg.log.checkpoint_max_entries,
            ..crate::ingest::Cadence::default()
        },
        ..WriterConfig::new(cfg.log.origin.clone())
    })
}

/// The latest checkpoint in the publication folder, if there is one. Its signature is not
/// checked here (it may be an earlier key's): it is only ever a reason to refuse to start.
fn published_checkpoint(dir: &Path, origin: &str) -> Result<Option<KeptCheckpoint>, AppError> {
    let path = dir.join(admin::LATEST_CHECKPOINT);
    let note = match std::fs::read_to_string(&path) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AppError::Published {
                path,
                why: e.to_string(),
            });
        }
    };
    let cp = parse_note(&note)
        .map_err(|e| e.to_string())
        .and_then(|n| Checkpoint::parse_text(&n.text).map_err(|e| e.to_string()))
        .map_err(|why| AppError::Published {
            path: path.clone(),
            why,
        })?;
    if cp.origin != origin {
        return Err(AppError::Published {
            path,
            why: format!(
                "it is a checkpoint of {:?}, not of this log ({origin:?})",
                cp.origin
            ),
        });
    }
    Ok(Some(KeptCheckpoint {
        place: format!("admin.checkpoint_dir ({})", path.display()),
        size: cp.size,
        root: Some(cp.root),
    }))
}

/// `s62 serve --config FILE`: checks the config (every problem at once, before anything listens),
/// then serves until ctrl-c or SIGTERM and stops in order.
#[cfg(feature = "rocksdb")]
pub fn serve(config_path: &Path) -> Result<(), AppError> {
    let cfg = Config::load(config_path)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(AppError::Runtime)?
        .block_on(serve_config(cfg))
}

/// Serves a loaded config until ctrl-c or SIGTERM.
#[cfg(feature = "rocksdb")]
pub async fn serve_config(cfg: Config) -> Result<(), AppError> {
    let missing = cfg.check_files();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|p| format!("  {p}")).collect();
        return Err(AppError::Files(list.join("\n")));
    }
    let key = read_signer(&cfg.log.key_file)?;
    let store = RocksStore::open(&cfg.log.data_dir).map_err(|source| AppError::Store {
        path: cfg.log.data_dir.clone(),
        source,
    })?;
    let listener = TcpListener::bind(cfg.listen.address)
        .await
        .map_err(|source| AppError::Bind {
            what: "listen.address",
            address: cfg.listen.address,
            source,
        })?;
    let shutdown = async {
        stop_signal().await;
        // A second signal ends the process at once. Nothing acknowledged is lost: every response
        // released so far had its outcome entry durable first.
        tokio::spawn(async {
            stop_signal().await;
            tracing::warn!("second stop signal: exiting without draining");
            std::process::exit(130);
        });
    };
    run(&cfg, Arc::new(store), key, listener, shutdown).await
}

/// Operational logs to stderr for every command: `RUST_LOG` tunes them (default info: lifecycle,
/// denials, failures; debug adds a line per intent and outcome), `S62_LOG_FORMAT=json` makes them
/// JSON lines. They carry seqs, request ids, routes and statuses only — never personal data.
pub fn init_tracing() {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_filter())
        .with_writer(std::io::stderr);
    let _ = if json_tracing() {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}

/// As [`init_tracing`], but into `file` (created or truncated) instead of stderr: for `s62 demo`,
/// whose terminal output is its story, not the sidecar's operational log.
pub fn init_tracing_to_file(file: &Path) -> std::io::Result<()> {
    let out = std::sync::Mutex::new(std::fs::File::create(file)?);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_filter())
        .with_writer(out)
        .with_ansi(false);
    let _ = if json_tracing() {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}

/// `RUST_LOG`, or `info`.
fn tracing_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// `S62_LOG_FORMAT=json`.
fn json_tracing() -> bool {
    std::env::var("S62_LOG_FORMAT").is_ok_and(|f| f == "json")
}

/// Runs the proxy over `store` on `listener` until `shutdown` completes, with the admin listener
/// and checkpoint publication when `[admin]` is configured. Writes `started` and `stopped` admin
/// entries; fails before serving if the log cannot be written.
pub async fn run(
    cfg: &Config,
    store: Arc<dyn Store>,
    key: SignerKey,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let mut settings = ProxySettings::from_config(cfg)?;
    let admin_listener = match &cfg.admin {
        None => None,
        Some(a) => Some(
            TcpListener::bind(a.address)
                .await
                .map_err(|source| AppError::Bind {
                    what: "admin.address",
                    address: a.address,
                    source,
                })?,
        ),
    };
    // Bound (and its TLS files loaded) before anything is served, so a bad setup stops startup.
    let query = match &cfg.query {
        Some(q) => Some(crate::query::QueryListener::bind(q).await?),
        None => None,
    };
    let verifier = key.verifier();
    // Witnesses first: a folder behind what a witness cosigned (rolled back, cut) or inconsistent
    // with it (rewritten) is refused before anything is appended.
    let witness = match &cfg.witness {
        Some(w) => {
            let mut client = WitnessClient::new(w, store.clone(), settings.metrics.clone());
            client.check_at_start().await?;
            let handle = client.handle();
            Some((client, handle, w.export_wait))
        }
        None => None,
    };
    if cfg.retention.is_some() {
        crate::retention::check_format(&*store)?;
    }
    let (writer, task) = LogWriter::start(store.clone(), key, writer_config(cfg)?)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut side = JoinSet::new();
    let mut witness_check = None;
    let mut cosigned = None;
    let mut query = query;
    if let Some((client, handle, export_wait)) = witness {
        witness_check = Some(handle.readiness_check());
        cosigned = Some(handle.cosignatures_stored());
        query = query.map(|q| q.with_witness(handle, export_wait));
        side.spawn(client.run(
            writer.checkpoints(),
            writer.clone(),
            stopped(stop_rx.clone()),
        ));
    }
    if let Some(r) = &cfg.retention {
        side.spawn(crate::retention::run(
            r.clone(),
            store.clone(),
            writer.clone(),
            settings.metrics.retention.clone(),
            stopped(stop_rx.clone()),
        ));
    }
    spawn_watchers(cfg, &settings, &store, &writer, &stop_rx, &mut side)?;
    let mut replication_check = None;
    if let Some(r) = &cfg.replicate {
        let gate = crate::replicate::ReplicationGate::new(r.sync_timeout);
        replication_check = Some(gate.readiness_check(r.max_lag));
        if r.mode == crate::config::ReplicateMode::Sync {
            settings.replication = Some(gate.clone());
        }
        side.spawn(crate::replicate::run(
            r.clone(),
            cfg.log.origin.clone(),
            store.clone(),
            writer.committed(),
            cosigned,
            gate,
            settings.metrics.replication.clone(),
            stopped(stop_rx.clone()),
        ));
    }
    if let Some(q) = query {
        let q = q.with_metrics(settings.metrics.clone());
        let (store, writer, stop) = (store.clone(), writer.clone(), stopped(stop_rx.clone()));
        side.spawn(async move {
            if let Err(e) = q.serve(store, writer, verifier, stop).await {
                tracing::error!(error = %e, "query listener stopped");
            }
        });
    }
    if let (Some(a), Some(l)) = (&cfg.admin, admin_listener) {
        let mut state = admin_state(cfg, writer.clone(), store, settings.metrics.clone());
        if let Some(check) = witness_check {
            state = state.with_check(check);
        }
        if let Some(check) = replication_check {
            state = state.with_check(check);
        }
        side.spawn(admin::serve_admin(
            l,
            Arc::new(state),
            stopped(stop_rx.clone()),
        ));
        if let Some(dir) = &a.checkpoint_dir {
            side.spawn(publish_checkpoints(
                writer.checkpoints(),
                dir.clone(),
                stopped(stop_rx.clone()),
            ));
        }
    }
    let result = run_with(settings, writer, task, listener, shutdown).await;
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(10), async {
        while side.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("admin listener did not stop in time");
    }
    result
}

/// The alert delivery task's progress file, in the log folder.
pub const ALERT_DELIVERY_STATE: &str = "alert-delivery.json";

/// Starts the tasks that watch the committed log, each until `stop` turns true: the compliance
/// watch (erasure checks and zombie alerts) when an erasure rule has `verify_with`, and the misuse
/// rules when `[alerts]` has any, and alert delivery when `[alerts]` names a webhook or syslog.
/// None of them is on a request's path.
pub fn spawn_watchers(
    cfg: &Config,
    settings: &ProxySettings,
    store: &Arc<dyn Store>,
    writer: &LogWriter,
    stop: &watch::Receiver<bool>,
    side: &mut JoinSet<()>,
) -> Result<(), AppError> {
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let probes: crate::compliance::ProbeRoutes = cfg
        .routes
        .rules
        .iter()
        .filter_map(|r| r.erasure_probe.clone().map(|p| (r.name.clone(), p)))
        .collect();
    if !probes.is_empty() {
        let upstream =
            crate::proxy::upstream::Upstream::new(&settings.upstream).map_err(SetupError::from)?;
        side.spawn(crate::compliance::run(
            probes,
            store.clone(),
            writer.clone(),
            Arc::new(upstream),
            settings.metrics.compliance.clone(),
            stopped(stop.clone()),
        ));
    }
    if let Some(a) = cfg.alerts.as_ref().filter(|a| !a.rules.is_empty()) {
        side.spawn(crate::alerts::run(
            a.clone(),
            store.clone(),
            writer.clone(),
            crate::ingest::Clock::system(),
            settings.metrics.alerts.clone(),
            stopped(stop.clone()),
        ));
    }
    if let Some(a) = cfg.alerts.as_ref().filter(|a| !a.sinks.is_empty()) {
        let delivery = crate::alerts::deliver::run(
            a.sinks.clone(),
            cfg.log.origin.clone(),
            store.clone(),
            writer.checkpoints(),
            cfg.log.data_dir.join(ALERT_DELIVERY_STATE),
            settings.metrics.delivery.clone(),
            stopped(stop.clone()),
        );
        side.spawn(async move {
            if let Err(e) = delivery.await {
                tracing::error!(error = format!("{e:#}"), "alert delivery did not start");
            }
        });
    }
    Ok(())
}

/// Name of the readiness check [`admin_state`] registers on the records system.
pub const UPSTREAM_CHECK: &str = "upstream_reachable";

/// The admin listener's state as `s62 serve` builds it: `/readyz` checks that the log is writable
/// (built in: the last commit, which includes signing its checkpoint, succeeded) and that the
/// records system accepts a TCP connection within `upstream.connect_timeout`. The upstream check
/// is TCP only, not an HTTP request: a records system that accepts connections but answers 5xx
/// still counts as reachable (its answers show in `s62_upstream_requests_total`). There is no
/// separate key check: `s62 serve` does not start without a readable signing key.
pub fn admin_state(
    cfg: &Config,
    writer: LogWriter,
    store: Arc<dyn Store>,
    metrics: Arc<crate::admin::Metrics>,
) -> AdminState {
    AdminState::new(writer, store, metrics).with_check(Check::tcp_connect(
        UPSTREAM_CHECK,
        upstream_authority(cfg),
        cfg.upstream.connect_timeout,
    ))
}

/// `host:port` of the upstream, for the readiness check.
fn upstream_authority(cfg: &Config) -> String {
    let url = &cfg.upstream.url;
    let port = url
        .port_u16()
        .unwrap_or(if cfg.upstream.is_https() { 443 } else { 80 });
    format!("{}:{port}", url.host().unwrap_or("localhost"))
}

/// Writes every new signed checkpoint to `dir` (see [`admin::publish_checkpoint`]) until `stop`.
async fn publish_checkpoints(
    mut latest: watch::Receiver<LatestCheckpoint>,
    dir: PathBuf,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let current = latest.borrow_and_update().clone();
        if let Some((size, note)) = current {
            let dir = dir.clone();
            match tokio::task::spawn_blocking(move || admin::publish_checkpoint(&dir, size, &note))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(size, error = %e, "checkpoint not published"),
                Err(e) => tracing::error!(error = %e, "checkpoint publication task failed"),
            }
        }
        tokio::select! {
            changed = latest.changed() => if changed.is_err() { break },
            () = &mut stop => break,
        }
    }
}

/// Runs a proxy with ready-made settings and writer; used by [`run`], tests and the demo.
pub async fn run_with(
    settings: ProxySettings,
    writer: LogWriter,
    task: WriterTask,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let proxy = match Proxy::new(settings, writer.clone()) {
        Ok(p) => p,
        Err(e) => {
            task.shutdown_async().await;
            return Err(e.into());
        }
    };
    if let Err(e) = writer
        .append(admin_entry(
            "started",
            &format!("proxy listening on {address}"),
        ))
        .await
    {
        task.shutdown_async().await;
        return Err(e.into());
    }
    tracing::info!(%address, origin = writer.origin(), "s62 proxy serving");
    proxy.serve(listener, shutdown).await;
    if let Err(e) = writer
        .append(admin_entry("stopped", "orderly shutdown"))
        .await
    {
        tracing::error!(error = %e, "could not log the stop");
    }
    let stats = writer.stats();
    let batches = stats.batches.load(Ordering::Relaxed).max(1);
    let entries = stats.entries.load(Ordering::Relaxed);
    tracing::info!(
        entries,
        batches,
        mean_batch = entries / batches,
        mean_commit_us = stats.commit_nanos.load(Ordering::Relaxed) / batches / 1000,
        failed_batches = stats.failed_batches.load(Ordering::Relaxed),
        inline_batches = stats.inline_batches.load(Ordering::Relaxed),
        "log writer totals"
    );
    task.shutdown_async().await;
    tracing::info!("s62 proxy stopped; log writer drained");
    Ok(())
}

/// Completes on ctrl-c or SIGTERM.
pub async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupt received; stopping"),
        () = term => tracing::info!("SIGTERM received; stopping"),
    }
}

//! Wiring: a checked [`Config`] → the RocksDB log folder → the group-commit writer → the proxy on
//! its listener; and an orderly stop (stop accepting, let requests in flight finish and log their
//! outcomes, then drain the writer's queue).
//!
//! The only place that chooses a store backend for the running service. Must not contain request
//! logic (that is [`crate::proxy`]) or log-format logic (that is [`crate::log`]).

use crate::config::{Config, LoadError};
use crate::ingest::{AppendError, LogWriter, OpenError, WriterConfig, WriterTask};
use crate::keys::{KeyFileError, read_signer};
use crate::log::entry::{Actor, Admin, AuthMethod, Entry, EntryKind};
use crate::log::note::SignerKey;
use crate::log::store::rocks::RocksStore;
use crate::log::store::{Store, StoreError};
use crate::proxy::{Proxy, ProxySettings, SetupError};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;

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
    /// The listener could not be bound.
    #[error("listen.address {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The startup entry could not be written: the log is not writable, so nothing is served.
    #[error("the audit log is not writable: {0}")]
    Log(#[from] AppendError),
    /// The async runtime could not be started.
    #[error("could not start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Writer settings from the config.
pub fn writer_config(cfg: &Config) -> WriterConfig {
    WriterConfig {
        origin: cfg.log.origin.clone(),
        queue_capacity: cfg.log.queue_capacity,
        queue_wait: cfg.log.queue_wait,
        max_batch: cfg.log.max_batch,
    }
}

/// `s62 serve --config FILE`: checks the config (every problem at once, before anything listens),
/// then serves until ctrl-c or SIGTERM and stops in order.
pub fn serve(config_path: &Path) -> Result<(), AppError> {
    let cfg = Config::load(config_path)?;
    // Operational logs to stderr, `RUST_LOG` to tune (default info: lifecycle, denials, failures;
    // debug adds one line per intent and outcome). They carry seqs, request ids, routes and
    // statuses only — never personal data.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(AppError::Runtime)?
        .block_on(serve_config(cfg))
}

/// Serves a loaded config until ctrl-c or SIGTERM.
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
            address: cfg.listen.address,
            source,
        })?;
    run(&cfg, Arc::new(store), key, listener, stop_signal()).await
}

/// Runs the proxy over `store` on `listener` until `shutdown` completes. Writes `started` and
/// `stopped` admin entries; fails before serving if the log cannot be written.
pub async fn run(
    cfg: &Config,
    store: Arc<dyn Store>,
    key: SignerKey,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let settings = ProxySettings::from_config(cfg)?;
    let (writer, task) = LogWriter::start(store, key, writer_config(cfg))?;
    run_with(settings, writer, task, listener, shutdown).await
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
        .append(admin("started", &format!("proxy listening on {address}")))
        .await
    {
        task.shutdown_async().await;
        return Err(e.into());
    }
    tracing::info!(%address, origin = writer.origin(), "s62 proxy serving");
    proxy.serve(listener, shutdown).await;
    if let Err(e) = writer.append(admin("stopped", "orderly shutdown")).await {
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
        "log writer totals"
    );
    task.shutdown_async().await;
    tracing::info!("s62 proxy stopped; log writer drained");
    Ok(())
}

fn admin(action: &str, detail: &str) -> Entry {
    Entry {
        kind: EntryKind::Admin as i32,
        actor: Some(Actor {
            id: "s62".into(),
            auth_method: AuthMethod::Local as i32,
            ..Default::default()
        }),
        admin: Some(Admin {
            action: action.into(),
            detail: detail.into(),
        }),
        ..Default::default()
    }
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

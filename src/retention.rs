//! Retention: redacts the personal values of entries older than `[retention]
//! personal_fields_after` (DPA 2018 s39), in slices, off the hot path.
//!
//! Each slice is one `redaction` entry with reason `retention`, written by the log writer
//! together with the removal of the values and their index records, in one atomic write. The
//! task is resumable: where it stands is read back from the log (the highest seq the retention
//! redactions cover), so a crash between slices loses nothing and repeats nothing.
//!
//! Entry times never decrease along the log (the writer clamps them), so the entries past
//! retention are a prefix, found by binary search.
//!
//! Must not depend on the proxy, the query service or the network.

use std::future::Future;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::config::RetentionConfig;
use crate::ingest::{AppendError, LogWriter};
use crate::log::entry::{self, Actor, AuthMethod, Entry, EntryKind, Redaction, RedactionTarget};
use crate::log::index::IndexFamily;
use crate::log::store::{LogStore, Store, StoreError};

/// The redaction reason retention writes.
pub const RETENTION_REASON: &str = "retention";

/// What `/metrics` shows of retention (shared handles; clones count into the same series).
#[derive(Clone, Debug, Default)]
pub struct RetentionMetrics {
    /// Completed runs (each may write zero or more redaction entries).
    pub runs: Counter,
    /// Runs that stopped on an error (retried at the next run).
    pub failures: Counter,
    /// Entries whose personal values retention has redacted.
    pub redacted_entries: Counter,
    /// Redaction entries retention has written.
    pub redactions: Counter,
    /// One past the highest seq retention has covered: every entry below it is redacted.
    pub covered_to: Gauge,
}

/// Why a retention run stopped. Nothing half-done is left: each slice is atomic.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("reading the log: {0}")]
    Store(#[from] StoreError),
    #[error("entry {seq}: {why}")]
    Corrupt { seq: u64, why: String },
    #[error("writing a redaction: {0}")]
    Append(#[from] AppendError),
    /// Format-1 logs keep personal values inside the leaves (docs/format.md).
    #[error(
        "this log is format 1: its personal values are inside the signed leaves and cannot be \
         redacted; remove [retention] or start a new log (docs/format.md)"
    )]
    FormatOne,
    #[error("the retention period {0:?} reaches before the start of time")]
    Period(String),
}

/// Refuses a format-1 log (call before starting the task, so a retention policy that cannot be
/// applied stops startup instead of failing quietly every hour).
pub fn check_format(store: &dyn Store) -> Result<(), RetentionError> {
    let Some(first) = store.entry(0)? else {
        return Ok(());
    };
    let e = entry::decode(&first).map_err(|e| RetentionError::Corrupt {
        seq: 0,
        why: e.to_string(),
    })?;
    if !crate::log::seal::is_sealed(e.format_version) {
        return Err(RetentionError::FormatOne);
    }
    Ok(())
}

/// One past the highest seq that an earlier retention redaction covered (0 if none): where the
/// next run starts. Read from the log, so it survives crashes.
pub fn resume_point(store: &dyn Store) -> Result<u64, RetentionError> {
    let mut next = 0u64;
    let mut from = 0u64;
    loop {
        let seqs = store.index_seqs(IndexFamily::Kind, EntryKind::Redaction.label(), from, 1024)?;
        let Some(&last) = seqs.last() else { break };
        for seq in seqs {
            let e = read(store, seq)?;
            let Some(r) = e.redaction.filter(|r| r.reason == RETENTION_REASON) else {
                continue;
            };
            for t in r.targets {
                next = next.max(t.to_seq.saturating_add(1));
            }
        }
        from = last + 1;
    }
    Ok(next)
}

/// Number of entries whose time is strictly before `cutoff_nanos`, searching `[0, size)`.
pub fn entries_before(
    store: &dyn Store,
    size: u64,
    cutoff_nanos: i64,
) -> Result<u64, RetentionError> {
    let (mut lo, mut hi) = (0u64, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if read(store, mid)?.time_unix_nanos < cutoff_nanos {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

fn read(store: &dyn Store, seq: u64) -> Result<Entry, RetentionError> {
    let bytes = store.entry(seq)?.ok_or_else(|| RetentionError::Corrupt {
        seq,
        why: "missing".into(),
    })?;
    entry::decode(&bytes).map_err(|e| RetentionError::Corrupt {
        seq,
        why: e.to_string(),
    })
}

/// The redaction entry for one retention slice. The actor is the sidecar itself: the policy,
/// not a person, asked.
pub fn retention_entry(from_seq: u64, to_seq: u64, policy: &str) -> Entry {
    Entry {
        kind: EntryKind::Redaction as i32,
        actor: Some(Actor {
            id: "s62".into(),
            auth_method: AuthMethod::Local as i32,
            ..Default::default()
        }),
        redaction: Some(Redaction {
            targets: vec![RedactionTarget {
                from_seq,
                to_seq,
                fields: Vec::new(),
                index: None,
            }],
            reason: RETENTION_REASON.into(),
            detail: format!("personal_fields_after = {policy:?}"),
            purpose: 0,
        }),
        ..Default::default()
    }
}

/// One run: redacts every entry before `cutoff` that earlier runs did not, in slices of at
/// most `batch` entries. Returns the number of entries redacted.
pub async fn run_once(
    store: Arc<dyn Store>,
    writer: &LogWriter,
    cutoff: jiff::Timestamp,
    cfg: &RetentionConfig,
    metrics: &RetentionMetrics,
) -> Result<u64, RetentionError> {
    let cutoff_nanos = i64::try_from(cutoff.as_nanosecond()).unwrap_or(i64::MIN);
    let plan = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || -> Result<(u64, u64), RetentionError> {
            let size = store.entry_count()?;
            Ok((
                resume_point(&*store)?,
                entries_before(&*store, size, cutoff_nanos)?,
            ))
        })
        .await
        .map_err(|e| RetentionError::Corrupt {
            seq: 0,
            why: format!("retention planning task: {e}"),
        })??
    };
    let (mut next, end) = plan;
    metrics
        .covered_to
        .set(i64::try_from(next).unwrap_or(i64::MAX));
    let mut redacted = 0;
    while next < end {
        let to = end.min(next.saturating_add(cfg.batch_entries)) - 1;
        writer
            .redact(retention_entry(next, to, &cfg.personal_fields_after))
            .await?;
        let n = to - next + 1;
        redacted += n;
        metrics.redacted_entries.inc_by(n);
        metrics.redactions.inc();
        next = to + 1;
        metrics
            .covered_to
            .set(i64::try_from(next).unwrap_or(i64::MAX));
    }
    Ok(redacted)
}

/// Runs retention at start and then every `run_every` until `stop` resolves. A failed run is
/// logged and counted, and retried at the next one.
pub async fn run(
    cfg: RetentionConfig,
    store: Arc<dyn Store>,
    writer: LogWriter,
    metrics: RetentionMetrics,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(cfg.run_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        let result = match cfg.cutoff(jiff::Timestamp::now()) {
            Some(cutoff) => run_once(store.clone(), &writer, cutoff, &cfg, &metrics).await,
            None => Err(RetentionError::Period(cfg.personal_fields_after.clone())),
        };
        metrics.runs.inc();
        match result {
            Ok(0) => tracing::debug!("retention: nothing past the retention period"),
            Ok(n) => tracing::info!(entries = n, "retention: personal values redacted"),
            Err(e) => {
                metrics.failures.inc();
                tracing::error!(error = %e, "retention run failed; retrying at the next run");
            }
        }
    }
}

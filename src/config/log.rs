//! `[log]`: where the log lives, which key signs it, how the group-commit writer batches, and
//! `[log.checkpoint]`: how often it signs checkpoints. Parsing only; it must not open the log.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::check::{Checker, Section};

/// `[log]`: where the log lives and how the group-commit writer batches.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    pub data_dir: PathBuf,
    /// Ed25519 signing key for checkpoints.
    pub key_file: PathBuf,
    /// Checkpoint origin line and signed-note key name (no whitespace, no `+`).
    pub origin: String,
    pub queue_capacity: usize,
    /// How long an append waits for queue space before the request fails closed.
    pub queue_wait: Duration,
    pub max_batch: usize,
    /// `[log.checkpoint]`: how often checkpoints are signed.
    pub checkpoint_interval: Duration,
    pub checkpoint_max_entries: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    data_dir: Option<String>,
    key_file: Option<String>,
    origin: Option<String>,
    queue_capacity: Option<i64>,
    queue_wait_ms: Option<i64>,
    max_batch: Option<i64>,
    checkpoint: Option<toml::Value>,
}

/// `[log.checkpoint]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheckpoint {
    interval_ms: Option<i64>,
    max_entries: Option<i64>,
}

impl Section for LogConfig {
    const KEY: &'static str = "log";
    type Raw = RawLog;

    fn check(raw: RawLog, c: &mut Checker<'_>) -> Option<Self> {
        let data_dir = c.file("log.data_dir", raw.data_dir);
        let data_dir = c.required("log.data_dir", data_dir);
        let key_file = c.file("log.key_file", raw.key_file);
        let key_file = c.required("log.key_file", key_file);
        let origin = c.required("log.origin", raw.origin);
        if let Some(o) = &origin
            && (o.is_empty()
                || o.contains('+')
                || o.chars().any(|ch| ch.is_whitespace() || ch.is_control()))
        {
            c.push(
                "log.origin",
                "must be non-empty with no spaces, '+' or control characters \
                 (it is the checkpoint origin and signing key name), e.g. \"records.example.police.uk/s62\"",
            );
        }
        let queue_capacity = c.positive("log.queue_capacity", raw.queue_capacity, 16384);
        let queue_wait = c.millis("log.queue_wait_ms", raw.queue_wait_ms, 2000);
        let max_batch = c.positive("log.max_batch", raw.max_batch, 4096);
        if max_batch > queue_capacity {
            c.push(
                "log.max_batch",
                format!("must not exceed log.queue_capacity ({queue_capacity})"),
            );
        }
        let cadence = match raw.checkpoint {
            None => RawCheckpoint::default(),
            Some(v) => c
                .table::<RawCheckpoint>("log.checkpoint", v)
                .unwrap_or_default(),
        };
        let checkpoint_interval = match cadence.interval_ms {
            None => Duration::ZERO,
            Some(ms @ 0..=3_600_000) => Duration::from_millis(ms.unsigned_abs()),
            Some(ms) => {
                c.push(
                    "log.checkpoint.interval_ms",
                    format!(
                        "must be from 0 (sign every commit) to 3600000 milliseconds (got {ms}); \
                         entries stay unsigned at most this long while appends keep arriving"
                    ),
                );
                Duration::ZERO
            }
        };
        let checkpoint_max_entries =
            c.positive("log.checkpoint.max_entries", cadence.max_entries, 65_536) as u64;
        Some(LogConfig {
            data_dir: data_dir?,
            key_file: key_file?,
            origin: origin?,
            queue_capacity,
            queue_wait,
            max_batch,
            checkpoint_interval,
            checkpoint_max_entries,
        })
    }
}

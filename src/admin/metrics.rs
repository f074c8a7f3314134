//! Metrics: the counters and the histogram that the proxy and the query service increment, and
//! the Prometheus text exposition (format 0.0.4) that `GET /metrics` serves, combining them with
//! the log writer's own [`WriterStats`]. The exposition is written by the official
//! `prometheus-client` crate; this module only says what is counted and under which name.
//!
//! Invariant: every label value is a `&'static str` chosen by code (a rejection reason, a status
//! class, an s62(4) purpose, an entry kind or operation label, a witness submission result) or a
//! name from the config (a witness's `[[witness.peer]] name`), never request data. The label-set
//! types below hold nothing else, so a subject id, a name or a justification cannot become a label
//! value, and the number of series stays bounded. `tests/admin_metrics.rs` drives a proxy session
//! full of personal data and checks every label value in the scrape against the fixed sets.
//!
//! Must not import RocksDB, the proxy or the query service; they depend on this, not the other way
//! round.

use crate::ingest::WriterStats;
use crate::log::entry::{EntryKind, Operation};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The content type of the exposition served at `/metrics` (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the upstream latency histogram's buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `s62_rejections_total`'s label: why a request was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// `s62_upstream_requests_total`'s label: `1xx` .. `5xx`, `other` or `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusClassLabel {
    status_class: &'static str,
}

/// `s62_query_calls_total`'s label: the s62(4) purpose an auditor stated.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PurposeLabel {
    purpose: &'static str,
}

/// Counters the proxy and the query service increment; `/metrics` renders them.
///
/// Share one `Arc<Metrics>` between the admin listener, the proxy and the query service. Every
/// method takes its label as `&'static str`, so request data cannot reach a label:
///
/// ```compile_fail
/// let metrics = s62::admin::Metrics::new();
/// let from_a_request = String::from("P-1001");
/// metrics.rejected(&from_a_request); // error: borrowed value does not live long enough
/// ```
#[derive(Debug)]
pub struct Metrics {
    /// Requests refused fail-closed or by policy, by reason (`log_unavailable`,
    /// `no_justification`, `unmatched_route`, `no_identity`, ...).
    rejections: Family<ReasonLabel, Counter>,
    /// Upstream exchanges by status class.
    upstream_requests: Family<StatusClassLabel, Counter>,
    /// Time from forwarding a request upstream to its response head (or the error).
    upstream_latency: Histogram,
    /// Auditor query calls by s62(4) purpose label (`lawfulness`, `self-monitoring`, ...).
    query_calls: Family<PurposeLabel, Counter>,
    /// The witness client's per-witness series (empty without `[witness]`).
    pub witnesses: WitnessMetrics,
    /// The retention task's series (zero without `[retention]`).
    pub retention: crate::retention::RetentionMetrics,
    /// The compliance watch's series (zero without erasure probes).
    pub compliance: crate::compliance::ComplianceMetrics,
    /// The misuse rules' series (zero without `[alerts]`).
    pub alerts: crate::alerts::AlertMetrics,
    /// Alert delivery to the webhook and syslog (zero without sinks).
    pub delivery: crate::alerts::deliver::DeliveryMetrics,
    /// Replication to JetStream (zero without `[replicate]`).
    pub replication: crate::replicate::ReplicationMetrics,
}

/// Results a witness submission is counted under in `s62_witness_submissions_total`.
pub const WITNESS_RESULTS: [&str; 7] = [
    "cosigned",
    "resynced",
    "refused",
    "fork",
    "ahead",
    "unreachable",
    "bad_response",
];

/// One witness's series. Its name comes from the config (`[[witness.peer]] name`), never from
/// request data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WitnessSeries {
    /// Largest tree size this witness cosigned (0 until it did).
    pub cosigned_size: u64,
    /// Seconds since the oldest checkpoint this witness has not cosigned was committed (0 when
    /// it cosigned the newest).
    pub lag_seconds: f64,
    /// Submissions by result ([`WITNESS_RESULTS`]).
    pub submissions: BTreeMap<&'static str, u64>,
}

/// The witness client's gauges and counters: per witness, and for the quorum.
#[derive(Debug, Default)]
pub struct WitnessMetrics {
    peers: Mutex<BTreeMap<String, WitnessSeries>>,
    quorum: Mutex<(u64, f64)>,
}

impl WitnessMetrics {
    /// Makes `witness` appear with every result at 0.
    pub fn register(&self, witness: &str) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let series = peers.entry(witness.to_owned()).or_default();
        for r in WITNESS_RESULTS {
            series.submissions.entry(r).or_insert(0);
        }
    }

    /// Counts one submission to `witness` with `result` (one of [`WITNESS_RESULTS`]).
    pub fn submitted(&self, witness: &str, result: &'static str) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let n = peers
            .entry(witness.to_owned())
            .or_default()
            .submissions
            .entry(result)
            .or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Sets `witness`'s cosigned size and lag.
    pub fn set_progress(&self, witness: &str, cosigned_size: u64, lag: Duration) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let series = peers.entry(witness.to_owned()).or_default();
        series.cosigned_size = cosigned_size;
        series.lag_seconds = lag.as_secs_f64();
    }

    /// Sets the largest size with a quorum of cosignatures and the quorum's lag.
    pub fn set_quorum(&self, witnessed_size: u64, lag: Duration) {
        *self.quorum.lock().unwrap_or_else(|e| e.into_inner()) =
            (witnessed_size, lag.as_secs_f64());
    }

    /// Every witness's series, by name.
    pub fn snapshot(&self) -> Vec<(String, WitnessSeries)> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// (largest witnessed size, quorum lag in seconds).
    pub fn quorum(&self) -> (u64, f64) {
        *self.quorum.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            rejections: Family::default(),
            upstream_requests: Family::default(),
            upstream_latency: Histogram::new(LATENCY_BUCKETS),
            query_calls: Family::default(),
            witnesses: WitnessMetrics::default(),
            retention: Default::default(),
            compliance: Default::default(),
            alerts: Default::default(),
            delivery: Default::default(),
            replication: Default::default(),
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request refused for `reason` (a fixed label, never request data).
    pub fn rejected(&self, reason: &'static str) {
        self.rejections.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts one upstream response with `status` that took `latency`.
    pub fn upstream_response(&self, status: u16, latency: Duration) {
        self.upstream_exchange(status_class(status), latency);
    }

    /// Counts one upstream exchange that produced no response (connect error, timeout, reset).
    pub fn upstream_error(&self, latency: Duration) {
        self.upstream_exchange("error", latency);
    }

    fn upstream_exchange(&self, status_class: &'static str, latency: Duration) {
        self.upstream_requests
            .get_or_create(&StatusClassLabel { status_class })
            .inc();
        self.upstream_latency.observe(latency.as_secs_f64());
    }

    /// Counts one auditor query call made for `purpose` (an `AuditPurpose::label()`).
    pub fn query_call(&self, purpose: &'static str) {
        self.query_calls
            .get_or_create(&PurposeLabel { purpose })
            .inc();
    }

    /// Requests refused for `reason` so far.
    pub fn rejections(&self, reason: &'static str) -> u64 {
        self.rejections.get_or_create(&ReasonLabel { reason }).get()
    }
}

/// `2xx`-style class of an HTTP status; anything outside 100..=599 is `other`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// Entry kinds reported by `s62_entries_appended_total` (every kind the writer can be given).
pub const KINDS: [EntryKind; 5] = [
    EntryKind::Intent,
    EntryKind::Outcome,
    EntryKind::Denied,
    EntryKind::AuditQuery,
    EntryKind::Admin,
];

/// Operations reported by `s62_entries_appended_total`; `none` is for kinds without one.
pub const OPERATIONS: [Operation; 7] = [
    Operation::Unspecified,
    Operation::Collection,
    Operation::Alteration,
    Operation::Consultation,
    Operation::Disclosure,
    Operation::Combination,
    Operation::Erasure,
];

/// Everything `/metrics` reports that is not in [`Metrics`] or [`WriterStats`].
#[derive(Clone, Copy, Debug)]
pub struct WriterGauges {
    /// Entries waiting in the writer's queue now.
    pub queue_depth: usize,
    /// 1 when the last commit succeeded (or none failed yet), 0 while the log cannot be written.
    pub log_writable: bool,
}

/// The log writer's numbers, copied at scrape time and encoded as constant metrics.
#[derive(Debug)]
struct WriterSnapshot {
    /// (kind label, operation label, entries appended) for every kind × operation.
    appended: Vec<(&'static str, &'static str, u64)>,
    batches: u64,
    inline_batches: u64,
    checkpoints: u64,
    failed_batches: u64,
    last_batch_entries: u64,
    commit_seconds: f64,
    queue_depth: u64,
    tree_size: u64,
    log_writable: bool,
}

impl WriterSnapshot {
    fn take(stats: &WriterStats, gauges: WriterGauges) -> Self {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let appended = KINDS
            .iter()
            .flat_map(|&kind| {
                OPERATIONS
                    .iter()
                    .map(move |&op| (kind.label(), op.label(), stats.appended(kind, op)))
            })
            .collect();
        WriterSnapshot {
            appended,
            batches: load(&stats.batches),
            inline_batches: load(&stats.inline_batches),
            checkpoints: load(&stats.checkpoints),
            failed_batches: load(&stats.failed_batches),
            last_batch_entries: load(&stats.last_batch_size),
            commit_seconds: load(&stats.commit_nanos) as f64 / 1e9,
            queue_depth: u64::try_from(gauges.queue_depth).unwrap_or(u64::MAX),
            tree_size: load(&stats.tree_size),
            log_writable: gauges.log_writable,
        }
    }
}

/// Encodes one unlabelled constant metric (a counter or a gauge) with its descriptor.
fn constant(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for WriterSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut family = encoder.encode_descriptor(
                "s62_entries_appended",
                "Log entries committed since start, by entry kind and s62 operation.",
                None,
                MetricType::Counter,
            )?;
            for (kind, operation, n) in &self.appended {
                let labels = [("kind", *kind), ("operation", *operation)];
                ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        constant(
            &mut encoder,
            "s62_batches",
            "Group commits (one synced write each) that succeeded.",
            None,
            &ConstCounter::new(self.batches),
        )?;
        constant(
            &mut encoder,
            "s62_inline_batches",
            "Group commits of a lone entry that the writer thread made itself, idle, instead of handing them to the commit thread.",
            None,
            &ConstCounter::new(self.inline_batches),
        )?;
        constant(
            &mut encoder,
            "s62_checkpoints",
            "Checkpoints signed and stored (at the log.checkpoint cadence, when idle, on request and at shutdown).",
            None,
            &ConstCounter::new(self.checkpoints),
        )?;
        constant(
            &mut encoder,
            "s62_batch_failures",
            "Group commits the store refused; every entry in them was refused (fail closed).",
            None,
            &ConstCounter::new(self.failed_batches),
        )?;
        constant(
            &mut encoder,
            "s62_last_batch_entries",
            "Entries in the last successful group commit.",
            None,
            &ConstGauge::new(self.last_batch_entries),
        )?;
        constant(
            &mut encoder,
            "s62_commit",
            "Time spent in synced log writes; divide its rate by s62_batches_total's for mean sync latency.",
            Some(&Unit::Seconds),
            &ConstCounter::new(self.commit_seconds),
        )?;
        constant(
            &mut encoder,
            "s62_writer_queue_depth",
            "Entries waiting for the log writer now.",
            None,
            &ConstGauge::new(self.queue_depth),
        )?;
        constant(
            &mut encoder,
            "s62_tree_size",
            "Entries in the log (size of the latest signed checkpoint).",
            None,
            &ConstGauge::new(self.tree_size),
        )?;
        constant(
            &mut encoder,
            "s62_log_writable",
            "1 while the last commit succeeded, 0 while the log cannot be written (requests fail closed).",
            None,
            &ConstGauge::new(u64::from(self.log_writable)),
        )
    }
}

/// The witness client's numbers, copied at scrape time; nothing when no witness is configured.
#[derive(Debug)]
struct WitnessSnapshot {
    peers: Vec<(String, WitnessSeries)>,
    quorum: (u64, f64),
}

impl Collector for WitnessSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.peers.is_empty() {
            return Ok(());
        }
        {
            let mut family = encoder.encode_descriptor(
                "s62_witness_cosigned_size",
                "Largest tree size each witness cosigned.",
                None,
                MetricType::Gauge,
            )?;
            for (name, s) in &self.peers {
                ConstGauge::new(s.cosigned_size)
                    .encode(family.encode_family(&[("witness", name.as_str())])?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "s62_witness_lag",
                "Seconds since the oldest checkpoint each witness has not cosigned was committed (0: up to date).",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            for (name, s) in &self.peers {
                ConstGauge::new(s.lag_seconds)
                    .encode(family.encode_family(&[("witness", name.as_str())])?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "s62_witness_submissions",
                "Checkpoint submissions to each witness, by result (refused, fork and ahead are alerts).",
                None,
                MetricType::Counter,
            )?;
            for (name, s) in &self.peers {
                for (result, n) in &s.submissions {
                    let labels = [("witness", name.as_str()), ("result", *result)];
                    ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        constant(
            &mut encoder,
            "s62_witness_quorum_size",
            "Largest tree size whose stored checkpoint carries a quorum of witness cosignatures.",
            None,
            &ConstGauge::new(self.quorum.0),
        )?;
        constant(
            &mut encoder,
            "s62_witness_quorum_lag",
            "Seconds since the oldest checkpoint without a quorum of cosignatures was committed (0: up to date).",
            Some(&Unit::Seconds),
            &ConstGauge::new(self.quorum.1),
        )
    }
}

/// Renders the whole exposition.
pub fn render(metrics: &Metrics, stats: &WriterStats, gauges: WriterGauges) -> String {
    // The registry is built per scrape: the writer's numbers are copied in as constants, the
    // proxy's and the query service's metrics are shared handles (clones of the same counters).
    // `Registry` appends the full stop to each help text.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(WriterSnapshot::take(stats, gauges)));
    registry.register_collector(Box::new(WitnessSnapshot {
        peers: metrics.witnesses.snapshot(),
        quorum: metrics.witnesses.quorum(),
    }));
    registry.register(
        "s62_rejections",
        "Requests refused (fail closed or by policy), by reason",
        metrics.rejections.clone(),
    );
    registry.register(
        "s62_upstream_requests",
        "Requests forwarded to the records system, by response status class (error: no response)",
        metrics.upstream_requests.clone(),
    );
    registry.register_with_unit(
        "s62_upstream_latency",
        "Time from forwarding a request to the records system until its response head or error",
        Unit::Seconds,
        metrics.upstream_latency.clone(),
    );
    registry.register(
        "s62_query_calls",
        "Auditor query calls, by the s62(4) purpose stated",
        metrics.query_calls.clone(),
    );
    let r = &metrics.retention;
    registry.register(
        "s62_retention_runs",
        "Retention runs completed, whether or not they redacted anything",
        r.runs.clone(),
    );
    registry.register(
        "s62_retention_failures",
        "Retention runs that stopped on an error (retried at the next run)",
        r.failures.clone(),
    );
    registry.register(
        "s62_retention_redacted_entries",
        "Entries whose personal values retention has redacted",
        r.redacted_entries.clone(),
    );
    registry.register(
        "s62_retention_redactions",
        "Redaction entries written by retention",
        r.redactions.clone(),
    );
    registry.register(
        "s62_retention_covered_to",
        "One past the highest seq retention has redacted: every entry below it is redacted",
        r.covered_to.clone(),
    );
    let w = &metrics.compliance;
    registry.register(
        "s62_erasure_checks_confirmed",
        "Erasure checks that found the subject gone (an expected status)",
        w.erasures_confirmed.clone(),
    );
    registry.register(
        "s62_erasure_checks_still_present",
        "Erasure checks that found the erased subject still served",
        w.erasures_still_present.clone(),
    );
    registry.register(
        "s62_erasure_checks_failed",
        "Erasure checks whose probe got no answer or an unexpected status",
        w.erasure_probes_failed.clone(),
    );
    registry.register(
        "s62_zombie_alerts",
        "Alerts for an erased subject returned again",
        w.zombie_alerts.clone(),
    );
    registry.register(
        "s62_alerts",
        "Misuse alerts written to the log, by rule kind",
        metrics.alerts.raised.clone(),
    );
    registry.register(
        "s62_alert_list_failures",
        "Watchlist or self-lookup files that could not be read (the previous list is kept)",
        metrics.alerts.list_failures.clone(),
    );
    metrics.delivery.register(&mut registry);
    metrics.replication.register(&mut registry);
    let mut out = String::new();
    // Writing to a String cannot fail, and our collector only fails when its writer does.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding the metrics failed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_cover_the_http_range() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(308), "3xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(42), "other");
    }

    #[test]
    fn the_writers_numbers_and_the_shared_counters_appear_under_their_stable_names() {
        let stats = WriterStats::default();
        stats.batches.store(3, Ordering::Relaxed);
        stats.inline_batches.store(2, Ordering::Relaxed);
        stats.commit_nanos.store(1_500_000_000, Ordering::Relaxed);
        stats.tree_size.store(42, Ordering::Relaxed);
        let m = Metrics::new();
        m.rejected("no_identity");
        m.upstream_response(204, Duration::from_millis(3));
        m.retention.redacted_entries.inc_by(10_000);
        m.retention.covered_to.set(10_001);
        let text = render(
            &m,
            &stats,
            WriterGauges {
                queue_depth: 7,
                log_writable: false,
            },
        );
        for line in [
            "# HELP s62_batches_total Group commits (one synced write each) that succeeded.",
            "s62_checkpoints_total 0",
            "# TYPE s62_batches_total counter",
            "s62_batches_total 3",
            "s62_inline_batches_total 2",
            "s62_commit_seconds_total 1.5",
            "# TYPE s62_tree_size gauge",
            "s62_tree_size 42",
            "s62_writer_queue_depth 7",
            "s62_log_writable 0",
            "s62_entries_appended_total{kind=\"intent\",operation=\"consultation\"} 0",
            "s62_rejections_total{reason=\"no_identity\"} 1",
            "s62_upstream_requests_total{status_class=\"2xx\"} 1",
            "# TYPE s62_upstream_latency_seconds histogram",
            "s62_upstream_latency_seconds_bucket{le=\"0.0025\"} 0",
            "s62_upstream_latency_seconds_bucket{le=\"0.005\"} 1",
            "s62_upstream_latency_seconds_bucket{le=\"+Inf\"} 1",
            "s62_upstream_latency_seconds_count 1",
            "s62_retention_runs_total 0",
            "s62_retention_failures_total 0",
            "s62_retention_redacted_entries_total 10000",
            "s62_retention_redactions_total 0",
            "s62_retention_covered_to 10001",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(!text.contains(".."), "one full stop per help text:\n{text}");
        assert_eq!(m.rejections("no_identity"), 1);
    }
}

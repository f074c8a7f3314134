//! Metrics: a small registry of atomic counters and histograms that the proxy and the query
//! service increment, and the hand-written Prometheus text exposition (format 0.0.4) that
//! `GET /metrics` serves, combining that registry with the log writer's own [`WriterStats`].
//!
//! Label values are `&'static str` chosen by code (a rejection reason, a status class, an s62(4)
//! purpose), never request data: that keeps the series bounded and keeps personal data (subject
//! ids, names, justification text) out of the metrics by construction. Must not import RocksDB,
//! the proxy or the query service; they depend on this, not the other way round.

use crate::ingest::WriterStats;
use crate::log::entry::{EntryKind, Operation};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The content type of the exposition served at `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the upstream latency histogram's buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counters keyed by a label value the code chose (`&'static str`), e.g. a rejection reason.
#[derive(Debug, Default)]
pub struct LabeledCounter {
    values: Mutex<BTreeMap<&'static str, u64>>,
}

impl LabeledCounter {
    /// Adds one to the counter for `label`.
    pub fn inc(&self, label: &'static str) {
        self.add(label, 1);
    }

    /// Adds `n` to the counter for `label`.
    pub fn add(&self, label: &'static str, n: u64) {
        // A poisoned lock only means another thread panicked mid-increment; the map is still valid.
        let mut map = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let v = map.entry(label).or_insert(0);
        *v = v.saturating_add(n);
    }

    /// Makes `label` appear (at 0) before anything happens, so rates start from a known value.
    pub fn register(&self, label: &'static str) {
        self.add(label, 0);
    }

    /// The current value for `label` (0 if never touched).
    pub fn value(&self, label: &str) -> u64 {
        let map = self.values.lock().unwrap_or_else(|e| e.into_inner());
        map.get(label).copied().unwrap_or(0)
    }

    /// Every (label, value), ordered by label.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let map = self.values.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

/// A latency histogram with fixed buckets ([`LATENCY_BUCKETS`]); lock-free.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket, not cumulative; the last slot is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A point-in-time copy of a [`LatencyHistogram`], with cumulative bucket counts.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, observations at or below it); the last bound is `f64::INFINITY`.
    pub cumulative: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(b) = self.buckets.get(slot) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0u64;
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            running = running.saturating_add(b.load(Ordering::Relaxed));
            let le = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            cumulative.push((le, running));
        }
        HistogramSnapshot {
            // The bucket total, not `self.count`: `+Inf` and `_count` must agree in every scrape,
            // even while observations race it.
            count: running,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            cumulative,
        }
    }
}

/// Counters the proxy and the query service increment; `/metrics` renders them.
///
/// Share one `Arc<Metrics>` between the admin listener, the proxy and the query service.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests refused fail-closed or by policy, by reason (`log_unavailable`,
    /// `no_justification`, `unmatched_route`, `no_identity`, ...).
    pub rejections: LabeledCounter,
    /// Upstream exchanges by status class: `1xx` .. `5xx`, or `error` (no response).
    pub upstream_requests: LabeledCounter,
    /// Time from forwarding a request upstream to its response head (or the error).
    pub upstream_latency: LatencyHistogram,
    /// Auditor query calls by s62(4) purpose label (`lawfulness`, `self-monitoring`, ...).
    pub query_calls: LabeledCounter,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request refused for `reason` (a fixed label, never request data).
    pub fn rejected(&self, reason: &'static str) {
        self.rejections.inc(reason);
    }

    /// Counts one upstream response with `status` that took `latency`.
    pub fn upstream_response(&self, status: u16, latency: Duration) {
        self.upstream_requests.inc(status_class(status));
        self.upstream_latency.observe(latency);
    }

    /// Counts one upstream exchange that produced no response (connect error, timeout, reset).
    pub fn upstream_error(&self, latency: Duration) {
        self.upstream_requests.inc("error");
        self.upstream_latency.observe(latency);
    }

    /// Counts one auditor query call made for `purpose` (an `AuditPurpose::label()`).
    pub fn query_call(&self, purpose: &'static str) {
        self.query_calls.inc(purpose);
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
const KINDS: [EntryKind; 5] = [
    EntryKind::Intent,
    EntryKind::Outcome,
    EntryKind::Denied,
    EntryKind::AuditQuery,
    EntryKind::Admin,
];

/// Operations reported by `s62_entries_appended_total`; `none` is for kinds without one.
const OPERATIONS: [Operation; 7] = [
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

/// Renders the whole exposition.
pub fn render(metrics: &Metrics, stats: &WriterStats, gauges: WriterGauges) -> String {
    let mut out = Exposition::default();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);

    out.family(
        "s62_entries_appended_total",
        "counter",
        "Log entries committed since start, by entry kind and s62 operation.",
    );
    for kind in KINDS {
        for op in OPERATIONS {
            out.sample(
                "s62_entries_appended_total",
                &[("kind", kind.label()), ("operation", op.label())],
                stats.appended(kind, op) as f64,
            );
        }
    }
    out.counter(
        "s62_batches_total",
        "Group commits (one synced write and one signed checkpoint each) that succeeded.",
        load(&stats.batches),
    );
    out.counter(
        "s62_batch_failures_total",
        "Group commits the store refused; every entry in them was refused (fail closed).",
        load(&stats.failed_batches),
    );
    out.gauge(
        "s62_last_batch_entries",
        "Entries in the last successful group commit.",
        load(&stats.last_batch_size) as f64,
    );
    out.family(
        "s62_commit_seconds_total",
        "counter",
        "Time spent in synced log writes; divide its rate by s62_batches_total's for mean sync latency.",
    );
    out.sample(
        "s62_commit_seconds_total",
        &[],
        load(&stats.commit_nanos) as f64 / 1e9,
    );
    out.gauge(
        "s62_writer_queue_depth",
        "Entries waiting for the log writer now.",
        gauges.queue_depth as f64,
    );
    out.gauge(
        "s62_tree_size",
        "Entries in the log (size of the latest signed checkpoint).",
        load(&stats.tree_size) as f64,
    );
    out.gauge(
        "s62_log_writable",
        "1 while the last commit succeeded, 0 while the log cannot be written (requests fail closed).",
        if gauges.log_writable { 1.0 } else { 0.0 },
    );

    out.labeled(
        "s62_rejections_total",
        "Requests refused (fail closed or by policy), by reason.",
        "reason",
        &metrics.rejections,
    );
    out.labeled(
        "s62_upstream_requests_total",
        "Requests forwarded to the records system, by response status class (error: no response).",
        "status_class",
        &metrics.upstream_requests,
    );
    let h = metrics.upstream_latency.snapshot();
    out.family(
        "s62_upstream_latency_seconds",
        "histogram",
        "Time from forwarding a request to the records system until its response head or error.",
    );
    for (le, n) in &h.cumulative {
        let le = if le.is_infinite() {
            "+Inf".to_string()
        } else {
            format_value(*le)
        };
        out.sample(
            "s62_upstream_latency_seconds_bucket",
            &[("le", &le)],
            *n as f64,
        );
    }
    out.sample("s62_upstream_latency_seconds_sum", &[], h.sum_seconds);
    out.sample("s62_upstream_latency_seconds_count", &[], h.count as f64);
    out.labeled(
        "s62_query_calls_total",
        "Auditor query calls, by the s62(4) purpose stated.",
        "purpose",
        &metrics.query_calls,
    );
    out.text
}

/// Writes the text format: `# HELP`, `# TYPE`, then `name{label="value",...} value` lines.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value as f64);
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn labeled(&mut self, name: &str, help: &str, label: &str, counter: &LabeledCounter) {
        self.family(name, "counter", help);
        for (v, n) in counter.snapshot() {
            self.sample(name, &[(label, v)], n as f64);
        }
    }
}

/// Prometheus float text: integers without a fraction, others in shortest round-trip form.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_lands_in_the_first_bucket_that_holds_it_and_buckets_are_cumulative() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(500)); // ≤ 0.001
        h.observe(Duration::from_millis(7)); // ≤ 0.01
        h.observe(Duration::from_secs(60)); // +Inf only
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative.first(), Some(&(0.001, 1)));
        let at = |le: f64| s.cumulative.iter().find(|(b, _)| *b == le).map(|x| x.1);
        assert_eq!(at(0.005), Some(1));
        assert_eq!(at(0.01), Some(2));
        assert_eq!(at(30.0), Some(2));
        assert_eq!(s.cumulative.last(), Some(&(f64::INFINITY, 3)));
        assert!((s.sum_seconds - 60.0075).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn label_values_are_escaped_and_integral_values_print_without_a_fraction() {
        let mut e = Exposition::default();
        e.sample("x", &[("a", "q\"u\\o\nte")], 3.0);
        e.sample("y", &[], 0.25);
        assert_eq!(e.text, "x{a=\"q\\\"u\\\\o\\nte\"} 3\ny 0.25\n");
    }

    #[test]
    fn status_classes_cover_the_http_range() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(308), "3xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(42), "other");
    }
}

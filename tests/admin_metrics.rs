//! Scenario: a sidecar's log writer commits a session's worth of entries while the proxy and the
//! query service count what they did; Prometheus scrapes `/metrics` and must read exactly those
//! numbers back from a well-formed text exposition.

mod admin_common;
mod app_support;

use admin_common::{Admin, Exposition, entry, start_writer};
use app_support::{App, officer};
use s62::admin::{AdminState, Metrics};
use s62::log::entry::{EntryKind, Operation};
use s62::log::store::Store;
use s62::log::store::memory::MemoryStore;
use s62::log::store::rocks::RocksStore;
use std::sync::Arc;
use std::time::Duration;

/// What one records-system session puts in the log: (kind, operation, how many).
const SESSION: [(EntryKind, Operation, usize); 7] = [
    (EntryKind::Admin, Operation::Unspecified, 1),
    (EntryKind::Intent, Operation::Consultation, 5),
    (EntryKind::Outcome, Operation::Consultation, 5),
    (EntryKind::Intent, Operation::Disclosure, 2),
    (EntryKind::Outcome, Operation::Disclosure, 2),
    (EntryKind::Denied, Operation::Erasure, 1),
    (EntryKind::AuditQuery, Operation::Unspecified, 3),
];

fn session_total() -> usize {
    SESSION.iter().map(|(_, _, n)| n).sum()
}

async fn run_session(writer: &s62::ingest::LogWriter) {
    let mut pending = Vec::new();
    for (kind, op, n) in SESSION {
        for _ in 0..n {
            let w = writer.clone();
            pending.push(tokio::spawn(async move { w.append(entry(kind, op)).await }));
        }
    }
    for p in pending {
        p.await.expect("task").expect("appended");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_reports_what_the_log_committed_and_what_the_proxy_and_query_service_counted() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (writer, task) = start_writer(store.clone());
    let metrics = Arc::new(Metrics::new());
    let admin = Admin::start(AdminState::new(writer.clone(), store, metrics.clone())).await;

    run_session(&writer).await;
    // What the proxy and the query service would record around those entries.
    metrics.rejected("missing_justification");
    metrics.rejected("missing_justification");
    metrics.rejected("log_unavailable");
    metrics.upstream_response(200, Duration::from_millis(3));
    metrics.upstream_response(204, Duration::from_millis(40));
    metrics.upstream_response(503, Duration::from_millis(700));
    metrics.upstream_error(Duration::from_secs(2));
    metrics.query_call("lawfulness");
    metrics.query_call("self-monitoring");
    metrics.query_call("lawfulness");

    let resp = admin.get("/metrics").await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let scrape = Exposition::parse(&resp.body);

    // Every family is documented and typed.
    for family in [
        "s62_entries_appended_total",
        "s62_batches_total",
        "s62_inline_batches_total",
        "s62_batch_failures_total",
        "s62_last_batch_entries",
        "s62_commit_seconds_total",
        "s62_writer_queue_depth",
        "s62_tree_size",
        "s62_rejections_total",
        "s62_upstream_requests_total",
        "s62_upstream_latency_seconds",
        "s62_query_calls_total",
    ] {
        assert!(scrape.help.contains_key(family), "no HELP for {family}");
        assert!(scrape.types.contains_key(family), "no TYPE for {family}");
    }
    assert_eq!(scrape.types["s62_upstream_latency_seconds"], "histogram");
    assert_eq!(scrape.types["s62_tree_size"], "gauge");
    assert_eq!(scrape.types["s62_entries_appended_total"], "counter");

    // Entries by kind and operation: exactly the session.
    for (kind, op, n) in SESSION {
        assert_eq!(
            scrape.must(
                "s62_entries_appended_total",
                &[("kind", kind.label()), ("operation", op.label())]
            ),
            n as f64,
            "{} {}",
            kind.label(),
            op.label()
        );
    }
    let appended: f64 = scrape
        .series("s62_entries_appended_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(appended, session_total() as f64, "no entry counted twice");
    assert_eq!(
        scrape.must("s62_tree_size", &[]),
        session_total() as f64,
        "checkpoint size"
    );

    // Group commit: at least one batch, never more batches than entries, no failures.
    let batches = scrape.must("s62_batches_total", &[]);
    assert!(
        batches >= 1.0 && batches <= session_total() as f64,
        "{batches}"
    );
    let inline = scrape.must("s62_inline_batches_total", &[]);
    assert!(inline <= batches, "{inline} inline of {batches}");
    assert_eq!(scrape.must("s62_batch_failures_total", &[]), 0.0);
    let last = scrape.must("s62_last_batch_entries", &[]);
    assert!(last >= 1.0 && last <= session_total() as f64, "{last}");
    assert!(scrape.must("s62_commit_seconds_total", &[]) >= 0.0);
    assert_eq!(scrape.must("s62_writer_queue_depth", &[]), 0.0);
    assert_eq!(scrape.must("s62_log_writable", &[]), 1.0);

    // The proxy's and the query service's counters.
    assert_eq!(
        scrape.must(
            "s62_rejections_total",
            &[("reason", "missing_justification")]
        ),
        2.0
    );
    assert_eq!(
        scrape.must("s62_rejections_total", &[("reason", "log_unavailable")]),
        1.0
    );
    assert_eq!(
        scrape.must("s62_upstream_requests_total", &[("status_class", "2xx")]),
        2.0
    );
    assert_eq!(
        scrape.must("s62_upstream_requests_total", &[("status_class", "5xx")]),
        1.0
    );
    assert_eq!(
        scrape.must("s62_upstream_requests_total", &[("status_class", "error")]),
        1.0
    );
    assert_eq!(
        scrape.must("s62_query_calls_total", &[("purpose", "lawfulness")]),
        2.0
    );
    assert_eq!(
        scrape.must("s62_query_calls_total", &[("purpose", "self-monitoring")]),
        1.0
    );

    // The latency histogram: cumulative buckets, +Inf equals the count, the sum adds up.
    let mut buckets: Vec<(f64, f64)> = scrape
        .series("s62_upstream_latency_seconds_bucket")
        .into_iter()
        .map(|(labels, v)| {
            let le = &labels.iter().find(|(k, _)| k == "le").expect("le label").1;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("numeric le")
            };
            (le, v)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative: {buckets:?}"
    );
    let at = |le: f64| buckets.iter().find(|(b, _)| *b == le).expect("bucket").1;
    assert_eq!(at(0.0025), 0.0);
    assert_eq!(at(0.005), 1.0, "the 3 ms response");
    assert_eq!(at(0.05), 2.0, "plus the 40 ms one");
    assert_eq!(at(1.0), 3.0, "plus the 700 ms one");
    assert_eq!(at(2.5), 4.0, "plus the 2 s error");
    assert_eq!(at(f64::INFINITY), 4.0);
    assert_eq!(scrape.must("s62_upstream_latency_seconds_count", &[]), 4.0);
    let sum = scrape.must("s62_upstream_latency_seconds_sum", &[]);
    assert!((sum - 2.743).abs() < 1e-6, "{sum}");

    // No personal data: the made-up subject id in every entry never reaches the metrics.
    assert!(!resp.body.contains("P-000123"));

    admin.stop().await;
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_grow_between_scrapes_over_a_rocksdb_log_and_the_tree_size_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let metrics = Arc::new(Metrics::new());
    {
        let store: Arc<dyn Store> = Arc::new(RocksStore::open(&path).expect("open rocks"));
        let (writer, task) = start_writer(store.clone());
        let admin = Admin::start(AdminState::new(writer.clone(), store, metrics.clone())).await;

        run_session(&writer).await;
        let first = Exposition::parse(&admin.get("/metrics").await.body);
        run_session(&writer).await;
        let second = Exposition::parse(&admin.get("/metrics").await.body);

        let consults = |s: &Exposition| {
            s.must(
                "s62_entries_appended_total",
                &[("kind", "intent"), ("operation", "consultation")],
            )
        };
        assert_eq!(consults(&first), 5.0);
        assert_eq!(consults(&second), 10.0);
        assert_eq!(first.must("s62_tree_size", &[]), session_total() as f64);
        assert_eq!(
            second.must("s62_tree_size", &[]),
            2.0 * session_total() as f64
        );
        assert!(
            second.must("s62_batches_total", &[]) > first.must("s62_batches_total", &[]),
            "the second session committed more batches"
        );
        assert!(
            second.must("s62_commit_seconds_total", &[]) > 0.0,
            "synced RocksDB writes take time"
        );
        admin.stop().await;
        task.shutdown_async().await;
    }

    // A restarted sidecar reports the size of the log it reopened; counters start again from 0.
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(&path).expect("reopen rocks"));
    let (writer, task) = start_writer(store.clone());
    let admin = Admin::start(AdminState::new(writer, store, Arc::new(Metrics::new()))).await;
    let scrape = Exposition::parse(&admin.get("/metrics").await.body);
    assert_eq!(
        scrape.must("s62_tree_size", &[]),
        2.0 * session_total() as f64
    );
    assert_eq!(scrape.must("s62_batches_total", &[]), 0.0);
    assert!(
        scrape.series("s62_rejections_total").is_empty(),
        "nothing rejected yet"
    );
    admin.stop().await;
    task.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_values_come_from_code_never_from_what_a_request_carries() {
    // A running sidecar (app::run), and requests that put personal data and label-breaking text
    // everywhere a request can: path, query, identity, justification, request id, body. Refused
    // requests of every kind the proxy counts are among them.
    let app = App::start(None).await;
    // Quotes and braces that would end a label value early if they were ever written into one.
    let evil = "x\"} 1 injected_total{a=\"b";
    let personal = [
        "P-1001",
        "P-1002",
        "whitcombe",
        "pc-4021",
        "dc-1180",
        "Burglary at 14 Marsh Lane",
        "44260103-0112",
        "req-Daniel-Whitcombe",
        "Crown Prosecution Service",
        "injected",
    ];
    let why = (
        "investigation",
        "Burglary at 14 Marsh Lane",
        "44260103-0112",
    );
    let mut with_id = officer("dc-1180", Some(why));
    with_id.push(("x-request-id", "req-Daniel-Whitcombe"));
    // (method, path, headers, body, expected status; 200 means any 2xx)
    type Exchange<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<&'a str>,
        u16,
    );
    let exchanges: [Exchange; 7] = [
        (
            "GET",
            "/people?surname=whitcombe",
            with_id.clone(),
            None,
            200,
        ),
        ("GET", "/people/P-1001", officer("pc-4021", None), None, 403), // no justification
        ("GET", "/people/P-1002", vec![], None, 401),                   // no identity
        ("GET", "/people/P-1001/x%22%7D", with_id.clone(), None, 403),  // no rule (strict)
        (
            "POST",
            "/exports",
            officer("dc-1180", Some(why)),
            Some(r#"{"recipient": "Crown Prosecution Service", "people": [{"id": "P-1001"}]}"#),
            200,
        ),
        ("GET", "/people/P-1002", officer(evil, Some(why)), None, 200),
        (
            "POST",
            "/people",
            officer("pc-4021", None),
            Some("{not json"),
            400,
        ),
    ];
    for (method, path, headers, body, want) in &exchanges {
        let r = app.request(method, path, headers, *body).await;
        if *want == 200 {
            assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.body);
        } else {
            assert_eq!(r.status, *want, "{method} {path}: {}", r.body);
        }
    }

    let scrape = app.admin_get("/metrics").await;
    let parsed = Exposition::parse(&scrape.body);
    for v in personal {
        assert!(!scrape.body.contains(v), "{v:?} reached the metrics");
    }
    let kinds: Vec<&str> = s62::admin::metrics::KINDS
        .iter()
        .map(|k| k.label())
        .collect();
    let ops: Vec<&str> = s62::admin::metrics::OPERATIONS
        .iter()
        .map(|o| o.label())
        .collect();
    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx", "other", "error"];
    let mut reasons = std::collections::BTreeSet::new();
    for (name, labels) in parsed.samples.keys() {
        for (k, v) in labels {
            let allowed = match k.as_str() {
                "kind" => kinds.contains(&v.as_str()),
                "operation" => ops.contains(&v.as_str()),
                "status_class" => classes.contains(&v.as_str()),
                "rule" => s62::alerts::RULE_KINDS.contains(&v.as_str()),
                "sink" => ["webhook", "syslog"].contains(&v.as_str()),
                "le" => v == "+Inf" || v.parse::<f64>().is_ok(),
                "reason" => {
                    reasons.insert(v.clone());
                    !v.is_empty()
                        && v.len() <= 32
                        && v.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }
                _ => false,
            };
            assert!(
                allowed,
                "{name}: label {k}={v:?} is not one of the fixed values"
            );
        }
    }
    assert_eq!(
        reasons.into_iter().collect::<Vec<_>>(),
        [
            "invalid_json_body",
            "no_identity",
            "no_justification",
            "unmatched_route"
        ],
        "each refusal counted under its fixed reason"
    );
    app.stop().await;
}

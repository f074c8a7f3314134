//! Issue 11, misuse alerts (s62(4)(b) self-monitoring), through the real proxy in front of the
//! records service: a crafted day of traffic in which each rule kind fires exactly once, and an
//! ordinary day, by the same officers, in which none fires.
//!
//! The writer's clock is set by the test, so the day is a real day in Europe/London (Tuesday 24
//! November 2026) whatever the machine's time; every alert is a durable `alert` entry written by
//! the rules task, which follows the committed log and never sits on a request's path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alert_support;
mod proxy_support;

use alert_support::{Receiver, Rsyslog, free_port};
use proxy_support::*;
use s62::alerts::deliver::{self, DeliveryMetrics};
use s62::alerts::{self, AlertMetrics};
use s62::config::{AlertSinks, Facility, SyslogConfig, WebhookConfig};
use s62::config::{AlertsConfig, Config};
use s62::ingest::{Clock, WriterConfig};
use s62::log::entry::{Entry, EntryKind};
use s62::log::store::Store;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

/// The rules as an operator would write them; list files in `dir`.
fn rules(dir: &Path) -> AlertsConfig {
    std::fs::write(
        dir.join("watchlist.txt"),
        "# protected persons: staff, public figures, victims\nP-1012\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("self.txt"),
        "# officer  their own subject ids\npc-self P-1011\n",
    )
    .unwrap();
    // The example's sections, with these rules instead of its own.
    let example = include_str!("../config/sidecar.example.toml");
    let text = format!(
        "{}\n{}",
        example.split("[[alerts.rule]]").next().unwrap(),
        r#"
[[alerts.rule]]
kind = "bulk"
subjects = 8
window = "1h"

[[alerts.rule]]
kind = "out_of_hours"
time_zone = "Europe/London"
working_hours = ["Mon-Fri 07:00-19:00"]

[[alerts.rule]]
name = "protected-persons"
kind = "watchlist"
file = "watchlist.txt"

[[alerts.rule]]
kind = "self_lookup"
file = "self.txt"

[[alerts.rule]]
kind = "no_case_reference"
operations = ["consultation", "disclosure"]

[[alerts.rule]]
kind = "repeated_denials"
denials = 3
window = "10m"

[[alerts.rule]]
kind = "break_glass"
header = "x-break-glass"
review_within = "24h"
"#
    );
    Config::from_toml_str_in(&text, dir)
        .expect("the rules parse")
        .alerts
        .expect("[alerts]")
}

/// 2026-11-24 (a Tuesday; London is on GMT in November) at `hh:mm`, in Unix nanoseconds.
fn at(hh: i64, mm: i64) -> i64 {
    let midnight = "2026-11-24T00:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_nanosecond() as i64;
    midnight + (hh * 3600 + mm * 60) * 1_000_000_000
}

struct Day {
    upstream: Upstream,
    sidecar: Sidecar,
    now: Arc<AtomicI64>,
    clock: Clock,
    rules: AlertsConfig,
    task: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    _dir: tempfile::TempDir,
}

impl Day {
    async fn start() -> Day {
        let dir = tempfile::tempdir().unwrap();
        let rules = rules(dir.path());
        let mut cfg = config();
        cfg.alerts = Some(rules.clone());
        let upstream = Upstream::start().await;
        let now = Arc::new(AtomicI64::new(at(8, 0)));
        let clock = {
            let now = now.clone();
            Clock::from_fn(move || now.load(Ordering::SeqCst))
        };
        let sidecar = Sidecar::start_with_writer(
            settings(&cfg, upstream.addr),
            TestStore::new(),
            WriterConfig {
                clock: clock.clone(),
                ..WriterConfig::new(ORIGIN)
            },
        )
        .await;
        let mut day = Day {
            upstream,
            sidecar,
            now,
            clock,
            rules,
            task: None,
            _dir: dir,
        };
        day.start_rules();
        day
    }

    fn start_rules(&mut self) {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(alerts::run(
            self.rules.clone(),
            self.sidecar.store.clone() as Arc<dyn Store>,
            self.sidecar.writer.clone(),
            self.clock.clone(),
            AlertMetrics::default(),
            async {
                let _ = stopped.await;
            },
        ));
        self.task = Some((stop, task));
    }

    async fn stop_rules(&mut self) {
        if let Some((stop, task)) = self.task.take() {
            let _ = stop.send(());
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the rules stop")
                .expect("no panic");
        }
    }

    fn set_time(&self, hh: i64, mm: i64) {
        self.now.store(at(hh, mm), Ordering::SeqCst);
    }

    /// `officer` asks for `path`, with a purpose, a justification and (unless `case` is false)
    /// a case reference, and any `extra` headers.
    async fn get(&self, officer: &str, path: &str, case: bool, extra: &[(&str, &str)]) -> Reply {
        let mut headers = vec![
            ("x-s62-user", officer),
            ("x-s62-purpose", "investigation"),
            (
                "x-s62-justification",
                "Enquiries into burglary at Marsh Lane",
            ),
        ];
        if case {
            headers.push(("x-s62-case-ref", "44260103-0112"));
        }
        headers.extend_from_slice(extra);
        send_headers("GET", &self.sidecar.url(path), &headers).await
    }

    /// `officer` asks for a person with no justification at all: refused, and logged as denied.
    async fn unjustified(&self, officer: &str, path: &str) -> Reply {
        send_headers("GET", &self.sidecar.url(path), &[("x-s62-user", officer)]).await
    }

    fn alerts(&self) -> Vec<Entry> {
        self.sidecar.store.of_kind(EntryKind::Alert)
    }

    /// Waits until the rules task has looked at every entry so far (it writes nothing when
    /// nothing fires, so: until a marker entry's successor count is stable).
    async fn settle(&self) {
        let mut last = (usize::MAX, usize::MAX);
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let now = (self.sidecar.store.entries().len(), self.alerts().len());
            if now == last {
                return;
            }
            last = now;
        }
    }

    async fn finish(mut self) -> Arc<TestStore> {
        self.stop_rules().await;
        let store = self.sidecar.stop().await;
        drop(self.upstream);
        store
    }
}

/// (kind, name, actor, subjects, sighting seq) of each alert.
fn summary(alerts: &[Entry]) -> Vec<(String, String, String, Vec<String>)> {
    alerts
        .iter()
        .map(|e| {
            let a = e.alert.as_ref().expect("alert");
            (
                a.rule.clone(),
                a.name.clone(),
                e.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
                e.subject_ids.clone(),
            )
        })
        .collect()
}

/// Delivery of the day's alerts to a webhook receiver and a real rsyslog, as `s62 serve` runs it.
async fn deliver_to(
    day: &Day,
    webhook: SocketAddr,
    syslog_port: u16,
    state: &Path,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let sinks = AlertSinks {
        webhook: Some(WebhookConfig {
            url: format!("http://{webhook}/s62-alerts").parse().unwrap(),
            timeout: Duration::from_secs(2),
            ca_file: None,
            personal_data: false,
            headers: Vec::new(),
        }),
        syslog: Some(SyslogConfig {
            host: "127.0.0.1".into(),
            port: syslog_port,
            tls: None,
            facility: Facility::from_name("authpriv").unwrap(),
            app_name: "s62".into(),
            hostname: Some("records-01".into()),
            enterprise_number: 32473,
            personal_data: false,
        }),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn({
        let run = deliver::run(
            sinks,
            ORIGIN.into(),
            day.sidecar.store.clone() as Arc<dyn Store>,
            day.sidecar.writer.checkpoints(),
            state.join("alert-delivery.json"),
            DeliveryMetrics::default(),
            async {
                let _ = stopped.await;
            },
        );
        async move {
            run.await.expect("delivery starts");
        }
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_fires_once_on_a_crafted_day_and_not_again_after_a_restart() {
    let mut day = Day::start().await;
    // The alerts go to the force's SIEM webhook and to its syslog collector.
    let (receiver, hook) = Receiver::start(&[]).await;
    let syslog_dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(syslog_dir.path(), free_port()).await;
    let delivery = deliver_to(&day, hook, rsyslog.port, syslog_dir.path()).await;

    // 09:00 ordinary work: three people with a case reference. Nothing to see.
    day.set_time(9, 0);
    for id in ["P-1001", "P-1002", "P-1003"] {
        assert_eq!(
            day.get("pc-ok", &format!("/people/{id}"), true, &[])
                .await
                .status,
            200
        );
    }
    // 10:00 pc-bulk looks up nine different people within the hour (more than 8): one alert,
    // on the ninth, and a tenth lookup in the same hour does not repeat it.
    day.set_time(10, 0);
    for n in 1001..=1010 {
        let r = day
            .get("pc-bulk", &format!("/people/P-{n}"), true, &[])
            .await;
        assert_eq!(r.status, 200);
    }
    // 11:00 a protected person (watchlist).
    day.set_time(11, 0);
    day.get("pc-watch", "/people/P-1012", true, &[]).await;
    // 12:00 an officer reads their own record.
    day.set_time(12, 0);
    day.get("pc-self", "/people/P-1011", true, &[]).await;
    // 13:00 a consultation with no case reference.
    day.set_time(13, 0);
    assert_eq!(
        day.get("pc-nocase", "/people/P-1004", false, &[])
            .await
            .status,
        200
    );
    // 14:00 four refusals within ten minutes (more than 3).
    day.set_time(14, 0);
    for _ in 0..4 {
        assert_eq!(
            day.unjustified("pc-deny", "/people/P-1005").await.status,
            403
        );
    }
    // 15:00 emergency access, marked by the break-glass header.
    day.set_time(15, 0);
    day.get(
        "pc-glass",
        "/people/P-1006",
        true,
        &[("x-break-glass", "life at risk")],
    )
    .await;
    // 23:30 a lookup outside working hours.
    day.set_time(23, 30);
    day.get("pc-night", "/people/P-1007", true, &[]).await;

    eventually("seven alerts", || day.alerts().len() >= 7).await;
    day.settle().await;
    let found = day.alerts();
    let mut got = summary(&found);
    got.sort();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut want = vec![
        (
            "break_glass".into(),
            "break_glass".into(),
            "pc-glass".into(),
            s(&["P-1006"]),
        ),
        ("bulk".into(), "bulk".into(), "pc-bulk".into(), vec![]),
        (
            "no_case_reference".into(),
            "no_case_reference".into(),
            "pc-nocase".into(),
            vec![],
        ),
        (
            "out_of_hours".into(),
            "out_of_hours".into(),
            "pc-night".into(),
            vec![],
        ),
        (
            "repeated_denials".into(),
            "repeated_denials".into(),
            "pc-deny".into(),
            vec![],
        ),
        (
            "self_lookup".into(),
            "self_lookup".into(),
            "pc-self".into(),
            s(&["P-1011"]),
        ),
        (
            "watchlist".into(),
            "protected-persons".into(),
            "pc-watch".into(),
            s(&["P-1012"]),
        ),
    ];
    want.sort();
    assert_eq!(got, want, "each kind once: {found:#?}");

    // Each alert points at the entry that raised it, and carries that entry's time of day.
    let entries = day.sidecar.store.entries();
    let by_seq = |seq: u64| {
        entries
            .iter()
            .find(|e| e.seq == seq)
            .expect("sighting")
            .clone()
    };
    for alert in &found {
        let a = alert.alert.as_ref().unwrap();
        let sighting = by_seq(a.sighting_seq);
        assert_eq!(alert.answers_seq, Some(a.sighting_seq));
        assert!(alert.seq > sighting.seq, "written after what it reports");
        let actor = |e: &Entry| e.actor.as_ref().map(|a| a.id.clone());
        match a.rule.as_str() {
            "bulk" => {
                // The ninth distinct person in the window, counted from the first lookup.
                let sighting_intent = by_seq(a.sighting_seq);
                assert_eq!(sighting_intent.subject_ids, ["P-1009"]);
                assert_eq!(by_seq(a.related_seq).subject_ids, ["P-1001"]);
                assert!(
                    a.detail.contains("9 distinct subjects within 1h"),
                    "{}",
                    a.detail
                );
            }
            "repeated_denials" => {
                assert_eq!(sighting.kind, EntryKind::Denied as i32);
                assert!(a.detail.contains("4 refusals within 10m"), "{}", a.detail);
            }
            "out_of_hours" => {
                assert!(a.detail.contains("Tue 23:30 Europe/London"), "{}", a.detail);
            }
            "break_glass" => {
                assert!(sighting.request.as_ref().unwrap().break_glass);
            }
            _ => {}
        }
        if a.rule != "repeated_denials" {
            assert_eq!(sighting.kind, EntryKind::Intent as i32, "{}", a.rule);
        }
        assert_eq!(actor(alert), actor(&sighting), "{}", a.rule);
    }

    // Both receivers got each alert, once, in order (seqs and rules; no personal data by default).
    let seqs: Vec<u64> = found.iter().map(|e| e.seq).collect();
    eventually("the webhook receives the seven", || {
        receiver.accepted_seqs() == seqs
    })
    .await;
    for (json, alert) in receiver.accepted().iter().zip(&found) {
        assert_eq!(json["rule"], alert.alert.as_ref().unwrap().rule.as_str());
        assert!(json.get("actor_id").is_none(), "no personal data: {json}");
    }
    eventually("rsyslog receives the seven", || {
        let lines = rsyslog.lines();
        seqs.iter()
            .all(|s| lines.iter().any(|l| l.contains(&format!(" seq=\"{s}\" "))))
    })
    .await;
    let lines = rsyslog.lines();
    assert_eq!(lines.len(), 7, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("rule=\"watchlist\" name=\"protected-persons\""))
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("pc-") || l.contains("P-10")),
        "no personal data: {lines:#?}"
    );
    let _ = delivery.0.send(());
    delivery.1.await.unwrap();

    // A restarted rules task rebuilds its state from the log: nothing is raised twice, and the
    // suppression it rebuilt holds: pc-night's second late lookup within the hour is not a new
    // alert, while pc-bulk's first late lookup is.
    day.stop_rules().await;
    day.set_time(23, 40);
    day.get("pc-bulk", "/people/P-1001", true, &[]).await;
    day.set_time(23, 45);
    day.get("pc-night", "/people/P-1008", true, &[]).await;
    day.start_rules();
    eventually("the new alert", || day.alerts().len() > 7).await;
    day.settle().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = summary(&day.alerts());
    assert_eq!(after.len(), 8, "{after:#?}");
    assert_eq!(
        after[..7],
        summary(&found)[..],
        "the first seven are untouched"
    );
    assert_eq!(
        (after[7].0.as_str(), after[7].2.as_str()),
        ("out_of_hours", "pc-bulk")
    );
    day.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_day_by_the_same_officers_raises_nothing() {
    let day = Day::start().await;
    day.set_time(9, 0);
    for n in 1001..=1005 {
        day.get("pc-bulk", &format!("/people/P-{n}"), true, &[])
            .await;
    }
    day.set_time(10, 0);
    day.get("pc-watch", "/people/P-1005", true, &[]).await;
    day.get("pc-self", "/people/P-1006", true, &[]).await;
    day.get("pc-nocase", "/people/P-1004", true, &[]).await;
    day.get(
        "pc-glass",
        "/people/P-1006",
        true,
        &[("x-break-glass", " ")],
    )
    .await;
    day.unjustified("pc-deny", "/people/P-1005").await;
    day.set_time(11, 0);
    day.unjustified("pc-deny", "/people/P-1005").await;
    day.set_time(18, 59);
    day.get("pc-night", "/people/P-1007", true, &[]).await;
    day.settle().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(summary(&day.alerts()), vec![], "an ordinary day is quiet");
    day.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watchlist_edited_while_running_is_picked_up_without_a_restart() {
    let day = Day::start().await;
    day.set_time(9, 0);
    day.get("pc-watch", "/people/P-1008", true, &[]).await;
    day.settle().await;
    assert!(day.alerts().is_empty(), "P-1008 is not on the list yet");
    let list = day._dir.path().join("watchlist.txt");
    // A different size, so the change is seen even within the file system's time resolution.
    std::fs::write(&list, "P-1012\nP-1008 # added today\n").unwrap();
    // The task re-reads lists when it wakes; the next commit wakes it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    day.get("pc-ok", "/people/P-1001", true, &[]).await;
    day.settle().await;
    day.get("pc-watch", "/people/P-1008", true, &[]).await;
    eventually("the watchlist alert", || !day.alerts().is_empty()).await;
    let got = summary(&day.alerts());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, "protected-persons");
    assert_eq!(got[0].3, ["P-1008"]);
    day.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_glass_access_nobody_reviews_in_time_raises_a_second_alert_once() {
    let mut day = Day::start().await;
    day.set_time(10, 0);
    day.get(
        "pc-glass",
        "/people/P-1006",
        true,
        &[("x-break-glass", "life at risk")],
    )
    .await;
    day.get(
        "pc-glass-2",
        "/people/P-1003",
        true,
        &[("x-break-glass", "fire")],
    )
    .await;
    eventually("two break-glass alerts", || day.alerts().len() >= 2).await;
    let first = day.alerts()[0].clone();
    let second = day.alerts()[1].clone();
    // The DPO reviews the second in time (the entry ReviewAlert writes).
    day.set_time(18, 0);
    day.sidecar
        .writer
        .append(Entry {
            kind: EntryKind::AlertReview as i32,
            actor: Some(s62::log::entry::Actor {
                id: "dpo-01".into(),
                ..Default::default()
            }),
            answers_seq: Some(second.seq),
            alert_review: Some(s62::log::entry::AlertReview {
                alert_seq: second.seq,
                outcome: "justified".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    // Not yet due at 09:59 the next day...
    day.set_time(24 + 9, 59);
    day.get("pc-ok", "/people/P-1001", true, &[]).await;
    day.settle().await;
    assert_eq!(day.alerts().len(), 2, "nothing is due before 24 hours");
    // ...due at 10:01, for the unreviewed one only.
    day.set_time(24 + 10, 1);
    day.get("pc-ok", "/people/P-1002", true, &[]).await;
    eventually("the second alert", || day.alerts().len() >= 3).await;
    day.settle().await;
    let found = day.alerts();
    assert_eq!(found.len(), 3, "{:#?}", summary(&found));
    let again = &found[2];
    let a = again.alert.as_ref().unwrap();
    assert_eq!(a.rule, "break_glass_unreviewed");
    assert_eq!(
        a.sighting_seq, first.seq,
        "it names the alert nobody reviewed"
    );
    assert_eq!(a.related_seq, first.alert.as_ref().unwrap().sighting_seq);
    assert_eq!(again.actor.as_ref().unwrap().id, "pc-glass");
    assert_eq!(again.subject_ids, ["P-1006"]);
    // A restart reads the alerts and the review from the log: nothing is raised again.
    day.stop_rules().await;
    day.start_rules();
    day.set_time(24 + 11, 0);
    day.get("pc-ok", "/people/P-1003", true, &[]).await;
    day.settle().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(day.alerts().len(), 3, "{:#?}", summary(&day.alerts()));
    day.finish().await;
}

//! Alert delivery against real receivers: a webhook (a small hyper server here), a real
//! `rsyslogd` listening with `imtcp`, and a TLS syslog listener with a CA made here with rcgen.
//! The log is a real RocksDB log written by the writer; alerts are appended to it directly.
//!
//! What must hold: every alert committed after delivery was enabled reaches every sink once
//! (at least once across crashes) and in seq order; a failing receiver only delays; a clean stop
//! and restart resumes without repeats; personal fields leave only with `personal_data = true`.
//!
//! `rsyslogd` must be installed (`scripts/setup.sh` installs it; CI runs it): the syslog tests
//! fail, not skip, without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use s62::alerts::deliver::{self, DeliveryError, DeliveryMetrics, SYSLOG, WEBHOOK};
use s62::config::{AlertSinks, Facility, SyslogConfig, SyslogTls, WebhookConfig};
use s62::ingest::{LogWriter, WriterConfig, WriterTask};
use s62::log::entry::{Actor, Alert, AuthMethod, Entry, EntryKind, Operation};
use s62::log::note::SignerKey;
use s62::log::store::Store;
use s62::log::store::rocks::RocksStore;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod alert_support;

use alert_support::{Receiver, Rsyslog, TOO_LATE, free_port};

const ORIGIN: &str = "records.test.police.uk/s62";

// ---------------------------------------------------------------------------------------------
// The log.

struct Log {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    writer: LogWriter,
    task: Option<WriterTask>,
}

impl Log {
    fn new() -> Log {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(RocksStore::open(&dir.path().join("data")).expect("store opens"));
        let key = SignerKey::from_seed(ORIGIN, [7u8; 32]).expect("key");
        let (writer, task) =
            LogWriter::start(store.clone(), key, WriterConfig::new(ORIGIN)).expect("writer");
        Log {
            dir,
            store,
            writer,
            task: Some(task),
        }
    }

    /// Where the sidecar keeps the delivery state: next to the log's data.
    fn state_file(&self) -> PathBuf {
        self.dir.path().join("data").join("alert-delivery.json")
    }

    /// An officer's misuse alert about two subjects; returns the entry as committed.
    async fn alert(&self, rule: &str, detail: &str) -> Entry {
        let entry = Entry {
            kind: EntryKind::Alert as i32,
            actor: Some(Actor {
                id: "officer-4471".into(),
                display_name: "PC Example".into(),
                auth_method: AuthMethod::Mtls as i32,
                ..Default::default()
            }),
            subject_ids: vec!["P-1001".into(), "P-2002".into()],
            alert: Some(Alert {
                rule: rule.into(),
                sighting_seq: 3,
                related_seq: 1,
                detail: detail.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.append(entry).await
    }

    /// An ordinary consultation, which is not an alert and must not be delivered.
    async fn consultation(&self) -> Entry {
        self.append(Entry {
            kind: EntryKind::Intent as i32,
            operation: Operation::Consultation as i32,
            subject_ids: vec!["P-1001".into()],
            ..Default::default()
        })
        .await
    }

    async fn append(&self, entry: Entry) -> Entry {
        let receipt = self.writer.append(entry.clone()).await.expect("appended");
        let opened = self.store_entry(receipt.seq);
        assert_eq!(opened.seq, receipt.seq);
        opened
    }

    fn store_entry(&self, seq: u64) -> Entry {
        use s62::log::store::LogStore;
        self.store
            .opened(seq)
            .expect("read")
            .expect("present")
            .entry
    }

    async fn close(mut self) {
        if let Some(t) = self.task.take() {
            t.shutdown_async().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The delivery task.

struct Delivery {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), DeliveryError>>,
    metrics: DeliveryMetrics,
}

impl Delivery {
    /// Starts delivery and waits until it has recorded where each sink starts.
    async fn start(log: &Log, sinks: AlertSinks) -> Delivery {
        let expect: Vec<&str> = [
            sinks.webhook.as_ref().map(|_| WEBHOOK),
            sinks.syslog.as_ref().map(|_| SYSLOG),
        ]
        .into_iter()
        .flatten()
        .collect();
        let delivery = Delivery::spawn(log, sinks);
        let state = log.state_file();
        eventually("the delivery state records every sink", || {
            let Ok(text) = std::fs::read_to_string(&state) else {
                return false;
            };
            expect.iter().all(|s| text.contains(&format!("\"{s}\"")))
        })
        .await;
        delivery
    }

    fn spawn(log: &Log, sinks: AlertSinks) -> Delivery {
        let metrics = DeliveryMetrics::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(deliver::run(
            sinks,
            ORIGIN.to_owned(),
            log.store.clone(),
            log.writer.checkpoints(),
            log.state_file(),
            metrics.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Delivery {
            stop,
            task,
            metrics,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("delivery stops")
            .expect("delivery did not panic")
            .expect("delivery ran");
    }
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn webhook(addr: SocketAddr, personal_data: bool) -> AlertSinks {
    let mut token = http::HeaderValue::from_static("Bearer test-token");
    token.set_sensitive(true);
    AlertSinks {
        webhook: Some(WebhookConfig {
            url: format!("http://{addr}/hooks/s62?source=test")
                .parse()
                .unwrap(),
            timeout: Duration::from_secs(2),
            ca_file: None,
            personal_data,
            headers: vec![(http::header::AUTHORIZATION, token)],
        }),
        syslog: None,
    }
}

fn rfc3339(e: &Entry) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(e.time_unix_nanos))
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Webhook scenarios.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_each_alert_committed_after_enabling_once_as_json_without_personal_data() {
    let log = Log::new();
    let old = log.alert("zombie", "before delivery was enabled").await;
    let (receiver, addr) = Receiver::start(&[]).await;
    let delivery = Delivery::start(&log, webhook(addr, false)).await;

    log.consultation().await;
    let first = log
        .alert("zombie", "an erased subject was returned again")
        .await;
    log.consultation().await;
    let second = log.alert("bulk", "120 subjects in 5 minutes").await;

    eventually("two alerts at the webhook", || {
        receiver.accepted().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.accepted();
    assert_eq!(
        got,
        [
            serde_json::json!({
                "origin": ORIGIN, "seq": first.seq, "time": rfc3339(&first), "rule": "zombie",
                "name": "zombie", "sighting_seq": 3, "related_seq": 1,
                "detail": "an erased subject was returned again",
            }),
            serde_json::json!({
                "origin": ORIGIN, "seq": second.seq, "time": rfc3339(&second), "rule": "bulk",
                "name": "bulk", "sighting_seq": 3, "related_seq": 1,
                "detail": "120 subjects in 5 minutes",
            }),
        ],
        "each alert once, in order, no personal fields; the alert older than delivery ({}) not sent",
        old.seq
    );
    let seen = receiver.seen.lock().unwrap().clone();
    for (_, headers, _) in &seen {
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["authorization"], "Bearer test-token");
    }
    assert_eq!(delivery.metrics.delivered_to(WEBHOOK), 2);
    assert_eq!(delivery.metrics.failures_of(WEBHOOK), 0);
    assert_eq!(delivery.metrics.pending_for(WEBHOOK), 0);
    delivery.stop().await;
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_personal_data_on_the_webhook_also_gets_the_actor_and_the_subjects() {
    let log = Log::new();
    let (receiver, addr) = Receiver::start(&[]).await;
    let delivery = Delivery::start(&log, webhook(addr, true)).await;
    let a = log
        .alert("self_lookup", "an officer looked up a relative")
        .await;
    eventually("the alert at the webhook", || {
        !receiver.accepted().is_empty()
    })
    .await;
    let got = &receiver.accepted()[0];
    assert_eq!(got["seq"], a.seq);
    assert_eq!(got["actor_id"], "officer-4471");
    assert_eq!(got["subject_ids"], serde_json::json!(["P-1001", "P-2002"]));
    delivery.stop().await;
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_twice_still_gets_every_alert_in_order() {
    let log = Log::new();
    let (receiver, addr) = Receiver::start(&[500, 503]).await;
    let delivery = Delivery::start(&log, webhook(addr, false)).await;
    let mut seqs = Vec::new();
    for i in 0..3 {
        seqs.push(log.alert("zombie", &format!("alert {i}")).await.seq);
    }
    eventually("three alerts accepted", || receiver.accepted().len() >= 3).await;
    assert_eq!(
        receiver.accepted_seqs(),
        seqs,
        "in order, none lost, none twice"
    );
    assert_eq!(
        receiver.attempts(),
        5,
        "two refusals retried, then three deliveries"
    );
    let refused: Vec<u64> = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .take(2)
        .map(|(_, _, j)| j["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        refused,
        [seqs[0], seqs[0]],
        "later alerts waited behind the first"
    );
    assert_eq!(delivery.metrics.failures_of(WEBHOOK), 2);
    assert_eq!(delivery.metrics.delivered_to(WEBHOOK), 3);
    delivery.stop().await;
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_answers_after_the_timeout_gets_the_alert_again() {
    let log = Log::new();
    let (receiver, addr) = Receiver::start(&[TOO_LATE]).await;
    let mut sinks = webhook(addr, false);
    if let Some(w) = sinks.webhook.as_mut() {
        w.timeout = Duration::from_millis(500);
    }
    let delivery = Delivery::start(&log, sinks).await;
    let a = log.alert("zombie", "slow receiver").await;
    eventually("the alert accepted", || !receiver.accepted().is_empty()).await;
    assert_eq!(receiver.accepted_seqs(), [a.seq]);
    let all: Vec<u64> = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, j)| j["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        all,
        [a.seq, a.seq],
        "at least once: the unanswered attempt counts as failed and is sent again"
    );
    assert_eq!(delivery.metrics.failures_of(WEBHOOK), 1);
    delivery.stop().await;
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_clean_stop_a_restart_delivers_only_the_alerts_committed_since() {
    let log = Log::new();
    let (receiver, addr) = Receiver::start(&[]).await;
    let delivery = Delivery::start(&log, webhook(addr, false)).await;
    let mut seqs = vec![
        log.alert("zombie", "one").await.seq,
        log.alert("zombie", "two").await.seq,
    ];
    eventually("two alerts", || receiver.accepted().len() >= 2).await;
    delivery.stop().await;

    // While delivery is stopped.
    seqs.push(log.alert("zombie", "three").await.seq);
    log.consultation().await;
    seqs.push(log.alert("zombie", "four").await.seq);

    let delivery = Delivery::spawn(&log, webhook(addr, false));
    eventually("four alerts", || receiver.accepted().len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.accepted_seqs(), seqs, "no repeats, nothing missed");
    assert_eq!(delivery.metrics.delivered_to(WEBHOOK), 2);
    delivery.stop().await;

    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.state_file()).unwrap()).unwrap();
    assert_eq!(state["origin"], ORIGIN);
    assert_eq!(state["sinks"]["webhook"]["next_seq"], seqs[3] + 1);
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_of_another_log_is_refused_rather_than_trusted() {
    let log = Log::new();
    let (receiver, addr) = Receiver::start(&[]).await;
    std::fs::write(
        log.state_file(),
        r#"{"version":1,"origin":"other.police.uk/s62","sinks":{"webhook":{"next_seq":99}}}"#,
    )
    .unwrap();
    let delivery = Delivery::spawn(&log, webhook(addr, false));
    let result = tokio::time::timeout(Duration::from_secs(10), delivery.task)
        .await
        .expect("returns at once")
        .expect("no panic");
    let e = result.expect_err("refused");
    assert!(e.to_string().contains("other.police.uk/s62"), "{e}");
    assert_eq!(receiver.attempts(), 0);
    log.close().await;
}

fn syslog_to(port: u16, tls: Option<SyslogTls>, personal_data: bool) -> AlertSinks {
    AlertSinks {
        webhook: None,
        syslog: Some(SyslogConfig {
            host: "127.0.0.1".into(),
            port,
            tls,
            facility: Facility::from_name("local4").unwrap(),
            app_name: "s62".into(),
            hostname: Some("records-01".into()),
            enterprise_number: 32473,
            personal_data,
        }),
    }
}

/// The structured data s62 sends for `e` (no personal data).
fn sd(e: &Entry) -> String {
    let a = e.alert.as_ref().unwrap();
    format!(
        "[s62@32473 origin=\"{ORIGIN}\" seq=\"{}\" rule=\"{}\" name=\"{}\" sighting=\"{}\" related=\"{}\"]",
        e.seq, a.rule, a.rule, a.sighting_seq, a.related_seq
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_receives_each_alert_as_rfc5424_with_its_structured_data() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(dir.path(), free_port()).await;
    let log = Log::new();
    let delivery = Delivery::start(&log, syslog_to(rsyslog.port, None, false)).await;
    let first = log
        .alert("zombie", "an erased subject was returned again")
        .await;
    log.consultation().await;
    let second = log.alert("bulk", "120 subjects \"at once\"").await;

    eventually("two lines at rsyslog", || rsyslog.lines().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = rsyslog.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    // local4.warning = 20 * 8 + 4.
    assert!(lines[0].starts_with("<164>1 "), "{}", lines[0]);
    assert!(
        lines[0].contains(" records-01 s62 ") && lines[0].contains(" alert [s62@32473 "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(&sd(&first)),
        "{}\n{}",
        lines[0],
        sd(&first)
    );
    assert!(
        lines[0].ends_with("] an erased subject was returned again"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains(&sd(&second)), "{}", lines[1]);
    assert!(
        lines[1].ends_with("] 120 subjects \"at once\""),
        "{}",
        lines[1]
    );
    for l in &lines {
        assert!(!l.contains("officer-4471") && !l.contains("P-1001"), "{l}");
    }
    assert_eq!(delivery.metrics.delivered_to(SYSLOG), 2);
    delivery.stop().await;
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_personal_data_on_rsyslog_also_gets_the_actor() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(dir.path(), free_port()).await;
    let log = Log::new();
    let delivery = Delivery::start(&log, syslog_to(rsyslog.port, None, true)).await;
    let a = log.alert("self_lookup", "").await;
    eventually("a line at rsyslog", || !rsyslog.lines().is_empty()).await;
    let line = &rsyslog.lines()[0];
    assert!(
        line.contains(&format!("seq=\"{}\"", a.seq)) && line.contains(" actor=\"officer-4471\"]"),
        "{line}"
    );
    delivery.stop().await;
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_wait_while_rsyslog_is_down_and_arrive_in_order_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut rsyslog = Rsyslog::start(dir.path(), port).await;
    let log = Log::new();
    let delivery = Delivery::start(&log, syslog_to(port, None, false)).await;
    let first = log.alert("zombie", "one").await;
    eventually("the first line", || rsyslog.lines().len() == 1).await;

    rsyslog.stop();
    let second = log.alert("zombie", "two").await;
    let third = log.alert("zombie", "three").await;
    eventually("failed attempts, both alerts counted as pending", || {
        delivery.metrics.failures_of(SYSLOG) >= 1 && delivery.metrics.pending_for(SYSLOG) == 2
    })
    .await;
    assert_eq!(delivery.metrics.delivered_to(SYSLOG), 1);

    let rsyslog = Rsyslog::start(dir.path(), port).await;
    eventually("all three lines", || rsyslog.lines().len() >= 3).await;
    let lines = rsyslog.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (line, e) in lines.iter().zip([&first, &second, &third]) {
        assert!(line.contains(&sd(e)), "{line}");
    }
    assert_eq!(delivery.metrics.delivered_to(SYSLOG), 3);
    assert_eq!(delivery.metrics.pending_for(SYSLOG), 0);
    delivery.stop().await;
    log.close().await;
}

// ---------------------------------------------------------------------------------------------
// Syslog over TLS.

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `localhost`: (cert PEM, key PEM).
    fn server(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A TLS listener that collects the octet-counted frames it receives.
async fn tls_collector(pki: &Pki) -> (u16, Arc<Mutex<Vec<String>>>) {
    let (cert, key) = pki.server();
    let config = s62::proxy::tls::server_config(
        cert.as_bytes(),
        key.as_bytes(),
        None,
        s62::proxy::tls::ClientAuth::None,
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let frames = Arc::new(Mutex::new(Vec::new()));
    let out = frames.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, out) = (acceptor.clone(), out.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = tls.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Octet counting: LEN SP MSG.
                    while let Some(sp) = buf.iter().position(|&b| b == b' ') {
                        let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                        if buf.len() < sp + 1 + len {
                            break;
                        }
                        let msg = String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap();
                        out.lock().unwrap().push(msg);
                        buf.drain(..sp + 1 + len);
                    }
                }
            });
        }
    });
    (port, frames)
}

fn tls_to(dir: &Path, port: u16, ca_pem: &str) -> AlertSinks {
    let ca_file = dir.join("collector-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    syslog_to(
        port,
        Some(SyslogTls {
            ca_file,
            server_name: "localhost".into(),
        }),
        false,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_collector_verified_against_the_configured_ca_gets_octet_counted_frames() {
    let pki = Pki::new("Test SIEM CA");
    let (port, frames) = tls_collector(&pki).await;
    let log = Log::new();
    let delivery = Delivery::start(&log, tls_to(log.dir.path(), port, &pki.ca_pem)).await;
    let a = log.alert("zombie", "over TLS").await;
    let b = log.alert("zombie", "again over TLS").await;
    eventually("two frames over TLS", || frames.lock().unwrap().len() >= 2).await;
    let got = frames.lock().unwrap().clone();
    assert!(
        got[0].starts_with("<164>1 ") && got[0].contains(&sd(&a)),
        "{}",
        got[0]
    );
    assert!(got[0].ends_with("] over TLS"), "{}", got[0]);
    assert!(got[1].contains(&sd(&b)), "{}", got[1]);
    delivery.stop().await;
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_whose_certificate_another_ca_issued_gets_nothing() {
    let real = Pki::new("Test SIEM CA");
    let impostor = Pki::new("Impostor CA");
    let (port, frames) = tls_collector(&impostor).await;
    let log = Log::new();
    let delivery = Delivery::start(&log, tls_to(log.dir.path(), port, &real.ca_pem)).await;
    log.alert("zombie", "must not reach an impostor").await;
    eventually("a refused handshake", || {
        delivery.metrics.failures_of(SYSLOG) >= 1
    })
    .await;
    assert!(frames.lock().unwrap().is_empty());
    assert_eq!(delivery.metrics.delivered_to(SYSLOG), 0);
    assert_eq!(delivery.metrics.pending_for(SYSLOG), 1);
    delivery.stop().await;
    log.close().await;
}

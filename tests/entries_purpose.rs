//! Purpose-bound local reads through the `s62` binary. The log is personal data too (DPA 2018
//! s62(4)): `s62 entries` without a purpose prints no personal value and logs nothing; with an
//! s62(4) purpose, a case reference and an actor it prints them only after an `audit-query`
//! entry is durable, written by its own writer when no sidecar holds the folder and through the
//! running sidecar's admin listener (loopback peers only) when one does. `s62 verify` prints no
//! personal value either, even about tampering.
#![allow(clippy::unwrap_used)]

use s62::ingest::{LogWriter, WriterConfig};
use s62::log::entry::{
    Actor, AuditPurpose, AuditQuery, AuthMethod, Entry, EntryKind, EntryValues, Justification,
    Operation, Outcome, Request,
};
use s62::log::store::rocks::RocksStore;
use s62::log::store::{LogStore, Store, values_key};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ORIGIN: &str = "entries.s62.test/log";

/// Every personal value the scenario log holds: one per PersonalField, each distinctive enough
/// that finding it in any output can only mean it leaked.
const PERSONAL: &[&str] = &[
    "pc-ZEBRA-4471",                            // actor id
    "Constable Quincy Ravel",                   // actor name
    "role-OCELOT",                              // actor role
    "203.0.113.77:5150",                        // actor address
    "P-KESTREL-1001",                           // subject id
    "R-HERON-77",                               // record id
    "Crown Prosecution Service (Narwhal)",      // recipient
    "checking the alibi of Ursula Vantongeren", // justification text
    "CASE-MARMOT-0042",                         // case reference
    "/people/by-name?q=Vantongeren",            // request path
    "P-OSPREY-2002",                            // returned subject id
    "R-BITTERN-88",                             // returned record id
    "{\"subject\":\"P-PANGOLIN-3003\"}",        // audit filter
    "PSD-WOMBAT-17",                            // audit case reference
];

/// The three entries of the scenario: an officer's intent, its outcome, and an auditor's query.
fn scenario() -> Vec<Entry> {
    let officer = Actor {
        id: PERSONAL[0].into(),
        display_name: PERSONAL[1].into(),
        roles: vec![PERSONAL[2].into()],
        source_address: PERSONAL[3].into(),
        auth_method: AuthMethod::Mtls as i32,
    };
    vec![
        Entry {
            kind: EntryKind::Intent as i32,
            operation: Operation::Disclosure as i32,
            actor: Some(officer.clone()),
            justification: Some(Justification {
                purpose_code: "investigation".into(),
                text: PERSONAL[7].into(),
                case_reference: PERSONAL[8].into(),
            }),
            subject_ids: vec![PERSONAL[4].into()],
            record_ids: vec![PERSONAL[5].into()],
            recipients: vec![PERSONAL[6].into()],
            request: Some(Request {
                method: "GET".into(),
                path: PERSONAL[9].into(),
                route: "person-search".into(),
                request_id: "req-1".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Entry {
            kind: EntryKind::Outcome as i32,
            operation: Operation::Disclosure as i32,
            actor: Some(officer),
            answers_seq: Some(0),
            outcome: Some(Outcome {
                status: 200,
                returned_subject_ids: vec![PERSONAL[10].into()],
                returned_record_ids: vec![PERSONAL[11].into()],
                response_sha256: vec![7; 32],
                response_bytes: 321,
                ..Default::default()
            }),
            ..Default::default()
        },
        Entry {
            kind: EntryKind::AuditQuery as i32,
            actor: Some(Actor {
                id: "psd-alex".into(),
                auth_method: AuthMethod::Mtls as i32,
                ..Default::default()
            }),
            audit_query: Some(AuditQuery {
                purpose: AuditPurpose::SelfMonitoring as i32,
                case_reference: PERSONAL[13].into(),
                call: "Search".into(),
                filter_json: PERSONAL[12].into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
}

fn s62(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(args)
        .output()
        .expect("s62 runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A scenario log in `dir/log` (format `format`), its key pair in `dir/keys`.
struct Scenario {
    dir: tempfile::TempDir,
}

impl Scenario {
    fn new(format: u32) -> Scenario {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let out = s62(&[
            "keygen",
            "--origin",
            ORIGIN,
            "--out",
            keys.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let key = s62::keys::read_signer(&keys.join("log.key")).expect("key");
        let store: Arc<dyn Store> =
            Arc::new(RocksStore::open(&dir.path().join("log")).expect("open"));
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let cfg = WriterConfig {
                new_log_format: format,
                ..WriterConfig::new(ORIGIN)
            };
            let (writer, task) = LogWriter::start(store, key, cfg).expect("writer");
            for e in scenario() {
                writer.append(e).await.expect("append");
            }
            drop(writer);
            task.shutdown_async().await;
        });
        Scenario { dir }
    }

    fn data(&self) -> String {
        self.dir.path().join("log").to_string_lossy().into_owned()
    }

    fn key_file(&self) -> String {
        self.dir
            .path()
            .join("keys/log.key")
            .to_string_lossy()
            .into_owned()
    }

    fn pub_file(&self) -> String {
        self.dir
            .path()
            .join("keys/log.pub")
            .to_string_lossy()
            .into_owned()
    }

    /// Every entry, values put back, read beside whatever holds the folder.
    fn stored(&self) -> Vec<Entry> {
        let store = RocksStore::open_reader(Path::new(&self.data())).expect("reader");
        store
            .opened_entries(0, 10_000)
            .expect("entries")
            .into_iter()
            .map(|o| o.entry)
            .collect()
    }

    fn verify(&self) -> Output {
        s62(&[
            "verify",
            "--data-dir",
            &self.data(),
            "--key",
            &self.pub_file(),
        ])
    }
}

/// Panics naming every personal value found in `out`, as text or as hex.
fn assert_no_personal_value(what: &str, out: &Output) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for v in PERSONAL {
        assert!(!all.contains(v), "{what} printed {v:?}:\n{all}");
        let json = serde_json::to_string(v).unwrap();
        assert!(
            !all.contains(&json[1..json.len() - 1]),
            "{what} printed {v:?} as JSON:\n{all}"
        );
        assert!(
            !all.contains(&hex::encode(v)),
            "{what} printed {v:?} in hex:\n{all}"
        );
    }
}

fn assert_every_personal_value(what: &str, stdout: &str) {
    for v in PERSONAL {
        // A value inside a JSON string has its quotes escaped.
        let json = serde_json::to_string(v).unwrap();
        let escaped = &json[1..json.len() - 1];
        assert!(stdout.contains(escaped), "{what} did not print {v:?}");
    }
}

fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

const WITHHELD: &str = "(withheld: give --purpose and --case-ref)";

#[test]
fn without_a_purpose_entries_prints_what_happened_but_no_personal_value_and_logs_nothing() {
    for format in [2, 1] {
        let log = Scenario::new(format);
        let before = log.stored().len();
        let out = s62(&["entries", "--data-dir", &log.data()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_no_personal_value(&format!("entries (format {format})"), &out);

        // What happened is all there: seq, time, kind, operation, route, status, sizes, digests,
        // links; each personal field says it is withheld.
        let lines = json_lines(&out);
        assert_eq!(lines.len(), 3, "format {format}");
        let (intent, outcome, query) = (&lines[0], &lines[1], &lines[2]);
        assert_eq!(intent["seq"], 0);
        assert_eq!(intent["kind"], "intent");
        assert_eq!(intent["operation"], "disclosure");
        assert!(intent["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(intent["request"]["route"], "person-search");
        assert_eq!(intent["request"]["method"], "GET");
        assert_eq!(intent["justification"]["purpose"], "investigation");
        assert_eq!(intent["actor"]["auth"], "mtls");
        for pointer in [
            "/actor/id",
            "/actor/display_name",
            "/actor/roles",
            "/actor/source_address",
            "/subjects",
            "/records",
            "/recipients",
            "/justification/text",
            "/justification/case_reference",
            "/request/path",
        ] {
            assert_eq!(intent.pointer(pointer).unwrap(), WITHHELD, "{pointer}");
        }
        assert_eq!(outcome["answers_seq"], 0);
        assert_eq!(outcome["outcome"]["status"], 200);
        assert_eq!(outcome["outcome"]["response_bytes"], 321);
        assert_eq!(
            outcome["outcome"]["response_sha256"],
            hex::encode([7u8; 32])
        );
        assert_eq!(outcome["outcome"]["returned_subjects"], WITHHELD);
        assert_eq!(outcome["outcome"]["returned_records"], WITHHELD);
        assert_eq!(query["audit_query"]["call"], "Search");
        assert_eq!(query["audit_query"]["purpose"], "self-monitoring");
        assert_eq!(query["audit_query"]["filter"], WITHHELD);
        assert_eq!(query["audit_query"]["case_reference"], WITHHELD);
        assert_eq!(
            outcome["prev_leaf_hash"], intent["leaf_hash"],
            "the chain is visible"
        );
        // A format-1 leaf holds every value in clear: it is withheld, its hash is not.
        if format == 1 {
            assert_eq!(intent["leaf"], WITHHELD);
        } else {
            assert!(intent["leaf"].as_str().unwrap().len() > 100);
        }
        assert_eq!(
            log.stored().len(),
            before,
            "a read that discloses nothing is not logged"
        );
    }
}

#[test]
fn with_a_purpose_the_read_is_logged_before_the_values_are_printed_and_the_log_still_verifies() {
    let log = Scenario::new(2);
    let out = s62(&[
        "entries",
        "--data-dir",
        &log.data(),
        "--key-file",
        &log.key_file(),
        "--purpose",
        "integrity-and-security",
        "--case-ref",
        "INT-2026-0005",
        "--actor",
        "ops-jordan",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_every_personal_value("entries --purpose", &stdout);
    assert_eq!(
        json_lines(&out).len(),
        3,
        "the read covers the log as it was"
    );
    assert!(
        text(&out.stderr).contains("logged as audit-query entry 3"),
        "{}",
        text(&out.stderr)
    );

    // The read is in the log: an opening entry before anything was printed, a closing one after.
    let stored = log.stored();
    assert_eq!(stored.len(), 5);
    let (open, close) = (&stored[3], &stored[4]);
    assert_eq!(open.kind, EntryKind::AuditQuery as i32);
    let q = open.audit_query.as_ref().unwrap();
    assert_eq!(q.call, "entries");
    assert_eq!(q.purpose, AuditPurpose::IntegrityAndSecurity as i32);
    assert_eq!(q.case_reference, "INT-2026-0005");
    let filter: Value = serde_json::from_str(&q.filter_json).unwrap();
    assert_eq!(filter, serde_json::json!({"from": 0, "limit": 10_000}));
    let actor = open.actor.as_ref().unwrap();
    assert_eq!(actor.id, "ops-jordan");
    assert_eq!(actor.auth_method, AuthMethod::Local as i32);
    assert_eq!(actor.source_address, "cli");
    assert_eq!(
        open.justification.as_ref().unwrap().case_reference,
        "INT-2026-0005"
    );
    assert_eq!(close.answers_seq, Some(3));
    let c = close.audit_query.as_ref().unwrap();
    assert_eq!((c.results_returned, c.completed), (3, true));

    let verified = log.verify();
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        text(&verified.stderr)
    );
    assert!(text(&verified.stdout).starts_with("OK: 5 entries"));
}

#[test]
fn an_invalid_purpose_or_a_missing_case_actor_or_key_is_refused_with_exit_2_and_nothing_printed() {
    let log = Scenario::new(2);
    let (data, key) = (log.data(), log.key_file());
    let asked = |purpose: &str, extra: &[&str]| {
        let mut args = vec!["entries", "--data-dir", &data, "--purpose", purpose];
        args.extend_from_slice(extra);
        s62(&args)
    };
    let who = ["--case-ref", "INT-1", "--actor", "ops-jordan"];
    let with_key = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(["--key-file".to_owned(), key.clone()]);
        v
    };
    let refusals: Vec<(&str, Output, &str)> = vec![
        (
            "a purpose outside s62(4)",
            asked("curiosity", &strs(&with_key(&who))),
            "purpose must be one of",
        ),
        (
            "the Commissioner's purpose",
            asked("commissioner-request", &strs(&with_key(&who))),
            "purpose must be one of",
        ),
        (
            "no case reference",
            asked("lawfulness", &strs(&with_key(&["--actor", "ops-jordan"]))),
            "--case-ref",
        ),
        (
            "a blank case reference",
            asked(
                "lawfulness",
                &strs(&with_key(&["--case-ref", " ", "--actor", "ops-jordan"])),
            ),
            "case reference is required",
        ),
        (
            "no actor",
            asked("lawfulness", &strs(&with_key(&["--case-ref", "INT-1"]))),
            "--actor",
        ),
        (
            "no key and no sidecar",
            asked("lawfulness", &who),
            "--key-file",
        ),
        (
            "a limit above one read",
            asked(
                "lawfulness",
                &strs(&with_key(&[&who[..], &["--limit", "10001"]].concat())),
            ),
            "limit must be between",
        ),
        (
            "a case reference without a purpose",
            s62(&["entries", "--data-dir", &data, "--case-ref", "INT-1"]),
            "--purpose",
        ),
    ];
    for (what, out, says) in refusals {
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out.stderr));
        assert!(
            out.stdout.is_empty(),
            "{what} printed {}",
            text(&out.stdout)
        );
        assert!(
            text(&out.stderr).contains(says),
            "{what}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(log.stored().len(), 3, "nothing was logged");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn when_the_audit_entry_cannot_be_written_nothing_is_printed_and_the_exit_is_2() {
    let log = Scenario::new(2);
    // A key of another log: the writer refuses the folder, so no audit entry can be written.
    let other = log.dir.path().join("other-keys");
    let out = s62(&[
        "keygen",
        "--origin",
        "other.s62.test/log",
        "--out",
        other.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let out = s62(&[
        "entries",
        "--data-dir",
        &log.data(),
        "--key-file",
        other.join("log.key").to_str().unwrap(),
        "--purpose",
        "lawfulness",
        "--case-ref",
        "INT-1",
        "--actor",
        "ops-jordan",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_no_personal_value("a refused read", &out);
    assert_eq!(log.stored().len(), 3);
}

/// A child process killed and reaped when the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The machine's own address on its outbound interface (no packet is sent), if it has one that
/// is not loopback.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// `POST /entries` with `body` to `addr`: (status, whole answer).
fn post(addr: SocketAddr, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /entries HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    (out[9..12].parse().unwrap(), out)
}

#[cfg(unix)]
#[test]
fn while_a_sidecar_runs_the_read_is_logged_through_its_admin_listener_for_loopback_peers_only() {
    let log = Scenario::new(2);
    let dir = log.dir.path();
    let (proxy, admin) = (free_port(), free_port());
    let config: PathBuf = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\ndata_dir = \"log\"\nkey_file = \"keys/log.key\"\norigin = \"{ORIGIN}\"\n\n\
             [listen]\naddress = \"127.0.0.1:{proxy}\"\n\n[upstream]\nurl = \"http://127.0.0.1:9\"\n\n\
             [identity]\nsources = [\"trusted_header\"]\nheader = \"x-s62-user\"\ntrusted_peers = [\"127.0.0.0/8\"]\n\n\
             [admin]\naddress = \"0.0.0.0:{admin}\"\n"
        ),
    )
    .unwrap();
    let mut serve = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_s62"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
    );
    let local: SocketAddr = ([127, 0, 0, 1], admin).into();
    wait_until("the admin listener", || TcpStream::connect(local).is_ok());
    let started = log.stored().len(); // the scenario and the sidecar's `started` entry
    let data = log.data();
    let purpose = [
        "--purpose",
        "criminal-proceedings",
        "--case-ref",
        "CPS-2026-88",
        "--actor",
        "ops-jordan",
    ];
    let run = |extra: &[&str]| s62(&[&["entries"], extra, &purpose[..]].concat());

    // The folder is locked and no admin address is known: say what to pass, print nothing.
    let out = run(&["--data-dir", &data, "--key-file", &log.key_file()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("--admin http://127.0.0.1:PORT"),
        "{}",
        text(&out.stderr)
    );

    // Without a purpose, reading beside the running sidecar still works and discloses nothing.
    let out = s62(&["entries", "--data-dir", &data]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_no_personal_value("entries beside a running sidecar", &out);

    // With --config (its [admin] address is 0.0.0.0: the CLI asks 127.0.0.1) and with --admin.
    let config_arg = config.to_string_lossy().into_owned();
    let admin_url = format!("http://127.0.0.1:{admin}");
    for way in [
        vec!["--config", config_arg.as_str()],
        vec!["--data-dir", data.as_str(), "--admin", admin_url.as_str()],
    ] {
        let out = run(&way);
        assert!(out.status.success(), "{way:?}: {}", text(&out.stderr));
        assert_every_personal_value("entries through the sidecar", &text(&out.stdout));
        assert!(text(&out.stderr).contains("logged as audit-query entry"));
    }

    // From the machine's own non-loopback address, the endpoint refuses, reads and logs nothing.
    let ask = r#"{"from":0,"purpose":"lawfulness","case_reference":"X-1","actor":"intruder"}"#;
    let before = log.stored().len();
    match non_loopback_ip() {
        Some(ip) => {
            let (status, answer) = post((ip, admin).into(), ask);
            assert_eq!(status, 403, "{answer}");
            for v in PERSONAL {
                assert!(!answer.contains(v), "{answer}");
            }
            assert_eq!(log.stored().len(), before, "a refused peer is not read for");
        }
        None => eprintln!("no non-loopback address on this machine: the peer check is unit-tested"),
    }
    // The same request from loopback is answered, after its entry.
    let (status, answer) = post(local, ask);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("P-KESTREL-1001"));

    // Stop the sidecar; every read it answered is in the log, with the loopback peer as source.
    assert!(
        Command::new("kill")
            .args(["-TERM", &serve.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_until("s62 serve to stop", || {
        matches!(serve.0.try_wait(), Ok(Some(_)))
    });
    let reads: Vec<Entry> = log
        .stored()
        .into_iter()
        .skip(started)
        .filter(|e| {
            e.audit_query.as_ref().is_some_and(|q| q.call == "entries") && e.answers_seq.is_none()
        })
        .collect();
    assert_eq!(reads.len(), 3, "two CLI reads and one raw request");
    for e in &reads {
        let actor = e.actor.as_ref().unwrap();
        assert!(actor.source_address.starts_with("127.0.0.1:"), "{actor:?}");
        assert_eq!(actor.auth_method, AuthMethod::Local as i32);
    }
    let first = reads[0].audit_query.as_ref().unwrap();
    assert_eq!(first.purpose, AuditPurpose::CriminalProceedings as i32);
    assert_eq!(first.case_reference, "CPS-2026-88");
    assert_eq!(reads[0].actor.as_ref().unwrap().id, "ops-jordan");
    assert_eq!(reads[2].actor.as_ref().unwrap().id, "intruder");
    let verified = log.verify();
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        text(&verified.stderr)
    );
}

#[test]
fn verify_prints_no_personal_value_whether_the_log_is_intact_or_tampered() {
    let log = Scenario::new(2);
    let out = log.verify();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_no_personal_value("verify of an intact log", &out);

    // A malformed index record that carries a subject id.
    let data = log.data();
    {
        let store = RocksStore::open(Path::new(&data)).unwrap();
        let mut key = vec![b'i', 0xff, 0, 1];
        key.extend_from_slice(PERSONAL[4].as_bytes());
        store.write(&[(key, Vec::new())]).unwrap();
    }
    let out = log.verify();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("index key"),
        "{}",
        text(&out.stderr)
    );
    assert_no_personal_value("verify of a forged index key", &out);

    // An altered value: the subject id of the intent is changed beside its leaf.
    let log = Scenario::new(2);
    let data = log.data();
    {
        use prost::Message;
        let store = RocksStore::open(Path::new(&data)).unwrap();
        let row = store.get(&values_key(0)).unwrap().unwrap();
        let mut values = EntryValues::decode(row.as_slice()).unwrap();
        for v in &mut values.values {
            if v.value == PERSONAL[4] {
                v.value = "P-KESTREL-1002".into();
            }
        }
        store
            .write(&[(values_key(0), values.encode_to_vec())])
            .unwrap();
    }
    let out = log.verify();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("entry 0"),
        "{}",
        text(&out.stderr)
    );
    assert_no_personal_value("verify of an altered value", &out);
    assert!(!text(&out.stderr).contains("P-KESTREL-1002"));
}

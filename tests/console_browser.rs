//! The auditor's console in a real browser: headless Chromium (from the distribution, with
//! chromium-driver and python3-selenium; `scripts/setup.sh` installs them) against `s62 serve`'s
//! wiring with the query listener's required client certificates.
//!
//! Each auditor's certificate goes into an NSS database under a HOME of its own, and a managed
//! Chromium policy (`AutoSelectCertificateForUrls`, written to /etc/chromium/policies/managed/ for
//! this test's port and removed after) makes the browser present it: the console is reached only
//! through mutual TLS, exactly as an auditor's browser would. `tests/console_browser.py` drives the
//! scenario: purpose first; the verifier's self-test on the published vectors; search with proofs
//! ✔; an entry's detail; a subject report (and its print layout); an actor report; the alert
//! queue and a review; log status; a narrow screen; entries whose justification the DPO's
//! redaction removed show ✔ and the one whose justification was deleted on the disk without a
//! redaction entry shows ✘; a response altered in transit by a loopback proxy shows ✘; an auditor
//! refused an actor report sees the refusal. Then this test checks the
//! log: every view the page showed is an audit-query entry under the purpose and case chosen.
//!
//! Screenshots go to `$CARGO_TARGET_TMPDIR/console-screenshots`, and also to `docs/console/`
//! (those linked from the README) when `S62_CONSOLE_SCREENSHOTS=1`.

mod console_support;
mod query_harness;

use prost::Message;
use query_harness::{Credential, Pki};
use s62::config::{AdminConfig, Config};
use s62::log::entry::{AuditPurpose, Entry, EntryKind, PersonalField};
use s62::log::store::rocks::RocksStore;
use s62::log::store::{LogStore, Store, values_key};
use s62::query::pb::{Filter, RedactValuesRequest};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const SUBJECT: &str = "P-1001";
/// Looked up, then the officer's justification removed by the DPO through `RedactValues`.
const REDACTED_SUBJECT: &str = "P-1002";
/// Looked up, then the justification deleted from the intent's value row by someone with the
/// disk, the way a redaction would, with no redaction entry.
const QUIETLY_EDITED_SUBJECT: &str = "P-1003";
const OFFICER: &str = "pc-4021";
const CASE: &str = "PSD-CONSOLE-1";
const TAMPER_CASE: &str = "PSD-CONSOLE-2";
const ALEX_CASE: &str = "PSD-CONSOLE-3";

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(request.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A HOME whose NSS database holds `who`'s certificate and key (and trusts the test CA for the
/// server's certificate), as `certutil`/`pk12util` set up a user's browser.
fn browser_home(dir: &Path, name: &str, who: &Credential, pki: &Pki) -> PathBuf {
    let home = dir.join(name);
    let nss = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nss).expect("mkdir");
    let (cert, key) = pki.write_credential(name, who);
    let p12 = dir.join(format!("{name}.p12"));
    run(Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:s62"])
        .args([
            "-in".as_ref(),
            cert.as_os_str(),
            "-inkey".as_ref(),
            key.as_os_str(),
            "-out".as_ref(),
            p12.as_os_str(),
        ]));
    let db = format!("sql:{}", nss.display());
    run(Command::new("certutil").args(["-N", "--empty-password", "-d", &db]));
    run(Command::new("pk12util")
        .args(["-d", &db, "-W", "s62", "-i"])
        .arg(&p12));
    run(Command::new("certutil")
        .args(["-A", "-n", "s62 test CA", "-t", "C,,", "-d", &db, "-i"])
        .arg(pki.ca_path()));
    home
}

/// The managed policy that lets Chromium present the certificate for this origin without asking;
/// removed when dropped.
struct Policy(PathBuf);

impl Policy {
    fn install(origin: &str) -> Policy {
        let dir = Path::new("/etc/chromium/policies/managed");
        std::fs::create_dir_all(dir).expect(
            "create /etc/chromium/policies/managed (the browser test writes a Chromium policy: run it as root, as CI does)",
        );
        let path = dir.join(format!("s62-console-test-{}.json", std::process::id()));
        let pattern = json!({"pattern": origin, "filter": {}}).to_string();
        std::fs::write(
            &path,
            json!({"AutoSelectCertificateForUrls": [pattern]}).to_string(),
        )
        .expect("write the policy");
        Policy(path)
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn officer_request(proxy: SocketAddr, subject: &str, case: Option<&str>) {
    let case = case
        .map(|c| format!("x-s62-case-ref: {c}\r\n"))
        .unwrap_or_default();
    let response = http(
        proxy,
        &format!(
            "GET /people/{subject} HTTP/1.1\r\nHost: records\r\nx-s62-user: {OFFICER}\r\n\
             x-s62-purpose: investigation\r\nx-s62-justification: witness address check\r\n\
             {case}Connection: close\r\n\r\n"
        ),
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

fn all_entries(store: &RocksStore) -> Vec<Entry> {
    let n = store.entry_count().expect("count");
    (0..n)
        .map(|s| store.opened(s).expect("read").expect("present").entry)
        .collect()
}

fn vectors() -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(p)).expect(p)).expect(p)
    };
    // docs/format.md's test vectors: the leaf, its hash and its value row(s), as published there.
    let md = std::fs::read_to_string(dir.join("docs/format.md")).expect("format.md");
    // The first ```text block after `after`, searched for from byte `from` on.
    let block_from = |from: usize, after: &str| -> String {
        let at = from + md[from..].find(after).expect(after);
        let start = at + md[at..].find("```text\n").expect("block") + 8;
        let end = start + md[start..].find("```").expect("end");
        md[start..end].split_whitespace().collect()
    };
    let block = |after: &str| block_from(0, after);
    // Format 3's blocks are looked for only after their own heading, never the format-2 ones.
    let v3 = md
        .find("\n## Format 3 test vector\n")
        .expect("docs/format.md has a \"## Format 3 test vector\" section");
    let block3 = |after: &str| block_from(v3, after);
    json!({
        "hasher": read("tests/vectors/rfc6962_hasher.json"),
        "proofs": read("tests/vectors/rfc6962_proofs.json"),
        "notes": read("tests/vectors/signed_note.json"),
        "format": {
            "leaf_hex": block("Leaf (408 bytes), hex:"),
            "leaf_hash_hex": block("Leaf hash, `SHA-256"),
            "values_hex": block("Value row (`v`"),
        },
        "format3": {
            "leaf_hex": block3("\nLeaf ("),
            "leaf_hash_hex": block3("\nLeaf hash, `SHA-256"),
            "values_hex": block3("\nValue row as written"),
            "redacted_values_hex": block3("\nValue row after a redaction"),
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_works_through_the_console_in_chromium_over_mutual_tls() {
    for tool in [
        "/usr/bin/chromium",
        "/usr/bin/chromedriver",
        "/usr/bin/certutil",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run scripts/setup.sh (chromium, chromium-driver, libnss3-tools, python3-selenium)"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let key = s62::keys::generate(dir.path(), "console.s62.test/records").expect("keygen");
    let (key_path, _) = s62::keys::key_paths(dir.path());
    // What the operator publishes out of band and the auditor pastes into the page.
    let vkey = key.verifier().to_vkey();

    let records = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let records_addr = records.local_addr().expect("addr");
    tokio::spawn(s62::records::serve(
        records,
        s62::records::Records::demo(),
        std::future::pending(),
    ));
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_addr = proxy.local_addr().expect("addr");
    let mut cfg = Config::demo(
        dir.path().join("data"),
        key_path,
        proxy_addr,
        format!("http://{records_addr}").parse().expect("uri"),
    );
    cfg.log.origin = "console.s62.test/records".into();
    let admin_addr = free_port();
    cfg.admin = Some(AdminConfig {
        address: admin_addr,
        checkpoint_dir: None,
    });
    let pki = Pki::new();
    let mut query = pki.query_config();
    query.address = free_port();
    cfg.query = Some(query.clone());

    let store = Arc::new(RocksStore::open(&cfg.log.data_dir).expect("open"));
    let reader = store.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        s62::app::run(&cfg, store, key, proxy, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !tokio::task::spawn_blocking(move || {
        TcpStream::connect(admin_addr).is_ok_and(|mut s| {
            let mut out = String::new();
            s.write_all(b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                .is_ok()
                && s.read_to_string(&mut out).is_ok()
                && out.starts_with("HTTP/1.1 200")
        })
    })
    .await
    .expect("probe")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "s62 never became ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // An officer looks a person up twice with a case reference, once without (an alert).
    tokio::task::spawn_blocking(move || {
        officer_request(proxy_addr, SUBJECT, Some("OP-2026-0413"));
        officer_request(proxy_addr, SUBJECT, Some("OP-2026-0413"));
        officer_request(proxy_addr, SUBJECT, None);
        officer_request(proxy_addr, REDACTED_SUBJECT, Some("OP-2026-0413"));
        officer_request(proxy_addr, QUIETLY_EDITED_SUBJECT, Some("OP-2026-0413"));
    })
    .await
    .expect("officer");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !all_entries(&reader)
        .iter()
        .any(|e| e.kind == EntryKind::Alert as i32)
    {
        assert!(std::time::Instant::now() < deadline, "no alert was raised");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The auditors' browsers, and a proxy that alters what passes through it.
    let dana = pki.client("Dana DPO", &["dpo@example.police.uk"]);
    let alex = pki.client("Alex Auditor", &[]);

    // The DPO removes the officer's justification from the lookups of REDACTED_SUBJECT (a
    // correction): a redaction entry in the log accounts for it.
    let mut dpo = pki.tls_client(query.address, &dana).await;
    let redaction_seq = dpo
        .redact_values(RedactValuesRequest {
            context: query_harness::context(),
            filter: Some(Filter {
                subject: REDACTED_SUBJECT.into(),
                ..Default::default()
            }),
            reason: "correction".into(),
            fields: vec!["justification_text".into()],
            detail: "entered against the wrong person".into(),
            max_entries: 0,
        })
        .await
        .expect("the DPO may redact")
        .into_inner()
        .redaction_seq
        .expect("a redaction entry");
    // Someone with the disk removes the justification of QUIETLY_EDITED_SUBJECT's intent the same
    // way, with no redaction entry.
    let entries = all_entries(&reader);
    let quiet = entries
        .iter()
        .find(|e| {
            e.kind == EntryKind::Intent as i32
                && e.subject_ids.iter().any(|s| s == QUIETLY_EDITED_SUBJECT)
        })
        .expect("the intent")
        .seq;
    let mut row = reader.values(quiet).expect("row");
    let removed = s62::log::seal::redact_values(s62::log::entry::FORMAT_V3, &mut row, |f, _| {
        f == PersonalField::JustificationText as i32
    });
    assert_eq!(removed, 1, "the intent had a justification");
    reader
        .write(&[(values_key(quiet), row.encode_to_vec())])
        .expect("raw write");

    let dpo_home = browser_home(dir.path(), "dpo", &dana, &pki);
    let alex_home = browser_home(dir.path(), "alex", &alex, &pki);
    let url = format!("https://localhost:{}/", query.address.port());
    let _policy = Policy::install(&format!("https://localhost:{}", query.address.port()));
    let ca = std::fs::read_to_string(pki.ca_path()).expect("ca");
    let tamper = console_support::TamperProxy::start(
        query.address,
        ca,
        dana.cert_pem.clone(),
        dana.key_pem.clone(),
    )
    .await;

    let mut shots = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")];
    if std::env::var("S62_CONSOLE_SCREENSHOTS").as_deref() == Ok("1") {
        shots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console"));
    }
    let input = json!({
        "url": url,
        "proxy_url": format!("http://127.0.0.1:{}/", tamper.addr.port()),
        "vkey": vkey,
        "dpo_home": dpo_home,
        "alex_home": alex_home,
        "shots": shots,
        "vectors": vectors(),
        "subject": SUBJECT,
        "redacted_subject": REDACTED_SUBJECT,
        "quiet_subject": QUIETLY_EDITED_SUBJECT,
        "quiet_seq": quiet,
        "redaction_seq": redaction_seq,
        "actor": OFFICER,
        "case": CASE,
        "tamper_case": TAMPER_CASE,
        "alex_case": ALEX_CASE,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console_browser.py");
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with selenium (scripts/setup.sh)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.to_string().as_bytes())
            .expect("send the scenario");
        child.wait_with_output().expect("the browser scenario")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "browser scenario failed:\n{stdout}\n{stderr}"
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().expect("a report"))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    // The verifier's self-test ran (and passed, or the scenario would have stopped) the cases on
    // docs/format.md's vectors, format 3's among them.
    let format_cases: Vec<&str> = seen["selftest_format"]
        .as_array()
        .expect("the self-test's format cases")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    println!(
        "verifier self-test: {} cases passed; on docs/format.md's vectors: {format_cases:#?}",
        seen["selftest"]
    );
    for want in [
        "format 2 leaf and value row",
        "format 3 leaf hash",
        "format 3 leaf and value row",
        "format 3 redacted row: subject_id[0] removed, the rest checked",
        "format 3 value row with a changed value fails",
        "format 3 redacted row with the seed put back fails",
    ] {
        assert!(format_cases.contains(&want), "self-test case {want:?} ran");
    }
    println!("altered in transit: {}", seen["tamper_why"]);
    println!("removed without a redaction entry: {}", seen["quiet_why"]);
    assert!(
        tamper.altered.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the proxy altered a response"
    );

    // The log: every view the page showed is an audit-query entry by the auditor, under the
    // purpose and case chosen on the page.
    let entries = all_entries(&reader);
    let views = seen["views"].as_object().expect("views");
    for view in [
        "search",
        "entry",
        "subject",
        "actor",
        "alerts",
        "status",
        "redacted_search",
        "quiet_search",
        "tampered_search",
    ] {
        let seqs = views[view].as_array().expect(view);
        assert!(!seqs.is_empty(), "{view} showed its audit entries");
        let case = if view == "tampered_search" {
            TAMPER_CASE
        } else {
            CASE
        };
        for seq in seqs {
            let e = &entries[seq.as_u64().expect("seq") as usize];
            assert_eq!(e.kind, EntryKind::AuditQuery as i32, "{view}: #{seq}");
            assert_eq!(e.actor.as_ref().expect("actor").id, "dpo", "{view}");
            let q = e.audit_query.as_ref().expect("audit_query");
            assert_eq!(q.purpose, AuditPurpose::SelfMonitoring as i32, "{view}");
            assert_eq!(q.case_reference, case, "{view}");
            assert!(!q.completed, "{view}: #{seq} is an opening entry");
        }
    }
    let calls_under_case: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::AuditQuery as i32)
        .filter_map(|e| e.audit_query.as_ref())
        .filter(|q| q.case_reference == CASE)
        .map(|q| q.call.as_str())
        .collect();
    for call in [
        "Search",
        "GetEntry",
        "SubjectReport",
        "ActorReport",
        "ListAlerts",
        "LatestCheckpoint",
        "InclusionProof",
    ] {
        assert!(
            calls_under_case.contains(call),
            "{call}: {calls_under_case:?}"
        );
    }
    // The review made on the page is the alert-review entry, under the same purpose and case.
    let review = &entries[seen["review_seq"].as_u64().expect("review seq") as usize];
    assert_eq!(review.kind, EntryKind::AlertReview as i32);
    let r = review.alert_review.as_ref().expect("alert_review");
    assert_eq!(
        (r.alert_seq, r.outcome.as_str()),
        (
            seen["reviewed_alert"].as_u64().expect("alert"),
            "false-positive"
        )
    );
    assert_eq!(
        review
            .audit_query
            .as_ref()
            .expect("audit_query")
            .case_reference,
        CASE
    );
    // Nothing was asked without a purpose (the page holds back until one is chosen), and the
    // auditor's refused actor report is a denied entry with the case they gave.
    assert!(!entries.iter().any(|e| {
        e.kind == EntryKind::Denied as i32
            && e.denial
                .as_ref()
                .is_some_and(|d| d.reason == "no_purpose_or_case_reference")
    }));
    let refused = entries
        .iter()
        .find(|e| {
            e.kind == EntryKind::Denied as i32
                && e.actor.as_ref().is_some_and(|a| a.id == "psd-alex")
        })
        .expect("the auditor's refusal is logged");
    assert_eq!(
        refused.denial.as_ref().expect("denial").reason,
        "role_not_allowed"
    );
    let q = refused.audit_query.as_ref().expect("audit_query");
    assert_eq!(
        (q.call.as_str(), q.case_reference.as_str()),
        ("ActorReport", ALEX_CASE)
    );

    let _ = stop_tx.send(());
    serving
        .await
        .expect("join")
        .expect("s62 ran and stopped cleanly");
}

//! `s62 demo`: the whole product on one machine with nothing else to install. It starts the
//! built-in POLE records service, puts the s62 proxy in front of it (plain HTTP on loopback,
//! identity from a header set by a loopback "gateway", the routes of the shipped example config),
//! drives a realistic session through it — every s62 operation, with and without a
//! justification, a disclosure to a named recipient, an erasure, refused requests — then prints
//! what the log holds and verifies it.
//!
//! Everything here goes through the proxy over TCP, exactly as a records client would; the only
//! entry written directly is the auditor's query (the gRPC query service's job in production).

use crate::app;
use crate::config::Config;
use crate::ingest::{LogWriter, WriterConfig};
use crate::keys;
use crate::log::entry::{
    Actor, AuditPurpose, AuditQuery, AuthMethod, Entry, EntryKind, Operation, PersonalField,
    Redaction, RedactionTarget,
};
use crate::log::index::IndexFamily;
use crate::log::store::rocks::RocksStore;
use crate::log::store::{LogStore, Store};
use crate::proxy::ProxySettings;
use crate::records::{self, ErasureMode, Records};
use crate::render::rfc3339_utc;
use crate::verify::{VerifyOptions, verify_store};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Origin (and key name) of the demo log.
pub const DEMO_ORIGIN: &str = "demo.s62.local/records";

/// The people acting in the demo, as the gateway names them.
struct Officer {
    id: &'static str,
    name: &'static str,
    roles: &'static str,
}

const PATEL: Officer = Officer {
    id: "pc-4021",
    name: "PC 4021 Sam Patel",
    roles: "officer,response",
};
const OKORO: Officer = Officer {
    id: "dc-1180",
    name: "DC 1180 Jane Okoro",
    roles: "detective,cid",
};

/// A justification: purpose code, free text, case reference.
type Why = (&'static str, &'static str, &'static str);

const BURGLARY: Why = (
    "investigation",
    "Burglary at 14 Marsh Lane on 3 October: identifying the suspect",
    "44260103-0112",
);
const THEFT: Why = (
    "investigation",
    "Theft from vehicle on Portswood Road: victim follow-up",
    "44261011-0877",
);
const FILE_PREP: Why = (
    "prosecution",
    "Case file for charging decision",
    "44260103-0112",
);
const DUPLICATE: Why = (
    "data-quality",
    "P-1011 is a duplicate of P-1001 (same name and date of birth)",
    "",
);

struct Session {
    client: Client<HttpConnector, Full<Bytes>>,
    proxy: SocketAddr,
}

impl Session {
    /// Sends one request through the proxy and prints one line about it.
    async fn send(
        &self,
        who: Option<&Officer>,
        why: Option<Why>,
        method: &str,
        path: &str,
        body: Option<Value>,
        story: &str,
    ) -> Result<(u16, Value)> {
        self.send_with(who, why, method, path, body, story, &[])
            .await
    }

    /// As [`Session::send`], with `extra` headers.
    #[allow(clippy::too_many_arguments)]
    async fn send_with(
        &self,
        who: Option<&Officer>,
        why: Option<Why>,
        method: &str,
        path: &str,
        body: Option<Value>,
        story: &str,
        extra: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.proxy));
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        if let Some(o) = who {
            b = b
                .header("x-s62-user", o.id)
                .header("x-s62-user-name", o.name)
                .header("x-s62-roles", o.roles);
        }
        if let Some((purpose, text, case)) = why {
            b = b
                .header("x-s62-purpose", purpose)
                .header("x-s62-justification", text);
            if !case.is_empty() {
                b = b.header("x-s62-case-ref", case);
            }
        }
        let bytes = match &body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let resp = self.client.request(b.body(Full::new(bytes))?).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let actor = who.map_or("(no identity)", |o| o.name);
        println!("  {status}  {method:<6} {path:<34} {actor:<20} {story}");
        if json["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:s62:problem:"))
        {
            println!(
                "        └─ {}: {}",
                json["title"].as_str().unwrap_or(""),
                json["detail"].as_str().unwrap_or("")
            );
        }
        Ok((status, json))
    }
}

/// Where the demo sends the sidecar's application log (tracing), inside the demo folder.
pub fn app_log_path(dir: &Path) -> std::path::PathBuf {
    dir.join("sidecar.log")
}

/// Sends this process's tracing to [`app_log_path`] (`RUST_LOG` and `S62_LOG_FORMAT` apply as
/// for `s62 serve`), so the terminal shows only the demo's own story.
pub fn init_tracing(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = app_log_path(dir);
    app::init_tracing_to_file(&file).with_context(|| format!("creating {}", file.display()))
}

/// Runs the demo in `dir`: `dir/log.key`, `dir/log.pub`, and the log in `dir/data`.
pub fn run(dir: &Path) -> Result<()> {
    let (key_path, pub_path) = keys::key_paths(dir);
    let key = if key_path.exists() {
        keys::read_signer(&key_path)?
    } else {
        keys::generate(dir, DEMO_ORIGIN)?
    };
    let data = dir.join("data");
    let store: Arc<dyn Store> =
        Arc::new(RocksStore::open(&data).with_context(|| format!("opening {}", data.display()))?);
    let before = store.entry_count()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        // The records system, and s62 in front of it.
        let records_listener = TcpListener::bind("127.0.0.1:0").await?;
        let records_addr = records_listener.local_addr()?;
        let (stop_records, records_stopped) = tokio::sync::oneshot::channel::<()>();
        // This records system "erases" a person but leaves them listed at addresses, events and
        // objects — the flaw s62's erasure checks and zombie alerts exist to catch.
        let records = Records::demo();
        records.set_erasure_mode(ErasureMode::LeaveLinks);
        let records_task = tokio::spawn(records::serve(records_listener, records, async {
            let _ = records_stopped.await;
        }));
        let proxy_listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy_addr = proxy_listener.local_addr()?;
        let mut cfg = Config::demo(
            data.clone(),
            key_path.clone(),
            proxy_addr,
            format!("http://{records_addr}").parse()?,
        );
        cfg.log.origin = DEMO_ORIGIN.into();
        // The example's misuse rules, but not the time-of-day one: the demo's story should not
        // depend on when it is run.
        if let Some(a) = cfg.alerts.as_mut() {
            a.rules.retain(|r| r.kind.label() != "out_of_hours");
        }
        let settings = ProxySettings::from_config(&cfg)?;
        let (writer, task) = LogWriter::start(store.clone(), key, WriterConfig::new(DEMO_ORIGIN))?;
        // The erasure checks and misuse rules, off the request path, as `s62 serve` runs them.
        let (stop_watchers, watchers_stop) = tokio::sync::watch::channel(false);
        let mut watchers = tokio::task::JoinSet::new();
        app::spawn_watchers(
            &cfg,
            &settings,
            &store,
            &writer,
            &watchers_stop,
            &mut watchers,
        )?;
        let (stop_proxy, proxy_stopped) = tokio::sync::oneshot::channel::<()>();
        let proxy_task = tokio::spawn(app::run_with(
            settings,
            writer.clone(),
            task,
            proxy_listener,
            async {
                let _ = proxy_stopped.await;
            },
        ));

        println!("records service  http://{records_addr}   (the unmodified records system)");
        println!("s62 proxy        http://{proxy_addr}   (every request below goes through it)");
        println!("log              {}   origin {DEMO_ORIGIN}", data.display());
        println!(
            "sidecar's own application log: {}\n",
            app_log_path(dir).display()
        );
        let s = Session {
            client: Client::builder(TokioExecutor::new()).build_http(),
            proxy: proxy_addr,
        };
        drive(&s).await?;
        // The erasure of P-1011 was checked by asking the records system (404: gone). But an
        // address still lists P-1011 as an occupant, so reading it raises a zombie alert.
        wait_for(store.as_ref(), EntryKind::ErasureCheck, before, 1).await?;
        s.send(
            Some(&OKORO),
            Some(THEFT),
            "GET",
            "/locations/L-3008",
            None,
            "an address that still lists P-1011",
        )
        .await?;
        s.send_with(
            Some(&PATEL),
            Some(THEFT),
            "GET",
            "/people/P-1006",
            None,
            "emergency access (break-glass header)",
            &[("x-s62-break-glass", "missing person, life at risk")],
        )
        .await?;
        wait_for(store.as_ref(), EntryKind::Alert, before, 2).await?;
        let _ = stop_watchers.send(true);
        while watchers.join_next().await.is_some() {}

        // An auditor asks who looked at P-1001 (in production, through the gRPC query service,
        // which logs the question before it answers).
        writer
            .append(Entry {
                kind: EntryKind::AuditQuery as i32,
                actor: Some(Actor {
                    id: "psd-auditor-07".into(),
                    display_name: "Professional Standards, A. Auditor".into(),
                    roles: vec!["auditor".into()],
                    source_address: "127.0.0.1".into(),
                    auth_method: AuthMethod::Mtls as i32,
                }),
                audit_query: Some(AuditQuery {
                    purpose: AuditPurpose::SelfMonitoring as i32,
                    case_reference: "PSD-2026-0031".into(),
                    call: "SubjectReport".into(),
                    filter_json: "{\"subject\":\"P-1001\"}".into(),
                    ..Default::default()
                }),
                subject_ids: vec!["P-1001".into()],
                ..Default::default()
            })
            .await?;
        println!("\n  (an auditor's subject-access query about P-1001 is logged as audit-query)");

        // The data protection officer removes a justification recorded against the wrong
        // request (in production through RedactValues, which is itself logged). The leaf keeps
        // its commitment, so the log still verifies; the redaction entry says who, why and what.
        if let Some(seq) = first_justified(store.as_ref(), before)? {
            let redaction = Entry {
                actor: Some(Actor {
                    id: "dpo-01".into(),
                    display_name: "Data Protection Officer".into(),
                    roles: vec!["dpo".into()],
                    source_address: "127.0.0.1".into(),
                    auth_method: AuthMethod::Mtls as i32,
                }),
                redaction: Some(Redaction {
                    targets: vec![RedactionTarget {
                        from_seq: seq,
                        to_seq: seq,
                        fields: vec![PersonalField::JustificationText as i32],
                        index: None,
                    }],
                    reason: "correction".into(),
                    detail: "justification recorded against the wrong request".into(),
                    purpose: AuditPurpose::IntegrityAndSecurity as i32,
                }),
                ..Default::default()
            };
            match writer.redact(redaction).await {
                Ok(r) => println!(
                    "  (the data protection officer redacts the justification text of entry {seq} \
                     as a correction: redaction entry {}; the leaf and its commitment stay)",
                    r.seq
                ),
                Err(crate::ingest::AppendError::Redaction(why)) => {
                    println!("  (no redaction shown: {why})")
                }
                Err(e) => return Err(e.into()),
            }
        }

        let _ = stop_proxy.send(());
        proxy_task.await??;
        let _ = stop_records.send(());
        let _ = records_task.await;
        anyhow::Ok(())
    })?;

    summarise(store.as_ref(), before)?;
    let (size, note) = store
        .latest_checkpoint()?
        .context("no checkpoint after the session")?;
    println!("\nlatest signed checkpoint (size {size}):\n{note}");
    let report = verify_store(
        store.as_ref(),
        VerifyOptions::new(keys::read_log_keys(&pub_path)?),
    )?;
    println!(
        "verified: {} entries, {} checkpoints, {} index records, root {}; {} values redacted, each \
         covered by a redaction entry",
        report.entries,
        report.checkpoints,
        report.index_records,
        report.root.to_base64(),
        report.redacted_values
    );
    println!("\nTry:");
    println!("  s62 entries --data-dir {}", data.display());
    println!(
        "  s62 verify --data-dir {} --key {}",
        data.display(),
        pub_path.display()
    );
    Ok(())
}

/// Waits (up to 10 s) until the log holds `n` entries of `kind` from `from` on: the watchers
/// write theirs shortly after what they react to.
async fn wait_for(store: &dyn Store, kind: EntryKind, from: u64, n: usize) -> Result<()> {
    for _ in 0..100 {
        if store
            .index_seqs(IndexFamily::Kind, kind.label(), from, n)?
            .len()
            >= n
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("no {} entry appeared within 10 s", kind.label())
}

/// The session: every operation, with and without justification, refusals included.
async fn drive(s: &Session) -> Result<()> {
    println!("  status method path                               actor                what");
    s.send(
        Some(&OKORO),
        Some(BURGLARY),
        "GET",
        "/people?surname=whitcombe",
        None,
        "search (consultation)",
    )
    .await?;
    s.send(
        Some(&OKORO),
        Some(BURGLARY),
        "GET",
        "/people/P-1001",
        None,
        "view a person",
    )
    .await?;
    s.send(
        Some(&OKORO),
        Some(BURGLARY),
        "GET",
        "/events/E-4001",
        None,
        "view the burglary",
    )
    .await?;
    s.send(
        Some(&OKORO),
        Some(BURGLARY),
        "GET",
        "/objects/O-2001",
        None,
        "view a vehicle",
    )
    .await?;
    s.send(
        Some(&PATEL),
        None,
        "GET",
        "/people/P-1002",
        None,
        "no justification given",
    )
    .await?;
    s.send(
        Some(&PATEL),
        Some(THEFT),
        "GET",
        "/people/P-1002",
        None,
        "the same, justified",
    )
    .await?;
    s.send(
        Some(&PATEL),
        Some(THEFT),
        "GET",
        "/locations/L-3002",
        None,
        "view an address",
    )
    .await?;
    let (_, person) = s
        .send(
            Some(&PATEL),
            None,
            "POST",
            "/people",
            Some(
                json!({"given_name": "Ruth", "family_name": "Okafor", "date_of_birth": "1994-05-12",
                        "note": "Witness, saw a white van on Marsh Lane"}),
            ),
            "record a witness (collection)",
        )
        .await?;
    let witness = person["id"].as_str().unwrap_or("P-2000").to_owned();
    s.send(
        Some(&PATEL),
        None,
        "PATCH",
        &format!("/people/{witness}"),
        Some(json!({"note": "Witness; statement taken 2026-11-27"})),
        "update the witness (alteration)",
    )
    .await?;
    s.send(
        Some(&PATEL),
        None,
        "POST",
        "/events",
        Some(
            json!({"category": "statement", "occurred_at": "2026-11-27T10:30:00Z",
                    "people": [{"id": witness, "role": "witness"}]}),
        ),
        "record a statement (collection)",
    )
    .await?;
    s.send(
        Some(&OKORO),
        Some(BURGLARY),
        "PUT",
        &format!("/people/{witness}/links/P-1001"),
        Some(json!({"relation": "witness against", "event_id": "E-4001"})),
        "link witness to suspect (combination)",
    )
    .await?;
    s.send(
        Some(&OKORO),
        Some(FILE_PREP),
        "POST",
        "/exports",
        Some(json!({"recipient": "Crown Prosecution Service (Wessex)",
                    "people": [{"id": "P-1001"}, {"id": "P-1003"}, {"id": witness}]})),
        "send the file to the CPS (disclosure)",
    )
    .await?;
    s.send(
        Some(&OKORO),
        Some(BURGLARY),
        "GET",
        "/events/bulk/2026-10",
        None,
        "bulk download (streamed)",
    )
    .await?;
    s.send(
        Some(&PATEL),
        None,
        "DELETE",
        "/people/P-1011",
        None,
        "erase without a reason",
    )
    .await?;
    s.send(
        Some(&PATEL),
        Some(DUPLICATE),
        "DELETE",
        "/people/P-1011",
        None,
        "erase a duplicate (erasure)",
    )
    .await?;
    s.send(
        None,
        Some(BURGLARY),
        "GET",
        "/people/P-1001",
        None,
        "nobody identified",
    )
    .await?;
    s.send(
        Some(&PATEL),
        Some(THEFT),
        "GET",
        "/admin/users",
        None,
        "a route no rule covers",
    )
    .await?;
    s.send(
        Some(&PATEL),
        None,
        "GET",
        "/health",
        None,
        "health check (no personal data)",
    )
    .await?;
    Ok(())
}

/// Prints what the entries appended from `from` on say.
/// The first intent at or after `from` with a justification text.
fn first_justified(store: &dyn Store, from: u64) -> Result<Option<u64>> {
    let mut next = from;
    loop {
        let batch = store.opened_entries(next, 1000)?;
        let Some(last) = batch.last() else {
            return Ok(None);
        };
        next = last.seq + 1;
        if let Some(o) = batch.iter().find(|o| {
            o.entry.kind == EntryKind::Intent as i32
                && o.entry
                    .justification
                    .as_ref()
                    .is_some_and(|j| !j.text.is_empty())
        }) {
            return Ok(Some(o.seq));
        }
    }
}

fn summarise(store: &dyn Store, from: u64) -> Result<()> {
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_op: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut lines = Vec::new();
    let mut next = from;
    loop {
        let batch = store.opened_entries(next, 1000)?;
        let Some(last) = batch.last() else { break };
        next = last.seq + 1;
        for opened in batch {
            let (seq, e) = (opened.seq, opened.entry.clone());
            let kind = EntryKind::try_from(e.kind).unwrap_or(EntryKind::Unspecified);
            let op = Operation::try_from(e.operation).unwrap_or(Operation::Unspecified);
            *by_kind.entry(kind.label()).or_default() += 1;
            if kind == EntryKind::Intent {
                *by_op.entry(op.label()).or_default() += 1;
            }
            let mut line = describe(seq, &e, kind, op);
            if !opened.redacted.is_empty() {
                let names: Vec<String> = opened.redacted.iter().map(ToString::to_string).collect();
                line.push_str(&format!("  [redacted: {}]", names.join(", ")));
            }
            lines.push(line);
        }
    }
    println!("\nwhat the log now holds (entries {from}..{next}):");
    for l in lines {
        println!("  {l}");
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let ops: Vec<String> = by_op.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!("\nby kind: {}", kinds.join(", "));
    println!("forwarded, by s62 operation: {}", ops.join(", "));
    Ok(())
}

fn describe(seq: u64, e: &Entry, kind: EntryKind, op: Operation) -> String {
    let actor = e.actor.as_ref().map_or("", |a| {
        if a.id.is_empty() {
            "(anonymous)"
        } else {
            a.id.as_str()
        }
    });
    let time = rfc3339_utc(e.time_unix_nanos);
    let route = e.request.as_ref().map_or("", |r| r.route.as_str());
    let mut s = format!(
        "#{seq:<4} {time} {:<11} {:<12} {actor:<15} {route:<20}",
        kind.label(),
        op.label()
    );
    match kind {
        EntryKind::Intent => {
            if !e.subject_ids.is_empty() {
                s.push_str(&format!(" subjects {}", e.subject_ids.join(",")));
            }
            if !e.record_ids.is_empty() {
                s.push_str(&format!(" records {}", e.record_ids.join(",")));
            }
            if !e.recipients.is_empty() {
                s.push_str(&format!(" to \"{}\"", e.recipients.join("\", \"")));
            }
            if let Some(j) = &e.justification {
                s.push_str(&format!(" why {}", j.purpose_code));
                if !j.case_reference.is_empty() {
                    s.push_str(&format!(" ({})", j.case_reference));
                }
            }
        }
        EntryKind::Outcome => {
            if let Some(o) = &e.outcome {
                s.push_str(&format!(
                    " answers #{} status {}",
                    e.answers_seq.unwrap_or(0),
                    o.status
                ));
                if !o.returned_subject_ids.is_empty() {
                    s.push_str(&format!(" returned {}", o.returned_subject_ids.join(",")));
                }
                if !o.returned_record_ids.is_empty() {
                    s.push_str(&format!(" records {}", o.returned_record_ids.join(",")));
                }
                s.push_str(&format!(" {} bytes", o.response_bytes));
                if o.streamed {
                    s.push_str(" streamed");
                }
            }
        }
        EntryKind::Denied => {
            if let Some(d) = &e.denial {
                s.push_str(&format!(" refused: {}", d.reason));
            }
        }
        EntryKind::Admin => {
            if let Some(a) = &e.admin {
                s.push_str(&format!(" {}", a.action));
            }
        }
        EntryKind::AuditQuery => {
            if let Some(q) = &e.audit_query {
                let purpose =
                    AuditPurpose::try_from(q.purpose).unwrap_or(AuditPurpose::Unspecified);
                s.push_str(&format!(" {} for {}", q.call, purpose.label()));
            }
        }
        EntryKind::Redaction => {
            if let Some(r) = &e.redaction {
                let entries: u64 = r.targets.iter().map(|t| t.to_seq - t.from_seq + 1).sum();
                s.push_str(&format!(
                    " removed personal values of {entries} entries ({})",
                    r.reason
                ));
            }
        }
        EntryKind::ErasureCheck => {
            if let Some(c) = &e.erasure_check {
                s.push_str(&format!(
                    " erasure #{} of {}: {} (probe status {})",
                    c.erasure_seq,
                    e.subject_ids.join(","),
                    c.result,
                    c.probe_status
                ));
            }
        }
        EntryKind::Alert => {
            if let Some(a) = &e.alert {
                if a.rule == "zombie" {
                    s.push_str(&format!(
                        " ALERT zombie: {} seen at #{} after erasure #{}",
                        e.subject_ids.join(","),
                        a.sighting_seq,
                        a.related_seq
                    ));
                } else {
                    s.push_str(&format!(
                        " ALERT {}: #{} {}",
                        a.name, a.sighting_seq, a.detail
                    ));
                }
            }
        }
        EntryKind::AlertReview => {
            if let Some(r) = &e.alert_review {
                s.push_str(&format!(" alert #{} reviewed: {}", r.alert_seq, r.outcome));
            }
        }
        EntryKind::Unspecified => {}
    }
    s.trim_end().to_owned()
}

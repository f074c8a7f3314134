//! `s62 demo`: a log in a local folder with a realistic mix of events, its checkpoint, and a
//! verification of it — the whole log core end to end, with nothing else to install.

use crate::ingest::{LogWriter, WriterConfig};
use crate::keys;
use crate::log::entry::{
    Actor, Admin, AuditPurpose, AuditQuery, AuthMethod, Denial, Entry, EntryKind, Justification,
    Operation, Outcome, Request,
};
use crate::log::hash::sha256;
use crate::log::store::rocks::RocksStore;
use crate::log::store::{LogStore, Store};
use crate::verify::{VerifyOptions, verify_store};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;

/// Origin (and key name) of the demo log.
pub const DEMO_ORIGIN: &str = "demo.s62.local/records";

fn officer(id: &str, name: &str) -> Actor {
    Actor {
        id: id.into(),
        display_name: name.into(),
        roles: vec!["investigator".into()],
        source_address: "10.20.30.40:51234".into(),
        auth_method: AuthMethod::Mtls as i32,
    }
}

fn justified(purpose: &str, text: &str, case: &str) -> Option<Justification> {
    Some(Justification {
        purpose_code: purpose.into(),
        text: text.into(),
        case_reference: case.into(),
    })
}

fn request(method: &str, path: &str, route: &str, id: &str, body: &[u8]) -> Option<Request> {
    Some(Request {
        method: method.into(),
        path: path.into(),
        route: route.into(),
        request_id: id.into(),
        body_sha256: if body.is_empty() {
            Vec::new()
        } else {
            sha256(body).0.to_vec()
        },
        body_bytes: body.len() as u64,
    })
}

/// The demo's events: (intent, outcome) pairs and single entries.
fn session() -> Vec<(Entry, Option<Outcome>)> {
    let pc = officer("pc-4521", "PC 4521 Example");
    let ds = officer("ds-1187", "DS 1187 Example");
    let op = |o: Operation| o as i32;
    let intent = EntryKind::Intent as i32;
    let ok = |status: u32, subjects: &[&str], records: &[&str], body: &[u8]| Outcome {
        status,
        returned_subject_ids: subjects.iter().map(|s| s.to_string()).collect(),
        returned_record_ids: records.iter().map(|s| s.to_string()).collect(),
        response_sha256: sha256(body).0.to_vec(),
        response_bytes: body.len() as u64,
        streamed: false,
        error: String::new(),
    };
    vec![
        (
            Entry {
                kind: EntryKind::Admin as i32,
                actor: Some(Actor {
                    id: "s62".into(),
                    auth_method: AuthMethod::Local as i32,
                    ..Default::default()
                }),
                admin: Some(Admin {
                    action: "started".into(),
                    detail: "demo session".into(),
                }),
                ..Default::default()
            },
            None,
        ),
        (
            Entry {
                kind: intent,
                operation: op(Operation::Consultation),
                actor: Some(pc.clone()),
                justification: justified(
                    "investigation",
                    "Witness statement cross-check",
                    "OP-2026-0413",
                ),
                request: request(
                    "GET",
                    "/people?surname=Smith",
                    "people.search",
                    "req-0001",
                    b"",
                ),
                ..Default::default()
            },
            Some(ok(
                200,
                &["P-1001", "P-1002", "P-1003"],
                &["P-1001", "P-1002", "P-1003"],
                b"[{...}]",
            )),
        ),
        (
            Entry {
                kind: intent,
                operation: op(Operation::Consultation),
                actor: Some(pc.clone()),
                justification: justified(
                    "investigation",
                    "Confirm address of witness",
                    "OP-2026-0413",
                ),
                subject_ids: vec!["P-1001".into()],
                record_ids: vec!["P-1001".into()],
                request: request("GET", "/people/P-1001", "people.view", "req-0002", b""),
                ..Default::default()
            },
            Some(ok(200, &["P-1001"], &["P-1001"], b"{\"id\":\"P-1001\"}")),
        ),
        (
            Entry {
                kind: intent,
                operation: op(Operation::Collection),
                actor: Some(pc.clone()),
                subject_ids: vec!["P-2002".into()],
                request: request(
                    "POST",
                    "/people",
                    "people.create",
                    "req-0003",
                    b"{\"surname\":\"Jones\"}",
                ),
                ..Default::default()
            },
            Some(ok(201, &["P-2002"], &["P-2002"], b"{\"id\":\"P-2002\"}")),
        ),
        (
            Entry {
                kind: intent,
                operation: op(Operation::Alteration),
                actor: Some(pc.clone()),
                subject_ids: vec!["P-2002".into()],
                record_ids: vec!["P-2002".into()],
                request: request(
                    "PATCH",
                    "/people/P-2002",
                    "people.alter",
                    "req-0004",
                    b"{\"phone\":\"...\"}",
                ),
                ..Default::default()
            },
            Some(ok(200, &["P-2002"], &["P-2002"], b"{\"id\":\"P-2002\"}")),
        ),
        (
            Entry {
                kind: intent,
                operation: op(Operation::Combination),
                actor: Some(ds.clone()),
                justification: justified(
                    "investigation",
                    "Same person, two records",
                    "OP-2026-0413",
                ),
                subject_ids: vec!["P-1001".into(), "P-2002".into()],
                record_ids: vec!["P-1001".into(), "P-2002".into()],
                request: request(
                    "POST",
                    "/people/P-1001/links/P-2002",
                    "people.link",
                    "req-0005",
                    b"",
                ),
                ..Default::default()
            },
            Some(ok(200, &["P-1001", "P-2002"], &["P-1001", "P-2002"], b"{}")),
        ),
        (
            Entry {
                kind: intent,
                operation: op(Operation::Disclosure),
                actor: Some(ds.clone()),
                justification: justified(
                    "prosecution",
                    "Case file for charging decision",
                    "OP-2026-0413",
                ),
                recipients: vec!["Crown Prosecution Service (Wessex)".into()],
                subject_ids: vec!["P-1001".into()],
                record_ids: vec!["P-1001".into()],
                request: request(
                    "POST",
                    "/exports",
                    "exports.create",
                    "req-0006",
                    b"{\"person\":\"P-1001\"}",
                ),
                ..Default::default()
            },
            Some(ok(200, &["P-1001"], &["P-1001"], b"{\"export\":\"X-77\"}")),
        ),
        (
            Entry {
                kind: intent,
                operation: op(Operation::Erasure),
                actor: Some(ds.clone()),
                justification: justified(
                    "retention",
                    "Retention period ended (MoPI review)",
                    "RR-2026-0099",
                ),
                subject_ids: vec!["P-1003".into()],
                record_ids: vec!["P-1003".into()],
                request: request("DELETE", "/people/P-1003", "people.delete", "req-0007", b""),
                ..Default::default()
            },
            Some(ok(204, &[], &[], b"")),
        ),
        (
            Entry {
                kind: EntryKind::Denied as i32,
                operation: op(Operation::Consultation),
                actor: Some(pc.clone()),
                subject_ids: vec!["P-1002".into()],
                request: request("GET", "/people/P-1002", "people.view", "req-0008", b""),
                denial: Some(Denial {
                    reason: "no_justification".into(),
                    detail: "header x-s62-justification is required for consultation".into(),
                }),
                ..Default::default()
            },
            None,
        ),
        (
            Entry {
                kind: EntryKind::Denied as i32,
                operation: op(Operation::Consultation),
                actor: Some(Actor {
                    source_address: "10.99.0.7:40001".into(),
                    auth_method: AuthMethod::None as i32,
                    ..Default::default()
                }),
                request: request(
                    "GET",
                    "/people?surname=Smith",
                    "people.search",
                    "req-0009",
                    b"",
                ),
                denial: Some(Denial {
                    reason: "no_identity".into(),
                    detail: "no client certificate".into(),
                }),
                ..Default::default()
            },
            None,
        ),
        (
            Entry {
                kind: EntryKind::AuditQuery as i32,
                actor: Some(Actor {
                    id: "auditor-psd-1".into(),
                    display_name: "Professional Standards auditor".into(),
                    auth_method: AuthMethod::Mtls as i32,
                    ..Default::default()
                }),
                audit_query: Some(AuditQuery {
                    purpose: AuditPurpose::SelfMonitoring as i32,
                    case_reference: "PSD-2026-017".into(),
                    call: "SubjectReport".into(),
                    filter_json: "{\"subject\":\"P-1001\"}".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
        ),
    ]
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
    let rt = tokio::runtime::Runtime::new()?;
    let appended = rt.block_on(async {
        let (writer, task) = LogWriter::start(store.clone(), key, WriterConfig::new(DEMO_ORIGIN))?;
        let mut n = 0;
        for (intent, outcome) in session() {
            let receipt = writer.append(intent.clone()).await?;
            n += 1;
            if let Some(outcome) = outcome {
                writer
                    .append(Entry {
                        kind: EntryKind::Outcome as i32,
                        answers_seq: Some(receipt.seq),
                        outcome: Some(outcome),
                        ..intent
                    })
                    .await?;
                n += 1;
            }
        }
        task.shutdown_async().await;
        anyhow::Ok(n)
    })?;
    let (size, note) = store
        .latest_checkpoint()?
        .context("no checkpoint after appending")?;
    println!(
        "appended {appended} entries to {} (log size now {size})",
        data.display()
    );
    println!("\nlatest signed checkpoint:\n{note}");
    let keys = keys::read_verifiers(&pub_path)?;
    let report = verify_store(
        store.as_ref(),
        VerifyOptions {
            keys,
            check_indexes: true,
            ..Default::default()
        },
    )?;
    println!(
        "verified: {} entries, {} checkpoints, root {}",
        report.entries,
        report.checkpoints,
        report.root.to_base64()
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

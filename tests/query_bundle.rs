//! Export bundles for the Commissioner (s62(5)): an honest export verifies offline with
//! `s62 verify-bundle` (exit 0); every kind of tampering is caught (exit 1); a bundle that cannot be
//! checked says so (exit 2). A value a bundle shows as redacted is one a logged redaction entry,
//! proved in the bundle, removed: a value the operator deleted quietly is not passed off as one.

mod query_harness;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use prost::Message;
use query_harness::{Exchange, InMemory, ORIGIN, Pki, TestLog, context};
use s62::log::entry::{AuditPurpose, FORMAT_V3, PersonalField};
use s62::log::epoch::LogKeys;
use s62::log::note::{SignerKey, parse_note};
use s62::log::store::{LogStore, Store, values_key};
use s62::query::QueryError;
use s62::query::client::export_to_file;
use s62::query::export::{ExportPlan, export};
use s62::query::nodes::NodeCache;
use s62::query::pb::{CallContext, Filter, RedactValuesRequest, export_response};
use s62::query::sink::{Stop, VecSink};
use s62::verify::bundle::{BundleError, Line, verify_bundle};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Exported {
    _log: TestLog,
    dir: tempfile::TempDir,
    bundle: PathBuf,
    key: PathBuf,
}

/// The Commissioner exports what `filter` selects into `bundle`, for a request of theirs;
/// returns the number of entries.
async fn commissioner_exports(service: &InMemory, pki: &Pki, filter: Filter, bundle: &Path) -> u64 {
    let ico = pki.client("Casey Commissioner", &[]);
    let mut client = service.client(Some(&ico)).await;
    export_to_file(
        &mut client,
        CallContext {
            purpose: AuditPurpose::CommissionerRequest as i32,
            case_reference: "ICO/RFA0123456".into(),
        },
        filter,
        0,
        bundle,
    )
    .await
    .expect("export")
}

/// A log with traffic, and an export of everything about P-7 made for a Commissioner request.
async fn export_p7() -> Exported {
    let log = TestLog::new();
    log.background(120).await;
    let pki = Pki::new();
    let service = InMemory::start(&log).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("p7.s62bundle");
    let subject = Filter {
        subject: "P-7".into(),
        ..Default::default()
    };
    let n = commissioner_exports(&service, &pki, subject, &bundle).await;
    assert_eq!(n, 6, "P-7 was consulted 3 times: 3 intents, 3 outcomes");
    let key = dir.path().join("log.pub");
    std::fs::write(&key, format!("{}\n", log.key.verifier().to_vkey())).expect("key");
    Exported {
        _log: log,
        dir,
        bundle,
        key,
    }
}

fn verify_cli(bundle: &Path, key: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_s62"))
        .arg("verify-bundle")
        .arg(bundle)
        .arg("--key")
        .arg(key)
        .output()
        .expect("run s62");
    (
        out.status.code().expect("exit code"),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn write_lines(dir: &Path, name: &str, lines: &[Value]) -> PathBuf {
    let p = dir.join(name);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&p, text).expect("write");
    p
}

#[tokio::test]
async fn an_honest_export_verifies_offline_and_shows_it_was_itself_logged() {
    let ex = export_p7().await;
    let (code, out) = verify_cli(&ex.bundle, &ex.key);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("OK: 6 entries of records.example.police.uk/s62"),
        "{out}"
    );

    let keys = LogKeys::parse(&std::fs::read_to_string(&ex.key).expect("log.pub")).expect("keys");
    let report = verify_bundle(
        std::io::BufReader::new(std::fs::File::open(&ex.bundle).expect("open")),
        &keys,
        None,
    )
    .expect("intact");
    let audit = ex._log.entry(report.audit_seq);
    let q = audit.audit_query.expect("the export's audit entry");
    assert_eq!(q.call, "Export");
    assert_eq!(q.purpose, AuditPurpose::CommissionerRequest as i32);
    assert_eq!(q.case_reference, "ICO/RFA0123456");

    // Each entry line stands alone as a c2sp.org/tlog-proof. Check every one with third-party
    // code only: Cloudflare's signed_note (a port of Go's sumdb/note) for the checkpoint against
    // log.pub, and tlog_tiles (a port of Go's sumdb/tlog) for the checkpoint body and the proof.
    let vkey = std::fs::read_to_string(&ex.key).expect("log.pub");
    let verifiers = signed_note::VerifierList::new(vec![Box::new(
        signed_note::StandardVerifier::new(vkey.trim()).expect("vkey"),
    )]);
    let all = lines(&ex.bundle);
    let mut checked = 0;
    for entry in all.iter().filter(|l| l["type"] == "entry") {
        let leaf = B64
            .decode(entry["leaf"].as_str().expect("leaf"))
            .expect("base64");
        let text = entry["tlog_proof"].as_str().expect("proof");
        let (head, checkpoint) = text.split_once("\n\n").expect("blank line");
        let mut head = head.lines();
        assert_eq!(head.next(), Some("c2sp.org/tlog-proof@v1"));
        let index: u64 = head
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .expect("index line")
            .parse()
            .expect("decimal");
        assert_eq!(Some(index), entry["seq"].as_u64());
        let proof: Vec<tlog_tiles::Hash> = head
            .map(|l| tlog_tiles::Hash(B64.decode(l).expect("base64").try_into().expect("32 bytes")))
            .collect();
        let note = signed_note::Note::from_bytes(checkpoint.as_bytes()).expect("a signed note");
        note.verify(&verifiers).expect("signed by the log's key");
        let cp = tlog_tiles::Checkpoint::from_bytes(note.text()).expect("tlog-checkpoint");
        tlog_tiles::check_record(
            &proof,
            cp.size(),
            *cp.hash(),
            index,
            tlog_tiles::record_hash(&leaf),
        )
        .expect("the entry is in the signed tree");
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[tokio::test]
async fn a_changed_entry_is_rejected() {
    let ex = export_p7().await;
    let mut all = lines(&ex.bundle);
    let mut leaf = B64
        .decode(all[2]["leaf"].as_str().expect("leaf"))
        .expect("base64");
    let mid = leaf.len() / 2;
    leaf[mid] ^= 0x20;
    all[2]["leaf"] = Value::from(B64.encode(&leaf));
    let bad = write_lines(ex.dir.path(), "changed.s62bundle", &all);
    let (code, out) = verify_cli(&bad, &ex.key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("line 3") && out.contains("inclusion proof does not verify"),
        "{out}"
    );
}

#[tokio::test]
async fn a_dropped_proof_node_is_rejected() {
    let ex = export_p7().await;
    let mut all = lines(&ex.bundle);
    let proof = all[4]["tlog_proof"].as_str().expect("proof").to_owned();
    let mut parts: Vec<&str> = proof.splitn(2, "\n\n").collect();
    let head: Vec<&str> = parts[0].lines().collect();
    assert!(head.len() > 3, "the proof has nodes to drop");
    let shortened = [&head[..2], &head[3..]].concat().join("\n");
    parts[0] = &shortened;
    all[4]["tlog_proof"] = Value::from(parts.join("\n\n"));
    let bad = write_lines(ex.dir.path(), "short.s62bundle", &all);
    let (code, out) = verify_cli(&bad, &ex.key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("line 5") && out.contains("wrong proof length"),
        "{out}"
    );
}

#[tokio::test]
async fn a_checkpoint_re_signed_with_another_key_is_rejected() {
    let ex = export_p7().await;
    let mut all = lines(&ex.bundle);
    let Ok(Line::Header(header)) = serde_json::from_value::<Line>(all[0].clone()) else {
        panic!("a header first");
    };
    // Someone with a key of the same name signs the same tree head and swaps it in everywhere,
    // including the key the bundle names.
    let forger = SignerKey::from_seed(ORIGIN, [99u8; 32]).expect("key");
    let text = parse_note(&header.checkpoint).expect("note").text;
    let forged = forger.sign_note(&text).expect("signs");
    let swap = |v: &mut Value, field: &str| {
        let s = v[field]
            .as_str()
            .expect("string")
            .replace(&header.checkpoint, &forged);
        v[field] = Value::from(s);
    };
    swap(&mut all[0], "checkpoint");
    swap(&mut all[0]["audit"], "tlog_proof");
    all[0]["verifier_key"] = Value::from(forger.verifier().to_vkey());
    for line in all.iter_mut().skip(1) {
        if line["type"] == "entry" {
            swap(line, "tlog_proof");
        }
    }
    let bad = write_lines(ex.dir.path(), "resigned.s62bundle", &all);
    let (code, out) = verify_cli(&bad, &ex.key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("line 1") && out.contains("checkpoint"),
        "{out}"
    );

    // The forger's own key, of course, accepts it: the trust is in the key pinned out of band.
    let forger_key = write_lines(ex.dir.path(), "forger.pub", &[]);
    std::fs::write(&forger_key, format!("{}\n", forger.verifier().to_vkey())).expect("write");
    assert_eq!(verify_cli(&bad, &forger_key).0, 0);
}

#[tokio::test]
async fn truncated_shortened_reordered_moved_and_padded_bundles_are_rejected() {
    let ex = export_p7().await;
    let all = lines(&ex.bundle);
    let n = all.len();

    let truncated = write_lines(ex.dir.path(), "truncated", &all[..n - 1]);
    let (code, out) = verify_cli(&truncated, &ex.key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("end line is missing"), "{out}");

    let mut dropped = all.clone();
    dropped.remove(2);
    let (code, out) = verify_cli(&write_lines(ex.dir.path(), "dropped", &dropped), &ex.key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the end line says 6 entries"), "{out}");

    // A careful editor drops an entry and fixes the end count: the export's audit entry still
    // commits to the six it selected.
    let mut quiet = all.clone();
    quiet.remove(2);
    let end = quiet.len() - 1;
    quiet[end]["entries"] = Value::from(5);
    let (code, out) = verify_cli(&write_lines(ex.dir.path(), "quiet", &quiet), &ex.key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not the ones its export committed to"),
        "{out}"
    );

    let mut swapped = all.clone();
    swapped.swap(1, 2);
    let (code, out) = verify_cli(&write_lines(ex.dir.path(), "swapped", &swapped), &ex.key);
    assert_eq!(code, 1, "{out}");

    let mut moved = all.clone();
    moved[3]["seq"] = Value::from(moved[3]["seq"].as_u64().expect("seq") + 1);
    let (code, out) = verify_cli(&write_lines(ex.dir.path(), "moved", &moved), &ex.key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("its proof is for index"), "{out}");

    let mut padded = all.clone();
    padded.push(all[1].clone());
    let (code, out) = verify_cli(&write_lines(ex.dir.path(), "padded", &padded), &ex.key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("content after the end line"), "{out}");
}

#[tokio::test]
async fn a_header_that_misstates_the_filter_the_auditor_or_the_case_is_rejected() {
    let ex = export_p7().await;
    let all = lines(&ex.bundle);
    for (field, value) in [
        ("filter", serde_json::json!({"filter": {"subject": "P-8"}})),
        ("auditor", Value::from("Somebody Else")),
        ("purpose", Value::from("lawfulness")),
        ("case_reference", Value::from("PSD-2026-999")),
    ] {
        let mut edited = all.clone();
        edited[0][field] = value;
        let (code, out) = verify_cli(&write_lines(ex.dir.path(), field, &edited), &ex.key);
        assert_eq!(code, 1, "{field}: {out}");
        assert!(
            out.contains(&format!(
                "the header's {field} is not what the export's audit entry"
            )),
            "{field}: {out}"
        );
    }
}

#[tokio::test]
async fn a_bundle_for_another_origin_is_tampered_not_unverifiable() {
    let ex = export_p7().await;
    let mut all = lines(&ex.bundle);
    all[0]["origin"] = Value::from("elsewhere.example/log");
    let (code, out) = verify_cli(&write_lines(ex.dir.path(), "moved", &all), &ex.key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("elsewhere.example/log"), "{out}");
}

#[tokio::test]
async fn a_bundle_that_cannot_be_checked_exits_2() {
    let ex = export_p7().await;
    let missing_key = ex.dir.path().join("no-such.pub");
    assert_eq!(verify_cli(&ex.bundle, &missing_key).0, 2);
    assert_eq!(
        verify_cli(&ex.dir.path().join("no-such-bundle"), &ex.key).0,
        2
    );
    // Two keys and no word on which signed when: the bundle's checkpoint cannot be placed.
    let two = format!(
        "{}\n{}\n",
        ex._log.key.verifier().to_vkey(),
        SignerKey::from_seed(ORIGIN, [98u8; 32])
            .expect("key")
            .verifier()
            .to_vkey()
    );
    let keys = LogKeys::parse(&two).expect("keys");
    assert!(matches!(
        verify_bundle(
            std::io::BufReader::new(std::fs::File::open(&ex.bundle).expect("open")),
            &keys,
            None
        ),
        Err(BundleError::CouldNotRun(_))
    ));
}

/// A log where pc-9 looked up P-100 (an intent, and an outcome returning P-100 and P-101) amid
/// other traffic, served to a DPO and to the Commissioner.
struct Lookup {
    log: TestLog,
    service: InMemory,
    pki: Pki,
    intent: u64,
    dir: tempfile::TempDir,
    key: PathBuf,
}

async fn pc9_looks_up_p100() -> Lookup {
    let log = TestLog::new();
    log.background(20).await;
    let (intent, _) = log
        .exchange(Exchange {
            actor: "pc-9",
            asked: &["P-100"],
            returned: &["P-100", "P-101"],
            why: "checking an alibi",
            ..Exchange::default()
        })
        .await;
    log.background(5).await;
    let service = InMemory::start(&log).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("log.pub");
    std::fs::write(&key, format!("{}\n", log.key.verifier().to_vkey())).expect("key");
    Lookup {
        log,
        service,
        pki: Pki::new(),
        intent,
        dir,
        key,
    }
}

/// The DPO erases P-100's ids after a subject access request; returns the redaction entry's seq.
async fn erase_p100(l: &Lookup) -> u64 {
    let dpo = l.pki.client("Dana DPO", &["dpo@example.police.uk"]);
    let mut client = l.service.client(Some(&dpo)).await;
    client
        .redact_values(RedactValuesRequest {
            context: context(),
            filter: Some(Filter {
                subject: "P-100".into(),
                ..Default::default()
            }),
            reason: "erasure-request".into(),
            fields: vec!["subject_id".into(), "returned_subject_id".into()],
            detail: "SAR-2026-0193".into(),
            max_entries: 0,
        })
        .await
        .expect("the DPO may redact")
        .into_inner()
        .redaction_seq
        .expect("a redaction entry")
}

/// The Commissioner exports everything pc-9 did.
async fn export_pc9(l: &Lookup, name: &str) -> PathBuf {
    let bundle = l.dir.path().join(name);
    let actor = Filter {
        actor: "pc-9".into(),
        ..Default::default()
    };
    let n = commissioner_exports(&l.service, &l.pki, actor, &bundle).await;
    assert_eq!(n, 2, "pc-9's intent and outcome");
    bundle
}

#[tokio::test]
async fn a_value_deleted_without_a_redaction_entry_is_not_passed_off_as_redacted_in_a_bundle() {
    let l = pc9_looks_up_p100().await;
    // The operator removes the subject id from the intent's stored values exactly as a redaction
    // would (format 3: its commitment kept, the entry seed swapped for the other salts), and
    // writes no redaction entry.
    let mut row = l.log.store.values(l.intent).expect("row reads");
    let removed = s62::log::seal::redact_values(FORMAT_V3, &mut row, |f, _| {
        f == PersonalField::SubjectId as i32
    });
    assert_eq!(removed, 1);
    l.log
        .store
        .write(&[(values_key(l.intent), row.encode_to_vec())])
        .expect("raw write");

    let bundle = export_pc9(&l, "quiet.s62bundle").await;
    let all = lines(&bundle);
    assert!(
        all.iter().all(|line| line["type"] != "redaction"),
        "there is no redaction entry to carry"
    );
    let (code, out) = verify_cli(&bundle, &l.key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "entry {}: its subject_id[0] is no longer stored and no redaction entry in the bundle removed it",
            l.intent
        )),
        "{out}"
    );
}

#[tokio::test]
async fn a_bundle_proves_the_redaction_entry_behind_each_redacted_value() {
    let l = pc9_looks_up_p100().await;
    let redaction_seq = erase_p100(&l).await;

    let bundle = export_pc9(&l, "redacted.s62bundle").await;
    let (code, out) = verify_cli(&bundle, &l.key);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("3 personal value(s) are redacted")
            && out.contains("one of the 1 redaction entries the bundle proves"),
        "{out}"
    );
    let all = lines(&bundle);
    let at = all
        .iter()
        .position(|line| line["type"] == "redaction")
        .expect("a redaction line");
    assert_eq!(all[at]["seq"].as_u64(), Some(redaction_seq));
    assert!(
        all[at].get("values").is_none(),
        "who asked for the redaction stays in the log"
    );
    let end = all.len() - 1;
    assert_eq!(all[end]["redactions"], 1);

    // The redaction line dropped, the end line made to agree: the values look deleted.
    let mut dropped = all.clone();
    dropped.remove(at);
    let last = dropped.len() - 1;
    dropped[last]["redactions"] = Value::from(0);
    let (code, out) = verify_cli(&write_lines(l.dir.path(), "dropped", &dropped), &l.key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("entry {}: its subject_id[0]", l.intent))
            && out.contains("no redaction entry in the bundle removed it"),
        "{out}"
    );

    // Another proved entry presented as the redaction.
    let mut swapped = all.clone();
    let intent_line = all
        .iter()
        .find(|line| line["type"] == "entry" && line["seq"].as_u64() == Some(l.intent))
        .expect("the intent's line");
    swapped[at] = intent_line.clone();
    swapped[at]["type"] = Value::from("redaction");
    swapped[at]
        .as_object_mut()
        .expect("object")
        .remove("values");
    let (code, out) = verify_cli(&write_lines(l.dir.path(), "swapped", &swapped), &l.key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not a redaction entry"), "{out}");

    // The end line understating what the bundle holds.
    let mut understated = all.clone();
    understated[end]["redactions"] = Value::from(0);
    let (code, out) = verify_cli(
        &write_lines(l.dir.path(), "understated", &understated),
        &l.key,
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the end line says 0 redaction entries"),
        "{out}"
    );

    // The redaction line moved before an entry line.
    let mut early = all.clone();
    let line = early.remove(at);
    early.insert(1, line);
    let (code, out) = verify_cli(&write_lines(l.dir.path(), "early", &early), &l.key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("an entry line after the redaction lines"),
        "{out}"
    );
}

#[tokio::test]
async fn a_value_redacted_while_an_export_runs_stops_the_export_rather_than_look_deleted() {
    let l = pc9_looks_up_p100().await;
    // The export's checkpoint is fixed (here: the log as it is now), then a redaction commits
    // before the export reads the entries: the values are gone, and the redaction entry is past
    // the checkpoint every line of the bundle is proved against.
    let fixed = l.log.size();
    assert!(
        l.log.store.checkpoint(fixed).expect("read").is_some(),
        "a signed checkpoint of the log as it is"
    );
    let redaction_seq = erase_p100(&l).await;
    assert!(redaction_seq >= fixed);

    let mut sink = VecSink::default();
    let stopped = export(
        l.log.store.as_ref(),
        &NodeCache::new(),
        ExportPlan {
            seqs: vec![l.intent],
            audit_seq: fixed - 1,
            checkpoint_size: fixed,
            verifier: &l.log.key.verifier(),
        },
        &mut sink,
    );
    match stopped {
        Err(Stop::Failed(QueryError::FailedPrecondition(why))) => {
            assert!(
                why.contains(&format!("entry {} was redacted", l.intent))
                    && why.contains("export again"),
                "{why}"
            );
        }
        other => panic!("the export went on: {other:?}"),
    }
    assert!(
        !sink
            .items
            .iter()
            .any(|i| matches!(i.item, Some(export_response::Item::End(_)))),
        "no end marker: the client keeps no bundle"
    );
}

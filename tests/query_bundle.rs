//! Export bundles for the Commissioner (s62(5)): an honest export verifies offline with
//! `s62 verify-bundle` (exit 0); every kind of tampering is caught (exit 1); a bundle that cannot be
//! checked says so (exit 2).

mod query_harness;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use query_harness::{InMemory, ORIGIN, Pki, TestLog};
use s62::log::entry::AuditPurpose;
use s62::log::epoch::LogKeys;
use s62::log::note::{SignerKey, parse_note};
use s62::query::client::export_to_file;
use s62::query::pb::{CallContext, Filter};
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

/// A log with traffic, and an export of everything about P-7 made for a Commissioner request.
async fn export_p7() -> Exported {
    let log = TestLog::new();
    log.background(120).await;
    let pki = Pki::new();
    let ico = pki.client("Casey Commissioner", &[]);
    let service = InMemory::start(&log).await;
    let mut client = service.client(Some(&ico)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("p7.s62bundle");
    let n = export_to_file(
        &mut client,
        CallContext {
            purpose: AuditPurpose::CommissionerRequest as i32,
            case_reference: "ICO/RFA0123456".into(),
        },
        Filter {
            subject: "P-7".into(),
            ..Default::default()
        },
        0,
        &bundle,
    )
    .await
    .expect("export");
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

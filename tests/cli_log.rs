//! The log core through the `s62` binary, the way an operator or the ICO would use it: run the
//! demo, read and verify the log, check it with other people's implementations, tamper with it.

use base64::Engine;
use s62::log::store::rocks::RocksStore;
use s62::log::store::{LogStore, Store, entry_key};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn s62(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(args)
        .output()
        .expect("s62 runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn demo(dir: &Path) -> (String, String) {
    let out = s62(&["demo", "--data-dir", dir.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "demo failed: {}", text(&out.stderr));
    let data = dir.join("data").to_string_lossy().into_owned();
    let key = dir.join("log.pub").to_string_lossy().into_owned();
    (data, key)
}

fn verify(data: &str, key: &str, extra: &[&str]) -> Output {
    let mut args = vec!["verify", "--data-dir", data, "--key", key];
    args.extend_from_slice(extra);
    s62(&args)
}

/// The RFC 6962 root of `leaves`, computed with tlog_tiles (Cloudflare's port of Go's sumdb/tlog).
fn third_party_root(leaves: &[Vec<u8>]) -> [u8; 32] {
    use tlog_tiles::{Hash, HashReader, stored_hashes, tree_hash};
    struct Stored(std::cell::RefCell<Vec<Hash>>);
    impl HashReader for Stored {
        fn read_hashes(&self, idx: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            let s = self.0.borrow();
            Ok(idx.iter().map(|i| s[*i as usize]).collect())
        }
    }
    let stored = Stored(Default::default());
    for (n, leaf) in leaves.iter().enumerate() {
        let new = stored_hashes(n as u64, leaf, &stored).expect("stored hashes");
        stored.0.borrow_mut().extend(new);
    }
    tree_hash(leaves.len() as u64, &stored)
        .expect("tree hash")
        .0
}

#[test]
fn the_demo_log_verifies_and_other_implementations_agree_with_its_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = demo(dir.path());

    let out = verify(&data, &key, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).starts_with("OK:"));

    let note = s62(&["checkpoint", "--data-dir", &data]);
    assert!(note.status.success());
    // Recipients are personal data: they print only for a stated purpose (the read is logged
    // after the demo's entries, so the checkpoint above still covers exactly what is printed).
    let key_file = dir.path().join("log.key").to_string_lossy().into_owned();
    let entries = s62(&[
        "entries",
        "--data-dir",
        &data,
        "--key-file",
        &key_file,
        "--purpose",
        "integrity-and-security",
        "--case-ref",
        "CLI-LOG-TEST",
        "--actor",
        "cli-log-test",
    ]);
    assert!(entries.status.success(), "{}", text(&entries.stderr));
    let lines: Vec<serde_json::Value> = text(&entries.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let leaves: Vec<Vec<u8>> = lines
        .iter()
        .map(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v["leaf"].as_str().expect("leaf"))
                .expect("base64")
        })
        .collect();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|v| v["kind"].as_str().expect("kind"))
        .collect();
    for kind in ["intent", "outcome", "denied", "audit-query", "admin"] {
        assert!(kinds.contains(&kind), "the demo logs a {kind} entry");
    }
    for op in [
        "collection",
        "alteration",
        "consultation",
        "disclosure",
        "combination",
        "erasure",
    ] {
        assert!(
            lines.iter().any(|v| v["operation"] == op),
            "the demo logs a {op}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|v| v["recipients"][0] == "Crown Prosecution Service (Wessex)")
    );

    // Cloudflare's signed_note (a port of golang.org/x/mod/sumdb/note) verifies the checkpoint
    // against log.pub ...
    let vkey = std::fs::read_to_string(&key).expect("log.pub");
    let verifier = signed_note::StandardVerifier::new(vkey.trim()).expect("vkey parses");
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    let parsed = signed_note::Note::from_bytes(&note.stdout).expect("a signed note");
    let (verified, _) = parsed.verify(&list).expect("signature verifies");
    assert_eq!(verified.len(), 1);
    // ... tlog_tiles parses it as a c2sp.org/tlog-checkpoint ...
    let cp = tlog_tiles::Checkpoint::from_bytes(parsed.text()).expect("checkpoint parses");
    assert_eq!(cp.origin(), s62::demo::DEMO_ORIGIN);
    assert_eq!(cp.size(), leaves.len() as u64);
    // ... and its root is the RFC 6962 root of the `leaf` bytes `s62 entries` printed.
    assert_eq!(cp.hash().0, third_party_root(&leaves));
}

#[test]
fn a_flipped_bit_makes_verify_exit_1_naming_the_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = demo(dir.path());
    {
        let store = RocksStore::open(Path::new(&data)).expect("open");
        let mut bytes = store.entry(5).expect("read").expect("present");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x20;
        store.write(&[(entry_key(5), bytes)]).expect("tamper");
    }
    let out = verify(&data, &key, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("entry 5:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_rolled_back_folder_is_caught_by_a_kept_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = demo(dir.path());
    let old = dir.path().join("old-copy");
    copy_dir(Path::new(&data), &old);
    let (_, _) = demo(dir.path()); // the log grows
    let kept = dir.path().join("kept-checkpoint.txt");
    let note = s62(&["checkpoint", "--data-dir", &data]);
    std::fs::write(&kept, &note.stdout).expect("keep a copy");
    // The operator restores the older copy of the folder.
    std::fs::remove_dir_all(&data).expect("rm");
    copy_dir(&old, Path::new(&data));

    let plain = verify(&data, &key, &[]);
    assert_eq!(
        plain.status.code(),
        Some(0),
        "on its own the older log is internally consistent"
    );
    let out = verify(
        &data,
        &key,
        &["--trust-checkpoint", kept.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("truncation or rollback"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_log_checked_against_another_key_is_not_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = demo(dir.path());
    let other = dir.path().join("other");
    assert!(
        s62(&[
            "keygen",
            "--origin",
            s62::demo::DEMO_ORIGIN,
            "--out",
            other.to_str().expect("utf-8")
        ])
        .status
        .success()
    );
    let out = verify(&data, other.join("log.pub").to_str().expect("utf-8"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn verify_that_cannot_run_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, key) = demo(dir.path());
    let missing = dir.path().join("no-such-log");
    assert_eq!(
        verify(missing.to_str().expect("utf-8"), &key, &[])
            .status
            .code(),
        Some(2)
    );
    let (data, _) = (dir.path().join("data"), ());
    assert_eq!(
        verify(data.to_str().expect("utf-8"), "/nonexistent/log.pub", &[])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn entries_and_verify_work_while_a_writer_is_appending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = demo(dir.path());
    let demo_size = entry_count(&data);
    let mut writer = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_s62"))
            .args([
                "stress-append",
                "--producers",
                "4",
                "--data-dir",
                &data,
                "--key-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("writer starts"),
    );
    // The writer prints `seq leaf checkpoint_size` for each acknowledged entry.
    let receipts = receipt_lines(writer.0.stdout.take().expect("piped"));
    let wait = std::time::Duration::from_secs(20);
    let first = receipts.recv_timeout(wait).expect("the writer appends");
    let first_seq = receipt_seq(&first);
    assert!(
        first_seq >= demo_size,
        "appends go after the demo's entries"
    );

    let entries = s62(&[
        "entries",
        "--data-dir",
        &data,
        "--from",
        "3",
        "--limit",
        "5",
    ]);
    let v = verify(&data, &key, &[]);
    let verified = verified_entries(&v);
    // The writer was still appending after verify's snapshot: it acknowledges an entry verify
    // did not see.
    let deadline = std::time::Instant::now() + wait;
    loop {
        let line = receipts
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the writer keeps appending after verify");
        if receipt_seq(&line) >= verified {
            break;
        }
    }
    drop(writer);

    assert!(entries.status.success(), "{}", text(&entries.stderr));
    let seqs: Vec<u64> = text(&entries.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["seq"]
                .as_u64()
                .expect("seq")
        })
        .collect();
    assert_eq!(seqs, [3, 4, 5, 6, 7]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "a live log verifies: {}",
        text(&v.stderr)
    );
    assert!(
        verified > first_seq,
        "verify covered {verified} entries; entry {first_seq} was acknowledged before it ran"
    );
}

/// A child process that is killed and reaped when the test ends, passing or failing.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The seq of a `seq leaf checkpoint_size` receipt line.
fn receipt_seq(line: &str) -> u64 {
    line.split(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("receipt {line:?}"))
}

/// `OK: <n> entries of ...` → n (0 when verify did not say OK).
fn verified_entries(out: &Output) -> u64 {
    text(&out.stdout)
        .strip_prefix("OK: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The number of entries in the log at `data` (read through `s62 checkpoint`).
fn entry_count(data: &str) -> u64 {
    let note = s62(&["checkpoint", "--data-dir", data]);
    assert!(note.status.success(), "{}", text(&note.stderr));
    text(&note.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("checkpoint size line")
}

/// Lines of a child's stdout, as they come, on a channel.
fn receipt_lines(out: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

#[test]
fn a_rotated_key_verifies_across_the_boundary_with_the_published_key_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, old_pub) = demo(dir.path());
    let new_dir = dir.path().join("keys-2027");
    let d = dir.path().to_str().expect("utf-8");
    let n = new_dir.to_str().expect("utf-8");
    let out = s62(&[
        "rotate-key",
        "--data-dir",
        &data,
        "--key-dir",
        d,
        "--new-key-dir",
        n,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The sidecar restarts on the new key and keeps logging.
    let more = s62(&[
        "stress-append",
        "--data-dir",
        &data,
        "--key-dir",
        n,
        "--producers",
        "2",
        "--count",
        "20",
    ]);
    assert!(more.status.success(), "{}", text(&more.stderr));

    let key_set = new_dir.join("log.pub");
    let both = verify(&data, key_set.to_str().expect("utf-8"), &[]);
    assert_eq!(both.status.code(), Some(0), "{}", text(&both.stderr));
    let old_only = verify(&data, &old_pub, &[]);
    assert_eq!(
        old_only.status.code(),
        Some(1),
        "checkpoints after the handover are not the old key's"
    );
    let rotation = text(&s62(&["entries", "--data-dir", &data]).stdout)
        .lines()
        .filter(|l| l.contains("key_rotated"))
        .count();
    assert_eq!(rotation, 1, "the handover is itself in the log");
}

//! Crash safety: a real `s62` child process appends from 16 concurrent producers and is killed
//! with SIGKILL at varied moments, many rounds over one log folder. After every kill, each receipt
//! the child printed (it prints only after the entry was acknowledged) must be in the log with
//! the same leaf hash, and the whole log must verify: chain, tree and checkpoints agree, and no
//! half batch is visible.

use s62::keys;
use s62::log::hash::{Hash, leaf_hash};
use s62::log::store::LogStore;
use s62::log::store::rocks::RocksStore;
use s62::verify::{VerifyOptions, verify_store};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: u64 = 12;

#[test]
fn acknowledged_entries_survive_sigkill_at_any_moment() {
    let dir = tempfile::tempdir().expect("tempdir");
    keys::generate(dir.path(), "crash.test/log").expect("keygen");
    let (_, pub_path) = keys::key_paths(dir.path());
    let data = dir.path().join("data");
    let mut total_receipts = 0u64;

    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_s62"))
            .args(["stress-append", "--producers", "16", "--data-dir"])
            .arg(&data)
            .arg("--key-dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("child starts");
        let stdout = child.stdout.take().expect("piped");
        // Kill after a varying number of receipts: right after the first, mid-stream, or later.
        let kill_after = [1u64, 7, 150, 2_000, 20_000, 600][(round % 6) as usize];
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while (lines.len() as u64) < kill_after && Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(l) => lines.push(l),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        reader.join().expect("reader");
        // Lines printed before the kill were acknowledged too.
        lines.extend(rx.try_iter());
        assert!(
            !lines.is_empty(),
            "round {round}: the child acknowledged nothing before the kill"
        );

        let store = RocksStore::open(&data).expect("the folder reopens after SIGKILL");
        for line in &lines {
            let mut parts = line.split(' ');
            let (Some(seq), Some(leaf), Some(cp)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("round {round}: unexpected child output {line:?}");
            };
            assert_ne!(seq, "error", "round {round}: the child reported {line:?}");
            let seq: u64 = seq.parse().expect("seq");
            let cp: u64 = cp.parse().expect("checkpoint size");
            let stored = store
                .entry(seq)
                .expect("read")
                .unwrap_or_else(|| panic!("round {round}: acknowledged entry {seq} is missing"));
            assert_eq!(
                leaf_hash(&stored).to_hex(),
                leaf,
                "round {round}: entry {seq} changed"
            );
            assert!(
                store.checkpoint(cp).expect("read").is_some(),
                "round {round}: the checkpoint covering entry {seq} is missing"
            );
        }
        let report = verify_store(
            &store,
            VerifyOptions {
                keys: keys::read_verifiers(&pub_path).expect("pub key"),
                check_indexes: true,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("round {round}: the log does not verify after SIGKILL: {e}"));
        let max_acked = lines
            .iter()
            .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
            .max();
        assert!(report.entries > max_acked.unwrap_or(0));
        assert_ne!(report.root, Hash::default());
        total_receipts += lines.len() as u64;
    }
    assert!(
        total_receipts >= ROUNDS,
        "every round checked at least one acknowledged entry"
    );
}

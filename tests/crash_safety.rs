//! Crash safety: a real `s62` child process appends from 16 concurrent producers and is killed
//! with SIGKILL at varied moments, many rounds over one log folder. After every kill, each receipt
//! the child printed in this round or any earlier one (it prints only after the entry was
//! acknowledged) must be in the log with the same leaf hash; a restarted writer signs the entries
//! the crash left unsigned and appends after what was there; the whole log then verifies, its root
//! is the RFC 6962 root another implementation computes from the stored leaves, and no half batch
//! is visible (the latest signed checkpoint covers every stored entry).
#![cfg(unix)]

use s62::keys;
use s62::log::hash::leaf_hash;
use s62::log::store::LogStore;
use s62::log::store::rocks::RocksStore;
use s62::verify::{VerifyOptions, verify_store};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: u64 = 12;

#[test]
fn acknowledged_entries_survive_sigkill_at_any_moment() {
    let dir = tempfile::tempdir().expect("tempdir");
    keys::generate(dir.path(), "crash.test/log").expect("keygen");
    let (_, pub_path) = keys::key_paths(dir.path());
    let data = dir.path().join("data");
    // Every acknowledgement so far, from every round: seq → leaf hash (hex).
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    let mut size_before = 0u64;

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
        let status = child.wait().expect("reaped");
        assert_eq!(
            status.signal(),
            Some(9),
            "round {round}: the child was still appending when killed, not exited ({status:?})"
        );
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
            let stored = store
                .entry(seq)
                .expect("read")
                .unwrap_or_else(|| panic!("round {round}: acknowledged entry {seq} is missing"));
            assert_eq!(
                leaf_hash(&stored).to_hex(),
                leaf,
                "round {round}: entry {seq} changed"
            );
            // `-`: durable, signed by a later checkpoint (or by the restart, below).
            if cp != "-" {
                let cp: u64 = cp.parse().expect("checkpoint size");
                assert!(
                    store.checkpoint(cp).expect("read").is_some(),
                    "round {round}: the checkpoint covering entry {seq} is missing"
                );
            }
            assert!(
                seq >= size_before,
                "round {round}: entry {seq} was written over the {size_before} entries already there"
            );
            acknowledged.insert(seq, leaf.to_owned());
        }
        // Earlier rounds' acknowledgements survive this round's crash too.
        for (seq, leaf) in &acknowledged {
            let stored = store.entry(*seq).expect("read").unwrap_or_else(|| {
                panic!("round {round}: entry {seq}, acknowledged in an earlier round, is missing")
            });
            assert_eq!(
                &leaf_hash(&stored).to_hex(),
                leaf,
                "round {round}: entry {seq} changed"
            );
        }
        // Entries after the latest checkpoint are durable but unsigned: the restarted writer
        // checks and signs them before appending (here it then appends nothing and stops).
        drop(store);
        let restart = Command::new(env!("CARGO_BIN_EXE_s62"))
            .args([
                "stress-append",
                "--producers",
                "1",
                "--count",
                "0",
                "--data-dir",
            ])
            .arg(&data)
            .arg("--key-dir")
            .arg(dir.path())
            .output()
            .expect("restart runs");
        assert!(
            restart.status.success(),
            "round {round}: the writer did not restart on the crashed folder: {}",
            String::from_utf8_lossy(&restart.stderr)
        );
        let store = RocksStore::open(&data).expect("the folder reopens");
        let report = verify_store(
            &store,
            VerifyOptions::new(keys::read_log_keys(&pub_path).expect("pub key")),
        )
        .unwrap_or_else(|e| panic!("round {round}: the log does not verify after SIGKILL: {e}"));
        let max_acked = lines
            .iter()
            .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
            .max();
        assert!(report.entries > max_acked.unwrap_or(0));
        // No half batch: after the restart the latest signed checkpoint covers exactly the stored
        // entries, and its root is what another RFC 6962 implementation computes from the
        // stored leaves.
        let stored = store.entry_count().expect("count");
        let (cp_size, _) = store
            .latest_checkpoint()
            .expect("read")
            .expect("a checkpoint");
        assert_eq!(
            (report.entries, cp_size),
            (stored, stored),
            "round {round}: entries beyond the latest checkpoint"
        );
        let leaves: Vec<Vec<u8>> = store
            .entries(0, stored as usize)
            .expect("read")
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
        assert_eq!(
            report.root.as_bytes(),
            &third_party_root(&leaves),
            "round {round}: the verified root is not the RFC 6962 root of the stored leaves"
        );
        size_before = stored;
    }
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

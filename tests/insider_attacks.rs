//! Insiders against a real log folder, through the `s62` binary (issue 8). Each scenario is an
//! attack by someone with write access to the RocksDB folder — the operator, or anyone with disk
//! access — and, where stated, a signing key: first the attack, then what catches it (the writer
//! refusing to start, or `s62 verify` exiting 1 naming the size or seq).

use s62::log::checkpoint::Checkpoint;
use s62::log::entry::{self, Justification};
use s62::log::hash::{Hash, leaf_hash};
use s62::log::index::index_records;
use s62::log::merkle::Frontier;
use s62::log::note::SignerKey;
use s62::log::store::{checkpoint_key, entry_key, index_key, node_row_key, values_key};
use std::path::Path;
use std::process::{Command, Output};

fn s62(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(args)
        .output()
        .expect("s62 runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

const ORIGIN: &str = "insider.s62.test/records";

/// A fresh key in `dir/key` and a log of `count` entries in `dir/data`, written by the real writer.
fn log_with(dir: &Path, count: u64) {
    let out = s62(&["keygen", "--origin", ORIGIN, "--out", p(&dir.join("key"))]);
    assert!(out.status.success(), "{}", text(&out));
    append(dir, "key", count);
}

fn append(dir: &Path, key_dir: &str, count: u64) -> Output {
    s62(&[
        "stress-append",
        "--data-dir",
        p(&dir.join("data")),
        "--key-dir",
        p(&dir.join(key_dir)),
        "--producers",
        "1",
        "--count",
        &count.to_string(),
    ])
}

/// `s62 rotate-key` from `dir/key` to a new key in `dir/new`.
fn rotate(dir: &Path) {
    let rot = s62(&[
        "rotate-key",
        "--data-dir",
        p(&dir.join("data")),
        "--key-dir",
        p(&dir.join("key")),
        "--new-key-dir",
        p(&dir.join("new")),
    ]);
    assert!(rot.status.success(), "{}", text(&rot));
}

fn verify(dir: &Path, key_dir: &str) -> Output {
    s62(&[
        "verify",
        "--data-dir",
        p(&dir.join("data")),
        "--key",
        p(&dir.join(key_dir).join("log.pub")),
    ])
}

/// The insider's view of the folder: RocksDB itself, no s62 code in the way.
struct Folder(rocksdb::DB);

impl Folder {
    fn open(dir: &Path) -> Folder {
        let mut opts = rocksdb::Options::default();
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        Folder(rocksdb::DB::open(&opts, dir.join("data")).expect("open the folder"))
    }
    fn get(&self, k: &[u8]) -> Option<Vec<u8>> {
        self.0.get(k).expect("read")
    }
    fn put(&self, k: &[u8], v: &[u8]) {
        self.0.put(k, v).expect("write");
    }
    fn delete(&self, k: &[u8]) {
        self.0.delete(k).expect("delete");
    }
    /// Entry `seq` with its personal values put back from its value row (format 2).
    fn opened(&self, seq: u64) -> entry::Entry {
        use prost::Message;
        let leaf = entry::decode(&self.get(&entry_key(seq)).expect("entry")).expect("decodes");
        let values = self
            .get(&values_key(seq))
            .map(|b| entry::EntryValues::decode(b.as_slice()).expect("value row decodes"))
            .unwrap_or_default();
        s62::log::seal::unseal(&leaf, &values)
            .expect("values match")
            .entry
    }

    fn count(&self) -> u64 {
        (0..)
            .find(|seq| self.get(&entry_key(*seq)).is_none())
            .expect("finite")
    }
    fn checkpoint(&self, size: u64) -> Option<String> {
        self.get(&checkpoint_key(size))
            .map(|v| String::from_utf8(v).expect("utf-8"))
    }

    /// Changes entry `from` with `mutate` and makes everything after it consistent again: the
    /// chain, every node row, the indexes; deletes the checkpoints above `from`. Returns the size
    /// and the new root.
    fn rewrite_from(&self, from: u64, mutate: impl FnOnce(&mut entry::Entry)) -> (u64, Hash) {
        let n = self.count();
        let mut mutate = Some(mutate);
        let mut prev = Hash::GENESIS;
        let mut frontier = Frontier::new();
        let mut completed = Vec::new();
        for seq in 0..n {
            let mut bytes = self.get(&entry_key(seq)).expect("entry");
            if seq >= from {
                // The values as written; sealed again afterwards (sealing needs no key).
                let mut e = self.opened(seq);
                for r in index_records(&e) {
                    self.delete(&index_key(&r).expect("short"));
                }
                if let Some(m) = mutate.take() {
                    m(&mut e);
                }
                e.prev_leaf_hash = prev.0.to_vec();
                for r in index_records(&e) {
                    self.put(&index_key(&r).expect("short"), b"");
                }
                if s62::log::seal::is_sealed(e.format_version) {
                    let format = e.format_version;
                    let values = s62::log::seal::seal(&mut e, &[9u8; 32], format);
                    self.put(&values_key(seq), &prost::Message::encode_to_vec(&values));
                }
                bytes = entry::encode(&e);
                self.put(&entry_key(seq), &bytes);
            }
            prev = leaf_hash(&bytes);
            completed.clear();
            frontier.push(prev, &mut completed);
            let row: Vec<u8> = completed.iter().flat_map(|(_, h)| h.0).collect();
            self.put(&node_row_key(seq), &row);
        }
        for size in from + 1..=n {
            self.delete(&checkpoint_key(size));
        }
        (n, frontier.root())
    }

    /// Removes entries `keep..` with their node rows, index records and checkpoints.
    fn cut_tail(&self, keep: u64) {
        for seq in keep..self.count() {
            let e = self.opened(seq);
            for r in index_records(&e) {
                self.delete(&index_key(&r).expect("short"));
            }
            self.delete(&values_key(seq));
            self.delete(&entry_key(seq));
            self.delete(&node_row_key(seq));
            self.delete(&checkpoint_key(seq + 1));
        }
    }
}

fn signed(size: u64, root: Hash, key: &SignerKey) -> String {
    Checkpoint {
        origin: ORIGIN.into(),
        size,
        root,
        extensions: Vec::new(),
    }
    .sign(key)
    .expect("signs")
}

#[test]
fn attack_1_a_keyless_rewrite_is_refused_by_the_writer_and_caught_by_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    log_with(dir.path(), 20);
    {
        let folder = Folder::open(dir.path());
        let (size, root) = folder.rewrite_from(7, |e| {
            e.justification = Some(Justification {
                text: "authorised by the superintendent".into(),
                ..Default::default()
            });
        });
        let insider = SignerKey::generate(ORIGIN).expect("key");
        folder.put(
            &checkpoint_key(size),
            signed(size, root, &insider).as_bytes(),
        );
    }
    let start = append(dir.path(), "key", 1);
    assert_eq!(start.status.code(), Some(2), "{}", text(&start));
    assert!(
        text(&start).contains("does not verify with the configured signing key"),
        "{}",
        text(&start)
    );
    let v = verify(dir.path(), "key");
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));

    // Without the foreign checkpoint the rewritten entries are covered by no genuine one.
    Folder::open(dir.path()).delete(&checkpoint_key(20));
    let start = append(dir.path(), "key", 1);
    assert_eq!(start.status.code(), Some(2), "{}", text(&start));
    let v = verify(dir.path(), "key");
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
}

#[test]
fn attack_2_a_rotated_out_key_can_neither_append_nor_sign_unnoticed() {
    let dir = tempfile::tempdir().expect("tempdir");
    log_with(dir.path(), 5);
    rotate(dir.path());
    let log_pub = std::fs::read_to_string(dir.path().join("new/log.pub")).expect("log.pub");
    assert!(
        log_pub.contains(" from=1 to=6\n") && log_pub.contains(" from=6\n"),
        "log.pub states each key's sizes: {log_pub}"
    );

    let old = append(dir.path(), "key", 1);
    assert_eq!(old.status.code(), Some(2), "{}", text(&old));
    assert!(text(&old).contains("retired"), "{}", text(&old));
    let new = append(dir.path(), "new", 3);
    assert!(new.status.success(), "{}", text(&new));
    let old = append(dir.path(), "key", 1);
    assert_eq!(old.status.code(), Some(2), "{}", text(&old));
    let v = verify(dir.path(), "new");
    assert!(v.status.success(), "{}", text(&v));

    // The holder of the old key signs a later checkpoint by hand.
    let old_key = s62::keys::read_signer(&dir.path().join("key/log.key")).expect("old key");
    {
        let folder = Folder::open(dir.path());
        let size = folder.count();
        let note = folder.checkpoint(size).expect("latest");
        let body = s62::log::note::parse_note(&note).expect("note").text;
        folder.put(
            &checkpoint_key(size),
            old_key.sign_note(&body).expect("sign").as_bytes(),
        );
    }
    let v = verify(dir.path(), "new");
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    assert!(
        text(&v).contains("size 9") && text(&v).contains("retired"),
        "{}",
        text(&v)
    );
}

#[test]
fn a_log_pub_without_the_new_key_does_not_vouch_for_a_rotated_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    log_with(dir.path(), 3);
    rotate(dir.path());
    assert!(append(dir.path(), "new", 2).status.success());
    let v = verify(dir.path(), "key");
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
}

#[test]
fn the_origin_is_pinned_by_the_key_and_a_resigned_log_is_tampered() {
    let dir = tempfile::tempdir().expect("tempdir");
    log_with(dir.path(), 4);
    let key = s62::keys::read_signer(&dir.path().join("key/log.key")).expect("key");
    {
        // The key holder re-signs every checkpoint under a different origin.
        let folder = Folder::open(dir.path());
        for size in 1..=folder.count() {
            let Some(note) = folder.checkpoint(size) else {
                continue;
            };
            let body = s62::log::note::parse_note(&note).expect("note").text;
            let moved = body.replacen(ORIGIN, "elsewhere.example/log", 1);
            folder.put(
                &checkpoint_key(size),
                key.sign_note(&moved).expect("sign").as_bytes(),
            );
        }
    }
    let v = verify(dir.path(), "key");
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    assert!(text(&v).contains("origin"), "{}", text(&v));
}

#[test]
fn attack_5_a_deleted_intermediate_checkpoint_is_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    log_with(dir.path(), 6);
    let folder = Folder::open(dir.path());
    let victim = (1..6)
        .find(|s| folder.checkpoint(*s).is_some())
        .expect("an intermediate checkpoint");
    folder.delete(&checkpoint_key(victim));
    drop(folder);
    let v = verify(dir.path(), "key");
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    assert!(
        text(&v).contains(&format!("entry {}", victim - 1)),
        "{}",
        text(&v)
    );
}

/// `s62 serve` with an admin listener that publishes checkpoints to `published`, in front of an
/// upstream nobody answers on (nothing is forwarded in this test).
fn serve_config(dir: &Path) -> std::path::PathBuf {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
    };
    let config = format!(
        r#"
[log]
data_dir = "data"
key_file = "key/log.key"
origin = "{ORIGIN}"

[listen]
address = "{}"

[upstream]
url = "http://127.0.0.1:9"

[identity]
sources = ["trusted_header"]
trusted_peers = ["127.0.0.1"]

[admin]
address = "{}"
checkpoint_dir = "published"
"#,
        free(),
        free()
    );
    let path = dir.join("s62.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

/// The tree size of the latest published checkpoint, if any.
fn published_size(published: &Path) -> Option<u64> {
    let note = std::fs::read_to_string(published.join("checkpoint")).ok()?;
    note.lines().nth(1)?.parse().ok()
}

/// Runs `s62 serve` until a checkpoint of at least `min_size` is published, then stops it with
/// SIGTERM.
fn serve_once(config: &Path, published: &Path, min_size: u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(["serve", "--config", p(config)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while published_size(published).is_none_or(|s| s < min_size) {
        assert!(
            std::time::Instant::now() < deadline,
            "serve published no checkpoint"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited early: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let status = child.wait().expect("wait");
    assert!(status.success(), "serve stopped with {status}");
}

/// Runs `s62 serve`, which should refuse to start; one still running after 30 s is killed and the
/// test fails rather than hangs.
fn serve_expecting_refusal(config: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(["serve", "--config", p(config)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("s62 serve started on a folder it should have refused");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn attack_3_a_cut_tail_is_refused_at_start_against_the_published_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = s62(&[
        "keygen",
        "--origin",
        ORIGIN,
        "--out",
        p(&dir.path().join("key")),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let config = serve_config(dir.path());
    let published = dir.path().join("published");
    serve_once(&config, &published, 1);
    let first_run = Folder::open(dir.path()).count();
    serve_once(&config, &published, first_run + 1);
    let size = published_size(&published).expect("published");
    assert!(size > first_run, "the second run's checkpoint is published");

    // The operator removes the second run from the folder.
    Folder::open(dir.path()).cut_tail(first_run);
    let start = serve_expecting_refusal(&config);
    assert_eq!(start.status.code(), Some(2), "{}", text(&start));
    assert!(
        text(&start).contains(&format!("holds a checkpoint of size {size}")),
        "{}",
        text(&start)
    );
    // The cut folder alone looks whole; the published checkpoint exposes it.
    assert!(verify(dir.path(), "key").status.success());
    let v = s62(&[
        "verify",
        "--data-dir",
        p(&dir.path().join("data")),
        "--key",
        p(&dir.path().join("key/log.pub")),
        "--trust-checkpoint",
        p(&published.join("checkpoint")),
    ]);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
}

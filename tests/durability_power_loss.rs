//! Power loss, not only a killed process: the log writer runs on a file system that keeps
//! unsynced writes in memory and drops them when the power goes (`scripts/lossyfs.py`, over FUSE).
//! Every entry the writer acknowledged must be on the "disk" afterwards, with the leaf hash its
//! receipt named, and the log must verify. A writer that skipped its fsync (RocksDB `sync = false`)
//! loses acknowledged entries here, which a SIGKILL test cannot show: the kernel's page cache
//! survives a killed process.
//!
//! Needs /dev/fuse and Debian's `fuse3` and `python3-fusepy` (scripts/setup.sh installs them).

use s62::log::epoch::LogKeys;
use s62::log::hash::leaf_hash;
use s62::log::store::LogStore;
use s62::log::store::rocks::RocksStore;
use s62::verify::{VerifyOptions, verify_store};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A lossyfs mount: `backing` is the disk, `mount` what programs write to.
struct LossyMount {
    fs: Child,
    backing: PathBuf,
    mount: PathBuf,
    powered: bool,
}

impl LossyMount {
    fn start(dir: &Path) -> LossyMount {
        assert!(
            Path::new("/dev/fuse").exists(),
            "/dev/fuse is missing: this test needs FUSE (scripts/setup.sh installs fuse3)"
        );
        let backing = dir.join("disk");
        let mount = dir.join("mnt");
        std::fs::create_dir_all(&backing).expect("mkdir");
        std::fs::create_dir_all(&mount).expect("mkdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lossyfs.py");
        let fs = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(&backing)
            .arg(&mount)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lossyfs (needs python3-fusepy: scripts/setup.sh)");
        let m = LossyMount {
            fs,
            backing,
            mount,
            powered: true,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !m.is_mounted() {
            assert!(Instant::now() < deadline, "lossyfs did not mount");
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    fn is_mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let target = self.mount.to_string_lossy();
        mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(&*target))
    }

    /// The power goes: the file system dies with its unsynced data, and the mount is detached.
    fn cut_power(&mut self) {
        let _ = self.fs.kill();
        let _ = self.fs.wait();
        let detached = Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(&self.mount)
            .status()
            .is_ok_and(|s| s.success())
            || Command::new("umount")
                .arg("-l")
                .arg(&self.mount)
                .status()
                .is_ok_and(|s| s.success());
        assert!(detached, "could not detach the lossyfs mount");
        self.powered = false;
    }
}

impl Drop for LossyMount {
    fn drop(&mut self) {
        if self.powered {
            self.cut_power();
        }
    }
}

#[test]
fn the_test_file_system_really_drops_what_was_not_synced() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fs = LossyMount::start(dir.path());
    let mut synced = std::fs::File::create(fs.mount.join("synced")).expect("create");
    synced.write_all(b"kept").expect("write");
    synced.sync_data().expect("fdatasync");
    synced.write_all(b" and lost").expect("write");
    let mut unsynced = std::fs::File::create(fs.mount.join("unsynced")).expect("create");
    unsynced.write_all(b"lost").expect("write");
    drop((synced, unsynced));
    assert_eq!(
        std::fs::read(fs.mount.join("synced")).expect("read"),
        b"kept and lost",
        "while powered, programs see their writes"
    );
    fs.cut_power();
    assert_eq!(
        std::fs::read(fs.backing.join("synced")).expect("read"),
        b"kept"
    );
    assert_eq!(
        std::fs::read(fs.backing.join("unsynced")).expect("read"),
        b""
    );
}

#[test]
fn every_acknowledged_entry_survives_a_power_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("key");
    let out = Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(["keygen", "--origin", "power.s62.test/log", "--out"])
        .arg(&keys)
        .output()
        .expect("keygen");
    assert!(out.status.success());
    let mut fs = LossyMount::start(dir.path());

    let mut writer = Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(["stress-append", "--producers", "8", "--data-dir"])
        .arg(fs.mount.join("data"))
        .arg("--key-dir")
        .arg(&keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("stress-append");
    let stdout = writer.stdout.take().expect("stdout");
    let mut receipts: Vec<(u64, String, u64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("receipt line");
        let mut parts = line.split(' ');
        let (Some(seq), Some(leaf), Some(cp)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("not a receipt: {line}");
        };
        receipts.push((
            seq.parse().expect("seq"),
            leaf.to_owned(),
            cp.parse().expect("checkpoint size"),
        ));
        if receipts.len() >= 300 || Instant::now() > deadline {
            break;
        }
    }
    // Power loss: the writer and the unsynced page cache vanish together.
    let _ = writer.kill();
    fs.cut_power();
    let _ = writer.wait();
    assert!(
        receipts.len() >= 100,
        "too few receipts ({}) before the cut",
        receipts.len()
    );

    let store = RocksStore::open(&fs.backing.join("data")).expect("the disk holds a log");
    for (seq, leaf, cp) in &receipts {
        let bytes = store
            .entry(*seq)
            .expect("read")
            .unwrap_or_else(|| panic!("acknowledged entry {seq} was lost with the power"));
        assert_eq!(&leaf_hash(&bytes).to_hex(), leaf, "entry {seq} changed");
        assert!(
            store.checkpoint(*cp).expect("read").is_some(),
            "the checkpoint of size {cp} covering entry {seq} was lost"
        );
    }
    let keys = LogKeys::parse(&std::fs::read_to_string(keys.join("log.pub")).expect("log.pub"))
        .expect("keys");
    let report = verify_store(&store, VerifyOptions::new(keys)).expect("the log verifies");
    let max = receipts.iter().map(|r| r.0).max().unwrap_or(0);
    assert!(
        report.entries > max,
        "{} entries, receipts up to {max}",
        report.entries
    );
}

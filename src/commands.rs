//! The offline subcommands: keygen, checkpoint, entries, verify. Each returns what the binary
//! prints and its exit status; `main.rs` only parses arguments and dispatches.

use crate::keys;
use crate::log::store::rocks::RocksStore;
use crate::log::store::{LogStore, Store};
use crate::render::entry_json;
use crate::verify::{VerifyError, VerifyOptions, verify_store};
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// `s62 keygen`: writes `DIR/log.key` and `DIR/log.pub`.
pub fn keygen(origin: &str, out: &Path) -> Result<()> {
    let key = keys::generate(out, origin)?;
    let (key_path, pub_path) = keys::key_paths(out);
    println!("wrote {} (private, mode 0600)", key_path.display());
    println!("wrote {}:", pub_path.display());
    println!("{}", key.verifier().to_vkey());
    Ok(())
}

/// `s62 witness-keygen`: writes `DIR/witness.key` and `DIR/witness.pub`.
pub fn witness_keygen(name: &str, out: &Path) -> Result<()> {
    let key = crate::witness::keys::generate(out, name)?;
    let (key_path, pub_path) = crate::witness::keys::key_paths(out);
    println!("wrote {} (private, mode 0600)", key_path.display());
    println!(
        "wrote {} (give it to the logs you witness and to verifiers):",
        pub_path.display()
    );
    println!("{}", key.verifier().to_vkey());
    Ok(())
}

fn open_reader(data_dir: &Path) -> Result<RocksStore> {
    RocksStore::open_reader(data_dir)
        .with_context(|| format!("opening the log in {}", data_dir.display()))
}

/// `s62 checkpoint`: prints the latest signed checkpoint note exactly as stored.
pub fn checkpoint(data_dir: &Path) -> Result<()> {
    let store = open_reader(data_dir)?;
    let (_, note) = store
        .latest_checkpoint()?
        .context("the log has no checkpoint yet (it is empty)")?;
    std::io::stdout().write_all(note.as_bytes())?;
    Ok(())
}

/// `s62 entries`: JSON lines, one per entry, with the stored bytes in `leaf`.
pub fn entries(data_dir: &Path, from: u64, limit: Option<u64>) -> Result<()> {
    let store = open_reader(data_dir)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut next = from;
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let chunk = store
            .opened_entries(next, left.min(1024) as usize)
            .context("an entry does not open; run s62 verify")?;
        let Some(last) = chunk.last() else { break };
        next = last.seq + 1;
        for o in &chunk {
            let redacted: Vec<String> = o.redacted.iter().map(ToString::to_string).collect();
            serde_json::to_writer(&mut out, &entry_json(&o.entry, &o.leaf, &redacted))?;
            out.write_all(b"\n")?;
        }
        left -= chunk.len() as u64;
    }
    out.flush()?;
    Ok(())
}

/// What `s62 verify` is asked to check.
pub struct VerifyArgs<'a> {
    pub data_dir: &'a Path,
    /// The log's `log.pub`.
    pub key_file: &'a Path,
    /// The origin the log must have (default: its keys' name).
    pub origin: Option<String>,
    /// Signed checkpoints kept elsewhere, which the log must contain.
    pub trusted: &'a [PathBuf],
    pub check_indexes: bool,
    /// Witnesses whose cosignatures the latest checkpoint must carry, and how many.
    pub witness: Option<&'a crate::verify::witness::WitnessRequirement>,
}

/// `s62 verify`: exit 0 intact, 1 tampering or corruption found, 2 could not run.
pub fn verify(args: VerifyArgs<'_>) -> ExitCode {
    match verify_inner(&args) {
        Ok(VerifyOutcome::Intact(msg)) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Ok(VerifyOutcome::Tampered(msg)) => {
            eprintln!("TAMPERED: {msg}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("s62 verify: could not run: {e:#}");
            ExitCode::from(2)
        }
    }
}

enum VerifyOutcome {
    Intact(String),
    Tampered(String),
}

fn verify_inner(args: &VerifyArgs<'_>) -> Result<VerifyOutcome> {
    let keys = keys::read_log_keys(args.key_file)?;
    let trusted_checkpoints = args
        .trusted
        .iter()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let store = open_reader(args.data_dir)?;
    let mut bar = ProgressBar::new();
    let mut progress = |done: u64, total: u64| bar.show(done, total);
    let check_indexes = args.check_indexes;
    let opts = VerifyOptions {
        origin: args.origin.clone(),
        trusted_checkpoints,
        check_indexes,
        progress: Some(&mut progress),
        ..VerifyOptions::new(keys)
    };
    let result = verify_store(&store as &dyn Store, opts);
    bar.finish();
    // Witness quorum (src/verify/witness.rs), once the log itself verified.
    let witnessed = match (&result, args.witness) {
        (Ok(_), Some(req)) => {
            match crate::verify::witness::verify_store_witnesses(&store as &dyn Store, req) {
                Ok(w) => format!(
                    "; its latest checkpoint (size {}) is cosigned by {} listed witness(es): {}",
                    w.latest_size,
                    w.cosigned_by.len(),
                    w.cosigned_by.join(", ")
                ),
                Err(e @ VerifyError::Tampered { .. }) => {
                    return Ok(VerifyOutcome::Tampered(e.to_string()));
                }
                Err(VerifyError::CouldNotRun(msg)) => return Err(anyhow::anyhow!(msg)),
            }
        }
        _ => String::new(),
    };
    match result {
        Ok(r) => Ok(VerifyOutcome::Intact(
            format!(
                "OK: {} entries of {} verified: chain, RFC 6962 root {}, {} signed checkpoints ({}), {}{}",
                r.entries,
                r.origin,
                r.root.to_base64(),
                r.checkpoints,
                match r.epochs.len() {
                    1 => "one signing key".to_owned(),
                    n => format!("{n} signing keys, each within its sizes"),
                },
                if check_indexes {
                    format!("{} index records", r.index_records)
                } else {
                    "indexes not checked".into()
                },
                if r.trusted_checkpoints > 0 {
                    format!(", contains {} trusted checkpoint(s)", r.trusted_checkpoints)
                } else {
                    String::new()
                }
            ) + &redacted_summary(&r)
                + &unbuilt_summary(&r, check_indexes)
                + &witnessed,
        )),
        Err(e @ VerifyError::Tampered { .. }) => Ok(VerifyOutcome::Tampered(e.to_string())),
        Err(VerifyError::CouldNotRun(msg)) => Err(anyhow::anyhow!(msg)),
    }
}

/// `; the case_reference and purpose indexes are not built yet ...` for a log begun before those
/// index families existed (nothing when every family is built or indexes were not checked).
fn unbuilt_summary(r: &crate::verify::Report, check_indexes: bool) -> String {
    if !check_indexes || r.unbuilt_index_families.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = r.unbuilt_index_families.iter().map(|f| f.label()).collect();
    format!(
        "; the {} indexes are not built yet, so not checked (s62 serve builds them when it next \
         opens the log)",
        names.join(" and ")
    )
}

/// `, 12 values redacted by 2 redaction entries` (nothing when none were).
fn redacted_summary(r: &crate::verify::Report) -> String {
    if r.redacted_values == 0 && r.redaction_entries == 0 {
        return String::new();
    }
    format!(
        ", {} values redacted by {} redaction entries (each covered)",
        r.redacted_values, r.redaction_entries
    )
}

/// A one-line progress bar on stderr, only when stderr is a terminal.
struct ProgressBar {
    enabled: bool,
    last: std::time::Instant,
    shown: bool,
}

impl ProgressBar {
    fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            last: std::time::Instant::now(),
            shown: false,
        }
    }

    fn show(&mut self, done: u64, total: u64) {
        if !self.enabled || self.last.elapsed() < std::time::Duration::from_millis(200) {
            return;
        }
        self.last = std::time::Instant::now();
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        let filled = (pct / 4) as usize;
        eprint!(
            "\r[{}{}] {pct:3}% {done}/{total} entries",
            "#".repeat(filled),
            " ".repeat(25 - filled.min(25))
        );
        self.shown = true;
    }

    fn finish(&self) {
        if self.shown {
            eprint!("\r{}\r", " ".repeat(70));
        }
    }
}

/// `s62 stress-append` (hidden): appends from `producers` concurrent tasks until killed, printing
/// `seq leaf_hex checkpoint_size` for every acknowledged entry. The crash test runs it and
/// kills it with SIGKILL; it also measures a disk's durable append rate by hand.
pub fn stress_append(
    data_dir: &Path,
    key_dir: &Path,
    producers: usize,
    count: Option<u64>,
) -> Result<()> {
    use crate::ingest::{LogWriter, WriterConfig};
    use crate::log::entry::{Actor, Entry, EntryKind, Operation};
    use std::sync::Arc;
    let (key_path, _) = keys::key_paths(key_dir);
    let key = keys::read_signer(&key_path)?;
    let origin = key.name().to_owned();
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(data_dir)?);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let started = Instant::now();
        let (writer, task) = LogWriter::start(store, key, WriterConfig::new(origin))?;
        let stats = writer.stats().clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let per_producer = count.map(|c| c.div_ceil(producers.max(1) as u64));
        let mut handles = Vec::new();
        for p in 0..producers.max(1) {
            let w = writer.clone();
            let tx = tx.clone();
            handles.push(tokio::spawn(async move {
                let mut i = 0u64;
                while per_producer.is_none_or(|n| i < n) {
                    let e = Entry {
                        kind: EntryKind::Intent as i32,
                        operation: Operation::Consultation as i32,
                        actor: Some(Actor {
                            id: format!("producer-{p}"),
                            ..Default::default()
                        }),
                        subject_ids: vec![format!("S-{p}-{i}")],
                        ..Default::default()
                    };
                    match w.append(e).await {
                        Ok(r) => {
                            let _ = tx.send(format!(
                                "{} {} {}",
                                r.seq,
                                r.leaf_hash.to_hex(),
                                r.checkpoint_size
                            ));
                        }
                        Err(e) => {
                            let _ = tx.send(format!("error {e}"));
                            break;
                        }
                    }
                    i += 1;
                }
            }));
        }
        drop(tx);
        let printer = tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            while let Some(line) = rx.blocking_recv() {
                // Each receipt line is flushed before the next: what the parent reads was acknowledged.
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
        });
        for h in handles {
            let _ = h.await;
        }
        drop(writer);
        task.shutdown_async().await;
        let _ = printer.await;
        let secs = started.elapsed().as_secs_f64();
        let entries = stats.entries.load(Ordering::Relaxed);
        let batches = stats.batches.load(Ordering::Relaxed).max(1);
        eprintln!(
            "{entries} durable entries in {secs:.2} s: {:.0}/s; {batches} batches (mean {:.1} entries); \
             {:.0}% of the time in synced writes",
            entries as f64 / secs,
            entries as f64 / batches as f64,
            stats.commit_nanos.load(Ordering::Relaxed) as f64 / 1e9 / secs * 100.0
        );
        anyhow::Ok(())
    })
}

/// `s62 rotate-key`: generates a new key in `new_dir` and hands the log in `data_dir` over to it
/// (see [`crate::ingest::rotate_key`]). `new_dir/log.pub` then lists both keys, which is what
/// verifiers need from now on.
pub fn rotate_key(data_dir: &Path, key_dir: &Path, new_dir: &Path) -> Result<()> {
    use std::sync::Arc;
    let (old_path, old_pub) = keys::key_paths(key_dir);
    let old = keys::read_signer(&old_path)?;
    let origin = old.name().to_owned();
    let known = keys::read_log_keys(&old_pub)?;
    let mut epochs = match (known.stated_epochs(), known.first_key()) {
        (Some(e), _) => e.clone(),
        (None, Some(k)) => crate::log::epoch::KeyEpochs::starting_with(k.clone()),
        (None, None) => anyhow::bail!(
            "{} lists several keys without their sizes; write it as `s62 rotate-key` does \
             (each key followed by from=<size> [to=<size>]) before rotating again",
            old_pub.display()
        ),
    };
    if epochs.current().key != old.verifier() {
        anyhow::bail!(
            "{} says the current key is {}, but {} is {}: rotate with the current key",
            old_pub.display(),
            epochs.current().key.to_vkey(),
            old_path.display(),
            old.verifier().to_vkey()
        );
    }
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(data_dir).with_context(|| {
        format!(
            "opening {} (is the sidecar still running?)",
            data_dir.display()
        )
    })?);
    let (new_key_path, new_pub) = keys::key_paths(new_dir);
    if new_pub.exists() {
        anyhow::bail!(
            "{} already exists; refusing to overwrite it",
            new_pub.display()
        );
    }
    let new = keys::generate_signer(new_dir, &origin)?;
    let new_vkey = new.verifier();
    let receipt = crate::ingest::rotate_key(store, old, new, &origin)?;
    epochs.hand_over(receipt.checkpoint_size, new_vkey)?;
    keys::write_log_keys(&new_pub, &epochs)?;
    println!(
        "rotated: entry {} announces the new key; checkpoint {} is signed by both keys",
        receipt.seq, receipt.checkpoint_size
    );
    println!(
        "new private key: {}  (point log.key_file at it)",
        new_key_path.display()
    );
    println!(
        "verifier keys with the sizes each signs: {}  (publish it; verify with it)",
        new_pub.display()
    );
    Ok(())
}

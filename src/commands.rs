//! The offline subcommands: keygen, checkpoint, entries, verify. Each returns what the binary
//! prints and its exit status; `main.rs` only parses arguments and dispatches. (`entries
//! --purpose` is offline unless a sidecar holds the folder: then it asks that sidecar's admin
//! listener, see [`crate::admin::entries`].)

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

/// What `s62 entries` is asked.
#[derive(Clone, Debug, Default)]
pub struct EntriesArgs {
    /// The log folder (or `log.data_dir` of `config`).
    pub data_dir: Option<PathBuf>,
    /// A sidecar config: `log.data_dir`, `log.key_file` and `[admin] address` come from it.
    pub config: Option<PathBuf>,
    pub from: u64,
    pub limit: Option<u64>,
    /// An s62(4) purpose; without it personal values are withheld and nothing is logged.
    pub purpose: Option<String>,
    pub case_ref: Option<String>,
    /// Who reads (the audit-query entries' actor id).
    pub actor: Option<String>,
    /// The log's `log.key`, to write the audit entry when no sidecar holds the folder.
    pub key_file: Option<PathBuf>,
    /// The running sidecar's admin listener, e.g. `http://127.0.0.1:9090`.
    pub admin: Option<String>,
}

/// What a personal value is shown as when no purpose was given.
pub const WITHHELD: &str = "(withheld: give --purpose and --case-ref)";

/// `s62 entries`: JSON lines, one per entry. Without `--purpose`, every personal value is withheld
/// and the read is not logged; with it, the read is logged first ([`crate::admin::entries`]).
pub fn entries(args: EntriesArgs) -> Result<()> {
    let Some(purpose) = args.purpose.clone() else {
        let data_dir = match (&args.data_dir, &args.config) {
            (Some(d), _) => d.clone(),
            (None, Some(c)) => load_config(c)?.log.data_dir,
            (None, None) => anyhow::bail!("give --data-dir DIR or --config FILE"),
        };
        return entries_withheld(&data_dir, args.from, args.limit);
    };
    let asked = crate::admin::entries::EntriesRequest {
        from: args.from,
        limit: args.limit,
        purpose,
        case_reference: args.case_ref.clone().unwrap_or_default(),
        actor: args.actor.clone().unwrap_or_default(),
    };
    let checked = asked.check()?;
    let page = purpose_bound_read(&args, &asked, &checked)?;
    // Nothing personal reaches stdout before this point: the read is logged.
    let mut out = std::io::stdout().lock();
    out.write_all(&page.body)?;
    out.flush()?;
    eprintln!(
        "s62 entries: {} entries printed; this read is logged as audit-query entry {}",
        page.returned, page.audit_seq
    );
    if let Some(next) = page.next_from.filter(|_| args.limit.is_none()) {
        eprintln!(
            "s62 entries: at most {} entries per logged read; continue with --from {next}",
            crate::admin::entries::MAX_ENTRIES
        );
    }
    Ok(())
}

fn load_config(path: &Path) -> Result<crate::config::Config> {
    crate::config::Config::load(path).with_context(|| format!("--config {}", path.display()))
}

/// A logged read: with a writer of our own when the folder's lock is free, else through the
/// running sidecar's admin listener.
fn purpose_bound_read(
    args: &EntriesArgs,
    asked: &crate::admin::entries::EntriesRequest,
    checked: &crate::admin::entries::CheckedRead,
) -> Result<crate::admin::entries::ReadPage> {
    let cfg = args.config.as_deref().map(load_config).transpose()?;
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.log.data_dir.clone()));
    let admin = match (&args.admin, cfg.as_ref().and_then(|c| c.admin.as_ref())) {
        (Some(a), _) => Some(admin_address(a)?),
        (None, Some(a)) => Some(local_address(a.address)),
        (None, None) => None,
    };
    let Some(data_dir) = data_dir else {
        let Some(admin) = admin else {
            anyhow::bail!("give --data-dir DIR (with --key-file), --config FILE or --admin URL");
        };
        return post_entries(admin, asked);
    };
    if !data_dir.join("CURRENT").is_file() {
        anyhow::bail!("{} is not a log folder", data_dir.display());
    }
    let store = match RocksStore::open(&data_dir) {
        Ok(store) => store,
        Err(e) if lock_held(&e) => {
            let Some(admin) = admin else {
                anyhow::bail!(
                    "a running sidecar holds {}: pass --admin http://127.0.0.1:PORT (its [admin] \
                     address) or --config FILE (its config, with an [admin] section)",
                    data_dir.display()
                );
            };
            return post_entries(admin, asked);
        }
        Err(e) => {
            return Err(e).with_context(|| format!("opening the log in {}", data_dir.display()));
        }
    };
    let key_file = args
        .key_file
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.log.key_file.clone()));
    let Some(key_file) = key_file else {
        anyhow::bail!(
            "no sidecar holds {}, so s62 entries writes the audit-query entry itself: give \
             --key-file (the log's log.key) or --config FILE",
            data_dir.display()
        );
    };
    let key = keys::read_signer(&key_file)?;
    let writer_cfg = match &cfg {
        Some(c) => crate::app::writer_config(c)?,
        None => crate::ingest::WriterConfig::new(key.name().to_owned()),
    };
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let (writer, task) = crate::ingest::LogWriter::start(store.clone(), key, writer_cfg)
            .context("starting the log writer")?;
        let page = crate::admin::entries::read(&writer, store, checked, "cli").await;
        drop(writer);
        task.shutdown_async().await;
        Ok(page?)
    })
}

/// Whether RocksDB refused to open the folder because another process holds its lock.
fn lock_held(e: &crate::log::store::StoreError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("lock file") || text.contains("lock hold")
}

/// `http://HOST:PORT`, `HOST:PORT`: a loopback address only (the endpoint answers nothing else).
fn admin_address(url: &str) -> Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let hostport = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    if hostport.contains('/') || url.starts_with("https://") {
        anyhow::bail!("--admin {url:?}: give http://HOST:PORT (the admin listener is plain HTTP)");
    }
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("--admin {url:?}"))?
        .next()
        .with_context(|| format!("--admin {url:?} resolves to no address"))?;
    if !crate::admin::entries::is_loopback(addr.ip()) {
        anyhow::bail!(
            "--admin {url:?} is not a loopback address: POST /entries answers only the sidecar's \
             own machine; run s62 entries there with --admin http://127.0.0.1:PORT"
        );
    }
    Ok(addr)
}

/// The loopback address to reach a listener bound to `bound` (0.0.0.0 → 127.0.0.1, :: → ::1).
fn local_address(bound: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match bound.ip() {
        IpAddr::V4(a) if a.is_unspecified() => (Ipv4Addr::LOCALHOST, bound.port()).into(),
        IpAddr::V6(a) if a.is_unspecified() => (Ipv6Addr::LOCALHOST, bound.port()).into(),
        _ => bound,
    }
}

/// `POST /entries` to the running sidecar's admin listener (plain HTTP/1.1 on a socket).
fn post_entries(
    addr: std::net::SocketAddr,
    asked: &crate::admin::entries::EntriesRequest,
) -> Result<crate::admin::entries::ReadPage> {
    use crate::admin::entries::{AUDIT_SEQ_HEADER, NEXT_FROM_HEADER};
    use std::io::Read;
    let body = serde_json::to_vec(asked)?;
    let mut conn =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
            .with_context(|| format!("connecting to the sidecar's admin listener at {addr}"))?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(120)))?;
    let head = format!(
        "POST /entries HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(&body)?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)
        .with_context(|| format!("reading the answer of {addr}"))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the admin listener's answer has no end of headers")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut payload = answer[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .context("the admin listener's answer has no status")?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        payload.truncate(len);
    }
    if status != 200 {
        anyhow::bail!(
            "the sidecar at {addr} refused the read ({status}): {}",
            String::from_utf8_lossy(&payload).trim()
        );
    }
    let audit_seq = header(AUDIT_SEQ_HEADER)
        .and_then(|s| s.parse().ok())
        .context("the sidecar's answer does not say which audit-query entry logged the read")?;
    let returned = payload.iter().filter(|b| **b == b'\n').count() as u64;
    Ok(crate::admin::entries::ReadPage {
        audit_seq,
        body: payload,
        returned,
        next_from: header(NEXT_FROM_HEADER).and_then(|s| s.parse().ok()),
    })
}

/// `s62 entries` without a purpose: every entry with its personal values withheld
/// ([`withheld_json`]). Of a value row only its fields' names are read (a format-3 leaf does not
/// say which fields it commits to), so there is nothing to leak; not logged.
fn entries_withheld(data_dir: &Path, from: u64, limit: Option<u64>) -> Result<()> {
    let store = open_reader(data_dir)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut next = from;
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let chunk = store.entries(next, left.min(1024) as usize)?;
        let Some((last, _)) = chunk.last() else { break };
        next = last + 1;
        for (seq, leaf) in &chunk {
            let fields = match crate::log::entry::decode(leaf) {
                Ok(e) if e.format_version == crate::log::entry::FORMAT_V3 => {
                    store.values(*seq)?.values.iter().map(|v| v.field).collect()
                }
                _ => Vec::new(),
            };
            let line = withheld_json(leaf, &fields)
                .with_context(|| format!("entry {seq} does not decode; run s62 verify"))?;
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        left -= chunk.len() as u64;
    }
    out.flush()?;
    Ok(())
}

/// Where [`entry_json`] puts each personal field.
fn json_pointer(field: crate::log::entry::PersonalField) -> Option<&'static str> {
    use crate::log::entry::PersonalField as F;
    Some(match field {
        F::Unspecified => return None,
        F::ActorId => "/actor/id",
        F::ActorName => "/actor/display_name",
        F::ActorRole => "/actor/roles",
        F::ActorAddress => "/actor/source_address",
        F::SubjectId => "/subjects",
        F::RecordId => "/records",
        F::Recipient => "/recipients",
        F::JustificationText => "/justification/text",
        F::CaseReference => "/justification/case_reference",
        F::RequestPath => "/request/path",
        F::ReturnedSubjectId => "/outcome/returned_subjects",
        F::ReturnedRecordId => "/outcome/returned_records",
        F::AuditFilter => "/audit_query/filter",
        F::AuditCaseReference => "/audit_query/case_reference",
    })
}

/// One stored leaf as a JSON object with no personal value: the entry is stripped by the same
/// [`crate::log::seal::seal`] that makes sealed leaves (so "personal" has one definition), each
/// field that held a value reads [`WITHHELD`], and a format-1 leaf (which holds every value in
/// clear) is replaced by its leaf hash. Everything else is as [`entry_json`] prints it.
/// `row_fields` are the fields of a format-3 entry's value row (its leaf names none).
pub fn withheld_json(leaf: &[u8], row_fields: &[i32]) -> Result<serde_json::Value> {
    use crate::log::entry::PersonalField;
    use crate::log::seal::{FORMAT_V2, is_sealed, seal};
    let mut view = crate::log::entry::decode(leaf)?;
    let format = view.format_version;
    let mut had: Vec<PersonalField> = view
        .commitments
        .iter()
        .map(|c| c.field)
        .chain(row_fields.iter().copied())
        .filter_map(|f| PersonalField::try_from(f).ok())
        .collect();
    // Takes every value left in clear (all of a format-1 entry's; none of a sound sealed one's).
    let taken = seal(&mut view, &[0u8; 32], FORMAT_V2);
    had.extend(
        taken
            .values
            .iter()
            .filter_map(|v| PersonalField::try_from(v.field).ok()),
    );
    drop(taken);
    view.format_version = format;
    view.commitments.clear();
    let sealed = is_sealed(format);
    // Invariant: entry_json returns an object, so the indexed assignments below insert keys.
    let mut v = entry_json(&view, if sealed { leaf } else { &[] }, &[]);
    if !sealed {
        v["leaf"] = serde_json::json!(WITHHELD);
    }
    v["leaf_hash"] = serde_json::json!(crate::log::hash::leaf_hash(leaf).to_hex());
    for pointer in had.into_iter().filter_map(json_pointer) {
        if let Some(slot) = v.pointer_mut(pointer) {
            *slot = serde_json::json!(WITHHELD);
        }
    }
    Ok(v)
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
    /// Checkpoint signatures one by one with `verify_strict`, not in batches.
    pub strict_signatures: bool,
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
        strict_signatures: args.strict_signatures,
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
                + &unsigned_summary(&r)
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

/// `; the last 45 entries are not signed yet ...` (nothing when every entry is signed).
fn unsigned_summary(r: &crate::verify::Report) -> String {
    if r.unsigned_tail == 0 {
        return String::new();
    }
    format!(
        "; the last {} entries (from {}) are not signed yet: they chain to the signed ones, but \
         until a checkpoint covers them they are only as safe as the disk (a running writer \
         signs them within its log.checkpoint cadence; after a crash, the restarted writer signs \
         them before appending)",
        r.unsigned_tail,
        r.entries - r.unsigned_tail
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
/// `seq leaf_hex checkpoint_size` for every acknowledged entry (`-` for the size when the commit
/// that made it durable signed no checkpoint). The crash test runs it and
/// kills it with SIGKILL; it also measures a disk's durable append rate by hand. `pipelined_only`
/// hands every batch to the commit thread ([`crate::ingest::WriterConfig::inline_idle_commits`]
/// off), to compare the two.
pub fn stress_append(
    data_dir: &Path,
    key_dir: &Path,
    producers: usize,
    count: Option<u64>,
    pipelined_only: bool,
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
        let cfg = WriterConfig {
            inline_idle_commits: !pipelined_only,
            ..WriterConfig::new(origin)
        };
        let (writer, task) = LogWriter::start(store, key, cfg)?;
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
                                    .map_or_else(|| "-".to_owned(), |s| s.to_string())
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
        let inline = stats.inline_batches.load(Ordering::Relaxed);
        eprintln!(
            "{entries} durable entries in {secs:.2} s: {:.0}/s; {batches} batches (mean {:.1} entries, \
             {inline} committed inline); {:.0}% of the time in synced writes",
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

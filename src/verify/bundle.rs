//! Export bundles: the file format (`s62-bundle/v4`, documented in `docs/bundle.md`), its writer,
//! and its offline verifier.
//!
//! A bundle is UTF-8 JSON Lines:
//!
//! ```text
//! {"type":"header","format":"s62-bundle/v4","origin":…,"verifier_key":…,"checkpoint":<signed note>,
//!  "filter":{…},"auditor":…,"purpose":…,"case_reference":…,
//!  "audit":{"seq":…,"leaf":<base64>,"tlog_proof":…}}
//! {"type":"entry","seq":…,"leaf":<base64 of the exact stored bytes>,"values":<base64 EntryValues, formats 2 and 3>,
//!  "tlog_proof":<c2sp.org/tlog-proof@v1>}
//! …
//! {"type":"redaction","seq":…,"leaf":<base64>,"tlog_proof":…}
//! …
//! {"type":"end","entries":N,"redactions":M}
//! ```
//!
//! Each `tlog_proof` is a complete c2sp.org/tlog-proof@v1 text (index, RFC 6962 audit path, the
//! header's signed checkpoint verbatim), so any entry can be checked alone with third-party
//! tlog-proof tooling, the leaf hash being SHA-256(0x00 ‖ leaf). The verifier here trusts nothing
//! in the file but the keys it is given: it checks the checkpoint's signature (by the key whose
//! epoch holds its size) and origin, that every proof is against that same checkpoint, every
//! inclusion proof, that each leaf decodes to the seq it claims, the hash chain between consecutive
//! entries, that the export's own audit entry is present and proved, that the header's filter,
//! auditor, purpose and case are the ones that entry recorded, and that the bundle's entries are
//! exactly the ones that entry committed to (count and [`selection_digest`]), so an entry dropped,
//! added or cut off is caught. Every value an entry commits to but no longer carries must have been
//! removed by a `redaction` line: a redaction entry after it, proved against the same checkpoint,
//! that names it. Otherwise the value was deleted without a logged redaction, and the bundle is
//! tampered, as `s62 verify` says of the log.
//!
//! What it cannot show: that the export's selection held every entry matching the filter (the
//! indexes are not committed to by the tree). Pure apart from the file reading in
//! [`verify_bundle_file`]; must not depend on tokio, the network or the store.

use super::Redactions;
use crate::log::checkpoint::open_checkpoint;
use crate::log::entry::{self, EntryKind};
use crate::log::epoch::{KeyEpochs, LogKeys};
use crate::log::hash::{Hash, leaf_hash};
use crate::log::merkle::verify_inclusion;
use crate::log::note::VerifierKey;
use crate::log::seal::FieldRef;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

/// The bundle format this build writes and reads.
pub const FORMAT: &str = "s62-bundle/v4";

/// First line of a c2sp.org/tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// One entry and its proof, as written in the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryLine {
    pub seq: u64,
    /// Base64 of the entry's exact stored bytes.
    pub leaf: String,
    /// Formats 2 and 3: base64 of the entry's stored `s62.v1.EntryValues` row (its personal
    /// values and their salts, each checked against the leaf's commitments). Empty for format 1.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub values: String,
    /// c2sp.org/tlog-proof@v1 text for this entry against the header's checkpoint.
    pub tlog_proof: String,
}

/// One entry as the bundle writer takes it: seq, stored bytes, stored value row, proof.
pub struct ProvedEntry<'a> {
    pub seq: u64,
    pub leaf: &'a [u8],
    pub values: &'a [u8],
    pub proof: &'a [Hash],
}

/// The bundle's first line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderLine {
    pub format: String,
    pub origin: String,
    pub verifier_key: String,
    /// The signed checkpoint note every proof is against.
    pub checkpoint: String,
    /// What was exported (as recorded in the audit entry).
    pub filter: serde_json::Value,
    /// Who exported (the audit entry's actor id), why (its s62(4) purpose) and for which case.
    pub auditor: String,
    pub purpose: String,
    pub case_reference: String,
    /// The export's own opening audit-query entry.
    pub audit: EntryLine,
}

/// SHA-256 over `seqs` as 8-byte big-endian integers, in the given (ascending) order: what an
/// export's opening audit entry commits to (`AuditQuery.results_sha256`).
pub fn selection_digest(seqs: &[u64]) -> Hash {
    let mut h = Sha256::new();
    for s in seqs {
        h.update(s.to_be_bytes());
    }
    Hash(h.finalize().into())
}

/// The last line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndLine {
    pub entries: u64,
    /// `redaction` lines.
    pub redactions: u64,
}

/// Any line of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    Header(Box<HeaderLine>),
    Entry(EntryLine),
    /// A redaction entry (its leaf, `values` empty) that removed values the entries no longer carry.
    Redaction(EntryLine),
    End(EndLine),
}

/// The c2sp.org/tlog-proof@v1 text for leaf `index`: header, `index N`, one base64 hash per line
/// (leaf sibling first), a blank line, then the signed checkpoint verbatim.
pub fn tlog_proof_text(index: u64, proof: &[Hash], checkpoint_note: &str) -> String {
    let mut s = String::with_capacity(64 + proof.len() * 45 + checkpoint_note.len());
    s.push_str(TLOG_PROOF_HEADER);
    s.push('\n');
    s.push_str(&format!("index {index}\n"));
    for h in proof {
        s.push_str(&h.to_base64());
        s.push('\n');
    }
    s.push('\n');
    s.push_str(checkpoint_note);
    s
}

/// A parsed c2sp.org/tlog-proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof<'a> {
    pub index: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint, verbatim.
    pub checkpoint: &'a str,
}

/// Parses a c2sp.org/tlog-proof@v1 text strictly (an `extra` line is accepted and ignored: it is
/// unauthenticated by definition).
pub fn parse_tlog_proof(text: &str) -> Result<TlogProof<'_>, &'static str> {
    let (head, checkpoint) = text
        .split_once("\n\n")
        .ok_or("no blank line before the checkpoint")?;
    let mut lines = head.split('\n');
    if lines.next() != Some(TLOG_PROOF_HEADER) {
        return Err("does not start with c2sp.org/tlog-proof@v1");
    }
    let mut line = lines.next().ok_or("no index line")?;
    if line.starts_with("extra ") {
        line = lines.next().ok_or("no index line")?;
    }
    let digits = line.strip_prefix("index ").ok_or("no index line")?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return Err("index is not a canonical decimal");
    }
    let index = digits
        .parse()
        .map_err(|_| "index does not fit in 64 bits")?;
    let mut proof = Vec::new();
    for l in lines {
        let h = Hash::from_base64(l).ok_or("a proof line is not base64 of 32 bytes")?;
        if h.to_base64() != l {
            return Err("a proof line is not canonical base64");
        }
        proof.push(h);
    }
    Ok(TlogProof {
        index,
        proof,
        checkpoint,
    })
}

/// Writes a bundle line by line.
pub struct BundleWriter<W: Write> {
    out: W,
    checkpoint: String,
    entries: u64,
    redactions: u64,
}

impl<W: Write> BundleWriter<W> {
    /// Writes the header line. `audit` is the export's own audit entry; the header's filter,
    /// auditor, purpose and case are read from it.
    pub fn start(
        mut out: W,
        origin: &str,
        verifier_key: &str,
        checkpoint_note: &str,
        audit: ProvedEntry<'_>,
    ) -> std::io::Result<Self> {
        let invalid = |e: String| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the export's audit entry: {e}"),
            )
        };
        let e = open_bytes(audit.leaf, audit.values).map_err(invalid)?;
        let stated = StatedExport::of(&e.entry);
        let header = Line::Header(Box::new(HeaderLine {
            format: FORMAT.to_owned(),
            origin: origin.to_owned(),
            verifier_key: verifier_key.to_owned(),
            checkpoint: checkpoint_note.to_owned(),
            filter: stated.filter,
            auditor: stated.auditor,
            purpose: stated.purpose,
            case_reference: stated.case_reference,
            audit: entry_line(&audit, checkpoint_note),
        }));
        write_line(&mut out, &header)?;
        Ok(BundleWriter {
            out,
            checkpoint: checkpoint_note.to_owned(),
            entries: 0,
            redactions: 0,
        })
    }

    /// Writes one entry line.
    pub fn entry(&mut self, e: ProvedEntry<'_>) -> std::io::Result<()> {
        if self.redactions > 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "an entry after the redaction lines",
            ));
        }
        let line = Line::Entry(entry_line(&e, &self.checkpoint));
        write_line(&mut self.out, &line)?;
        self.entries += 1;
        Ok(())
    }

    /// Writes one redaction line (after every entry line). Its value row is not written.
    pub fn redaction(&mut self, e: ProvedEntry<'_>) -> std::io::Result<()> {
        let mut line = entry_line(&e, &self.checkpoint);
        line.values.clear();
        write_line(&mut self.out, &Line::Redaction(line))?;
        self.redactions += 1;
        Ok(())
    }

    /// Writes the end line and returns the output with the number of entry and redaction lines.
    pub fn finish(mut self) -> std::io::Result<(W, u64, u64)> {
        write_line(
            &mut self.out,
            &Line::End(EndLine {
                entries: self.entries,
                redactions: self.redactions,
            }),
        )?;
        self.out.flush()?;
        Ok((self.out, self.entries, self.redactions))
    }
}

fn entry_line(e: &ProvedEntry<'_>, checkpoint: &str) -> EntryLine {
    EntryLine {
        seq: e.seq,
        leaf: B64.encode(e.leaf),
        values: B64.encode(e.values),
        tlog_proof: tlog_proof_text(e.seq, e.proof, checkpoint),
    }
}

/// Decodes a leaf and opens it with its value row.
fn open_bytes(leaf: &[u8], values: &[u8]) -> Result<crate::log::seal::Opened, String> {
    use prost::Message;
    let sealed = entry::decode(leaf).map_err(|e| e.to_string())?;
    let values = entry::EntryValues::decode(values).map_err(|e| format!("values: {e}"))?;
    crate::log::seal::unseal(&sealed, &values).map_err(|e| e.to_string())
}

fn write_line<W: Write>(out: &mut W, line: &Line) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// What an intact bundle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleReport {
    pub origin: String,
    pub checkpoint_size: u64,
    pub root: Hash,
    pub entries: u64,
    /// Seq of the export's own audit entry.
    pub audit_seq: u64,
    /// The trusted key that signed the checkpoint.
    pub signed_by: String,
    /// Personal values the bundle's entries commit to but no longer carry, each removed by one of
    /// its redaction entries.
    pub redacted_values: u64,
    /// Redaction lines: the redaction entries that removed them, proved.
    pub redaction_entries: u64,
}

/// Why a bundle was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The bundle is not intact: altered, truncated, re-signed or not proved by its checkpoint.
    /// `line` is 1-based.
    #[error("line {line}: {problem}")]
    Tampered { line: usize, problem: String },
    /// Verification could not run: unreadable file, no usable key, an unknown bundle format.
    #[error("{0}")]
    CouldNotRun(String),
}

fn tampered(line: usize, problem: impl Into<String>) -> BundleError {
    BundleError::Tampered {
        line,
        problem: problem.into(),
    }
}

/// Lines read, then proved on every core, at a time.
const BUNDLE_CHUNK: usize = 4096;

/// What the header established.
struct Anchor<'a> {
    note: &'a str,
    size: u64,
    root: Hash,
}

/// Checks one entry line against the anchor; returns the stored bytes and the decoded entry.
fn check_entry(
    n: usize,
    line: &EntryLine,
    anchor: &Anchor<'_>,
) -> Result<(Vec<u8>, crate::log::seal::Opened), BundleError> {
    let seq = line.seq;
    let leaf = prove(n, line, anchor)?;
    let values = B64
        .decode(&line.values)
        .map_err(|_| tampered(n, format!("entry {seq}: values are not base64")))?;
    let opened = open_bytes(&leaf, &values)
        .map_err(|e| tampered(n, format!("entry {seq}: proved, but {e}")))?;
    if opened.entry.seq != seq {
        return Err(tampered(
            n,
            format!("entry {seq}: the bytes say seq {}", opened.entry.seq),
        ));
    }
    Ok((leaf, opened))
}

/// Checks one redaction line against the anchor: a redaction entry, proved, naming only entries
/// before it. Returns what it removed.
fn check_redaction(
    n: usize,
    line: &EntryLine,
    anchor: &Anchor<'_>,
) -> Result<entry::Redaction, BundleError> {
    let seq = line.seq;
    if !line.values.is_empty() {
        return Err(tampered(
            n,
            format!("redaction entry {seq}: a redaction line carries no value row"),
        ));
    }
    let leaf = prove(n, line, anchor)?;
    let e = entry::decode(&leaf)
        .map_err(|e| tampered(n, format!("redaction entry {seq}: proved, but {e}")))?;
    if e.seq != seq {
        return Err(tampered(
            n,
            format!("redaction entry {seq}: the bytes say seq {}", e.seq),
        ));
    }
    let redaction = match e.redaction {
        Some(r) if e.kind == EntryKind::Redaction as i32 => r,
        _ => {
            return Err(tampered(
                n,
                format!("entry {seq} is on a redaction line but is not a redaction entry"),
            ));
        }
    };
    if redaction
        .targets
        .iter()
        .any(|t| t.to_seq >= seq || t.from_seq > t.to_seq)
    {
        return Err(tampered(
            n,
            format!("redaction entry {seq} names entries that are not before it"),
        ));
    }
    Ok(redaction)
}

/// Checks a line's inclusion proof against the anchor; returns the leaf's bytes.
fn prove(n: usize, line: &EntryLine, anchor: &Anchor<'_>) -> Result<Vec<u8>, BundleError> {
    let seq = line.seq;
    let leaf = B64
        .decode(&line.leaf)
        .map_err(|_| tampered(n, format!("entry {seq}: leaf is not base64")))?;
    let proof = parse_tlog_proof(&line.tlog_proof)
        .map_err(|why| tampered(n, format!("entry {seq}: tlog_proof: {why}")))?;
    if proof.index != seq {
        return Err(tampered(
            n,
            format!("entry {seq}: its proof is for index {}", proof.index),
        ));
    }
    if proof.checkpoint != anchor.note {
        return Err(tampered(
            n,
            format!("entry {seq}: its proof is against a different checkpoint than the header's"),
        ));
    }
    verify_inclusion(&leaf_hash(&leaf), seq, anchor.size, &proof.proof, &anchor.root).map_err(
        |e| {
            tampered(
                n,
                format!(
                    "entry {seq}: inclusion proof does not verify against the checkpoint of size {}: {e}",
                    anchor.size
                ),
            )
        },
    )?;
    Ok(leaf)
}

/// What an export's opening audit entry records: the bundle header must repeat it, and the
/// bundle's entries must be the ones it committed to.
struct StatedExport {
    filter: serde_json::Value,
    auditor: String,
    purpose: String,
    case_reference: String,
    committed: u64,
    digest: Vec<u8>,
}

impl StatedExport {
    fn of(e: &entry::Entry) -> Self {
        let q = e.audit_query.clone().unwrap_or_default();
        StatedExport {
            filter: serde_json::from_str(&q.filter_json).unwrap_or(serde_json::Value::Null),
            auditor: e.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
            purpose: entry::AuditPurpose::try_from(q.purpose)
                .unwrap_or(entry::AuditPurpose::Unspecified)
                .label()
                .to_owned(),
            case_reference: q.case_reference,
            committed: q.results_committed,
            digest: q.results_sha256,
        }
    }
}

/// Verifies a bundle read from `input` against `keys` (the log's `log.pub`, pinned out of band).
/// The checkpoint must carry `origin` (by default the keys' name) and be signed by the key whose
/// epoch holds its size.
pub fn verify_bundle<R: BufRead>(
    input: R,
    keys: &LogKeys,
    origin: Option<&str>,
) -> Result<BundleReport, BundleError> {
    let origin = match origin {
        Some(o) => o.to_owned(),
        None => {
            let mut names = keys.keys().iter().map(VerifierKey::name);
            let first = names.next().unwrap_or_default().to_owned();
            if names.any(|n| n != first) {
                return Err(BundleError::CouldNotRun(
                    "the key file's keys have different names; say which origin the log has with --origin".into(),
                ));
            }
            first
        }
    };
    let epochs = match (keys.stated_epochs(), keys.first_key()) {
        (Some(e), _) => e.clone(),
        (None, Some(k)) => KeyEpochs::starting_with(k.clone()),
        (None, None) => {
            return Err(BundleError::CouldNotRun(
                "the key file lists several keys without saying which sizes each signs; use the log.pub written by `s62 rotate-key`".into(),
            ));
        }
    };
    let mut lines = input.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut next_line = || -> Result<Option<(usize, String)>, BundleError> {
        match lines.next() {
            None => Ok(None),
            Some((n, Ok(text))) => Ok(Some((n, text))),
            Some((n, Err(e))) => Err(BundleError::CouldNotRun(format!("reading line {n}: {e}"))),
        }
    };

    let Some((_, first)) = next_line()? else {
        return Err(tampered(1, "the bundle is empty"));
    };
    let header = match serde_json::from_str::<Line>(&first) {
        Ok(Line::Header(h)) if h.format == FORMAT => h,
        Ok(Line::Header(h)) => {
            return Err(BundleError::CouldNotRun(format!(
                "bundle format {:?} is not supported (this build reads {FORMAT}); export again",
                h.format
            )));
        }
        Ok(_) => return Err(tampered(1, "the first line is not a bundle header")),
        Err(e) => return Err(tampered(1, format!("not a bundle header: {e}"))),
    };
    if header.origin != origin {
        return Err(tampered(
            1,
            format!(
                "the bundle is for log {:?}, but the key file (or --origin) is for {origin:?}",
                header.origin
            ),
        ));
    }
    let (cp, signers) = open_checkpoint(&header.checkpoint, keys.keys(), Some(&origin))
        .map_err(|e| tampered(1, format!("checkpoint: {e}")))?;
    epochs
        .check_signers(cp.size, &signers)
        .map_err(|e| tampered(1, format!("checkpoint: {e}")))?;
    let named = VerifierKey::parse(&header.verifier_key)
        .map_err(|e| tampered(1, format!("verifier_key: {e}")))?;
    if !keys.keys().iter().any(|k| k == &named) {
        return Err(tampered(
            1,
            "the bundle names a verifier key that is not among the trusted keys",
        ));
    }
    let anchor = Anchor {
        note: &header.checkpoint,
        size: cp.size,
        root: cp.root,
    };

    let (_, audit) = check_entry(1, &header.audit, &anchor)?;
    // Values the entries commit to but no longer carry, (line, seq, value), each to be explained
    // by a redaction line; the audit entry's last, as it follows every exported entry.
    let mut removed: Vec<(usize, u64, FieldRef)> = Vec::new();
    let audit_removed: Vec<_> = audit
        .redacted
        .iter()
        .map(|r| (1, header.audit.seq, *r))
        .collect();
    let audit = audit.entry;
    let is_export_audit = audit.kind == EntryKind::AuditQuery as i32
        && audit
            .audit_query
            .as_ref()
            .is_some_and(|q| q.call == "Export");
    if !is_export_audit {
        return Err(tampered(
            1,
            format!(
                "entry {} is not the export's audit-query entry",
                header.audit.seq
            ),
        ));
    }
    let stated = StatedExport::of(&audit);
    for (field, in_header, recorded) in [
        (
            "filter",
            header.filter.to_string(),
            stated.filter.to_string(),
        ),
        ("auditor", header.auditor.clone(), stated.auditor.clone()),
        ("purpose", header.purpose.clone(), stated.purpose.clone()),
        (
            "case_reference",
            header.case_reference.clone(),
            stated.case_reference.clone(),
        ),
    ] {
        if in_header != recorded {
            return Err(tampered(
                1,
                format!(
                    "the header's {field} is not what the export's audit entry {} records",
                    header.audit.seq
                ),
            ));
        }
    }
    if stated.digest.len() != Hash::LEN {
        return Err(tampered(
            1,
            format!(
                "the export's audit entry {} commits to no result set",
                header.audit.seq
            ),
        ));
    }
    let audit_seq = header.audit.seq;

    let mut count = 0u64;
    let mut redaction_lines: Vec<(u64, entry::Redaction)> = Vec::new();
    let mut seqs: Vec<u64> = Vec::new();
    let mut previous: Option<(u64, Hash)> = None;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    // Lines are read in chunks; each entry line is parsed, proved and opened on every core, and
    // the chunk folded in order, so the first problem in line order is the one reported.
    let mut checked = std::collections::VecDeque::new();
    let redaction_entries = loop {
        if checked.is_empty() {
            let mut raw = Vec::with_capacity(BUNDLE_CHUNK);
            while raw.len() < BUNDLE_CHUNK {
                match next_line()? {
                    Some(l) => raw.push(l),
                    None => break,
                }
            }
            checked.extend(
                super::on_every_core(&raw, workers, 256, |part| {
                    part.iter()
                        .map(|(n, text)| {
                            let line = serde_json::from_str::<Line>(text);
                            let proved = match &line {
                                Ok(Line::Entry(e)) => Some(check_entry(*n, e, &anchor)),
                                _ => None,
                            };
                            (*n, text.trim().is_empty(), line, proved)
                        })
                        .collect()
                })
                .map_err(|e| BundleError::CouldNotRun(e.to_string()))?,
            );
        }
        let Some((n, _, parsed, proved)) = checked.pop_front() else {
            return Err(tampered(
                count as usize + 2,
                "truncated: the end line is missing",
            ));
        };
        match parsed {
            Ok(Line::Entry(line)) => {
                if !redaction_lines.is_empty() {
                    return Err(tampered(n, "an entry line after the redaction lines"));
                }
                let (leaf, opened) = proved.unwrap_or_else(|| check_entry(n, &line, &anchor))?;
                removed.extend(opened.redacted.iter().map(|r| (n, line.seq, *r)));
                let decoded = opened.entry;
                if line.seq >= audit_seq {
                    return Err(tampered(
                        n,
                        format!(
                            "entry {} is not older than the export that produced it ({audit_seq})",
                            line.seq
                        ),
                    ));
                }
                if let Some((prev_seq, prev_hash)) = previous {
                    if line.seq <= prev_seq {
                        return Err(tampered(
                            n,
                            format!("entry {} does not follow entry {prev_seq}", line.seq),
                        ));
                    }
                    if line.seq == prev_seq + 1 && decoded.prev_leaf_hash != prev_hash.0 {
                        return Err(tampered(
                            n,
                            format!("entry {}: hash chain broken", line.seq),
                        ));
                    }
                }
                previous = Some((line.seq, leaf_hash(&leaf)));
                seqs.push(line.seq);
                count += 1;
            }
            Ok(Line::Redaction(line)) => {
                if redaction_lines.last().is_some_and(|(s, _)| *s >= line.seq) {
                    return Err(tampered(
                        n,
                        format!("redaction entry {} is out of order", line.seq),
                    ));
                }
                redaction_lines.push((line.seq, check_redaction(n, &line, &anchor)?));
            }
            Ok(Line::End(end)) => {
                if end.redactions != redaction_lines.len() as u64 {
                    return Err(tampered(
                        n,
                        format!(
                            "the end line says {} redaction entries, the bundle holds {}",
                            end.redactions,
                            redaction_lines.len()
                        ),
                    ));
                }
                if end.entries != count {
                    return Err(tampered(
                        n,
                        format!(
                            "the end line says {} entries, the bundle holds {count}",
                            end.entries
                        ),
                    ));
                }
                if count != stated.committed
                    || selection_digest(&seqs).0.as_slice() != stated.digest.as_slice()
                {
                    return Err(tampered(
                        n,
                        format!(
                            "the bundle's entries are not the ones its export committed to in \
                             audit entry {audit_seq} ({} committed, {count} present): entries \
                             were dropped, added or replaced",
                            stated.committed
                        ),
                    ));
                }
                removed.extend(audit_removed.iter().copied());
                let redaction_entries = redaction_lines.len() as u64;
                let mut sweep = Redactions::from_entries(std::mem::take(&mut redaction_lines));
                for &(m, seq, r) in &removed {
                    if sweep.first_covering(seq, r).is_none() {
                        return Err(tampered(
                            m,
                            format!(
                                "entry {seq}: its {r} is no longer stored and no redaction entry \
                                 in the bundle removed it"
                            ),
                        ));
                    }
                }
                if let Some((m, ..)) = checked.iter().find(|(_, blank, ..)| !blank) {
                    return Err(tampered(*m, "content after the end line"));
                }
                while let Some((m, rest)) = next_line()? {
                    if !rest.trim().is_empty() {
                        return Err(tampered(m, "content after the end line"));
                    }
                }
                break redaction_entries;
            }
            Ok(Line::Header(_)) => return Err(tampered(n, "a second header")),
            Err(e) => return Err(tampered(n, format!("not a bundle line: {e}"))),
        }
    };
    Ok(BundleReport {
        origin: cp.origin,
        checkpoint_size: cp.size,
        root: cp.root,
        entries: count,
        audit_seq,
        signed_by: signers
            .first()
            .map(|k| k.name().to_owned())
            .unwrap_or_default(),
        redacted_values: removed.len() as u64,
        redaction_entries,
    })
}

/// `s62 verify-bundle FILE --key PUBFILE`: exit 0 intact, 1 tampered, 2 could not run.
pub fn verify_bundle_file(file: &Path, key_file: &Path, origin: Option<&str>) -> ExitCode {
    let keys = match crate::keys::read_log_keys(key_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("s62 verify-bundle: could not run: {e}");
            return ExitCode::from(2);
        }
    };
    let input = match std::fs::File::open(file) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => {
            eprintln!("s62 verify-bundle: could not run: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    match verify_bundle(input, &keys, origin) {
        Ok(r) => {
            println!(
                "OK: {} entries of {} proved against its checkpoint of size {} (root {}), signed by {}; \
                 they are exactly the entries the export committed to in its audit entry, seq {}",
                r.entries,
                r.origin,
                r.checkpoint_size,
                r.root.to_base64(),
                r.signed_by,
                r.audit_seq
            );
            if r.redacted_values > 0 {
                println!(
                    "{} personal value(s) are redacted: their commitments are proved, their values are not in the log any more, \
                     and each was removed by one of the {} redaction entries the bundle proves",
                    r.redacted_values, r.redaction_entries
                );
            }
            ExitCode::SUCCESS
        }
        Err(BundleError::Tampered { line, problem }) => {
            eprintln!("TAMPERED: {}: line {line}: {problem}", file.display());
            ExitCode::from(1)
        }
        Err(BundleError::CouldNotRun(why)) => {
            eprintln!("s62 verify-bundle: could not run: {why}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tlog_proof_round_trips_and_matches_the_c2sp_layout() {
        let h1 = crate::log::hash::sha256(b"a");
        let h2 = crate::log::hash::sha256(b"b");
        let note = "log.example\n5\nAAAA\n\n\u{2014} log.example abcd\n";
        let text = tlog_proof_text(3, &[h1, h2], note);
        assert_eq!(
            text,
            format!(
                "c2sp.org/tlog-proof@v1\nindex 3\n{}\n{}\n\n{note}",
                h1.to_base64(),
                h2.to_base64()
            )
        );
        let p = parse_tlog_proof(&text).expect("parses");
        assert_eq!((p.index, p.proof, p.checkpoint), (3, vec![h1, h2], note));
        let empty = tlog_proof_text(0, &[], note);
        assert_eq!(parse_tlog_proof(&empty).expect("parses").proof, vec![]);
    }

    #[test]
    fn malformed_tlog_proofs_are_refused() {
        for bad in [
            "c2sp.org/tlog-proof@v2\nindex 0\n\ncp\n",
            "c2sp.org/tlog-proof@v1\nindex 01\n\ncp\n",
            "c2sp.org/tlog-proof@v1\nindex x\n\ncp\n",
            "c2sp.org/tlog-proof@v1\nindex 1\nnot-a-hash\n\ncp\n",
            "c2sp.org/tlog-proof@v1\nindex 1\n",
        ] {
            assert!(parse_tlog_proof(bad).is_err(), "{bad:?}");
        }
        let with_extra = "c2sp.org/tlog-proof@v1\nextra AAAA\nindex 7\n\ncp\n";
        assert_eq!(
            parse_tlog_proof(with_extra).expect("extra ignored").index,
            7
        );
    }
}

//! Formats 2 and 3 against a real RocksDB folder (issue 12), each scenario in both: personal values removed by retention and on
//! request leave a log that verifies; a value removed without a redaction entry is caught naming
//! its seq; a redacted subject id cannot be found by search, in the store's files, or by hashing
//! guesses; retention resumes where it stopped; a format-1 log stays verifiable and unredactable.

use prost::Message;
use s62::config::RetentionConfig;
use s62::ingest::{AppendError, LogWriter, WriterConfig, WriterTask};
use s62::keys;
use s62::log::entry::{
    self, Actor, AuthMethod, Entry, EntryKind, EntryValues, Justification, Operation,
    PersonalField, Redaction, RedactionTarget,
};
use s62::log::index::IndexFamily;
use s62::log::seal::{commitment, v3_salt};
use s62::log::store::rocks::RocksStore;
use s62::log::store::{LogStore, Store, values_key};
use s62::retention::{RetentionMetrics, resume_point, run_once};
use s62::verify::{VerifyError, VerifyOptions, verify_store};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ORIGIN: &str = "redaction.s62.test/records";

/// The formats whose values can be redacted; each scenario runs in both.
const SEALED: [u32; 2] = [entry::FORMAT_V2, entry::FORMAT_V3];

struct Log {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    writer: LogWriter,
    task: WriterTask,
}

fn data(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// Opens (or reopens) the log in `dir` with its key, writing new logs in `format`.
fn open_in(dir: tempfile::TempDir, format: u32) -> Log {
    let (key_path, _) = keys::key_paths(dir.path());
    let key = if key_path.exists() {
        keys::read_signer(&key_path).expect("key reads")
    } else {
        keys::generate(dir.path(), ORIGIN).expect("key generated")
    };
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(&data(dir.path())).expect("store opens"));
    let mut cfg = WriterConfig::new(ORIGIN);
    cfg.new_log_format = format;
    let (writer, task) = LogWriter::start(store.clone(), key, cfg).expect("writer starts");
    Log {
        dir,
        store,
        writer,
        task,
    }
}

fn new_log(format: u32) -> Log {
    open_in(tempfile::tempdir().expect("tempdir"), format)
}

impl Log {
    /// Stops the writer and closes the store, as a crash or restart would; returns the folder.
    async fn close(self) -> tempfile::TempDir {
        self.task.shutdown_async().await;
        drop(self.writer);
        drop(self.store);
        self.dir
    }

    fn verify(&self) -> Result<s62::verify::Report, VerifyError> {
        let (_, pub_path) = keys::key_paths(self.dir.path());
        let keys = keys::read_log_keys(&pub_path).expect("log.pub reads");
        verify_store(self.store.as_ref(), VerifyOptions::new(keys))
    }

    /// Every byte of every file in the log folder, concatenated.
    fn files(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for f in std::fs::read_dir(data(self.dir.path())).expect("folder lists") {
            let path = f.expect("entry").path();
            if path.is_file() {
                all.extend(std::fs::read(&path).expect("file reads"));
            }
        }
        all
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An officer's consultation of `subject`, with a justification.
fn consultation(officer: &str, subject: &str) -> Entry {
    Entry {
        kind: EntryKind::Intent as i32,
        operation: Operation::Consultation as i32,
        actor: Some(Actor {
            id: officer.into(),
            display_name: format!("Officer {officer}"),
            auth_method: AuthMethod::Mtls as i32,
            ..Default::default()
        }),
        justification: Some(Justification {
            purpose_code: "investigation".into(),
            text: format!("alibi check for {subject}"),
            case_reference: "CR-2026-0042".into(),
        }),
        subject_ids: vec![subject.into()],
        ..Default::default()
    }
}

async fn append_all(log: &Log, entries: impl IntoIterator<Item = Entry>) -> Vec<u64> {
    let mut seqs = Vec::new();
    for e in entries {
        seqs.push(log.writer.append(e).await.expect("appended").seq);
    }
    seqs
}

/// A DPO's request to remove `fields` of `seqs` (contiguous) for `reason`.
fn request(from: u64, to: u64, fields: &[PersonalField], reason: &str) -> Entry {
    Entry {
        actor: Some(Actor {
            id: "dpo-01".into(),
            roles: vec!["dpo".into()],
            auth_method: AuthMethod::Mtls as i32,
            ..Default::default()
        }),
        redaction: Some(Redaction {
            targets: vec![RedactionTarget {
                from_seq: from,
                to_seq: to,
                fields: fields.iter().map(|f| *f as i32).collect(),
                index: None,
            }],
            reason: reason.into(),
            detail: String::new(),
            purpose: entry::AuditPurpose::IntegrityAndSecurity as i32,
        }),
        ..Default::default()
    }
}

fn retention(batch: u64) -> RetentionConfig {
    RetentionConfig {
        personal_fields_after: "1s".into(),
        run_every: std::time::Duration::from_secs(3600),
        batch_entries: batch,
    }
}

fn subject_index(store: &dyn Store, subject: &str) -> Vec<u64> {
    store
        .index_seqs(IndexFamily::Subject, subject, 0, 1000)
        .expect("index reads")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_with_retention_and_request_redactions_still_verifies() {
    for format in SEALED {
        a_log_with_retention_and_request_redactions_still_verifies_in(format).await;
    }
}

async fn a_log_with_retention_and_request_redactions_still_verifies_in(format: u32) {
    let log = new_log(format);
    let seqs = append_all(
        &log,
        (0..10).map(|i| consultation("PC-1", &format!("P-{i}"))),
    )
    .await;

    // Retention: everything written before now is past a one-second policy... at a cutoff of
    // now, in slices of 4.
    let metrics = RetentionMetrics::default();
    let cutoff = jiff::Timestamp::now();
    let redacted = run_once(
        log.store.clone(),
        &log.writer,
        cutoff,
        &retention(4),
        &metrics,
    )
    .await
    .expect("retention runs");
    assert!(
        redacted >= 10,
        "every consultation is past retention ({redacted})"
    );
    assert_eq!(metrics.redactions.get(), redacted.div_ceil(4));

    // A request: the justification of one later entry, as a correction.
    let later = append_all(&log, [consultation("PC-2", "P-77")]).await[0];
    log.writer
        .redact(request(
            later,
            later,
            &[PersonalField::JustificationText],
            "correction",
        ))
        .await
        .expect("request redaction");

    let report = log.verify().expect("the redacted log verifies");
    assert!(report.redaction_entries >= 4, "{report:?}");
    // Retention removed every value of the first ten (actor id, name, text, case, subject: 50),
    // and the request redaction at least one more.
    assert!(report.redacted_values > 50, "{report:?}");
    let first = log.store.opened(seqs[0]).expect("reads").expect("present");
    assert!(first.entry.subject_ids.iter().all(String::is_empty));
    assert!(!first.redacted.is_empty());
    // What stays in the leaf stays readable: kind, operation, purpose code.
    assert_eq!(first.entry.operation, Operation::Consultation as i32);
    assert_eq!(
        first.entry.justification.expect("kept").purpose_code,
        "investigation"
    );
    let corrected = log.store.opened(later).expect("reads").expect("present");
    assert_eq!(
        corrected.entry.subject_ids,
        ["P-77"],
        "only the named field went"
    );
    assert_eq!(
        corrected
            .redacted
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["justification_text"]
    );
    log.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_deleted_without_a_redaction_entry_is_caught_naming_its_seq() {
    for format in SEALED {
        a_value_deleted_without_a_redaction_entry_is_caught_naming_its_seq_in(format).await;
    }
}

async fn a_value_deleted_without_a_redaction_entry_is_caught_naming_its_seq_in(format: u32) {
    let log = new_log(format);
    let seqs = append_all(
        &log,
        (0..5).map(|i| consultation("PC-1", &format!("P-{i}"))),
    )
    .await;
    let victim = seqs[3];
    log.verify().expect("intact before the attack");

    // The operator drops one subject id from the value row, keeping everything else.
    let original = log.store.values(victim).expect("row reads");
    let mut values = original.clone();
    values
        .values
        .retain(|v| v.field != PersonalField::SubjectId as i32);
    log.store
        .write(&[(values_key(victim), values.encode_to_vec())])
        .expect("raw write");

    match log.verify() {
        Err(VerifyError::Tampered { seq, problem }) => {
            assert_eq!(seq, Some(victim), "{problem}");
            if format == entry::FORMAT_V2 {
                assert!(problem.contains("subject_id[0]"), "{problem}");
                assert!(problem.contains("no redaction entry"), "{problem}");
            } else {
                // Format 3 cannot say which value went, only that the row no longer hashes to
                // the leaf's values_root.
                assert!(problem.contains("values_root"), "{problem}");
            }
        }
        other => panic!("a silent deletion verified: {other:?}"),
    }

    // The careful operator instead removes it exactly as a redaction would (in format 3: the
    // commitment kept, the seed replaced by salts), with no redaction entry.
    let mut forged = original;
    let removed = s62::log::seal::redact_values(format, &mut forged, |f, _| {
        f == PersonalField::SubjectId as i32
    });
    assert_eq!(removed, 1);
    log.store
        .write(&[(values_key(victim), forged.encode_to_vec())])
        .expect("raw write");
    match log.verify() {
        Err(VerifyError::Tampered { seq, problem }) => {
            assert_eq!(seq, Some(victim), "{problem}");
            assert!(problem.contains("subject_id[0]"), "{problem}");
            assert!(problem.contains("no redaction entry"), "{problem}");
        }
        other => panic!("a redaction without a redaction entry verified: {other:?}"),
    }
    log.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_changed_in_its_row_is_caught_as_a_mismatch() {
    for format in SEALED {
        a_value_changed_in_its_row_is_caught_as_a_mismatch_in(format).await;
    }
}

async fn a_value_changed_in_its_row_is_caught_as_a_mismatch_in(format: u32) {
    let log = new_log(format);
    let seqs = append_all(
        &log,
        (0..3).map(|i| consultation("PC-1", &format!("P-{i}"))),
    )
    .await;
    let mut values = log.store.values(seqs[1]).expect("row reads");
    for v in &mut values.values {
        if v.field == PersonalField::ActorId as i32 {
            v.value = "PC-999".into();
        }
    }
    log.store
        .write(&[(values_key(seqs[1]), values.encode_to_vec())])
        .expect("raw write");
    match log.verify() {
        Err(VerifyError::Tampered { seq, problem }) => {
            assert_eq!(seq, Some(seqs[1]), "{problem}");
            let named = if format == entry::FORMAT_V2 {
                "actor_id"
            } else {
                "values_root"
            };
            assert!(problem.contains(named), "{problem}");
        }
        other => panic!("a changed value verified: {other:?}"),
    }
    log.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redacted_subject_cannot_be_found_by_search_in_the_files_or_by_hashing_guesses() {
    for format in SEALED {
        a_redacted_subject_cannot_be_found_by_search_in_the_files_or_by_hashing_guesses_in(format)
            .await;
    }
}

async fn a_redacted_subject_cannot_be_found_by_search_in_the_files_or_by_hashing_guesses_in(
    format: u32,
) {
    const SUBJECT: &str = "P-4242-SUBJECT";
    let log = new_log(format);
    let seqs = append_all(
        &log,
        [
            consultation("PC-1", "P-1000-OTHER"),
            consultation("PC-1", SUBJECT),
            consultation("PC-2", SUBJECT),
        ],
    )
    .await;
    let row = log.store.values(seqs[1]).expect("row reads");
    // What opens the subject's commitment: its salt, stored beside it in format 2 and derived
    // from the entry's stored seed in format 3.
    let salt = if format == entry::FORMAT_V2 {
        row.values
            .iter()
            .find(|v| v.field == PersonalField::SubjectId as i32)
            .expect("subject value stored")
            .salt
            .clone()
    } else {
        v3_salt(&row.seed, PersonalField::SubjectId, 0).to_vec()
    };
    let secret = if format == entry::FORMAT_V2 {
        salt.clone()
    } else {
        row.seed.clone()
    };
    // Control: before redaction the subject is found, its value and the secret that gives its
    // salt are in the files (so the checks below can fail), and a guess with the salt confirms it.
    assert_eq!(subject_index(log.store.as_ref(), SUBJECT), &seqs[1..]);
    log.store.purge(&[]).expect("flush"); // values reach the files' own format
    let before = log.files();
    assert!(
        contains(&before, SUBJECT.as_bytes()),
        "control: value in the files"
    );
    assert!(
        contains(&before, &secret),
        "control: salt or seed in the files"
    );

    // An erasure request: every personal value of the two entries.
    log.writer
        .redact(request(seqs[1], seqs[2], &[], "erasure-request"))
        .await
        .expect("redaction");

    assert!(
        subject_index(log.store.as_ref(), SUBJECT).is_empty(),
        "search finds nothing"
    );
    assert_eq!(
        subject_index(log.store.as_ref(), "P-1000-OTHER"),
        [seqs[0]],
        "others stay"
    );
    let after = log.files();
    assert!(
        !contains(&after, SUBJECT.as_bytes()),
        "the id is gone from every file"
    );
    assert!(
        !contains(&after, &secret),
        "its salt or seed is gone from every file"
    );
    assert!(!contains(&after, &salt), "its salt is in no file");

    // Hashing guesses: the log still commits to the id (format 2 in the leaf, format 3 in the
    // row, under the leaf's values_root), but nothing stored opens it. Try the right guess with
    // every salt and seed the store still holds, and every salt a stored seed gives.
    let kept = if format == entry::FORMAT_V2 {
        let leaf = entry::decode(&log.store.entry(seqs[1]).expect("reads").expect("present"))
            .expect("decodes");
        leaf.commitments
            .iter()
            .find(|c| c.field == PersonalField::SubjectId as i32)
            .expect("the leaf still commits to the subject")
            .sha256
            .clone()
    } else {
        let row = log.store.values(seqs[1]).expect("row reads");
        assert!(row.seed.is_empty(), "the seed is gone");
        row.values
            .iter()
            .find(|v| v.field == PersonalField::SubjectId as i32)
            .expect("the row keeps the subject's commitment")
            .sha256
            .clone()
    };
    let rows: Vec<EntryValues> = (0..log.store.entry_count().expect("size"))
        .map(|s| log.store.values(s).expect("row"))
        .collect();
    let mut candidates: Vec<Vec<u8>> = rows
        .iter()
        .flat_map(|r| r.values.iter().map(|v| v.salt.clone()))
        .filter(|s| !s.is_empty())
        .collect();
    for seed in rows.iter().map(|r| &r.seed).filter(|s| !s.is_empty()) {
        candidates.push(seed.clone());
        candidates.push(v3_salt(seed, PersonalField::SubjectId, 0).to_vec());
    }
    assert!(!candidates.is_empty());
    for s in &candidates {
        let guess = commitment(PersonalField::SubjectId, 0, s, SUBJECT);
        assert_ne!(guess.0.as_slice(), kept.as_slice());
    }
    assert_eq!(
        commitment(PersonalField::SubjectId, 0, &salt, SUBJECT)
            .0
            .as_slice(),
        kept.as_slice(),
        "control: only the deleted salt opens it"
    );
    log.verify().expect("still verifies");
    log.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_resumes_after_a_restart_and_never_redacts_twice() {
    for format in SEALED {
        retention_resumes_after_a_restart_and_never_redacts_twice_in(format).await;
    }
}

async fn retention_resumes_after_a_restart_and_never_redacts_twice_in(format: u32) {
    let log = new_log(format);
    append_all(
        &log,
        (0..7).map(|i| consultation("PC-1", &format!("P-{i}"))),
    )
    .await;
    let metrics = RetentionMetrics::default();
    let first = run_once(
        log.store.clone(),
        &log.writer,
        jiff::Timestamp::now(),
        &retention(3),
        &metrics,
    )
    .await
    .expect("first run");
    let covered = resume_point(log.store.as_ref()).expect("reads");
    assert_eq!(covered, first, "the log says where retention stands");

    // Restart (as after a crash): the next run starts from the log, not from memory.
    let dir = log.close().await;
    let log = open_in(dir, format);
    append_all(
        &log,
        (0..4).map(|i| consultation("PC-2", &format!("Q-{i}"))),
    )
    .await;
    let second = run_once(
        log.store.clone(),
        &log.writer,
        jiff::Timestamp::now(),
        &retention(3),
        &RetentionMetrics::default(),
    )
    .await
    .expect("second run");
    assert!(second > 0);
    let end = resume_point(log.store.as_ref()).expect("reads");
    assert_eq!(
        end,
        covered + second,
        "the second run began where the first ended"
    );

    // Slices are contiguous and never overlap.
    let mut next = 0;
    for seq in log
        .store
        .index_seqs(IndexFamily::Kind, "redaction", 0, 1000)
        .expect("index")
    {
        let e = entry::decode(&log.store.entry(seq).expect("reads").expect("present"))
            .expect("decodes");
        let r = e.redaction.expect("redaction entry");
        assert_eq!(r.reason, "retention");
        for t in r.targets {
            assert_eq!(t.from_seq, next, "slice starts where the last ended");
            assert!(t.to_seq - t.from_seq < 3, "slices of at most 3");
            next = t.to_seq + 1;
        }
    }
    assert_eq!(next, end);
    log.verify().expect("verifies");
    log.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_format_1_log_still_verifies_and_refuses_redaction() {
    let log = new_log(1);
    let seqs = append_all(
        &log,
        (0..4).map(|i| consultation("PC-1", &format!("P-{i}"))),
    )
    .await;
    let leaf = entry::decode(&log.store.entry(seqs[0]).expect("reads").expect("present"))
        .expect("decodes");
    assert_eq!(leaf.format_version, entry::FORMAT_VERSION);
    assert_eq!(
        leaf.subject_ids,
        ["P-0"],
        "format 1 keeps values in the leaf"
    );
    assert_eq!(
        log.store.values(seqs[0]).expect("reads"),
        EntryValues::default()
    );
    log.verify().expect("format 1 verifies");

    match log
        .writer
        .redact(request(seqs[0], seqs[0], &[], "correction"))
        .await
    {
        Err(AppendError::Redaction(why)) => assert!(why.contains("format 1"), "{why}"),
        other => panic!("a format-1 log was redacted: {other:?}"),
    }
    assert!(matches!(
        s62::retention::check_format(log.store.as_ref()),
        Err(s62::retention::RetentionError::FormatOne)
    ));
    // A reopened format-1 folder stays format 1 even though new logs are format 3.
    let dir = log.close().await;
    let log = open_in(dir, entry::FORMAT_V3);
    let next = append_all(&log, [consultation("PC-1", "P-9")]).await[0];
    let e =
        entry::decode(&log.store.entry(next).expect("reads").expect("present")).expect("decodes");
    assert_eq!(e.subject_ids, ["P-9"]);
    log.verify().expect("still verifies");
    log.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redaction_naming_entries_beyond_the_log_or_an_ordinary_append_of_one_is_refused() {
    let log = new_log(entry::FORMAT_V3);
    let seqs = append_all(&log, [consultation("PC-1", "P-1")]).await;
    let size_before = log.store.entry_count().expect("size");
    match log
        .writer
        .redact(request(seqs[0], seqs[0] + 50, &[], "correction"))
        .await
    {
        Err(AppendError::Redaction(why)) => assert!(why.contains("not all in the log"), "{why}"),
        other => panic!("{other:?}"),
    }
    let mut smuggled = request(seqs[0], seqs[0], &[], "correction");
    smuggled.kind = EntryKind::Redaction as i32;
    assert!(
        log.writer.append(smuggled).await.is_err(),
        "redactions go through redact()"
    );
    assert_eq!(
        log.store.entry_count().expect("size"),
        size_before,
        "nothing was written"
    );
    let opened = log.store.opened(seqs[0]).expect("reads").expect("present");
    assert_eq!(opened.entry.subject_ids, ["P-1"]);
    log.close().await;
}

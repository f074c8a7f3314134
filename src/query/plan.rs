//! The search planner: a filter → the matching entries, in sequence order, from the secondary
//! indexes, so that cost grows with the results and not with the log.
//!
//! * Each indexed term (actor, subject, record, recipient, operation, kind, route, case
//!   reference, purpose) is a sorted
//!   stream of seqs read in blocks from the index ([`LogStore::index_seqs`]). Several terms are
//!   intersected by leapfrogging: the current candidate is sought in every stream, and any stream
//!   that overshoots moves the candidate forward, so a rare term skips a common one through its
//!   index instead of reading it. Streams are ordered most selective first (the ones that ran out
//!   within their first block, smallest first).
//! * A time range becomes a seq range by binary search over entries, which is valid because
//!   `time_unix_nanos` never decreases along the log.
//! * With no indexed term the entries themselves are scanned within the seq range.
//! * Every entry returned is decoded and re-checked against the filter: an index record that points
//!   at an entry that does not match is reported as an inconsistent log, never passed on.
//!
//! Synchronous and storage-agnostic: it reads through the [`Store`] trait and must not import tonic,
//! tokio or RocksDB.

use crate::log::entry::{self, Entry, EntryKind, Operation};
use crate::log::index::{IndexFamily, index_records};
use crate::log::store::{LogStore, OpenedEntry, Store, StoreError, open_leaf, values_key};
use serde_json::{Map, Value, json};

/// Which entries: every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryFilter {
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub record: Option<String>,
    pub recipient: Option<String>,
    pub operation: Option<Operation>,
    pub kind: Option<EntryKind>,
    pub route: Option<String>,
    /// A case reference the entry was made under (an officer's or an auditor's).
    pub case_reference: Option<String>,
    /// A purpose the entry was made for: an officer's purpose code or an auditor's s62(4) label.
    pub purpose: Option<String>,
    /// Entry time at or after, Unix nanoseconds.
    pub since: Option<i64>,
    /// Entry time before, Unix nanoseconds.
    pub until: Option<i64>,
}

impl EntryFilter {
    /// The indexed terms, as (family, value).
    pub fn terms(&self) -> Vec<(IndexFamily, String)> {
        let mut t = Vec::new();
        let mut add = |f: IndexFamily, v: &Option<String>| {
            if let Some(v) = v {
                t.push((f, v.clone()));
            }
        };
        add(IndexFamily::Actor, &self.actor);
        add(IndexFamily::Subject, &self.subject);
        add(IndexFamily::Record, &self.record);
        add(IndexFamily::Recipient, &self.recipient);
        add(IndexFamily::Route, &self.route);
        add(IndexFamily::CaseReference, &self.case_reference);
        add(IndexFamily::Purpose, &self.purpose);
        if let Some(op) = self.operation {
            t.push((IndexFamily::Operation, op.label().to_owned()));
        }
        if let Some(k) = self.kind {
            t.push((IndexFamily::Kind, k.label().to_owned()));
        }
        t
    }

    /// The filter as canonical JSON (sorted keys, only the fields that are set), as recorded in
    /// audit-query entries.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        put("actor", self.actor.clone().map(Value::from));
        put("subject", self.subject.clone().map(Value::from));
        put("record", self.record.clone().map(Value::from));
        put("recipient", self.recipient.clone().map(Value::from));
        put("route", self.route.clone().map(Value::from));
        put(
            "case_reference",
            self.case_reference.clone().map(Value::from),
        );
        put("purpose", self.purpose.clone().map(Value::from));
        put("operation", self.operation.map(|o| json!(o.label())));
        put("kind", self.kind.map(|k| json!(k.label())));
        put(
            "since",
            self.since.map(|t| json!(crate::render::rfc3339_utc(t))),
        );
        put(
            "until",
            self.until.map(|t| json!(crate::render::rfc3339_utc(t))),
        );
        Value::Object(m)
    }

    /// Whether a decoded entry satisfies every term and the time range.
    pub fn matches(&self, e: &Entry) -> bool {
        let recs = index_records(e);
        let has = |f: IndexFamily, v: &str| recs.iter().any(|r| r.family == f && r.value == v);
        self.terms().iter().all(|(f, v)| has(*f, v))
            && self.since.is_none_or(|t| e.time_unix_nanos >= t)
            && self.until.is_none_or(|t| e.time_unix_nanos < t)
    }
}

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry that an index or the seq range points at is missing or does not decode, or does
    /// not match the filter its index record says it matches.
    #[error("entry {seq}: {why}")]
    Inconsistent { seq: u64, why: String },
}

/// First seq in `[0, size)` whose time is `>= t` (`size` when none): binary search, valid because
/// times never decrease along the log.
pub fn first_seq_at_or_after(store: &dyn Store, t: i64, size: u64) -> Result<u64, PlanError> {
    let (mut lo, mut hi) = (0u64, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if entry_time(store, mid)? < t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

fn entry_time(store: &dyn Store, seq: u64) -> Result<i64, PlanError> {
    let bytes = store.entry(seq)?.ok_or_else(|| PlanError::Inconsistent {
        seq,
        why: "missing".into(),
    })?;
    entry::decode(&bytes)
        .map(|e| e.time_unix_nanos)
        .map_err(|e| PlanError::Inconsistent {
            seq,
            why: e.to_string(),
        })
}

/// Keys read when a seek jumps ahead: one index seek, a couple of keys.
const JUMP_BLOCK: usize = 2;
/// A target at most this many keys past the buffer is read on to, not sought.
const NEAR_KEYS: f64 = 16.0;
/// Keys read first from every stream, to tell how selective each is.
const PRIME_BLOCK: usize = 64;
const MAX_BLOCK: usize = 4096;

/// A sorted stream of seqs from one index term, read in blocks; [`IndexCursor::seek`] skips.
///
/// Block sizes adapt to how far a seek goes: a target a few keys past the buffer (by the stream's
/// observed density) is read on with a doubling block; a target far ahead is one index seek for a
/// couple of keys, because then another, rarer term is doing the selecting.
struct IndexCursor {
    family: IndexFamily,
    value: String,
    buf: Vec<u64>,
    pos: usize,
    /// The store has nothing beyond `buf`.
    exhausted: bool,
    block: usize,
    /// Seqs per key observed in the last block of two or more keys (1.0 = every entry).
    spacing: f64,
    /// Index reads made.
    reads: u64,
}

impl IndexCursor {
    fn new(family: IndexFamily, value: String) -> Self {
        IndexCursor {
            family,
            value,
            buf: Vec::new(),
            pos: 0,
            exhausted: false,
            block: JUMP_BLOCK,
            spacing: 1.0,
            reads: 0,
        }
    }

    /// The smallest seq `>= target` in this stream.
    fn seek(&mut self, store: &dyn Store, target: u64) -> Result<Option<u64>, StoreError> {
        self.pos += self.buf[self.pos..].partition_point(|&s| s < target);
        if let Some(&s) = self.buf.get(self.pos) {
            return Ok(Some(s));
        }
        if self.exhausted {
            return Ok(None);
        }
        let keys_skipped = self
            .buf
            .last()
            .map_or(f64::INFINITY, |&last| (target - last) as f64 / self.spacing);
        self.block = if keys_skipped <= NEAR_KEYS {
            (self.block * 2).min(MAX_BLOCK)
        } else {
            JUMP_BLOCK
        };
        self.fill(store, target)
    }

    /// Reads the first block from `from`, large enough to tell a rare term from a common one.
    fn prime(&mut self, store: &dyn Store, from: u64) -> Result<(), StoreError> {
        self.block = PRIME_BLOCK;
        self.fill(store, from).map(|_| ())
    }

    fn fill(&mut self, store: &dyn Store, from: u64) -> Result<Option<u64>, StoreError> {
        self.buf = store.index_seqs(self.family, &self.value, from, self.block)?;
        self.reads += 1;
        self.pos = 0;
        self.exhausted = self.buf.len() < self.block;
        if let (Some(&first), Some(&last), n @ 2..) =
            (self.buf.first(), self.buf.last(), self.buf.len())
        {
            self.spacing = ((last - first) as f64 / (n - 1) as f64).max(1.0);
        }
        Ok(self.buf.first().copied())
    }

    /// Most selective first: streams that ran out within their first block (smallest first),
    /// then the sparsest.
    fn selectivity_rank(&self) -> (bool, usize, std::cmp::Reverse<u64>) {
        (
            !self.exhausted,
            if self.exhausted { self.buf.len() } else { 0 },
            std::cmp::Reverse(self.spacing as u64),
        )
    }
}

/// The entries matching a filter within a seq range, in seq order: an iterator of
/// `(seq, stored bytes, decoded entry)`.
pub struct Matches<'s> {
    store: &'s dyn Store,
    filter: EntryFilter,
    cursors: Vec<IndexCursor>,
    /// Next seq to consider.
    next: u64,
    /// One past the last seq to consider.
    end: u64,
    /// Entries read ahead in scan mode (no indexed term).
    scanned: std::collections::VecDeque<(u64, Vec<u8>)>,
    ordered: bool,
    done: bool,
}

impl<'s> Matches<'s> {
    /// Entries in `[from, end)` that match `filter`, where `end` is at most the log's size. The
    /// filter's time range narrows `[from, end)` by binary search before anything else is read.
    pub fn new(
        store: &'s dyn Store,
        filter: EntryFilter,
        from: u64,
        end: u64,
    ) -> Result<Self, PlanError> {
        let mut from = from;
        let mut end = end;
        if let Some(t) = filter.since {
            from = from.max(first_seq_at_or_after(store, t, end)?);
        }
        if let Some(t) = filter.until {
            end = end.min(first_seq_at_or_after(store, t, end)?);
        }
        let cursors = filter
            .terms()
            .into_iter()
            .map(|(f, v)| IndexCursor::new(f, v))
            .collect();
        Ok(Matches {
            store,
            filter,
            cursors,
            next: from,
            end,
            scanned: Default::default(),
            ordered: false,
            done: from >= end,
        })
    }

    /// The next seq to be considered: where a following page starts.
    pub fn resume_at(&self) -> u64 {
        self.next
    }

    /// Index block reads made so far.
    pub fn index_reads(&self) -> u64 {
        self.cursors.iter().map(|c| c.reads).sum()
    }

    /// Next matching seq via the indexes (leapfrog intersection).
    fn next_indexed(&mut self) -> Result<Option<u64>, StoreError> {
        if !self.ordered {
            // Load each stream's first block, then put the most selective first.
            for c in &mut self.cursors {
                c.prime(self.store, self.next)?;
            }
            self.cursors.sort_by_key(IndexCursor::selectivity_rank);
            self.ordered = true;
        }
        let mut candidate = self.next;
        'search: loop {
            if candidate >= self.end {
                return Ok(None);
            }
            for c in &mut self.cursors {
                match c.seek(self.store, candidate)? {
                    None => return Ok(None),
                    Some(s) if s > candidate => {
                        candidate = s;
                        continue 'search;
                    }
                    Some(_) => {}
                }
            }
            return Ok(Some(candidate));
        }
    }

    fn next_scanned(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        if self.scanned.is_empty() {
            let want = (self.end - self.next).min(256) as usize;
            self.scanned = self.store.entries(self.next, want)?.into();
        }
        Ok(self.scanned.pop_front())
    }

    fn step(&mut self) -> Result<Option<OpenedEntry>, PlanError> {
        if self.done {
            return Ok(None);
        }
        let (seq, bytes) = if self.cursors.is_empty() {
            match self.next_scanned()? {
                Some((seq, _)) if seq >= self.end => return Ok(None),
                Some((seq, bytes)) if seq == self.next => (seq, bytes),
                Some((seq, _)) => {
                    return Err(PlanError::Inconsistent {
                        seq: self.next,
                        why: format!("missing (the next stored entry is {seq})"),
                    });
                }
                None => return Ok(None),
            }
        } else {
            let Some(seq) = self.next_indexed()? else {
                return Ok(None);
            };
            let bytes = self
                .store
                .entry(seq)?
                .ok_or_else(|| PlanError::Inconsistent {
                    seq,
                    why: "indexed but missing".into(),
                })?;
            (seq, bytes)
        };
        let opened = open_leaf(seq, bytes, || self.store.get(&values_key(seq))).map_err(|e| {
            PlanError::Inconsistent {
                seq,
                why: e.to_string(),
            }
        })?;
        let e = &opened.entry;
        if e.seq != seq {
            return Err(PlanError::Inconsistent {
                seq,
                why: format!("stored under {seq} but says {}", e.seq),
            });
        }
        if !self.filter.matches(e) {
            return Err(PlanError::Inconsistent {
                seq,
                why: "an index record points at an entry that does not match it".into(),
            });
        }
        self.next = seq + 1;
        Ok(Some(opened))
    }
}

impl Iterator for Matches<'_> {
    type Item = Result<OpenedEntry, PlanError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(m)) => Some(Ok(m)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Where a search continues: the next seq to consider and the end of the range the first page saw
/// (so later pages never include entries written after the search began). Opaque to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageToken {
    pub next: u64,
    pub end: u64,
}

impl PageToken {
    const PREFIX: &'static str = "s62p1.";

    pub fn encode(&self) -> String {
        format!("{}{}.{}", Self::PREFIX, self.next, self.end)
    }

    pub fn parse(s: &str) -> Option<PageToken> {
        let rest = s.strip_prefix(Self::PREFIX)?;
        let (next, end) = rest.split_once('.')?;
        let token = PageToken {
            next: next.parse().ok()?,
            end: end.parse().ok()?,
        };
        (token.next <= token.end).then_some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::{Actor, Outcome};
    use crate::log::index::index_records;
    use crate::log::store::memory::MemoryStore;
    use crate::log::store::{CommitBatch, Pairs};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A store that counts reads (calls) and keys read, to show cost follows results rather
    /// than log size.
    struct Counting {
        inner: MemoryStore,
        reads: AtomicU64,
        keys: AtomicU64,
    }

    impl Store for Counting {
        fn write(&self, puts: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
            self.inner.write(puts)
        }
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.keys.fetch_add(1, Ordering::Relaxed);
            self.inner.get(key)
        }
        fn scan(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Pairs, StoreError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let pairs = self.inner.scan(prefix, from, limit)?;
            self.keys.fetch_add(pairs.len() as u64, Ordering::Relaxed);
            Ok(pairs)
        }
        fn last(&self, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
            self.inner.last(prefix)
        }
    }

    /// Entry i: actor pc-(i % 10), subject P-(i % 100), consultation; every 7th a disclosure;
    /// time = 1000 * i.
    fn log(n: u64) -> Counting {
        let store = Counting {
            inner: MemoryStore::new(),
            reads: AtomicU64::new(0),
            keys: AtomicU64::new(0),
        };
        let mut batch = CommitBatch::default();
        for i in 0..n {
            let e = Entry {
                format_version: entry::FORMAT_VERSION,
                seq: i,
                time_unix_nanos: 1000 * i as i64,
                kind: if i % 2 == 0 {
                    EntryKind::Intent
                } else {
                    EntryKind::Outcome
                } as i32,
                operation: if i % 7 == 0 {
                    Operation::Disclosure
                } else {
                    Operation::Consultation
                } as i32,
                actor: Some(Actor {
                    id: format!("pc-{}", i % 10),
                    ..Default::default()
                }),
                subject_ids: vec![format!("P-{}", i % 100)],
                outcome: (i % 2 == 1).then(|| Outcome {
                    returned_subject_ids: vec![format!("R-{}", i % 1000)],
                    ..Default::default()
                }),
                ..Default::default()
            };
            batch.index.extend(index_records(&e));
            batch.entries.push((i, entry::encode(&e)));
        }
        batch.checkpoint = Some((n, String::new()));
        store.inner.commit(&batch).expect("commit");
        store
    }

    fn seqs(store: &dyn Store, f: EntryFilter, from: u64, end: u64) -> Vec<u64> {
        Matches::new(store, f, from, end)
            .expect("plan")
            .map(|m| m.expect("match").seq)
            .collect()
    }

    /// The same answer by brute force.
    fn brute(store: &dyn Store, f: &EntryFilter, end: u64) -> Vec<u64> {
        (0..end)
            .filter(|&s| {
                let b = store.entry(s).expect("read").expect("present");
                f.matches(&entry::decode(&b).expect("decode"))
            })
            .collect()
    }

    #[test]
    fn combined_filters_return_exactly_what_a_full_scan_would() {
        let store = log(3000);
        let filters = [
            EntryFilter {
                subject: Some("P-42".into()),
                ..Default::default()
            },
            EntryFilter {
                subject: Some("P-42".into()),
                actor: Some("pc-2".into()),
                ..Default::default()
            },
            EntryFilter {
                actor: Some("pc-3".into()),
                operation: Some(Operation::Disclosure),
                kind: Some(EntryKind::Outcome),
                ..Default::default()
            },
            EntryFilter {
                subject: Some("R-7".into()),
                ..Default::default()
            },
            EntryFilter {
                actor: Some("pc-1".into()),
                since: Some(500_000),
                until: Some(1_500_000),
                ..Default::default()
            },
            EntryFilter {
                since: Some(2_000_500),
                ..Default::default()
            },
            EntryFilter {
                subject: Some("nobody".into()),
                actor: Some("pc-1".into()),
                ..Default::default()
            },
        ];
        for f in filters {
            let want = brute(&store, &f, 3000);
            assert_eq!(seqs(&store, f.clone(), 0, 3000), want, "{f:?}");
        }
    }

    #[test]
    fn a_rare_term_drives_the_search_so_reads_follow_the_results() {
        let store = log(20_000);
        // kind=intent holds 10,000 entries (every even seq), subject P-44 200 of them.
        let f = EntryFilter {
            kind: Some(EntryKind::Intent),
            subject: Some("P-44".into()),
            ..Default::default()
        };
        store.reads.store(0, Ordering::Relaxed);
        store.keys.store(0, Ordering::Relaxed);
        let found = seqs(&store, f, 0, 20_000);
        assert_eq!(found.len(), 200);
        let (reads, keys) = (
            store.reads.load(Ordering::Relaxed),
            store.keys.load(Ordering::Relaxed),
        );
        // Reading the intent index alone would be 10,000 keys; the 200 entries are 200 more.
        assert!(reads < 200 * 3, "{reads} reads for 200 results");
        assert!(keys < 1200, "{keys} keys read for 200 results");
    }

    #[test]
    fn the_range_bounds_the_results_and_pages_resume_where_they_stopped() {
        let store = log(1000);
        let f = EntryFilter {
            actor: Some("pc-5".into()),
            ..Default::default()
        };
        let mut m = Matches::new(&store, f.clone(), 0, 500).expect("plan");
        let first: Vec<u64> = m.by_ref().take(3).map(|r| r.expect("ok").seq).collect();
        assert_eq!(first, [5, 15, 25]);
        let rest = seqs(&store, f, m.resume_at(), 500);
        assert_eq!(rest.first(), Some(&35));
        assert_eq!(rest.last(), Some(&495));
    }

    #[test]
    fn an_index_record_pointing_at_the_wrong_entry_is_reported_not_returned() {
        let store = log(100);
        // Index says pc-1 wrote entry 2; entry 2 says pc-2.
        store
            .inner
            .write(&[(
                crate::log::store::index_key(&crate::log::index::IndexRecord {
                    family: IndexFamily::Actor,
                    value: "pc-1".into(),
                    seq: 2,
                })
                .expect("short value"),
                Vec::new(),
            )])
            .expect("write");
        let f = EntryFilter {
            actor: Some("pc-1".into()),
            ..Default::default()
        };
        let results: Vec<_> = Matches::new(&store, f, 0, 100).expect("plan").collect();
        assert!(matches!(results.first(), Some(Ok(o)) if o.seq == 1));
        assert!(
            matches!(
                results.get(1),
                Some(Err(PlanError::Inconsistent { seq: 2, .. }))
            ),
            "the bad record is reported, not returned"
        );
        assert_eq!(results.len(), 2, "the search stops at the inconsistency");
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let t = PageToken { next: 10, end: 99 };
        assert_eq!(PageToken::parse(&t.encode()), Some(t));
        for bad in ["", "s62p1.", "s62p1.5", "s62p1.9.3", "x.1.2", "s62p1.a.b"] {
            assert_eq!(PageToken::parse(bad), None, "{bad}");
        }
    }
}

//! Index families added after a log began (case reference, purpose) are built for the entries
//! already stored when a writer of this version first opens such a log, and then recorded as
//! built in the store ([`LogStore::index_families`]); `s62 verify` checks a family only once it
//! is recorded. A new log records every family at once.
//!
//! Runs in [`super::LogWriter::start`], after the folder has been vouched for and before any
//! append, so nothing races it. Idempotent: an index record is an empty value under its key, so a
//! build cut short by a crash is simply done again at the next start. Synchronous over the
//! [`Store`] trait; must not import tokio or RocksDB.

use crate::log::index::{IndexFamily, index_records};
use crate::log::store::{LogStore, Store, StoreError, index_families_record, index_key};

/// Entries read (and index records written) per synced write.
const CHUNK: usize = 1024;

/// Builds every family in [`IndexFamily::ALL`] the store does not record as built, for entries
/// `[0, size)` (their values as stored now, so values already redacted are not indexed), then
/// records them all as built. Returns the families built (empty when there was nothing to do).
pub fn build_missing_families(
    store: &dyn Store,
    size: u64,
) -> Result<Vec<IndexFamily>, StoreError> {
    let built = store.index_families()?;
    let missing: Vec<IndexFamily> = IndexFamily::ALL
        .into_iter()
        .filter(|f| !built.contains(f))
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    let mut from = 0u64;
    while from < size {
        let chunk = store.opened_entries(from, CHUNK)?;
        let Some(last) = chunk.last().map(|o| o.seq) else {
            break;
        };
        let mut puts = Vec::new();
        for opened in chunk.iter().filter(|o| o.seq < size) {
            for rec in index_records(&opened.entry) {
                if missing.contains(&rec.family)
                    && let Some(key) = index_key(&rec)
                {
                    puts.push((key, Vec::new()));
                }
            }
        }
        if !puts.is_empty() {
            store.write(&puts)?;
        }
        from = last + 1;
    }
    store.write(&[index_families_record(&IndexFamily::ALL)])?;
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::{self, Entry, EntryKind, Justification};
    use crate::log::index::IndexRecord;
    use crate::log::store::CommitBatch;
    use crate::log::store::memory::MemoryStore;

    /// A log as a writer before the new families wrote it: entries with case references, only
    /// the original families indexed, no record of which families are built.
    fn old_log(n: u64) -> MemoryStore {
        let store = MemoryStore::new();
        let mut batch = CommitBatch::default();
        for i in 0..n {
            let e = Entry {
                format_version: entry::FORMAT_VERSION,
                seq: i,
                kind: EntryKind::Intent as i32,
                justification: Some(Justification {
                    purpose_code: "investigation".into(),
                    text: "why".into(),
                    case_reference: format!("OP-{}", i % 3),
                }),
                ..Default::default()
            };
            batch.index.extend(
                index_records(&e)
                    .into_iter()
                    .filter(|r| IndexFamily::ORIGINAL.contains(&r.family)),
            );
            batch.entries.push((i, entry::encode(&e)));
        }
        batch.checkpoint = Some((n, String::new()));
        store.commit(&batch).expect("commit");
        store
    }

    #[test]
    fn an_old_log_gets_its_case_and_purpose_indexes_once() {
        let store = old_log(2500);
        assert_eq!(store.index_families().expect("read"), IndexFamily::ORIGINAL);
        assert!(
            store
                .index_seqs(IndexFamily::CaseReference, "OP-1", 0, 10)
                .expect("read")
                .is_empty()
        );

        let built = build_missing_families(&store, 2500).expect("built");
        assert_eq!(built, [IndexFamily::CaseReference, IndexFamily::Purpose]);
        assert_eq!(store.index_families().expect("read"), IndexFamily::ALL);
        let op1 = store
            .index_seqs(IndexFamily::CaseReference, "OP-1", 0, 5000)
            .expect("read");
        assert_eq!(op1.len(), 833, "every third entry, across chunks");
        assert_eq!(op1.first(), Some(&1));
        assert_eq!(
            store
                .index_seqs(IndexFamily::Purpose, "investigation", 0, 5000)
                .expect("read")
                .len(),
            2500
        );
        // Every stored record is one the entries imply, and nothing else was written.
        let mut after: Option<IndexRecord> = None;
        let mut count = 0;
        loop {
            let recs = store.index_records(after.as_ref(), 1000).expect("read");
            let Some(last) = recs.last().cloned() else {
                break;
            };
            for r in &recs {
                let e = store.opened(r.seq).expect("read").expect("entry").entry;
                assert!(index_records(&e).contains(r), "{r:?}");
            }
            count += recs.len();
            after = Some(last);
        }
        assert_eq!(
            count,
            2500 * 3,
            "kind, case reference and purpose per entry"
        );

        assert!(
            build_missing_families(&store, 2500)
                .expect("nothing to do")
                .is_empty(),
            "done once"
        );
    }

    #[test]
    fn a_new_log_records_every_family_as_built_at_once() {
        let store = MemoryStore::new();
        assert!(!build_missing_families(&store, 0).expect("ok").is_empty());
        assert_eq!(store.index_families().expect("read"), IndexFamily::ALL);
    }
}

//! The RocksDB [`Store`]: the only module that imports `rocksdb`.
//!
//! One synced `WriteBatch` per commit, so a batch is all or nothing after a crash and acknowledged
//! batches survive one. Readers that run beside a live writer (`s62 entries`, `s62 verify`) open the
//! folder as a RocksDB *secondary* instance and catch up with the primary.

use super::{Store, StoreError};
use rocksdb::{DB, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};
use std::path::{Path, PathBuf};

/// A log folder opened with RocksDB.
pub struct RocksStore {
    db: DB,
    sync: WriteOptions,
    /// Scratch folder of a secondary instance, removed on drop.
    secondary_dir: Option<PathBuf>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.db.path())
            .finish()
    }
}

fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.into_string())
}

impl RocksStore {
    /// Opens (creating if missing) the log folder for writing. Fails if another process has it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_paranoid_checks(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let db = DB::open(&opts, path).map_err(backend)?;
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        Ok(Self {
            db,
            sync,
            secondary_dir: None,
        })
    }

    /// Opens an existing log folder read-only, alongside a writer that may be running.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        if !path.join("CURRENT").is_file() {
            return Err(StoreError::Backend(format!(
                "{} is not a log folder (no RocksDB CURRENT file)",
                path.display()
            )));
        }
        let mut opts = Options::default();
        opts.set_max_open_files(-1); // required by secondary instances
        opts.set_paranoid_checks(true);
        let dir = std::env::temp_dir().join(format!(
            "s62-reader-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let db = DB::open_as_secondary(&opts, path, &dir).map_err(backend)?;
        db.try_catch_up_with_primary().map_err(backend)?;
        Ok(Self {
            db,
            sync: WriteOptions::default(),
            secondary_dir: Some(dir),
        })
    }
}

impl Drop for RocksStore {
    fn drop(&mut self) {
        if let Some(dir) = &self.secondary_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Store for RocksStore {
    fn write(&self, puts: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        if self.secondary_dir.is_some() {
            return Err(StoreError::Backend(
                "this store was opened read-only".into(),
            ));
        }
        let mut batch = WriteBatch::default();
        for (k, v) in puts {
            batch.put(k, v);
        }
        self.db.write_opt(batch, &self.sync).map_err(backend)
    }

    fn write_with_deletes(
        &self,
        puts: &[super::Pair],
        deletes: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        if self.secondary_dir.is_some() {
            return Err(StoreError::Backend(
                "this store was opened read-only".into(),
            ));
        }
        let mut batch = WriteBatch::default();
        for k in deletes {
            batch.delete(k);
        }
        for (k, v) in puts {
            batch.put(k, v);
        }
        self.db.write_opt(batch, &self.sync).map_err(backend)
    }

    /// Flushes the memtable (so the write-ahead log holding the old values is retired) and
    /// compacts each range down to the bottom level, which rewrites its files without deleted or
    /// overwritten versions.
    fn purge(&self, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        if self.secondary_dir.is_some() {
            return Err(StoreError::Backend(
                "this store was opened read-only".into(),
            ));
        }
        self.db.flush().map_err(backend)?;
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for (start, end) in ranges {
            self.db
                .compact_range_opt(Some(start.as_slice()), Some(end.as_slice()), &opts);
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(key).map_err(backend)
    }

    fn scan(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<super::Pairs, StoreError> {
        let mut ro = ReadOptions::default();
        if let Some(end) = super::prefix_end(prefix) {
            ro.set_iterate_upper_bound(end);
        }
        let mut out = Vec::with_capacity(limit.min(4096));
        let iter = self
            .db
            .iterator_opt(IteratorMode::From(from, Direction::Forward), ro);
        for item in iter {
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn last(&self, prefix: &[u8]) -> Result<Option<super::Pair>, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(prefix.to_vec());
        if let Some(end) = super::prefix_end(prefix) {
            ro.set_iterate_upper_bound(end);
        }
        match self.db.iterator_opt(IteratorMode::End, ro).next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(backend)?;
                Ok(k.starts_with(prefix).then(|| (k.into_vec(), v.into_vec())))
            }
        }
    }

    fn catch_up(&self) -> Result<(), StoreError> {
        if self.secondary_dir.is_some() {
            self.db.try_catch_up_with_primary().map_err(backend)?;
        }
        Ok(())
    }
}

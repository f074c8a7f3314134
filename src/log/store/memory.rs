//! An in-memory [`Store`] for tests: a sorted map behind a mutex, with switchable failures so tests
//! can make the log unwritable. Must not depend on RocksDB.

use super::{Store, StoreError};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// A [`Store`] held in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    failing: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// While set, every write fails as a full disk would.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Overwrites or deletes a key behind the log's back (for tamper tests).
    pub fn tamper(&self, key: &[u8], value: Option<Vec<u8>>) {
        let mut map = self.lock();
        match value {
            Some(v) => map.insert(key.to_vec(), v),
            None => map.remove(key),
        };
    }

    /// A copy of everything stored now: what a power cut at this moment would leave (every write
    /// here is durable once it returns).
    pub fn crashed_copy(&self) -> MemoryStore {
        MemoryStore {
            map: Mutex::new(self.lock().clone()),
            failing: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A panic while holding this lock can only come from a test; keep going with its data.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn write(&self, puts: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(
                "IO error: No space left on device (simulated)".into(),
            ));
        }
        let mut map = self.lock();
        for (k, v) in puts {
            map.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    fn write_with_deletes(
        &self,
        puts: &[super::Pair],
        deletes: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(
                "IO error: No space left on device (simulated)".into(),
            ));
        }
        let mut map = self.lock();
        for k in deletes {
            map.remove(k);
        }
        for (k, v) in puts {
            map.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }

    fn scan(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<super::Pairs, StoreError> {
        Ok(self
            .lock()
            .range(from.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last(&self, prefix: &[u8]) -> Result<Option<super::Pair>, StoreError> {
        let map = self.lock();
        let found = match super::prefix_end(prefix) {
            Some(end) => map.range(prefix.to_vec()..end).next_back(),
            None => map.range(prefix.to_vec()..).next_back(),
        };
        Ok(found.map(|(k, v)| (k.clone(), v.clone())))
    }
}

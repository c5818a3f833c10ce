//! A process-wide cache of [`Dictionary`]s, so that small windows do not pay
//! for rendering the organization's names on every download.
//!
//! Entries are keyed by the store's organization key and tagged with the
//! store's dictionary version for that organization, which the store bumps
//! in the same transaction as any change of a name (see the SQLite
//! migration 4). A reader compares versions inside its own snapshot, so a
//! cached dictionary is only used when it holds exactly the names that
//! snapshot holds. The cache is bounded by bytes; the least recently used
//! entries go first.

use super::Dictionary;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

/// Default bound of [`DictionaryCache`]: a few hundred large organizations
/// or tens of thousands of small ones.
pub const DEFAULT_BUDGET_BYTES: usize = 32 * 1024 * 1024;

struct Entry {
    version: i64,
    dictionary: Arc<Dictionary>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    entries: FxHashMap<i64, Entry>,
    bytes: usize,
    clock: u64,
}

/// Dictionaries by organization key and version.
pub struct DictionaryCache {
    inner: Mutex<Inner>,
    budget_bytes: usize,
}

impl Default for DictionaryCache {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET_BYTES)
    }
}

impl DictionaryCache {
    /// An empty cache holding at most `budget_bytes` of dictionaries.
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            inner: Mutex::default(),
            budget_bytes,
        }
    }

    /// The cached dictionary of `org_key` at `version`, if any.
    pub fn get(&self, org_key: i64, version: i64) -> Option<Arc<Dictionary>> {
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(&org_key)?;
        if entry.version != version {
            return None;
        }
        entry.last_used = now;
        Some(Arc::clone(&entry.dictionary))
    }

    /// Remembers `dictionary` as `org_key`'s names at `version`, evicting
    /// the least recently used entries beyond the budget. A dictionary
    /// larger than the whole budget is not kept.
    pub fn insert(&self, org_key: i64, version: i64, dictionary: Arc<Dictionary>) {
        let size = dictionary.size_bytes();
        if size > self.budget_bytes {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.clock += 1;
        let last_used = inner.clock;
        if let Some(old) = inner.entries.insert(
            org_key,
            Entry {
                version,
                dictionary,
                last_used,
            },
        ) {
            inner.bytes -= old.dictionary.size_bytes();
        }
        inner.bytes += size;
        while inner.bytes > self.budget_bytes {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.dictionary.size_bytes();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::DictionaryBuilder;

    fn dict(users: i64) -> Arc<Dictionary> {
        let mut b = DictionaryBuilder::new();
        for k in 0..users {
            b.user(k, "user", "user@example.com");
        }
        Arc::new(b.build())
    }

    #[test]
    fn hits_only_the_same_version_and_evicts_least_recently_used() {
        let one = dict(100);
        let cache = DictionaryCache::new(one.size_bytes() * 2 + 10);
        cache.insert(1, 5, Arc::clone(&one));
        assert!(cache.get(1, 5).is_some());
        assert!(cache.get(1, 6).is_none());
        assert!(cache.get(2, 5).is_none());
        cache.insert(2, 1, dict(100));
        assert!(cache.get(1, 5).is_some()); // 1 is now the most recent
        cache.insert(3, 1, dict(100));
        assert!(cache.get(2, 1).is_none(), "least recently used evicted");
        assert!(cache.get(1, 5).is_some());
        assert!(cache.get(3, 1).is_some());
        // Too big to keep at all.
        cache.insert(4, 1, dict(10_000));
        assert!(cache.get(4, 1).is_none());
    }
}

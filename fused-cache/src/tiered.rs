//! [`TieredCache`]: a [`MemoryCache`] in front of a [`StorageCache`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fused_core::cache::{CacheEntry, Compute, Lookup};
use fused_core::{Cache, Result};

use crate::{MemoryCache, StorageCache};

/// Memory over storage: reads try memory first, then storage (a storage hit is kept in memory,
/// with its original age, for `promote_ttl`); writes go to both; one computation per key, in
/// this process and — through the storage's lock — across processes.
#[derive(Debug)]
pub struct TieredCache {
    memory: MemoryCache,
    storage: StorageCache,
    promote_ttl: Duration,
}

impl TieredCache {
    /// `memory` in front of `storage`.
    pub fn new(memory: MemoryCache, storage: StorageCache) -> Self {
        Self {
            memory,
            storage,
            promote_ttl: Duration::from_secs(600),
        }
    }

    /// How long an entry read from storage stays in memory.
    #[must_use]
    pub fn with_promote_ttl(mut self, ttl: Duration) -> Self {
        self.promote_ttl = ttl;
        self
    }

    /// The memory tier.
    pub fn memory(&self) -> &MemoryCache {
        &self.memory
    }

    /// The storage tier.
    pub fn storage(&self) -> &StorageCache {
        &self.storage
    }
}

#[async_trait]
impl Cache for TieredCache {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>> {
        if let Some(e) = self.memory.get(key).await? {
            return Ok(Some(e));
        }
        let found = self.storage.get(key).await?;
        if let Some(e) = &found {
            self.memory
                .put_entry(key, e.clone(), self.promote_ttl)
                .await;
        }
        Ok(found)
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        self.memory.put(key, value.clone(), ttl).await?;
        self.storage.put(key, value, ttl).await
    }

    async fn remove(&self, key: &str) -> Result<()> {
        self.memory.remove(key).await?;
        self.storage.remove(key).await
    }

    async fn get_or_compute(
        &self,
        key: &str,
        max_age: Duration,
        compute: Compute,
    ) -> Result<Lookup> {
        if let Some(e) = self.memory.get(key).await? {
            let age = e.age();
            if age <= max_age {
                return Ok(Lookup {
                    value: e.value,
                    hit: Some(age),
                    durable: false,
                });
            }
        }
        // Remember whether the computation asked to be stored (failures are not) and for how
        // long, to mirror it in memory.
        let stored = Arc::new(std::sync::Mutex::new(None::<Duration>));
        let seen = Arc::clone(&stored);
        let compute: Compute = Box::pin(async move {
            let c = compute.await?;
            if c.store {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.ttl);
            }
            Ok(c)
        });
        let lookup = self.storage.get_or_compute(key, max_age, compute).await?;
        let ttl = match lookup.hit {
            Some(_) => Some(self.promote_ttl),
            None => *stored.lock().unwrap_or_else(|p| p.into_inner()),
        };
        if let Some(ttl) = ttl {
            let created = std::time::SystemTime::now() - lookup.hit.unwrap_or_default();
            let entry = CacheEntry {
                value: lookup.value.clone(),
                created,
                durable: false,
            };
            self.memory.put_entry(key, entry, ttl).await;
        }
        Ok(lookup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fused_core::cache::Computed;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn compute(runs: Arc<AtomicUsize>, store: bool) -> Compute {
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(Computed {
                value: Bytes::from_static(b"v"),
                store,
                ttl: Duration::from_secs(60),
            })
        })
    }

    #[tokio::test]
    async fn memory_over_storage() {
        let dir = tempfile::tempdir().unwrap();
        let t = Arc::new(TieredCache::new(
            MemoryCache::new(1 << 20),
            StorageCache::local(dir.path()).unwrap(),
        ));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (t, runs) = (Arc::clone(&t), Arc::clone(&runs));
            tasks.push(tokio::spawn(async move {
                t.get_or_compute("k", Duration::from_secs(60), compute(runs, true))
                    .await
                    .unwrap()
                    .value
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Bytes::from_static(b"v"));
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one computation for 16 callers"
        );
        // A fresh process (empty memory) reads the storage tier, with the entry's real age.
        let again = TieredCache::new(
            MemoryCache::new(1 << 20),
            StorageCache::local(dir.path()).unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let l = again
            .get_or_compute("k", Duration::from_secs(60), compute(runs.clone(), true))
            .await
            .unwrap();
        assert!(
            l.hit.is_some_and(|age| age >= Duration::from_millis(20)),
            "{:?}",
            l.hit
        );
        let m = again.memory().get("k").await.unwrap().unwrap();
        assert!(
            m.age() >= Duration::from_millis(20),
            "promoted with its age"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_shared_but_kept_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let t = TieredCache::new(
            MemoryCache::new(1 << 20),
            StorageCache::local(dir.path()).unwrap(),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        t.get_or_compute("bad", Duration::from_secs(60), compute(runs.clone(), false))
            .await
            .unwrap();
        assert!(t.memory().get("bad").await.unwrap().is_none());
        assert!(t.storage().get("bad").await.unwrap().is_none());
        t.get_or_compute("bad", Duration::from_secs(60), compute(runs.clone(), false))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}

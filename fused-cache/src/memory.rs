//! An in-process cache on moka.

use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use fused_core::Result;
use fused_core::cache::{Cache, CacheEntry, Compute, Computed, Lookup, SingleFlight};

#[derive(Clone)]
struct Entry {
    value: Bytes,
    created: SystemTime,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, v: &Entry, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// An in-memory cache bounded by the total bytes of its keys and values (least recently and
/// least frequently used entries go first), with a time-to-live per entry.
#[derive(Clone)]
pub struct MemoryCache {
    entries: moka::future::Cache<String, Entry>,
    flights: std::sync::Arc<SingleFlight>,
    capacity: u64,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("capacity_bytes", &self.capacity)
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl MemoryCache {
    /// A cache holding at most `capacity_bytes` of keys and values.
    pub fn new(capacity_bytes: u64) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &String, v: &Entry| {
                u32::try_from(k.len() + v.value.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self {
            entries,
            flights: std::sync::Arc::default(),
            capacity: capacity_bytes,
        }
    }

    /// Number of entries (approximate: moka applies writes lazily).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Bytes held (approximate).
    pub fn weighted_size(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// Stores an entry made elsewhere (a storage tier), keeping its creation time so readers
    /// judge its age right.
    pub async fn put_entry(&self, key: &str, entry: CacheEntry, ttl: Duration) {
        if !ttl.is_zero() {
            self.entries
                .insert(
                    key.to_owned(),
                    Entry {
                        value: entry.value,
                        created: entry.created,
                        ttl,
                    },
                )
                .await;
        }
    }

    /// Applies pending evictions and expirations now (useful in tests and reports).
    pub async fn sync(&self) {
        self.entries.run_pending_tasks().await;
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>> {
        Ok(self.entries.get(key).await.map(|e| CacheEntry {
            value: e.value,
            created: e.created,
            durable: false,
        }))
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        if !ttl.is_zero() {
            self.entries
                .insert(
                    key.to_owned(),
                    Entry {
                        value,
                        created: SystemTime::now(),
                        ttl,
                    },
                )
                .await;
        }
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<()> {
        self.entries.invalidate(key).await;
        Ok(())
    }

    async fn get_or_compute(
        &self,
        key: &str,
        max_age: Duration,
        compute: Compute,
    ) -> Result<Lookup> {
        if let Some(e) = self.get(key).await? {
            let age = e.age();
            if age <= max_age {
                return Ok(Lookup {
                    value: e.value,
                    hit: Some(age),
                    durable: false,
                });
            }
        }
        let entries = self.entries.clone();
        let owned = key.to_owned();
        // The store happens inside the shared computation, before any waiter is woken, so a
        // caller arriving just after it finishes finds the entry instead of recomputing; and a
        // computation that starts just after another one stored its value takes that value.
        let storing: Compute = Box::pin(async move {
            if let Some(e) = entries.get(&owned).await {
                let age = SystemTime::now()
                    .duration_since(e.created)
                    .unwrap_or_default();
                if age <= max_age {
                    return Ok(Computed {
                        value: e.value,
                        store: false,
                        ttl: e.ttl,
                    });
                }
            }
            let c: Computed = compute.await?;
            if c.store && !c.ttl.is_zero() {
                let e = Entry {
                    value: c.value.clone(),
                    created: SystemTime::now(),
                    ttl: c.ttl,
                };
                entries.insert(owned, e).await;
            }
            Ok(c)
        });
        let (c, _) = self.flights.run(key, storing).await?;
        Ok(Lookup {
            value: c.value,
            hit: None,
            durable: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn computed(v: &'static [u8], store: bool) -> Computed {
        Computed {
            value: Bytes::from_static(v),
            store,
            ttl: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn hits_respect_max_age_and_ttl() {
        let c = MemoryCache::new(1 << 20);
        c.put("k", Bytes::from_static(b"v"), Duration::from_millis(200))
            .await
            .unwrap();
        let l = c
            .get_or_compute(
                "k",
                Duration::from_secs(10),
                Box::pin(async { Ok(computed(b"new", true)) }),
            )
            .await
            .unwrap();
        assert_eq!((l.value.as_ref(), l.hit.is_some()), (&b"v"[..], true));
        // Too old for this reader: recomputed and replaced.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let l = c
            .get_or_compute(
                "k",
                Duration::from_millis(5),
                Box::pin(async { Ok(computed(b"new", true)) }),
            )
            .await
            .unwrap();
        assert_eq!((l.value.as_ref(), l.hit), (&b"new"[..], None));
        // Expired entries disappear.
        c.put("short", Bytes::from_static(b"x"), Duration::from_millis(30))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(c.get("short").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn failures_are_shared_but_not_stored() {
        let c = MemoryCache::new(1 << 20);
        let l = c
            .get_or_compute(
                "k",
                Duration::from_secs(10),
                Box::pin(async { Ok(computed(b"err", false)) }),
            )
            .await
            .unwrap();
        assert_eq!(l.value.as_ref(), b"err");
        assert!(c.get("k").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn one_computation_per_key() {
        let c = MemoryCache::new(1 << 20);
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (c, runs) = (c.clone(), Arc::clone(&runs));
            tasks.push(tokio::spawn(async move {
                c.get_or_compute(
                    "same",
                    Duration::from_secs(60),
                    Box::pin(async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        Ok(computed(b"v", true))
                    }),
                )
                .await
                .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().value.as_ref(), b"v");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn evicts_by_bytes() {
        let c = MemoryCache::new(64 * 1024);
        for i in 0..100 {
            c.put(
                &format!("k{i}"),
                Bytes::from(vec![0u8; 4096]),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        }
        c.sync().await;
        assert!(c.weighted_size() <= 64 * 1024, "{}", c.weighted_size());
        assert!(c.entry_count() < 100);
    }
}

//! [`StorageCache`]: cache entries as objects of any [`Storage`] — a local folder by default,
//! S3 and friends when configured — shared by every process that uses the same place.
//!
//! Each key is one object, `<prefix><h[0..2]>/<h>.entry` (h = SHA-256 of the key), written
//! atomically by the storage, with a header (magic, times, length, CRC-32) so a truncated or
//! corrupted entry is detected, removed and recomputed, never returned. One computation per key
//! runs across processes: the computing process holds `<h>.lock` (created only if absent) and
//! rewrites it every [`LockSettings::heartbeat`]; waiters poll for the entry, take over a lock
//! whose heartbeat stopped (a killed holder), and compute on their own after
//! `concurrent_lock_timeout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use fused_core::cache::{CacheEntry, Compute, Computed, Lookup, SingleFlight};
use fused_core::{Cache, Error, Result, Storage};
use sha2::{Digest, Sha256};

/// First bytes of every entry (format version 1).
const MAGIC: &[u8; 4] = b"FCE1";
/// Header: magic, created ms, expires ms, value length, CRC-32 of the value.
const HEADER: usize = 4 + 8 + 8 + 8 + 4;

/// How the cross-process lock behaves.
#[derive(Debug, Clone, Copy)]
pub struct LockSettings {
    /// How long a waiter waits for another process's computation before computing itself.
    pub concurrent_lock_timeout: Duration,
    /// How often the holder refreshes its lock.
    pub heartbeat: Duration,
    /// A lock not refreshed for this long belongs to a dead process and is taken over.
    pub stale_after: Duration,
}

impl Default for LockSettings {
    fn default() -> Self {
        Self {
            concurrent_lock_timeout: Duration::from_secs(120),
            heartbeat: Duration::from_secs(2),
            stale_after: Duration::from_secs(10),
        }
    }
}

/// A cache whose entries are objects of a [`Storage`].
#[derive(Debug)]
pub struct StorageCache {
    inner: Arc<Inner>,
    flights: SingleFlight,
}

/// What the cache and its shared computations use.
#[derive(Debug)]
struct Inner {
    storage: Arc<dyn Storage>,
    prefix: String,
    max_bytes: Option<u64>,
    lock: LockSettings,
    /// Bytes written since the last size check.
    written: AtomicU64,
}

/// Seconds since the epoch, in milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An entry's bytes: header, then the value.
pub(crate) fn encode_entry(value: &[u8], created_ms: u64, ttl: Duration) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER + value.len());
    b.put_slice(MAGIC);
    b.put_u64_le(created_ms);
    b.put_u64_le(created_ms.saturating_add(ttl.as_millis().min(u64::MAX as u128) as u64));
    b.put_u64_le(value.len() as u64);
    b.put_u32_le(crc32fast::hash(value));
    b.put_slice(value);
    b.freeze()
}

/// An entry's value and times, or `None` when it is not a whole, intact entry.
pub(crate) fn decode_entry(mut b: Bytes) -> Option<(Bytes, u64, u64)> {
    if b.len() < HEADER || &b[..4] != MAGIC {
        return None;
    }
    b.advance(4);
    let created = b.get_u64_le();
    let expires = b.get_u64_le();
    let len = b.get_u64_le();
    let crc = b.get_u32_le();
    if b.len() as u64 != len || crc32fast::hash(&b) != crc {
        return None;
    }
    Some((b, created, expires))
}

impl StorageCache {
    /// A cache in `storage` under `prefix` (a folder URL such as `fd://cache/` or
    /// `file:///var/cache/fused/`).
    pub fn new(storage: Arc<dyn Storage>, prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self {
            inner: Arc::new(Inner {
                storage,
                prefix,
                max_bytes: None,
                lock: LockSettings::default(),
                written: AtomicU64::new(0),
            }),
            flights: SingleFlight::new(),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        // Builders normally run before the cache is shared; if a computation still holds the
        // old settings, it keeps them and this cache gets its own copy.
        Arc::make_mut(&mut self.inner)
    }

    /// A cache in a local folder (created if missing).
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let storage = Arc::new(fused_storage::ObjectStorage::local(dir)?);
        Ok(Self::new(storage, "fd://"))
    }

    /// Evicts the oldest entries once the cache holds more than `bytes`.
    #[must_use]
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.inner_mut().max_bytes = Some(bytes);
        self
    }

    /// Sets how the cross-process lock behaves.
    #[must_use]
    pub fn with_lock_settings(mut self, lock: LockSettings) -> Self {
        self.inner_mut().lock = lock;
        self
    }

    /// The folder URL entries live under.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Every entry: its URL, size and last change.
    pub async fn entries(&self) -> Result<Vec<fused_core::storage::ObjectMeta>> {
        self.inner.entries().await
    }

    /// Removes every entry; returns how many.
    pub async fn clear(&self) -> Result<u64> {
        self.inner.clear().await
    }

    /// Removes the least recently written entries until the cache fits its size limit.
    pub async fn evict(&self) -> Result<u64> {
        self.inner.evict().await
    }

    /// The cross-process lock of `key`: held (refreshed until the guard drops), or the entry
    /// another process made while this one waited, or — after `concurrent_lock_timeout`, or on
    /// a backend that cannot lock — neither.
    pub async fn lock(&self, key: &str, max_age: Duration) -> Result<CacheLock> {
        self.lock_with(key, max_age, false).await
    }

    /// Like [`lock`](Self::lock); with `take_only`, an existing entry does not end the wait
    /// (a reset wants the lock, not the old value).
    pub async fn lock_with(
        &self,
        key: &str,
        max_age: Duration,
        take_only: bool,
    ) -> Result<CacheLock> {
        Ok(match self.inner.acquire(key, max_age, take_only).await? {
            Acquired::Held(g) => CacheLock::Held(g),
            Acquired::Found(hit) => CacheLock::Found(CacheEntry {
                value: hit.value,
                created: SystemTime::now() - hit.hit.unwrap_or_default(),
                durable: true,
            }),
            Acquired::Unlocked => CacheLock::Unlocked,
        })
    }
}

/// What [`StorageCache::lock`] got.
#[derive(Debug)]
pub enum CacheLock {
    /// This process computes; others wait until the guard drops.
    Held(LockGuard),
    /// Another process computed it meanwhile.
    Found(CacheEntry),
    /// No lock (timeout, or a backend without conditional writes): compute anyway.
    Unlocked,
}

impl Clone for Inner {
    fn clone(&self) -> Self {
        Self {
            storage: Arc::clone(&self.storage),
            prefix: self.prefix.clone(),
            max_bytes: self.max_bytes,
            lock: self.lock,
            written: AtomicU64::new(self.written.load(Ordering::Relaxed)),
        }
    }
}

impl Inner {
    fn name(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    fn entry_url(&self, key: &str) -> String {
        let h = Self::name(key);
        format!("{}{}/{h}.entry", self.prefix, &h[..2])
    }

    fn lock_url(&self, key: &str) -> String {
        let h = Self::name(key);
        format!("{}{}/{h}.lock", self.prefix, &h[..2])
    }

    async fn read(&self, url: &str) -> Result<Option<(Bytes, u64, u64)>> {
        let body = match self.storage.get(url, None).await {
            Ok(b) => b,
            Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = match body.collect(usize::MAX).await {
            Ok(b) => b,
            // Vanished or cut while reading: a miss.
            Err(Error::Io(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match decode_entry(bytes) {
            Some(e) => Ok(Some(e)),
            None => {
                tracing::warn!(url, "removing a corrupted cache entry");
                let _ = self.storage.delete(url, Some(0)).await;
                Ok(None)
            }
        }
    }

    async fn entries(&self) -> Result<Vec<fused_core::storage::ObjectMeta>> {
        let mut out = Vec::new();
        let top = match self.storage.list(&self.prefix).await {
            Ok(t) => t,
            Err(Error::NotFound(_)) => return Ok(out),
            Err(e) => return Err(e),
        };
        for dir in top.into_iter().filter(|m| m.is_directory) {
            for m in self.storage.list(&dir.url).await? {
                if m.url.ends_with(".entry") {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    async fn clear(&self) -> Result<u64> {
        let mut n = 0;
        for m in self.entries().await? {
            if self.storage.delete(&m.url, Some(0)).await.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes the least recently written entries until the cache fits `max_bytes` again
    /// (with 10 % headroom, so eviction does not run on every write).
    async fn evict(&self) -> Result<u64> {
        let Some(max) = self.max_bytes else {
            return Ok(0);
        };
        let mut entries = self.entries().await?;
        let mut total: u64 = entries.iter().filter_map(|m| m.size).sum();
        if total <= max {
            return Ok(0);
        }
        entries.sort_by_key(|m| m.last_modified);
        let target = max - max / 10;
        let mut n = 0;
        for m in entries {
            if total <= target {
                break;
            }
            if self.storage.delete(&m.url, Some(0)).await.is_ok() {
                total = total.saturating_sub(m.size.unwrap_or(0));
                n += 1;
            }
        }
        Ok(n)
    }

    /// The lock's content, or `None` when there is none.
    async fn read_lock(&self, url: &str) -> Result<Option<Bytes>> {
        match self.storage.get(url, None).await {
            Ok(b) => Ok(Some(b.collect(4096).await?)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes the lock of `key`, or finds the entry another process made while waiting
    /// (unless `take_only`: then only the lock counts).
    ///
    /// A lock holds its holder's random token and a beat count the holder raises every
    /// `heartbeat`. A waiter judges staleness by its own clock — the content unchanged for
    /// `stale_after` — so storage clocks do not matter, and removes a stale lock only if it
    /// still holds what was judged stale.
    async fn acquire(&self, key: &str, max_age: Duration, take_only: bool) -> Result<Acquired> {
        let lock = self.lock_url(key);
        let token = format!("{:032x}", rand::random::<u128>());
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        let mut seen: Option<(Bytes, Instant)> = None;
        loop {
            let content = Bytes::from(format!("{token}\n0"));
            match self.storage.put_if_absent(&lock, content.into()).await {
                Ok(true) => {
                    let guard = self.heartbeat(lock, token);
                    // The previous holder may have just finished: its entry is the answer.
                    if !take_only && let Some(hit) = self.fresh(key, max_age).await? {
                        drop(guard);
                        return Ok(Acquired::Found(hit));
                    }
                    return Ok(Acquired::Held(guard));
                }
                Ok(false) => {}
                // A backend that cannot lock: compute without one.
                Err(e) => {
                    tracing::debug!(error = %e, "cache lock unavailable");
                    return Ok(Acquired::Unlocked);
                }
            }
            if !take_only && let Some(hit) = self.fresh(key, max_age).await? {
                return Ok(Acquired::Found(hit));
            }
            let current = self.read_lock(&lock).await.unwrap_or(None);
            let mut retry_now = false;
            match (current, &seen) {
                (None, _) => retry_now = true,
                (Some(c), Some((old, since))) if c == old => {
                    if since.elapsed() > self.lock.stale_after {
                        // Unchanged for stale_after: its holder stopped. Remove it only if it
                        // still is that same lock.
                        if self.read_lock(&lock).await.unwrap_or(None).as_ref() == Some(&c) {
                            tracing::warn!(key, "taking over a cache lock whose holder stopped");
                            retry_now = self.storage.delete(&lock, Some(0)).await.is_ok();
                        }
                        seen = None;
                    }
                }
                (Some(c), _) => seen = Some((c, Instant::now())),
            }
            if started.elapsed() >= self.lock.concurrent_lock_timeout {
                tracing::warn!(
                    key,
                    "waited concurrent_lock_timeout for another process; computing"
                );
                return Ok(Acquired::Unlocked);
            }
            if !retry_now {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        }
    }

    /// Keeps `lock` fresh until the guard is dropped, then removes it — only while it still
    /// holds `token` (a holder whose lock was taken over never touches the new one). Refreshes
    /// and the removal run in one task, so no refresh can land after the removal.
    fn heartbeat(&self, lock: String, token: String) -> LockGuard {
        let storage = Arc::clone(&self.storage);
        let every = self.lock.heartbeat;
        let url = lock.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let ours =
                |b: &Option<Bytes>| b.as_ref().is_some_and(|b| b.starts_with(token.as_bytes()));
            let read = |storage: Arc<dyn Storage>, url: String| async move {
                match storage.get(&url, None).await {
                    Ok(b) => b.collect(4096).await.ok(),
                    Err(_) => None,
                }
            };
            let mut beat = 0u64;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(every) => {
                        if !ours(&read(Arc::clone(&storage), url.clone()).await) {
                            tracing::warn!(url, "lost a cache lock to another process");
                            return;
                        }
                        beat += 1;
                        let content = Bytes::from(format!("{token}\n{beat}"));
                        let _ = storage.put(&url, content.into()).await;
                    }
                }
            }
            if ours(&read(Arc::clone(&storage), url.clone()).await) {
                let _ = storage.delete(&url, Some(0)).await;
            }
        });
        LockGuard {
            url: lock,
            stop: Some(stop),
            _task: task,
        }
    }

    async fn fresh(&self, key: &str, max_age: Duration) -> Result<Option<Lookup>> {
        Ok(self.get(key).await?.and_then(|e| {
            let age = e.age();
            (age <= max_age).then_some(Lookup {
                value: e.value,
                hit: Some(age),
                durable: true,
            })
        }))
    }
}

enum Acquired {
    Held(LockGuard),
    Found(Lookup),
    Unlocked,
}

/// A held cache lock: refreshed while alive, removed when dropped (by its heartbeat task, so
/// a runtime must still run; otherwise the lock goes stale and is taken over).
pub struct LockGuard {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").field("url", &self.url).finish()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Inner {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>> {
        let url = self.entry_url(key);
        let Some((value, created, expires)) = self.read(&url).await? else {
            return Ok(None);
        };
        if now_ms() >= expires {
            let _ = self.storage.delete(&url, Some(0)).await;
            return Ok(None);
        }
        Ok(Some(CacheEntry {
            value,
            created: UNIX_EPOCH + Duration::from_millis(created),
            durable: true,
        }))
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        let entry = encode_entry(&value, now_ms(), ttl);
        let n = entry.len() as u64;
        self.storage.put(&self.entry_url(key), entry.into()).await?;
        if let Some(max) = self.max_bytes {
            // Sizes are checked after every tenth of the limit written, not on every put.
            let written = self.written.fetch_add(n, Ordering::Relaxed) + n;
            if written >= max / 10 {
                self.written.store(0, Ordering::Relaxed);
                self.evict().await?;
            }
        }
        Ok(())
    }

    /// The lock, the computation and the store, run once per key in this process.
    async fn compute_locked(
        self: Arc<Self>,
        key: String,
        max_age: Duration,
        compute: Compute,
    ) -> Result<Computed> {
        let guard = match self.acquire(&key, max_age, false).await? {
            Acquired::Found(hit) => {
                return Ok(Computed {
                    value: hit.value,
                    store: false,
                    ttl: Duration::ZERO,
                });
            }
            Acquired::Held(g) => Some(g),
            Acquired::Unlocked => None,
        };
        let computed = compute.await?;
        if computed.store
            && let Err(e) = self.put(&key, computed.value.clone(), computed.ttl).await
        {
            tracing::warn!(error = %e, "could not store a cache entry");
        }
        drop(guard);
        Ok(computed)
    }
}

#[async_trait]
impl Cache for StorageCache {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        self.inner.put(key, value, ttl).await
    }

    async fn remove(&self, key: &str) -> Result<()> {
        match self
            .inner
            .storage
            .delete(&self.inner.entry_url(key), Some(0))
            .await
        {
            Ok(_) | Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn get_or_compute(
        &self,
        key: &str,
        max_age: Duration,
        compute: Compute,
    ) -> Result<Lookup> {
        if let Some(hit) = self.inner.fresh(key, max_age).await? {
            return Ok(hit);
        }
        let whole: Compute =
            Box::pin(Arc::clone(&self.inner).compute_locked(key.to_owned(), max_age, compute));
        let (computed, _) = self.flights.run(key, whole).await?;
        Ok(Lookup {
            value: computed.value,
            hit: None,
            durable: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fused_storage::{FaultInjector, ObjectStorage};
    use std::sync::atomic::AtomicUsize;

    fn computed(v: &'static str, runs: Arc<AtomicUsize>, wait: Duration) -> Compute {
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(wait).await;
            Ok(Computed {
                value: Bytes::from_static(v.as_bytes()),
                store: true,
                ttl: Duration::from_secs(60),
            })
        })
    }

    fn faulty(dir: &std::path::Path) -> (Arc<FaultInjector>, StorageCache) {
        let inner = Arc::new(ObjectStorage::local(dir).unwrap());
        let f = Arc::new(FaultInjector::new(inner));
        let cache = StorageCache::new(f.clone(), "fd://cache/");
        (f, cache)
    }

    #[tokio::test]
    async fn entries_round_trip_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let c = StorageCache::local(dir.path()).unwrap();
        c.put("k", Bytes::from("v"), Duration::from_secs(60))
            .await
            .unwrap();
        let e = c.get("k").await.unwrap().unwrap();
        assert_eq!(e.value, Bytes::from("v"));
        assert!(e.age() < Duration::from_secs(5));
        c.put("short", Bytes::from("v"), Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(c.get("short").await.unwrap().is_none());
        assert_eq!(
            c.entries().await.unwrap().len(),
            1,
            "the expired entry was removed"
        );
        c.remove("k").await.unwrap();
        assert!(c.get("k").await.unwrap().is_none());
        c.remove("never").await.unwrap();
    }

    #[tokio::test]
    async fn truncated_or_corrupted_entries_are_misses_that_get_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let (f, c) = faulty(dir.path());
        let runs = Arc::new(AtomicUsize::new(0));
        for fault in [0, 1] {
            c.put("k", Bytes::from("value"), Duration::from_secs(60))
                .await
                .unwrap();
            if fault == 0 {
                f.truncate_reads(true);
            } else {
                f.corrupt_reads(true);
            }
            assert!(c.get("k").await.unwrap().is_none(), "never returned");
            f.truncate_reads(false);
            f.corrupt_reads(false);
            assert!(c.get("k").await.unwrap().is_none(), "and removed");
            let l = c
                .get_or_compute(
                    "k",
                    Duration::from_secs(60),
                    computed("fresh", runs.clone(), Duration::ZERO),
                )
                .await
                .unwrap();
            assert_eq!((l.value, l.hit), (Bytes::from("fresh"), None));
            assert_eq!(
                c.get("k").await.unwrap().unwrap().value,
                Bytes::from("fresh")
            );
            c.remove("k").await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_full_disk_is_an_error_and_leaves_no_partial_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (f, c) = faulty(dir.path());
        f.fill_disk_after(1000);
        let e = c
            .put("k", Bytes::from(vec![7u8; 4000]), Duration::from_secs(60))
            .await;
        assert!(e.is_err());
        f.fill_disk_after(u64::MAX);
        assert!(c.get("k").await.unwrap().is_none());
        assert!(c.entries().await.unwrap().is_empty());
        // get_or_compute still answers (the value is computed; storing it failed).
        f.fill_disk_after(10);
        let runs = Arc::new(AtomicUsize::new(0));
        let l = c
            .get_or_compute(
                "k",
                Duration::from_secs(60),
                computed("v", runs.clone(), Duration::ZERO),
            )
            .await
            .unwrap();
        assert_eq!(l.value, Bytes::from("v"));
        // A storage that is down surfaces as an error.
        f.take_down(true);
        assert!(c.get("k").await.is_err());
    }

    #[tokio::test]
    async fn two_processes_compute_once() {
        let dir = tempfile::tempdir().unwrap();
        // Two caches over the same folder stand for two processes (separate single-flights).
        let a = Arc::new(StorageCache::local(dir.path()).unwrap());
        let b = Arc::new(StorageCache::local(dir.path()).unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let wait = Duration::from_millis(300);
        let (ra, rb) = tokio::join!(
            a.get_or_compute(
                "k",
                Duration::from_secs(60),
                computed("v", runs.clone(), wait)
            ),
            b.get_or_compute(
                "k",
                Duration::from_secs(60),
                computed("v", runs.clone(), wait)
            ),
        );
        assert_eq!(ra.unwrap().value, rb.unwrap().value);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let leftovers: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|p| p.ends_with(".lock"))
            .collect();
        assert!(leftovers.is_empty(), "the lock is released: {leftovers:?}");
    }

    fn walk(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
        out
    }

    #[tokio::test]
    async fn a_dead_holder_s_lock_is_taken_over_after_its_heartbeat_stops() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LockSettings {
            concurrent_lock_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_millis(50),
            stale_after: Duration::from_millis(300),
        };
        let c = StorageCache::local(dir.path())
            .unwrap()
            .with_lock_settings(lock);
        // A process killed while holding the lock leaves it behind, never refreshed.
        let url = c.inner.lock_url("k");
        assert!(
            c.inner
                .storage
                .put_if_absent(&url, Bytes::from("1").into())
                .await
                .unwrap()
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let t = Instant::now();
        let l = c
            .get_or_compute(
                "k",
                Duration::from_secs(60),
                computed("v", runs.clone(), Duration::ZERO),
            )
            .await
            .unwrap();
        assert_eq!(l.value, Bytes::from("v"));
        assert!(
            t.elapsed() >= Duration::from_millis(250),
            "waited for the lock to go stale"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "but not for concurrent_lock_timeout"
        );
        // A live holder (heartbeat running) is waited for instead.
        assert!(
            c.inner
                .storage
                .put_if_absent(&c.inner.lock_url("k2"), Bytes::from("tok\n0").into())
                .await
                .unwrap()
        );
        let holder = c.inner.heartbeat(c.inner.lock_url("k2"), "tok".into());
        assert!(c.inner.storage.head(&c.inner.lock_url("k2")).await.is_ok());
        let c2 = Arc::new(StorageCache::local(dir.path()).unwrap().with_lock_settings(
            LockSettings {
                concurrent_lock_timeout: Duration::from_millis(800),
                ..lock
            },
        ));
        let t = Instant::now();
        c2.get_or_compute(
            "k2",
            Duration::from_secs(60),
            computed("v", runs.clone(), Duration::ZERO),
        )
        .await
        .unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(700),
            "a live lock is respected until the timeout"
        );
        drop(holder);
    }

    #[tokio::test]
    async fn a_holder_whose_lock_was_taken_over_leaves_the_new_one_alone() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LockSettings {
            concurrent_lock_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_millis(30),
            stale_after: Duration::from_millis(200),
        };
        let c = StorageCache::local(dir.path())
            .unwrap()
            .with_lock_settings(lock);
        let url = c.inner.lock_url("k");
        assert!(
            c.inner
                .storage
                .put_if_absent(&url, Bytes::from("old\n0").into())
                .await
                .unwrap()
        );
        let old = c.inner.heartbeat(url.clone(), "old".into());
        // Someone else now holds it (as after a takeover).
        c.inner
            .storage
            .put(&url, Bytes::from("new\n0").into())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(old);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = c.inner.read_lock(&url).await.unwrap().unwrap();
        assert_eq!(
            now,
            Bytes::from("new\n0"),
            "neither refreshed nor removed by the old holder"
        );
    }

    #[tokio::test]
    async fn size_limits_evict_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let c = StorageCache::local(dir.path())
            .unwrap()
            .with_max_bytes(10_000);
        for i in 0..30 {
            c.put(
                &format!("k{i}"),
                Bytes::from(vec![0u8; 1000]),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let total: u64 = c
            .entries()
            .await
            .unwrap()
            .iter()
            .filter_map(|m| m.size)
            .sum();
        assert!(total <= 10_000 + 2_100, "{total}");
        assert!(c.get("k29").await.unwrap().is_some(), "the newest stays");
        assert!(c.get("k0").await.unwrap().is_none(), "the oldest went");
        assert!(c.clear().await.unwrap() > 0);
        assert!(c.entries().await.unwrap().is_empty());
    }

    #[test]
    fn entry_codec_rejects_damage() {
        let e = encode_entry(b"hello", 5, Duration::from_secs(1));
        assert_eq!(
            decode_entry(e.clone()).unwrap(),
            (Bytes::from("hello"), 5, 1005)
        );
        for cut in 0..e.len() {
            assert!(decode_entry(e.slice(..cut)).is_none(), "cut at {cut}");
        }
        let mut bad = e.to_vec();
        bad[HEADER] ^= 1;
        assert!(decode_entry(Bytes::from(bad)).is_none());
    }
}

//! The `Cache` trait: bytes by key, with a maximum age, and one computation per key at a time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::error::{Error, Result};

/// A cached value and when it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The bytes.
    pub value: Bytes,
    /// When it was written.
    pub created: SystemTime,
}

impl CacheEntry {
    /// How old the entry is now.
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.created)
            .unwrap_or_default()
    }
}

/// What a computation hands back to [`Cache::get_or_compute`].
#[derive(Debug, Clone)]
pub struct Computed {
    /// The value, given to every caller that waited for it.
    pub value: Bytes,
    /// Store it (false for failures: they are shared with concurrent callers, never cached).
    pub store: bool,
    /// How long a stored value may live.
    pub ttl: Duration,
}

/// What [`Cache::get_or_compute`] found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The value.
    pub value: Bytes,
    /// `Some(age)` when it came from the cache.
    pub hit: Option<Duration>,
}

/// A computation to run on a miss; `'static` so that it can be shared by concurrent callers.
pub type Compute = BoxFuture<'static, Result<Computed>>;

/// Stores bytes by key.
///
/// An implementation must guarantee:
/// - a reader never sees a partly written value: `get` returns a whole value or nothing;
/// - `get_or_compute` runs at most one computation per key at a time in this process: callers
///   that arrive while it runs wait for its result instead of starting their own;
/// - entries older than the `max_age` a reader asks for are not returned to that reader;
/// - a failing backend surfaces as an `Err`, never as a wrong value.
#[async_trait]
pub trait Cache: Send + Sync + fmt::Debug {
    /// The entry for `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>>;

    /// Stores `value` under `key` for at most `ttl`.
    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()>;

    /// Removes `key`.
    async fn remove(&self, key: &str) -> Result<()>;

    /// The value for `key` if one at most `max_age` old exists; otherwise runs `compute` (once
    /// for all concurrent callers of `key`) and stores its value when it asks to be stored.
    async fn get_or_compute(
        &self,
        key: &str,
        max_age: Duration,
        compute: Compute,
    ) -> Result<Lookup>;
}

type Flight = Shared<BoxFuture<'static, std::result::Result<Computed, Arc<Error>>>>;

/// Shares one computation per key among concurrent callers; a building block for
/// [`Cache::get_or_compute`] implementations.
#[derive(Default)]
pub struct SingleFlight {
    inflight: Mutex<HashMap<String, Flight>>,
}

impl fmt::Debug for SingleFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.inflight.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("SingleFlight")
            .field("inflight", &n)
            .finish()
    }
}

impl SingleFlight {
    /// No computations in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `compute` for `key` unless a computation for it is already running, in which case
    /// waits for that one. Returns the value and whether this caller started it.
    pub async fn run(&self, key: &str, compute: Compute) -> Result<(Computed, bool)> {
        let (flight, leader) = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(key) {
                Some(f) => (f.clone(), false),
                None => {
                    let f: Flight = compute.map(|r| r.map_err(Arc::new)).boxed().shared();
                    map.insert(key.to_owned(), f.clone());
                    (f, true)
                }
            }
        };
        // Removes the entry even if this caller is cancelled while waiting.
        struct Done<'a>(&'a SingleFlight, &'a str, bool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                if self.2 {
                    self.0
                        .inflight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(self.1);
                }
            }
        }
        let _done = Done(self, key, leader);
        match flight.await {
            Ok(c) => Ok((c, leader)),
            Err(e) => Err(Error::Cache(format!("computation failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let sf = Arc::new(SingleFlight::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (sf, runs) = (Arc::clone(&sf), Arc::clone(&runs));
            tasks.push(tokio::spawn(async move {
                let compute: Compute = Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(Computed {
                        value: Bytes::from_static(b"v"),
                        store: true,
                        ttl: Duration::from_secs(1),
                    })
                });
                sf.run("k", compute).await.unwrap().0.value
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Bytes::from_static(b"v"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(sf.inflight.lock().unwrap().is_empty());
    }
}

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
    /// It came from persistent storage (shared with other processes), not this process's memory.
    pub durable: bool,
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
    /// The hit came from persistent storage rather than this process's memory.
    pub durable: bool,
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

type FlightMap = Arc<Mutex<HashMap<String, (u64, Flight)>>>;

/// Shares one computation per key among concurrent callers; a building block for
/// [`Cache::get_or_compute`] implementations.
///
/// The computation runs as its own task: it finishes (and leaves the map) even when every
/// caller that waited for it has gone, so a cancelled request never lets a second computation
/// of the same key start beside the first.
#[derive(Default)]
pub struct SingleFlight {
    inflight: FlightMap,
    next_id: std::sync::atomic::AtomicU64,
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

    /// Number of computations running now.
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Runs `compute` for `key` unless a computation for it is already running, in which case
    /// waits for that one. Returns the value and whether this caller started it. Must be called
    /// within a tokio runtime.
    pub async fn run(&self, key: &str, compute: Compute) -> Result<(Computed, bool)> {
        let (flight, leader) = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(key) {
                Some((_, f)) => (f.clone(), false),
                None => {
                    let id = self
                        .next_id
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let forget = {
                        let (map, key) = (Arc::clone(&self.inflight), key.to_owned());
                        move || {
                            let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
                            if m.get(&key).is_some_and(|(i, _)| *i == id) {
                                m.remove(&key);
                            }
                        }
                    };
                    let on_done = forget.clone();
                    let task = tokio::spawn(async move {
                        let r = compute.await.map_err(Arc::new);
                        on_done();
                        r
                    });
                    let f: Flight = async move {
                        task.await.unwrap_or_else(|e| {
                            // The computation panicked: let the next caller start afresh.
                            forget();
                            Err(Arc::new(Error::Cache(format!(
                                "the computation failed: {e}"
                            ))))
                        })
                    }
                    .boxed()
                    .shared();
                    map.insert(key.to_owned(), (id, f.clone()));
                    (f, true)
                }
            }
        };
        match flight.await {
            Ok(c) => Ok((c, leader)),
            Err(e) => Err(Arc::try_unwrap(e).unwrap_or_else(|shared| shared.duplicate())),
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
        assert_eq!(sf.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_leader_does_not_let_a_second_computation_start() {
        let sf = Arc::new(SingleFlight::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let compute = |runs: Arc<AtomicUsize>| -> Compute {
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(Computed {
                    value: Bytes::from_static(b"v"),
                    store: true,
                    ttl: Duration::from_secs(1),
                })
            })
        };
        // The leader gives up after 10 ms; a follower arriving later still joins its computation.
        let leader = tokio::time::timeout(
            Duration::from_millis(10),
            sf.run("k", compute(Arc::clone(&runs))),
        );
        assert!(leader.await.is_err());
        let (v, started) = sf.run("k", compute(Arc::clone(&runs))).await.unwrap();
        assert_eq!((v.value.as_ref(), started), (&b"v"[..], false));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // And an abandoned computation still finishes and leaves the map.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(10),
            sf.run("j", compute(Arc::clone(&runs))),
        );
        assert!(abandoned.await.is_err());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(sf.in_flight(), 0);
    }

    #[tokio::test]
    async fn errors_keep_their_kind() {
        let sf = SingleFlight::new();
        let e = sf
            .run(
                "k",
                Box::pin(async { Err(Error::RecursionLimit { depth: 9, limit: 5 }) }),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::RecursionLimit { depth: 9, limit: 5 }),
            "{e}"
        );
    }
}

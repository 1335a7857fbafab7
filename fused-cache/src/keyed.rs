//! [`KeyedLocks`]: one async mutex per key, so concurrent callers in a process take turns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Async mutexes by key, created on demand; ones nobody holds are forgotten once there are
/// many, so the map does not grow without bound.
pub(crate) struct KeyedLocks(OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl KeyedLocks {
    /// No locks yet (usable in a `static`).
    pub(crate) const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The lock of `key`.
    pub(crate) fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .0
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if map.len() > 1024 {
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        Arc::clone(map.entry(key.to_owned()).or_default())
    }
}

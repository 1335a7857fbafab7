//! `cached(key, options, || async { … })`: the `@fused.cache` equivalent for any async Rust
//! function (the `#[fused::cache]` attribute expands to it).
//!
//! The key is a SHA-256 over the function's identity (its name and a hash of its source
//! tokens, so editing the body invalidates entries), each argument not excluded — its name, its
//! Rust type and its value in canonical JSON, so `1` and `"1"` never collide — and the max age.
//! Values live in a [`TieredCache`] (memory over a local folder, or the object store) under
//! `<base>/cached_data/<folder_path>/`. Concurrent callers compute once: in this process
//! through a per-key lock, across processes through the storage's lock with heartbeat.
//! Errors are returned, never cached; a broken cache never breaks the function (it is logged
//! and the function runs).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fused_core::{Cache, Error, MaxAge, Options, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::value::CacheValue;
use crate::{LockSettings, MemoryCache, StorageCache, TieredCache};

/// Where `cached` keeps entries (the SDK's `cache_storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheStorage {
    /// `/mount/fused-system` when it exists and is writable, else the system's temp folder.
    #[default]
    Auto,
    /// The system's temp folder (this machine only).
    Local,
    /// `/mount/fused-system` (shared by the machines that mount it).
    Mount,
    /// The object store at the `fd_prefix` option (`s3://bucket/prefix`, …).
    Object,
}

impl std::str::FromStr for CacheStorage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "local" => Ok(Self::Local),
            "mount" => Ok(Self::Mount),
            "object" => Ok(Self::Object),
            other => Err(Error::Options(format!(
                "cache_storage must be auto, local, mount or object, got {other:?}"
            ))),
        }
    }
}

/// The options of a cached call (the SDK's `@fused.cache` arguments). Options given for one
/// call apply to that call only.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// How old a cached value may be (default: the `cache_decorator_max_age` option, 48 h).
    pub max_age: Option<MaxAge>,
    /// Sub-folder of the cache (default `tmp`).
    pub folder_path: String,
    /// How long to wait for another process computing the same key.
    pub concurrent_lock_timeout: Duration,
    /// Recompute and overwrite, ignoring what is cached.
    pub reset: bool,
    /// Where entries live.
    pub storage: CacheStorage,
    /// Arguments left out of the key.
    pub key_exclude: Vec<String>,
    /// Report hits on standard error (default: on).
    pub verbose: Option<bool>,
    /// The folder `cached_data` goes in, overriding `storage` and the `cache_directory` option.
    pub directory: Option<PathBuf>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            max_age: None,
            folder_path: "tmp".into(),
            concurrent_lock_timeout: Duration::from_secs(120),
            reset: false,
            storage: CacheStorage::Auto,
            key_exclude: Vec::new(),
            verbose: None,
            directory: None,
        }
    }
}

impl CacheOptions {
    /// Options with `max_age` parsed from `"12h"` / `"30m"` / seconds.
    pub fn max_age(mut self, text: &str) -> Result<Self> {
        self.max_age = Some(MaxAge::parse(text)?);
        Ok(self)
    }
}

/// The identity and arguments of a call, hashed into a cache key.
#[derive(Debug, Clone)]
pub struct CacheKey {
    name: String,
    identity: String,
    args: Vec<(String, String, Vec<u8>)>,
    /// An argument could not be keyed: the call is not cached.
    unkeyable: bool,
}

impl CacheKey {
    /// A key for the function `name` (its identity too, until [`source`](Self::source)).
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            identity: name.clone(),
            name,
            args: Vec::new(),
            unkeyable: false,
        }
    }

    /// Adds the hash of the function's source: editing it invalidates its entries.
    #[must_use]
    pub fn source(mut self, source_hash: &str) -> Self {
        self.identity = format!("{}#{source_hash}", self.name);
        self
    }

    /// Adds an argument: its name, its Rust type and its value in canonical JSON (object keys
    /// sorted), so `1_i64`, `1.0_f64` and `"1"` are three keys.
    #[must_use]
    pub fn arg<T: Serialize + ?Sized>(mut self, name: &str, value: &T) -> Self {
        let canonical = match serde_json::to_value(value) {
            // (JSON has no NaN or infinities: serde_json writes them as null, so a NaN
            // argument keys like a missing one.)
            Ok(v) => {
                let mut out = Vec::new();
                fused_core::args::write_canonical(&v, &mut out);
                out
            }
            // Not representable as JSON: the call runs uncached.
            _ => {
                tracing::warn!(
                    arg = name,
                    "argument cannot be part of a cache key; not caching"
                );
                self.unkeyable = true;
                Vec::new()
            }
        };
        self.args.push((
            name.to_owned(),
            std::any::type_name::<T>().to_owned(),
            canonical,
        ));
        self
    }

    /// The function's name (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's digest under `options`, for values of type `value_type`.
    pub fn digest(&self, options: &CacheOptions, max_age: MaxAge, value_type: &str) -> String {
        let mut h = Sha256::new();
        let mut part = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        part(b"fused-rs cached v1");
        part(self.identity.as_bytes());
        part(value_type.as_bytes());
        for (name, ty, value) in &self.args {
            if options.key_exclude.iter().any(|x| x == name) {
                continue;
            }
            part(name.as_bytes());
            part(ty.as_bytes());
            part(value);
        }
        part(&max_age.as_secs().to_le_bytes());
        hex::encode(h.finalize())
    }
}

/// The options `cached` reads once: settings file and `FUSED_*` variables.
fn settings() -> &'static Options {
    static OPTS: OnceLock<Options> = OnceLock::new();
    OPTS.get_or_init(|| Options::load().unwrap_or_default())
}

/// The shared cache of a place.
fn cache_at(options: &CacheOptions) -> Result<Arc<TieredCache>> {
    type Registry = Mutex<HashMap<(String, u64), Arc<TieredCache>>>;
    static CACHES: OnceLock<Registry> = OnceLock::new();
    let folder = options.folder_path.trim_matches('/');
    if folder.split('/').any(|s| s == ".." || s == ".") {
        return Err(Error::Options(format!(
            "cache_folder_path {:?} must stay inside the cache",
            options.folder_path
        )));
    }
    let place = match options.storage {
        CacheStorage::Object => {
            let prefix = settings()
                .extra
                .get("fd_prefix")
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    Error::Options(
                        "cache_storage=object needs the fd_prefix option (s3://bucket/prefix)"
                            .into(),
                    )
                })?;
            format!("{}/cached_data/{folder}", prefix.trim_end_matches('/'))
        }
        _ if options.directory.is_some() => options
            .directory
            .clone()
            .unwrap_or_default()
            .join("cached_data")
            .join(folder)
            .display()
            .to_string(),
        other => base_dir(other)?
            .join("cached_data")
            .join(folder)
            .display()
            .to_string(),
    };
    let id = (
        place.clone(),
        options.concurrent_lock_timeout.as_millis() as u64,
    );
    let mut map = CACHES
        .get_or_init(Registry::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = map.get(&id) {
        return Ok(Arc::clone(c));
    }
    let storage = Arc::new(fused_storage::ObjectStorage::from_url(&place)?);
    let lock = LockSettings {
        concurrent_lock_timeout: options.concurrent_lock_timeout,
        ..LockSettings::default()
    };
    // One memory budget for every cache of the process.
    static MEMORY: OnceLock<MemoryCache> = OnceLock::new();
    let memory = MEMORY.get_or_init(|| MemoryCache::new(256 << 20)).clone();
    let c = Arc::new(TieredCache::new(
        memory,
        StorageCache::new(storage, "fd://").with_lock_settings(lock),
    ));
    map.insert(id, Arc::clone(&c));
    Ok(c)
}

/// The folder under which `cached_data` lives for a storage choice (`Object` has none).
pub fn base_dir(storage: CacheStorage) -> Result<PathBuf> {
    if let Some(dir) = &settings().cache_directory {
        return Ok(dir.clone());
    }
    let mount = PathBuf::from("/mount/fused-system");
    let writable =
        |p: &PathBuf| std::fs::metadata(p).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    Ok(match storage {
        CacheStorage::Mount if writable(&mount) => mount,
        CacheStorage::Mount => {
            return Err(Error::Options(
                "cache_storage=mount needs a writable /mount/fused-system".into(),
            ));
        }
        CacheStorage::Auto if writable(&mount) => mount,
        _ => std::env::temp_dir(),
    })
}

/// In-process locks by key, so concurrent callers compute once.
static LOCAL_LOCKS: crate::keyed::KeyedLocks = crate::keyed::KeyedLocks::new();

/// Human age: at most two units ("1 day 2 hours"), or fractional seconds under one second.
fn human(age: Duration) -> String {
    let s = age.as_secs();
    let parts = [
        (s / 86_400, "day"),
        (s / 3_600 % 24, "hour"),
        (s / 60 % 60, "minute"),
        (s % 60, "second"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(v, _)| *v > 0)
        .take(2)
        .map(|(v, n)| format!("{v} {n}{}", if *v == 1 { "" } else { "s" }))
        .collect();
    if words.is_empty() {
        format!("{:.2} seconds", age.as_secs_f64())
    } else {
        words.join(" ")
    }
}

/// Reads a fresh value, or `None` (a damaged value is removed and is a miss).
async fn read<T: CacheValue>(
    cache: &dyn Cache,
    key: &str,
    max_age: MaxAge,
) -> Option<(T, Duration)> {
    let e = match cache.get(key).await {
        Ok(Some(e)) if e.age() <= max_age.duration() => e,
        Ok(_) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cache read failed; computing");
            return None;
        }
    };
    let age = e.age();
    match T::from_cache_bytes(e.value) {
        Ok(v) => Some((v, age)),
        Err(err) => {
            tracing::warn!(error = %err, "dropping a cache entry that does not decode");
            let _ = cache.remove(key).await;
            None
        }
    }
}

/// Runs `f` once per key and max age, and keeps its successful value.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use fused_cache::{CacheKey, CacheOptions, cached};
/// let area = |w: i64, h: i64| async move {
///     let key = CacheKey::new("area").arg("w", &w).arg("h", &h);
///     cached(key, &CacheOptions::default(), || async move { Ok::<_, String>(w * h) }).await
/// };
/// assert_eq!(area(6, 7).await, Ok(42));
/// assert_eq!(area(6, 7).await, Ok(42)); // from the cache
/// # });
/// ```
pub async fn cached<T, E, F, Fut>(key: CacheKey, options: &CacheOptions, f: F) -> Result<T, E>
where
    T: CacheValue,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let max_age = options
        .max_age
        .unwrap_or_else(|| MaxAge::from_secs(settings().cache_decorator_max_age));
    if max_age.is_zero() {
        return f().await;
    }
    let cache = match cache_at(options) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no cache for this call; computing");
            return f().await;
        }
    };
    if key.unkeyable {
        return f().await;
    }
    let digest = key.digest(options, max_age, std::any::type_name::<T>());
    let verbose = options.verbose.unwrap_or(true);
    let report = |age: Duration| {
        if verbose {
            eprintln!(
                "{:?} returned cached result: {} old",
                key.name(),
                human(age)
            );
        }
    };
    if !options.reset
        && let Some((v, age)) = read::<T>(cache.as_ref(), &digest, max_age).await
    {
        report(age);
        return Ok(v);
    }
    let lock = LOCAL_LOCKS.get(&digest);
    // Waits for a computation in this process at most concurrent_lock_timeout.
    let _in_process = tokio::time::timeout(options.concurrent_lock_timeout, lock.lock())
        .await
        .ok();
    if !options.reset
        && let Some((v, age)) = read::<T>(cache.as_ref(), &digest, max_age).await
    {
        report(age);
        return Ok(v);
    }
    // Across processes: wait for a computation elsewhere, or hold the lock while computing.
    let guard = match cache
        .storage()
        .lock_with(&digest, max_age.duration(), options.reset)
        .await
    {
        Ok(crate::storage::CacheLock::Found(entry)) if !options.reset => {
            if let Ok(v) = T::from_cache_bytes(entry.value.clone()) {
                report(entry.age());
                return Ok(v);
            }
            None
        }
        Ok(crate::storage::CacheLock::Held(g)) => Some(g),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cache lock failed; computing");
            None
        }
    };
    let value = f().await?;
    match value.to_cache_bytes() {
        Ok(bytes) => {
            if let Err(e) = cache.put(&digest, bytes, max_age.duration()).await {
                tracing::warn!(error = %e, "could not store the cached value");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not encode the cached value"),
    }
    drop(guard);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_typed_and_exclusions_work() {
        let o = CacheOptions::default();
        let m = MaxAge::from_secs(60);
        let k = |v: &dyn Fn(CacheKey) -> CacheKey| v(CacheKey::new("f")).digest(&o, m, "i64");
        let one_int = k(&|c| c.arg("x", &1_i64));
        assert_ne!(one_int, k(&|c| c.arg("x", "1")), "1 and \"1\" differ");
        assert_ne!(one_int, k(&|c| c.arg("x", &1.0_f64)), "1 and 1.0 differ");
        assert_ne!(one_int, k(&|c| c.arg("y", &1_i64)), "names count");
        assert_eq!(one_int, k(&|c| c.arg("x", &1_i64)), "stable");
        let map_a = serde_json::json!({"a": 1, "b": 2});
        let map_b: serde_json::Value = serde_json::from_str(r#"{"b": 2, "a": 1}"#).unwrap();
        assert_eq!(
            k(&|c| c.arg("m", &map_a)),
            k(&|c| c.arg("m", &map_b)),
            "key order does not count"
        );
        assert_ne!(
            one_int,
            CacheKey::new("f")
                .source("abc")
                .arg("x", &1_i64)
                .digest(&o, m, "i64"),
            "the source counts"
        );
        assert_ne!(
            one_int,
            CacheKey::new("f")
                .arg("x", &1_i64)
                .digest(&o, MaxAge::from_secs(61), "i64"),
            "the max age counts"
        );
        let ex = CacheOptions {
            key_exclude: vec!["verbose".into()],
            ..CacheOptions::default()
        };
        assert_eq!(
            CacheKey::new("f")
                .arg("x", &1_i64)
                .arg("verbose", &true)
                .digest(&ex, m, "i64"),
            CacheKey::new("f")
                .arg("x", &1_i64)
                .arg("verbose", &false)
                .digest(&ex, m, "i64"),
        );
    }

    #[test]
    fn ages_read_like_the_sdk() {
        assert_eq!(human(Duration::from_secs(90_061)), "1 day 1 hour");
        assert_eq!(human(Duration::from_secs(303)), "5 minutes 3 seconds");
        assert_eq!(human(Duration::from_millis(200)), "0.20 seconds");
    }
}

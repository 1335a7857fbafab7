//! Cache backends for fused-rs, and the run cache.
//!
//! - [`MemoryCache`]: an in-process [`Cache`](fused_core::Cache) on moka, weighed by bytes, with
//!   a time-to-live per entry and one computation per key.
//! - [`CachingExecutor`]: an [`Executor`](fused_core::Executor) decorator that caches successful
//!   runs by UDF identity + canonical arguments, honouring `cache_max_age`.
//!
//! - [`StorageCache`]: entries as objects of any [`Storage`](fused_core::Storage) (a local folder
//!   by default), atomic, checked, size-limited, one computation per key across processes.
//! - [`TieredCache`]: memory over storage.
//! - [`cached`]: the `@fused.cache` equivalent for async functions (the `#[fused::cache]`
//!   attribute of the facade expands to it), with [`CacheKey`], [`CacheOptions`] and
//!   [`CacheValue`].

mod cached;
mod download;
mod executor;
mod keyed;
mod memory;
mod storage;
mod tiered;
mod value;

pub use cached::{CacheKey, CacheOptions, CacheStorage, base_dir, cached};
pub use download::{
    DOWNLOAD_LOCK_TIMEOUT, Downloader, FILE_PATH_RETENTION, download, file_path, file_path_in,
};
pub use executor::{CachingExecutor, DEFAULT_MAX_AGE};
pub use memory::MemoryCache;
pub use storage::{CacheLock, LockGuard, LockSettings, StorageCache};
pub use tiered::TieredCache;
pub use value::{CacheValue, Json};

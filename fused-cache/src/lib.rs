//! Cache backends for fused-rs, and the run cache.
//!
//! - [`MemoryCache`]: an in-process [`Cache`](fused_core::Cache) on moka, weighed by bytes, with
//!   a time-to-live per entry and one computation per key.
//! - [`CachingExecutor`]: an [`Executor`](fused_core::Executor) decorator that caches successful
//!   runs by UDF identity + canonical arguments, honouring `cache_max_age`.
//!
//! Storage-backed and tiered caches, the `cached()` wrapper, download-once and `file_path`
//! come with the fused-cache issue.

mod executor;
mod memory;

pub use executor::{CachingExecutor, DEFAULT_MAX_AGE};
pub use memory::MemoryCache;

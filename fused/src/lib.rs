//! fused-rs: run user defined functions (UDFs) locally, in parallel, cached, and over HTTP as
//! files and XYZ map tiles, with a server the official `fused` Python SDK works against.
//!
//! This crate is the facade: it re-exports the vocabulary of [`fused_core`], wires the
//! executors and caches together for [`run`], and holds the demo UDFs and the `fused` binary.
//!
//! ```
//! use fused::{Args, Output, RunContext, Udf};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, fused::schemars::JsonSchema)]
//! #[schemars(crate = "fused::schemars")]
//! struct Params {
//!     n: i64,
//! }
//!
//! let udf = Udf::native("double", |_ctx: RunContext, p: Params| async move {
//!     Ok::<_, std::convert::Infallible>(Output::Json((p.n * 2).into()))
//! });
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let result = fused::run(&udf, Args::new().with("n", "21")).await.unwrap();
//! assert_eq!(result.output.unwrap(), Output::Json(42.into()));
//! # });
//! ```

pub mod api;

/// Caching of any async function's results — the `@fused.cache` equivalent: the
/// [`#[fused::cache]`](macro@cache) attribute, or [`cached`](cache::cached) directly.
pub mod cache {
    pub use fused_cache::{
        CacheKey, CacheLock, CacheOptions, CacheStorage, CacheValue, Json, LockSettings,
        MemoryCache, StorageCache, TieredCache, cached,
    };
}
pub use fused_macros::cache;
pub mod demos;
mod error;
pub mod h3_job;
pub mod ingest_job;
pub mod load;
mod local;
pub mod run_cache;
pub mod udf_dir;

pub use error::{Error, Result};
pub use local::{LocalEngine, run, run_call, submit};

pub use fused_core::{
    Args, Bounds, Cache, CacheStatus, Crs, Encoded, Executor, FailureKind, Format, FormatPrefs,
    Logs, MaxAge, Options, Output, ParamKind, ParamSchema, Raster, RasterData, RunContext,
    RunMetadata, RunResult, Storage, Table, Tile, Transport, Udf, UdfCall, UdfError, UdfFailure,
    UdfMeta, UdfRef, UdfRegistry, encode, schemars,
};

/// The crates behind this facade, for what it does not re-export.
pub mod crates {
    pub use fused_cache as cache;
    pub use fused_core as core;
    pub use fused_h3 as h3;
    pub use fused_http as http;
    pub use fused_ingest as ingest;
    pub use fused_jobs as jobs;
    pub use fused_storage as storage;
}

pub use fused_cache::{CachingExecutor, Downloader, MemoryCache, download, file_path};
pub use fused_http::{FusedApi, HttpTransport, InProcessTransport, RemoteExecutor};
pub use fused_jobs::{ArgList, JobPool, LocalExecutor, SubmitOptions, TaskError, TaskState};
pub use fused_storage::ObjectStorage;

//! The vocabulary of fused-rs.
//!
//! - [`Udf`]: metadata that round-trips the Fused UDF JSON, a parameter schema, and a handler;
//!   [`Args`] coerced to declared types ([`ParamSchema`]).
//! - [`Tile`] and [`Bounds`]: Web Mercator XYZ tiles and lon/lat boxes.
//! - [`MaxAge`]: `cache_max_age` durations.
//! - [`Output`]: tables, rasters, JSON and bytes; [`encode`] turns them into wire formats.
//! - [`Options`]: settings from `~/.fused/settings.toml` and `FUSED_*` variables.
//! - The four traits: [`Transport`], [`Storage`], [`Cache`], [`Executor`].
//!
//! This crate has no network or disk backends; those live in the other `fused-*` crates.

pub mod args;
pub mod cache;
pub mod context;
pub mod encode;
pub mod error;
pub mod executor;
pub mod geom;
pub mod max_age;
pub mod options;
pub mod output;
pub mod proj;
pub mod run;
pub mod schema;
pub mod storage;
pub mod tile;
pub mod transport;
pub mod udf;

pub use args::{Args, Bound};
pub use cache::{Cache, CacheEntry, Computed, Lookup, SingleFlight};
pub use context::{Logs, RunContext};
pub use encode::{Encoded, Format, FormatPrefs};
pub use error::{Error, ParamError, Result};
pub use executor::Executor;
pub use max_age::MaxAge;
pub use options::Options;
pub use output::{Crs, Output, Raster, RasterData, Table};
pub use run::{CacheStatus, FailureKind, RunMetadata, RunResult, UdfCall, UdfFailure, UdfRef};
pub use schema::{ParamKind, ParamSchema, ParamSpec};
pub use storage::{ObjectMeta, Storage};
pub use tile::{Bounds, Tile};
pub use transport::{Body, Transport};
pub use udf::{Udf, UdfError, UdfMeta, UdfRegistry};

/// Re-exported so that UDF parameter types can derive `JsonSchema` without a direct dependency.
pub use schemars;

//! Executors and fan-out for fused-rs.
//!
//! - [`LocalExecutor`]: runs native UDFs in this process, bounded, with a per-call timeout;
//!   a panic or a timeout becomes a failed result and the executor keeps serving.
//! - [`submit`] and [`JobPool`]: one UDF over many arguments on any
//!   [`Executor`](fused_core::Executor) (local, or remote through a server), bounded, with
//!   per-task retries (exponential backoff with jitter), cancellation, progress, and
//!   [`collect`](JobPool::collect) into one Arrow table.
//!
//! - [`store`]: batch jobs that outlive their process — the [`JobStore`](store::JobStore)
//!   trait (claims under leases, heartbeats, cancellation, logs) and its SQLite implementation.

mod args;
mod local;
mod pool;
mod round_robin;
pub mod store;
mod worker;

pub use args::ArgList;
pub use local::{DEFAULT_TIMEOUT, LocalExecutor};
pub use pool::{JobPool, MAX_WORKERS, SubmitOptions, TaskError, TaskState, check_calls, submit};
pub use round_robin::RoundRobin;
pub use worker::{JobContext, JobKind, JobKinds, Worker};

//! Executors and fan-out for fused-rs.
//!
//! - [`LocalExecutor`]: runs native UDFs in this process, bounded, with a per-call timeout;
//!   a panic or a timeout becomes a failed result and the executor keeps serving.
//! - [`submit`] and [`JobPool`]: one UDF over many arguments on any
//!   [`Executor`](fused_core::Executor) (local, or remote through a server), bounded, with
//!   per-task retries (exponential backoff with jitter), cancellation, progress, and
//!   [`collect`](JobPool::collect) into one Arrow table.
//!
//! Batch jobs and the job store come next.

mod args;
mod local;
mod pool;
mod round_robin;

pub use args::ArgList;
pub use local::{DEFAULT_TIMEOUT, LocalExecutor};
pub use pool::{JobPool, MAX_WORKERS, SubmitOptions, TaskError, TaskState, submit};
pub use round_robin::RoundRobin;

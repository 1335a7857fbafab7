//! Executors for fused-rs.
//!
//! - [`LocalExecutor`]: runs native UDFs in this process, bounded, with a per-call timeout;
//!   a panic or a timeout becomes a failed result and the executor keeps serving.
//!
//! `submit`, `JobPool`, batch jobs and the job store come with the fused-jobs issue.

mod local;

pub use local::{DEFAULT_TIMEOUT, LocalExecutor};

//! Python UDFs for fused-rs: a [`PythonWorker`] is a long-lived CPython process (from the
//! environment the README's set-up creates) running our own small worker module. It compiles a
//! UDF's code once and keeps it warm, calls it with JSON parameters, and sends back JSON
//! values, Arrow IPC tables (GeoDataFrames with WKB geometry and their CRS) or arrays, with the
//! call's captured stdout and stderr, or the exception (class, message, line).
//!
//! The worker starts with a clean environment (only what [`WorkerConfig`] passes: no server
//! secrets), its protocol on file descriptors the UDF cannot reach, and every call under a
//! deadline: a worker past it is killed, and the caller starts another.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fused_python::Error> {
//! use fused_python::{PythonWorker, WorkerConfig};
//! let mut w = PythonWorker::start(&WorkerConfig::new("target/py/bin/python")).await?;
//! let udf = w
//!     .compile("@fused.udf\ndef udf(name: str = 'world'):\n    return f'Hello, {name}!'\n", None)
//!     .await?;
//! let params = serde_json::json!({"name": "Fused"});
//! let reply = w.call(&udf.udf, params.as_object().unwrap(), std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

mod code_udf;
mod pool;
mod protocol;
mod runtime;
mod worker;

pub use code_udf::{Services, code_udf, code_udf_calling, schema_of};
pub use pool::PythonPool;
pub use protocol::{Compiled, Host, Param, PyError, Reply, Returned, Source};
pub use runtime::PythonRuntime;
pub use worker::{PythonWorker, WorkerConfig};

/// What can go wrong with a worker or a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The interpreter could not be started.
    #[error("starting Python ({python}): {source}")]
    Spawn {
        /// The interpreter.
        python: String,
        /// Why.
        source: std::io::Error,
    },
    /// The worker process ended (crashed, killed itself, ran out of memory).
    #[error("the Python worker died{}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    Died {
        /// The end of its stderr.
        stderr: String,
    },
    /// A call ran past its deadline; the worker was killed.
    #[error("the UDF ran past its {seconds} s limit and was stopped")]
    Timeout {
        /// The limit.
        seconds: f64,
    },
    /// The UDF (or its compilation) raised.
    #[error("{0}")]
    Udf(PyError),
    /// The worker answered something we do not understand.
    #[error("Python worker protocol: {0}")]
    Protocol(String),
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;

//! The `Executor` trait: run one UDF call.

use async_trait::async_trait;

use crate::error::Result;
use crate::run::{RunResult, UdfCall};

/// Runs UDF calls.
///
/// An implementation must:
/// - return `Ok` with a failed [`RunResult`] when the UDF itself fails (returns an error,
///   panics, or exceeds `call.timeout`), keeping whatever it printed — a failing UDF never
///   takes the executor down, and the next call is served normally;
/// - return `Err` only when the call could not be made at all: an unknown UDF, arguments that
///   do not bind ([`crate::Error::Param`]), a transport that is down;
/// - be safe to call from many tasks at once (`&self`).
#[async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// Runs one call.
    async fn execute(&self, call: UdfCall) -> Result<RunResult>;
}

#[async_trait]
impl<E: Executor + ?Sized> Executor for std::sync::Arc<E> {
    async fn execute(&self, call: UdfCall) -> Result<RunResult> {
        (**self).execute(call).await
    }
}

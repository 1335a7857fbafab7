//! Runtimes for UDFs given as code: what turns a definition's `code` into a runnable [`Udf`].
//! A server without one runs native UDFs only.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Udf, UdfMeta};
use crate::run::UdfFailure;

/// Makes runnable UDFs of code definitions (the Python runtime is one).
#[async_trait]
pub trait CodeRuntime: Send + Sync + std::fmt::Debug {
    /// The runnable UDF of `meta`; code that does not load (a syntax error, a missing
    /// entrypoint, an import that fails) is the caller's failure, with its class and line.
    async fn load(&self, meta: &UdfMeta) -> Result<Arc<Udf>, UdfFailure>;
}

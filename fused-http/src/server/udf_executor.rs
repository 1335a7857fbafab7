//! The executor code UDFs call through (`fused.run` inside a UDF): names resolve to the
//! server's registry, then to the owner's saved UDFs; shared tokens to what they share (enabled
//! ones only); the call then runs on the server's executor, its recursion depth kept.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use fused_core::{Error, Executor, Result, RunResult, UdfCall, UdfRef};

use super::AppState;
use super::catalog::DEFAULT_COLLECTION;

/// Resolves names and tokens the way the server does, then runs on its executor.
#[derive(Debug)]
pub struct ServerUdfExecutor {
    state: Weak<AppState>,
}

impl AppState {
    /// An executor for calls made from inside UDFs (see [`ServerUdfExecutor`]).
    pub fn udf_executor(self: &Arc<Self>) -> Arc<dyn Executor> {
        Arc::new(ServerUdfExecutor {
            state: Arc::downgrade(self),
        })
    }
}

#[async_trait]
impl Executor for ServerUdfExecutor {
    async fn execute(&self, mut call: UdfCall) -> Result<RunResult> {
        let state = self
            .state
            .upgrade()
            .ok_or_else(|| Error::Options("the server is shutting down".into()))?;
        let unknown = |what: &str| Error::UnknownUdf(what.to_owned());
        let udf = match &call.udf {
            UdfRef::Name(n) => match state.registry.get(n) {
                Some(u) => Some(u),
                None => {
                    let entry = state
                        .entry_by_slug(&state.owner, DEFAULT_COLLECTION, n)
                        .await
                        .map_err(|e| Error::Options(e.parts().2))?
                        .ok_or_else(|| unknown(n))?;
                    Some(
                        state
                            .runnable(&state.target(&entry.meta))
                            .await
                            .map_err(|e| Error::Options(format!("{n}: {}", e.parts().2)))?,
                    )
                }
            },
            UdfRef::Token(t) => {
                let grant = state
                    .grant(t)
                    .await
                    .map_err(|e| Error::Options(e.parts().2))?
                    .filter(|g| g.enabled)
                    .ok_or_else(|| unknown(t))?;
                let target = grant.target.as_ref().ok_or_else(|| unknown(t))?;
                Some(
                    state
                        .runnable(target)
                        .await
                        .map_err(|e| Error::Options(format!("{t}: {}", e.parts().2)))?,
                )
            }
            // Native objects (and any future kind) run as they are.
            _ => None,
        };
        if let Some(u) = udf {
            call.udf = UdfRef::Native(u);
        }
        state.executor.execute(call).await
    }
}

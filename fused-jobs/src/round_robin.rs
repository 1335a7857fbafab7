//! [`RoundRobin`]: an executor that spreads calls over several executors (for example one
//! `RemoteExecutor` per server), for `submit`'s remote fan-out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use fused_core::{Error, Executor, Result, RunResult, UdfCall};

/// Sends each call to the next executor in turn.
#[derive(Debug)]
pub struct RoundRobin {
    executors: Vec<Arc<dyn Executor>>,
    next: AtomicUsize,
}

impl RoundRobin {
    /// Over `executors` (at least one).
    pub fn new(executors: Vec<Arc<dyn Executor>>) -> Result<Self> {
        if executors.is_empty() {
            return Err(Error::Options("round robin over no executor".into()));
        }
        Ok(Self {
            executors,
            next: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Executor for RoundRobin {
    async fn execute(&self, call: UdfCall) -> Result<RunResult> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.executors.len();
        self.executors[i].execute(call).await
    }
}

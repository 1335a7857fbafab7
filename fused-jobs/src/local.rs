//! `LocalExecutor`: native UDFs in this process.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fused_core::{
    CacheStatus, Error, Executor, Result, RunContext, RunResult, UdfCall, UdfFailure, UdfRef,
    UdfRegistry,
};
use futures::FutureExt;
use tokio::sync::Semaphore;

/// Default time a call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(130);

/// Runs native UDFs from a registry on the calling task: at most `max_concurrency` at once,
/// each within its timeout; panics and timeouts become failed results.
///
/// A UDF that blocks its thread (CPU-heavy work without `spawn_blocking`) cannot be interrupted
/// by the timeout until it yields; native UDFs should move heavy work off the async threads.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    registry: Arc<UdfRegistry>,
    timeout: Duration,
    limit: Arc<Semaphore>,
    max_recursion: u32,
}

impl LocalExecutor {
    /// An executor for the UDFs of `registry`, with the default timeout and 256 concurrent calls.
    pub fn new(registry: Arc<UdfRegistry>) -> Self {
        Self {
            registry,
            timeout: DEFAULT_TIMEOUT,
            limit: Arc::new(Semaphore::new(256)),
            max_recursion: 5,
        }
    }

    /// Sets the timeout used when a call has none.
    #[must_use]
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Sets how many calls may run at once (others wait for a slot).
    #[must_use]
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.limit = Arc::new(Semaphore::new(n.max(1)));
        self
    }

    /// Sets the deepest allowed chain of UDFs calling UDFs.
    #[must_use]
    pub fn with_max_recursion(mut self, n: u32) -> Self {
        self.max_recursion = n;
        self
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<UdfRegistry> {
        &self.registry
    }
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => match p.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "the UDF panicked".to_owned(),
        },
    }
}

#[async_trait]
impl Executor for LocalExecutor {
    async fn execute(&self, call: UdfCall) -> Result<RunResult> {
        let started = Instant::now();
        if let UdfRef::Token(_) = call.udf {
            return Err(Error::UnknownUdf(format!(
                "{} (shared tokens run on a server: use a remote executor)",
                call.udf.describe()
            )));
        }
        let udf = self.registry.require(&call.udf)?;
        if call.recursion > self.max_recursion {
            return Err(Error::RecursionLimit {
                depth: call.recursion,
                limit: self.max_recursion,
            });
        }
        let bound = udf.bind(&call.args, call.tile)?;
        let ctx = RunContext::new(
            uuid::Uuid::new_v4().to_string(),
            udf.name(),
            call.tile,
            call.recursion,
        );
        for name in &bound.ignored {
            ctx.eprint(format!(
                "warning: {} has no parameter `{name}`; the argument was ignored",
                udf.name()
            ));
        }
        let timeout = call.timeout.unwrap_or(self.timeout);
        // Waiting for a slot counts against the timeout too. The UDF is polled in place (no
        // hand-off to another task): a panic is caught here, and on timeout the future is
        // dropped, which cancels it.
        let limit = &self.limit;
        let run = async {
            // The semaphore is never closed, so acquiring can only wait.
            let _permit = limit.acquire().await.ok();
            AssertUnwindSafe(udf.invoke(ctx.clone(), bound))
                .catch_unwind()
                .await
        };
        let output = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(UdfFailure::panic(panic_message(panic))),
            Err(_) => Err(UdfFailure::timeout(timeout)),
        };
        Ok(RunResult {
            output,
            logs: ctx.logs(),
            elapsed: started.elapsed(),
            cache: CacheStatus::Disabled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fused_core::{Args, FailureKind, Output, Udf, UdfError};
    use serde::Deserialize;

    #[derive(Deserialize, schemars::JsonSchema)]
    struct P {
        mode: String,
    }

    fn registry() -> Arc<UdfRegistry> {
        let r = Arc::new(UdfRegistry::new());
        r.register(Udf::native("t", |ctx: RunContext, p: P| async move {
            ctx.print(format!("mode={}", p.mode));
            match p.mode.as_str() {
                "panic" => panic!("boom {}", 42),
                "sleep" => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(Output::Empty)
                }
                "error" => Err(UdfError::value("bad mode")),
                _ => Ok(Output::Json(p.mode.into())),
            }
        }))
        .unwrap();
        r
    }

    fn call(mode: &str) -> UdfCall {
        UdfCall::new("t", Args::new().with("mode", mode))
    }

    #[tokio::test]
    async fn panics_timeouts_and_errors_are_failed_results() {
        let ex = LocalExecutor::new(registry()).with_timeout(Duration::from_millis(100));
        let r = ex.execute(call("panic")).await.unwrap();
        let f = r.output.unwrap_err();
        assert_eq!(
            (f.kind, f.message.as_str()),
            (FailureKind::Panic, "boom 42")
        );
        assert_eq!(r.logs.stdout, "mode=panic\n");

        let t0 = Instant::now();
        let f = ex.execute(call("sleep")).await.unwrap().output.unwrap_err();
        assert_eq!(f.kind, FailureKind::Timeout);
        assert!(t0.elapsed() < Duration::from_secs(5));

        let f = ex.execute(call("error")).await.unwrap().output.unwrap_err();
        assert_eq!(
            (f.class.as_str(), f.message.as_str()),
            ("ValueError", "bad mode")
        );

        // And the executor keeps serving.
        let ok = ex.execute(call("fine")).await.unwrap().output.unwrap();
        assert_eq!(ok, Output::Json("fine".into()));
    }

    #[tokio::test]
    async fn waiting_for_a_slot_counts_against_the_timeout() {
        let ex = LocalExecutor::new(registry())
            .with_max_concurrency(1)
            .with_timeout(Duration::from_millis(200));
        let busy = tokio::spawn({
            let ex = ex.clone();
            async move {
                ex.execute(call("sleep").with_timeout(Duration::from_secs(5)))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        let f = ex.execute(call("fine")).await.unwrap().output.unwrap_err();
        assert_eq!(f.kind, FailureKind::Timeout);
        assert!(t0.elapsed() < Duration::from_secs(2));
        busy.abort();
    }

    #[tokio::test]
    async fn call_errors() {
        let ex = LocalExecutor::new(registry());
        assert!(matches!(
            ex.execute(UdfCall::new("nope", Args::new())).await,
            Err(Error::UnknownUdf(_))
        ));
        let e = ex
            .execute(UdfCall::new("t", Args::new()))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("parameter `mode` is required"),
            "{e}"
        );
        assert!(
            ex.execute(UdfCall::new("fsh_abc", Args::new()))
                .await
                .is_err()
        );
        let mut deep = call("fine");
        deep.recursion = 6;
        assert!(
            ex.execute(deep)
                .await
                .unwrap_err()
                .to_string()
                .contains("recursion")
        );
    }
}

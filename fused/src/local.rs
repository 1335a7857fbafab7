//! Local runs: a [`LocalExecutor`] behind a [`CachingExecutor`] on a [`MemoryCache`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fused_cache::{CachingExecutor, MemoryCache};
use fused_core::{Args, Executor, RunResult, Udf, UdfCall, UdfRegistry};
use fused_jobs::LocalExecutor;

use crate::Result;

/// Default memory budget of the local run cache.
const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// An in-process engine: a registry of UDFs, run on a bounded [`LocalExecutor`] with a
/// per-call timeout, results cached in memory by UDF identity and canonical arguments.
#[derive(Debug, Clone)]
pub struct LocalEngine {
    registry: Arc<UdfRegistry>,
    executor: Arc<CachingExecutor<LocalExecutor>>,
}

impl Default for LocalEngine {
    fn default() -> Self {
        Self::new(
            Arc::new(UdfRegistry::new()),
            DEFAULT_CACHE_BYTES,
            fused_jobs::DEFAULT_TIMEOUT,
        )
    }
}

impl LocalEngine {
    /// An engine over `registry` with a cache of `cache_bytes` and a default `timeout`.
    pub fn new(registry: Arc<UdfRegistry>, cache_bytes: u64, timeout: Duration) -> Self {
        Self::with_cache(registry, Arc::new(MemoryCache::new(cache_bytes)), timeout)
    }

    /// An engine over `registry` caching runs in `cache` (for example the persistent
    /// [`run_cache`](crate::run_cache)).
    pub fn with_cache(
        registry: Arc<UdfRegistry>,
        cache: Arc<dyn fused_core::Cache>,
        timeout: Duration,
    ) -> Self {
        let local = LocalExecutor::new(Arc::clone(&registry)).with_timeout(timeout);
        let executor = Arc::new(CachingExecutor::new(local, cache, Arc::clone(&registry)));
        Self { registry, executor }
    }

    /// The registry of named UDFs.
    pub fn registry(&self) -> &Arc<UdfRegistry> {
        &self.registry
    }

    /// The executor (cached local runs), to share with a server or a pool.
    pub fn executor(&self) -> Arc<dyn Executor> {
        Arc::clone(&self.executor) as Arc<dyn Executor>
    }

    /// Runs one call.
    pub async fn run(&self, call: UdfCall) -> Result<RunResult> {
        Ok(self.executor.execute(call).await?)
    }
}

fn default_engine() -> &'static LocalEngine {
    static ENGINE: OnceLock<LocalEngine> = OnceLock::new();
    ENGINE.get_or_init(LocalEngine::default)
}

/// Runs `udf` locally with `args` (coerced to its parameter types), through the process-wide
/// engine: cached by UDF identity + arguments, concurrent identical calls run once, panics and
/// timeouts become failed results. The result carries the output (or failure), logs and timing.
pub async fn run(udf: &Udf, args: Args) -> Result<RunResult> {
    run_call(UdfCall::new(udf.clone(), args)).await
}

/// Runs `udf` once per entry of `arg_list` on the process-wide engine (cached, bounded by
/// `options.max_workers`), returning the pool of running tasks at once; `pool.collect(..)`
/// gives one Arrow table.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use fused::{Output, RunContext, Udf};
/// # #[derive(serde::Deserialize, fused::schemars::JsonSchema)]
/// # #[schemars(crate = "fused::schemars")]
/// # struct P { n: i64 }
/// let double = Udf::native("double", |_c: RunContext, p: P| async move {
///     Ok::<_, std::convert::Infallible>(Output::Json((p.n * 2).into()))
/// });
/// let pool = fused::submit(&double, vec![1, 2, 3], Default::default()).unwrap();
/// let table = pool.collect(false, true).await.unwrap();
/// assert_eq!(table.num_rows(), 3);
/// # });
/// ```
pub fn submit(
    udf: &Udf,
    arg_list: impl Into<fused_jobs::ArgList>,
    options: fused_jobs::SubmitOptions,
) -> Result<fused_jobs::JobPool> {
    Ok(fused_jobs::submit(
        default_engine().executor(),
        udf.clone(),
        arg_list,
        options,
    )?)
}

/// Runs a full [`UdfCall`] (tile, timeout, `cache_max_age`) through the process-wide engine.
pub async fn run_call(call: UdfCall) -> Result<RunResult> {
    default_engine().run(call).await
}

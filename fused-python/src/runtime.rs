//! The Python runtime of a server: code definitions loaded as [`Udf`]s on a [`PythonPool`],
//! each loaded once (by its whole definition) and kept.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fused_core::udf::CodeRuntime;
use fused_core::{Udf, UdfFailure, UdfMeta};

use crate::Error;
use crate::code_udf::{Services, code_udf_calling};
use crate::pool::PythonPool;

/// Definitions kept loaded at most (past it, the oldest half is dropped).
const KEPT: usize = 512;

/// Loads code UDFs on a pool; calls run within `timeout`.
#[derive(Debug)]
pub struct PythonRuntime {
    pool: Arc<PythonPool>,
    timeout: Duration,
    loaded: Mutex<HashMap<u64, (u64, Arc<Udf>)>>,
    clock: std::sync::atomic::AtomicU64,
    services: Services,
}

impl PythonRuntime {
    /// A runtime on `pool`.
    pub fn new(pool: Arc<PythonPool>, timeout: Duration) -> Self {
        Self {
            pool,
            timeout,
            loaded: Mutex::new(HashMap::new()),
            clock: std::sync::atomic::AtomicU64::new(0),
            services: Services::default(),
        }
    }

    /// Runs the UDFs' own `fused.run(name)` calls with `executor` (a server's).
    #[must_use]
    pub fn with_executor(mut self, executor: Arc<dyn fused_core::Executor>) -> Self {
        self.services.executor = Some(executor);
        self
    }

    /// Keeps the UDFs' `@fused.cache` results in `cache` (a server's).
    #[must_use]
    pub fn with_cache(mut self, cache: Arc<dyn fused_core::Cache>) -> Self {
        self.services.cache = Some(cache);
        self
    }

    /// Its pool.
    pub fn pool(&self) -> &Arc<PythonPool> {
        &self.pool
    }
}

#[async_trait]
impl CodeRuntime for PythonRuntime {
    async fn load(&self, meta: &UdfMeta) -> Result<Arc<Udf>, UdfFailure> {
        let mut h = DefaultHasher::new();
        meta.to_json().hash(&mut h);
        let key = h.finish();
        let tick = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some((used, udf)) = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&key)
        {
            *used = tick;
            return Ok(Arc::clone(udf));
        }
        let udf = code_udf_calling(
            &self.pool,
            meta.clone(),
            self.timeout,
            self.services.clone(),
        )
        .await
        .map(Arc::new)
        .map_err(|e| match e {
            Error::Udf(p) => {
                let mut f = UdfFailure::runtime(p.class, p.message);
                f.lineno = p.line;
                f
            }
            Error::Timeout { seconds } => UdfFailure::timeout(Duration::from_secs_f64(seconds)),
            e => UdfFailure::runtime("RuntimeError", e.to_string()),
        })?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.len() >= KEPT {
            let mut ticks: Vec<u64> = loaded.values().map(|(t, _)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks[ticks.len() / 2];
            loaded.retain(|_, (t, _)| *t > cut);
        }
        loaded.insert(key, (tick, Arc::clone(&udf)));
        Ok(udf)
    }
}

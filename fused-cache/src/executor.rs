//! `CachingExecutor`: caches successful runs of local UDFs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use fused_core::cache::{Cache, Compute, Computed};
use fused_core::encode::{decode_output, encode_output};
use fused_core::{
    CacheStatus, Executor, MaxAge, Result, RunMetadata, RunResult, Udf, UdfCall, UdfRegistry,
};

/// The max age used when neither the call nor the UDF sets one (the SDK's local default).
pub const DEFAULT_MAX_AGE: MaxAge = MaxAge::from_secs(90 * 86_400);

/// An [`Executor`] decorator that answers repeated calls from a [`Cache`].
///
/// The key is the UDF's identity plus its arguments after coercion (so `?n=5` and `{"n": 5}`
/// share an entry) plus the tile. Only successes are stored; concurrent calls of one key run
/// once. `cache_max_age` comes from the call, else the UDF, else [`DEFAULT_MAX_AGE`]; zero
/// bypasses the cache. Calls of UDFs the registry cannot resolve (shared tokens of a remote
/// server) pass through unchanged.
#[derive(Debug)]
pub struct CachingExecutor<E> {
    inner: Arc<E>,
    cache: Arc<dyn Cache>,
    registry: Arc<UdfRegistry>,
    default_max_age: MaxAge,
}

impl<E: Executor + 'static> CachingExecutor<E> {
    /// Wraps `inner`, caching in `cache` the runs of UDFs that `registry` resolves.
    pub fn new(inner: E, cache: Arc<dyn Cache>, registry: Arc<UdfRegistry>) -> Self {
        Self {
            inner: Arc::new(inner),
            cache,
            registry,
            default_max_age: DEFAULT_MAX_AGE,
        }
    }

    /// Sets the max age used when neither the call nor the UDF has one.
    #[must_use]
    pub fn with_default_max_age(mut self, m: MaxAge) -> Self {
        self.default_max_age = m;
        self
    }

    /// The cache key of a call of `udf`: its identity, its coerced arguments and its tile.
    pub fn key(udf: &Udf, call: &UdfCall) -> Result<String> {
        let bound = udf.bind(&call.args, call.tile)?;
        Ok(format!("run:{}", udf.cache_key(&bound, call.tile)))
    }

    /// The wrapped executor.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

/// A run result as cache bytes: its metadata (logs) then its output.
fn pack(r: &RunResult) -> Result<Bytes> {
    let meta = serde_json::to_vec(&RunMetadata::from_result(
        &r.logs,
        r.output.as_ref().map(|_| ()),
    ))?;
    let mut out = Vec::with_capacity(meta.len() + 256);
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    out.extend_from_slice(&meta);
    if let Ok(o) = &r.output {
        out.extend_from_slice(&encode_output(o)?);
    }
    Ok(out.into())
}

fn unpack(b: &Bytes) -> Result<RunResult> {
    let corrupt = || fused_core::Error::Cache("corrupt run cache entry".into());
    let head: [u8; 8] = b
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(corrupt)?;
    let n = usize::try_from(u64::from_le_bytes(head)).map_err(|_| corrupt())?;
    let end = n.checked_add(8).ok_or_else(corrupt)?;
    let meta_bytes = b.get(8..end).ok_or_else(corrupt)?;
    let meta: RunMetadata = serde_json::from_slice(meta_bytes)?;
    let output = match meta.failure() {
        Some(f) => Err(f),
        None => Ok(decode_output(&b.slice(end..))?),
    };
    Ok(RunResult {
        output,
        logs: meta.logs(),
        elapsed: Duration::ZERO,
        cache: CacheStatus::Miss,
    })
}

#[async_trait]
impl<E: Executor + 'static> Executor for CachingExecutor<E> {
    async fn execute(&self, call: UdfCall) -> Result<RunResult> {
        let Some(udf) = self.registry.resolve(&call.udf) else {
            return self.inner.execute(call).await;
        };
        let max_age = call
            .cache_max_age
            .or(udf.meta().cache_max_age)
            .unwrap_or(self.default_max_age);
        if max_age.is_zero() {
            let mut r = self.inner.execute(call).await?;
            r.cache = CacheStatus::Disabled;
            return Ok(r);
        }
        let started = Instant::now();
        let key = Self::key(&udf, &call)?;
        // A corrupt entry is a miss: it is dropped and the call computed (and stored) again;
        // a second corrupt answer in a row is a failing backend, reported as such.
        let mut attempt = 0;
        let (mut r, lookup) = loop {
            let inner = Arc::clone(&self.inner);
            let this_call = call.clone();
            let compute: Compute = Box::pin(async move {
                let r = inner.execute(this_call).await?;
                Ok(Computed {
                    value: pack(&r)?,
                    store: r.is_ok(),
                    ttl: max_age.duration(),
                })
            });
            let lookup = self
                .cache
                .get_or_compute(&key, max_age.duration(), compute)
                .await?;
            match unpack(&lookup.value) {
                Ok(r) => break (r, lookup),
                Err(e) if attempt == 0 => {
                    tracing::warn!(%key, error = %e, "dropping a corrupt run cache entry");
                    self.cache.remove(&key).await?;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        r.elapsed = started.elapsed();
        r.cache = match lookup.hit {
            Some(age) => CacheStatus::Hit { age },
            None => CacheStatus::Miss,
        };
        Ok(r)
    }
}

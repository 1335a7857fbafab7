//! The run cache in front of a real `LocalExecutor`: hits, and corrupt entries treated as misses.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fused_cache::{CachingExecutor, MemoryCache};
use fused_core::{
    Args, Cache, CacheStatus, Executor, Output, RunContext, Udf, UdfCall, UdfRegistry,
};
use fused_jobs::LocalExecutor;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct P {
    n: i64,
}

#[tokio::test]
async fn a_corrupt_entry_is_a_miss_that_is_rewritten() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let udf = Udf::native("square", move |_: RunContext, p: P| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, std::convert::Infallible>(Output::Json((p.n * p.n).into())) }
    });
    let registry = Arc::new(UdfRegistry::new());
    let udf = registry.register(udf).unwrap();
    let cache = Arc::new(MemoryCache::new(1 << 20));
    let ex = CachingExecutor::new(
        LocalExecutor::new(Arc::clone(&registry)),
        cache.clone(),
        registry,
    );
    let call = || UdfCall::new("square", Args::new().with("n", 7));

    assert_eq!(
        ex.execute(call()).await.unwrap().output.unwrap(),
        Output::Json(49.into())
    );
    let hit = ex.execute(call()).await.unwrap();
    assert!(matches!(hit.cache, CacheStatus::Hit { .. }));
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // Break the entry: the next call recomputes the right value instead of failing.
    let key = CachingExecutor::<LocalExecutor>::key(&udf, &call()).unwrap();
    cache
        .put(
            &key,
            Bytes::from_static(b"garbage"),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let r = ex.execute(call()).await.unwrap();
    assert_eq!(
        (r.output.unwrap(), r.cache),
        (Output::Json(49.into()), CacheStatus::Miss)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // And the cache is whole again.
    assert!(matches!(
        ex.execute(call()).await.unwrap().cache,
        CacheStatus::Hit { .. }
    ));
}

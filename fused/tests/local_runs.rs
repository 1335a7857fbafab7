//! `fused::run` and the local engine: coercion, caching, one run per key, failures.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fused::{
    Args, CacheStatus, FailureKind, MaxAge, Output, RunContext, Tile, Udf, UdfCall, UdfError,
};
use serde::Deserialize;

#[derive(Deserialize, fused::schemars::JsonSchema)]
#[schemars(crate = "fused::schemars")]
struct P {
    n: i64,
}

fn counting(name: &str, runs: Arc<AtomicUsize>, delay: Duration) -> Udf {
    Udf::native(name, move |ctx: RunContext, p: P| {
        let runs = Arc::clone(&runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            ctx.print(format!("n={}", p.n));
            if p.n < 0 {
                return Err(UdfError::value("negative"));
            }
            Ok(Output::Json((p.n * 10).into()))
        }
    })
}

#[tokio::test]
async fn results_are_cached_by_coerced_arguments() {
    let runs = Arc::new(AtomicUsize::new(0));
    let udf = counting("cached_by_args", Arc::clone(&runs), Duration::ZERO);
    let a = fused::run(&udf, Args::new().with("n", "5")).await.unwrap();
    assert_eq!(a.output.as_ref().unwrap(), &Output::Json(50.into()));
    assert_eq!(a.cache, CacheStatus::Miss);
    assert_eq!(a.logs.stdout, "n=5\n");
    let b = fused::run(&udf, Args::new().with("n", 5)).await.unwrap();
    assert!(matches!(b.cache, CacheStatus::Hit { .. }));
    assert_eq!(
        b.logs.stdout, "n=5\n",
        "logs come back with a cached result"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let c = fused::run(&udf, Args::new().with("n", 6)).await.unwrap();
    assert_eq!(c.cache, CacheStatus::Miss);
    let d = fused::run_call(
        UdfCall::new(udf.clone(), Args::new().with("n", 5)).with_cache_max_age(MaxAge::ZERO),
    )
    .await
    .unwrap();
    assert_eq!(d.cache, CacheStatus::Disabled);
    assert_eq!(runs.load(Ordering::SeqCst), 3);

    // A different tile is a different entry.
    let t = fused::run_call(
        UdfCall::new(udf.clone(), Args::new().with("n", 5)).with_tile(Tile::new(0, 0, 0).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(t.cache, CacheStatus::Miss);
}

#[tokio::test]
async fn concurrent_calls_of_one_key_run_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let udf = counting(
        "concurrent_once",
        Arc::clone(&runs),
        Duration::from_millis(100),
    );
    let calls = (0..20).map(|_| fused::run(&udf, Args::new().with("n", 1)));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.as_ref().unwrap().output.is_ok()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failures_are_results_and_never_cached() {
    let runs = Arc::new(AtomicUsize::new(0));
    let udf = counting("failing", Arc::clone(&runs), Duration::ZERO);
    for _ in 0..2 {
        let r = fused::run(&udf, Args::new().with("n", -1)).await.unwrap();
        let f = r.output.unwrap_err();
        assert_eq!(
            (f.kind, f.class.as_str(), f.message.as_str()),
            (FailureKind::Runtime, "ValueError", "negative")
        );
        assert_eq!(r.logs.stdout, "n=-1\n");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let e = fused::run(&udf, Args::new().with("n", "x"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("parameter `n`: expected an integer, got \"x\""),
        "{e}"
    );
}

#[tokio::test]
async fn timeouts_are_failed_results() {
    let udf = counting(
        "sleepy",
        Arc::new(AtomicUsize::new(0)),
        Duration::from_secs(30),
    );
    let call = UdfCall::new(udf, Args::new().with("n", 1)).with_timeout(Duration::from_millis(50));
    let r = fused::run_call(call).await.unwrap();
    assert_eq!(r.output.unwrap_err().kind, FailureKind::Timeout);
    assert!(r.elapsed < Duration::from_secs(5));
}

#[tokio::test]
async fn demos_run_locally() {
    let r = fused::run(&fused::demos::hello(), Args::new().with("name", "Rust"))
        .await
        .unwrap();
    let t = r.output.unwrap();
    let batch = t.as_table().unwrap().concat().unwrap();
    assert_eq!(batch.num_rows(), 1);
    let tile = Tile::new(4, 2, 3).unwrap();
    let r = fused::run_call(
        UdfCall::new(fused::demos::vector_tile(), Args::new().with("cells", 3)).with_tile(tile),
    )
    .await
    .unwrap();
    assert_eq!(r.output.unwrap().as_table().unwrap().num_rows(), 9);
    let r = fused::run_call(
        UdfCall::new(fused::demos::raster_tile(), Args::new().with("size", 16)).with_tile(tile),
    )
    .await
    .unwrap();
    let out = r.output.unwrap();
    let raster = out.as_raster().unwrap();
    assert_eq!(raster.shape(), [3, 16, 16]);
    assert_eq!(raster.bounds, Some(tile.bounds()));
}

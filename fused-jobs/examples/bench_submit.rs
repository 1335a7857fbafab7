//! The Rust side of `cargo xtask bench submit`: 100 000 trivial tasks through `submit` on the
//! local executor (no cache); prints JSON with tasks/s and the per-task overhead.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use fused_core::{Output, RunContext, Udf, UdfRegistry};
use fused_jobs::{LocalExecutor, SubmitOptions, submit};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct N {
    n: i64,
}

#[tokio::main]
async fn main() {
    let n: i64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let udf = Udf::native("trivial", |_c: RunContext, p: N| async move {
        Ok::<_, std::convert::Infallible>(Output::Json(p.n.into()))
    });
    let ex = Arc::new(LocalExecutor::new(Arc::new(UdfRegistry::new())).with_max_concurrency(1024));
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let pool = submit(
            ex.clone(),
            udf.clone(),
            (0..n).collect::<Vec<_>>(),
            SubmitOptions {
                cache: false,
                ..SubmitOptions::default()
            },
        )
        .unwrap();
        pool.wait().await;
        assert!(pool.all_succeeded());
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"tasks\": {n}, \"seconds\": {best}, \"tasks_per_s\": {}, \"per_task_ns\": {}}}",
        n as f64 / best,
        best * 1e9 / n as f64
    );
}

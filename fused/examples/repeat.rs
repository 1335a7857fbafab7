//! A native UDF, run locally twice: the second run is served from the cache.
//!
//! `cargo run --example repeat`

use fused::{Args, CacheStatus, Output, RunContext, Udf, UdfError};
use serde::Deserialize;

/// The UDF's parameters: their JSON Schema tells callers the types, defaults and descriptions.
#[derive(Deserialize, fused::schemars::JsonSchema)]
#[schemars(crate = "fused::schemars")]
struct Params {
    /// How many times to repeat.
    n: u32,
}

#[tokio::main]
async fn main() -> Result<(), fused::Error> {
    let udf = Udf::native("repeat", |ctx: RunContext, p: Params| async move {
        ctx.print(format!("repeating {} times", p.n));
        if p.n > 1000 {
            return Err(UdfError::value("n must be at most 1000"));
        }
        Ok(Output::Json("ab".repeat(p.n as usize).into()))
    });
    // Text arguments (as from a query string) are coerced to the declared types.
    let first = fused::run(&udf, Args::new().with("n", "3")).await?;
    println!(
        "{:?} in {:?}, logs: {:?}",
        first.output, first.elapsed, first.logs.stdout
    );
    let second = fused::run(&udf, Args::new().with("n", 3)).await?;
    assert!(matches!(second.cache, CacheStatus::Hit { .. }));
    println!("second run: {:?}", second.cache);
    // A failing UDF is a failed result, not a crash.
    let failed = fused::run(&udf, Args::new().with("n", 5000)).await?;
    if let Err(failure) = failed.output {
        println!("failed as expected: {failure}");
    }
    Ok(())
}

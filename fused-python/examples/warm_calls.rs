//! `cargo xtask bench python`'s Rust side: warm calls of a hello-world code UDF through a
//! worker (Rust → worker → Rust, output decoded into an `Output`), and how long a new worker
//! takes to be ready with the UDF compiled. Prints one JSON line.
//!
//! usage: warm_calls PYTHON CALLS KIND   (KIND: str | dataframe)

use std::sync::Arc;
use std::time::{Duration, Instant};

use fused_core::{Args, RunContext, UdfMeta};
use fused_python::{PythonPool, PythonWorker, WorkerConfig, code_udf};

const STR: &str = "@fused.udf\ndef udf(name: str = 'world'):\n    return f'Hello, {name}!'\n";
const DATAFRAME: &str = "@fused.udf\ndef udf(name: str = 'world'):\n    import pandas as pd\n    return pd.DataFrame({'message': [f'Hello, {name}!']})\n";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let python = args.get(1).ok_or("usage: warm_calls PYTHON CALLS KIND")?;
    let calls: usize = args.get(2).map_or(Ok(20_000), |s| s.parse())?;
    let code = if args.get(3).map(String::as_str) == Some("dataframe") {
        DATAFRAME
    } else {
        STR
    };
    let cfg = WorkerConfig::new(python);
    // A new worker: interpreter up and the UDF compiled (best of 5).
    let mut start = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let mut w = PythonWorker::start(&cfg).await?;
        w.compile(code, None).await?;
        start = start.min(t.elapsed());
        w.kill().await;
    }
    let pool = PythonPool::new(cfg, 1);
    pool.warm().await?;
    let mut meta = UdfMeta::new("hello");
    meta.code = code.to_owned();
    meta.entrypoint = "udf".to_owned();
    let udf = Arc::new(code_udf(&pool, meta, Duration::from_secs(30)).await?);
    let args = Args::from_pairs([("name", "bench")]);
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls + 200 {
        let t = Instant::now();
        let bound = udf.bind(&args, None)?;
        let out = udf
            .invoke(RunContext::new("b", "hello", None, 0), bound)
            .await
            .map_err(|e| e.message)?;
        std::hint::black_box(out);
        if i >= 200 {
            times.push(t.elapsed().as_nanos() as f64);
        }
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{{\"calls\": {calls}, \"mean_ns\": {mean:.0}, \"p50_ns\": {:.0}, \"p99_ns\": {:.0}, \"start_ms\": {:.1}}}",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        start.as_secs_f64() * 1000.0
    );
    Ok(())
}

//! `cargo xtask bench python`: a warm call of a hello-world code UDF through our Python runtime
//! (Rust → worker → Rust, output decoded) against the official SDK's
//! `fused.run(udf, engine="local", cache=False)` inside one Python process; and how long a new
//! worker takes to be ready.

use std::process::Command;

use crate::bench::{cpu_model, num_cores};
use crate::bench_cache::{field, last_line};
use crate::{cargo, root, sh};

pub(crate) fn python(_args: &[String]) -> Result<(), String> {
    let python = crate::pyenv::ensure()?;
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "fused-python",
        "--example",
        "warm_calls",
    ]))?;
    println!(
        "\nbench python — hello-world code UDF, warm, {}, {} cores",
        cpu_model(),
        num_cores()
    );
    println!(
        "| returns | ours p50 | ours mean | SDK local p50 | SDK local mean | ours / SDK (p50) | new worker ready |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for kind in ["str", "dataframe"] {
        let ours = last_line(
            Command::new(root().join("target/release/examples/warm_calls"))
                .arg(&python)
                .arg("20000")
                .arg(kind),
        )?;
        let sdk = last_line(
            Command::new(&python)
                .arg(root().join("xtask/bench/sdk_local_run.py"))
                .arg("5000")
                .arg(kind),
        )?;
        let (o50, omean) = (field(&ours, "p50_ns")?, field(&ours, "mean_ns")?);
        let (s50, smean) = (field(&sdk, "p50_ns")?, field(&sdk, "mean_ns")?);
        println!(
            "| {kind} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.2}× | {:.0} ms |",
            o50 / 1e3,
            omean / 1e3,
            s50 / 1e3,
            smean / 1e3,
            o50 / s50,
            field(&ours, "start_ms")?
        );
    }
    println!("\ngoals: ours ≤ 1.5× the SDK's in-process call; a new worker ready in ≤ 1 s");
    Ok(())
}

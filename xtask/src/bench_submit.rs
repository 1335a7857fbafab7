//! `cargo xtask bench submit`: 100 000 trivial tasks through our `submit` (local executor)
//! against the official SDK's `fused.submit(..., engine="local")`, per-task overhead compared.

use std::process::Command;

use crate::bench::{cpu_model, num_cores};
use crate::bench_cache::{field, last_line};
use crate::{cargo, root, sh};

pub(crate) fn submit(_args: &[String]) -> Result<(), String> {
    let python = crate::pyenv::ensure()?;
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "fused-jobs",
        "--example",
        "bench_submit",
    ]))?;
    let ours = last_line(&mut Command::new(
        root().join("target/release/examples/bench_submit"),
    ))?;
    eprintln!("xtask: the SDK's fused.submit for up to 30 s…");
    let sdk = last_line(
        Command::new(&python)
            .arg(root().join("xtask/bench/sdk_submit.py"))
            .arg("30"),
    )?;
    let (our_rate, our_ns) = (field(&ours, "tasks_per_s")?, field(&ours, "per_task_ns")?);
    let (py_rate, py_ns, py_n) = (
        field(&sdk, "tasks_per_s")?,
        field(&sdk, "per_task_ns")?,
        field(&sdk, "tasks")?,
    );
    println!(
        "\nbench submit — trivial UDF, no cache, best of 3 (ours) / largest batch within 30 s (SDK), {}, {} cores",
        cpu_model(),
        num_cores()
    );
    println!("| case | tasks | tasks/s | per-task overhead |");
    println!("|---|---:|---:|---:|");
    println!(
        "| (a) `submit` on the local executor (max_workers 32) | {} | {our_rate:.0} | {:.2} µs |",
        field(&ours, "tasks")?,
        our_ns / 1000.0
    );
    println!(
        "| (b) SDK 2.9.5 `fused.submit(engine=\"local\")` | {py_n} | {py_rate:.0} | {:.0} µs |",
        py_ns / 1000.0
    );
    println!(
        "\n(a) has {:.0}× lower per-task overhead. goals: ≥ 100× lower, ≥ 200 000 tasks/s",
        py_ns / our_ns
    );
    Ok(())
}

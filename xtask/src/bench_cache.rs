//! `cargo xtask bench cache`: hits of our cache against hits of the official SDK's
//! `@fused.cache`, on the same 1 MiB table (2 int64 columns × 65 536 rows), on this machine.

use std::process::Command;

use crate::bench::{cpu_model, num_cores};
use crate::{cargo, root, sh};

/// A number field of a one-line JSON object.
pub(crate) fn field(json: &str, name: &str) -> Result<f64, String> {
    let at = json
        .find(&format!("\"{name}\""))
        .ok_or_else(|| format!("no {name} in {json}"))?;
    let rest = &json[at + name.len() + 3..];
    let end = rest
        .find([',', '}'])
        .ok_or_else(|| format!("bad JSON: {json}"))?;
    rest[..end]
        .trim()
        .parse()
        .map_err(|_| format!("bad number for {name} in {json}"))
}

/// The last line a command prints (its JSON result).
pub(crate) fn last_line(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned())
}

pub(crate) fn cache(_args: &[String]) -> Result<(), String> {
    let python = crate::pyenv::ensure()?;
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "fused-cache",
        "--example",
        "bench_cache",
    ]))?;
    let ours = last_line(&mut Command::new(
        root().join("target/release/examples/bench_cache"),
    ))?;
    let sdk = last_line(Command::new(&python).arg(root().join("xtask/bench/sdk_cache_hit.py")))?;
    let small = field(&ours, "memory_hit_small_ns")? / 1000.0;
    let table_mem = field(&ours, "memory_hit_table_ns")? / 1000.0;
    let disk = field(&ours, "disk_hit_table_ns")? / 1000.0;
    let py = field(&sdk, "sdk_hit_ns")? / 1000.0;
    println!(
        "\nbench cache — median per hit of 7 rounds, {}, {} cores",
        cpu_model(),
        num_cores()
    );
    println!("| case | per hit | vs (c) |");
    println!("|---|---:|---:|");
    println!("| (a) `cached()` memory hit, small value (key hashing included) | {small:.2} µs | |");
    println!(
        "| (a') `cached()` memory hit, 1 MiB Arrow table | {table_mem:.2} µs | {:.0}× faster |",
        py / table_mem
    );
    println!(
        "| (b) disk hit of the 1 MiB Arrow table (storage tier: read, CRC-checked, decoded) | {disk:.1} µs | {:.1}× faster |",
        py / disk
    );
    println!(
        "| (c) official SDK 2.9.5 `@fused.cache` hit, same table as a pandas DataFrame | {py:.1} µs | 1× |"
    );
    println!("\ngoals: (a) ≤ 2 µs; (b) ≥ 20× faster than (c)");
    Ok(())
}

//! `cargo xtask bench ingest [POINTS [POLYGONS [RUNS]]]`: our `fused ingest` against DuckDB's
//! spatial extension and geopandas on the same generated GeoParquet (10 M clustered points and
//! 1 M small polygons by default), wall time and peak RSS side by side.

use std::process::Command;

use crate::bench::{cpu_model, num_cores};
use crate::{cargo, root, sh};

pub(crate) fn ingest(args: &[String]) -> Result<(), String> {
    let python = crate::pyenv::ensure()?;
    sh(cargo().args(["build", "--release", "-p", "fused"]))?;
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let work = root().join("target/bench-ingest");
    println!(
        "\nbench ingest — {}, {} cores (best of {} runs; inputs cached in {})",
        cpu_model(),
        num_cores(),
        arg(2, "2"),
        work.display()
    );
    sh(Command::new(python)
        .arg(root().join("xtask/bench/ingest.py"))
        .arg(root().join("target/release/fused"))
        .arg(&work)
        .arg(arg(0, "10000000"))
        .arg(arg(1, "1000000"))
        .arg(arg(2, "2")))?;
    println!("\ngoals: ratio ≥ 1.0 against DuckDB, peak RSS ≤ 1 GiB");
    Ok(())
}

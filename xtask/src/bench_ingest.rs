//! `cargo xtask bench ingest [POINTS [POLYGONS [RUNS [BIG_POINTS]]]]`: our `fused ingest`
//! against DuckDB's spatial extension, geopandas and dask-geopandas on the same generated
//! GeoParquet (10 M clustered points and 1 M small polygons by default; BIG_POINTS adds a
//! larger-than-memory-budget input, e.g. 100 M points ≈ 3 GiB), wall time and peak RSS side by
//! side.

use std::process::Command;

use crate::bench::{cpu_model, num_cores};
use crate::{cargo, root, sh};

pub(crate) fn ingest(args: &[String]) -> Result<(), String> {
    let python = crate::pyenv::ensure()?;
    // dask-geopandas is a peer of the benchmark only, not of the tests.
    let has_dask = Command::new(&python)
        .args(["-c", "import dask_geopandas"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_dask {
        sh(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "dask-geopandas==0.5.0",
        ]))?;
    }
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
        .arg(arg(2, "2"))
        .arg(arg(3, "0")))?;
    println!("\ngoals: ratio ≥ 1.0 against DuckDB, ≥ 10× dask-geopandas, peak RSS ≤ 1 GiB");
    Ok(())
}

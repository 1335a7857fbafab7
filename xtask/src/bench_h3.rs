//! `cargo xtask bench h3 [SIZE [RES,RES…]]`: our raster-to-H3 ingestion against raster2dggs and
//! h3ronpy on one generated GeoTIFF (`SIZE` × `SIZE` float32 pixels of 0.0001°, default 8 000,
//! 5 % nodata) at res 11 and 13. The peers live in their own virtualenv (`target/h3bench-py`),
//! not the tests'.

use std::process::Command;

use crate::bench::{cpu_model, num_cores};
use crate::{cargo, root, sh};

/// The peers, pinned.
const PEERS: [&str; 3] = [
    "raster2dggs[h3]==0.18.3",
    "h3ronpy==0.22.0",
    "rasterio==1.4.4",
];

pub(crate) fn h3(args: &[String]) -> Result<(), String> {
    let size = args.first().cloned().unwrap_or_else(|| "8000".into());
    let res = args.get(1).cloned().unwrap_or_else(|| "11,13".into());
    sh(cargo().args(["build", "--release", "-p", "fused"]))?;
    let work = root().join("target/bench-h3");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    // Written by h3.py with GDAL, as the issue sets it: tiled 512, deflate + predictor 3.
    let raster = work.join(format!("r{size}-tiled.tif"));
    let peers: Vec<String> = PEERS.iter().map(|p| (*p).to_owned()).collect();
    let python =
        crate::pyenv::ensure_venv(&root().join("target/h3bench-py"), &peers, &peers.join("\n"))?;
    println!(
        "\nbench h3 — {}, {} cores, {size} × {size} float32 raster (one run each)",
        cpu_model(),
        num_cores()
    );
    sh(Command::new(&python)
        .arg(root().join("xtask/bench/h3.py"))
        .arg(root().join("target/release/fused"))
        .arg(&raster)
        .arg(&work)
        .arg(&res)
        .arg(&size))?;
    println!("\ngoals: ≥ 10× raster2dggs and ≥ 2× h3ronpy at both resolutions, peak RSS ≤ 1 GiB");
    Ok(())
}

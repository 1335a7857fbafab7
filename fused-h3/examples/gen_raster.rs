//! Writes the benchmark raster: float32, `SIZE` × `SIZE` pixels of 0.0001° (EPSG:4326) from
//! (10°E, 45°N), strips of 64 rows, deflate (the `tiff` encoder has no floating-point predictor), 5 %
//! nodata.
//!
//! usage: cargo run --release -p fused-h3 --example gen_raster -- OUT.tif [SIZE]

use fused_h3::{Georef, write_f32};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).ok_or("usage: gen_raster OUT.tif [SIZE]")?;
    let size: u32 = args.get(2).map_or(Ok(8000), |s| s.parse())?;
    // A smooth field with 5 % of pixels (pseudo-random) at nodata.
    let mut state: u64 = 7;
    let data: Vec<f32> = (0..size as u64 * size as u64)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (state >> 33).is_multiple_of(20) {
                -9999.0
            } else {
                let (c, r) = ((i % size as u64) as f32, (i / size as u64) as f32);
                (c * 0.001).sin() * 100.0 + (r * 0.002).cos() * 50.0
            }
        })
        .collect();
    let georef = Georef {
        x0: 10.0,
        y0: 45.0,
        pixel: 0.0001,
        epsg: 4326,
    };
    write_f32(out.as_ref(), georef, (size, size), Some(-9999.0), &data)?;
    Ok(())
}

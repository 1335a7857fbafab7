//! Times the vector tile encoder on one core: 10 000 polygons (squares of 5 points) and
//! 10 000 points in one zoom-10 tile, each with an integer, a float and a text attribute.
//! Run by `cargo xtask bench serve`; prints one line per case.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, BinaryArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use fused_core::encode::mvt::{MvtOptions, encode_mvt};
use fused_core::{Crs, Table, Tile};

const SIDE: usize = 100;
const RUNS: usize = 50;

fn table(geoms: Vec<Vec<u8>>) -> Table {
    let n = geoms.len();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..n as i64)),
        Arc::new(Float64Array::from_iter_values(
            (0..n).map(|i| i as f64 * 0.37),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("r{}c{}", i / SIDE, i % SIDE)),
        )),
        Arc::new(BinaryArray::from_iter_values(geoms)),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("geometry", DataType::Binary, false),
    ]));
    match RecordBatch::try_new(schema, cols)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            Table::from_batch(b)
                .with_geometry("geometry", Crs::WGS84)
                .map_err(|e| e.to_string())
        }) {
        Ok(t) => t,
        Err(e) => panic!("building the table: {e}"),
    }
}

fn wkb(g: &geo_types::Geometry<f64>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Err(e) = wkb::writer::write_geometry(&mut buf, g, &Default::default()) {
        panic!("writing WKB: {e}");
    }
    buf
}

fn main() {
    let tile = Tile {
        x: 550,
        y: 335,
        z: 10,
    };
    let b = tile.bounds();
    let (dx, dy) = (
        (b.east - b.west) / SIDE as f64,
        (b.north - b.south) / SIDE as f64,
    );
    let mut polygons = Vec::with_capacity(SIDE * SIDE);
    let mut points = Vec::with_capacity(SIDE * SIDE);
    for r in 0..SIDE {
        for c in 0..SIDE {
            let (w, s) = (b.west + c as f64 * dx, b.south + r as f64 * dy);
            let ring = geo_types::LineString::from(vec![
                (w, s),
                (w + 0.9 * dx, s),
                (w + 0.9 * dx, s + 0.9 * dy),
                (w, s + 0.9 * dy),
                (w, s),
            ]);
            polygons.push(wkb(&geo_types::Polygon::new(ring, vec![]).into()));
            points.push(wkb(
                &geo_types::Point::new(w + dx / 2.0, s + dy / 2.0).into()
            ));
        }
    }
    let opts = MvtOptions::new("bench");
    for (name, t) in [("polygons", table(polygons)), ("points", table(points))] {
        let mut ms = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        for _ in 0..RUNS {
            let start = Instant::now();
            let out = match encode_mvt(&t, tile, &opts) {
                Ok(o) => o,
                Err(e) => panic!("encoding: {e}"),
            };
            ms.push(start.elapsed().as_secs_f64() * 1e3);
            bytes = out.len();
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "mvt {name} {} features: median {:.2} ms, min {:.2} ms, {} bytes",
            t.num_rows(),
            ms[RUNS / 2],
            ms[0],
            bytes
        );
    }
}

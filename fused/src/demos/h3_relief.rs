//! The `h3_relief` demo: a synthetic relief raster over the Alps (0.01° pixels), ingested
//! into H3 by `fused_h3` when the server starts, and shown on tiles as hexagons — read with
//! [`fused_h3::read_h3_dataset`] from the overview or the chunks that meet the tile, at a
//! resolution fitting the zoom.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BinaryBuilder, Float64Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, UInt64Type};
use arrow::record_batch::RecordBatch;
use fused_core::{Bounds, Crs, Output, RunContext, Table, Udf, UdfError};
use fused_h3::{Georef, Metric, Query, read_h3_dataset, run_ingest_raster_to_h3, write_f32};
use h3o::{CellIndex, Resolution};
use serde::{Deserialize, Serialize};

/// The dataset's resolution; overviews cover 3 to 6.
const RES: u8 = 7;
/// The raster: 10° × 5° from (5°E, 48°N), 0.01° pixels.
const WIDTH: u32 = 1000;
const HEIGHT: u32 = 500;
const GEOREF: Georef = Georef {
    x0: 5.0,
    y0: 48.0,
    pixel: 0.01,
    epsg: 4326,
};
const NODATA: f32 = -9999.0;

/// Heights of a made-up range: two massifs, ridges, and a sea (nodata) in the south-east.
fn relief(lon: f64, lat: f64) -> f32 {
    if lat < 44.0 && lon > 8.0 {
        return NODATA;
    }
    let peak = |x: f64, y: f64, h: f64, sx: f64, sy: f64| {
        h * (-((lon - x).powi(2) / sx + (lat - y).powi(2) / sy)).exp()
    };
    let h = 400.0
        + peak(7.5, 46.0, 3200.0, 1.5, 0.6)
        + peak(11.0, 46.8, 2600.0, 2.0, 0.4)
        + 300.0 * (lon * 3.0).sin() * (lat * 4.0).cos();
    h.max(0.0) as f32
}

/// Builds the demo dataset under `data_dir` unless it is there; its folder.
pub async fn prepare(data_dir: &Path) -> fused_core::Result<PathBuf> {
    let out = data_dir.join("demo").join("h3-relief");
    if out.join("_sample").exists() {
        return Ok(out);
    }
    std::fs::create_dir_all(data_dir.join("tmp"))?;
    let tmp = tempfile::tempdir_in(data_dir.join("tmp"))?;
    let tif = tmp.path().join("relief.tif");
    let values: Vec<f32> = (0..HEIGHT)
        .flat_map(|r| {
            (0..WIDTH).map(move |c| {
                let lon = GEOREF.x0 + (f64::from(c) + 0.5) * GEOREF.pixel;
                let lat = GEOREF.y0 - (f64::from(r) + 0.5) * GEOREF.pixel;
                relief(lon, lat)
            })
        })
        .collect();
    write_f32(&tif, GEOREF, (WIDTH, HEIGHT), Some(NODATA), &values)?;
    run_ingest_raster_to_h3(vec![tif], &out)
        .metrics(vec![Metric::Avg, Metric::Min, Metric::Max])
        .res(RES)
        .k_ring(0)
        .res_offset(0)
        .overwrite(true)
        .run_local()
        .await?;
    Ok(out)
}

/// Which statistic colours the hexagons.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    /// Mean height of the cell's pixels.
    #[default]
    Avg,
    /// Lowest pixel.
    Min,
    /// Highest pixel.
    Max,
}

/// Parameters of `h3_relief`.
#[derive(Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct H3ReliefParams {
    /// The area to show (a tile call sets it to the tile's box).
    pub bounds: Option<Bounds>,
    /// The H3 resolution, 3 to 7 (by default, from the tile's size).
    #[schemars(range(min = 3, max = 7))]
    pub res: Option<u8>,
    /// The statistic given as `value`.
    pub statistic: Statistic,
}

/// The resolution whose hexagons are about a 40th of the box's width (3 to [`RES`]).
fn res_for(b: &Bounds) -> u8 {
    let mid = (b.south + b.north) / 2.0;
    let width_m = b.width() * 111_320.0 * mid.to_radians().cos().abs().max(0.01);
    (3..=RES)
        .rev()
        .find(|r| {
            Resolution::try_from(*r).is_ok_and(|res| res.edge_length_m() * 2.0 >= width_m / 40.0)
        })
        .unwrap_or(3)
}

fn wkb_cell(cell: CellIndex) -> Vec<u8> {
    let mut ring: Vec<(f64, f64)> = cell.boundary().iter().map(|v| (v.lng(), v.lat())).collect();
    if let Some(first) = ring.first().copied() {
        ring.push(first);
    }
    let poly = geo_types::Polygon::new(geo_types::LineString::from(ring), vec![]);
    let mut buf = Vec::with_capacity(16 + 16 * 8);
    // Writing to a Vec cannot fail.
    let _ = wkb::writer::write_geometry(&mut buf, &poly, &Default::default());
    buf
}

/// The hexagons of `dataset` meeting the box: `hex`, `value`, `cnt` and their outline.
fn hexagons(dataset: &Path, b: &Bounds, res: u8, stat: Statistic) -> Result<Table, UdfError> {
    let query = Query::Bbox([b.west, b.south, b.east, b.north]);
    let batch = read_h3_dataset(dataset, &query, Some(res))
        .map_err(|e| UdfError::new("ValueError", e.to_string()))?;
    let column = match stat {
        Statistic::Avg => "data_avg",
        Statistic::Min => "data_min",
        Statistic::Max => "data_max",
    };
    let missing = |c: &str| UdfError::new("KeyError", format!("the dataset has no {c} column"));
    let hex = batch
        .column_by_name("hex")
        .ok_or_else(|| missing("hex"))?
        .as_primitive::<UInt64Type>()
        .clone();
    let value = batch
        .column_by_name(column)
        .ok_or_else(|| missing(column))?
        .as_primitive::<Float64Type>()
        .clone();
    let mut geoms = BinaryBuilder::new();
    for h in hex.values() {
        match CellIndex::try_from(*h) {
            Ok(c) => geoms.append_value(wkb_cell(c)),
            Err(_) => geoms.append_null(),
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("hex", DataType::UInt64, false),
        Field::new("value", DataType::Float64, true),
        Field::new("geometry", DataType::Binary, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(hex)),
        Arc::new(Float64Array::from(value)),
        Arc::new(geoms.finish()),
    ];
    RecordBatch::try_new(schema, cols)
        .map_err(fused_core::Error::from)
        .and_then(|b| Table::from_batch(b).with_geometry("geometry", Crs::WGS84))
        .map_err(|e| UdfError::new("ArrowError", e.to_string()))
}

/// `h3_relief`: the demo dataset at `dataset` as hexagons on tiles.
pub fn udf(dataset: PathBuf) -> Udf {
    Udf::native("h3_relief", move |ctx: RunContext, p: H3ReliefParams| {
        let dataset = dataset.clone();
        async move {
            let b = p.bounds.unwrap_or(Bounds {
                west: GEOREF.x0,
                south: GEOREF.y0 - f64::from(HEIGHT) * GEOREF.pixel,
                east: GEOREF.x0 + f64::from(WIDTH) * GEOREF.pixel,
                north: GEOREF.y0,
            });
            let res = p.res.unwrap_or_else(|| res_for(&b));
            if !(3..=RES).contains(&res) {
                return Err(UdfError::value(format!(
                    "res must be 3 to {RES}, got {res}"
                )));
            }
            let stat = p.statistic;
            let table = tokio::task::spawn_blocking(move || hexagons(&dataset, &b, res, stat))
                .await
                .map_err(|e| UdfError::new("RuntimeError", e.to_string()))??;
            ctx.print(format!("{} hexagons at res {res}", table.num_rows()));
            Ok(Output::Table(table))
        }
    })
    .with_description(
        "A relief raster ingested into H3, as hexagons on tiles (an H3 dataset demo).",
    )
}

//! The demo UDFs `fused serve` starts with.
//!
//! - `hello`: a `name` → a one-row table.
//! - `vector_tile`: a grid of square cells covering the tile, with attributes.
//! - `raster_tile`: an RGB image computed from the tile's lon/lat.
//! - `h3_relief`: a raster ingested into H3, shown as hexagons (needs a data folder: see
//!   [`register_with_data`]).

pub mod h3_relief;

use std::sync::Arc;

use std::fmt::Write;

use arrow::array::{
    ArrayRef, BinaryBuilder, Float64Array, Int64Array, StringArray, StringBuilder, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use fused_core::{
    Bounds, Crs, Output, Raster, RasterData, RunContext, Table, Udf, UdfError, UdfRegistry,
};
use serde::{Deserialize, Serialize};

/// The whole Web Mercator world, for file calls that give no bounds.
fn world() -> Bounds {
    fused_core::Tile { x: 0, y: 0, z: 0 }.bounds()
}

/// Parameters of `hello`.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct HelloParams {
    /// Who to greet.
    pub name: String,
}

impl Default for HelloParams {
    fn default() -> Self {
        Self {
            name: "world".into(),
        }
    }
}

/// `hello`: a one-row table `{message, name, length}`; an empty name is a `ValueError`.
pub fn hello() -> Udf {
    Udf::native("hello", |ctx: RunContext, p: HelloParams| async move {
        if p.name.trim().is_empty() {
            return Err(UdfError::value("name must not be empty"));
        }
        ctx.print(format!("greeting {}", p.name));
        let schema = Arc::new(Schema::new(vec![
            Field::new("message", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("length", DataType::Int64, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![format!("Hello, {}!", p.name)])),
            Arc::new(StringArray::from(vec![p.name.clone()])),
            Arc::new(Int64Array::from(vec![p.name.chars().count() as i64])),
        ];
        let batch = RecordBatch::try_new(schema, cols)
            .map_err(|e| UdfError::new("ArrowError", e.to_string()))?;
        Ok(Output::Table(Table::from_batch(batch)))
    })
    .with_description("Says hello: a one-row table with a message for `name`.")
}

/// Parameters of `vector_tile`.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct VectorTileParams {
    /// The area to fill (a tile call sets it to the tile's box).
    pub bounds: Option<Bounds>,
    /// Cells per side: the tile gets `cells × cells` square polygons.
    #[schemars(range(min = 1, max = 100))]
    pub cells: u32,
    /// Scales the `value` attribute.
    pub scale: f64,
}

impl Default for VectorTileParams {
    fn default() -> Self {
        Self {
            bounds: None,
            cells: 4,
            scale: 1.0,
        }
    }
}

fn wkb_polygon(w: f64, s: f64, e: f64, n: f64) -> Vec<u8> {
    let ring = geo_types::LineString::from(vec![(w, s), (e, s), (e, n), (w, n), (w, s)]);
    let poly = geo_types::Polygon::new(ring, vec![]);
    let mut buf = Vec::with_capacity(93);
    // Writing to a Vec cannot fail.
    let _ = wkb::writer::write_geometry(&mut buf, &poly, &Default::default());
    buf
}

/// `vector_tile`: `cells × cells` square polygons covering `bounds`, with `id`, `row`, `col`,
/// `value` (a smooth function of the cell centre, times `scale`) and `label` (`r<row>c<col>`).
pub fn vector_tile() -> Udf {
    Udf::native(
        "vector_tile",
        |ctx: RunContext, p: VectorTileParams| async move {
            let b = p.bounds.unwrap_or_else(world);
            let n = p.cells as usize;
            let (dx, dy) = (b.width() / n as f64, b.height() / n as f64);
            let mut ids = Vec::with_capacity(n * n);
            let (mut rows, mut cols) = (Vec::with_capacity(n * n), Vec::with_capacity(n * n));
            let mut values = Vec::with_capacity(n * n);
            let mut labels = StringBuilder::with_capacity(n * n, n * n * 6);
            let mut geoms = BinaryBuilder::new();
            for r in 0..n {
                for c in 0..n {
                    let (w, nn) = (b.west + c as f64 * dx, b.north - r as f64 * dy);
                    let (e, s) = (
                        if c + 1 == n { b.east } else { w + dx },
                        if r + 1 == n { b.south } else { nn - dy },
                    );
                    let (cx, cy) = ((w + e) / 2.0, (s + nn) / 2.0);
                    ids.push((r * n + c) as i64);
                    rows.push(r as u32);
                    cols.push(c as u32);
                    values.push(
                        p.scale * ((cx.to_radians() * 3.0).sin() + (cy.to_radians() * 5.0).cos()),
                    );
                    let _ = write!(labels, "r{r}c{c}");
                    labels.append_value("");
                    geoms.append_value(wkb_polygon(w, s, e, nn));
                }
            }
            ctx.print(format!("{} cells", n * n));
            let schema = Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("row", DataType::UInt32, false),
                Field::new("col", DataType::UInt32, false),
                Field::new("value", DataType::Float64, false),
                Field::new("label", DataType::Utf8, false),
                Field::new("geometry", DataType::Binary, true),
            ]));
            let arrays: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(UInt32Array::from(rows)),
                Arc::new(UInt32Array::from(cols)),
                Arc::new(Float64Array::from(values)),
                Arc::new(labels.finish()),
                Arc::new(geoms.finish()),
            ];
            let table = RecordBatch::try_new(schema, arrays)
                .map_err(fused_core::Error::from)
                .and_then(|batch| Table::from_batch(batch).with_geometry("geometry", Crs::WGS84))
                .map_err(|e| UdfError::new("ArrowError", e.to_string()))?;
            Ok::<_, UdfError>(Output::Table(table))
        },
    )
    .with_description(
        "A grid of square cells covering the tile, with attributes (a vector tile demo).",
    )
}

/// Parameters of `raster_tile`.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct RasterTileParams {
    /// The area to draw (a tile call sets it to the tile's box).
    pub bounds: Option<Bounds>,
    /// Width and height of the image, in pixels.
    #[schemars(range(min = 1, max = 2048))]
    pub size: u32,
}

impl Default for RasterTileParams {
    fn default() -> Self {
        Self {
            bounds: None,
            size: 256,
        }
    }
}

/// `raster_tile`: a `size × size` RGB image whose colours follow longitude (red), latitude
/// (green) and a 10° graticule (blue), so neighbouring tiles join seamlessly.
pub fn raster_tile() -> Udf {
    Udf::native(
        "raster_tile",
        |_ctx: RunContext, p: RasterTileParams| async move {
            let b = p.bounds.unwrap_or_else(world);
            let n = p.size as usize;
            let mut data = vec![0u8; 3 * n * n];
            for row in 0..n {
                // Rows are evenly spaced in Web Mercator y, as tiles are.
                let t = (row as f64 + 0.5) / n as f64;
                let [_, miny, _, maxy] = b.to_mercator();
                let (_, lat) = fused_core::tile::mercator_to_lonlat(0.0, maxy - t * (maxy - miny));
                for col in 0..n {
                    let lon = b.west + (col as f64 + 0.5) / n as f64 * b.width();
                    let i = row * n + col;
                    data[i] = ((lon + 180.0) / 360.0 * 255.0).round() as u8;
                    data[n * n + i] = ((lat + 90.0) / 180.0 * 255.0).round() as u8;
                    let grid = (lon.rem_euclid(10.0)).min(lat.rem_euclid(10.0));
                    data[2 * n * n + i] = if grid < b.width() / n as f64 * 1.5 {
                        255
                    } else {
                        96
                    };
                }
            }
            let raster = Raster::new(3, n, n, RasterData::U8(data))
                .map_err(|e| UdfError::new("ValueError", e.to_string()))?
                .with_bounds(b);
            Ok::<_, UdfError>(Output::Raster(raster))
        },
    )
    .with_description(
        "An RGB image computed from the tile's longitude and latitude (a raster tile demo).",
    )
}

/// Every demo UDF.
pub fn all() -> Vec<Udf> {
    vec![hello(), vector_tile(), raster_tile()]
}

/// Registers every demo UDF in `registry`.
pub fn register(registry: &UdfRegistry) -> fused_core::Result<()> {
    for u in all() {
        registry.register(u)?;
    }
    Ok(())
}

/// Registers every demo UDF, and `h3_relief` with its dataset built under `data_dir` (once;
/// when that fails the server starts without it, and says why).
pub async fn register_with_data(
    registry: &UdfRegistry,
    data_dir: &std::path::Path,
) -> fused_core::Result<()> {
    register(registry)?;
    match h3_relief::prepare(data_dir).await {
        Ok(dataset) => registry.register(h3_relief::udf(dataset)).map(|_| ()),
        Err(e) => {
            tracing::warn!("the h3_relief demo is left out: its dataset could not be built: {e}");
            Ok(())
        }
    }
}

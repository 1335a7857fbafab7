//! Mapbox Vector Tiles (spec 2.1): a table's rows as the features of one layer, projected into
//! a tile, clipped to it with a buffer, simplified to its grid, attributes kept.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{BinaryArray, Int64Array};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use arrow::record_batch::RecordBatch;
//! use fused_core::{Crs, Table, Tile};
//! use fused_core::encode::mvt::{MvtOptions, encode_mvt};
//!
//! // POINT(10 20) as WKB.
//! let mut wkb = vec![1u8, 1, 0, 0, 0];
//! wkb.extend(10f64.to_le_bytes());
//! wkb.extend(20f64.to_le_bytes());
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("id", DataType::Int64, false),
//!     Field::new("geometry", DataType::Binary, true),
//! ]));
//! let batch = RecordBatch::try_new(schema, vec![
//!     Arc::new(Int64Array::from(vec![7])),
//!     Arc::new(BinaryArray::from(vec![Some(wkb.as_slice())])),
//! ]).unwrap();
//! let table = Table::from_batch(batch).with_geometry("geometry", Crs::WGS84).unwrap();
//! let tile = Tile::containing(10.0, 20.0, 5).unwrap();
//! let mvt = encode_mvt(&table, tile, &MvtOptions::new("points")).unwrap();
//! assert!(!mvt.is_empty());
//! // Nothing of it falls in the tile next door.
//! let east = Tile::new(u64::from(tile.x) + 1, u64::from(tile.y), 5).unwrap();
//! assert!(encode_mvt(&table, east, &MvtOptions::new("points")).unwrap().is_empty());
//! ```

mod attrs;
mod clip;
mod geometry;
mod pbf;

use arrow::util::display::FormatOptions;

use crate::error::{Error, Result};
use crate::geom::read_wkb;
use crate::output::{Crs, Table};
use crate::proj::Projection;
use crate::tile::Tile;
use attrs::{AttributeTables, Column};
use geometry::{GeomType, GeometryEncoder, TileTransform};

/// The MIME type of a Mapbox Vector Tile.
pub const CONTENT_TYPE: &str = "application/vnd.mapbox-vector-tile";

/// How tiles are encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct MvtOptions {
    /// The layer's name (map styles select it as `source-layer`).
    pub layer: String,
    /// Grid cells across the tile (4096, as most tiles use).
    pub extent: u32,
    /// Cells kept around the tile, so lines and fills join seamlessly across tiles.
    pub buffer: u32,
    /// Largest distance, in grid cells, simplification may move a line.
    pub tolerance: f64,
    /// Most rows a tile may be made from: more is refused with an error saying so (a tile
    /// of millions of features is megabytes no map client draws quickly).
    pub max_features: usize,
    /// Most geometry bytes (WKB) a tile may be made from, for the same reason.
    pub max_geometry_bytes: usize,
}

impl MvtOptions {
    /// The defaults for a layer: extent 4096, buffer 64, tolerance 1 cell, 200 000 features,
    /// 256 MiB of geometries.
    pub fn new(layer: impl Into<String>) -> Self {
        Self {
            layer: layer.into(),
            extent: 4096,
            buffer: 64,
            tolerance: 1.0,
            max_features: 200_000,
            max_geometry_bytes: 256 << 20,
        }
    }
}

/// The projection of geometries in `crs` to lon/lat, when vector tiles can be made from them.
fn projection(crs: &Crs) -> Option<Projection> {
    match crs {
        Crs::Epsg(code) => Projection::from_epsg(*code),
        // OGC's lon/lat, as pyproj names EPSG:4326 with the axes in GeoJSON's order.
        Crs::Other(s) if s.trim().eq_ignore_ascii_case("OGC:CRS84") => Some(Projection::LonLat),
        Crs::Other(_) => None,
    }
}

/// True when [`encode_mvt`] can draw `table`'s geometries: it has a geometry column in a CRS
/// it projects.
pub fn supports(table: &Table) -> bool {
    table
        .geometry()
        .is_some_and(|g| projection(&g.crs).is_some())
}

/// The attributes a vector tile of `table` carries, with their TileJSON types (`Number`,
/// `Boolean` or `String`; other types are written as text).
pub fn field_types(table: &Table) -> Vec<(String, &'static str)> {
    let geom = table.geometry_index();
    let mut seen = std::collections::HashSet::new();
    table
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, f)| Some(*i) != geom && seen.insert(f.name().clone()))
        .map(|(_, f)| (f.name().clone(), attrs::tile_type(f.data_type())))
        .collect()
}

/// Encodes `table` as the one layer of vector tile `tile`. Rows without a geometry, and
/// geometries outside the tile (or smaller than one grid cell), are left out; a tile with no
/// feature left is empty (zero bytes, a valid tile). The geometry must be in lon/lat, Web
/// Mercator, or a CRS [`Projection`] knows; a table without a geometry column is refused.
pub fn encode_mvt(table: &Table, tile: Tile, options: &MvtOptions) -> Result<Vec<u8>> {
    let Some(geom) = table.geometry() else {
        return Err(Error::Encode(
            "a vector tile needs geometries, and the table has no geometry column".into(),
        ));
    };
    let proj = projection(&geom.crs).ok_or_else(|| {
        Error::Encode(format!(
            "vector tiles are made from lon/lat (EPSG:4326) or Web Mercator (EPSG:3857) \
             geometries, but these are in {}; reproject them first",
            geom.crs
        ))
    })?;
    if table.num_rows() > options.max_features {
        return Err(Error::Encode(format!(
            "the UDF returned {} rows for tile {tile}, more than the {} a vector tile is made \
             from here; filter or aggregate by zoom (the tile's bounds are a parameter)",
            table.num_rows(),
            options.max_features
        )));
    }
    if options.extent == 0 || options.extent > 1 << 16 {
        return Err(Error::Encode(format!(
            "a tile extent must be in 1..=65536, got {}",
            options.extent
        )));
    }
    let mut enc = GeometryEncoder::new(
        TileTransform::new(proj, tile, options.extent),
        options.extent,
        options.buffer.min(options.extent),
        options.tolerance,
    );
    let geometry_bytes = table.geometry_bytes();
    if geometry_bytes > options.max_geometry_bytes {
        return Err(Error::Encode(format!(
            "the UDF returned {} MiB of geometries for tile {tile}, more than the {} MiB a \
             vector tile is made from here; simplify or filter by zoom",
            geometry_bytes >> 20,
            options.max_geometry_bytes >> 20
        )));
    }
    let geom_index = table.geometry_index();
    let text_options = FormatOptions::default();
    let mut tables = AttributeTables::default();
    let mut layer = Vec::with_capacity(table.num_rows() * 32 + 64);
    pbf::uint(&mut layer, 15, 2); // version
    pbf::bytes(&mut layer, 1, options.layer.as_bytes());
    let mut features = 0usize;
    let mut tags: Vec<u32> = Vec::new();
    let mut feature: Vec<u8> = Vec::new();
    let schema = table.schema();
    let wkb = table.wkb_rows();
    // Attribute columns: all but the geometry; a name given twice is kept once (a feature
    // may not repeat a key).
    let mut seen = std::collections::HashSet::new();
    let attributes: Vec<usize> = (0..schema.fields().len())
        .filter(|i| Some(*i) != geom_index && seen.insert(schema.field(*i).name()))
        .collect();
    let mut row = 0usize;
    for batch in table.batches() {
        let mut columns = attributes
            .iter()
            .map(|&i| Column::new(schema.field(i).name(), batch.column(i), &text_options))
            .collect::<Result<Vec<_>>>()?;
        for i in 0..batch.num_rows() {
            let bytes = wkb.get(row).copied().flatten();
            row += 1;
            let Some(bytes) = bytes else { continue };
            let g = read_wkb(bytes).map_err(|e| Error::Encode(format!("row {}: {e}", row - 1)))?;
            enc.encode(&g);
            let mut tagged = false;
            for (kind, cmds) in [
                (GeomType::Point, &enc.points.cmds),
                (GeomType::LineString, &enc.lines.cmds),
                (GeomType::Polygon, &enc.polygons.cmds),
            ] {
                if cmds.is_empty() {
                    continue;
                }
                if !tagged {
                    tags.clear();
                    for c in &mut columns {
                        c.tag(i, &mut tables, &mut tags);
                    }
                    tagged = true;
                }
                feature.clear();
                pbf::packed(&mut feature, 2, &tags);
                pbf::uint(&mut feature, 3, kind as u64);
                pbf::packed(&mut feature, 4, cmds);
                pbf::bytes(&mut layer, 2, &feature);
                features += 1;
            }
        }
    }
    if features == 0 {
        return Ok(Vec::new());
    }
    tables.write(&mut layer);
    pbf::uint(&mut layer, 5, u64::from(options.extent));
    let mut tile_buf = Vec::with_capacity(layer.len() + 8);
    pbf::bytes(&mut tile_buf, 3, &layer);
    Ok(tile_buf)
}

#[cfg(test)]
mod tests;

//! GeoJSON FeatureCollections from tables.

use serde_json::{Map, Value, json};

use crate::encode::tabular::records;
use crate::error::{Error, Result};
use crate::geom::{read_wkb, to_geojson};
use crate::output::{Crs, Table};

/// The table as a GeoJSON FeatureCollection: the geometry column becomes each feature's
/// geometry (null when the table has none), every other column a property.
///
/// GeoJSON is lon/lat (EPSG:4326); a table in another CRS is refused rather than mislabelled.
pub fn table_to_geojson(table: &Table) -> Result<Value> {
    if let Some(g) = table.geometry()
        && g.crs != Crs::WGS84
    {
        return Err(Error::Encode(format!(
            "GeoJSON is lon/lat (EPSG:4326), but the geometry is in {}; reproject first or use parquet",
            g.crs
        )));
    }
    let geoms = table.wkb_rows();
    let props = records(table, true)?;
    let mut features = Vec::with_capacity(props.len());
    for (row, p) in props.into_iter().enumerate() {
        let geometry = match geoms.get(row).copied().flatten() {
            Some(wkb) => {
                to_geojson(&read_wkb(wkb).map_err(|e| Error::Encode(format!("row {row}: {e}")))?)
            }
            None => Value::Null,
        };
        let properties = match p {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        features.push(json!({"type": "Feature", "properties": properties, "geometry": geometry}));
    }
    Ok(json!({"type": "FeatureCollection", "features": features}))
}

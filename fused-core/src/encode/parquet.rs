//! GeoParquet 1.1 encoding (WKB geometry, `geo` metadata) and decoding.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::geom::{BBox, read_wkb, type_name};
use crate::output::{Crs, GeometryColumn, Table};

const EPSG_4326: &str = include_str!("crs/epsg4326.json");
const EPSG_3857: &str = include_str!("crs/epsg3857.json");

/// The PROJJSON of a CRS, for GeoParquet's `crs` field.
fn projjson(crs: &Crs) -> Result<Value> {
    let text = match crs {
        Crs::Epsg(4326) => EPSG_4326,
        Crs::Epsg(3857) => EPSG_3857,
        Crs::Other(s) if s.trim_start().starts_with('{') => s.as_str(),
        other => {
            return Err(Error::Encode(format!(
                "GeoParquet needs the PROJJSON of {other}; built in are EPSG:4326 and EPSG:3857 \
                 (give the PROJJSON text as the CRS, or reproject)"
            )));
        }
    };
    Ok(serde_json::from_str(text)?)
}

/// The CRS a PROJJSON object names, read from its `id`.
fn crs_of_projjson(v: &Value) -> Crs {
    match (
        v.pointer("/id/authority").and_then(Value::as_str),
        v.pointer("/id/code").and_then(Value::as_u64),
    ) {
        (Some("EPSG"), Some(code)) => Crs::Epsg(code as u32),
        _ => Crs::Other(v.to_string()),
    }
}

/// The GeoParquet `geo` metadata of a table's geometry column.
pub(crate) fn geo_metadata(table: &Table, g: &GeometryColumn) -> Result<Value> {
    let mut bbox = BBox(None);
    let mut types: Vec<&'static str> = Vec::new();
    for (row, wkb) in table.wkb_rows().into_iter().enumerate() {
        let Some(wkb) = wkb else { continue };
        let geom = read_wkb(wkb).map_err(|e| Error::Encode(format!("row {row}: {e}")))?;
        bbox.add_geometry(&geom);
        let t = type_name(&geom);
        if !types.contains(&t) {
            types.push(t);
        }
    }
    types.sort_unstable();
    let mut col = json!({"encoding": "WKB", "geometry_types": types});
    if let Some(b) = bbox.0 {
        col["bbox"] = json!(b);
    }
    col["crs"] = projjson(&g.crs)?;
    Ok(json!({
        "version": "1.1.0",
        "primary_column": g.name,
        "columns": { g.name.clone(): col },
    }))
}

/// Writes the table as Parquet (GeoParquet when it has a geometry column), Snappy-compressed.
///
/// The `geo` key is written twice, as GeoParquet readers differ in where they look: as a
/// Parquet key-value pair (the spec's place; the SDK and DuckDB read it there) and in the
/// embedded Arrow schema's metadata (pyarrow's `read_table().schema.metadata`).
pub fn encode_parquet(table: &Table) -> Result<Vec<u8>> {
    let mut schema = Arc::clone(table.schema());
    let mut kv = Vec::new();
    if let Some(g) = table.geometry() {
        let geo = geo_metadata(table, g)?.to_string();
        let mut md = schema.metadata().clone();
        md.insert("geo".to_owned(), geo.clone());
        schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), md));
        kv.push(KeyValue::new("geo".to_owned(), geo));
    }
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(kv))
        .build();
    let mut buf = Vec::with_capacity(4096);
    let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(&schema), Some(props))?;
    for b in table.batches() {
        w.write(&RecordBatch::try_new(
            Arc::clone(&schema),
            b.columns().to_vec(),
        )?)?;
    }
    w.close()?;
    Ok(buf)
}

/// Reads a Parquet file into a table, restoring the geometry column from GeoParquet metadata.
pub fn decode_parquet(body: Bytes) -> Result<Table> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(body)?;
    let geo = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == "geo"))
        .and_then(|k| k.value.as_deref())
        .and_then(|v| serde_json::from_str::<Value>(v).ok());
    let mut md = builder.schema().metadata().clone();
    md.remove("geo");
    let schema: SchemaRef = Arc::new(Schema::new_with_metadata(
        builder.schema().fields().clone(),
        md,
    ));
    let batches = builder
        .build()?
        .map(|b| b.and_then(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec())))
        .collect::<Result<Vec<_>, _>>()?;
    let geometry = geo.and_then(|g| {
        let name = g.get("primary_column")?.as_str()?.to_owned();
        let crs = g
            .pointer(&format!("/columns/{name}/crs"))
            .filter(|c| !c.is_null())
            .map(crs_of_projjson)
            .unwrap_or(Crs::WGS84);
        Some(GeometryColumn { name, crs })
    });
    Ok(Table::from_parts(schema, batches, geometry))
}

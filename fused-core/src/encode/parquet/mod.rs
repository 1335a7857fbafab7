//! GeoParquet 1.1 encoding (WKB geometry, `geo` metadata) and decoding.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde_json::{Value, json};

use geo_traits::{Dimensions, GeometryTrait};

use crate::error::{Error, Result};
use crate::geom::{BBox, read_wkb, type_name};
use crate::output::{Crs, GeometryColumn, Table};

mod flat;
mod thrift;

const EPSG_4326: &str = include_str!("crs/epsg4326.json");
const EPSG_3857: &str = include_str!("crs/epsg3857.json");

/// The PROJJSON text of a CRS, for GeoParquet's `crs` field.
pub fn projjson(crs: &Crs) -> Result<&str> {
    match crs {
        Crs::Epsg(4326) => Ok(EPSG_4326),
        Crs::Epsg(3857) => Ok(EPSG_3857),
        Crs::Other(s) if s.trim_start().starts_with('{') => Ok(s.as_str()),
        other => Err(Error::Encode(format!(
            "GeoParquet needs the PROJJSON of {other}; built in are EPSG:4326 and EPSG:3857 \
             (give the PROJJSON text as the CRS, or reproject)"
        ))),
    }
}

/// The CRS a PROJJSON object names, read from its `id`.
fn crs_of_projjson(v: &Value) -> Crs {
    match (
        v.pointer("/id/authority").and_then(Value::as_str),
        v.pointer("/id/code").and_then(Value::as_u64),
    ) {
        (Some("EPSG"), Some(code)) if u32::try_from(code).is_ok() => Crs::Epsg(code as u32),
        _ => Crs::Other(v.to_string()),
    }
}

/// The GeoParquet `geo` metadata (JSON text) of a table's geometry column.
pub(crate) fn geo_metadata(table: &Table, g: &GeometryColumn) -> Result<String> {
    let mut bbox = BBox(None);
    let mut types: Vec<String> = Vec::new();
    for (row, wkb) in table.wkb_rows().into_iter().enumerate() {
        let Some(wkb) = wkb else { continue };
        let geom = read_wkb(wkb).map_err(|e| Error::Encode(format!("row {row}: {e}")))?;
        bbox.add_geometry(&geom);
        // GeoParquet names 3D types with a " Z" suffix ("Point Z").
        let z = matches!(geom.dim(), Dimensions::Xyz | Dimensions::Xyzm);
        let t = type_name(&geom);
        if !types
            .iter()
            .any(|have| have.strip_suffix(" Z").unwrap_or(have) == t && have.ends_with(" Z") == z)
        {
            types.push(if z { format!("{t} Z") } else { t.to_owned() });
        }
    }
    types.sort_unstable();
    let mut col = json!({"encoding": "WKB", "geometry_types": types});
    if let Some(b) = bbox.0 {
        col["bbox"] = json!(b);
    }
    // The CRS is spliced in as text: it is constant and large, so it is never re-parsed.
    let col = col.to_string();
    let col = format!("{},\"crs\":{}}}", &col[..col.len() - 1], projjson(&g.crs)?);
    let name = Value::String(g.name.clone()).to_string();
    Ok(format!(
        r#"{{"version":"1.1.0","primary_column":{name},"columns":{{{name}:{col}}}}}"#
    ))
}

/// Writer settings for responses, tuned for small tables answered many times a second: one
/// row group, no statistics or page index (a response is read whole; its extent is in the `geo`
/// bbox), no dictionary and no compression (for a tile their setup costs more than they save;
/// HTTP can compress), and no embedded Arrow schema (the Parquet types carry the columns, and
/// readers then take `geo` from the file metadata).
fn writer_options(kv: Vec<KeyValue>) -> ArrowWriterOptions {
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_offset_index_disabled(true)
        .set_key_value_metadata(Some(kv))
        .build();
    ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(true)
}

/// Writes the table as Parquet (GeoParquet 1.1 with a `geo` key when it has a geometry column).
///
/// Small flat tables of primitive columns (numbers, booleans, strings, binary — what tiles are
/// made of) take a lean writer of our own; anything else the general `parquet` writer, which
/// splits large columns into pages.
///
/// Every file carries at least one key-value entry (`fused:format`): the SDK 2.9.5 fails on a
/// file without key-value metadata (`b"geo" in None`).
pub fn encode_parquet(table: &Table) -> Result<Vec<u8>> {
    let geo = table
        .geometry()
        .map(|g| geo_metadata(table, g))
        .transpose()?;
    let mut kv = vec![("fused:format".to_owned(), "table".to_owned())];
    kv.extend(geo.map(|g| ("geo".to_owned(), g)));
    if flat::supports(table.schema()) && flat::fits(table.batches()) {
        return Ok(flat::write(
            table.schema(),
            table.batches(),
            &kv,
            CREATED_BY,
        ));
    }
    encode_parquet_general(table, kv)
}

/// What our files say wrote them.
const CREATED_BY: &str = concat!("fused-rs version ", env!("CARGO_PKG_VERSION"));

/// Writes the table with the general `parquet` writer.
fn encode_parquet_general(table: &Table, kv: Vec<(String, String)>) -> Result<Vec<u8>> {
    let kv: Vec<KeyValue> = kv.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
    let mut buf = Vec::with_capacity(4096);
    let mut w = ArrowWriter::try_new_with_options(
        &mut buf,
        Arc::clone(table.schema()),
        writer_options(kv),
    )?;
    for b in table.batches() {
        w.write(b)?;
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
    // The primary column is taken only when it exists and holds WKB; a missing or null `crs`
    // means OGC:CRS84, that is lon/lat.
    let geometry = geo.and_then(|g| {
        let name = g.get("primary_column")?.as_str()?.to_owned();
        let field = schema.field_with_name(&name).ok()?;
        if !matches!(field.data_type(), DataType::Binary | DataType::LargeBinary) {
            return None;
        }
        let crs = g
            .get("columns")
            .and_then(|c| c.get(&name))
            .and_then(|c| c.get("crs"))
            .filter(|c| !c.is_null())
            .map(crs_of_projjson)
            .unwrap_or(Crs::WGS84);
        Some(GeometryColumn { name, crs })
    });
    Ok(Table::from_parts(schema, batches, geometry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn table(crs: Crs) -> Table {
        crate::output::table::fixtures::points(&[1, 2], "geom", crs, true)
    }

    #[test]
    fn geoparquet_roundtrip_with_valid_geo_metadata() {
        let t = table(Crs::WGS84);
        let bytes = encode_parquet(&t).unwrap();
        let back = decode_parquet(bytes.into()).unwrap();
        assert_eq!(back.num_rows(), 2);
        assert_eq!(back.geometry(), t.geometry());
        assert_eq!(back.batches()[0].column(1), t.batches()[0].column(1));
        let geo: Value =
            serde_json::from_str(&geo_metadata(&t, t.geometry().unwrap()).unwrap()).unwrap();
        assert_eq!(geo["primary_column"], "geom");
        assert_eq!(geo["columns"]["geom"]["bbox"], json!([1.0, 2.0, 1.0, 2.0]));
        assert_eq!(geo["columns"]["geom"]["geometry_types"], json!(["Point"]));
        assert_eq!(geo["columns"]["geom"]["crs"]["id"]["code"], 4326);
    }

    #[test]
    fn three_dimensional_types_get_a_z_suffix() {
        let mut wkb3 = Vec::new();
        let p3 = wkt::Wkt::<f64>::from_str("POINT Z (1 2 3)").unwrap();
        wkb::writer::write_geometry(&mut wkb3, &p3, &Default::default()).unwrap();
        let schema = Arc::new(Schema::new(vec![arrow::datatypes::Field::new(
            "g",
            DataType::Binary,
            false,
        )]));
        let b = RecordBatch::try_new(
            schema,
            vec![Arc::new(arrow::array::BinaryArray::from(vec![
                wkb3.as_slice(),
            ]))],
        )
        .unwrap();
        let t = Table::from_batch(b).with_geometry("g", Crs::WGS84).unwrap();
        let geo: Value =
            serde_json::from_str(&geo_metadata(&t, t.geometry().unwrap()).unwrap()).unwrap();
        assert_eq!(geo["columns"]["g"]["geometry_types"], json!(["Point Z"]));
    }

    #[test]
    fn unknown_crs_is_refused_not_mislabelled() {
        let e = encode_parquet(&table(Crs::Epsg(32633)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("EPSG:32633"), "{e}");
        let ok = encode_parquet(&table(Crs::Epsg(3857))).unwrap();
        assert_eq!(
            decode_parquet(ok.into()).unwrap().geometry().unwrap().crs,
            Crs::Epsg(3857)
        );
    }
}

//! (Geo)Parquet inputs: one unit per row group; the geometry from the `geo` metadata, lon/lat
//! columns or a column named like a geometry.

use std::fs::File;
use std::path::Path;

use arrow::datatypes::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{GeomSpec, Opened, Unit, crs_from_text, detect_geometry};
use crate::error::{Error, Result};
use crate::options::IngestOptions;

/// Rows per decoded batch.
const BATCH_ROWS: usize = 64 * 1024;

pub(super) fn open(path: &Path, opts: &IngestOptions) -> Result<Opened> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::input(path, None, format!("not a readable Parquet file: {e}")))?;
    let meta = builder.metadata().clone();
    let schema = builder.schema().clone();
    let geo: Option<serde_json::Value> = meta
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == "geo"))
        .and_then(|k| k.value.as_deref())
        .and_then(|v| serde_json::from_str(v).ok());
    let names: Vec<(String, bool)> = schema
        .fields()
        .iter()
        .map(|f| {
            let binary = matches!(
                f.data_type(),
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            );
            (f.name().clone(), binary)
        })
        .collect();
    let mut crs = None;
    let geom = match (&opts.lonlat_cols, &geo) {
        (None, Some(geo)) => {
            let primary = geo["primary_column"]
                .as_str()
                .unwrap_or("geometry")
                .to_owned();
            let col = &geo["columns"][&primary];
            let encoding = col["encoding"].as_str().unwrap_or("WKB");
            if !encoding.eq_ignore_ascii_case("wkb") {
                return Err(Error::input(
                    path,
                    None,
                    format!("GeoParquet geometry encoding {encoding:?} is not supported (WKB is)"),
                ));
            }
            match &col["crs"] {
                serde_json::Value::Null => {}
                v => crs = Some(crs_from_text(&v.to_string())),
            }
            if !names.iter().any(|(n, _)| *n == primary) {
                return Err(Error::input(
                    path,
                    None,
                    format!("the geo metadata names a missing column {primary:?}"),
                ));
            }
            GeomSpec::Wkb(primary)
        }
        _ => detect_geometry(path, &names, opts)?,
    };
    // Columns to read: `load_columns` (checked) plus the geometry's.
    let mut keep: Option<Vec<usize>> = None;
    if let Some(load) = &opts.load_columns {
        let mut idx = Vec::new();
        for c in load.iter().map(String::as_str).chain(geom.columns()) {
            match schema.fields().iter().position(|f| f.name() == c) {
                Some(i) => idx.push(i),
                None => {
                    return Err(Error::input(
                        path,
                        None,
                        format!("load_columns names {c:?}, which is not a column of this file"),
                    ));
                }
            }
        }
        idx.sort_unstable();
        idx.dedup();
        keep = Some(idx);
    }
    let rows = meta.file_metadata().num_rows().max(0) as u64;
    let units = (0..meta.num_row_groups())
        .map(|rg| {
            let path = path.to_path_buf();
            let keep = keep.clone();
            let unit: Unit = Box::new(move || {
                let file = File::open(&path)
                    .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
                let b = ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| Error::input(&path, None, e))?;
                let mask = match &keep {
                    Some(k) => ProjectionMask::roots(b.parquet_schema(), k.iter().copied()),
                    None => ProjectionMask::all(),
                };
                let reader = b
                    .with_row_groups(vec![rg])
                    .with_projection(mask)
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| Error::input(&path, None, e))?;
                let p = path.clone();
                Ok(Box::new(reader.map(move |r| {
                    r.map_err(|e| Error::input(&p, None, format!("row group {rg}: {e}")))
                })) as super::BatchIter)
            });
            unit
        })
        .collect();
    Ok(Opened {
        file: path.to_path_buf(),
        geom,
        crs,
        units,
        rows: Some(rows),
    })
}

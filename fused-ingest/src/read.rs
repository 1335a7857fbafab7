//! Readers of partitioned tables: the chunk index ([`get_chunks_metadata`]), one chunk
//! ([`get_chunk_from_table`]), and a box query that opens only the chunks whose box meets it and
//! keeps only the rows whose geometry does ([`read_bbox`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::datatypes::{Float64Type, Int64Type};
use arrow::record_batch::RecordBatch;
use base64::Engine;
use bytes::Bytes;
use geo::Intersects;
use geo_traits::to_geo::ToGeoGeometry;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::geometry;
use crate::prepare::GEOMETRY;
use crate::write::{ChunkEntry, FORMAT_VERSION};

fn table_err(table: &Path, reason: impl Into<String>) -> Error {
    Error::Table {
        table: table.display().to_string(),
        reason: reason.into(),
    }
}

/// The chunk index of the table in `dir`, from its `_sample` (format 5; format 4 is
/// converted as the SDK does).
pub fn read_chunk_index(dir: &Path) -> Result<Vec<ChunkEntry>> {
    let path = dir.join("_sample");
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => table_err(
            dir,
            "no _sample: not an ingested table (or still being written)",
        ),
        _ => Error::io(format!("reading {}", path.display()), e),
    })?;
    chunk_index_of_sample(dir, Bytes::from(bytes))
}

/// The chunk index held by the bytes of a `_sample` file.
pub fn chunk_index_of_sample(table: &Path, sample: Bytes) -> Result<Vec<ChunkEntry>> {
    let b = ParquetRecordBatchReaderBuilder::try_new(sample)
        .map_err(|e| table_err(table, format!("_sample is not Parquet: {e}")))?;
    let kv: BTreeMap<String, String> = b
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|k| Some((k.key.clone(), k.value.clone()?)))
                .collect()
        })
        .unwrap_or_default();
    let version = kv
        .get("fused:format_version")
        .ok_or_else(|| table_err(table, "dataset does not have Fused metadata"))?;
    let encoded: String = kv
        .get("fused:_metadata")
        .ok_or_else(|| table_err(table, "no fused:_metadata in _sample"))?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| table_err(table, format!("fused:_metadata is not base64: {e}")))?;
    match version.as_str() {
        FORMAT_VERSION => {}
        "4" if raw.len() >= 40 => {
            raw.drain(20..40);
        }
        v => {
            return Err(table_err(
                table,
                format!("incompatible metadata version {v:?}"),
            ));
        }
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(raw))
        .and_then(|b| b.build())
        .map_err(|e| table_err(table, format!("the chunk index is not Parquet: {e}")))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| table_err(table, e.to_string()))?;
        let int = |name: &str| -> Result<ArrayRef> {
            let c = batch
                .column_by_name(name)
                .ok_or_else(|| table_err(table, format!("the chunk index has no {name}")))?;
            cast(c, &DataType::Int64).map_err(|e| table_err(table, e.to_string()))
        };
        let float = |name: &str| -> Result<ArrayRef> {
            let c = batch
                .column_by_name(name)
                .ok_or_else(|| table_err(table, format!("the chunk index has no {name}")))?;
            cast(c, &DataType::Float64).map_err(|e| table_err(table, e.to_string()))
        };
        let (f, c) = (int("file_id")?, int("chunk_id")?);
        let (f, c) = (f.as_primitive::<Int64Type>(), c.as_primitive::<Int64Type>());
        let boxes = ["bbox_minx", "bbox_miny", "bbox_maxx", "bbox_maxy"]
            .iter()
            .map(|n| float(n))
            .collect::<Result<Vec<_>>>()?;
        let rows = batch
            .column_by_name("num_rows")
            .and_then(|c| cast(c, &DataType::Int64).ok());
        for i in 0..batch.num_rows() {
            let v = |k: usize| boxes[k].as_primitive::<Float64Type>().value(i);
            out.push(ChunkEntry {
                file_id: f.value(i),
                chunk_id: c.value(i),
                bbox: [v(0), v(1), v(2), v(3)],
                num_rows: rows
                    .as_ref()
                    .map_or(0, |r| r.as_primitive::<Int64Type>().value(i).max(0) as u64),
            });
        }
    }
    Ok(out)
}

/// The chunk index as a table (`file_id`, `chunk_id`, `bbox_*`, `num_rows`, and `geometry`:
/// the chunk's box as a WKB polygon), like the SDK's `get_chunks_metadata`.
pub fn get_chunks_metadata(dir: &Path) -> Result<RecordBatch> {
    Ok(index_table(&read_chunk_index(dir)?))
}

/// The chunk index entries as a table.
pub fn index_table(index: &[ChunkEntry]) -> RecordBatch {
    let mut g = BinaryBuilder::new();
    for c in index {
        let [x0, y0, x1, y1] = c.bbox;
        let poly = geo_types::Polygon::new(
            geo_types::LineString::from(vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]),
            vec![],
        );
        let mut buf = Vec::new();
        match wkb::writer::write_geometry(&mut buf, &poly, &Default::default()) {
            Ok(()) => g.append_value(&buf),
            Err(_) => g.append_null(),
        }
    }
    let base = crate::write::index_batch(index);
    let mut fields: Vec<Field> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(GEOMETRY, DataType::Binary, true));
    let mut columns = base.columns().to_vec();
    columns.push(Arc::new(g.finish()));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .unwrap_or_else(|e| unreachable!("columns of one length: {e}"))
}

/// Reads row groups of `<dir>/<file_id>.parquet` (all when `chunks` is `None`), keeping
/// `columns` (all when `None`).
pub fn get_chunk_from_table(
    dir: &Path,
    file_id: i64,
    chunks: Option<&[usize]>,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>> {
    let path = dir.join(format!("{file_id}.parquet"));
    let file = File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => table_err(dir, format!("no file {file_id}.parquet")),
        _ => Error::io(format!("opening {}", path.display()), e),
    })?;
    let b = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| table_err(dir, format!("{file_id}.parquet: {e}")))?;
    let groups = b.metadata().num_row_groups();
    let mut b = b;
    if let Some(ch) = chunks {
        if let Some(bad) = ch.iter().find(|c| **c >= groups) {
            return Err(table_err(
                dir,
                format!("{file_id}.parquet has {groups} chunks, no chunk {bad}"),
            ));
        }
        b = b.with_row_groups(ch.to_vec());
    }
    if let Some(cols) = columns {
        let schema = b.schema().clone();
        let mut idx = Vec::new();
        for c in cols {
            idx.push(
                schema
                    .index_of(c)
                    .map_err(|_| table_err(dir, format!("no column {c:?}")))?,
            );
        }
        let mask = ProjectionMask::roots(b.parquet_schema(), idx);
        b = b.with_projection(mask);
    }
    b.build()
        .map_err(|e| table_err(dir, e.to_string()))?
        .map(|r| r.map_err(|e| table_err(dir, format!("{file_id}.parquet: {e}"))))
        .collect()
}

/// Whether two boxes meet.
fn boxes_meet(a: &[f64; 4], b: &[f64; 4]) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

/// The rows of the table in `dir` whose geometry intersects `bbox` (`[minx, miny, maxx,
/// maxy]` in lon/lat), reading only the chunks whose box meets it.
pub fn read_bbox(dir: &Path, bbox: [f64; 4], columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
    let index = read_chunk_index(dir)?;
    let mut by_file: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for c in index.iter().filter(|c| boxes_meet(&c.bbox, &bbox)) {
        by_file
            .entry(c.file_id)
            .or_default()
            .push(c.chunk_id as usize);
    }
    let cols: Option<Vec<&str>> = columns.map(|c| {
        let mut v = c.to_vec();
        if !v.contains(&GEOMETRY) {
            v.push(GEOMETRY);
        }
        v
    });
    let rect = geo_types::Rect::new(
        geo_types::coord! {x: bbox[0], y: bbox[1]},
        geo_types::coord! {x: bbox[2], y: bbox[3]},
    );
    let mut out = Vec::new();
    for (file_id, chunks) in by_file {
        for batch in get_chunk_from_table(dir, file_id, Some(&chunks), cols.as_deref())? {
            let g = batch
                .column_by_name(GEOMETRY)
                .ok_or_else(|| table_err(dir, "no geometry column"))?;
            let g = cast(g, &DataType::Binary)
                .map_err(|e| table_err(dir, format!("the geometry column is not WKB: {e}")))?;
            let g = g.as_binary::<i32>();
            let keep: BooleanArray = (0..g.len())
                .map(|i| Some(!g.is_null(i) && intersects(g.value(i), &bbox, &rect)))
                .collect();
            let mut b = filter_record_batch(&batch, &keep)?;
            if let Some(c) = columns
                && !c.contains(&GEOMETRY)
            {
                let i = b.schema().index_of(GEOMETRY)?;
                b.remove_column(i);
            }
            if b.num_rows() > 0 {
                out.push(b);
            }
        }
    }
    Ok(out)
}

fn intersects(wkb: &[u8], bbox: &[f64; 4], rect: &geo_types::Rect<f64>) -> bool {
    if let Some((x, y)) = geometry::wkb_point(wkb) {
        return x >= bbox[0] && x <= bbox[2] && y >= bbox[1] && y <= bbox[3];
    }
    let Ok(Some(m)) = geometry::measure(wkb) else {
        return false;
    };
    if !boxes_meet(&m.bbox, bbox) {
        return false;
    }
    // Inside the box entirely: no need for exact geometry.
    if m.bbox[0] >= bbox[0] && m.bbox[2] <= bbox[2] && m.bbox[1] >= bbox[1] && m.bbox[3] <= bbox[3]
    {
        return true;
    }
    match wkb::reader::read_wkb(wkb)
        .ok()
        .and_then(|g| g.try_to_geometry())
    {
        Some(g) => g.intersects(rect),
        None => false,
    }
}

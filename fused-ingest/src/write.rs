//! Writes a partitioned table: one Parquet file per partition with one row group per chunk,
//! GeoParquet 1.1 `geo` metadata (and the `bbox` covering column when asked), `fused:job_meta`,
//! and the `_sample` file holding the chunk index (`fused:format_version` 5, `fused:_metadata`).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Float64Builder, Int64Array, StructArray,
};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use base64::Engine;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::geometry;
use crate::prepare::GEOMETRY;

/// The name of the GeoParquet 1.1 covering column.
pub const COVERING: &str = "bbox";

/// The `_sample` format version readers check.
pub const FORMAT_VERSION: &str = "5";

/// One chunk of the index.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkEntry {
    /// The file (`<table>/<file_id>.parquet`).
    pub file_id: i64,
    /// The row group in that file.
    pub chunk_id: i64,
    /// Box of its geometries: `[minx, miny, maxx, maxy]`.
    pub bbox: [f64; 4],
    /// Its rows.
    pub num_rows: u64,
}

/// What a written file holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileSummary {
    pub chunks: Vec<ChunkEntry>,
    pub types: BTreeSet<String>,
}

/// How files are written.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    /// The schema of the input batches (geometry included).
    pub schema: SchemaRef,
    /// Add the `bbox` covering column.
    pub covering: bool,
    /// The `fused:job_meta` text.
    pub job_meta: String,
}

/// Rows of a chunk, as (batch, row) pairs into the prepared batches.
pub(crate) type ChunkRows = Vec<(usize, usize)>;

impl Writer {
    /// The schema of written files.
    pub(crate) fn file_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                if f.name() == GEOMETRY {
                    f.as_ref().clone().with_metadata(
                        [("ARROW:extension:name".to_owned(), "geoarrow.wkb".to_owned())].into(),
                    )
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        if self.covering {
            fields.push(Field::new(
                COVERING,
                DataType::Struct(covering_fields()),
                true,
            ));
        }
        Arc::new(Schema::new(fields))
    }

    fn properties(&self, kv: Vec<KeyValue>) -> WriterProperties {
        let geom = ColumnPath::from(GEOMETRY);
        // Dictionaries pay off for text (names, categories); numbers and geometries are
        // mostly distinct, and trying costs time.
        let mut b = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(None)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_dictionary_enabled(false)
            .set_column_statistics_enabled(geom, EnabledStatistics::None)
            .set_key_value_metadata(Some(kv))
            .set_created_by(CREATED_BY.to_owned());
        for f in self.schema.fields() {
            if matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                b = b.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), true);
            }
        }
        b.build()
    }

    /// Gathers a chunk's rows into one batch (covering column added when asked); returns it,
    /// its box and the geometry types seen.
    fn gather(
        &self,
        batches: &[RecordBatch],
        rows: &[(usize, usize)],
        types: &mut BTreeSet<String>,
    ) -> Result<(RecordBatch, [f64; 4])> {
        let schema = self.file_schema();
        let n = self.schema.fields().len();
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(n + 1);
        for c in 0..n {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            cols.push(interleave(&arrays, rows)?);
        }
        let gi = self
            .schema
            .index_of(GEOMETRY)
            .map_err(|e| Error::Encode(e.to_string()))?;
        let geoms = cols[gi].as_binary::<i32>();
        let mut bbox = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut cov: [Float64Builder; 4] = std::array::from_fn(|_| Float64Builder::new());
        let mut last_type = [0u8; 5];
        for i in 0..geoms.len() {
            let wkb = geoms.value(i);
            if wkb.len() >= 5 && wkb[..5] != last_type {
                last_type.copy_from_slice(&wkb[..5]);
                types.insert(type_name(wkb));
            }
            let b = match geometry::wkb_point(wkb) {
                Some((x, y)) => [x, y, x, y],
                None => match geometry::measure(wkb) {
                    Ok(Some(m)) => m.bbox,
                    _ => continue,
                },
            };
            bbox[0] = bbox[0].min(b[0]);
            bbox[1] = bbox[1].min(b[1]);
            bbox[2] = bbox[2].max(b[2]);
            bbox[3] = bbox[3].max(b[3]);
            if self.covering {
                for (k, v) in b.iter().enumerate() {
                    cov[k].append_value(*v);
                }
            }
        }
        if self.covering {
            let arrays: Vec<ArrayRef> = cov
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef)
                .collect();
            cols.push(Arc::new(StructArray::try_new(
                covering_fields(),
                arrays,
                None,
            )?));
        }
        let batch = RecordBatch::try_new_with_options(
            schema,
            cols,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?;
        Ok((batch, bbox))
    }

    /// Writes the file `path` (recorded in the index as `file_id`) with one row group per
    /// chunk.
    pub(crate) fn write_file(
        &self,
        path: &Path,
        file_id: i64,
        batches: &[RecordBatch],
        chunks: &[ChunkRows],
    ) -> Result<FileSummary> {
        let file =
            File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let mut summary = FileSummary::default();
        let mut w = parquet_writer(
            BufWriter::with_capacity(1 << 20, file),
            self.file_schema(),
            self.properties(vec![KeyValue::new(
                "fused:job_meta".to_owned(),
                self.job_meta.clone(),
            )]),
        )?;
        let mut file_bbox = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for (chunk_id, rows) in chunks.iter().enumerate() {
            let (batch, bbox) = self.gather(batches, rows, &mut summary.types)?;
            w.write(&batch)?;
            w.flush()?;
            for k in 0..2 {
                file_bbox[k] = file_bbox[k].min(bbox[k]);
                file_bbox[k + 2] = file_bbox[k + 2].max(bbox[k + 2]);
            }
            summary.chunks.push(ChunkEntry {
                file_id,
                chunk_id: chunk_id as i64,
                bbox,
                num_rows: rows.len() as u64,
            });
        }
        w.append_key_value_metadata(KeyValue::new(
            "geo".to_owned(),
            geo_metadata(&summary.types, file_bbox, self.covering)?,
        ));
        let out = w.into_inner()?;
        out.into_inner()
            .map_err(|e| Error::io(format!("writing {}", path.display()), e.into_error()))?
            .sync_all()
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(summary)
    }

    /// Writes `<dir>/_sample`: the first row of each chunk (up to 10,000) as its body, and
    /// the chunk index in its metadata.
    pub(crate) fn write_sample(
        &self,
        dir: &Path,
        batches: &[RecordBatch],
        firsts: &[(usize, usize)],
        index: &[ChunkEntry],
    ) -> Result<()> {
        let mut types = BTreeSet::new();
        let rows: Vec<(usize, usize)> = firsts.iter().copied().take(10_000).collect();
        let (batch, _) = self.gather(batches, &rows, &mut types)?;
        let table_bbox = index.iter().fold(
            [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ],
            |a, c| {
                [
                    a[0].min(c.bbox[0]),
                    a[1].min(c.bbox[1]),
                    a[2].max(c.bbox[2]),
                    a[3].max(c.bbox[3]),
                ]
            },
        );
        let mut kv = index_metadata(index)?;
        kv.extend([
            KeyValue::new("fused:job_meta".to_owned(), self.job_meta.clone()),
            KeyValue::new(
                "geo".to_owned(),
                geo_metadata(&types, table_bbox, self.covering)?,
            ),
        ]);
        let path = dir.join("_sample");
        let file = File::create(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let mut w = parquet_writer(file, self.file_schema(), self.properties(kv))?;
        w.write(&batch)?;
        w.close()?;
        Ok(())
    }
}

/// A Parquet writer without the embedded Arrow schema: readers (pyarrow, so geopandas and the
/// SDK) then take the file's key-value metadata (`geo`, `fused:*`) as the schema's metadata.
pub(crate) fn parquet_writer<W: std::io::Write + Send>(
    w: W,
    schema: SchemaRef,
    props: WriterProperties,
) -> Result<ArrowWriter<W>> {
    Ok(ArrowWriter::try_new_with_options(
        w,
        schema,
        parquet::arrow::arrow_writer::ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true),
    )?)
}

/// Writes a `_sample` file at `path` for a table without geometry (an H3 dataset): `sample`
/// as its body, the chunk index and `fused:job_meta` in its metadata.
pub fn write_plain_sample(
    path: &Path,
    sample: &RecordBatch,
    index: &[ChunkEntry],
    job_meta: &str,
) -> Result<()> {
    let mut kv = index_metadata(index)?;
    kv.push(KeyValue::new(
        "fused:job_meta".to_owned(),
        job_meta.to_owned(),
    ));
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(kv))
        .set_created_by(CREATED_BY.to_owned())
        .build();
    let file =
        File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let mut w = parquet_writer(file, sample.schema(), props)?;
    w.write(sample)?;
    w.close()?;
    Ok(())
}

/// What our files say wrote them.
const CREATED_BY: &str = concat!("fused-rs version ", env!("CARGO_PKG_VERSION"));

fn covering_fields() -> Fields {
    Fields::from(
        ["xmin", "ymin", "xmax", "ymax"]
            .map(|n| Field::new(n, DataType::Float64, false))
            .to_vec(),
    )
}

/// The GeoParquet 1.1 `geo` metadata of a file.
pub(crate) fn geo_metadata(
    types: &BTreeSet<String>,
    bbox: [f64; 4],
    covering: bool,
) -> Result<String> {
    let crs: Value = serde_json::from_str(
        fused_core::encode::projjson(&fused_core::output::Crs::WGS84)
            .map_err(|e| Error::Encode(e.to_string()))?,
    )
    .map_err(|e| Error::Encode(e.to_string()))?;
    let mut col = json!({
        "encoding": "WKB",
        "geometry_types": types.iter().collect::<Vec<_>>(),
        "crs": crs,
    });
    if bbox.iter().all(|v| v.is_finite()) {
        col["bbox"] = json!(bbox);
    }
    if covering {
        col["covering"] = json!({"bbox": {
            "xmin": [COVERING, "xmin"], "ymin": [COVERING, "ymin"],
            "xmax": [COVERING, "xmax"], "ymax": [COVERING, "ymax"],
        }});
    }
    Ok(json!({
        "version": "1.1.0",
        "primary_column": GEOMETRY,
        "columns": {GEOMETRY: col},
    })
    .to_string())
}

/// The GeoParquet name of a WKB geometry's type ("Point", "Polygon Z", …).
fn type_name(wkb: &[u8]) -> String {
    let raw = match wkb.first() {
        Some(0) => wkb
            .get(1..5)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        Some(_) => wkb
            .get(1..5)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        None => None,
    }
    .unwrap_or(0);
    let ewkb_z = raw & 0x8000_0000 != 0;
    let code = raw & 0x0fff_ffff;
    let (base, z) = (code % 1000, ewkb_z || matches!(code / 1000, 1 | 3));
    let name = match base {
        1 => "Point",
        2 => "LineString",
        3 => "Polygon",
        4 => "MultiPoint",
        5 => "MultiLineString",
        6 => "MultiPolygon",
        7 => "GeometryCollection",
        _ => "Unknown",
    };
    if z {
        format!("{name} Z")
    } else {
        name.to_owned()
    }
}

/// The chunk index as a table: `file_id`, `chunk_id`, `bbox_*`, `num_rows`.
pub(crate) fn index_batch(index: &[ChunkEntry]) -> RecordBatch {
    let f = |name: &str, t: DataType| Field::new(name, t, false);
    let schema = Arc::new(Schema::new(vec![
        f("file_id", DataType::Int64),
        f("chunk_id", DataType::Int64),
        f("bbox_minx", DataType::Float64),
        f("bbox_miny", DataType::Float64),
        f("bbox_maxx", DataType::Float64),
        f("bbox_maxy", DataType::Float64),
        f("num_rows", DataType::Int64),
    ]));
    let coord = |k: usize| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            index.iter().map(|c| c.bbox[k]),
        ))
    };
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(
                index.iter().map(|c| c.file_id),
            )),
            Arc::new(Int64Array::from_iter_values(
                index.iter().map(|c| c.chunk_id),
            )),
            coord(0),
            coord(1),
            coord(2),
            coord(3),
            Arc::new(Int64Array::from_iter_values(
                index.iter().map(|c| c.num_rows as i64),
            )),
        ],
    )
    .unwrap_or_else(|e| unreachable!("columns of one length: {e}"))
}

/// The key-value entries that make a `_sample` file an index: `fused:format_version` and
/// `fused:_metadata` (the chunk index as base64 Parquet).
pub(crate) fn index_metadata(index: &[ChunkEntry]) -> Result<Vec<KeyValue>> {
    Ok(vec![
        KeyValue::new("fused:format_version".to_owned(), FORMAT_VERSION.to_owned()),
        KeyValue::new(
            "fused:_metadata".to_owned(),
            base64::engine::general_purpose::STANDARD.encode(encode_index(index)?),
        ),
    ])
}

/// The chunk index as a Parquet file.
pub(crate) fn encode_index(index: &[ChunkEntry]) -> Result<Vec<u8>> {
    let batch = index_batch(index);
    let schema = batch.schema();
    let mut buf = Vec::new();
    let props = WriterProperties::builder()
        .set_created_by(CREATED_BY.to_owned())
        .build();
    let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props))?;
    w.write(&batch)?;
    w.close()?;
    Ok(buf)
}

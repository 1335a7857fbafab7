//! Writes an H3 dataset: `<output>/<file cell id>.parquet` (rows sorted by `hex`, one row
//! group per `chunk_res` cell or per `max_rows_per_chunk` rows), `overview/hex{r}.parquet`
//! (with `lat`/`lng` cell centres), and `_sample` with the chunk index (chunk boxes are the
//! extent of the chunk's cell boundaries).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, ListBuilder, StringBuilder, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use fused_ingest::ChunkEntry;
use h3o::{CellIndex, LatLng, Resolution};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};
use crate::extract::Stats;
use crate::options::Metric;

/// One output row's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    /// Statistics of a cell.
    Stats(Stats),
    /// A category of a cell: its value, hits, hits of all its categories, and sources.
    Count {
        /// The category (pixel value).
        data: f64,
        /// Hits of this value in the cell.
        cnt: u64,
        /// Hits of all values in the cell.
        cnt_total: u64,
        /// Sources.
        sources: u64,
    },
}

/// A row: a cell and its values.
pub(crate) type Row = (u64, Value);

/// How rows become columns.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The statistics to write (or `[Cnt]`).
    pub(crate) metrics: Vec<Metric>,
    /// Cells each pixel is counted in (the k-ring disk's size), for `sum`.
    pub(crate) disk: f64,
    /// The input URLs, for `source_url` (`None`: no such column).
    pub(crate) sources: Option<Vec<String>>,
    /// Add `lat`/`lng` cell centres (overviews).
    pub(crate) centres: bool,
}

impl Layout {
    /// The schema of written files.
    pub(crate) fn schema(&self) -> SchemaRef {
        let mut f = vec![Field::new("hex", DataType::UInt64, false)];
        if self.metrics == [Metric::Cnt] {
            f.push(Field::new("data", DataType::Float64, false));
            f.push(Field::new("cnt", DataType::Int64, false));
            f.push(Field::new("cnt_total", DataType::Int64, false));
        } else {
            for m in &self.metrics {
                f.push(Field::new(
                    format!("data_{}", m.name()),
                    DataType::Float64,
                    true,
                ));
            }
            f.push(Field::new("cnt", DataType::Int64, false));
        }
        if self.sources.is_some() {
            f.push(Field::new(
                "source_url",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ));
        }
        if self.centres {
            f.push(Field::new("lat", DataType::Float64, false));
            f.push(Field::new("lng", DataType::Float64, false));
        }
        Arc::new(Schema::new(f))
    }

    /// The rows as a batch.
    pub(crate) fn batch(&self, rows: &[Row]) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.0),
        ))];
        let f = |g: &dyn Fn(&Value) -> Option<f64>| -> ArrayRef {
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| g(&r.1))))
        };
        let i = |g: &dyn Fn(&Value) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| g(&r.1) as i64),
            ))
        };
        if self.metrics == [Metric::Cnt] {
            cols.push(f(&|v| match v {
                Value::Count { data, .. } => Some(*data),
                Value::Stats(_) => None,
            }));
            cols.push(i(&|v| match v {
                Value::Count { cnt, .. } => *cnt,
                Value::Stats(s) => s.n,
            }));
            cols.push(i(&|v| match v {
                Value::Count { cnt_total, .. } => *cnt_total,
                Value::Stats(s) => s.n,
            }));
        } else {
            for m in &self.metrics {
                let disk = self.disk;
                cols.push(f(&move |v| {
                    let Value::Stats(s) = v else { return None };
                    let n = s.n as f64;
                    Some(match m {
                        Metric::Avg => s.sum / n,
                        Metric::Min => s.min,
                        Metric::Max => s.max,
                        Metric::Stddev => (s.sumsq / n - (s.sum / n).powi(2)).max(0.0).sqrt(),
                        Metric::Sum => s.sum / disk,
                        Metric::Cnt => n,
                    })
                }));
            }
            cols.push(i(&|v| match v {
                Value::Stats(s) => s.n,
                Value::Count { cnt, .. } => *cnt,
            }));
        }
        if let Some(urls) = &self.sources {
            let mut b = ListBuilder::new(StringBuilder::new());
            for r in rows {
                let mask = match r.1 {
                    Value::Stats(s) => s.sources,
                    Value::Count { sources, .. } => sources,
                };
                for (k, u) in urls.iter().enumerate().take(64) {
                    if mask & (1 << k) != 0 {
                        b.values().append_value(u);
                    }
                }
                b.append(true);
            }
            cols.push(Arc::new(b.finish()));
        }
        if self.centres {
            let centre = |h: u64| CellIndex::try_from(h).map(LatLng::from).ok();
            cols.push(Arc::new(Float64Array::from_iter(
                rows.iter().map(|r| centre(r.0).map(|c| c.lat())),
            )));
            cols.push(Arc::new(Float64Array::from_iter(
                rows.iter().map(|r| centre(r.0).map(|c| c.lng())),
            )));
        }
        Ok(RecordBatch::try_new(self.schema(), cols)?)
    }
}

/// The box of a set of cells' boundaries: `[minx, miny, maxx, maxy]`.
pub(crate) fn cells_bbox(hexes: impl Iterator<Item = u64>) -> [f64; 4] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for h in hexes {
        let Ok(c) = CellIndex::try_from(h) else {
            continue;
        };
        for v in c.boundary().iter() {
            b = [
                b[0].min(v.lng()),
                b[1].min(v.lat()),
                b[2].max(v.lng()),
                b[3].max(v.lat()),
            ];
        }
    }
    b
}

/// A box holding every descendant of `parent` at `res`: the parent's boundary, widened by two
/// edges of a `res` cell (descendants may stick out of their ancestor a little). Cheap where
/// the extent of every cell's boundary is not (millions of cells per chunk at fine
/// resolutions).
pub(crate) fn descendants_bbox(parent: u64, res: Resolution) -> Option<[f64; 4]> {
    let b = cells_bbox(std::iter::once(parent));
    if !b.iter().all(|v| v.is_finite()) || b[2] - b[0] > 180.0 {
        return None;
    }
    let m = 2.0 * res.edge_length_m();
    let dlat = m / 111_320.0;
    let lat = b[1].abs().max(b[3].abs()).min(89.0);
    let dlng = m / (111_320.0 * lat.to_radians().cos());
    Some([
        b[0] - dlng,
        (b[1] - dlat).max(-90.0),
        b[2] + dlng,
        (b[3] + dlat).min(90.0),
    ])
}

/// A dataset file written a row group at a time; a row group may be appended in parts.
pub(crate) struct FileWriter {
    w: ArrowWriter<File>,
    file_id: i64,
    index: Vec<ChunkEntry>,
    /// Rows appended to the open row group.
    pending: u64,
}

impl FileWriter {
    /// Creates `path` (recorded in the index as `file_id`).
    pub(crate) fn create(path: &Path, file_id: i64, layout: &Layout) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::Io {
            context: format!("creating {}", path.display()),
            source: e,
        })?;
        // Cells are unique and statistics continuous: a dictionary would only cost time.
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(None);
        for f in layout.schema().fields() {
            let name = f.name();
            if name == "hex" || name.starts_with("data_") || name == "lat" || name == "lng" {
                props = props.set_column_dictionary_enabled(ColumnPath::from(name.as_str()), false);
            }
        }
        let props = props.build();
        Ok(Self {
            w: ArrowWriter::try_new(file, layout.schema(), Some(props))?,
            file_id,
            index: Vec::new(),
            pending: 0,
        })
    }

    /// Appends rows to the open row group.
    pub(crate) fn append(&mut self, layout: &Layout, rows: &[Row]) -> Result<()> {
        if !rows.is_empty() {
            self.w.write(&layout.batch(rows)?)?;
            self.pending += rows.len() as u64;
        }
        Ok(())
    }

    /// Rows in the open row group.
    pub(crate) fn pending(&self) -> u64 {
        self.pending
    }

    /// Closes the open row group (if it holds rows), its box being `bbox`.
    pub(crate) fn end_chunk(&mut self, bbox: [f64; 4]) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        self.w.flush()?;
        self.index.push(ChunkEntry {
            file_id: self.file_id,
            chunk_id: self.index.len() as i64,
            bbox,
            num_rows: self.pending,
        });
        self.pending = 0;
        Ok(())
    }

    /// Closes the file; its chunk index.
    pub(crate) fn finish(self) -> Result<Vec<ChunkEntry>> {
        self.w.close()?;
        Ok(self.index)
    }
}

//! Reading an H3 dataset for a box or a set of cells at a resolution: from its overview at
//! that resolution when there is one, otherwise from the chunks whose box meets the query
//! (pruned through `_sample`), re-aggregated to the resolution asked.

use std::collections::HashSet;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use h3o::{CellIndex, LatLng, Resolution};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::aggregate;
use crate::error::{Error, Result};
use crate::extract::Stats;
use crate::options::Metric;
use crate::write::{Layout, Row, Value, cells_bbox};

/// What to read.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Cells whose centre lies in `[minx, miny, maxx, maxy]` (lon/lat).
    Bbox([f64; 4]),
    /// These cells (at the resolution asked).
    Hexes(Vec<u64>),
}

fn err(dir: &Path, reason: impl Into<String>) -> Error {
    Error::Raster {
        file: dir.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads the dataset in `dir` for `query` at `res` (the dataset's own resolution when `None`):
/// rows of `hex`, its values and `lat`/`lng` cell centres.
pub fn read_h3_dataset(dir: &Path, query: &Query, res: Option<u8>) -> Result<RecordBatch> {
    let index = fused_ingest::read_chunk_index(dir)?;
    let sample = read_parquet(&dir.join("_sample"))?;
    let own = sample
        .iter()
        .find_map(|b| {
            let h = b.column_by_name("hex")?.as_primitive_opt::<UInt64Type>()?;
            (!h.is_empty()).then(|| h.value(0))
        })
        .and_then(|h| CellIndex::try_from(h).ok())
        .map(|c| u8::from(c.resolution()))
        .ok_or_else(|| err(dir, "not an H3 dataset (no hex in _sample)"))?;
    let res = res.unwrap_or(own);
    if res > own {
        return Err(err(
            dir,
            format!("the dataset's resolution is {own}; {res} is finer"),
        ));
    }
    let r = Resolution::try_from(res).map_err(|e| Error::Options(e.to_string()))?;
    let wanted: Option<HashSet<u64>> = match query {
        Query::Hexes(h) => Some(h.iter().copied().collect()),
        Query::Bbox(_) => None,
    };
    let keep = |h: u64| -> bool {
        match (query, &wanted) {
            (_, Some(set)) => set.contains(&h),
            (Query::Bbox(b), None) => CellIndex::try_from(h).is_ok_and(|c| {
                let ll = LatLng::from(c);
                ll.lng() >= b[0] && ll.lng() <= b[2] && ll.lat() >= b[1] && ll.lat() <= b[3]
            }),
            _ => false,
        }
    };
    let overview = dir.join("overview").join(format!("hex{res}.parquet"));
    let (rows, layout) = if res < own && overview.exists() {
        let batches = read_parquet(&overview)?;
        let layout = layout_of(&batches)?;
        let mut rows = rows_of(&batches)?;
        rows.retain(|r| keep(r.0));
        (rows, layout)
    } else {
        let qbox = match query {
            Query::Bbox(b) => *b,
            Query::Hexes(h) => cells_bbox(h.iter().copied()),
        };
        let mut by_file: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
        for c in index.iter().filter(|c| {
            c.bbox[0] <= qbox[2]
                && qbox[0] <= c.bbox[2]
                && c.bbox[1] <= qbox[3]
                && qbox[1] <= c.bbox[3]
        }) {
            by_file
                .entry(c.file_id)
                .or_default()
                .push(c.chunk_id as usize);
        }
        let mut batches = Vec::new();
        for (f, chunks) in by_file {
            batches.extend(fused_ingest::get_chunk_from_table(
                dir,
                f,
                Some(&chunks),
                None,
            )?);
        }
        let layout = match layout_of(&batches) {
            Ok(l) => l,
            Err(_) => layout_of(&sample)?,
        };
        let rows = rows_of(&batches)?;
        let mut rows = if res < own {
            aggregate::to_parent(&rows, r)
        } else {
            rows
        };
        rows.retain(|r| keep(r.0));
        (rows, layout)
    };
    Layout {
        centres: true,
        sources: None,
        ..layout
    }
    .batch(&rows)
}

fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let f = std::fs::File::open(path).map_err(|e| Error::Io {
        context: format!("opening {}", path.display()),
        source: e,
    })?;
    ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| err(path, e.to_string()))?
        .map(|b| b.map_err(|e| err(path, e.to_string())))
        .collect()
}

/// The metrics a dataset's columns hold.
fn layout_of(batches: &[RecordBatch]) -> Result<Layout> {
    let b = batches
        .first()
        .ok_or_else(|| Error::Options("no rows to read".into()))?;
    let metrics = if b.column_by_name("cnt_total").is_some() {
        vec![Metric::Cnt]
    } else {
        [
            Metric::Avg,
            Metric::Min,
            Metric::Max,
            Metric::Stddev,
            Metric::Sum,
        ]
        .into_iter()
        .filter(|m| b.column_by_name(&format!("data_{}", m.name())).is_some())
        .collect()
    };
    Ok(Layout {
        metrics,
        disk: 1.0,
        sources: None,
        centres: true,
    })
}

/// Rows back from written batches (statistics rebuilt from avg, min, max, stddev and hits).
fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for b in batches {
        let hex = cast(
            b.column_by_name("hex")
                .ok_or_else(|| Error::Options("no hex column".into()))?,
            &DataType::UInt64,
        )?;
        let hex = hex.as_primitive::<UInt64Type>();
        let f = |n: &str| -> Option<arrow::array::Float64Array> {
            b.column_by_name(n)
                .and_then(|c| cast(c, &DataType::Float64).ok())
                .map(|c| c.as_primitive::<Float64Type>().clone())
        };
        let i = |n: &str| -> Option<arrow::array::Int64Array> {
            b.column_by_name(n)
                .and_then(|c| cast(c, &DataType::Int64).ok())
                .map(|c| c.as_primitive::<Int64Type>().clone())
        };
        let cnt = i("cnt").ok_or_else(|| Error::Options("no cnt column".into()))?;
        let total = i("cnt_total");
        let (data, avg, min, max, sd) = (
            f("data"),
            f("data_avg"),
            f("data_min"),
            f("data_max"),
            f("data_stddev"),
        );
        for k in 0..b.num_rows() {
            let n = cnt.value(k).max(0) as u64;
            let v = match (&total, &data) {
                (Some(t), Some(d)) => Value::Count {
                    data: d.value(k),
                    cnt: n,
                    cnt_total: t.value(k).max(0) as u64,
                    sources: 0,
                },
                _ => {
                    let get = |a: &Option<arrow::array::Float64Array>| {
                        a.as_ref().filter(|a| !a.is_null(k)).map(|a| a.value(k))
                    };
                    let mean = get(&avg).unwrap_or(f64::NAN);
                    let nf = n as f64;
                    let s = get(&sd).unwrap_or(0.0);
                    Value::Stats(Stats {
                        n,
                        sum: mean * nf,
                        sumsq: nf * (s * s + mean * mean),
                        min: get(&min).unwrap_or(mean),
                        max: get(&max).unwrap_or(mean),
                        sources: 0,
                    })
                }
            };
            rows.push((hex.value(k), v));
        }
    }
    Ok(rows)
}

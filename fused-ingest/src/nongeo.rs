//! `ingest_nongeospatial`: a table without geometry cut into files and chunks by row count,
//! sorted by `partition_col` when one is given (equal values stay together, each chunk covers
//! a range), with the same layout and `_sample` index as geospatial tables (boxes are NaN).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::options::{IngestOptions, NonGeoOptions};
use crate::prepare::Counts;
use crate::publish::{self, Target};
use crate::run::{Context, IngestReport};
use crate::write::{ChunkEntry, index_metadata, parquet_writer};

/// Runs a non-geospatial ingestion.
pub(crate) async fn run(
    inputs: Vec<String>,
    output: String,
    opts: NonGeoOptions,
    ctx: Context,
) -> Result<IngestReport> {
    opts.validate()?;
    let started = Instant::now();
    let scratch = publish::scratch_dir(ctx.temp_dir.as_deref())?;
    let files = publish::locate_inputs(
        &inputs,
        &IngestOptions::default(),
        ctx.storage.as_ref(),
        scratch.path(),
    )
    .await?;
    let target = Target::prepare(&output, ctx.storage.clone(), opts.overwrite).await?;
    let staging = target.staging(ctx.temp_dir.as_deref())?;
    let (dir, first, o, nfiles) = (
        staging.path().to_path_buf(),
        target.first_file_id(),
        opts.clone(),
        files.len() as u64,
    );
    let (rows, nf, nc) = tokio::task::spawn_blocking(move || write_all(&files, &o, &dir, first))
        .await
        .map_err(|e| Error::Encode(format!("the ingestion thread failed: {e}")))??;
    target.publish(staging, &opts.output_metadata).await?;
    Ok(IngestReport {
        output,
        input_files: nfiles,
        counts: Counts {
            rows_read: rows,
            ..Counts::default()
        },
        rows,
        files: nf,
        chunks: nc,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn read(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let format = arrow::csv::reader::Format::default().with_header(true);
        let (schema, _) = format
            .infer_schema(std::io::BufReader::new(&file), Some(10_000))
            .map_err(|e| Error::input(path, None, e))?;
        let file =
            File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let r = arrow::csv::ReaderBuilder::new(Arc::new(schema))
            .with_format(format)
            .build(file)
            .map_err(|e| Error::input(path, None, e))?;
        return r
            .map(|b| b.map_err(|e| Error::input(path, None, e)))
            .collect();
    }
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| Error::input(path, None, format!("not a readable Parquet file: {e}")))?
        .map(|b| b.map_err(|e| Error::input(path, None, e)))
        .collect()
}

fn write_all(
    files: &[PathBuf],
    opts: &NonGeoOptions,
    dir: &Path,
    first_id: i64,
) -> Result<(u64, u64, u64)> {
    let mut batches = Vec::new();
    for f in files {
        batches.extend(read(f)?);
    }
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| Error::Empty("the input holds no rows".into()))?;
    let all = concat_batches(&schema, &batches)
        .map_err(|e| Error::Options(format!("the input files have different columns: {e}")))?;
    drop(batches);
    let all = match &opts.partition_col {
        Some(col) => {
            let c = all.column_by_name(col).ok_or_else(|| {
                Error::Options(format!(
                    "partition_col {col:?} is not a column of the input"
                ))
            })?;
            let idx = sort_to_indices(c, Some(SortOptions::default()), None)?;
            take_record_batch(&all, &idx)?
        }
        None => all,
    };
    let n = all.num_rows();
    if n == 0 {
        return Err(Error::Empty("the input holds no rows".into()));
    }
    let per_file = opts.partitioning_maximum_per_file as usize;
    let per_chunk = (opts.partitioning_maximum_per_chunk as usize).min(per_file);
    let props = |kv: Vec<KeyValue>| {
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(None)
            .set_key_value_metadata(Some(kv))
            .build()
    };
    let mut index = Vec::new();
    let mut file_id = first_id;
    for start in (0..n).step_by(per_file) {
        let file_rows = per_file.min(n - start);
        let path = dir.join(format!("{file_id}.parquet"));
        let out = File::create(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let mut w = parquet_writer(out, schema.clone(), props(Vec::new()))?;
        for (chunk_id, c) in (0..file_rows).step_by(per_chunk).enumerate() {
            let len = per_chunk.min(file_rows - c);
            w.write(&all.slice(start + c, len))?;
            w.flush()?;
            index.push(ChunkEntry {
                file_id,
                chunk_id: chunk_id as i64,
                bbox: [f64::NAN; 4],
                num_rows: len as u64,
            });
        }
        w.close()?;
        file_id += 1;
    }
    let kv = index_metadata(&index)?;
    let sample = File::create(dir.join("_sample")).map_err(|e| Error::io("creating _sample", e))?;
    let mut w = parquet_writer(sample, schema, props(kv))?;
    w.write(&all.slice(0, n.min(1000)))?;
    w.close()?;
    Ok((n as u64, (file_id - first_id) as u64, index.len() as u64))
}

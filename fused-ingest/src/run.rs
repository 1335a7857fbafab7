//! One ingestion end to end: inputs located (downloaded when they are storage URLs), read and
//! prepared on all cores, partitioned into files and chunks, written to a staging folder, and
//! published — locally by an atomic swap of folders, to object storage file by file with
//! `_sample` last.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use fused_core::storage::Storage;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::options::{ForceUtm, IngestOptions};
use crate::partition::{self, Item, Params};
use crate::prepare::Counts;
use crate::publish::{self, Target};
use crate::scan;
use crate::source::{self, Opened};
use crate::write::{ChunkEntry, ChunkRows, Writer};

/// A step of an ingestion, reported while it runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Progress {
    /// Reading: `done` of `total` pieces of input (row groups or files), `rows` so far.
    Reading {
        /// Pieces read.
        done: u64,
        /// Pieces in all.
        total: u64,
        /// Rows read so far.
        rows: u64,
    },
    /// Partitioned into `files` files of `chunks` chunks.
    Partitioned {
        /// Files to write.
        files: u64,
        /// Chunks to write.
        chunks: u64,
    },
    /// Writing: `done` of `total` files.
    Writing {
        /// Files written.
        done: u64,
        /// Files in all.
        total: u64,
    },
    /// Reading the input again (inputs larger than memory): `done` of `total` pieces sent to
    /// their files' runs.
    Distributing {
        /// Pieces done.
        done: u64,
        /// Pieces in all.
        total: u64,
    },
    /// Published to the output.
    Published,
}

/// A callback receiving [`Progress`].
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What an ingestion did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    /// Where the table is.
    pub output: String,
    /// Input files read.
    pub input_files: u64,
    /// Rows read, dropped and added.
    pub counts: Counts,
    /// Rows written.
    pub rows: u64,
    /// Files written.
    pub files: u64,
    /// Chunks (row groups) written.
    pub chunks: u64,
    /// Seconds taken.
    pub seconds: f64,
}

/// Everything a run needs besides the options.
#[derive(Clone, Default)]
pub(crate) struct Context {
    pub storage: Option<Arc<dyn Storage>>,
    pub progress: Option<ProgressFn>,
    pub cancel: Option<Arc<AtomicBool>>,
    pub job_id: Option<String>,
    pub temp_dir: Option<PathBuf>,
    pub memory_limit: Option<usize>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("storage", &self.storage)
            .field("job_id", &self.job_id)
            .finish()
    }
}

impl Context {
    pub(crate) fn report(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(&p);
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        match &self.cancel {
            Some(c) if c.load(Ordering::SeqCst) => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }
}

/// Runs a geospatial ingestion.
pub(crate) async fn run(
    inputs: Vec<String>,
    output: String,
    opts: IngestOptions,
    ctx: Context,
) -> Result<IngestReport> {
    opts.validate()?;
    let started = Instant::now();
    let scratch = publish::scratch_dir(ctx.temp_dir.as_deref())?;
    let files =
        publish::locate_inputs(&inputs, &opts, ctx.storage.as_ref(), scratch.path()).await?;
    let target = Target::prepare(&output, ctx.storage.clone(), opts.overwrite).await?;
    let schema_boxes = match &opts.partitioning_schema_input {
        Some(url) => Some(publish::read_boxes(url, ctx.storage.as_ref(), scratch.path()).await?),
        None => None,
    };
    let staging = target.staging(ctx.temp_dir.as_deref())?;
    let opts = Arc::new(opts);
    let job = {
        let (opts, ctx, staging, scratch_path) = (
            opts.clone(),
            ctx.clone(),
            staging.path().to_path_buf(),
            scratch.path().to_path_buf(),
        );
        let first_id = target.first_file_id();
        tokio::task::spawn_blocking(move || {
            ingest_blocking(
                &files,
                &opts,
                &ctx,
                &staging,
                &scratch_path,
                first_id,
                schema_boxes,
            )
        })
    };
    let (counts, summary) = job
        .await
        .map_err(|e| Error::Encode(format!("the ingestion thread failed: {e}")))??;
    ctx.check()?;
    target.publish(staging, &opts.output_metadata).await?;
    ctx.report(Progress::Published);
    let report = IngestReport {
        output,
        input_files: summary.input_files,
        counts,
        rows: summary.rows,
        files: summary.files,
        chunks: summary.chunks,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::debug!(
        rows = report.rows,
        files = report.files,
        chunks = report.chunks,
        dropped_empty = counts.dropped_empty,
        dropped_out_of_bounds = counts.dropped_out_of_bounds,
        "ingested {}",
        report.output
    );
    Ok(report)
}

/// Sizes of what was written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub input_files: u64,
    pub rows: u64,
    pub files: u64,
    pub chunks: u64,
}

/// The CPU part: read, prepare, partition, write into `staging`.
fn ingest_blocking(
    files: &[PathBuf],
    opts: &Arc<IngestOptions>,
    ctx: &Context,
    staging: &Path,
    scratch: &Path,
    first_id: i64,
    boxes: Option<Vec<ChunkEntry>>,
) -> Result<(Counts, Summary)> {
    let opened: Vec<Opened> = files
        .iter()
        .map(|f| source::open(f, opts, scratch))
        .collect::<Result<_>>()?;
    let t = Instant::now();
    let scan = scan::scan(opened, opts, ctx)?;
    tracing::debug!(
        rows = scan.rows,
        sampled = scan.items.len(),
        stride = scan.stride,
        in_memory = scan.batches.is_some(),
        "read and prepared in {:?}",
        t.elapsed()
    );
    ctx.check()?;
    let counts = scan.counts;
    if scan.rows == 0 {
        return Err(Error::Empty(format!(
            "no rows with a geometry in {} (read {} rows: {} without geometry, {} out of bounds)",
            describe(files),
            counts.rows_read,
            counts.dropped_empty,
            counts.dropped_out_of_bounds
        )));
    }
    let budgets = Budgets::of(opts, scan.total_weight);
    let summary = match scan.batches {
        Some(ref batches) => {
            let mut items = scan.items;
            in_memory(
                batches,
                &mut items,
                &scan.schema,
                &budgets,
                opts,
                ctx,
                staging,
                first_id,
                boxes,
            )?
        }
        None => crate::stream::run(
            files, scan, &budgets, opts, ctx, staging, scratch, first_id, boxes,
        )?,
    };
    tracing::debug!("partitioned and written in {:?}", t.elapsed());
    Ok((
        counts,
        Summary {
            input_files: files.len() as u64,
            ..summary
        },
    ))
}

/// The most files and chunks one ingestion writes: past that the maxima are surely mistaken
/// (one file per row), and a clear error beats a folder of millions of files.
const MAX_FILES: u64 = 100_000;
const MAX_CHUNKS: u64 = 10_000_000;

/// Refuses a plan of too many files or chunks.
pub(crate) fn check_counts(files: u64, chunks: u64) -> Result<()> {
    if files > MAX_FILES || chunks > MAX_CHUNKS {
        return Err(Error::Options(format!(
            "these maxima would write {files} files and {chunks} chunks (limits: {MAX_FILES} \
             files, {MAX_CHUNKS} chunks); raise partitioning_maximum_per_file / _per_chunk"
        )));
    }
    Ok(())
}

/// The weight budgets of files and chunks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budgets {
    /// Files.
    pub file: Params,
    /// Chunks.
    pub chunk: Params,
}

impl Budgets {
    fn of(opts: &IngestOptions, total: f64) -> Self {
        let per_file = opts
            .partitioning_maximum_per_file
            .unwrap_or(total / opts.target_num_chunks.clamp(1, 10) as f64);
        let per_chunk = opts
            .partitioning_maximum_per_chunk
            .unwrap_or(total / 100.0)
            .min(per_file);
        let file = Params {
            budget: per_file,
            max_width_ratio: opts.partitioning_max_width_ratio,
            max_height_ratio: opts.partitioning_max_height_ratio,
            utm: opts.partitioning_force_utm == Some(ForceUtm::File),
            split: opts.partitioning_split_method,
            split_identical: opts.split_identical_centroids,
        };
        let chunk = Params {
            budget: per_chunk,
            utm: opts.partitioning_force_utm.is_some(),
            ..file
        };
        Self { file, chunk }
    }
}

/// Everything in memory: partition all rows, then write the files from the held batches.
#[allow(clippy::too_many_arguments)]
fn in_memory(
    batches: &[RecordBatch],
    items: &mut [Item],
    schema: &SchemaRef,
    budgets: &Budgets,
    opts: &IngestOptions,
    ctx: &Context,
    staging: &Path,
    first_id: i64,
    boxes: Option<Vec<ChunkEntry>>,
) -> Result<Summary> {
    let nrows = items.len() as u64;
    let offsets: Vec<usize> = std::iter::once(0)
        .chain(batches.iter().scan(0, |acc, b| {
            *acc += b.num_rows();
            Some(*acc)
        }))
        .collect();
    let locate = |r: u32| -> (usize, usize) {
        let r = r as usize;
        let b = offsets.partition_point(|o| *o <= r) - 1;
        (b, r - offsets[b])
    };
    // Files by id: numbered in order, or keeping the ids of predefined boxes.
    let (ids, plan): (Vec<i64>, Vec<Vec<Vec<u32>>>) = match boxes {
        Some(b) => assign_to_boxes(items, &b)
            .into_iter()
            .map(|(id, f)| (first_id + id, f))
            .unzip(),
        None => {
            let p = plan(items, budgets);
            ((0..p.len() as i64).map(|i| first_id + i).collect(), p)
        }
    };
    let nfiles = plan.len() as u64;
    let nchunks: u64 = plan.iter().map(|f| f.len() as u64).sum();
    check_counts(nfiles, nchunks)?;
    ctx.report(Progress::Partitioned {
        files: nfiles,
        chunks: nchunks,
    });
    let writer = Writer {
        schema: schema.clone(),
        covering: opts.write_covering_bbox,
        job_meta: job_meta(opts, ctx, nrows, Some(nfiles), Some(nchunks)),
    };
    let done = std::sync::atomic::AtomicU64::new(0);
    let summaries = plan
        .par_iter()
        .enumerate()
        .map(|(i, chunks)| {
            ctx.check()?;
            let rows: Vec<ChunkRows> = chunks
                .iter()
                .map(|c| c.iter().map(|r| locate(*r)).collect())
                .collect();
            let id = ids[i];
            let path = staging.join(format!("{id}.parquet"));
            let s = writer.write_file(&path, id, batches, &rows)?;
            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
            ctx.report(Progress::Writing {
                done: d,
                total: nfiles,
            });
            Ok(s)
        })
        .collect::<Result<Vec<_>>>()?;
    let index: Vec<ChunkEntry> = summaries.into_iter().flat_map(|s| s.chunks).collect();
    let firsts: Vec<(usize, usize)> = plan
        .iter()
        .flat_map(|f| f.iter().filter_map(|c| c.first().map(|r| locate(*r))))
        .collect();
    writer.write_sample(staging, batches, &firsts, &index)?;
    Ok(Summary {
        input_files: 0,
        rows: nrows,
        files: nfiles,
        chunks: nchunks,
    })
}

fn describe(files: &[PathBuf]) -> String {
    match files {
        [one] => one.display().to_string(),
        many => format!("{} files", many.len()),
    }
}

/// Files, then chunks within each file, as lists of row indices.
fn plan(items: &mut [Item], budgets: &Budgets) -> Vec<Vec<Vec<u32>>> {
    let files = partition::partition_unsorted(items, None, &budgets.file);
    // Leaves cover the items in order: cut them into one slice per file.
    let mut slices = Vec::with_capacity(files.len());
    let mut rest = items;
    for f in &files {
        let (head, tail) = rest.split_at_mut(f.range.len());
        slices.push((head, f.cell));
        rest = tail;
    }
    slices
        .into_par_iter()
        .map(|(slice, cell)| {
            let chunks = partition::partition(slice, Some(cell), &budgets.chunk);
            chunks
                .into_iter()
                .map(|c| slice[c.range].iter().map(|i| i.row).collect())
                .collect()
        })
        .collect()
}

/// Rows assigned to predefined boxes: the first box (by file and chunk id) holding a row's
/// centroid, else the nearest; files keep the boxes' file ids, chunks the order of their ids
/// (boxes no row went to are left out).
pub(crate) fn assign_to_boxes(keys: &[Item], boxes: &[ChunkEntry]) -> Vec<(i64, Vec<Vec<u32>>)> {
    let index = BoxIndex::new(boxes.to_vec());
    let sorted = index.boxes();
    let owner: Vec<usize> = keys
        .par_iter()
        .map(|k| index.find(f64::from(k.x), f64::from(k.y)))
        .collect();
    let mut per_box: Vec<Vec<u32>> = vec![Vec::new(); sorted.len()];
    for (k, b) in keys.iter().zip(owner) {
        per_box[b].push(k.row);
    }
    let mut files: Vec<(i64, Vec<Vec<u32>>)> = Vec::new();
    for (b, mut rows) in sorted.iter().zip(per_box) {
        if rows.is_empty() {
            continue;
        }
        rows.sort_unstable();
        match files.last_mut() {
            Some((id, f)) if *id == b.file_id => f.push(rows),
            _ => files.push((b.file_id, vec![rows])),
        }
    }
    files
}

/// Finds the box (of boxes sorted by file and chunk id) a centroid goes to: the first holding
/// it, else the nearest. A grid over the boxes keeps a lookup to the few boxes of one cell.
#[derive(Debug)]
pub(crate) struct BoxIndex {
    boxes: Vec<ChunkEntry>,
    extent: [f64; 4],
    n: usize,
    cells: Vec<Vec<u32>>,
}

impl BoxIndex {
    pub(crate) fn new(mut boxes: Vec<ChunkEntry>) -> Self {
        boxes.sort_by_key(|c| (c.file_id, c.chunk_id));
        let mut extent = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for b in &boxes {
            extent = [
                extent[0].min(b.bbox[0]),
                extent[1].min(b.bbox[1]),
                extent[2].max(b.bbox[2]),
                extent[3].max(b.bbox[3]),
            ];
        }
        let n = ((boxes.len() as f64).sqrt().ceil() as usize).clamp(1, 1024);
        let mut idx = Self {
            boxes,
            extent,
            n,
            cells: vec![Vec::new(); n * n],
        };
        for (i, b) in idx.boxes.iter().enumerate() {
            let (Some((c0, r0)), Some((c1, r1))) = (
                idx.cell(b.bbox[0], b.bbox[1]),
                idx.cell(b.bbox[2], b.bbox[3]),
            ) else {
                continue;
            };
            for r in r0..=r1 {
                for c in c0..=c1 {
                    idx.cells[r * n + c].push(i as u32);
                }
            }
        }
        idx
    }

    /// The boxes, sorted.
    pub(crate) fn boxes(&self) -> &[ChunkEntry] {
        &self.boxes
    }

    fn cell(&self, x: f64, y: f64) -> Option<(usize, usize)> {
        let [x0, y0, x1, y1] = self.extent;
        if !(x >= x0 && x <= x1 && y >= y0 && y <= y1) {
            return None;
        }
        let f = |v: f64, lo: f64, hi: f64| {
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
            ((t * self.n as f64) as usize).min(self.n - 1)
        };
        Some((f(x, x0, x1), f(y, y0, y1)))
    }

    /// The index of the box a centroid goes to.
    pub(crate) fn find(&self, x: f64, y: f64) -> usize {
        let dist = |b: &ChunkEntry| {
            let dx = (b.bbox[0] - x).max(0.0).max(x - b.bbox[2]);
            let dy = (b.bbox[1] - y).max(0.0).max(y - b.bbox[3]);
            dx * dx + dy * dy
        };
        if let Some((c, r)) = self.cell(x, y)
            && let Some(i) = self.cells[r * self.n + c]
                .iter()
                .find(|i| dist(&self.boxes[**i as usize]) == 0.0)
        {
            return *i as usize;
        }
        (0..self.boxes.len())
            .min_by(|a, b| dist(&self.boxes[*a]).total_cmp(&dist(&self.boxes[*b])))
            .unwrap_or(0)
    }
}

/// The `fused:job_meta` JSON: what ran and what it made (nothing that varies between runs of
/// the same input, so outputs are reproducible byte for byte).
pub(crate) fn job_meta(
    opts: &IngestOptions,
    ctx: &Context,
    rows: u64,
    files: Option<u64>,
    chunks: Option<u64>,
) -> String {
    json!({
        "revision": concat!("fused-rs ", env!("CARGO_PKG_VERSION")),
        "step_config": {"type": "partition_geospatial", "config": opts},
        "job_id": ctx.job_id,
        "has_sample": true,
        "has_metadata": opts.output_metadata.is_some(),
        "num_rows": rows,
        "num_files": files,
        "num_chunks": chunks,
    })
    .to_string()
}

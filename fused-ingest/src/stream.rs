//! Ingestion of inputs larger than memory: the files are planned on the first pass's sample,
//! the input is read a second time and every row sent to its file's run in the temporary folder
//! (Arrow IPC), then each file is loaded alone, partitioned exactly (split again if the sample
//! underestimated it) into chunks, and written. Memory holds the sample, one batch per unit
//! being read, and the files being written (as many as fit in the memory limit).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use arrow::array::{AsArray, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::options::IngestOptions;
use crate::partition::{self, Item, Node};
use crate::prepare::{self, Counts};
use crate::run::{Budgets, Context, Progress, Summary, job_meta};
use crate::scan::{self, DEFAULT_MEMORY_LIMIT, Scan};
use crate::source;
use crate::write::{ChunkEntry, ChunkRows, Writer};

/// Where rows go: to a file planned from the sample, or to a predefined box.
enum Router {
    Tree { tree: Node, starts: Vec<usize> },
    Boxes(crate::run::BoxIndex),
}

impl Router {
    fn dest(&self, x: f32, y: f32, row: u64) -> usize {
        match self {
            Router::Tree { tree, starts } => tree
                .route(x, y, row)
                .and_then(|s| starts.binary_search(&s).ok())
                .unwrap_or(0),
            Router::Boxes(b) => b.find(f64::from(x), f64::from(y)),
        }
    }
}

/// Runs the second and third passes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    files: &[PathBuf],
    scan: Scan,
    budgets: &Budgets,
    opts: &Arc<IngestOptions>,
    ctx: &Context,
    staging: &Path,
    scratch: &Path,
    first_id: i64,
    boxes: Option<Vec<ChunkEntry>>,
) -> Result<Summary> {
    let Scan {
        mut items,
        schema,
        unit_rows,
        rows,
        ..
    } = scan;
    // Plan the files (or take the boxes, sorted by file and chunk id).
    let (router, groups) = match boxes {
        Some(b) => {
            let index = crate::run::BoxIndex::new(b);
            let b = index.boxes();
            let mut groups: Vec<Vec<usize>> = Vec::new();
            for (i, c) in b.iter().enumerate() {
                match groups.last_mut() {
                    Some(g) if b[g[0]].file_id == c.file_id => g.push(i),
                    _ => groups.push(vec![i]),
                }
            }
            (Router::Boxes(index), groups)
        }
        None => {
            let (leaves, tree) = partition::partition_tree(&mut items, None, &budgets.file);
            crate::run::check_counts(leaves.len() as u64, 0)?;
            let starts: Vec<usize> = leaves.iter().map(|l| l.range.start).collect();
            let groups = (0..leaves.len()).map(|i| vec![i]).collect();
            (Router::Tree { tree, starts }, groups)
        }
    };
    drop(items);
    let ndest = groups.iter().map(Vec::len).sum::<usize>();
    let spill = tempfile::Builder::new()
        .prefix("runs-")
        .tempdir_in(scratch)
        .map_err(|e| Error::io("creating the run folder", e))?;
    let t = std::time::Instant::now();
    let firsts = distribute(
        files,
        opts,
        ctx,
        scratch,
        &schema,
        &router,
        &unit_rows,
        ndest,
        spill.path(),
    )?;
    tracing::debug!(files = ndest, "distributed in {:?}", t.elapsed());
    ctx.check()?;
    // Third pass: one group of runs (a planned file, or the boxes of one file) at a time.
    let boxes_mode = matches!(router, Router::Boxes(_));
    let writer = Writer {
        schema: schema.clone(),
        covering: opts.write_covering_bbox,
        job_meta: job_meta(opts, ctx, rows, None, None),
    };
    let limit = ctx.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT);
    let gate = Gate::new(limit);
    let total = groups.len() as u64;
    let done = AtomicU64::new(0);
    let written: Vec<Vec<Written>> = groups
        .par_iter()
        .enumerate()
        .map(|(g, dests)| {
            ctx.check()?;
            let size: u64 = dests
                .iter()
                .filter_map(|d| std::fs::metadata(run_path(spill.path(), *d)).ok())
                .map(|m| m.len())
                .sum();
            let _permit = gate.acquire(size as usize);
            let runs: Vec<(PathBuf, &[u64])> = dests
                .iter()
                .map(|d| (run_path(spill.path(), *d), firsts[*d].as_slice()))
                .collect();
            let method = opts.partitioning_method;
            let out = write_group(g, &runs, method, &writer, budgets, boxes_mode, staging)?;
            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
            ctx.report(Progress::Writing { done: d, total });
            Ok(out)
        })
        .collect::<Result<_>>()?;
    // Number the files in plan order (predefined boxes keep their file ids).
    let box_ids: Option<Vec<i64>> = match &router {
        Router::Boxes(b) => Some(groups.iter().map(|g| b.boxes()[g[0]].file_id).collect()),
        Router::Tree { .. } => None,
    };
    let mut index = Vec::new();
    let mut samples = Vec::new();
    let mut id = first_id;
    let mut nfiles = 0u64;
    for (g, w) in written
        .into_iter()
        .enumerate()
        .flat_map(|(g, ws)| ws.into_iter().map(move |w| (g, w)))
    {
        if let Some(ids) = &box_ids {
            id = first_id + ids[g];
        }
        nfiles += 1;
        let path = staging.join(format!("{id}.parquet"));
        std::fs::rename(&w.path, &path)
            .map_err(|e| Error::io(format!("renaming {}", w.path.display()), e))?;
        index.extend(
            w.chunks
                .into_iter()
                .map(|c| ChunkEntry { file_id: id, ..c }),
        );
        samples.push(w.sample);
        id += 1;
    }
    let nchunks = index.len() as u64;
    crate::run::check_counts(nfiles, nchunks)?;
    ctx.report(Progress::Partitioned {
        files: nfiles,
        chunks: nchunks,
    });
    let sample = concat_batches(&schema, &samples)?;
    let firsts: Vec<(usize, usize)> = (0..sample.num_rows()).map(|i| (0, i)).collect();
    let sample_writer = Writer {
        job_meta: job_meta(opts, ctx, rows, Some(nfiles), Some(nchunks)),
        ..writer
    };
    sample_writer.write_sample(staging, &[sample], &firsts, &index)?;
    Ok(Summary {
        input_files: files.len() as u64,
        rows,
        files: nfiles,
        chunks: nchunks,
    })
}

fn run_path(dir: &Path, dest: usize) -> PathBuf {
    dir.join(format!("{dest}.arrows"))
}

/// A run being written: the batches of one destination, and the number of the first row of
/// each (rows of a batch come from one prepared batch, so its numbers are increasing).
#[derive(Default)]
struct Run {
    writer: Option<StreamWriter<BufWriter<File>>>,
    firsts: Vec<u64>,
}

/// The second pass: reads and prepares the input again, and appends every row to the run of
/// its destination; returns each run's first row numbers, batch by batch.
#[allow(clippy::too_many_arguments)]
fn distribute(
    files: &[PathBuf],
    opts: &Arc<IngestOptions>,
    ctx: &Context,
    scratch: &Path,
    schema: &SchemaRef,
    router: &Router,
    unit_rows: &[u64],
    ndest: usize,
    dir: &Path,
) -> Result<Vec<Vec<u64>>> {
    let opened = files
        .iter()
        .map(|f| source::open(f, opts, scratch))
        .collect::<Result<Vec<_>>>()?;
    let jobs = scan::jobs(opened, opts)?;
    if jobs.len() != unit_rows.len() {
        return Err(Error::Encode(
            "the input changed while it was being ingested".into(),
        ));
    }
    let firsts: Vec<u64> = unit_rows
        .iter()
        .scan(0, |acc, n| {
            let f = *acc;
            *acc += n;
            Some(f)
        })
        .collect();
    let runs: Vec<Mutex<Run>> = (0..ndest).map(|_| Mutex::new(Run::default())).collect();
    let total = jobs.len() as u64;
    let done = AtomicU64::new(0);
    jobs.into_par_iter()
        .zip(firsts.into_par_iter())
        .try_for_each(|(job, mut row)| -> Result<()> {
            ctx.check()?;
            let mut first = 0u64;
            let mut counts = Counts::default();
            for raw in (job.unit)()? {
                let raw = raw?;
                let n = raw.num_rows() as u64;
                let p = job
                    .preparer
                    .prepare(&raw, first, job.unit_no, &mut counts)?;
                first += n;
                if p.keys.is_empty() {
                    continue;
                }
                let batch = prepare::conform(&p.batch, schema)?;
                let mut by_dest: Vec<Vec<u32>> = vec![Vec::new(); ndest];
                for (j, k) in p.keys.iter().enumerate() {
                    by_dest[router.dest(k.x, k.y, row + j as u64)].push(j as u32);
                }
                for (dest, idx) in by_dest.into_iter().enumerate() {
                    if idx.is_empty() {
                        continue;
                    }
                    let first_row = row + u64::from(idx[0]);
                    let out = take_record_batch(&batch, &UInt32Array::from(idx))?;
                    let mut run = runs[dest].lock().unwrap_or_else(|p| p.into_inner());
                    if run.writer.is_none() {
                        let path = run_path(dir, dest);
                        let f = File::create(&path)
                            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                        run.writer = Some(StreamWriter::try_new(
                            BufWriter::with_capacity(64 << 10, f),
                            schema,
                        )?);
                    }
                    if let Some(w) = run.writer.as_mut() {
                        w.write(&out)?;
                    }
                    run.firsts.push(first_row);
                }
                row += p.keys.len() as u64;
            }
            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
            ctx.report(Progress::Distributing { done: d, total });
            Ok(())
        })?;
    let mut firsts = Vec::with_capacity(ndest);
    for r in runs {
        let mut r = r.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = r.writer.as_mut() {
            w.finish()?;
        }
        firsts.push(r.firsts);
    }
    Ok(firsts)
}

/// A file written by the third pass, before it is numbered.
struct Written {
    path: PathBuf,
    chunks: Vec<ChunkEntry>,
    sample: RecordBatch,
}

/// Loads the runs of one group, partitions them exactly and writes their file(s).
fn write_group(
    g: usize,
    runs: &[(PathBuf, &[u64])],
    method: crate::options::PartitioningMethod,
    writer: &Writer,
    budgets: &Budgets,
    boxes_mode: bool,
    staging: &Path,
) -> Result<Vec<Written>> {
    // Each destination's rows, in input order: the data columns as they were read (no copy),
    // the keys as items numbered by position.
    let mut data: Vec<RecordBatch> = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut sizes = Vec::new();
    let geometry = writer
        .schema
        .index_of(crate::prepare::GEOMETRY)
        .map_err(|e| Error::Encode(e.to_string()))?;
    for (path, firsts) in runs {
        if !path.exists() {
            continue;
        }
        let f =
            File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let reader = StreamReader::try_new(std::io::BufReader::with_capacity(1 << 20, f), None)?;
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        // Each batch holds rows of one prepared batch (a contiguous range of row numbers, in
        // order), and ranges never interleave: ordering batches by their first row orders
        // the rows.
        if batches.len() != firsts.len() {
            return Err(Error::Encode(format!(
                "the run {} is incomplete",
                path.display()
            )));
        }
        let mut keyed: Vec<(u64, RecordBatch)> = firsts.iter().copied().zip(batches).collect();
        keyed.sort_unstable_by_key(|(first, _)| *first);
        let mut n = 0;
        for (_, b) in keyed {
            // Keys again from the geometries (cheaper than keeping them in the run).
            let g = b.column(geometry).as_binary::<i32>();
            for i in 0..b.num_rows() {
                let k = match crate::geometry::measure(g.value(i)) {
                    Ok(Some(m)) => crate::prepare::key(&m, method),
                    _ => crate::prepare::Key {
                        x: 0.0,
                        y: 0.0,
                        w: 0.0,
                    },
                };
                items.push(Item {
                    x: k.x,
                    y: k.y,
                    w: k.w,
                    row: items.len() as u32,
                });
            }
            n += b.num_rows();
            data.push(b);
        }
        sizes.push(n);
        let _ = std::fs::remove_file(path);
    }
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let offsets: Vec<usize> = std::iter::once(0)
        .chain(data.iter().scan(0, |acc, b| {
            *acc += b.num_rows();
            Some(*acc)
        }))
        .collect();
    let locate = |r: usize| -> (usize, usize) {
        let b = offsets.partition_point(|o| *o <= r) - 1;
        (b, r - offsets[b])
    };
    // Files (one unless the sample underestimated this one), then chunks.
    let files: Vec<Vec<ChunkRows>> = if boxes_mode {
        let mut start = 0;
        let chunks = sizes
            .iter()
            .map(|n| {
                let c: ChunkRows = (start..start + n).map(locate).collect();
                start += n;
                c
            })
            .collect();
        vec![chunks]
    } else {
        let weight: f64 = items.iter().map(|i| f64::from(i.w)).sum();
        let subs = if weight > budgets.file.budget {
            partition::partition_unsorted(&mut items, None, &budgets.file)
        } else {
            vec![partition::Leaf {
                cell: partition::root_cell(&items, &budgets.file),
                range: 0..items.len(),
            }]
        };
        subs.into_iter()
            .map(|s| {
                let slice = &mut items[s.range];
                partition::partition(slice, None, &budgets.chunk)
                    .into_iter()
                    .map(|c| {
                        slice[c.range]
                            .iter()
                            .map(|i| locate(i.row as usize))
                            .collect()
                    })
                    .collect()
            })
            .collect()
    };
    drop(items);
    files
        .into_iter()
        .enumerate()
        .map(|(k, chunks)| {
            let path = staging.join(format!("g{g}-{k}.parquet.tmp"));
            let summary = writer.write_file(&path, 0, &data, &chunks)?;
            let firsts: Vec<RecordBatch> = chunks
                .iter()
                .filter_map(|c| c.first().map(|(b, r)| data[*b].slice(*r, 1)))
                .collect();
            Ok(Written {
                path,
                chunks: summary.chunks,
                sample: concat_batches(&writer.schema, &firsts)?,
            })
        })
        .collect()
}

/// Admits work while the memory it needs fits in the limit (work larger than the limit runs
/// alone).
struct Gate {
    limit: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

struct Permit<'a> {
    gate: &'a Gate,
    size: usize,
}

impl Gate {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self, size: usize) -> Permit<'_> {
        let size = size.min(self.limit);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + size > self.limit && *used > 0 {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += size;
        Permit { gate: self, size }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut used = self.gate.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.size;
        self.gate.freed.notify_all();
    }
}

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

use arrow::array::{ArrayRef, AsArray, Float32Array, UInt32Array, UInt64Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef, UInt64Type};
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

/// The extra columns of a run: the row's number and its key.
const ROW: &str = "__fused_row";
const KX: &str = "__fused_x";
const KY: &str = "__fused_y";
const KW: &str = "__fused_w";

/// Where rows go: to a file planned from the sample, or to a predefined box.
enum Router {
    Tree { tree: Node, starts: Vec<usize> },
    Boxes(Vec<ChunkEntry>),
}

impl Router {
    fn dest(&self, x: f32, y: f32, row: u64) -> usize {
        match self {
            Router::Tree { tree, starts } => tree
                .route(x, y, row)
                .and_then(|s| starts.binary_search(&s).ok())
                .unwrap_or(0),
            Router::Boxes(b) => crate::run::box_of(b, f64::from(x), f64::from(y)),
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
        Some(mut b) => {
            b.sort_by_key(|c| (c.file_id, c.chunk_id));
            let mut groups: Vec<Vec<usize>> = Vec::new();
            for (i, c) in b.iter().enumerate() {
                match groups.last_mut() {
                    Some(g) if b[g[0]].file_id == c.file_id => g.push(i),
                    _ => groups.push(vec![i]),
                }
            }
            (Router::Boxes(b), groups)
        }
        None => {
            let (leaves, tree) = partition::partition_tree(&mut items, None, &budgets.file);
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
    let run_schema = run_schema(&schema);
    let t = std::time::Instant::now();
    distribute(
        files,
        opts,
        ctx,
        scratch,
        &schema,
        &run_schema,
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
            let out = write_group(
                g,
                dests,
                spill.path(),
                &writer,
                budgets,
                boxes_mode,
                staging,
            )?;
            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
            ctx.report(Progress::Writing { done: d, total });
            Ok(out)
        })
        .collect::<Result<_>>()?;
    // Number the files in plan order.
    let mut index = Vec::new();
    let mut samples = Vec::new();
    let mut id = first_id;
    for w in written.into_iter().flatten() {
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
    let nfiles = (id - first_id) as u64;
    let nchunks = index.len() as u64;
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

fn run_schema(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(ROW, DataType::UInt64, false));
    for k in [KX, KY, KW] {
        fields.push(Field::new(k, DataType::Float32, false));
    }
    Arc::new(Schema::new(fields))
}

fn run_path(dir: &Path, dest: usize) -> PathBuf {
    dir.join(format!("{dest}.arrows"))
}

/// The second pass: reads and prepares the input again, and appends every row to the run of
/// its destination.
#[allow(clippy::too_many_arguments)]
fn distribute(
    files: &[PathBuf],
    opts: &Arc<IngestOptions>,
    ctx: &Context,
    scratch: &Path,
    schema: &SchemaRef,
    run_schema: &SchemaRef,
    router: &Router,
    unit_rows: &[u64],
    ndest: usize,
    dir: &Path,
) -> Result<()> {
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
    let runs: Vec<Mutex<Option<StreamWriter<BufWriter<File>>>>> =
        (0..ndest).map(|_| Mutex::new(None)).collect();
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
                    let rows =
                        UInt64Array::from_iter_values(idx.iter().map(|j| row + u64::from(*j)));
                    let key = |f: fn(&prepare::Key) -> f32| -> ArrayRef {
                        Arc::new(Float32Array::from_iter_values(
                            idx.iter().map(|j| f(&p.keys[*j as usize])),
                        ))
                    };
                    let picked = take_record_batch(&batch, &UInt32Array::from(idx.clone()))?;
                    let mut cols = picked.columns().to_vec();
                    cols.push(Arc::new(rows));
                    cols.push(key(|k| k.x));
                    cols.push(key(|k| k.y));
                    cols.push(key(|k| k.w));
                    let out = RecordBatch::try_new(run_schema.clone(), cols)?;
                    let mut w = runs[dest].lock().unwrap_or_else(|p| p.into_inner());
                    if w.is_none() {
                        let path = run_path(dir, dest);
                        let f = File::create(&path)
                            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                        *w = Some(StreamWriter::try_new(
                            BufWriter::with_capacity(64 << 10, f),
                            run_schema,
                        )?);
                    }
                    if let Some(w) = w.as_mut() {
                        w.write(&out)?;
                    }
                }
                row += p.keys.len() as u64;
            }
            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
            ctx.report(Progress::Distributing { done: d, total });
            Ok(())
        })?;
    for r in runs {
        if let Some(mut w) = r.into_inner().unwrap_or_else(|p| p.into_inner()) {
            w.finish()?;
        }
    }
    Ok(())
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
    dests: &[usize],
    dir: &Path,
    writer: &Writer,
    budgets: &Budgets,
    boxes_mode: bool,
    staging: &Path,
) -> Result<Vec<Written>> {
    // Each destination's rows, in input order.
    let mut parts = Vec::new();
    for d in dests {
        let path = run_path(dir, *d);
        if !path.exists() {
            parts.push(None);
            continue;
        }
        let f =
            File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let reader = StreamReader::try_new(std::io::BufReader::with_capacity(1 << 20, f), None)?;
        let mut batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        // Each batch holds rows of one prepared batch (a contiguous range of row numbers, in
        // order), and ranges never interleave: ordering batches by their first row orders
        // the rows.
        let mut firsts = Vec::with_capacity(batches.len());
        for b in &batches {
            let rows = b.column_by_name(ROW).ok_or_else(missing)?;
            firsts.push(
                rows.as_primitive::<UInt64Type>()
                    .values()
                    .first()
                    .copied()
                    .unwrap_or(0),
            );
        }
        let mut order: Vec<usize> = (0..batches.len()).collect();
        order.sort_unstable_by_key(|i| firsts[*i]);
        let empty = RecordBatch::new_empty(reader_schema(&batches));
        let sorted: Vec<RecordBatch> = order
            .into_iter()
            .map(|i| std::mem::replace(&mut batches[i], empty.clone()))
            .collect();
        drop(batches);
        parts.push(Some(concat_batches(&reader_schema(&sorted), &sorted)?));
        let _ = std::fs::remove_file(&path);
    }
    let parts: Vec<RecordBatch> = parts.into_iter().flatten().collect();
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let sizes: Vec<usize> = parts.iter().map(|p| p.num_rows()).collect();
    let all = concat_batches(&parts[0].schema(), &parts)?;
    drop(parts);
    let col = |n: &str| -> Result<&arrow::array::PrimitiveArray<Float32Type>> {
        Ok(all
            .column_by_name(n)
            .ok_or_else(missing)?
            .as_primitive::<Float32Type>())
    };
    let (xs, ys, ws) = (col(KX)?, col(KY)?, col(KW)?);
    let mut items: Vec<Item> = (0..all.num_rows())
        .map(|i| Item {
            x: xs.value(i),
            y: ys.value(i),
            w: ws.value(i),
            row: i as u32,
        })
        .collect();
    let data = all.project(&(0..writer.schema.fields().len()).collect::<Vec<_>>())?;
    drop(all);
    // Files (one unless the sample underestimated this one), then chunks.
    let files: Vec<Vec<ChunkRows>> = if boxes_mode {
        let mut start = 0;
        let chunks = sizes
            .iter()
            .map(|n| {
                let c: ChunkRows = (start..start + n).map(|r| (0, r)).collect();
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
                    .map(|c| slice[c.range].iter().map(|i| (0, i.row as usize)).collect())
                    .collect()
            })
            .collect()
    };
    let data = [data];
    files
        .into_iter()
        .enumerate()
        .map(|(k, chunks)| {
            let path = staging.join(format!("g{g}-{k}.parquet.tmp"));
            let summary = writer.write_file(&path, 0, &data, &chunks)?;
            let firsts: Vec<RecordBatch> = chunks
                .iter()
                .filter_map(|c| c.first().map(|(_, r)| data[0].slice(*r, 1)))
                .collect();
            Ok(Written {
                path,
                chunks: summary.chunks,
                sample: concat_batches(&data[0].schema(), &firsts)?,
            })
        })
        .collect()
}

fn reader_schema(batches: &[RecordBatch]) -> SchemaRef {
    batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(Schema::empty()))
}

fn missing() -> Error {
    Error::Encode("a run lost its key columns".into())
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

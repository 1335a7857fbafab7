//! The first pass: every unit of every source read and prepared on all cores, counting rows
//! and weights and collecting each row's [`Item`] — all of them, or every `stride`-th when the
//! input has more rows than [`ITEM_CAP`]. The prepared batches are kept while they fit in the
//! memory limit; past it they are dropped and the second pass reads the input again
//! ([`crate::stream`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::options::IngestOptions;
use crate::partition::Item;
use crate::prepare::{self, Counts, Preparer};
use crate::run::{Context, Progress};
use crate::source::{Opened, Unit};

/// The memory prepared batches may hold before an ingestion streams through the temporary
/// folder instead.
pub const DEFAULT_MEMORY_LIMIT: usize = 384 << 20;

/// Rows whose items are all kept (16 bytes each); larger inputs keep a regular sample.
pub(crate) const ITEM_CAP: u64 = 8 << 20;

/// What the first pass learnt.
#[derive(Debug)]
pub(crate) struct Scan {
    /// The prepared batches (conformed to `schema`), when they fit in memory.
    pub batches: Option<Vec<RecordBatch>>,
    /// Items of all rows (stride 1) or of every `stride`-th row (weights scaled by `stride`).
    pub items: Vec<Item>,
    /// The sampling stride.
    pub stride: u64,
    /// The exact total weight.
    pub total_weight: f64,
    /// Rows prepared.
    pub rows: u64,
    /// The schema of all batches.
    pub schema: SchemaRef,
    /// Rows read, dropped, added.
    pub counts: Counts,
    /// Rows prepared by each unit, in order (the second pass numbers rows the same way).
    pub unit_rows: Vec<u64>,
}

/// A unit with how to prepare it and its place.
pub(crate) struct Job {
    pub preparer: Preparer,
    pub unit_no: Option<usize>,
    pub unit: Unit,
}

/// The units of the sources, in order.
pub(crate) fn jobs(opened: Vec<Opened>, opts: &Arc<IngestOptions>) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for src in opened {
        let preparer = Preparer::new(&src, opts.clone())?;
        let multi = src.units.len() > 1;
        for (u, unit) in src.units.into_iter().enumerate() {
            jobs.push(Job {
                preparer: preparer.clone(),
                unit_no: multi.then_some(u),
                unit,
            });
        }
    }
    Ok(jobs)
}

struct UnitScan {
    batches: Vec<RecordBatch>,
    schemas: Vec<SchemaRef>,
    sampled: Vec<(u64, prepare::Key)>,
    rows: u64,
    weight: f64,
    counts: Counts,
}

/// Runs the first pass.
pub(crate) fn scan(opened: Vec<Opened>, opts: &Arc<IngestOptions>, ctx: &Context) -> Result<Scan> {
    let limit = ctx.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT);
    let estimate: u64 = opened
        .iter()
        .map(|o| {
            o.rows
                .unwrap_or_else(|| std::fs::metadata(&o.file).map_or(0, |m| m.len() / 16))
        })
        .sum();
    let stride = estimate.div_ceil(ITEM_CAP).max(1);
    let jobs = jobs(opened, opts)?;
    let total = jobs.len() as u64;
    let (done, rows_so_far) = (AtomicU64::new(0), AtomicU64::new(0));
    let held = AtomicUsize::new(0);
    let streaming = AtomicBool::new(stride > 1);
    let units: Vec<UnitScan> = jobs
        .into_par_iter()
        .map(|job| {
            ctx.check()?;
            let mut u = UnitScan {
                batches: Vec::new(),
                schemas: Vec::new(),
                sampled: Vec::new(),
                rows: 0,
                weight: 0.0,
                counts: Counts::default(),
            };
            let mut first = 0u64;
            for raw in (job.unit)()? {
                let raw = raw?;
                let n = raw.num_rows() as u64;
                let p = job
                    .preparer
                    .prepare(&raw, first, job.unit_no, &mut u.counts)?;
                first += n;
                for (j, k) in p.keys.iter().enumerate() {
                    u.weight += f64::from(k.w);
                    let local = u.rows + j as u64;
                    if local.is_multiple_of(stride) {
                        u.sampled.push((local, *k));
                    }
                }
                u.rows += p.keys.len() as u64;
                if p.batch.num_rows() == 0 {
                    continue;
                }
                if !u.schemas.iter().any(|s| *s == p.batch.schema()) {
                    u.schemas.push(p.batch.schema());
                }
                if !streaming.load(Ordering::Relaxed) {
                    let size = p.batch.get_array_memory_size();
                    if held.fetch_add(size, Ordering::Relaxed) + size > limit {
                        streaming.store(true, Ordering::Relaxed);
                    } else {
                        u.batches.push(p.batch);
                    }
                }
            }
            if streaming.load(Ordering::Relaxed) {
                u.batches = Vec::new();
            }
            let r = rows_so_far.fetch_add(first, Ordering::SeqCst) + first;
            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
            ctx.report(Progress::Reading {
                done: d,
                total,
                rows: r,
            });
            Ok(u)
        })
        .collect::<Result<_>>()?;
    let streaming = streaming.load(Ordering::SeqCst);
    let mut counts = Counts::default();
    let mut schemas = Vec::new();
    let mut unit_rows = Vec::with_capacity(units.len());
    let (mut rows, mut total_weight) = (0u64, 0.0);
    let mut items = Vec::with_capacity(units.iter().map(|u| u.sampled.len()).sum());
    let mut held_batches = Vec::new();
    for u in units {
        counts.add(&u.counts);
        for s in u.schemas {
            if !schemas.contains(&s) {
                schemas.push(s);
            }
        }
        for (local, k) in u.sampled {
            let row = u32::try_from(rows + local)
                .map_err(|_| Error::Options("more than 4 billion rows in one ingestion".into()))?;
            items.push(Item {
                x: k.x,
                y: k.y,
                w: k.w * stride as f32,
                row,
            });
        }
        unit_rows.push(u.rows);
        rows += u.rows;
        total_weight += u.weight;
        if !streaming {
            held_batches.extend(u.batches);
        }
    }
    let schema = prepare::unify(&schemas);
    let batches = if streaming {
        None
    } else {
        Some(
            held_batches
                .iter()
                .map(|b| prepare::conform(b, &schema))
                .collect::<Result<Vec<_>>>()?,
        )
    };
    Ok(Scan {
        batches,
        items,
        stride,
        total_weight,
        rows,
        schema,
        counts,
        unit_rows,
    })
}

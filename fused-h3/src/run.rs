//! One raster-to-H3 ingestion: rasters opened, the resolutions settled, every chunk of every
//! raster assigned on all cores, partials merged, files written per `file_res` cell with row
//! groups per `chunk_res` cell, overviews, `_sample` last, then the dataset published.

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fused_core::proj::Projection;
use h3o::{LatLng, Resolution};
use rayon::prelude::*;
use serde::Serialize;

use crate::aggregate;
use crate::bucket::Buckets;
use crate::error::{Error, Result};
use crate::extract::{self, Assign, Partial};
use crate::geotiff::{ChunkReader, GeoTiff};
use crate::options::{H3Options, Metric};
use crate::sink;
use crate::write::{self, Layout, Row};

/// A step of an ingestion, reported while it runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Progress {
    /// Chunks of the rasters assigned to cells.
    Extracting {
        /// Chunks done.
        done: u64,
        /// Chunks in all.
        total: u64,
    },
    /// Files written.
    Writing {
        /// Files done.
        done: u64,
        /// Files in all.
        total: u64,
    },
}

/// A callback receiving [`Progress`].
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What an ingestion did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct H3Report {
    /// Where the dataset is.
    pub output: String,
    /// The output resolution.
    pub res: u8,
    /// Valid pixels read.
    pub pixels: u64,
    /// Rows written (at `res`).
    pub rows: u64,
    /// Files written.
    pub files: u64,
    /// Overview files written.
    pub overviews: u64,
    /// Seconds taken.
    pub seconds: f64,
    /// Where the temporary files were kept (`remove_tmp_files` off).
    pub kept_tmp: Option<String>,
}

/// Runs an ingestion of local rasters into a local folder.
pub(crate) fn run(
    inputs: &[PathBuf],
    output: &Path,
    opts: &H3Options,
    progress: Option<&ProgressFn>,
    cancel: Option<&AtomicBool>,
    memory_limit: Option<usize>,
) -> Result<H3Report> {
    let started = Instant::now();
    if output.exists()
        && !opts.overwrite
        && std::fs::read_dir(output)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Options(format!(
            "output {} already holds files; pass overwrite to replace it",
            output.display()
        )));
    }
    let rasters: Vec<GeoTiff> = inputs
        .iter()
        .map(|p| GeoTiff::open(p))
        .collect::<Result<_>>()?;
    let first = rasters
        .first()
        .ok_or_else(|| Error::Options("no input raster".into()))?;
    let projections: Vec<Projection> = rasters.iter().map(projection_of).collect::<Result<_>>()?;
    let res = match opts.res {
        Some(r) => r,
        None => infer_res(first, projections[0], opts)?,
    };
    let resolved = opts.resolve(res)?;
    let res_of =
        |r: u8| Resolution::try_from(r).map_err(|e| Error::Options(format!("resolution {r}: {e}")));
    let counts_mode = opts.metrics == [Metric::Cnt];
    let jobs: Vec<(usize, u32)> = rasters
        .iter()
        .enumerate()
        .flat_map(|(i, r)| (0..r.chunks).map(move |c| (i, c)))
        // A trial: the first raster's first two chunks.
        .filter(|(i, c)| !opts.debug_mode || (*i == 0 && *c < 2))
        .collect();
    let total = jobs.len() as u64;
    let done = AtomicU64::new(0);
    let assigns: Vec<Assign> = rasters
        .iter()
        .zip(&projections)
        .map(|(r, p)| {
            Ok(Assign {
                assign_res: res_of(resolved.assign_res)?,
                res: res_of(res)?,
                k_ring: u32::from(opts.k_ring),
                counts: counts_mode,
                projection: *p,
                nodata: opts.nodata.or(r.nodata),
                transform: r.transform,
            })
        })
        .collect::<Result<_>>()?;
    let layout = Layout {
        metrics: opts.metrics.clone(),
        disk: disk_size(opts.k_ring),
        sources: opts
            .include_source_url
            .then(|| inputs.iter().map(|p| p.display().to_string()).collect()),
        centres: false,
    };
    let staging = fused_ingest::stage_beside(output)?;
    let file_res = resolved.file_res.map(res_of).transpose()?;
    let chunk_res = resolved.chunk_res.map(res_of).transpose()?;
    // Partials go to buckets of row groups (or files), spilled past the budget.
    let temp = match &opts.tmp_path {
        Some(t) => {
            std::fs::create_dir_all(t).map_err(|e| Error::Io {
                context: format!("creating tmp_path {t}"),
                source: e,
            })?;
            PathBuf::from(t)
        }
        None => staging
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir),
    };
    let keep = !opts.remove_tmp_files;
    let budget = memory_limit.unwrap_or(PARTIALS_BUDGET);
    // Records per cell at resolution r: one for statistics; for categories, up to the values
    // its pixels (times their disks) bring.
    let pixel_m2 = rasters
        .iter()
        .zip(&projections)
        .map(|(r, p)| pixel_area_m2(r, *p))
        .fold(f64::INFINITY, f64::min)
        .max(1e-6);
    // Statistics: one record per pixel while cells span few pixels (up to 8: past that they
    // are filled, and merged per raster chunk — about two records, from chunk edges).
    let per_cell = |r: u8| -> f64 {
        let Ok(rr) = Resolution::try_from(r) else {
            return 1.0;
        };
        let pixels = rr.area_m2() / pixel_m2;
        if counts_mode {
            (pixels * layout.disk)
                .ceil()
                .clamp(1.0, MAX_CATEGORIES as f64)
        } else if pixels > 8.0 {
            2.0
        } else {
            pixels.ceil().max(1.0)
        }
    };
    let coarsest = resolved.chunk_res.or(resolved.file_res).unwrap_or(0);
    let buckets = Buckets::new(
        Some(sink::key_res(res, coarsest, per_cell(res))?),
        counts_mode,
        &temp,
        budget / 2,
        keep,
    )?;
    let categories: Mutex<HashSet<u64, BuildHasherDefault<extract::CellHasher>>> = Mutex::default();
    let pixels = AtomicU64::new(0);
    // Extract: chunks on all cores, one reader per raster and thread.
    jobs.par_iter().try_for_each_init(
        BTreeMap::<usize, ChunkReader>::new,
        |readers, &(i, c)| -> Result<()> {
            if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                return Err(Error::Cancelled);
            }
            if let std::collections::btree_map::Entry::Vacant(e) = readers.entry(i) {
                e.insert(rasters[i].reader()?);
            }
            let reader = readers
                .get_mut(&i)
                .ok_or_else(|| Error::Encode("reader vanished".into()))?;
            let window = reader.read(c)?;
            let mut part = Partial::default();
            extract::extract(&window, &assigns[i], i, &mut part);
            pixels.fetch_add(part.pixels, Ordering::Relaxed);
            if counts_mode {
                check_categories(&categories, &part)?;
            }
            buckets.add(part)?;
            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(p) = progress {
                p(&Progress::Extracting { done: d, total });
            }
            Ok(())
        },
    )?;
    let pixels = pixels.into_inner();
    tracing::debug!(pixels, "extracted in {:?}", started.elapsed());
    // Overview rows go to buckets of their own (one set per overview), so a raster of many
    // categories cannot hold them all in memory.
    let overview_budget = budget / 2 / resolved.overviews.len().max(1);
    let overview_buckets: Vec<Buckets> = resolved
        .overviews
        .iter()
        .map(|(r, cr)| {
            let key = sink::key_res(*r, *cr, per_cell(*r))?;
            Buckets::new(Some(key), counts_mode, &temp, overview_budget, keep)
        })
        .collect::<Result<_>>()?;
    // Finest first, each computed from the next finer one (merging is associative).
    let mut overview_order: Vec<usize> = (0..resolved.overviews.len()).collect();
    overview_order.sort_by_key(|k| std::cmp::Reverse(resolved.overviews[*k].0));
    // Files, in cell order.
    let mut sample: Vec<Row> = Vec::new();
    let cuts = sink::Cuts {
        file_res,
        chunk_res,
        max_rows: opts.max_rows_per_chunk,
        res: res_of(res)?,
    };
    let mut opened = 0;
    let drained = sink::drain(
        buckets,
        cuts,
        &layout,
        &mut |file| {
            opened += 1;
            if let Some(p) = progress {
                p(&Progress::Writing {
                    done: opened,
                    total: opened,
                });
            }
            let path = staging.path().join(format!("{file}.parquet"));
            write::FileWriter::create(&path, file as i64, &layout)
        },
        &mut |rows| {
            let mut finer: Option<Vec<Row>> = None;
            for &k in &overview_order {
                let r = res_of(resolved.overviews[k].0)?;
                let over = aggregate::to_parent(finer.as_deref().unwrap_or(rows), r);
                overview_buckets[k].add_rows(&over)?;
                finer = Some(over);
            }
            if sample.len() < 1000 {
                sample.extend(rows.iter().take(1000 - sample.len()).copied());
            }
            Ok(())
        },
    )?;
    tracing::debug!(
        rows = drained.rows,
        "files written at {:?}",
        started.elapsed()
    );
    // Overviews: one file each, a row group per overview chunk cell.
    let overview_dir = staging.path().join("overview");
    if !resolved.overviews.is_empty() {
        std::fs::create_dir_all(&overview_dir).map_err(|e| Error::Io {
            context: "creating overview/".into(),
            source: e,
        })?;
    }
    let overview_layout = Layout {
        centres: true,
        sources: None,
        ..layout.clone()
    };
    resolved
        .overviews
        .par_iter()
        .zip(overview_buckets)
        .map(|((r, cr), buckets)| {
            let path = overview_dir.join(format!("hex{r}.parquet"));
            let cuts = sink::Cuts {
                file_res: None,
                chunk_res: Some(res_of(*cr)?),
                max_rows: 0,
                res: res_of(*r)?,
            };
            let mut open = |_| write::FileWriter::create(&path, 0, &overview_layout);
            sink::drain(buckets, cuts, &overview_layout, &mut open, &mut |_| Ok(())).map(|_| ())
        })
        .collect::<Result<Vec<()>>>()?;
    // `_sample` last: a few rows, and the chunk index.
    let sample_rows = sample;
    let meta = serde_json::json!({
        "revision": concat!("fused-rs ", env!("CARGO_PKG_VERSION")),
        "step_config": {"type": "raster_to_h3", "config": opts, "res": res},
        "num_rows": drained.rows,
        "num_files": drained.files,
        "num_chunks": drained.index.len(),
    })
    .to_string();
    fused_ingest::write_plain_sample(
        &staging.path().join("_sample"),
        &layout.batch(&sample_rows)?,
        &drained.index,
        &meta,
    )?;
    fused_ingest::publish_dir(staging, output, opts.overwrite)?;
    Ok(H3Report {
        output: output.display().to_string(),
        res,
        pixels,
        rows: drained.rows,
        files: drained.files,
        overviews: resolved.overviews.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        kept_tmp: keep.then(|| temp.display().to_string()),
    })
}

/// Memory the partial rows may take before they are spilled to the temporary folder.
pub const PARTIALS_BUDGET: usize = 256 << 20;

/// Cells a pixel counts in: the size of a k-ring disk.
fn disk_size(k: u8) -> f64 {
    let k = f64::from(k);
    1.0 + 3.0 * k * (k + 1.0)
}

fn projection_of(r: &GeoTiff) -> Result<Projection> {
    match r.epsg {
        Some(code) => Projection::from_epsg(code).ok_or_else(|| Error::Raster {
            file: r.path.display().to_string(),
            reason: format!(
                "its CRS EPSG:{code} cannot be transformed here (supported: lon/lat, Web \
                 Mercator, UTM zones)"
            ),
        }),
        None => Err(Error::Raster {
            file: r.path.display().to_string(),
            reason: "its GeoKeys name no EPSG CRS".into(),
        }),
    }
}

/// Distinct values past which `cnt` is refused: it counts pixels per value, which suits
/// categories (land cover classes), not a continuous band.
pub const MAX_CATEGORIES: usize = 65_536;

fn check_categories(
    seen: &Mutex<HashSet<u64, BuildHasherDefault<extract::CellHasher>>>,
    part: &Partial,
) -> Result<()> {
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    for (_, bits) in part.counts.keys() {
        if seen.insert(*bits) && seen.len() > MAX_CATEGORIES {
            return Err(Error::Options(format!(
                "metric cnt counts pixels per distinct value, and the input has more than \
                 {MAX_CATEGORIES} distinct values (a continuous band?): use statistics instead, \
                 e.g. metrics avg, min, max"
            )));
        }
    }
    Ok(())
}

/// A pixel's area in m², at the raster's centre.
fn pixel_area_m2(r: &GeoTiff, p: Projection) -> f64 {
    let (cx, cy) = r.centre(r.width / 2, r.height / 2);
    let (dx, dy) = r.pixel_size();
    match p {
        Projection::LonLat => {
            let (lon, lat) = p.to_lonlat(cx, cy);
            let utm = Projection::utm_zone_of(lon, lat);
            let (x0, y0) = utm.from_lonlat(lon, lat);
            let (x1, y1) = utm.from_lonlat(lon + dx, lat + dy);
            ((x1 - x0) * (y1 - y0)).abs()
        }
        _ => (dx * dy).abs(),
    }
}

/// The resolution whose cells are just larger than a pixel's share (`pixel area / 7k`), at the
/// raster's centre, minus `res_offset` — as the SDK infers it.
fn infer_res(r: &GeoTiff, p: Projection, opts: &H3Options) -> Result<u8> {
    let (cx, cy) = r.centre(r.width / 2, r.height / 2);
    let (lon, lat) = p.to_lonlat(cx, cy);
    let area = pixel_area_m2(r, p);
    let share = area / f64::from((7 * u32::from(opts.k_ring)).max(1));
    let ll = LatLng::new(lat, lon).map_err(|e| Error::Raster {
        file: r.path.display().to_string(),
        reason: format!("its centre is not a valid position: {e}"),
    })?;
    let mut found = 1;
    for res in (1..=15u8).rev() {
        let Ok(rr) = Resolution::try_from(res) else {
            continue;
        };
        if ll.to_cell(rr).area_m2() > share {
            found = res;
            break;
        }
    }
    Ok(found.saturating_sub(opts.res_offset))
}

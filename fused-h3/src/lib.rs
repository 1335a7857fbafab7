//! Rasters into H3 hexagons: the pixels of GeoTIFFs (COGs included) assigned to H3 cells,
//! aggregated per cell, and written as a partitioned dataset — `<output>/<file cell>.parquet`
//! with rows sorted by `hex` and one row group per `chunk_res` cell, `overview/hex{r}.parquet`,
//! and `_sample` (the chunk index `fused.get_chunks_metadata` reads).
//!
//! ```no_run
//! # async fn demo() -> Result<(), fused_h3::Error> {
//! use fused_h3::{Metric, run_ingest_raster_to_h3};
//! let report = run_ingest_raster_to_h3(vec!["dem.tif".into()], "dem_h3")
//!     .metrics(vec![Metric::Avg, Metric::Max])
//!     .res(9)
//!     .run_local()
//!     .await?;
//! println!("{} cells at res {}", report.rows, report.res);
//! # Ok(()) }
//! ```
//!
//! Semantics where the SDK leaves them open: a pixel (its centre, reprojected to lon/lat) is
//! assigned the cell at `res + res_offset`; with `k_ring` > 0 every cell of the disk around it
//! counts too; each is taken to its parent at `res`, so a pixel adds several *hits* to a cell.
//! `cnt` writes one row per (cell, value) with `cnt` hits and `cnt_total` hits of the cell;
//! the statistics are over hits (`avg`, `min`, `max`, population `stddev`), and `sum` divides
//! by the disk's size so each pixel's value is counted once over the dataset. A `cnt` column
//! (hits) is kept with the statistics so that readers can re-aggregate.

mod aggregate;
mod bucket;
mod error;
mod extract;
mod fill;
pub mod geotiff;
mod geotiff_write;
mod lzw;
mod options;
mod read;
mod run;
mod sink;
mod write;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use error::{Error, Result};
pub use geotiff_write::{Georef, write_f32};
pub use options::{H3Options, Metric, Resolved};
pub use read::{Query, read_h3_dataset};
pub use run::{H3Report, MAX_CATEGORIES, PARTIALS_BUDGET, Progress, ProgressFn};

/// Starts an ingestion of rasters (files, or folders of `.tif`/`.tiff`) into the dataset at
/// `output`.
pub fn run_ingest_raster_to_h3(inputs: Vec<PathBuf>, output: impl Into<PathBuf>) -> RasterToH3 {
    RasterToH3 {
        inputs,
        output: output.into(),
        options: H3Options::default(),
        progress: None,
        cancel: None,
        memory_limit: None,
    }
}

/// A raster-to-H3 ingestion being configured.
#[derive(Clone)]
pub struct RasterToH3 {
    inputs: Vec<PathBuf>,
    output: PathBuf,
    options: H3Options,
    progress: Option<ProgressFn>,
    cancel: Option<Arc<AtomicBool>>,
    memory_limit: Option<usize>,
}

impl std::fmt::Debug for RasterToH3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RasterToH3")
            .field("inputs", &self.inputs)
            .field("output", &self.output)
            .field("options", &self.options)
            .finish()
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $t:ty => $field:ident;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, v: $t) -> Self {
                self.options.$field = v.into();
                self
            }
        )*
    };
}

impl RasterToH3 {
    setters! {
        /// `cnt`, or statistics.
        metrics: Vec<Metric> => metrics;
        /// The output resolution.
        res: u8 => res;
        /// Ring distance of each pixel's cells.
        k_ring: u8 => k_ring;
        /// Assignment resolution offset.
        res_offset: u8 => res_offset;
        /// Row-group resolution.
        chunk_res: u8 => chunk_res;
        /// File resolution (`-1`: one file).
        file_res: i8 => file_res;
        /// Overview resolutions.
        overview_res: Vec<u8> => overview_res;
        /// Overview row-group resolutions.
        overview_chunk_res: Vec<u8> => overview_chunk_res;
        /// Rows per row group instead of `chunk_res` cells.
        max_rows_per_chunk: u64 => max_rows_per_chunk;
        /// The `source_url` column.
        include_source_url: bool => include_source_url;
        /// Nodata value.
        nodata: f64 => nodata;
        /// Replace an existing dataset.
        overwrite: bool => overwrite;
        /// Pixels per extract task (accepted for the SDK; unused).
        target_chunk_size: u64 => target_chunk_size;
        /// Extract only the first raster's first two chunks.
        debug_mode: bool => debug_mode;
        /// Delete the temporary files at the end (`false`: keep them).
        remove_tmp_files: bool => remove_tmp_files;
        /// Folder for the temporary files.
        tmp_path: String => tmp_path;
        /// Steps to run (`overview` may be left out).
        steps: Vec<String> => steps;
    }

    /// All options at once.
    #[must_use]
    pub fn options(mut self, o: H3Options) -> Self {
        self.options = o;
        self
    }

    /// Receives [`Progress`].
    #[must_use]
    pub fn on_progress(mut self, f: ProgressFn) -> Self {
        self.progress = Some(f);
        self
    }

    /// Stops the run (nothing published) once `flag` turns true.
    #[must_use]
    pub fn cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Memory the partial rows may take before they spill to the temporary folder (default
    /// [`PARTIALS_BUDGET`]).
    #[must_use]
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Runs the ingestion here, on all cores.
    pub async fn run_local(self) -> Result<H3Report> {
        tokio::task::spawn_blocking(move || {
            let inputs = expand(&self.inputs)?;
            run::run(
                &inputs,
                &self.output,
                &self.options,
                self.progress.as_ref(),
                self.cancel.as_deref(),
                self.memory_limit,
            )
        })
        .await
        .map_err(|e| Error::Encode(format!("the ingestion thread failed: {e}")))?
    }
}

/// Files as given; folders listed for `.tif`/`.tiff` (sorted).
fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::Io {
                    context: format!("listing {}", p.display()),
                    source: e,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff")
                    })
                })
                .collect();
            files.sort();
            out.extend(files);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(Error::Options(format!(
                "input {} does not exist",
                p.display()
            )));
        }
    }
    if out.is_empty() {
        return Err(Error::Options("no input raster".into()));
    }
    Ok(out)
}

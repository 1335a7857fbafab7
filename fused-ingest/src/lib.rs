//! Vector ingestion into the Fused partitioned table format, and its readers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fused_ingest::Error> {
//! use fused_ingest::{PartitioningMethod, ingest};
//! let report = ingest("buildings.parquet", "tables/buildings")
//!     .partitioning_method(PartitioningMethod::Area)
//!     .partitioning_maximum_per_chunk(5_000.0)
//!     .run_local()
//!     .await?;
//! println!("{} rows in {} files, {} chunks", report.rows, report.files, report.chunks);
//! # Ok(()) }
//! ```
//!
//! A table is `<output>/<file_id>.parquet` files (one row group per chunk, WKB geometry in
//! EPSG:4326 with GeoParquet 1.1 metadata) and `<output>/_sample`, written last, whose metadata
//! holds the chunk index (`fused:format_version` 5, `fused:_metadata`) that
//! [`get_chunks_metadata`], the SDK's `fused.get_chunks_metadata` and box queries read.
//!
//! # How it works
//!
//! 1. **Read and prepare** every piece of input (a Parquet row group, or a whole file of the
//!    other formats) on all cores: geometry to WKB in EPSG:4326 (reprojected from Web Mercator
//!    or UTM), multi-parts exploded and large polygons subdivided when asked; rows without a
//!    geometry, with a non-finite coordinate, or (by default) outside lon [-180, 180] / lat
//!    [-90, 90] are dropped and counted in [`Counts`]. Each row keeps its centroid and weight.
//! 2. **Partition** (see below) into files of at most `partitioning_maximum_per_file` of the
//!    weight, then each file into chunks of at most `partitioning_maximum_per_chunk`.
//! 3. **Write** one Parquet file per file, one row group per chunk (rows in input order), then
//!    `_sample`, in a staging folder; **publish** by renaming it into place (an atomic exchange
//!    when replacing a local table), or, for object storage, by uploading the files and
//!    `_sample` last (a replaced table's files get new ids, so a reader of the old `_sample`
//!    never reads a rewritten file).
//!
//! Inputs whose prepared rows exceed the memory limit ([`Ingest::memory_limit`], default
//! [`DEFAULT_MEMORY_LIMIT`]) take two passes instead: files are planned on the first pass's
//! centroids (a regular sample past 8 M rows), the second pass sends each row to its file's
//! run in the temporary folder, and each file is then loaded alone, partitioned exactly (split
//! again when the sample underestimated it) and written.
//!
//! # The partitioning, where the SDK leaves it open
//!
//! Fused runs its partitioner on its servers; this one follows the documented behaviour:
//! - A partition owns a *cell* (the root cell is the box of the centroids, widened to obey the
//!   ratios). It is split (a) at the UTM zone boundary nearest the centroids' mean, or the
//!   equator, when `partitioning_force_utm` applies and its centroids span zones or
//!   hemispheres; (b) in half across its long side when the cell is wider (taller) than
//!   `partitioning_max_width_ratio` (`_height_ratio`) times its height (width) — so every
//!   chunk's cell obeys the ratios; (c) when over budget, at the mean (or weighted median) of
//!   the centroids along the cell's long side. Partitions whose rows all share one centroid
//!   are cut into consecutive runs of rows within the budget (`split_identical_centroids`).
//! - Budgets: a tenth of the total weight per file and a hundredth per chunk by default; with
//!   no maximum per file, `target_num_chunks` below 10 asks for fewer, larger files
//!   (`total / target_num_chunks`).
//! - `subdivide_start`/`_stop`: polygons larger than `start` square degrees are cut by halving
//!   their box until every piece is at most `stop` (default: `start`), 16 halvings at most.
//! - `partitioning_schema_input`: rows go to the first box (by file and chunk id) holding their
//!   centroid, else the nearest; files keep the boxes' file ids, boxes no row reached are left
//!   out, and chunk boxes shrink to their rows.
//! - `ingest_nongeospatial` sorts by `partition_col` and cuts by row count.

mod error;
mod geometry;
mod nongeo;
mod options;
mod partition;
mod prepare;
mod publish;
mod read;
mod run;
mod scan;
mod source;
mod stream;
mod write;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use fused_core::storage::Storage;

pub use error::{Error, Result};
pub use options::{
    ForceUtm, IngestOptions, NonGeoOptions, OpenConfig, PartitioningMethod, SplitMethod,
    SubdivideMethod,
};
pub use prepare::{Counts, GEOMETRY};
pub use publish::{publish_dir, stage_beside};
pub use read::{
    chunk_index_of_sample, get_chunk_from_table, get_chunks_metadata, index_table, read_bbox,
    read_chunk_index,
};
pub use run::{IngestReport, Progress, ProgressFn};
pub use scan::DEFAULT_MEMORY_LIMIT;
pub use write::{COVERING, ChunkEntry, FORMAT_VERSION, write_plain_sample};

/// Inputs of an ingestion: a path or URL, or several.
pub trait IntoInputs {
    /// The inputs as strings.
    fn into_inputs(self) -> Vec<String>;
}

impl IntoInputs for &str {
    fn into_inputs(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}

impl IntoInputs for String {
    fn into_inputs(self) -> Vec<String> {
        vec![self]
    }
}

impl IntoInputs for PathBuf {
    fn into_inputs(self) -> Vec<String> {
        vec![self.display().to_string()]
    }
}

impl IntoInputs for &std::path::Path {
    fn into_inputs(self) -> Vec<String> {
        vec![self.display().to_string()]
    }
}

impl<T: Into<String>> IntoInputs for Vec<T> {
    fn into_inputs(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}

/// Starts a geospatial ingestion of `input` (files, folders or storage URLs) into the table
/// at `output` (a local folder, or a storage URL with [`Ingest::storage`]).
pub fn ingest(input: impl IntoInputs, output: impl Into<String>) -> Ingest {
    Ingest {
        inputs: input.into_inputs(),
        output: output.into(),
        options: IngestOptions::default(),
        ctx: run::Context::default(),
    }
}

/// Starts a non-geospatial ingestion (rows cut by count, sorted by `partition_col` when set).
pub fn ingest_nongeospatial(input: impl IntoInputs, output: impl Into<String>) -> IngestNonGeo {
    IngestNonGeo {
        inputs: input.into_inputs(),
        output: output.into(),
        options: NonGeoOptions::default(),
        ctx: run::Context::default(),
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $t:ty => $set:expr;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, v: $t) -> Self {
                #[allow(clippy::redundant_closure_call)]
                ($set)(&mut self.options, v);
                self
            }
        )*
    };
}

macro_rules! context_setters {
    () => {
        /// Resolves storage URLs (`fd://`, `s3://`, …) of inputs and output through `storage`.
        #[must_use]
        pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
            self.ctx.storage = Some(storage);
            self
        }

        /// Receives [`Progress`] while the ingestion runs.
        #[must_use]
        pub fn on_progress(mut self, f: ProgressFn) -> Self {
            self.ctx.progress = Some(f);
            self
        }

        /// Stops the ingestion (with [`Error::Cancelled`], nothing published) once `flag`
        /// turns true.
        #[must_use]
        pub fn cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
            self.ctx.cancel = Some(flag);
            self
        }

        /// Records the id of the job running this ingestion in `fused:job_meta`.
        #[must_use]
        pub fn job_id(mut self, id: impl Into<String>) -> Self {
            self.ctx.job_id = Some(id.into());
            self
        }

        /// The memory prepared rows may hold (default [`DEFAULT_MEMORY_LIMIT`]); larger inputs
        /// are streamed through the temporary folder, in two passes.
        #[must_use]
        pub fn memory_limit(mut self, bytes: usize) -> Self {
            self.ctx.memory_limit = Some(bytes);
            self
        }

        /// Where downloads and extracted archives go (default: the system's temporary
        /// folder).
        #[must_use]
        pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
            self.ctx.temp_dir = Some(dir.into());
            self
        }
    };
}

/// A geospatial ingestion being configured; [`run_local`](Ingest::run_local) runs it.
#[derive(Debug, Clone)]
pub struct Ingest {
    inputs: Vec<String>,
    output: String,
    options: IngestOptions,
    ctx: run::Context,
}

impl Ingest {
    setters! {
        /// All options at once.
        options: IngestOptions => |o: &mut IngestOptions, v| *o = v;
        /// The metadata table's path (gets a copy of `_sample`).
        output_metadata: &str => |o: &mut IngestOptions, v: &str| o.output_metadata = Some(v.to_owned());
        /// Keep only folder entries whose name ends with this.
        file_suffix: &str => |o: &mut IngestOptions, v: &str| o.file_suffix = Some(v.to_owned());
        /// Read only these columns.
        load_columns: Vec<String> => |o: &mut IngestOptions, v| o.load_columns = Some(v);
        /// Drop these columns.
        remove_cols: Vec<String> => |o: &mut IngestOptions, v| o.remove_cols = v;
        /// One row per part of multi-part geometries.
        explode_geometries: bool => |o: &mut IngestOptions, v| o.explode_geometries = v;
        /// Drop rows outside the WGS 84 range (default true).
        drop_out_of_bounds: bool => |o: &mut IngestOptions, v| o.drop_out_of_bounds = Some(v);
        /// The quantity summed per partition.
        partitioning_method: PartitioningMethod => |o: &mut IngestOptions, v| o.partitioning_method = v;
        /// The most of it per file.
        partitioning_maximum_per_file: f64 => |o: &mut IngestOptions, v| o.partitioning_maximum_per_file = Some(v);
        /// The most of it per chunk.
        partitioning_maximum_per_chunk: f64 => |o: &mut IngestOptions, v| o.partitioning_maximum_per_chunk = Some(v);
        /// The widest cell, as width / height.
        partitioning_max_width_ratio: f64 => |o: &mut IngestOptions, v| o.partitioning_max_width_ratio = v;
        /// The tallest cell, as height / width.
        partitioning_max_height_ratio: f64 => |o: &mut IngestOptions, v| o.partitioning_max_height_ratio = v;
        /// Keep files or chunks within one UTM zone (`None`: no constraint).
        partitioning_force_utm: Option<ForceUtm> => |o: &mut IngestOptions, v| o.partitioning_force_utm = v;
        /// Mean or median splits.
        partitioning_split_method: SplitMethod => |o: &mut IngestOptions, v| o.partitioning_split_method = v;
        /// Subdivide geometries larger than `start` square degrees into pieces of at most
        /// `stop` (default `start`).
        subdivide: (f64, Option<f64>) => |o: &mut IngestOptions, (start, stop)| {
            o.subdivide_method = Some(SubdivideMethod::Area);
            o.subdivide_start = Some(start);
            o.subdivide_stop = stop;
        };
        /// Split partitions of identical centroids by rows.
        split_identical_centroids: bool => |o: &mut IngestOptions, v| o.split_identical_centroids = v;
        /// The number of files aimed at when no maximum per file is given (at most 10 count).
        target_num_chunks: u64 => |o: &mut IngestOptions, v| o.target_num_chunks = v;
        /// Point geometries from these longitude and latitude columns.
        lonlat_cols: (String, String) => |o: &mut IngestOptions, v| o.lonlat_cols = Some(v);
        /// Predefined boxes to assign rows to.
        partitioning_schema_input: &str => |o: &mut IngestOptions, v: &str| o.partitioning_schema_input = Some(v.to_owned());
        /// Reader options of non-Parquet inputs.
        gdal_config: OpenConfig => |o: &mut IngestOptions, v| o.gdal_config = v;
        /// Write the `bbox` covering column.
        write_covering_bbox: bool => |o: &mut IngestOptions, v| o.write_covering_bbox = v;
        /// Replace an existing table.
        overwrite: bool => |o: &mut IngestOptions, v| o.overwrite = v;
    }

    context_setters!();

    /// The options as set.
    pub fn options_ref(&self) -> &IngestOptions {
        &self.options
    }

    /// The SDK's job step (`partition_geospatial`) for this ingestion, as `fused.ingest(…)`
    /// sends it to a server.
    pub fn job_step(&self) -> serde_json::Value {
        let mut step = serde_json::to_value(&self.options).unwrap_or_default();
        step["type"] = "partition_geospatial".into();
        step["input"] = serde_json::json!(self.inputs);
        step["output"] = self.output.clone().into();
        step
    }

    /// Parses the SDK's job step (`partition_geospatial`).
    pub fn from_job_step(step: &serde_json::Value) -> Result<Self> {
        let options: IngestOptions = serde_json::from_value(step.clone())
            .map_err(|e| Error::Options(format!("invalid partition_geospatial step: {e}")))?;
        let (inputs, output) = step_io(step)?;
        Ok(ingest(inputs, output).options(options))
    }

    /// Runs the ingestion here, on all cores.
    pub async fn run_local(self) -> Result<IngestReport> {
        run::run(self.inputs, self.output, self.options, self.ctx).await
    }
}

/// The inputs and output of a job step.
fn step_io(step: &serde_json::Value) -> Result<(Vec<String>, String)> {
    let inputs = match &step["input"] {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::Options(format!("input {v} is not a string")))
            })
            .collect::<Result<_>>()?,
        other => {
            return Err(Error::Options(format!(
                "input must be a path or a list, got {other}"
            )));
        }
    };
    let output = step["output"]
        .as_str()
        .ok_or_else(|| Error::Options("the step has no output".into()))?
        .to_owned();
    Ok((inputs, output))
}

/// A non-geospatial ingestion being configured.
#[derive(Debug, Clone)]
pub struct IngestNonGeo {
    inputs: Vec<String>,
    output: String,
    options: NonGeoOptions,
    ctx: run::Context,
}

impl IngestNonGeo {
    setters! {
        /// All options at once.
        options: NonGeoOptions => |o: &mut NonGeoOptions, v| *o = v;
        /// Sort by this column.
        partition_col: &str => |o: &mut NonGeoOptions, v: &str| o.partition_col = Some(v.to_owned());
        /// The most rows per file.
        partitioning_maximum_per_file: u64 => |o: &mut NonGeoOptions, v| o.partitioning_maximum_per_file = v;
        /// The most rows per chunk.
        partitioning_maximum_per_chunk: u64 => |o: &mut NonGeoOptions, v| o.partitioning_maximum_per_chunk = v;
        /// Replace an existing table.
        overwrite: bool => |o: &mut NonGeoOptions, v| o.overwrite = v;
    }

    context_setters!();

    /// The options as set.
    pub fn options_ref(&self) -> &NonGeoOptions {
        &self.options
    }

    /// The SDK's job step (`partition_nongeospatial`) for this ingestion.
    pub fn job_step(&self) -> serde_json::Value {
        let mut step = serde_json::to_value(&self.options).unwrap_or_default();
        step["type"] = "partition_nongeospatial".into();
        step["input"] = serde_json::json!(self.inputs);
        step["output"] = self.output.clone().into();
        step
    }

    /// Parses the SDK's job step (`partition_nongeospatial`).
    pub fn from_job_step(step: &serde_json::Value) -> Result<Self> {
        let options: NonGeoOptions = serde_json::from_value(step.clone())
            .map_err(|e| Error::Options(format!("invalid partition_nongeospatial step: {e}")))?;
        let (inputs, output) = step_io(step)?;
        Ok(ingest_nongeospatial(inputs, output).options(options))
    }

    /// Runs the ingestion here.
    pub async fn run_local(self) -> Result<IngestReport> {
        nongeo::run(self.inputs, self.output, self.options, self.ctx).await
    }
}

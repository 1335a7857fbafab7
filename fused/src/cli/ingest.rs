//! `fused ingest INPUT... OUTPUT [options]`: vector files into a partitioned GeoParquet table,
//! with a progress bar. Flags are named after the SDK's `fused.ingest` parameters.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use fused::crates::ingest::{self, ForceUtm, PartitioningMethod, Progress, SplitMethod};
use indicatif::{ProgressBar, ProgressStyle};

/// `--partitioning-method`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Method {
    Area,
    Length,
    Coords,
    Rows,
}

/// `--partitioning-force-utm`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Utm {
    File,
    Chunk,
    None,
}

/// `--partitioning-split-method`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Split {
    Mean,
    Median,
}

/// `fused ingest`.
#[derive(Debug, clap::Args)]
pub(crate) struct IngestArgs {
    /// Input files or folders (GeoParquet, Parquet/CSV with lon/lat, CSV with WKT, GeoJSON,
    /// GeoJSONSeq, FlatGeobuf, Shapefile or zipped Shapefile, GeoPackage), then the output
    /// folder.
    #[arg(required = true, num_args = 2.., value_name = "INPUT... OUTPUT")]
    paths: Vec<String>,
    /// The quantity summed per partition.
    #[arg(long, value_enum, default_value = "rows")]
    partitioning_method: Method,
    /// The most of it per file (default: a tenth of the total).
    #[arg(long)]
    partitioning_maximum_per_file: Option<f64>,
    /// The most of it per chunk (default: a hundredth of the total).
    #[arg(long)]
    partitioning_maximum_per_chunk: Option<f64>,
    /// The widest partition, as width / height.
    #[arg(long, default_value_t = 2.0)]
    partitioning_max_width_ratio: f64,
    /// The tallest partition, as height / width.
    #[arg(long, default_value_t = 2.0)]
    partitioning_max_height_ratio: f64,
    /// Keep each file or chunk within one UTM zone.
    #[arg(long, value_enum, default_value = "chunk")]
    partitioning_force_utm: Utm,
    /// Split at the mean or the median of the centroids.
    #[arg(long, value_enum, default_value = "mean")]
    partitioning_split_method: Split,
    /// Subdivide geometries larger than this (square degrees).
    #[arg(long)]
    subdivide_start: Option<f64>,
    /// Do not cut pieces smaller than this (default: --subdivide-start).
    #[arg(long, requires = "subdivide_start")]
    subdivide_stop: Option<f64>,
    /// Keep partitions whose rows all share a centroid whole, even over budget.
    #[arg(long)]
    no_split_identical_centroids: bool,
    /// The number of files aimed at without --partitioning-maximum-per-file (at most 10).
    #[arg(long, default_value_t = 500)]
    target_num_chunks: u64,
    /// Point geometries from these longitude,latitude columns.
    #[arg(long, value_name = "LON,LAT")]
    lonlat_cols: Option<String>,
    /// Read only these columns (comma-separated).
    #[arg(long, value_delimiter = ',')]
    load_columns: Option<Vec<String>>,
    /// Drop these columns (comma-separated).
    #[arg(long, value_delimiter = ',')]
    remove_cols: Vec<String>,
    /// Keep only folder entries whose name ends with this.
    #[arg(long)]
    file_suffix: Option<String>,
    /// One row per part of multi-part geometries.
    #[arg(long)]
    explode_geometries: bool,
    /// Keep rows outside lon [-180, 180] / lat [-90, 90].
    #[arg(long)]
    keep_out_of_bounds: bool,
    /// Predefined partition boxes (a table folder or a Parquet of file_id, chunk_id, bbox_*).
    #[arg(long)]
    partitioning_schema_input: Option<String>,
    /// Layer (table) of a GeoPackage input.
    #[arg(long)]
    layer: Option<String>,
    /// Write the GeoParquet 1.1 bbox covering column.
    #[arg(long)]
    write_covering_bbox: bool,
    /// Also write the chunk index (`_sample`) here.
    #[arg(long)]
    output_metadata: Option<String>,
    /// Replace an existing table.
    #[arg(long)]
    overwrite: bool,
    /// Memory (MiB) the rows may hold; larger inputs stream through the temporary folder.
    #[arg(long, value_name = "MIB")]
    memory_limit: Option<usize>,
    /// Temporary folder for downloads and runs (default: the system's).
    #[arg(long)]
    temp_dir: Option<std::path::PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) async fn ingest(a: IngestArgs) -> fused::Result<ExitCode> {
    let mut paths = a.paths;
    let output = paths.pop().unwrap_or_default();
    let mut job = ingest::ingest(paths, output)
        .partitioning_method(match a.partitioning_method {
            Method::Area => PartitioningMethod::Area,
            Method::Length => PartitioningMethod::Length,
            Method::Coords => PartitioningMethod::Coords,
            Method::Rows => PartitioningMethod::Rows,
        })
        .partitioning_max_width_ratio(a.partitioning_max_width_ratio)
        .partitioning_max_height_ratio(a.partitioning_max_height_ratio)
        .partitioning_force_utm(match a.partitioning_force_utm {
            Utm::File => Some(ForceUtm::File),
            Utm::Chunk => Some(ForceUtm::Chunk),
            Utm::None => None,
        })
        .partitioning_split_method(match a.partitioning_split_method {
            Split::Mean => SplitMethod::Mean,
            Split::Median => SplitMethod::Median,
        })
        .split_identical_centroids(!a.no_split_identical_centroids)
        .target_num_chunks(a.target_num_chunks)
        .remove_cols(a.remove_cols)
        .explode_geometries(a.explode_geometries)
        .drop_out_of_bounds(!a.keep_out_of_bounds)
        .write_covering_bbox(a.write_covering_bbox)
        .overwrite(a.overwrite);
    if let Some(v) = a.partitioning_maximum_per_file {
        job = job.partitioning_maximum_per_file(v);
    }
    if let Some(v) = a.partitioning_maximum_per_chunk {
        job = job.partitioning_maximum_per_chunk(v);
    }
    if let Some(start) = a.subdivide_start {
        job = job.subdivide((start, a.subdivide_stop));
    }
    if let Some(cols) = a.lonlat_cols {
        let Some((lon, lat)) = cols.split_once(',') else {
            return Err(fused::Error::Usage(format!(
                "--lonlat-cols takes LON,LAT (two names), got {cols:?}"
            )));
        };
        job = job.lonlat_cols((lon.trim().to_owned(), lat.trim().to_owned()));
    }
    if let Some(c) = a.load_columns {
        job = job.load_columns(c);
    }
    if let Some(s) = &a.file_suffix {
        job = job.file_suffix(s);
    }
    if let Some(s) = &a.partitioning_schema_input {
        job = job.partitioning_schema_input(s);
    }
    if let Some(s) = &a.output_metadata {
        job = job.output_metadata(s);
    }
    if let Some(mib) = a.memory_limit {
        job = job.memory_limit(mib.saturating_mul(1 << 20));
    }
    if let Some(dir) = a.temp_dir {
        job = job.temp_dir(dir);
    }
    if let Some(layer) = a.layer {
        job = job.gdal_config(ingest::OpenConfig {
            layer: Some(layer),
            ..Default::default()
        });
    }
    let bar = (!a.quiet).then(|| {
        let b = ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(200));
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}] {wide_bar} {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    if let Some(bar) = bar.clone() {
        job = job.on_progress(Arc::new(move |p| match p {
            Progress::Reading { done, total, rows } => {
                bar.set_length(*total);
                bar.set_position(*done);
                bar.set_message(format!("reading ({rows} rows)"));
            }
            Progress::Partitioned { files, chunks } => {
                bar.set_message(format!("partitioned into {files} files, {chunks} chunks"));
            }
            Progress::Writing { done, total } => {
                bar.set_length(*total);
                bar.set_position(*done);
                bar.set_message("writing files".to_owned());
            }
            Progress::Distributing { done, total } => {
                bar.set_length(*total);
                bar.set_position(*done);
                bar.set_message("sorting rows into files".to_owned());
            }
            Progress::Published => bar.set_message("published".to_owned()),
            _ => {}
        }));
    }
    let result = job.run_local().await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let r = result?;
    let c = r.counts;
    println!(
        "{}: {} rows in {} files, {} chunks ({:.2} s)",
        r.output, r.rows, r.files, r.chunks, r.seconds
    );
    if c.dropped_empty + c.dropped_out_of_bounds + c.added_by_explode + c.added_by_subdivide > 0 {
        println!(
            "read {} rows: dropped {} without geometry and {} out of bounds; added {} by \
             explode, {} by subdivide",
            c.rows_read,
            c.dropped_empty,
            c.dropped_out_of_bounds,
            c.added_by_explode,
            c.added_by_subdivide
        );
    }
    Ok(ExitCode::SUCCESS)
}

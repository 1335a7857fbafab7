//! `fused h3 ingest INPUT... OUTPUT [options]`: rasters into an H3 dataset, with a progress
//! bar. Flags are named after the SDK's `run_ingest_raster_to_h3` parameters.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use fused::crates::h3::{Metric, Progress, run_ingest_raster_to_h3};
use indicatif::{ProgressBar, ProgressStyle};

/// `fused h3`.
#[derive(Debug, clap::Args)]
pub(crate) struct H3Args {
    #[command(subcommand)]
    command: H3Command,
}

#[derive(Debug, Subcommand)]
enum H3Command {
    /// Ingest GeoTIFFs (or folders of them) into an H3 dataset.
    Ingest(IngestArgs),
}

/// `fused h3 ingest`.
#[derive(Debug, clap::Args)]
struct IngestArgs {
    /// Input rasters or folders, then the output folder.
    #[arg(required = true, num_args = 2.., value_name = "INPUT... OUTPUT")]
    paths: Vec<PathBuf>,
    /// `cnt`, or any of avg,min,max,stddev,sum (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "cnt")]
    metrics: Vec<String>,
    /// Output resolution (inferred from the pixel size when unset).
    #[arg(long)]
    res: Option<u8>,
    /// Ring distance of each pixel's cells.
    #[arg(long, default_value_t = 1)]
    k_ring: u8,
    /// Pixels are assigned at res + res_offset.
    #[arg(long, default_value_t = 1)]
    res_offset: u8,
    /// Row-group resolution.
    #[arg(long)]
    chunk_res: Option<u8>,
    /// File resolution (-1: one file).
    #[arg(long, allow_hyphen_values = true)]
    file_res: Option<i8>,
    /// Overview resolutions (comma-separated; empty for none).
    #[arg(long, value_delimiter = ',')]
    overview_res: Option<Vec<u8>>,
    /// Rows per row group instead of chunk_res cells.
    #[arg(long, default_value_t = 0)]
    max_rows_per_chunk: u64,
    /// Nodata value (overrides the rasters').
    #[arg(long, allow_hyphen_values = true)]
    nodata: Option<f64>,
    /// Leave out the source_url column.
    #[arg(long)]
    no_source_url: bool,
    /// Replace an existing dataset.
    #[arg(long)]
    overwrite: bool,
    /// Steps to run (comma-separated, of extract,partition,metadata,overview; overview may
    /// be left out).
    #[arg(long, value_delimiter = ',')]
    steps: Option<Vec<String>>,
    /// Folder for the temporary files (default: beside the output).
    #[arg(long)]
    tmp_path: Option<String>,
    /// Keep the temporary files (their folder is printed).
    #[arg(long)]
    keep_tmp_files: bool,
    /// A quick trial: the first raster's first two chunks only.
    #[arg(long)]
    debug_mode: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) async fn h3(a: H3Args) -> fused::Result<ExitCode> {
    let H3Command::Ingest(a) = a.command;
    let mut paths = a.paths;
    let output = paths.pop().unwrap_or_default();
    let metrics = a
        .metrics
        .iter()
        .map(|m| {
            serde_json::from_value::<Metric>(serde_json::Value::String(m.trim().to_owned()))
                .map_err(|_| {
                    fused::Error::Usage(format!(
                        "unknown metric {m:?} (cnt, avg, min, max, stddev, sum)"
                    ))
                })
        })
        .collect::<fused::Result<Vec<_>>>()?;
    let mut job = run_ingest_raster_to_h3(paths, output)
        .metrics(metrics)
        .k_ring(a.k_ring)
        .res_offset(a.res_offset)
        .max_rows_per_chunk(a.max_rows_per_chunk)
        .include_source_url(!a.no_source_url)
        .overwrite(a.overwrite)
        .remove_tmp_files(!a.keep_tmp_files)
        .debug_mode(a.debug_mode);
    if let Some(s) = a.steps {
        job = job.steps(s);
    }
    if let Some(t) = a.tmp_path {
        job = job.tmp_path(t);
    }
    if let Some(r) = a.res {
        job = job.res(r);
    }
    if let Some(r) = a.chunk_res {
        job = job.chunk_res(r);
    }
    if let Some(r) = a.file_res {
        job = job.file_res(r);
    }
    if let Some(r) = a.overview_res {
        job = job.overview_res(r);
    }
    if let Some(n) = a.nodata {
        job = job.nodata(n);
    }
    let bar = (!a.quiet).then(|| {
        let b = ProgressBar::new(0);
        b.enable_steady_tick(Duration::from_millis(200));
        b.set_style(
            ProgressStyle::with_template("{msg} [{elapsed}] {wide_bar} {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    if let Some(bar) = bar.clone() {
        job = job.on_progress(Arc::new(move |p| match p {
            Progress::Extracting { done, total } => {
                bar.set_length(*total);
                bar.set_position(*done);
                bar.set_message("assigning pixels");
            }
            Progress::Writing { done, total } => {
                bar.set_length(*total);
                bar.set_position(*done);
                bar.set_message("writing files");
            }
            _ => {}
        }));
    }
    let result = job.run_local().await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let r = result.map_err(fused_core_error)?;
    println!(
        "{}: {} pixels → {} cells at res {} in {} files, {} overviews ({:.2} s)",
        r.output, r.pixels, r.rows, r.res, r.files, r.overviews, r.seconds
    );
    if let Some(t) = r.kept_tmp {
        println!("temporary files kept in {t} (h3-partials-*)");
    }
    Ok(ExitCode::SUCCESS)
}

fn fused_core_error(e: fused::crates::h3::Error) -> fused::Error {
    fused::Error::Core(e.into())
}

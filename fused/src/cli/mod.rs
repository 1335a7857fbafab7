//! Command-line interface.

mod cache;
mod files;
mod h3;
mod ingest;
mod jobs;
mod remote;
mod run;
mod serve;
mod token;
mod udf;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// fused-rs: run UDFs locally, cached, and over HTTP as files and XYZ map tiles.
#[derive(Debug, Parser)]
#[command(name = "fused", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Fused API (and the demo UDFs) over HTTP, or HTTPS with --tls-cert/--tls-key.
    Serve(serve::ServeArgs),
    /// Run a UDF locally and write its output.
    Run(run::RunArgs),
    /// The server's files (fd://): ls, get, put, rm, sign.
    Files(files::FilesArgs),
    /// Saved UDFs on a server: ls, show, save, pull, share, rm.
    Udf(udf::UdfArgs),
    /// API tokens of a server's data folder: create, ls, revoke.
    Token(token::TokenArgs),
    /// Cached results on this machine (cached() and the run cache): ls, clear.
    Cache(cache::CacheArgs),
    /// Batch jobs on a server: ls, status, logs [--follow], cancel, wait.
    Jobs(jobs::JobsArgs),
    /// Run batch jobs from a server's job store (more workers for `fused serve`).
    Worker(jobs::WorkerArgs),
    /// Ingest vector files into a partitioned GeoParquet table (the Fused table format).
    Ingest(ingest::IngestArgs),
    /// Rasters into H3 hexagons: `fused h3 ingest INPUT... OUTPUT`.
    H3(h3::H3Args),
}

pub(crate) async fn dispatch(cli: Cli) -> fused::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve::serve(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Files(a) => files::files(a).await,
        Command::Udf(a) => udf::udf(a).await,
        Command::Token(a) => token::token(a).await,
        Command::Cache(a) => cache::cache(a).await,
        Command::Jobs(a) => jobs::jobs(a).await,
        Command::Worker(a) => jobs::worker(a).await,
        Command::Ingest(a) => ingest::ingest(a).await,
        Command::H3(a) => h3::h3(a).await,
    }
}

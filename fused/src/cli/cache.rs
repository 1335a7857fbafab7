//! `fused cache ls|clear`: what `cached()` and the run cache keep on this machine.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use fused_cache::{CacheStorage, StorageCache};

/// `fused cache`.
#[derive(Debug, clap::Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
    /// Also a server's data folder (its response cache in `cache/`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// List the caches: folder, entries, size.
    Ls,
    /// Remove cached entries (all caches, or only those whose folder contains --only).
    Clear {
        /// Only caches whose folder path contains this text.
        #[arg(long)]
        only: Option<String>,
    },
}

/// Every cache folder: `cached()` folders, the run cache's builds, a server's cache.
fn folders(data_dir: Option<&PathBuf>) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Ok(base) = fused_cache::base_dir(CacheStorage::Auto) {
        roots.push(base.join("cached_data"));
    }
    roots.push(fused::run_cache::default_dir());
    if let Some(d) = data_dir {
        roots.push(d.join("cache"));
    }
    let mut out = Vec::new();
    for r in roots {
        if let Ok(entries) = std::fs::read_dir(&r) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    out.push(e.path());
                }
            }
        }
    }
    out.sort();
    out
}

pub(crate) async fn cache(a: CacheArgs) -> fused::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| fused::Error::Io {
        context: "writing to standard output".into(),
        source: e,
    };
    match a.command {
        CacheCommand::Ls => {
            writeln!(out, "{:>8}  {:>12}  folder", "entries", "bytes").map_err(io)?;
            for f in folders(a.data_dir.as_ref()) {
                let entries = StorageCache::local(&f)?.entries().await?;
                let bytes: u64 = entries.iter().filter_map(|m| m.size).sum();
                writeln!(out, "{:>8}  {:>12}  {}", entries.len(), bytes, f.display())
                    .map_err(io)?;
            }
        }
        CacheCommand::Clear { only } => {
            let mut total = 0;
            for f in folders(a.data_dir.as_ref()) {
                if only
                    .as_ref()
                    .is_some_and(|o| !f.display().to_string().contains(o))
                {
                    continue;
                }
                total += StorageCache::local(&f)?.clear().await?;
            }
            eprintln!("removed {total} entries");
        }
    }
    Ok(ExitCode::SUCCESS)
}

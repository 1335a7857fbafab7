//! `fused run`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args as ClapArgs;
use fused::{Args, FormatPrefs, LocalEngine, Tile, UdfCall, UdfRegistry};

/// Options of `fused run`.
#[derive(Debug, ClapArgs)]
pub(crate) struct RunArgs {
    /// The UDF to run (one of the demos: hello, vector_tile, raster_tile).
    name: String,
    /// A parameter, as NAME=VALUE (repeat for more; a repeated NAME makes a list).
    #[arg(short, long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Run as a tile call, Z/X/Y (the UDF receives the tile's bounds).
    #[arg(long, value_name = "Z/X/Y")]
    tile: Option<String>,
    /// Output format, or a comma-separated preference list (parquet, geojson, json, csv,
    /// feather, png, tiff, npy). Default: parquet for tables, png for images, json for values.
    #[arg(short, long)]
    format: Option<String>,
    /// Write the output to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

fn parse_tile(s: &str) -> fused::Result<Tile> {
    let parts: Vec<&str> = s.split('/').collect();
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.trim().parse().ok()).collect();
    match nums.as_deref() {
        Some([z, x, y]) => Ok(Tile::new(*x, *y, *z)?),
        _ => Err(fused::Error::Usage(format!(
            "--tile must be Z/X/Y with three integers, got {s:?}"
        ))),
    }
}

pub(crate) async fn run(a: RunArgs) -> fused::Result<ExitCode> {
    let registry = Arc::new(UdfRegistry::new());
    fused::demos::register(&registry)?;
    if registry.get(&a.name).is_none() {
        let names: Vec<String> = registry
            .list()
            .iter()
            .map(|u| u.name().to_owned())
            .collect();
        return Err(fused::Error::Usage(format!(
            "no UDF named {:?}; available: {}",
            a.name,
            names.join(", ")
        )));
    }
    let mut args = Args::new();
    for p in &a.params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| fused::Error::Usage(format!("--param must be NAME=VALUE, got {p:?}")))?;
        args.push_text(k.trim(), v);
    }
    let mut call = UdfCall::new(a.name.as_str(), args);
    let tile = a.tile.as_deref().map(parse_tile).transpose()?;
    if let Some(t) = tile {
        call = call.with_tile(t);
    }
    let options = fused::Options::load()?;
    // Runs are cached on disk too (per build of this binary): running the same call again is
    // answered from the cache until its max age.
    let cache = fused::run_cache::open(&fused::run_cache::default_dir(), 64 << 20, 1 << 30)?;
    let engine = LocalEngine::with_cache(registry, cache, options.run_timeout());
    let result = engine.run(call).await?;
    eprint!("{}", result.logs.stdout);
    eprint!("{}", result.logs.stderr);
    let output = match result.output {
        Ok(o) => o,
        Err(f) => {
            eprintln!("error: {}: {}", f.class, f.message);
            return Ok(ExitCode::FAILURE);
        }
    };
    let format = FormatPrefs::parse(a.format.as_deref().unwrap_or(""))
        .choose_for(&output, tile.is_some())?;
    let in_tile = tile.map(|tile| fused::encode::TileLayer {
        tile,
        layer: &a.name,
    });
    let encoded = fused::encode::encode_in(&output, format, in_tile)?;
    let io = |context: String| move |source| fused::Error::Io { context, source };
    match &a.output {
        Some(path) => {
            std::fs::write(path, &encoded.body)
                .map_err(io(format!("writing {}", path.display())))?;
            eprintln!(
                "wrote {} bytes of {format} to {} in {:.1} ms",
                encoded.body.len(),
                path.display(),
                result.elapsed.as_secs_f64() * 1e3
            );
        }
        None => {
            let textual = encoded.content_type.starts_with("application/json")
                || encoded.content_type.starts_with("text/");
            let mut out = std::io::stdout().lock();
            if !textual && out.is_terminal() {
                return Err(fused::Error::Usage(format!(
                    "{format} is binary; write it to a file with --output FILE, or pick --format json/geojson/csv"
                )));
            }
            out.write_all(&encoded.body)
                .map_err(io("writing to stdout".into()))?;
            if textual {
                let _ = out.write_all(b"\n");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

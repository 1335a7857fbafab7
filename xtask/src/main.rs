//! Developer tasks: `cargo xtask test`, `cargo xtask bench serve`.

mod bench;
mod bench_cache;
mod bench_files;
mod bench_h3;
mod bench_ingest;
mod bench_python;
mod bench_submit;
mod hello;
mod pyenv;
mod test;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  test [--no-lint] [-- <nextest args>]
                     set up the Python interop environment (target/py), then run fmt and
                     clippy checks, every test (nextest) and the doc tests
  bench serve [--duration SECS]
                     requests/s and latency of the server against an axum hello-world,
                     measured with wrk at 64 connections (release builds)
  pyenv              only create or update the Python environment
  hello-server --port N
                     the axum hello-world baseline used by `bench serve`
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("pyenv") => pyenv::ensure().map(|_| ()),
        Some("hello-server") => hello::run(&args[1..]),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate).
fn root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    here.canonicalize().unwrap_or(here)
}

/// Runs a command in the workspace root, failing with its name when it fails.
fn sh(cmd: &mut std::process::Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let status = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// `cargo`, as the one that runs us.
fn cargo() -> std::process::Command {
    std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

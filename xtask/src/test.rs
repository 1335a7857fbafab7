//! `cargo xtask test`: everything the README's test command promises.

use std::process::Command;

use crate::{cargo, pyenv, sh};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let lint = !args.iter().any(|a| a == "--no-lint");
    let passthrough: Vec<&String> = args.iter().skip_while(|a| *a != "--").skip(1).collect();
    let python = pyenv::ensure()?;
    ensure_postgres()?;
    ensure_chromium()?;
    if lint {
        sh(cargo().args(["fmt", "--all", "--", "--check"]))?;
        sh(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    let has_nextest = Command::new("cargo-nextest")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || cargo()
            .args(["nextest", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
    let mut tests = cargo();
    if has_nextest {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!(
            "xtask: cargo-nextest not found; using cargo test (install it with `cargo install cargo-nextest`)"
        );
        tests.args(["test", "--workspace", "--no-fail-fast"]);
    }
    tests.args(passthrough).env("FUSED_TEST_PYTHON", &python);
    sh(&mut tests)?;
    sh(cargo().args(["test", "--workspace", "--doc"]))?;
    eprintln!("xtask: all tests passed");
    Ok(())
}

/// The PostgreSQL server binaries the job store tests start a server with (Debian's
/// `postgresql` package), installed when missing.
fn ensure_postgres() -> Result<(), String> {
    let present = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("bin/initdb").exists());
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing Debian's postgresql (the job store tests start a server)");
    sh(Command::new("apt-get").args(["install", "-y", "-qq", "postgresql"])).map_err(|e| {
        format!("{e}\ninstall PostgreSQL's server (apt-get install postgresql) and run again")
    })
}

/// Debian's Chromium, which the viewer's end-to-end tests drive headless, installed when
/// missing.
fn ensure_chromium() -> Result<(), String> {
    if std::path::Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian's chromium (the viewer tests drive it headless)");
    sh(Command::new("apt-get").args(["install", "-y", "-qq", "chromium"]))
        .map_err(|e| format!("{e}\ninstall Chromium (apt-get install chromium) and run again"))
}

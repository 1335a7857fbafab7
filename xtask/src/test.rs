//! `cargo xtask test`: everything the README's test command promises.

use std::process::Command;

use crate::{cargo, pyenv, sh};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let lint = !args.iter().any(|a| a == "--no-lint");
    let passthrough: Vec<&String> = args.iter().skip_while(|a| *a != "--").skip(1).collect();
    let python = pyenv::ensure()?;
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

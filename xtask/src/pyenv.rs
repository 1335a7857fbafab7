//! The Python environment of the interop tests: a virtualenv under `target/py` with the pinned
//! packages of `tests/interop/requirements.txt`, rebuilt when that file changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, sh};

/// Creates or updates the environment; returns its interpreter.
pub(crate) fn ensure() -> Result<PathBuf, String> {
    let req = root().join("tests/interop/requirements.txt");
    let wanted =
        std::fs::read_to_string(&req).map_err(|e| format!("reading {}: {e}", req.display()))?;
    let pip = ["-r".to_owned(), req.display().to_string()];
    ensure_venv(&root().join("target/py"), &pip, &wanted)
}

/// A virtualenv at `venv` with `pip install PIP…` done, rebuilt when `wanted` (a description of
/// what it should hold) changes; returns its interpreter.
pub(crate) fn ensure_venv(venv: &Path, pip: &[String], wanted: &str) -> Result<PathBuf, String> {
    let python = venv.join("bin/python");
    let stamp = venv.join(".requirements");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted) {
        return Ok(python);
    }
    let base = std::env::var("FUSED_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "xtask: creating the Python environment in {} (once; about a minute)",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(venv).map_err(|e| format!("removing {}: {e}", venv.display()))?;
    }
    sh(Command::new(&base).args(["-m", "venv"]).arg(venv)).map_err(|e| {
        format!(
            "{e}\n(is Python 3.10+ with the venv module installed? set FUSED_PYTHON to choose one)"
        )
    })?;
    sh(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(pip))?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(python)
}

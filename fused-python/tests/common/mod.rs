//! What the tests of this crate share.

use std::path::{Path, PathBuf};

/// The test virtualenv's interpreter (`cargo xtask test` creates it; `FUSED_TEST_PYTHON`
/// overrides it, relative to the workspace).
pub(crate) fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = std::env::var_os("FUSED_TEST_PYTHON")
        .map(|p| root.join(p))
        .unwrap_or_else(|| root.join("target/py/bin/python"));
    assert!(
        p.exists(),
        "no Python test environment at {}: run `cargo xtask test`",
        p.display()
    );
    p
}

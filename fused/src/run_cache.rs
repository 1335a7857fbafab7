//! The persistent UDF run cache: memory over a folder, scoped to this build of the binary.
//!
//! Native UDFs are compiled in, so a rebuilt binary may compute different results for the same
//! UDF identity: entries live under a folder named after the executable's build (its size and
//! modification time), and the folders of other builds are removed when a cache opens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fused_cache::{MemoryCache, StorageCache, TieredCache};
use sha2::{Digest, Sha256};

use crate::Result;

/// An id of the running executable's build.
pub fn build_id() -> String {
    let exe = std::env::current_exe().ok();
    let meta = exe.as_ref().and_then(|p| std::fs::metadata(p).ok());
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    if let Some(m) = meta {
        h.update(m.len().to_le_bytes());
        if let Ok(t) = m.modified().and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_err(std::io::Error::other)
        }) {
            h.update(t.as_nanos().to_le_bytes());
        }
    }
    hex::encode(&h.finalize()[..8])
}

/// The default folder of the run cache: the `cache_directory` option, else the temp folder.
pub fn default_dir() -> PathBuf {
    fused_core::Options::load()
        .ok()
        .and_then(|o| o.cache_directory)
        .unwrap_or_else(std::env::temp_dir)
        .join("fused-rs-runs")
}

/// A run cache in `dir`: `memory_bytes` in memory over at most `disk_bytes` on disk (no disk
/// tier when it is 0).
pub fn open(dir: &Path, memory_bytes: u64, disk_bytes: u64) -> Result<Arc<dyn fused_core::Cache>> {
    let memory = MemoryCache::new(memory_bytes);
    if disk_bytes == 0 {
        return Ok(Arc::new(memory));
    }
    let build = build_id();
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::Io {
        context: format!("creating {}", dir.display()),
        source: e,
    })?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let is_build = name.len() == 16
                && name
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit());
            if is_build && name.to_string_lossy() != build && e.path().is_dir() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let storage = StorageCache::local(dir.join(&build))?.with_max_bytes(disk_bytes);
    Ok(Arc::new(TieredCache::new(memory, storage)))
}

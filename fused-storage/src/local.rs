//! Local roots: the symlink check `object_store`'s file system backend does not make.

use std::path::Path;

use fused_core::{Error, Result};

/// Fails unless `path` (the file system path a backend will use) resolves, through any
/// symlinks on the way, inside `root`.
///
/// The deepest existing ancestor is canonicalized, so a path that does not exist yet (an
/// upload) is checked through the folders that do.
pub(crate) fn check_inside(root: &Path, path: &Path, shown: &str) -> Result<()> {
    if !path.starts_with(root) {
        return Err(Error::InvalidPath {
            path: shown.to_owned(),
            reason: "outside the storage root".into(),
        });
    }
    let mut probe = path;
    loop {
        match std::fs::canonicalize(probe) {
            Ok(real) if real.starts_with(root) => return Ok(()),
            Ok(_) => {
                return Err(Error::InvalidPath {
                    path: shown.to_owned(),
                    reason: "a symlink leads outside the storage root".into(),
                });
            }
            Err(_) if std::fs::symlink_metadata(probe).is_ok() => {
                return Err(Error::InvalidPath {
                    path: shown.to_owned(),
                    reason: "a dangling symlink is in the way".into(),
                });
            }
            Err(_) => match probe.parent() {
                Some(p) if p.starts_with(root) => probe = p,
                _ => return Ok(()),
            },
        }
    }
}

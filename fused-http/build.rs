//! Bundles the web viewer: our own page, script and style from `viewer/src`, and MapLibre GL
//! from npm (installed with `npm ci` from `viewer/package-lock.json` into the build folder,
//! never into the source tree). Without npm the server still builds; its page then says that
//! the map library is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let viewer = manifest.join("viewer");
    for p in [
        "viewer/src",
        "viewer/package.json",
        "viewer/package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-env-changed=FUSED_VIEWER_NO_NPM");
    let dist = out.join("viewer");
    if let Err(e) = std::fs::create_dir_all(&dist) {
        panic!("creating {}: {e}", dist.display());
    }
    // Our own files: every file of `viewer/src`, served flat under `/viewer/`.
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(viewer.join("src")) {
        Ok(e) => e,
        Err(e) => panic!("reading viewer/src: {e}"),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_file() && !name.starts_with('.') {
            copy(&entry.path(), &dist.join(&name));
            files.push(name);
        }
    }
    match maplibre(&viewer, &out.join("npm")) {
        Ok(pkg) => {
            copy(
                &pkg.join("dist/maplibre-gl.js"),
                &dist.join("maplibre-gl.js"),
            );
            copy(
                &pkg.join("dist/maplibre-gl.css"),
                &dist.join("maplibre-gl.css"),
            );
            copy(&pkg.join("LICENSE.txt"), &dist.join("maplibre-LICENSE.txt"));
        }
        Err(why) => {
            println!(
                "cargo:warning=the viewer's map library is not bundled ({why}); the page at / \
                 will show UDFs without a map. Install Node.js and npm, then rebuild."
            );
            write(
                &dist.join("maplibre-gl.js"),
                b"/* MapLibre GL was not bundled at build time */\n",
            );
            write(&dist.join("maplibre-gl.css"), b"");
            write(&dist.join("maplibre-LICENSE.txt"), b"");
        }
    }
    files.extend(["maplibre-gl.js", "maplibre-gl.css", "maplibre-LICENSE.txt"].map(String::from));
    files.sort();
    // The table the server serves them from: (name, content type, bytes).
    let mut table = String::from("&[\n");
    for name in &files {
        let ct = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("html") => "text/html; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            _ => "text/plain; charset=utf-8",
        };
        table.push_str(&format!(
            "    ({name:?}, {ct:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/viewer/{name}\")).as_slice()),\n"
        ));
    }
    table.push_str("]\n");
    write(&out.join("viewer_assets.rs"), table.as_bytes());
}

/// The installed `maplibre-gl` package: `npm ci` in `work` when its lock file changed.
fn maplibre(viewer: &Path, work: &Path) -> Result<PathBuf, String> {
    if std::env::var_os("FUSED_VIEWER_NO_NPM").is_some() {
        return Err("FUSED_VIEWER_NO_NPM is set".into());
    }
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let lock = std::fs::read(viewer.join("package-lock.json")).map_err(|e| e.to_string())?;
    let pkg = work.join("node_modules/maplibre-gl");
    let installed = std::fs::read(work.join("package-lock.json")).ok();
    if installed.as_deref() != Some(lock.as_slice()) || !pkg.join("dist/maplibre-gl.js").exists() {
        copy(&viewer.join("package.json"), &work.join("package.json"));
        copy(
            &viewer.join("package-lock.json"),
            &work.join("package-lock.json"),
        );
        let status = Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--loglevel=error",
            ])
            .current_dir(work)
            .status()
            .map_err(|e| format!("running npm: {e}"))?;
        if !status.success() {
            // Leave no lock behind, so the next build tries again.
            let _ = std::fs::remove_file(work.join("package-lock.json"));
            return Err(format!("`npm ci` failed ({status})"));
        }
    }
    Ok(pkg)
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!("copying {} to {}: {e}", from.display(), to.display());
    }
}

fn write(to: &Path, bytes: &[u8]) {
    if let Err(e) = std::fs::write(to, bytes) {
        panic!("writing {}: {e}", to.display());
    }
}

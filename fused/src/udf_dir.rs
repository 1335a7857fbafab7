//! `fused serve --udfs DIR`: every UDF folder (the SDK's `meta.json` + `<name>.py` layout), `.zip`
//! or `.py` file in DIR served as a code UDF under its name (the folder's or file's name), and
//! reloaded when its files change (checked every two seconds); a UDF whose file goes away is
//! withdrawn. A UDF that does not load is skipped with the reason logged, and the others serve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fused_core::udf::CodeRuntime;
use fused_core::{UdfMeta, UdfRegistry};
use fused_http::server::AppState;

/// How often the folder is checked for changes.
const POLL: Duration = Duration::from_secs(2);

/// What a UDF's files looked like when loaded: their newest change and total size.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Stamp {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut size = 0;
    let mut visit = |p: &Path| {
        if let Ok(m) = std::fs::metadata(p) {
            newest = newest.max(m.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            size += m.len();
        }
    };
    visit(path);
    if path.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for e in entries.flatten() {
            visit(&e.path());
        }
    }
    (newest, size)
}

/// The UDF sources in `dir`, by the name they serve under.
fn sources(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_owned();
        let usable = !name.starts_with('.')
            && (path.join("meta.json").is_file()
                || matches!(
                    path.extension().and_then(|x| x.to_str()),
                    Some("py" | "zip")
                ));
        if usable {
            out.insert(name, path);
        }
    }
    out
}

/// Loads and registers one UDF source under `name`.
async fn load_one(
    name: &str,
    path: &Path,
    registry: &UdfRegistry,
    runtime: &dyn CodeRuntime,
) -> Result<(), String> {
    let mut meta = UdfMeta::load(path).map_err(|e| e.to_string())?;
    meta.name = Some(name.to_owned());
    let udf = runtime.load(&meta).await.map_err(|f| {
        let line = f.lineno.map(|l| format!(" (line {l})")).unwrap_or_default();
        format!("{}: {}{line}", f.class, f.message)
    })?;
    registry
        .register((*udf).clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Serves the UDFs of `dir` on `state`'s registry, each with its default shared token: loads
/// them now (their names are returned), then watches for changes in the background.
pub async fn serve_dir(
    dir: PathBuf,
    state: Arc<AppState>,
    runtime: Arc<dyn CodeRuntime>,
) -> Vec<String> {
    let mut loaded: BTreeMap<String, Stamp> = BTreeMap::new();
    refresh(&dir, &state, runtime.as_ref(), &mut loaded).await;
    let names = loaded.keys().cloned().collect();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(POLL).await;
            refresh(&dir, &state, runtime.as_ref(), &mut loaded).await;
        }
    });
    names
}

/// One check of the folder; new UDFs get their shared tokens.
async fn refresh(
    dir: &Path,
    state: &AppState,
    runtime: &dyn CodeRuntime,
    loaded: &mut BTreeMap<String, Stamp>,
) {
    if sync(dir, &state.registry, runtime, loaded).await
        && let Err(e) = state.share_registered().await
    {
        tracing::warn!("shared tokens of the UDFs of {}: {e}", dir.display());
    }
}

/// Brings the registry in line with the folder; whether anything changed.
async fn sync(
    dir: &Path,
    registry: &UdfRegistry,
    runtime: &dyn CodeRuntime,
    loaded: &mut BTreeMap<String, Stamp>,
) -> bool {
    let found = sources(dir);
    let mut changed = false;
    for (name, path) in &found {
        let s = stamp(path);
        if loaded.get(name) == Some(&s) {
            continue;
        }
        match load_one(name, path, registry, runtime).await {
            Ok(()) => tracing::info!("UDF {name} loaded from {}", path.display()),
            Err(e) => tracing::warn!("UDF {name} ({}) not loaded: {e}", path.display()),
        }
        // Failed loads are stamped too: retried when the files change again.
        loaded.insert(name.clone(), s);
        changed = true;
    }
    let gone: Vec<String> = loaded
        .keys()
        .filter(|n| !found.contains_key(*n))
        .cloned()
        .collect();
    for name in gone {
        loaded.remove(&name);
        if registry.remove(&name) {
            tracing::info!("UDF {name} withdrawn: its files are gone");
        }
        changed = true;
    }
    changed
}

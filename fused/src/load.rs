//! `fused::load`: a UDF from whatever names it, in the order the Python SDK's `fused.load`
//! tries: a GitHub URL (its folder or `.py` fetched over HTTPS), raw code (text with a line
//! break), a `.py` file, a `.zip`, a folder, a shared token, then a saved UDF's id or name on a
//! server.

use std::collections::HashMap;
use std::path::Path;

use fused_core::UdfMeta;
use fused_http::FusedApi;

use crate::{Error, Result};

/// Where GitHub's raw files are served (overridable, for tests and mirrors, with
/// `FUSED_GITHUB_RAW_URL`).
fn raw_base() -> String {
    std::env::var("FUSED_GITHUB_RAW_URL")
        .unwrap_or_else(|_| "https://raw.githubusercontent.com".into())
        .trim_end_matches('/')
        .to_owned()
}

/// Loads the UDF `arg` names; saved UDFs and tokens need `api`.
pub async fn load(arg: &str, api: Option<&FusedApi>) -> Result<UdfMeta> {
    load_with(arg, api, &raw_base()).await
}

/// [`load`], GitHub's raw files taken from `github_raw` (a mirror, or a test server).
pub async fn load_with(arg: &str, api: Option<&FusedApi>, github_raw: &str) -> Result<UdfMeta> {
    let arg = arg.trim_end_matches('/');
    if let Some(rest) = arg.strip_prefix("https://github.com/") {
        return github(rest, github_raw.trim_end_matches('/')).await;
    }
    if arg.contains('\n') {
        return Ok(UdfMeta::from_code(arg, None)?);
    }
    let path = Path::new(arg);
    let is_file_kind = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("py" | "zip")
    );
    if is_file_kind || path.is_dir() {
        return Ok(UdfMeta::load(path)?);
    }
    let Some(api) = api else {
        return Err(Error::Usage(format!(
            "{arg:?} is not UDF code, a .py, a .zip, a folder or a GitHub URL; to load a saved \
             UDF or a token, give a server (FUSED_BASE_URL)"
        )));
    };
    if fused_core::run::is_token(arg) {
        return Ok(api.get_udf_by_token(arg).await?);
    }
    Ok(api.get_udf(arg).await?)
}

/// `owner/repo/tree|blob/ref/path…` → the folder (or `.py` file) at that path.
async fn github(rest: &str, raw: &str) -> Result<UdfMeta> {
    let parts: Vec<&str> = rest.split('/').collect();
    let (owner, repo, reference, path) = match parts.as_slice() {
        [o, r, "tree" | "blob", reference, path @ ..] => (*o, *r, *reference, path.join("/")),
        [o, r] => (*o, *r, "main", String::new()),
        _ => {
            return Err(Error::Usage(format!(
                "https://github.com/{rest} is not a repository, tree or blob URL"
            )));
        }
    };
    let base = format!("{raw}/{owner}/{repo}/{reference}");
    let base = if path.is_empty() {
        base
    } else {
        format!("{base}/{path}")
    };
    let client = reqwest::Client::new();
    let fetch = async |url: String| -> Result<String> {
        let r = client
            .get(&url)
            .send()
            .await
            .map_err(|e| Error::Usage(format!("fetching {url}: {e}")))?;
        if !r.status().is_success() {
            return Err(Error::Usage(format!("fetching {url}: HTTP {}", r.status())));
        }
        r.text()
            .await
            .map_err(|e| Error::Usage(format!("reading {url}: {e}")))
    };
    if path.ends_with(".py") {
        let code = fetch(base).await?;
        let stem = path.rsplit('/').next().and_then(|f| f.strip_suffix(".py"));
        return Ok(UdfMeta::from_code(&code, stem)?);
    }
    // A folder: meta.json, then the files it names.
    let meta = fetch(format!("{base}/meta.json")).await?;
    let parsed: serde_json::Value =
        serde_json::from_str(&meta).map_err(|e| Error::Usage(format!("{base}/meta.json: {e}")))?;
    let udf = &parsed["job_config"]["steps"][0]["udf"];
    let mut names: Vec<String> = udf["source"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    for h in udf["headers"].as_array().into_iter().flatten() {
        if let Some(f) = h["source_file"].as_str() {
            names.push(f.to_owned());
        }
    }
    let mut files = HashMap::from([("meta.json".to_owned(), meta)]);
    for name in names {
        if name.contains('/') || name.contains("..") {
            return Err(Error::Usage(format!("{base}: meta.json names {name:?}")));
        }
        files.insert(name.clone(), fetch(format!("{base}/{name}")).await?);
    }
    Ok(UdfMeta::from_folder_files(|name| {
        files
            .get(name)
            .cloned()
            .ok_or_else(|| fused_core::Error::InvalidUdf(format!("{base}: no {name}")))
    })?)
}

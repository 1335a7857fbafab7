//! The Fused REST API on a default client, as `fused.api.*` does in Python.
//!
//! The client is built once from [`Options::load`](fused_core::Options::load) (the settings
//! file and `FUSED_*` variables, including `FUSED_BASE_URL`) and the credentials
//! (`FUSED_AUTH_TOKEN`, else `~/.fused/credentials`); [`set_default`] replaces it.
//!
//! ```no_run
//! # async fn demo() -> fused::Result<()> {
//! fused::api::upload(b"hi".to_vec(), "fd://notes/hi.txt").await?;
//! for url in fused::api::list("fd://notes/").await? {
//!     println!("{url}");
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{OnceLock, RwLock};

use bytes::Bytes;
pub use fused_http::client::{
    FusedApi, JobLogLine, RunResponse, UdfAccessToken, UdfKey, Upload, Whoami, Whose,
};

use crate::Result;

static DEFAULT: OnceLock<RwLock<Option<FusedApi>>> = OnceLock::new();

fn slot() -> &'static RwLock<Option<FusedApi>> {
    DEFAULT.get_or_init(|| RwLock::new(None))
}

/// The default client (built on first use).
pub fn client() -> Result<FusedApi> {
    if let Some(c) = slot().read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return Ok(c.clone());
    }
    let c = FusedApi::from_options(&fused_core::Options::load()?)?;
    *slot().write().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
    Ok(c)
}

/// Replaces the default client (another server, other credentials, a test transport).
pub fn set_default(api: FusedApi) {
    *slot().write().unwrap_or_else(|e| e.into_inner()) = Some(api);
}

/// Who the credentials belong to.
pub async fn whoami() -> Result<Whoami> {
    Ok(client()?.whoami().await?)
}

/// The team's auth token.
pub async fn auth_token() -> Result<String> {
    Ok(client()?.auth_token().await?)
}

/// URLs directly under `path`.
pub async fn list(path: &str) -> Result<Vec<String>> {
    Ok(client()?.list(path).await?)
}

/// Entries directly under `path`, with sizes and times.
pub async fn list_details(path: &str) -> Result<Vec<fused_core::storage::ObjectMeta>> {
    Ok(client()?.list_details(path).await?)
}

/// An object's bytes.
pub async fn get(path: &str) -> Result<Bytes> {
    Ok(client()?.get(path).await?)
}

/// Downloads an object to a local file.
pub async fn download(path: &str, local: &Path) -> Result<()> {
    Ok(client()?.download(path, local).await?)
}

/// Uploads bytes, a local file or a table.
pub async fn upload(data: impl Into<Upload>, path: &str) -> Result<()> {
    Ok(client()?.upload(data, path).await?)
}

/// Deletes an object or a folder at most `max_depth` levels deep (`None`: unlimited).
pub async fn delete(path: &str, max_depth: Option<u32>) -> Result<bool> {
    Ok(client()?.delete(path, max_depth).await?)
}

/// A URL reading `path` without credentials.
pub async fn sign_url(path: &str) -> Result<String> {
    Ok(client()?.sign_url(path).await?)
}

/// Signed URLs of every object under `path`.
pub async fn sign_url_prefix(path: &str) -> Result<BTreeMap<String, String>> {
    Ok(client()?.sign_url_prefix(path).await?)
}

/// Saved UDFs keyed `"{collection}/{name}"`.
pub async fn get_udfs(
    n: Option<usize>,
    whose: Whose,
) -> Result<BTreeMap<String, fused_core::UdfMeta>> {
    Ok(client()?.get_udfs(n, 0, UdfKey::Name, whose).await?)
}

/// A new shared token for a UDF.
pub async fn create_udf_access_token(udf: &str) -> Result<UdfAccessToken> {
    Ok(client()?.create_udf_access_token(udf).await?)
}

//! `/v1/files/…`: list, get, delete, sign and upload objects of the server's storage root
//! (`fd://`). Local roots get URLs signed by the server (HMAC, with an expiry) and served by
//! it; cloud roots get URLs presigned by their backend. Uploads stream to the storage and only
//! appear once complete.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body as AxumBody;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fused_core::Error as CoreError;
use fused_core::transport::Body;
use futures::{SinkExt, Stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use crate::error::ApiError;
use crate::store::rfc3339;

/// How long signed URLs stay valid unless the request says otherwise.
const DEFAULT_EXPIRY: Duration = Duration::from_secs(3600);
/// The longest validity a request may ask for (7 days, as S3 allows).
const MAX_EXPIRY: u64 = 7 * 86_400;
/// Most entries `sign_prefix` walks.
const MAX_SIGNED: usize = 10_000;
/// Form fields before the file in a signed upload, and their largest size.
const MAX_FORM_FIELDS: usize = 16;
const MAX_FORM_FIELD: usize = 4096;

/// The `path` query parameter (and friends) of the files endpoints.
#[derive(Debug, Deserialize)]
pub(crate) struct PathQuery {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    max_deletion_depth: Option<String>,
    #[serde(default)]
    content_length: Option<u64>,
    #[serde(default)]
    expiration: Option<u64>,
}

impl PathQuery {
    fn path(&self) -> Result<&str, ApiError> {
        self.path
            .as_deref()
            .ok_or_else(|| ApiError::BadRequest("the `path` query parameter is required".into()))
    }

    fn expiry(&self) -> Duration {
        self.expiration.map_or(DEFAULT_EXPIRY, |s| {
            Duration::from_secs(s.clamp(1, MAX_EXPIRY))
        })
    }
}

/// `scheme://host` this server is reached at, for the URLs it hands out: the configured public
/// URL, else the request's `Host` (or HTTP/2 authority) and scheme.
pub(crate) struct Origin(pub(crate) String);

impl axum::extract::FromRequestParts<Arc<AppState>> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(u) = &state.config.public_url {
            return Ok(Origin(u.trim_end_matches('/').to_owned()));
        }
        let headers = &parts.headers;
        let scheme = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .filter(|v| matches!(*v, "http" | "https"))
            .unwrap_or(if state.config.https { "https" } else { "http" });
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'/'))
            .unwrap_or_else(|| "localhost".into());
        Ok(Origin(format!("{scheme}://{host}")))
    }
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A download URL for `path`: presigned by the storage when it can, else signed here.
async fn sign_one(
    state: &AppState,
    origin: &Origin,
    path: &str,
    expiry: Duration,
) -> Result<String, ApiError> {
    match state.storage.sign_url(path, expiry).await {
        Ok(u) => Ok(u),
        Err(CoreError::Unsupported(_)) => {
            // Checked (and normalized to fd://) before anything is signed.
            let canonical = format!("fd://{}", state.storage_key(path)?);
            let expires = (epoch_now() + expiry.as_secs()).to_string();
            let sig = state
                .secret
                .sign(&[b"GET", canonical.as_bytes(), expires.as_bytes()]);
            Ok(format!(
                "{}/v1/files/signed?{}",
                origin.0,
                query_string(&[("path", &canonical), ("expires", &expires), ("sig", &sig)])
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// A download URL for `path` valid for the default time.
pub(crate) async fn sign_for(
    state: &AppState,
    origin: &Origin,
    path: &str,
) -> Result<String, ApiError> {
    sign_one(state, origin, path, DEFAULT_EXPIRY).await
}

impl AppState {
    /// The checked key of a storage URL, as text.
    pub(crate) fn storage_key(&self, url: &str) -> Result<String, ApiError> {
        let resolved = self.storage.resolve(url)?;
        let root = self.storage.resolve("fd://")?;
        Ok(resolved.strip_prefix(&root).unwrap_or(&resolved).to_owned())
    }
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Query(q): Query<PathQuery>,
) -> Result<Json<Value>, ApiError> {
    let entries = state.storage.list(q.path()?).await?;
    Ok(Json(
        entries.into_iter().map(|m| Value::String(m.url)).collect(),
    ))
}

pub(crate) async fn list_details(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Query(q): Query<PathQuery>,
) -> Result<Json<Value>, ApiError> {
    let entries = state.storage.list(q.path()?).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|m| {
                json!({
                    "url": m.url,
                    "file_name": m.file_name,
                    "is_directory": m.is_directory,
                    "size": m.size,
                    "last_modified": m.last_modified
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| rfc3339(d.as_secs() as i64)),
                })
            })
            .collect(),
    ))
}

/// Streams an object with its length.
async fn stream_object(state: &AppState, path: &str) -> Result<Response, ApiError> {
    let meta = state.storage.head(path).await?;
    let body = state.storage.get(path, None).await?;
    let mut r = AxumBody::from_stream(body.into_stream()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(n) = meta.size {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(r)
}

pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Query(q): Query<PathQuery>,
) -> Result<Response, ApiError> {
    stream_object(&state, q.path()?).await
}

/// `GET /v1/files/signed?path&expires&sig`: a download without credentials.
#[derive(Debug, Deserialize)]
pub(crate) struct SignedQuery {
    path: String,
    expires: String,
    sig: String,
}

pub(crate) async fn signed_get(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SignedQuery>,
) -> Result<Response, ApiError> {
    check_signature(
        &state,
        &[b"GET", q.path.as_bytes(), q.expires.as_bytes()],
        &q.expires,
        &q.sig,
    )?;
    stream_object(&state, &q.path).await
}

fn check_signature(
    state: &AppState,
    parts: &[&[u8]],
    expires: &str,
    sig: &str,
) -> Result<(), ApiError> {
    if !state.secret.verify(parts, sig) {
        return Err(ApiError::Forbidden(
            "the URL's signature is not valid".into(),
        ));
    }
    let expires: u64 = expires
        .parse()
        .map_err(|_| ApiError::Forbidden("the URL's expiry is not valid".into()))?;
    if expires < epoch_now() {
        return Err(ApiError::Forbidden("the signed URL has expired".into()));
    }
    Ok(())
}

pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<PathQuery>,
) -> Result<Json<Value>, ApiError> {
    if state.storage_key(q.path()?)?.is_empty() && caller.user.id != state.owner.id {
        return Err(ApiError::Forbidden(
            "only the server's owner may delete the whole root".into(),
        ));
    }
    let depth = match q.max_deletion_depth.as_deref() {
        None => Some(3),
        Some("unlimited") => None,
        Some(n) => Some(n.parse::<u32>().map_err(|_| {
            ApiError::BadRequest(format!(
                "max_deletion_depth must be a whole number or `unlimited`, got {n:?}"
            ))
        })?),
    };
    state.storage.delete(q.path()?, depth).await?;
    Ok(Json(Value::Bool(true)))
}

pub(crate) async fn sign(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    origin: Origin,
    Query(q): Query<PathQuery>,
) -> Result<Json<Value>, ApiError> {
    let url = sign_one(&state, &origin, q.path()?, q.expiry()).await?;
    Ok(Json(Value::String(url)))
}

pub(crate) async fn sign_prefix(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    origin: Origin,
    Query(q): Query<PathQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut out = serde_json::Map::new();
    let mut pending = vec![q.path()?.to_owned()];
    let mut seen = 0usize;
    // Depth-first over the listing, bounded (files and folders alike) so a huge tree cannot
    // stall the server.
    while let Some(dir) = pending.pop() {
        for m in state.storage.list(&dir).await? {
            seen += 1;
            if seen > MAX_SIGNED {
                return Err(ApiError::BadRequest(format!(
                    "more than {MAX_SIGNED} entries under this prefix; sign a narrower one"
                )));
            }
            if m.is_directory {
                pending.push(m.url);
            } else {
                let u = sign_one(&state, &origin, &m.url, q.expiry()).await?;
                out.insert(m.url, Value::String(u));
            }
        }
    }
    Ok(Json(Value::Object(out)))
}

pub(crate) async fn resolve(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Query(q): Query<PathQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::String(state.storage.resolve(q.path()?)?)))
}

/// `GET /v1/files/sign-upload?path&content_length`: where and how to POST the file.
pub(crate) async fn sign_upload(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    origin: Origin,
    Query(q): Query<PathQuery>,
) -> Result<Json<Value>, ApiError> {
    let path = q.path()?.to_owned();
    signed_upload_form(&state, &origin, &q, &path).map(Json)
}

/// The query of `sign-upload-temp`.
#[derive(Debug, Deserialize)]
pub(crate) struct TempQuery {
    #[serde(default)]
    extension: Option<String>,
    #[serde(default)]
    content_length: Option<u64>,
}

/// `GET /v1/files/sign-upload-temp?extension&content_length`: a signed upload to a new
/// temporary file (`fd://fused-tmp/uploads/<uuid>.<extension>`), as the SDK uses for local
/// inputs of `fused.ingest`: `{"signed_post": {url, fields}, "storage_url"}`.
pub(crate) async fn sign_upload_temp(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    origin: Origin,
    Query(t): Query<TempQuery>,
) -> Result<Json<Value>, ApiError> {
    let ext: String = t
        .extension
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    let name = uuid::Uuid::new_v4().simple().to_string();
    let path = if ext.is_empty() {
        format!("fd://fused-tmp/uploads/{name}")
    } else {
        format!("fd://fused-tmp/uploads/{name}.{ext}")
    };
    let q = PathQuery {
        path: None,
        max_deletion_depth: None,
        content_length: t.content_length,
        expiration: None,
    };
    let form = signed_upload_form(&state, &origin, &q, &path)?;
    Ok(Json(json!({"signed_post": form, "storage_url": path})))
}

/// The signed multipart form that uploads to `path`.
fn signed_upload_form(
    state: &AppState,
    origin: &Origin,
    q: &PathQuery,
    path: &str,
) -> Result<Value, ApiError> {
    let canonical = format!("fd://{}", state.storage_key(path)?);
    if canonical.ends_with('/') || canonical == "fd://" {
        return Err(ApiError::BadRequest(
            "an upload needs a file name, not a folder".into(),
        ));
    }
    let max = q.content_length.unwrap_or(state.config.max_upload_bytes);
    if max > state.config.max_upload_bytes {
        return Err(ApiError::TooLarge(format!(
            "uploads are limited to {} bytes",
            state.config.max_upload_bytes
        )));
    }
    let expires = (epoch_now() + q.expiry().as_secs()).to_string();
    let max = max.to_string();
    let sig = state.secret.sign(&[
        b"PUT",
        canonical.as_bytes(),
        expires.as_bytes(),
        max.as_bytes(),
    ]);
    Ok(json!({
        "url": format!("{}/v1/files/signed-upload", origin.0),
        "fields": { "path": canonical, "expires": expires, "max_size": max, "signature": sig },
    }))
}

/// Counts bytes through an upload and fails it past `max`, or when no byte arrives for
/// `idle` (a stalled client must not hold an upload open forever; the partial object
/// is discarded, as for any failed upload).
fn capped(
    s: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    max: u64,
    idle: Duration,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let s = Box::pin(s);
    futures::stream::unfold((s, 0u64, false), move |(mut s, seen, done)| async move {
        if done {
            return None;
        }
        let next = match tokio::time::timeout(idle, s.next()).await {
            Err(_) => Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the upload stalled (no data for {idle:?})"),
            ))),
            Ok(n) => n,
        };
        match next {
            None => None,
            Some(Err(e)) => Some((Err(e), (s, seen, true))),
            Some(Ok(chunk)) => {
                let seen = seen + chunk.len() as u64;
                if seen > max {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::FileTooLarge,
                        format!("the upload is larger than the {max} bytes allowed"),
                    );
                    return Some((Err(e), (s, seen, true)));
                }
                Some((Ok(chunk), (s, seen, false)))
            }
        }
    })
}

fn upload_error(e: CoreError, max: u64) -> ApiError {
    match e {
        CoreError::Io(io) if io.kind() == std::io::ErrorKind::FileTooLarge => {
            ApiError::TooLarge(format!("the upload is larger than the {max} bytes allowed"))
        }
        CoreError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            ApiError::Timeout(io.to_string())
        }
        e => e.into(),
    }
}

/// `POST /v1/files/signed-upload`: the multipart form `sign-upload` described.
pub(crate) async fn signed_upload(
    State(state): State<Arc<AppState>>,
    mut form: Multipart,
) -> Result<Json<Value>, ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    let (mut path, mut expires, mut max, mut sig) = (None, None, None, None);
    let mut fields = 0;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("the upload form is not valid: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name != "file" {
            // Nothing is trusted before the signature is checked: small fields, few of them.
            fields += 1;
            if fields > MAX_FORM_FIELDS {
                return Err(bad("too many form fields".into()));
            }
            let mut text = Vec::new();
            while let Some(c) = field
                .chunk()
                .await
                .map_err(|e| bad(format!("form field {name}: {e}")))?
            {
                if text.len() + c.len() > MAX_FORM_FIELD {
                    return Err(ApiError::TooLarge(format!(
                        "form field {name} is longer than {MAX_FORM_FIELD} bytes"
                    )));
                }
                text.extend_from_slice(&c);
            }
            let text = String::from_utf8(text)
                .map_err(|_| bad(format!("form field {name} is not UTF-8")))?;
            match name.as_str() {
                "path" => path = Some(text),
                "expires" => expires = Some(text),
                "max_size" => max = Some(text),
                "signature" => sig = Some(text),
                _ => {}
            }
            continue;
        }
        let (Some(path), Some(expires), Some(max), Some(sig)) =
            (path.take(), expires.take(), max.take(), sig.take())
        else {
            return Err(bad(
                "the form needs path, expires, max_size and signature before the file".into(),
            ));
        };
        check_signature(
            &state,
            &[b"PUT", path.as_bytes(), expires.as_bytes(), max.as_bytes()],
            &expires,
            &sig,
        )?;
        let max: u64 = max
            .parse()
            .map_err(|_| ApiError::Forbidden("bad max_size".into()))?;
        // The field borrows the form, so its chunks are handed to the storage through a
        // channel while the storage writes them.
        let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<Bytes>>(4);
        let put = state.storage.put(
            &path,
            Body::from_stream(capped(rx, max, state.config.upload_idle_timeout)),
        );
        let feed = async move {
            loop {
                match field.chunk().await {
                    Ok(Some(c)) => {
                        if tx.send(Ok(c)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        break;
                    }
                }
            }
        };
        let (stored, ()) = futures::join!(put, feed);
        let meta = stored.map_err(|e| upload_error(e, max))?;
        return Ok(Json(json!({ "url": meta.url, "size": meta.size })));
    }
    Err(bad("the upload form has no `file` field".into()))
}

/// `PUT /v1/files/upload?path`: the request body, streamed to the storage.
pub(crate) async fn upload(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Query(q): Query<PathQuery>,
    body: AxumBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let max = state.config.max_upload_bytes;
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let meta = state
        .storage
        .put(
            q.path()?,
            Body::from_stream(capped(stream, max, state.config.upload_idle_timeout)),
        )
        .await
        .map_err(|e| upload_error(e, max))?;
    Ok((
        StatusCode::OK,
        Json(json!({ "url": meta.url, "size": meta.size })),
    ))
}

//! Shared-token runs: `GET /v1/realtime-shared/{token}/run[/file]` and `…/run/tiles/{z}/{x}/{y}`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fused_core::cache::{Compute, Computed};
use fused_core::encode::{self, FormatPrefs};
use fused_core::{Args, MaxAge, RunMetadata, Tile, UdfCall, UdfFailure, UdfRef};

use super::AppState;
use crate::error::ApiError;

/// Query keys that steer the run rather than being UDF parameters.
const RESERVED: &[&str] = &[
    "format",
    "cache_max_age",
    "profile",
    "fused_cache_disable_stream",
    "_stream_logs",
    "dtype_out_vector",
    "dtype_out_raster",
    "fused_session_token",
];

/// A run request, parsed from the query string and headers.
#[derive(Debug)]
pub(crate) struct RunRequest {
    pub(crate) args: Args,
    pub(crate) formats: FormatPrefs,
    pub(crate) cache_max_age: Option<MaxAge>,
    pub(crate) cache_disabled_by_header: bool,
    pub(crate) recursion: u32,
}

impl RunRequest {
    pub(crate) fn parse(query: Option<&str>, headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut args = Args::new();
        let mut format = None;
        let (mut legacy_raster, mut legacy_vector) = (None, None);
        let mut cache_max_age = None;
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "format" => format = Some(v.into_owned()),
                "dtype_out_raster" => legacy_raster = Some(v.into_owned()),
                "dtype_out_vector" => legacy_vector = Some(v.into_owned()),
                "cache_max_age" => cache_max_age = Some(MaxAge::parse(&v)?),
                k if RESERVED.contains(&k) => {}
                k => args.push_text(k, &v),
            }
        }
        let formats = match format {
            Some(f) => FormatPrefs::parse(&f),
            None => FormatPrefs::from_legacy(legacy_raster.as_deref(), legacy_vector.as_deref()),
        };
        let recursion = headers
            .get("fused-recursion")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1);
        Ok(Self {
            args,
            formats,
            cache_max_age,
            cache_disabled_by_header: cache_disabled(headers),
            recursion,
        })
    }
}

pub(crate) async fn shared_file(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    run_shared(state, token, None, query, headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn shared_tile(
    State(state): State<Arc<AppState>>,
    Path((token, z, x, y)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let tile = parse_tile(&z, &x, &y);
    match tile {
        Ok(t) => run_shared(state, token, Some(t), query, headers)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Err(e) => e.into_response(),
    }
}

fn parse_tile(z: &str, x: &str, y: &str) -> Result<Tile, ApiError> {
    let num = |name: &str, v: &str| {
        v.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "tile {name} must be a non-negative integer, got {v:?}"
            ))
        })
    };
    Ok(Tile::new(num("x", x)?, num("y", y)?, num("z", z)?)?)
}

/// An encoded response, as the cache keeps it: the headers are stored as the bytes that go on
/// the wire, so a hit becomes a response without re-encoding or copying.
struct Reply {
    status: StatusCode,
    content_type: Bytes,
    metadata: Bytes,
    body: Bytes,
}

impl Reply {
    fn pack(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.body.len() + self.metadata.len() + 64);
        for part in [&self.content_type, &self.metadata] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&self.status.as_u16().to_le_bytes());
        out.extend_from_slice(&self.body);
        out.into()
    }

    fn unpack(b: &Bytes) -> Option<Self> {
        let mut at = 0usize;
        let mut part = || -> Option<Bytes> {
            let n = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
            let s = b.slice(at + 4..at.checked_add(4 + n).filter(|end| *end <= b.len())?);
            at += 4 + n;
            Some(s)
        };
        let content_type = part()?;
        let metadata = part()?;
        let status =
            StatusCode::from_u16(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?)).ok()?;
        Some(Self {
            status,
            content_type,
            metadata,
            body: b.slice(at + 2..),
        })
    }

    fn into_response(self, cache: &'static str) -> Response {
        let mut r = (self.status, self.body).into_response();
        let h = r.headers_mut();
        // A UDF that names an impossible content type gets a neutral one rather than none.
        let ct = HeaderValue::from_maybe_shared(self.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        h.insert(header::CONTENT_TYPE, ct);
        if !self.metadata.is_empty()
            && let Ok(v) = HeaderValue::from_maybe_shared(self.metadata)
        {
            h.insert("x-fused-metadata", v);
        }
        h.insert("x-cache", HeaderValue::from_static(cache));
        r
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        let (status, metadata, body) = e.parts();
        Reply {
            status,
            content_type: Bytes::from_static(b"application/json"),
            metadata: metadata.map(Bytes::from).unwrap_or_default(),
            body: body.into(),
        }
    }
}

/// Runs the call and encodes it. Every outcome is a reply — a 200, a 422 UDF failure, a 400
/// for a format that cannot encode the output — so concurrent callers of one key share it;
/// only 200s are stored.
async fn compute_reply(state: &AppState, call: UdfCall, formats: &FormatPrefs) -> Reply {
    let result = match state.executor.execute(call).await {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into(),
    };
    let mut metadata = RunMetadata::from_result(&result.logs, result.output.as_ref().map(|_| ()));
    let failure = match result.output {
        Ok(output) => {
            let format = match formats.choose(&output) {
                Ok(f) => f,
                Err(e) => return ApiError::from(e).into(),
            };
            match encode::encode(&output, format) {
                Ok(enc) => {
                    return Reply {
                        status: StatusCode::OK,
                        content_type: Bytes::from(enc.content_type),
                        metadata: Bytes::from(metadata.to_header_value()),
                        body: enc.body,
                    };
                }
                Err(e) => UdfFailure {
                    kind: fused_core::FailureKind::Serialization,
                    class: "SerializationError".into(),
                    message: format!("the UDF's output could not be encoded as {format}: {e}"),
                    lineno: None,
                },
            }
        }
        Err(f) => f,
    };
    metadata.set_failure(&failure);
    ApiError::Udf {
        failure,
        metadata: Box::new(metadata),
    }
    .into()
}

async fn run_shared(
    state: Arc<AppState>,
    token: String,
    tile: Option<Tile>,
    query: Option<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = state.tokens.lookup(&token).ok_or_else(|| {
        ApiError::NotFound("no UDF is shared under this token (it may have been revoked)".into())
    })?;
    let udf = state
        .registry
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("the UDF {name:?} is gone")))?;
    let default_max_age = udf
        .meta()
        .cache_max_age
        .unwrap_or(state.config.default_max_age);

    // Map clients ask for the very same URLs again and again: an entry keyed by the UDF and
    // the raw request answers those without parsing or binding anything. Requests that steer
    // the cache themselves take the full path.
    let raw = query.as_deref().unwrap_or("");
    // Keys are decoded as the full path decodes them, so `cache%5Fmax%5Fage` counts too.
    let steers_cache = || form_urlencoded::parse(raw.as_bytes()).any(|(k, _)| k == "cache_max_age");
    let url_key = (!cache_disabled(&headers) && !default_max_age.is_zero() && !steers_cache())
        .then(|| {
            let t = tile.map(|t| t.to_string()).unwrap_or_default();
            format!("url:{}:{t}?{raw}", udf.identity())
        });
    if let Some(k) = &url_key
        && let Ok(Some(e)) = state.cache.get(k).await
        && e.age() <= default_max_age.duration()
        && let Some(reply) = Reply::unpack(&e.value)
    {
        return Ok(reply.into_response("hit"));
    }

    let req = RunRequest::parse(query.as_deref(), &headers)?;
    // Bind first: a wrong parameter is a 422 before anything runs or is cached.
    let bound = udf.bind(&req.args, tile)?;
    let max_age = match (req.cache_max_age, req.cache_disabled_by_header) {
        (Some(m), _) => m,
        (None, true) => MaxAge::ZERO,
        (None, false) => default_max_age,
    };
    let call = UdfCall {
        udf: UdfRef::Native(Arc::clone(&udf)),
        args: req.args,
        tile,
        timeout: None,
        cache_max_age: Some(MaxAge::ZERO),
        recursion: req.recursion,
    };
    if max_age.is_zero() {
        return Ok(compute_reply(&state, call, &req.formats)
            .await
            .into_response("disabled"));
    }
    let formats_key: Vec<&str> = req.formats.formats().iter().map(|f| f.name()).collect();
    let key = format!(
        "resp:{}:{}",
        udf.cache_key(&bound, tile),
        formats_key.join(",")
    );
    let st = Arc::clone(&state);
    let formats = req.formats.clone();
    let again = call.clone();
    let compute: Compute = Box::pin(async move {
        let reply = compute_reply(&st, call, &formats).await;
        Ok(Computed {
            store: reply.status == StatusCode::OK,
            value: reply.pack(),
            ttl: max_age.duration(),
        })
    });
    let lookup = state
        .cache
        .get_or_compute(&key, max_age.duration(), compute)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(reply) = Reply::unpack(&lookup.value) else {
        // A corrupt entry is a miss: drop it and answer from a fresh run.
        tracing::warn!(%key, "dropping a corrupt cached response");
        let _ = state.cache.remove(&key).await;
        return Ok(compute_reply(&state, again, &req.formats)
            .await
            .into_response("miss"));
    };
    if reply.status == StatusCode::OK
        && let Some(k) = url_key
    {
        // The same bytes under the URL's key (shared, not copied).
        let _ = state
            .cache
            .put(&k, lookup.value.clone(), max_age.duration())
            .await;
    }
    Ok(reply.into_response(if lookup.hit.is_some() { "hit" } else { "miss" }))
}

/// True when the request carries `X-Fused-Cache-Disable: true` (the SDK's default header).
fn cache_disabled(headers: &HeaderMap) -> bool {
    headers
        .get("x-fused-cache-disable")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

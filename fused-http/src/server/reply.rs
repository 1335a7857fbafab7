//! Runs of native UDFs as HTTP replies: encode, cache, and the wire form of failures.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fused_core::cache::{Compute, Computed};
use fused_core::encode::{self, FormatPrefs};
use fused_core::{Args, MaxAge, RunMetadata, Tile, Udf, UdfCall, UdfFailure, UdfRef};

use super::AppState;
use crate::error::ApiError;

/// An encoded response, as the cache keeps it: the headers are stored as the bytes that go on
/// the wire, so a hit becomes a response without re-encoding or copying.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Bytes,
    pub(crate) metadata: Bytes,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn pack(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.body.len() + self.metadata.len() + 64);
        for part in [&self.content_type, &self.metadata] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&self.status.as_u16().to_le_bytes());
        out.extend_from_slice(&self.body);
        out.into()
    }

    pub(crate) fn unpack(b: &Bytes) -> Option<Self> {
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

    /// The response, marked `x-cache: {cache}` (`hit` from memory, `storage` from the
    /// persistent cache — then also `x-fused-cached`, as the SDK reads it —, `miss` or
    /// `disabled`).
    pub(crate) fn into_response(self, cache: &'static str) -> Response {
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
        if cache == "storage" {
            h.insert("x-fused-cached", HeaderValue::from_static("true"));
        }
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
pub(crate) async fn compute_reply(state: &AppState, call: UdfCall, formats: &FormatPrefs) -> Reply {
    let tile = call.tile;
    let (layer, identity) = match &call.udf {
        UdfRef::Native(u) => (u.name().to_owned(), Some(u.identity().to_owned())),
        UdfRef::Name(n) => (n.clone(), None),
        _ => ("udf".to_owned(), None),
    };
    let result = match state.executor.execute(call).await {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into(),
    };
    let mut metadata = RunMetadata::from_result(&result.logs, result.output.as_ref().map(|_| ()));
    let failure = match result.output {
        Ok(output) => {
            let format = match formats.choose_for(&output, tile.is_some()) {
                Ok(f) => f,
                Err(e) => return ApiError::from(e).into(),
            };
            let fields = match (format, &output) {
                (encode::Format::Mvt, fused_core::Output::Table(t)) => {
                    Some(encode::mvt::field_types(t))
                }
                _ => None,
            };
            match encode_output(output, format, tile, layer).await {
                Ok(enc) => {
                    // The fields of a tile that has features (an empty one has no layer).
                    if let (Some(fields), Some(id)) = (fields, &identity)
                        && !enc.body.is_empty()
                    {
                        state.remember_vector_fields(id, fields);
                    }
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

/// Outputs at least this large (rows, or raster samples / 256) are encoded on a blocking
/// thread, so a big tile does not hold up the requests sharing its async worker; smaller ones
/// are encoded in place (a hand-off costs more than they do).
const ENCODE_IN_PLACE_MAX: usize = 4_096;

async fn encode_output(
    output: fused_core::Output,
    format: encode::Format,
    tile: Option<Tile>,
    layer: String,
) -> fused_core::Result<encode::Encoded> {
    let size = match &output {
        // Rows, or geometry bytes: one feature may be a million vertices.
        fused_core::Output::Table(t) => t.num_rows().max(t.geometry_bytes() / 64),
        fused_core::Output::Raster(r) => r.data().len() / 256,
        _ => 0,
    };
    let run = move || {
        let in_tile = tile.map(|tile| encode::TileLayer {
            tile,
            layer: &layer,
        });
        encode::encode_in(&output, format, in_tile)
    };
    if size < ENCODE_IN_PLACE_MAX {
        return run();
    }
    tokio::task::spawn_blocking(run).await.unwrap_or_else(|e| {
        Err(fused_core::Error::Encode(format!(
            "the encoder failed: {e}"
        )))
    })
}

/// One run of a native UDF, as a request asks for it.
#[derive(Debug)]
pub(crate) struct NativeRun {
    pub(crate) udf: Arc<Udf>,
    pub(crate) args: Args,
    pub(crate) tile: Option<Tile>,
    pub(crate) formats: FormatPrefs,
    /// Zero: run without the cache.
    pub(crate) max_age: MaxAge,
    pub(crate) recursion: u32,
}

/// Binds, then answers from the response cache or one run for all concurrent callers of the
/// same key. Returns the reply and its `x-cache` mark.
pub(crate) async fn run_cached(
    state: &Arc<AppState>,
    run: NativeRun,
) -> Result<(Reply, &'static str), ApiError> {
    // Bind first: a wrong parameter is a 422 before anything runs or is cached.
    let bound = run.udf.bind(&run.args, run.tile)?;
    let call = UdfCall {
        udf: UdfRef::Native(Arc::clone(&run.udf)),
        args: run.args,
        tile: run.tile,
        timeout: None,
        cache_max_age: Some(MaxAge::ZERO),
        recursion: run.recursion,
    };
    if run.max_age.is_zero() {
        return Ok((compute_reply(state, call, &run.formats).await, "disabled"));
    }
    let formats_key: Vec<&str> = run.formats.formats().iter().map(|f| f.name()).collect();
    let key = format!(
        "resp:{}:{}",
        run.udf.cache_key(&bound, run.tile),
        formats_key.join(",")
    );
    let st = Arc::clone(state);
    let formats = run.formats.clone();
    let again = call.clone();
    let max_age = run.max_age;
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
    match Reply::unpack(&lookup.value) {
        Some(reply) => Ok((reply, hit_mark(lookup.hit.is_some(), lookup.durable))),
        None => {
            // A corrupt entry is a miss: drop it and answer from a fresh run.
            tracing::warn!(%key, "dropping a corrupt cached response");
            let _ = state.cache.remove(&key).await;
            Ok((compute_reply(state, again, &run.formats).await, "miss"))
        }
    }
}

/// The `x-cache` mark of a cache answer.
pub(crate) fn hit_mark(hit: bool, durable: bool) -> &'static str {
    match (hit, durable) {
        (false, _) => "miss",
        (true, false) => "hit",
        (true, true) => "storage",
    }
}

/// True when the request carries `X-Fused-Cache-Disable: true` (the SDK's default header).
pub(crate) fn cache_disabled(headers: &HeaderMap) -> bool {
    headers
        .get("x-fused-cache-disable")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// The `Fused-Recursion` depth of a request (1 when absent).
pub(crate) fn recursion(headers: &HeaderMap) -> u32 {
    headers
        .get("fused-recursion")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
}

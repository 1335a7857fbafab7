//! Shared-token runs: `GET /v1/realtime-shared/{token}/run[/file]` and `…/run/tiles/{z}/{x}/{y}`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use fused_core::encode::FormatPrefs;
use fused_core::{Args, MaxAge, Tile, Udf};

use super::AppState;
use super::catalog::Target;
use super::reply::{NativeRun, Reply, cache_disabled, hit_mark, recursion, run_cached};
use crate::error::ApiError;

/// What a shared token grants, as cached in memory.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) enabled: bool,
    pub(crate) cache: bool,
    /// `None` when the UDF was deleted.
    pub(crate) target: Option<Target>,
}

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
        Ok(Self {
            args,
            formats,
            cache_max_age,
            cache_disabled_by_header: cache_disabled(headers),
            recursion: recursion(headers),
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

pub(crate) fn parse_tile(z: &str, x: &str, y: &str) -> Result<Tile, ApiError> {
    let num = |name: &str, v: &str| {
        v.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "tile {name} must be a non-negative integer, got {v:?}"
            ))
        })
    };
    Ok(Tile::new(num("x", x)?, num("y", y)?, num("z", z)?)?)
}

impl AppState {
    /// What a shared token grants (cached for a few seconds; changes made through this server
    /// take effect at once).
    pub(crate) async fn grant(&self, token: &str) -> Result<Option<Arc<Grant>>, ApiError> {
        if let Some(hit) = self.grant_cache.get(token).await {
            return Ok(hit);
        }
        let grant = match self.store.access_token(token).await? {
            None => None,
            Some(t) => {
                let target = self
                    .entry_by_id(&t.udf_id)
                    .await?
                    .map(|e| self.target(&e.meta));
                Some(Arc::new(Grant {
                    enabled: t.enabled,
                    cache: t.cache,
                    target,
                }))
            }
        };
        self.grant_cache
            .insert(token.to_owned(), grant.clone())
            .await;
        Ok(grant)
    }
}

impl AppState {
    /// What an enabled shared token runs: its grant and the UDF (404 for an unknown token or
    /// a deleted UDF, 403 for a disabled token).
    pub(crate) async fn shared_udf(&self, token: &str) -> Result<(Arc<Grant>, Arc<Udf>), ApiError> {
        let grant = self.grant(token).await?.ok_or_else(|| {
            ApiError::NotFound(
                "no UDF is shared under this token (it may have been revoked)".into(),
            )
        })?;
        if !grant.enabled {
            return Err(ApiError::Forbidden("this shared token is disabled".into()));
        }
        let udf = match &grant.target {
            // By name: the registry may have replaced the UDF since the grant was cached.
            Some(Target::Native(udf)) => self
                .registry
                .get(udf.name())
                .ok_or_else(|| ApiError::NotFound(format!("the UDF {:?} is gone", udf.name())))?,
            Some(t @ Target::Code(_)) => self.runnable(t).await?,
            None => {
                return Err(ApiError::NotFound(
                    "the UDF of this token was deleted".into(),
                ));
            }
        };
        Ok((grant, udf))
    }
}

async fn run_shared(
    state: Arc<AppState>,
    token: String,
    tile: Option<Tile>,
    query: Option<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (grant, udf) = state.shared_udf(&token).await?;
    let default_max_age = if grant.cache {
        udf.meta()
            .cache_max_age
            .unwrap_or(state.config.default_max_age)
    } else {
        MaxAge::ZERO
    };

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
        return Ok(reply.into_response(hit_mark(true, e.durable)));
    }

    let req = RunRequest::parse(query.as_deref(), &headers)?;
    let max_age = match (req.cache_max_age, req.cache_disabled_by_header) {
        _ if !grant.cache => MaxAge::ZERO,
        (Some(m), _) => m,
        (None, true) => MaxAge::ZERO,
        (None, false) => default_max_age,
    };
    let (reply, mark) = run_cached(
        &state,
        NativeRun {
            udf,
            args: req.args,
            tile,
            formats: req.formats,
            max_age,
            recursion: req.recursion,
        },
    )
    .await?;
    if reply.status == axum::http::StatusCode::OK
        && !max_age.is_zero()
        && let Some(k) = url_key
    {
        // The same bytes under the URL's key.
        let _ = state.cache.put(&k, reply.pack(), max_age.duration()).await;
    }
    Ok(reply.into_response(mark))
}

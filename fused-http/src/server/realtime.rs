//! Runs of a UDF definition: `POST /v1/realtime/{client_id}/api/v1/run/udf/start[/tiles/…]`
//! answers 200 with the result, or 202 when the run outlasts `run_start_wait`; the SDK then polls
//! `GET …/run/udf/get/{run_id}` with the run id it sent in `Fused-Run-Id`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fused_core::encode::FormatPrefs;
use fused_core::{Args, MaxAge, UdfMeta};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde_json::Value;

use super::AppState;
use super::auth::Caller;
use super::reply::{NativeRun, Reply, cache_disabled, recursion, run_cached};
use super::shared::parse_tile;
use crate::error::ApiError;

/// How long a poll waits for the run before answering 202 again.
const POLL_WAIT: Duration = Duration::from_secs(2);
/// Finished runs nobody polled are dropped after this.
const KEEP_FINISHED: Duration = Duration::from_secs(600);

/// Parameters the SDK may leave in a definition's parameters that steer the run instead.
const STEERING: &[&str] = &[
    "verbose",
    "sync",
    "engine",
    "type",
    "max_retry",
    "cache",
    "cache_max_age",
    "_stream_logs",
];

type RunFuture = Shared<BoxFuture<'static, (Reply, &'static str)>>;

struct Pending {
    started: Instant,
    run: RunFuture,
}

/// Runs that answered 202, by caller and run id (the id comes from the client, so one
/// caller's id never reaches another's run).
#[derive(Default)]
pub(crate) struct Runs(Mutex<HashMap<(String, String), Pending>>);

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runs(..)")
    }
}

impl Runs {
    fn insert(&self, owner: &str, id: &str, p: Pending) {
        let mut runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        runs.retain(|_, r| r.started.elapsed() < KEEP_FINISHED);
        runs.insert((owner.to_owned(), id.to_owned()), p);
    }

    fn get(&self, owner: &str, id: &str) -> Option<RunFuture> {
        let runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(&(owner.to_owned(), id.to_owned()))
            .map(|p| p.run.clone())
    }

    fn remove(&self, owner: &str, id: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(owner.to_owned(), id.to_owned()));
    }
}

/// The start request's body.
#[derive(Debug, serde::Deserialize)]
struct StartBody {
    /// The step config: a JSON string (as the SDK sends it) or an object.
    step_config: Value,
    #[serde(default)]
    format: Option<String>,
}

/// The UDF JSON inside a step config.
fn definition(step_config: &Value) -> Result<UdfMeta, ApiError> {
    let parsed;
    let step = match step_config {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|e| ApiError::BadRequest(format!("step_config is not JSON: {e}")))?;
            &parsed
        }
        v => v,
    };
    let udf = step
        .get("udf")
        .ok_or_else(|| ApiError::BadRequest("step_config has no `udf`".into()))?;
    UdfMeta::from_json(&udf.to_string()).map_err(ApiError::from)
}

/// `…/run/udf/start` (`POLLING`: 202 after `run_start_wait`) and the legacy `…/run/udf`
/// (waits for the result).
pub(crate) async fn file<const POLLING: bool>(
    state: State<Arc<AppState>>,
    caller: Caller,
    Path(_client): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    start(state, caller, None, query, headers, body, POLLING).await
}

/// The tile forms of [`file`].
pub(crate) async fn tile<const POLLING: bool>(
    state: State<Arc<AppState>>,
    caller: Caller,
    Path((_client, z, x, y)): Path<(String, String, String, String)>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match parse_tile(&z, &x, &y) {
        Ok(t) => start(state, caller, Some(t), query, headers, body, POLLING).await,
        Err(e) => e.into_response(),
    }
}

async fn start(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    tile: Option<fused_core::Tile>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
    polling: bool,
) -> Response {
    let run = match prepare(&state, tile, query.as_deref(), &headers, &body).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let st = Arc::clone(&state);
    let handle = tokio::spawn(async move {
        match run_cached(&st, run).await {
            Ok(r) => r,
            Err(e) => (Reply::from(e), "disabled"),
        }
    });
    let fut: RunFuture = async move {
        handle.await.unwrap_or_else(|e| {
            (
                Reply::from(ApiError::Internal(format!("the run stopped: {e}"))),
                "disabled",
            )
        })
    }
    .boxed()
    .shared();
    if !polling {
        let (reply, mark) = fut.await;
        return reply.into_response(mark);
    }
    match tokio::time::timeout(state.config.run_start_wait, fut.clone()).await {
        Ok((reply, mark)) => reply.into_response(mark),
        Err(_) => {
            let id = headers
                .get("fused-run-id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 128)
                .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
            state.runs.insert(
                &caller.user.id,
                &id,
                Pending {
                    started: Instant::now(),
                    run: fut,
                },
            );
            accepted(&id)
        }
    }
}

fn accepted(id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "run_id": id, "status": "running" })),
    )
        .into_response()
}

/// The run a start request asks for.
async fn prepare(
    state: &AppState,
    tile: Option<fused_core::Tile>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<NativeRun, ApiError> {
    let body: StartBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the run body is not valid: {e}")))?;
    let meta = definition(&body.step_config)?;
    let udf = state.runnable(&state.target(&meta)).await?;
    let mut cache_max_age = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "cache_max_age" {
            cache_max_age = Some(MaxAge::parse(&v)?);
        }
    }
    let mut args = Args::new();
    for (k, v) in meta.parameters {
        if !STEERING.contains(&k.as_str()) && !v.is_null() {
            args.insert(k, v);
        }
    }
    let default = meta
        .cache_max_age
        .or(udf.meta().cache_max_age)
        .unwrap_or(state.config.default_max_age);
    let max_age = match cache_max_age {
        Some(m) => m,
        None if cache_disabled(headers) => MaxAge::ZERO,
        None => default,
    };
    Ok(NativeRun {
        udf,
        args,
        tile,
        formats: FormatPrefs::parse(body.format.as_deref().unwrap_or("")),
        max_age,
        recursion: recursion(headers),
    })
}

/// `GET …/run/udf/get/{run_id}`: the result once done, 202 until then.
pub(crate) async fn poll(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((_client, id)): Path<(String, String)>,
) -> Response {
    let Some(run) = state.runs.get(&caller.user.id, &id) else {
        return ApiError::NotFound(format!("no run {id:?} (finished runs are kept 10 minutes)"))
            .into_response();
    };
    match tokio::time::timeout(POLL_WAIT, run).await {
        Ok((reply, mark)) => {
            state.runs.remove(&caller.user.id, &id);
            reply.into_response(mark)
        }
        Err(_) => accepted(&id),
    }
}

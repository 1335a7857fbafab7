//! Batch jobs: `POST /v1/run`, `GET /v1/run/by-id/{id}[/results]`, `POST …/cancel`,
//! `GET /v1/logs/{id}`, `GET /v1/job/self` — and [`UdfJob`], the runner of `udf` jobs (a UDF over
//! an argument list), which keeps each task's result as a file beside a `.metadata` sidecar.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::extract::{Path, Query, State};
use fused_core::encode::{self, FormatPrefs};
use fused_core::{Error, Result, RunMetadata, UdfMeta};
use fused_jobs::store::{JobRecord, JobStatus, NewJob};
use fused_jobs::{ArgList, JobContext, JobKind, SubmitOptions, TaskState};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::files::Origin;
use crate::error::ApiError;
use crate::store::rfc3339;

/// The SDK's `RunResponse` of a job.
fn run_response(j: &JobRecord) -> Value {
    let terminal = j.status.is_terminal();
    json!({
        "job_id": j.id,
        "job_name": j.name,
        "instance_id": j.worker,
        "instance_type": "local",
        "status": if terminal { "terminated" } else if j.status == JobStatus::Running { "running" } else { "pending" },
        "terminal_status": terminal,
        "last_heartbeat": j.heartbeat_ms.map(|ms| rfc3339(ms / 1000)),
        "job_status": j.status.sdk_name(),
        "job_status_date": rfc3339(j.updated_ms / 1000),
        "finished_job_status": terminal,
        "total_tasks": j.total_tasks,
        "finished_tasks": j.finished_tasks,
    })
}

/// The body of `POST /run`.
#[derive(Debug, Deserialize)]
pub(crate) struct StartBody {
    config: Value,
}

/// The UDF step of a job config, checked.
fn udf_step(config: &Value) -> Result<(UdfMeta, Vec<Value>), ApiError> {
    let steps = config["steps"]
        .as_array()
        .ok_or_else(|| ApiError::BadRequest("the job config has no steps".into()))?;
    let [step] = steps.as_slice() else {
        return Err(ApiError::BadRequest(format!(
            "jobs of one step are supported, this one has {}",
            steps.len()
        )));
    };
    if step["type"] != "udf" {
        return Err(ApiError::BadRequest(format!(
            "steps of type {} are not supported (udf only)",
            step["type"]
        )));
    }
    let meta = UdfMeta::from_json(&step["udf"].to_string())?;
    let input = match &step["input"] {
        Value::Array(a) if !a.is_empty() => a.clone(),
        Value::Null => vec![json!({})],
        Value::Array(_) => {
            return Err(ApiError::BadRequest("the job's arg list is empty".into()));
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "the job's input must be a list, got {other}"
            )));
        }
    };
    Ok((meta, input))
}

pub(crate) async fn start(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<StartBody>,
) -> Result<Json<Value>, ApiError> {
    let kind = body.config["steps"][0]["type"].as_str().map(str::to_owned);
    if let Some(kind) = kind
        && kind != "udf"
        && let Some(runner) = state.job_kinds().get(&kind)
    {
        return start_other(&state, &caller, &kind, runner.as_ref(), body.config).await;
    }
    let (meta, input) = udf_step(&body.config)?;
    // A job whose UDF cannot run (no runtime for its code, code that does not load) is a
    // bad request, refused before it starts.
    let udf = state
        .runnable(&state.target(&meta))
        .await
        .map_err(|e| match e {
            ApiError::Udf { failure, .. } => {
                ApiError::BadRequest(format!("{}: {}", failure.class, failure.message))
            }
            e => e,
        })?;
    // Every call is checked now: a wrong argument is a 400, not a failed job later.
    let first = udf.schema().params.first().map(|p| p.name.clone());
    let refused = |e: Error| {
        ApiError::BadRequest(match e {
            Error::Options(m) => m,
            other => other.to_string(),
        })
    };
    let calls = job_args(&udf, &input)
        .into_calls(first.as_deref())
        .map_err(refused)?;
    fused_jobs::check_calls(&udf, &calls).map_err(refused)?;
    let name = body.config["name"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| meta.display_name().to_owned());
    let job = state
        .jobs
        .create(NewJob {
            kind: "udf".into(),
            name,
            owner: caller.user.id.clone(),
            config: body.config,
            total_tasks: input.len() as u64,
        })
        .await?;
    Ok(Json(run_response(&job)))
}

/// Starts a job of a registered kind (one step, one task).
async fn start_other(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    runner: &dyn JobKind,
    config: Value,
) -> Result<Json<Value>, ApiError> {
    if config["steps"].as_array().map_or(0, Vec::len) != 1 {
        return Err(ApiError::BadRequest(
            "jobs of one step are supported".into(),
        ));
    }
    runner.check(&config).map_err(|e| {
        ApiError::BadRequest(match e {
            Error::Options(m) => m,
            other => other.to_string(),
        })
    })?;
    let name = config["name"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| kind.to_owned());
    let job = state
        .jobs
        .create(NewJob {
            kind: kind.to_owned(),
            name,
            owner: caller.user.id.clone(),
            config,
            total_tasks: 1,
        })
        .await?;
    Ok(Json(run_response(&job)))
}

async fn own_job(state: &AppState, caller: &Caller, id: &str) -> Result<JobRecord, ApiError> {
    match state.jobs.get(id).await? {
        Some(j) if j.owner == caller.user.id || caller.user.id == state.owner.id => Ok(j),
        _ => Err(ApiError::NotFound(format!("no job {id}"))),
    }
}

pub(crate) async fn status(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(run_response(&own_job(&state, &caller, &id).await?)))
}

pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    own_job(&state, &caller, &id).await?;
    let j = state
        .jobs
        .cancel(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
    Ok(Json(run_response(&j)))
}

/// `since_ms` of a log request.
#[derive(Debug, Deserialize)]
pub(crate) struct Since {
    #[serde(default)]
    since_ms: Option<i64>,
}

pub(crate) async fn logs(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<Since>,
) -> Result<Json<Value>, ApiError> {
    own_job(&state, &caller, &id).await?;
    let lines = state.jobs.logs(&id, q.since_ms).await?;
    Ok(Json(json!(lines)))
}

/// `skip` / `limit` of `GET /job/self`.
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    #[serde(default)]
    skip: usize,
    #[serde(default)]
    limit: Option<usize>,
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(p): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let jobs = state
        .jobs
        .list(
            Some(&caller.user.id),
            p.skip,
            p.limit.unwrap_or(25).min(300),
        )
        .await?;
    Ok(Json(Value::Array(
        jobs.iter()
            .map(|j| {
                json!({
                    "id": j.id,
                    "user_id": j.owner,
                    "creation_date": rfc3339(j.created_ms / 1000),
                    "job_status": j.status.sdk_name(),
                    "job_status_date": rfc3339(j.updated_ms / 1000),
                    "instance_id": j.worker,
                    "instance_type": "local",
                    "execution_environment_id": caller.user.team,
                    "name": j.name,
                })
            })
            .collect(),
    )))
}

/// A job's input as calls: a map whose keys are all parameters is one call's arguments;
/// anything else feeds the first parameter (as the SDK decides).
fn job_args(udf: &fused_core::Udf, input: &[Value]) -> ArgList {
    let maps = input.iter().all(|v| {
        v.as_object()
            .is_some_and(|m| m.keys().all(|k| udf.schema().has(k) || udf.schema().open))
    });
    if maps {
        ArgList::Maps(
            input
                .iter()
                .filter_map(|v| v.as_object().cloned())
                .collect(),
        )
    } else {
        ArgList::Scalars(input.to_vec())
    }
}

/// Where a job's results live.
fn results_dir(id: &str) -> String {
    format!("fd://_jobs/{id}/")
}

pub(crate) async fn results(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    own_job(&state, &caller, &id).await?;
    let entries = match state.storage.list(&results_dir(&id)).await {
        Ok(e) => e,
        Err(Error::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for m in entries.into_iter().filter(|m| !m.is_directory) {
        let url = super::files::sign_for(&state, &origin, &m.url).await?;
        out.push(json!({ "name": m.file_name, "url": url }));
    }
    Ok(Json(Value::Array(out)))
}

/// Runs `udf` jobs: the UDF (native) over the job's argument list, four tasks at a time; each
/// result is kept as `<i>.<ext>` with `<i>.<ext>.metadata` in the job's results folder.
#[derive(Debug)]
pub struct UdfJob {
    state: Weak<AppState>,
}

impl UdfJob {
    /// The runner for a server.
    pub fn new(state: &Arc<AppState>) -> Self {
        Self {
            state: Arc::downgrade(state),
        }
    }
}

#[async_trait]
impl JobKind for UdfJob {
    async fn run(&self, job: &JobRecord, ctx: &JobContext) -> Result<JobStatus> {
        let state = self
            .state
            .upgrade()
            .ok_or_else(|| Error::Options("the server is shutting down".into()))?;
        let (meta, input) = udf_step(&job.config).map_err(|e| Error::Options(format!("{e:?}")))?;
        let udf = match state.runnable(&state.target(&meta)).await {
            Ok(u) => u,
            Err(e) => {
                ctx.log(&format!("ERROR: {}", e.parts().2)).await;
                return Ok(JobStatus::Failed);
            }
        };
        let args = job_args(&udf, &input);
        ctx.log(&format!("running {} on {} inputs", udf.name(), input.len()))
            .await;
        let pool = fused_jobs::submit(
            Arc::clone(&state.executor),
            udf,
            args,
            SubmitOptions {
                max_workers: 4,
                ..SubmitOptions::default()
            },
        )?;
        let mut reported = 0;
        while !pool.done() {
            if ctx.cancelled() {
                pool.cancel();
                ctx.log("cancelled").await;
                return Ok(JobStatus::Cancelled);
            }
            let finished = pool.states().iter().filter(|s| s.is_finished()).count();
            if finished != reported {
                ctx.progress(finished as u64).await;
                reported = finished;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ctx.progress(pool.len() as u64).await;
        let dir = results_dir(&job.id);
        // A job taken again (its first worker stopped) starts from an empty folder.
        match state.storage.delete(&dir, None).await {
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let logs = pool.raw_logs();
        let formats = FormatPrefs::parse("");
        for (i, outcome) in pool.results().await.into_iter().enumerate() {
            let mut metadata = RunMetadata::default();
            let log = logs.get(i).cloned().flatten().unwrap_or_default();
            let (name, body) = match outcome {
                Ok(output) => {
                    let format = formats.choose(&output)?;
                    let enc = encode::encode(&output, format)?;
                    ctx.log(&format!("Run #{i} success")).await;
                    (format!("{i}.{}", format.name()), enc.body)
                }
                Err(e) => {
                    metadata.set_failure(&fused_core::UdfFailure::runtime(
                        "UdfRuntimeError",
                        e.message.clone(),
                    ));
                    ctx.log(&format!("ERROR: Run #{i} {}: {}", e.state, e.message))
                        .await;
                    (format!("{i}.json"), bytes::Bytes::from_static(b"null"))
                }
            };
            let mut sidecar: Value =
                serde_json::from_str(&metadata.to_header_value()).unwrap_or(json!({}));
            for key in [
                "stdout",
                "stderr",
                "errormsg",
                "has_exception",
                "exception_class",
                "error_type",
                "exception",
            ] {
                if sidecar.get(key).is_none() {
                    sidecar[key] = match key {
                        "has_exception" => json!(false),
                        _ => Value::Null,
                    };
                }
            }
            sidecar["stdout"] = json!(log.stdout);
            sidecar["stderr"] = json!(log.stderr);
            state
                .storage
                .put(&format!("{dir}{name}"), body.into())
                .await?;
            state
                .storage
                .put(
                    &format!("{dir}{name}.metadata"),
                    bytes::Bytes::from(sidecar.to_string()).into(),
                )
                .await?;
        }
        Ok(if pool.states().iter().all(|s| *s == TaskState::Success) {
            JobStatus::Succeeded
        } else {
            JobStatus::Failed
        })
    }
}

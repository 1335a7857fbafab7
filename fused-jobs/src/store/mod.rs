//! The job store: batch jobs that outlive the process that started them.
//!
//! A job moves pending → running → succeeded / failed / cancelled. Workers on any machine
//! [`claim`](JobStore::claim) jobs under a lease they renew with
//! [`heartbeat`](JobStore::heartbeat); a job whose worker stopped renewing (killed mid-job) is
//! claimed again once its lease has expired — or failed after `max_attempts` — so no job stays
//! "running" forever and none runs twice at once. Logs are kept with millisecond timestamps.
//! [`SqliteJobStore`] (one file, embedded: the default) and [`PostgresJobStore`] (for workers on
//! several machines) implement it.

mod postgres;
mod sqlite;

pub use postgres::PostgresJobStore;
pub use sqlite::SqliteJobStore;

use std::time::Duration;

use async_trait::async_trait;
use fused_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker.
    Pending,
    /// A worker holds it.
    Running,
    /// Finished.
    Succeeded,
    /// Failed (its logs say why).
    Failed,
    /// Cancelled.
    Cancelled,
}

impl JobStatus {
    /// The text stored for it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status from its stored text.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => JobStatus::Pending,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    /// True once the job will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// The SDK's `job_status` words (`Pending`, `Running`, `Done`, `Failed`, `Canceled`).
    pub fn sdk_name(self) -> &'static str {
        match self {
            JobStatus::Pending => "Pending",
            JobStatus::Running => "Running",
            JobStatus::Succeeded => "Done",
            JobStatus::Failed => "Failed",
            JobStatus::Cancelled => "Canceled",
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Id (a UUID).
    pub id: String,
    /// Its kind (`udf`, later `ingest`, `h3`): which runner runs it.
    pub kind: String,
    /// A name for people.
    pub name: String,
    /// Who started it.
    pub owner: String,
    /// What to run (the kind's configuration).
    pub config: Value,
    /// Its status.
    pub status: JobStatus,
    /// Set when someone asked to cancel it while it ran.
    pub cancel_requested: bool,
    /// The worker holding it.
    pub worker: Option<String>,
    /// Times a worker took it.
    pub attempts: u32,
    /// Tasks in it, and those finished.
    pub total_tasks: u64,
    /// Tasks finished.
    pub finished_tasks: u64,
    /// Creation time (epoch ms).
    pub created_ms: i64,
    /// Last status change (epoch ms).
    pub updated_ms: i64,
    /// Last heartbeat of its worker (epoch ms).
    pub heartbeat_ms: Option<i64>,
}

/// One log line of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When (epoch ms).
    pub timestamp: i64,
    /// What.
    pub message: String,
}

/// What a new job carries.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its kind.
    pub kind: String,
    /// A name for people.
    pub name: String,
    /// Who starts it.
    pub owner: String,
    /// The kind's configuration.
    pub config: Value,
    /// Tasks in it.
    pub total_tasks: u64,
}

/// Persistent jobs, shared by every worker that opens the same store.
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Records a new pending job.
    async fn create(&self, job: NewJob) -> Result<JobRecord>;

    /// A job by id.
    async fn get(&self, id: &str) -> Result<Option<JobRecord>>;

    /// Jobs of `owner` (or everyone's), newest first.
    async fn list(&self, owner: Option<&str>, skip: usize, limit: usize) -> Result<Vec<JobRecord>>;

    /// Takes the oldest job of one of `kinds` that is pending — or running under an expired
    /// lease (its worker stopped) — for `worker`, for `lease`. Jobs taken `max_attempts` times
    /// already are failed instead, and cancelled ones whose worker stopped are marked
    /// cancelled. At most one worker gets a given job at a time.
    async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        max_attempts: u32,
        kinds: &[&str],
    ) -> Result<Option<JobRecord>>;

    /// Renews `worker`'s lease; `false` when it no longer holds the job, or cancellation was
    /// asked (the worker should stop).
    async fn heartbeat(&self, id: &str, worker: &str, lease: Duration) -> Result<bool>;

    /// Records progress.
    async fn progress(&self, id: &str, finished_tasks: u64) -> Result<()>;

    /// Ends a job `worker` holds with `status`; `false` when it no longer held it.
    async fn finish(&self, id: &str, worker: &str, status: JobStatus) -> Result<bool>;

    /// Cancels a job: at once when pending, by asking its worker when running.
    async fn cancel(&self, id: &str) -> Result<Option<JobRecord>>;

    /// Adds a log line.
    async fn log(&self, id: &str, message: &str) -> Result<()>;

    /// Log lines after `since_ms` (all when `None`), oldest first.
    async fn logs(&self, id: &str, since_ms: Option<i64>) -> Result<Vec<LogLine>>;
}

/// A job from a row of the `jobs` table (the same columns in every store).
pub(crate) fn record<R>(row: &R) -> Result<JobRecord>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status: String = row.get("status");
    let config: String = row.get("config");
    Ok(JobRecord {
        id: row.get("id"),
        kind: row.get("kind"),
        name: row.get("name"),
        owner: row.get("owner"),
        config: serde_json::from_str(&config).unwrap_or(Value::Null),
        status: JobStatus::parse(&status)
            .ok_or_else(|| Error::Storage(format!("job store: unknown status {status:?}")))?,
        cancel_requested: row.get::<i64, _>("cancel_requested") != 0,
        worker: row.get("worker"),
        attempts: row.get::<i64, _>("attempts").max(0) as u32,
        total_tasks: row.get::<i64, _>("total_tasks").max(0) as u64,
        finished_tasks: row.get::<i64, _>("finished_tasks").max(0) as u64,
        created_ms: row.get("created_ms"),
        updated_ms: row.get("updated_ms"),
        heartbeat_ms: row.get("heartbeat_ms"),
    })
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

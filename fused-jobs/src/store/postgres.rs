//! [`PostgresJobStore`]: the job store in PostgreSQL, for workers on several machines: a job is
//! claimed with `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on, or take,
//! the same job.

use std::time::Duration;

use async_trait::async_trait;
use fused_core::{Error, Result};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{JobRecord, JobStatus, JobStore, LogLine, NewJob, now_ms};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    worker TEXT,
    lease_until BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    total_tasks BIGINT NOT NULL DEFAULT 0,
    finished_tasks BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT
);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (status, created_ms);
CREATE TABLE IF NOT EXISTS job_logs (
    seq BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_logs_by_job ON job_logs (job_id, timestamp);
"#;

/// Jobs in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresJobStore {
    pool: PgPool,
}

fn db(e: sqlx::Error) -> Error {
    Error::Storage(format!("job store: {e}"))
}

impl PostgresJobStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and creates the tables if needed.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(db)?;
        // Creating the schema twice at once (two workers starting) is harmless but can race
        // on the catalog; an advisory lock orders them.
        let mut tx = pool.begin().await.map_err(db)?;
        sqlx::query("SELECT pg_advisory_xact_lock(727274)")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::raw_sql(SCHEMA).execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Self { pool })
    }

    async fn one(&self, id: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(super::record).transpose()
    }
}

#[async_trait]
impl JobStore for PostgresJobStore {
    async fn create(&self, job: NewJob) -> Result<JobRecord> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, kind, name, owner, config, status, total_tasks, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)",
        )
        .bind(&id)
        .bind(&job.kind)
        .bind(&job.name)
        .bind(&job.owner)
        .bind(job.config.to_string())
        .bind(job.total_tasks as i64)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.one(&id)
            .await?
            .ok_or_else(|| Error::Storage("job store: the new job vanished".into()))
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        self.one(id).await
    }

    async fn list(&self, owner: Option<&str>, skip: usize, limit: usize) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE ($1::TEXT IS NULL OR owner = $1) ORDER BY created_ms DESC, id \
             LIMIT $2 OFFSET $3",
        )
        .bind(owner)
        .bind(limit as i64)
        .bind(skip as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(super::record).collect()
    }

    async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        max_attempts: u32,
        kinds: &[&str],
    ) -> Result<Option<JobRecord>> {
        let now = now_ms();
        // Jobs abandoned too often are failed rather than tried again.
        let failed = sqlx::query(
            "UPDATE jobs SET status = 'failed', worker = NULL, updated_ms = $1 \
             WHERE status = 'running' AND lease_until < $2 AND attempts >= $3 RETURNING id",
        )
        .bind(now)
        .bind(now)
        .bind(i64::from(max_attempts))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        for row in failed {
            let id: String = row.get("id");
            self.log(
                &id,
                &format!("ERROR: its worker stopped {max_attempts} times; failed"),
            )
            .await?;
        }
        // A cancelled job whose worker stopped is cancelled, not left running.
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', worker = NULL, updated_ms = $1 \
             WHERE status = 'running' AND lease_until < $2 AND cancel_requested = 1",
        )
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        // One statement: SQLite runs it atomically, so two workers never take the same job.
        let row = sqlx::query(
            "UPDATE jobs SET status = 'running', worker = $1, lease_until = $2, heartbeat_ms = $3, \
             attempts = attempts + 1, updated_ms = $4 \
             WHERE id = (SELECT id FROM jobs WHERE cancel_requested = 0 AND kind = ANY($6) AND \
                 (status = 'pending' OR (status = 'running' AND lease_until < $5)) \
                 ORDER BY created_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING *",
        )
        .bind(worker)
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(
            kinds
                .iter()
                .map(|k| (*k).to_owned())
                .collect::<Vec<String>>(),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let job = row.as_ref().map(super::record).transpose()?;
        if let Some(j) = &job {
            let again = if j.attempts > 1 {
                " (again: its previous worker stopped)"
            } else {
                ""
            };
            let logged = self
                .log(&j.id, &format!("taken by worker {worker}{again}"))
                .await;
            if let Err(e) = logged {
                tracing::warn!(error = %e, "could not log a claim");
            }
        }
        Ok(job)
    }

    async fn heartbeat(&self, id: &str, worker: &str, lease: Duration) -> Result<bool> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE jobs SET lease_until = $1, heartbeat_ms = $2 \
             WHERE id = $3 AND worker = $4 AND status = 'running' RETURNING cancel_requested",
        )
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(id)
        .bind(worker)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(row.is_some_and(|r| r.get::<i64, _>("cancel_requested") == 0))
    }

    async fn progress(&self, id: &str, finished_tasks: u64) -> Result<()> {
        sqlx::query("UPDATE jobs SET finished_tasks = $1 WHERE id = $2")
            .bind(finished_tasks as i64)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn finish(&self, id: &str, worker: &str, status: JobStatus) -> Result<bool> {
        if !status.is_terminal() {
            return Err(Error::Options(format!(
                "a job ends succeeded, failed or cancelled, not {}",
                status.as_str()
            )));
        }
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, worker = NULL, lease_until = NULL, updated_ms = $2 \
             WHERE id = $3 AND worker = $4 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn cancel(&self, id: &str) -> Result<Option<JobRecord>> {
        let now = now_ms();
        sqlx::query(
            "UPDATE jobs SET status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END, \
             cancel_requested = CASE WHEN status IN ('pending', 'running') THEN 1 ELSE cancel_requested END, \
             updated_ms = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.one(id).await
    }

    async fn log(&self, id: &str, message: &str) -> Result<()> {
        sqlx::query("INSERT INTO job_logs (job_id, timestamp, message) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(now_ms())
            .bind(message)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn logs(&self, id: &str, since_ms: Option<i64>) -> Result<Vec<LogLine>> {
        let rows = sqlx::query(
            "SELECT timestamp, message FROM job_logs WHERE job_id = $1 \
             AND ($2::BIGINT IS NULL OR timestamp > $2) ORDER BY seq",
        )
        .bind(id)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| LogLine {
                timestamp: r.get("timestamp"),
                message: r.get("message"),
            })
            .collect())
    }
}

//! [`SqliteJobStore`]: the job store in one SQLite file (WAL, so several processes share it).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use fused_core::{Error, Result};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::{JobRecord, JobStatus, JobStore, LogLine, NewJob, now_ms};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    lease_until INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    total_tasks INTEGER NOT NULL DEFAULT 0,
    finished_tasks INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    heartbeat_ms INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (status, created_ms);
CREATE TABLE IF NOT EXISTS job_logs (
    job_id TEXT NOT NULL,
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_logs_by_job ON job_logs (job_id, timestamp);
"#;

/// Jobs in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteJobStore {
    pool: SqlitePool,
}

fn db(e: sqlx::Error) -> Error {
    Error::Storage(format!("job store: {e}"))
}

impl SqliteJobStore {
    /// Opens (creating if needed) the store at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(db)?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await.map_err(db)?;
        Ok(Self { pool })
    }

    async fn one(&self, id: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(super::record).transpose()
    }
}

#[async_trait]
impl JobStore for SqliteJobStore {
    async fn create(&self, job: NewJob) -> Result<JobRecord> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, kind, name, owner, config, status, total_tasks, created_ms, updated_ms) \
             VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
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
            "SELECT * FROM jobs WHERE (? IS NULL OR owner = ?) ORDER BY created_ms DESC, id \
             LIMIT ? OFFSET ?",
        )
        .bind(owner)
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
            "UPDATE jobs SET status = 'failed', worker = NULL, updated_ms = ? \
             WHERE status = 'running' AND lease_until < ? AND attempts >= ? RETURNING id",
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
            "UPDATE jobs SET status = 'cancelled', worker = NULL, updated_ms = ? \
             WHERE status = 'running' AND lease_until < ? AND cancel_requested = 1",
        )
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        // One statement: SQLite runs it atomically, so two workers never take the same job.
        let row = sqlx::query(
            "UPDATE jobs SET status = 'running', worker = ?, lease_until = ?, heartbeat_ms = ?, \
             attempts = attempts + 1, updated_ms = ? \
             WHERE id = (SELECT id FROM jobs WHERE cancel_requested = 0 \
                 AND kind IN (SELECT value FROM json_each(?)) AND \
                 (status = 'pending' OR (status = 'running' AND lease_until < ?)) \
                 ORDER BY created_ms, id LIMIT 1) \
             RETURNING *",
        )
        .bind(worker)
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(now)
        .bind(serde_json::to_string(kinds).unwrap_or_else(|_| "[]".into()))
        .bind(now)
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
            "UPDATE jobs SET lease_until = ?, heartbeat_ms = ? \
             WHERE id = ? AND worker = ? AND status = 'running' RETURNING cancel_requested",
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
        sqlx::query("UPDATE jobs SET finished_tasks = ? WHERE id = ?")
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
            "UPDATE jobs SET status = ?, worker = NULL, lease_until = NULL, updated_ms = ? \
             WHERE id = ? AND worker = ? AND status = 'running'",
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
             updated_ms = ? WHERE id = ?",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.one(id).await
    }

    async fn log(&self, id: &str, message: &str) -> Result<()> {
        sqlx::query("INSERT INTO job_logs (job_id, timestamp, message) VALUES (?, ?, ?)")
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
            "SELECT timestamp, message FROM job_logs WHERE job_id = ? AND (? IS NULL OR timestamp > ?) \
             ORDER BY seq",
        )
        .bind(id)
        .bind(since_ms)
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

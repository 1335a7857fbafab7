//! [`Worker`]: takes jobs from a [`JobStore`] and runs them with the runner of their kind.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fused_core::Result;

use crate::store::{JobRecord, JobStatus, JobStore};

/// Runs jobs of one kind (`udf`; ingestion and H3 add theirs).
#[async_trait]
pub trait JobKind: Send + Sync + std::fmt::Debug {
    /// Runs `job`, reporting through `ctx`; returns how it ended (succeeded or failed). It
    /// should return soon after [`JobContext::cancelled`] turns true.
    async fn run(&self, job: &JobRecord, ctx: &JobContext) -> Result<JobStatus>;
}

/// What a running job reports through.
#[derive(Debug, Clone)]
pub struct JobContext {
    store: Arc<dyn JobStore>,
    id: String,
    cancelled: Arc<AtomicBool>,
}

impl JobContext {
    /// Adds a log line (failures to log are only traced).
    pub async fn log(&self, message: &str) {
        if let Err(e) = self.store.log(&self.id, message).await {
            tracing::warn!(error = %e, "could not log for job {}", self.id);
        }
    }

    /// Records how many tasks are finished.
    pub async fn progress(&self, finished: u64) {
        let _ = self.store.progress(&self.id, finished).await;
    }

    /// True once the job was cancelled (or its lease lost): stop soon.
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The runners by kind.
#[derive(Debug, Default, Clone)]
pub struct JobKinds(HashMap<String, Arc<dyn JobKind>>);

impl JobKinds {
    /// No kinds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the runner of `kind`.
    #[must_use]
    pub fn with(mut self, kind: &str, runner: Arc<dyn JobKind>) -> Self {
        self.0.insert(kind.to_owned(), runner);
        self
    }

    /// The runner of `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobKind>> {
        self.0.get(kind).cloned()
    }
}

/// Takes jobs from a store and runs them, one at a time, renewing its lease while it works.
#[derive(Debug, Clone)]
pub struct Worker {
    store: Arc<dyn JobStore>,
    kinds: JobKinds,
    name: String,
    lease: Duration,
    max_attempts: u32,
    idle_poll: Duration,
}

impl Worker {
    /// A worker named after its host and process.
    pub fn new(store: Arc<dyn JobStore>, kinds: JobKinds) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        Self {
            store,
            kinds,
            name: format!(
                "{host}-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..6]
            ),
            lease: Duration::from_secs(30),
            max_attempts: 3,
            idle_poll: Duration::from_millis(500),
        }
    }

    /// Sets the lease (renewed every third of it) and how often an idle worker looks for work.
    #[must_use]
    pub fn with_timing(mut self, lease: Duration, idle_poll: Duration) -> Self {
        self.lease = lease;
        self.idle_poll = idle_poll;
        self
    }

    /// The worker's name (as jobs record it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs jobs until `shutdown` resolves.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let next = tokio::select! {
                () = &mut shutdown => return,
                j = self.store.claim(&self.name, self.lease, self.max_attempts) => j,
            };
            match next {
                Ok(Some(job)) => self.process(job).await,
                Ok(None) => {
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(self.idle_poll) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "job store unavailable");
                    tokio::time::sleep(self.idle_poll * 4).await;
                }
            }
        }
    }

    /// Takes and runs the next job, if any; returns whether there was one.
    pub async fn run_one(&self) -> Result<bool> {
        match self
            .store
            .claim(&self.name, self.lease, self.max_attempts)
            .await?
        {
            Some(job) => {
                self.process(job).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn process(&self, job: JobRecord) {
        let cancelled = Arc::new(AtomicBool::new(false));
        let ctx = JobContext {
            store: Arc::clone(&self.store),
            id: job.id.clone(),
            cancelled: Arc::clone(&cancelled),
        };
        // Renew the lease; a refusal (cancelled, or taken over) stops the job.
        let beat = {
            let (store, id, name, lease) = (
                Arc::clone(&self.store),
                job.id.clone(),
                self.name.clone(),
                self.lease,
            );
            let flag = Arc::clone(&cancelled);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match store.heartbeat(&id, &name, lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            flag.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                    }
                }
            })
        };
        let status = match self.kinds.get(&job.kind) {
            None => {
                ctx.log(&format!("ERROR: no runner for jobs of kind {:?}", job.kind))
                    .await;
                JobStatus::Failed
            }
            Some(runner) => match runner.run(&job, &ctx).await {
                Ok(s) if ctx.cancelled() => {
                    let _ = s;
                    JobStatus::Cancelled
                }
                Ok(s) => s,
                Err(e) => {
                    ctx.log(&format!("ERROR: {e}")).await;
                    JobStatus::Failed
                }
            },
        };
        beat.abort();
        ctx.log(&format!("finished: {}", status.sdk_name())).await;
        if let Err(e) = self.store.finish(&job.id, &self.name, status).await {
            tracing::warn!(error = %e, "could not record the end of job {}", job.id);
        }
    }
}

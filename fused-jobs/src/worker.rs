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

    /// Checks a job config before it is queued (a 400 to the caller instead of a failed job
    /// later); the default accepts it.
    fn check(&self, _config: &serde_json::Value) -> Result<()> {
        Ok(())
    }
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

    /// The kinds there are runners for.
    pub fn names(&self) -> Vec<String> {
        let mut k: Vec<String> = self.0.keys().cloned().collect();
        k.sort();
        k
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
                j = self.claim() => j,
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
        match self.claim().await? {
            Some(job) => {
                self.process(job).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Takes the next job of a kind this worker runs.
    async fn claim(&self) -> Result<Option<JobRecord>> {
        let names = self.kinds.names();
        let kinds: Vec<&str> = names.iter().map(String::as_str).collect();
        self.store
            .claim(&self.name, self.lease, self.max_attempts, &kinds)
            .await
    }

    async fn process(&self, job: JobRecord) {
        let cancelled = Arc::new(AtomicBool::new(false));
        let ctx = JobContext {
            store: Arc::clone(&self.store),
            id: job.id.clone(),
            cancelled: Arc::clone(&cancelled),
        };
        // Renew the lease (and look for a cancellation) every few seconds; a refusal
        // (cancelled, taken over), or no successful renewal for a whole lease, stops the job.
        let beat = AbortOnDrop({
            let (store, id, name, lease) = (
                Arc::clone(&self.store),
                job.id.clone(),
                self.name.clone(),
                self.lease,
            );
            let flag = Arc::clone(&cancelled);
            let every = (lease / 3).min(Duration::from_secs(2));
            tokio::spawn(async move {
                let mut renewed = std::time::Instant::now();
                loop {
                    tokio::time::sleep(every).await;
                    match store.heartbeat(&id, &name, lease).await {
                        Ok(true) => renewed = std::time::Instant::now(),
                        Ok(false) => {
                            flag.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                    }
                    if renewed.elapsed() >= lease {
                        // Another worker may hold it by now: stop rather than run it twice.
                        tracing::warn!(job = %id, "lease not renewed for a whole lease; stopping");
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            })
        });
        let status = match self.kinds.get(&job.kind) {
            None => {
                ctx.log(&format!("ERROR: no runner for jobs of kind {:?}", job.kind))
                    .await;
                JobStatus::Failed
            }
            Some(runner) => {
                use futures::FutureExt;
                let run = std::panic::AssertUnwindSafe(runner.run(&job, &ctx)).catch_unwind();
                match run.await {
                    Ok(Ok(_)) if ctx.cancelled() => JobStatus::Cancelled,
                    Ok(Ok(s)) if s.is_terminal() => s,
                    Ok(Ok(s)) => {
                        ctx.log(&format!("ERROR: the runner ended the job {}", s.as_str()))
                            .await;
                        JobStatus::Failed
                    }
                    Ok(Err(e)) => {
                        ctx.log(&format!("ERROR: {e}")).await;
                        JobStatus::Failed
                    }
                    Err(_) => {
                        ctx.log("ERROR: the job's runner panicked").await;
                        JobStatus::Failed
                    }
                }
            }
        };
        drop(beat);
        ctx.log(&format!("finished: {}", status.sdk_name())).await;
        // A lost finish would run a finished job again: it is retried a few times.
        for attempt in 0..5u32 {
            match self.store.finish(&job.id, &self.name, status).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "could not record the end of job {}", job.id);
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
    }
}

/// Aborts a task when dropped (a worker that stops mid-job must not keep renewing its lease).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

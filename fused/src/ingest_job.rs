//! The batch job kinds `partition_geospatial` and `partition_nongeospatial`: what the SDK's
//! `fused.ingest(…).run_batch()` and `fused.ingest_nongeospatial(…).run_batch()` POST to a
//! server, run by [`fused_ingest`] against the server's storage, with progress in the job's
//! logs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fused_core::storage::Storage;
use fused_http::server::AppState;
use fused_ingest::{Ingest, IngestNonGeo, Progress};
use fused_jobs::store::{JobRecord, JobStatus};
use fused_jobs::{JobContext, JobKind};
use serde_json::Value;

/// Runs an ingestion as a batch job on a server, as the SDK's `fused.ingest(…).run_batch()`
/// does: inputs and output must be URLs of the server's storage (`fd://…`); follow the job
/// with [`FusedApi::wait_for_job`](fused_http::FusedApi) or `fused jobs logs ID --follow`.
#[async_trait]
pub trait RunBatch {
    /// Posts the job; returns its state.
    async fn run_batch(
        &self,
        api: &fused_http::FusedApi,
    ) -> fused_core::Result<fused_http::client::RunResponse>;
}

#[async_trait]
impl RunBatch for Ingest {
    async fn run_batch(
        &self,
        api: &fused_http::FusedApi,
    ) -> fused_core::Result<fused_http::client::RunResponse> {
        let step = self.job_step();
        check_urls(&step)?;
        api.start_job(serde_json::json!({"name": GEOSPATIAL, "steps": [step]}))
            .await
    }
}

#[async_trait]
impl RunBatch for IngestNonGeo {
    async fn run_batch(
        &self,
        api: &fused_http::FusedApi,
    ) -> fused_core::Result<fused_http::client::RunResponse> {
        let step = self.job_step();
        check_urls(&step)?;
        api.start_job(serde_json::json!({"name": NONGEOSPATIAL, "steps": [step]}))
            .await
    }
}

/// The job step type of geospatial ingestion.
pub const GEOSPATIAL: &str = "partition_geospatial";
/// The job step type of non-geospatial ingestion.
pub const NONGEOSPATIAL: &str = "partition_nongeospatial";

/// Registers both ingestion kinds on a server.
pub fn register(state: &AppState) {
    for kind in [GEOSPATIAL, NONGEOSPATIAL] {
        state.register_job_kind(
            kind,
            Arc::new(IngestJob {
                kind,
                storage: Arc::clone(&state.storage),
                temp_dir: state.config.data_dir.join("tmp"),
            }),
        );
    }
}

/// Runs ingestion steps against a storage.
#[derive(Debug)]
pub struct IngestJob {
    kind: &'static str,
    storage: Arc<dyn Storage>,
    /// Downloads, runs and staged tables (in the server's data folder, not a RAM-backed
    /// system temporary folder).
    temp_dir: std::path::PathBuf,
}

/// The job's single step.
fn step(config: &Value) -> &Value {
    &config["steps"][0]
}

/// Jobs read and write the server's storage only: a local path would reach the server's own
/// file system.
fn check_urls(step: &Value) -> fused_core::Result<()> {
    let mut urls: Vec<&Value> = match &step["input"] {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    urls.push(&step["output"]);
    for key in ["output_metadata", "partitioning_schema_input"] {
        if !step[key].is_null() {
            urls.push(&step[key]);
        }
    }
    for u in urls {
        let s = u.as_str().ok_or_else(|| {
            fused_core::Error::Options(format!("inputs and outputs must be URLs, got {u}"))
        })?;
        let scheme = s.split_once("://").map(|(s, _)| s);
        if matches!(scheme, None | Some("file")) {
            return Err(fused_core::Error::Options(format!(
                "{s} is a path on the server; batch ingestion reads and writes the server's \
                 storage (fd://…): upload the file first (fused.api.upload)"
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl JobKind for IngestJob {
    fn check(&self, config: &Value) -> fused_core::Result<()> {
        let s = step(config);
        check_urls(s)?;
        match self.kind {
            GEOSPATIAL => Ingest::from_job_step(s)
                .and_then(|i| i.options_ref().validate())
                .map_err(Into::into),
            _ => IngestNonGeo::from_job_step(s)
                .map(|_| ())
                .map_err(Into::into),
        }
    }

    async fn run(&self, job: &JobRecord, ctx: &JobContext) -> fused_core::Result<JobStatus> {
        let s = step(&job.config);
        if let Err(e) = self.check(&job.config) {
            ctx.log(&format!("refused: {e}")).await;
            return Ok(JobStatus::Failed);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let progress: fused_ingest::ProgressFn = Arc::new(move |p: &Progress| {
            let line = match p {
                Progress::Reading { done, total, rows } => {
                    format!("read {done}/{total} pieces of input ({rows} rows)")
                }
                Progress::Partitioned { files, chunks } => {
                    format!("partitioned into {files} files, {chunks} chunks")
                }
                Progress::Writing { done, total } => format!("wrote {done}/{total} files"),
                Progress::Distributing { done, total } => {
                    format!("sorted {done}/{total} pieces of input into files")
                }
                Progress::Published => "published".to_owned(),
                other => format!("{other:?}"),
            };
            let _ = tx.send(line);
        });
        ctx.log(&format!(
            "{} of {} into {}",
            self.kind, s["input"], s["output"]
        ))
        .await;
        let run = {
            let (storage, id, cancel) = (Arc::clone(&self.storage), job.id.clone(), cancel.clone());
            let s = s.clone();
            let kind = self.kind;
            let temp = self.temp_dir.clone();
            if let Err(e) = std::fs::create_dir_all(&temp) {
                ctx.log(&format!("failed: creating {}: {e}", temp.display()))
                    .await;
                return Ok(JobStatus::Failed);
            }
            tokio::spawn(async move {
                match kind {
                    GEOSPATIAL => {
                        Ingest::from_job_step(&s)?
                            .temp_dir(&temp)
                            .storage(storage)
                            .job_id(id)
                            .cancel_flag(cancel)
                            .on_progress(progress)
                            .run_local()
                            .await
                    }
                    _ => {
                        IngestNonGeo::from_job_step(&s)?
                            .temp_dir(&temp)
                            .storage(storage)
                            .job_id(id)
                            .cancel_flag(cancel)
                            .on_progress(progress)
                            .run_local()
                            .await
                    }
                }
            })
        };
        tokio::pin!(run);
        let mut last_write_log = std::time::Instant::now();
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(line) = rx.recv() => {
                    // Writing progress is logged at most once a second.
                    let is_write = line.starts_with("wrote");
                    if !is_write || last_write_log.elapsed() > Duration::from_secs(1) {
                        ctx.log(&line).await;
                        if is_write {
                            last_write_log = std::time::Instant::now();
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if ctx.cancelled() {
                        cancel.store(true, Ordering::SeqCst);
                    }
                }
            }
        };
        while let Ok(line) = rx.try_recv() {
            if !line.starts_with("wrote") {
                ctx.log(&line).await;
            }
        }
        match result {
            Ok(Ok(r)) => {
                let c = r.counts;
                ctx.log(&format!(
                    "done: {} rows in {} files, {} chunks in {:.2} s (read {}, dropped {} \
                     without geometry and {} out of bounds, added {} by explode and {} by \
                     subdivide)",
                    r.rows,
                    r.files,
                    r.chunks,
                    r.seconds,
                    c.rows_read,
                    c.dropped_empty,
                    c.dropped_out_of_bounds,
                    c.added_by_explode,
                    c.added_by_subdivide
                ))
                .await;
                ctx.progress(1).await;
                Ok(JobStatus::Succeeded)
            }
            Ok(Err(fused_ingest::Error::Cancelled)) => {
                ctx.log("cancelled; nothing was published").await;
                Ok(JobStatus::Cancelled)
            }
            Ok(Err(e)) => {
                ctx.log(&format!("failed: {e}")).await;
                Ok(JobStatus::Failed)
            }
            Err(e) => {
                ctx.log(&format!("failed: the ingestion task ended: {e}"))
                    .await;
                Ok(JobStatus::Failed)
            }
        }
    }
}

//! The batch job kind `raster_to_h3`: `fused_h3`'s ingestion run by a server against its
//! storage — the rasters are downloaded to the data folder, the dataset is built there, then
//! uploaded with `_sample` last. The step: `{"type": "raster_to_h3", "input_path": URL or
//! [URLs], "output_path": URL, …options of `run_ingest_raster_to_h3`}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fused_core::storage::Storage;
use fused_h3::{H3Options, run_ingest_raster_to_h3};
use fused_http::server::AppState;
use fused_jobs::store::{JobRecord, JobStatus};
use fused_jobs::{JobContext, JobKind};
use futures::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The job step type.
pub const RASTER_TO_H3: &str = "raster_to_h3";

/// Registers the kind on a server.
pub fn register(state: &AppState) {
    state.register_job_kind(
        RASTER_TO_H3,
        Arc::new(H3Job {
            storage: Arc::clone(&state.storage),
            temp_dir: state.config.data_dir.join("tmp"),
        }),
    );
}

/// Runs `raster_to_h3` steps against a storage.
#[derive(Debug)]
pub struct H3Job {
    storage: Arc<dyn Storage>,
    temp_dir: PathBuf,
}

fn urls(step: &Value) -> fused_core::Result<(Vec<String>, String)> {
    let bad = |m: String| fused_core::Error::Options(m);
    let inputs: Vec<String> = match &step["input_path"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("input {v} is not a URL")))
            })
            .collect::<fused_core::Result<_>>()?,
        other => {
            return Err(bad(format!(
                "input_path must be a URL or a list, got {other}"
            )));
        }
    };
    let output = step["output_path"]
        .as_str()
        .ok_or_else(|| bad("the step has no output_path".into()))?
        .to_owned();
    for u in inputs.iter().chain(std::iter::once(&output)) {
        if matches!(u.split_once("://").map(|(s, _)| s), None | Some("file")) {
            return Err(bad(format!(
                "{u} is a path on the server; raster_to_h3 jobs read and write the server's \
                 storage (fd://…)"
            )));
        }
    }
    Ok((inputs, output))
}

fn options(step: &Value) -> fused_core::Result<H3Options> {
    let o: H3Options = serde_json::from_value(step.clone())
        .map_err(|e| fused_core::Error::Options(format!("invalid raster_to_h3 step: {e}")))?;
    if let Some(t) = &o.tmp_path {
        return Err(fused_core::Error::Options(format!(
            "tmp_path {t} is a path on the server; raster_to_h3 jobs use the server's \
             temporary folder"
        )));
    }
    Ok(o)
}

#[async_trait]
impl JobKind for H3Job {
    fn check(&self, config: &Value) -> fused_core::Result<()> {
        let step = &config["steps"][0];
        urls(step)?;
        let o = options(step)?;
        if let Some(r) = o.res {
            o.resolve(r).map_err(fused_core::Error::from)?;
        }
        Ok(())
    }

    async fn run(&self, job: &JobRecord, ctx: &JobContext) -> fused_core::Result<JobStatus> {
        let step = &job.config["steps"][0];
        let (inputs, output, opts) = match urls(step).and_then(|(i, o)| Ok((i, o, options(step)?)))
        {
            Ok(v) => v,
            Err(e) => {
                ctx.log(&format!("refused: {e}")).await;
                return Ok(JobStatus::Failed);
            }
        };
        // What the output holds now: refused without overwrite, else removed once the new
        // dataset (with its `_sample`) is up, when the new one has no file of that name.
        let old = match existing(&self.storage, &output).await {
            Ok(o) => o,
            Err(e) => {
                ctx.log(&format!("failed: listing {output}: {e}")).await;
                return Ok(JobStatus::Failed);
            }
        };
        if !old.is_empty() && !opts.overwrite {
            ctx.log(&format!(
                "refused: {output} already holds {} files; pass overwrite to replace it",
                old.len()
            ))
            .await;
            return Ok(JobStatus::Failed);
        }
        let _ = std::fs::create_dir_all(&self.temp_dir);
        let work = match tempfile::Builder::new()
            .prefix("h3-job-")
            .tempdir_in(&self.temp_dir)
        {
            Ok(w) => w,
            Err(e) => {
                ctx.log(&format!("failed: creating a work folder: {e}"))
                    .await;
                return Ok(JobStatus::Failed);
            }
        };
        let mut local = Vec::new();
        for (i, url) in inputs.iter().enumerate() {
            let name = url.rsplit('/').next().unwrap_or("input.tif");
            let path = work.path().join(format!("{i}-{name}"));
            if let Err(e) = fetch(&self.storage, url, &path).await {
                ctx.log(&format!("failed: downloading {url}: {e}")).await;
                return Ok(JobStatus::Failed);
            }
            local.push(path);
        }
        ctx.log(&format!("ingesting {} rasters into {output}", local.len()))
            .await;
        let cancel = Arc::new(AtomicBool::new(false));
        let dataset = work.path().join("dataset");
        let run = tokio::spawn(
            run_ingest_raster_to_h3(local, &dataset)
                .options(H3Options {
                    overwrite: true,
                    ..opts
                })
                .cancel_flag(cancel.clone())
                .run_local(),
        );
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if ctx.cancelled() {
                        cancel.store(true, Ordering::SeqCst);
                    }
                }
            }
        };
        let report = match result {
            Ok(Ok(r)) => r,
            Ok(Err(fused_h3::Error::Cancelled)) => {
                ctx.log("cancelled; nothing was published").await;
                return Ok(JobStatus::Cancelled);
            }
            Ok(Err(e)) => {
                ctx.log(&format!("failed: {e}")).await;
                return Ok(JobStatus::Failed);
            }
            Err(e) => {
                ctx.log(&format!("failed: the ingestion task ended: {e}"))
                    .await;
                return Ok(JobStatus::Failed);
            }
        };
        let written = match upload_dir(&self.storage, &dataset, &output).await {
            Ok(w) => w,
            Err(e) => {
                ctx.log(&format!("failed: uploading the dataset: {e}"))
                    .await;
                return Ok(JobStatus::Failed);
            }
        };
        let base = output.trim_end_matches('/');
        for rel in old.iter().filter(|r| !written.contains(*r)) {
            if let Err(e) = self.storage.delete(&format!("{base}/{rel}"), Some(0)).await {
                ctx.log(&format!("warning: removing the replaced {rel}: {e}"))
                    .await;
            }
        }
        ctx.log(&format!(
            "done: {} pixels → {} cells at res {} in {} files, {} overviews ({:.2} s)",
            report.pixels, report.rows, report.res, report.files, report.overviews, report.seconds
        ))
        .await;
        ctx.progress(1).await;
        Ok(JobStatus::Succeeded)
    }
}

async fn fetch(storage: &Arc<dyn Storage>, url: &str, path: &Path) -> fused_core::Result<()> {
    let mut stream = storage.get(url, None).await?.into_stream();
    let mut f = tokio::fs::File::create(path).await?;
    while let Some(chunk) = stream.next().await {
        f.write_all(&chunk?).await?;
    }
    f.flush().await?;
    Ok(())
}

/// The files under `url` and its `overview/`, relative to `url`.
async fn existing(storage: &Arc<dyn Storage>, url: &str) -> fused_core::Result<Vec<String>> {
    let base = url.trim_end_matches('/');
    let mut out = Vec::new();
    for sub in ["", "overview/"] {
        match storage.list(&format!("{base}/{sub}")).await {
            Ok(entries) => out.extend(
                entries
                    .into_iter()
                    .filter(|m| !m.is_directory)
                    .map(|m| format!("{sub}{}", m.file_name)),
            ),
            Err(fused_core::Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Uploads the dataset's files (`overview/` included), `_sample` last; their paths relative
/// to `url`.
async fn upload_dir(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    url: &str,
) -> fused_core::Result<Vec<String>> {
    let base = url.trim_end_matches('/');
    let mut files = Vec::new();
    for sub in ["", "overview"] {
        let d = dir.join(sub);
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let rel = if sub.is_empty() {
                        name
                    } else {
                        format!("{sub}/{name}")
                    };
                    files.push((e.path(), rel));
                }
            }
        }
    }
    files.sort_by_key(|(_, rel)| (rel == "_sample", rel.clone()));
    let mut written = Vec::with_capacity(files.len());
    for (path, rel) in files {
        let f = tokio::fs::File::open(&path).await?;
        let body = fused_core::transport::Body::from_stream(tokio_util::io::ReaderStream::new(f));
        storage.put(&format!("{base}/{rel}"), body).await?;
        written.push(rel);
    }
    Ok(written)
}

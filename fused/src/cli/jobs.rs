//! `fused jobs ls|status|logs [--follow]|cancel|wait` (against a server) and `fused worker`
//! (runs jobs from a server's job store).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::remote::RemoteArgs;

/// `fused jobs`.
#[derive(Debug, clap::Args)]
pub(crate) struct JobsArgs {
    #[command(subcommand)]
    command: JobsCommand,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Your latest jobs.
    Ls {
        /// How many.
        #[arg(short, default_value_t = 10)]
        n: usize,
    },
    /// A job's state.
    Status {
        /// The job's id.
        id: String,
    },
    /// A job's logs.
    Logs {
        /// The job's id.
        id: String,
        /// Keep printing new lines until the job ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Cancel a job.
    Cancel {
        /// The job's id.
        id: String,
    },
    /// Wait until a job ends; the exit code says whether it succeeded.
    Wait {
        /// The job's id.
        id: String,
        /// Give up after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
}

fn show(out: &mut impl Write, r: &fused::api::RunResponse) -> std::io::Result<()> {
    writeln!(
        out,
        "{}  {:<9} {}/{} tasks  {}",
        r.job_id,
        r.job_status.as_deref().unwrap_or("?"),
        r.finished_tasks,
        r.total_tasks,
        r.job_name
    )
}

pub(crate) async fn jobs(a: JobsArgs) -> fused::Result<ExitCode> {
    let api = a.remote.client()?;
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| fused::Error::Io {
        context: "writing to standard output".into(),
        source: e,
    };
    match a.command {
        JobsCommand::Ls { n } => {
            for j in api.get_jobs(n).await? {
                writeln!(
                    out,
                    "{}  {:<9} {}  {}",
                    j["id"].as_str().unwrap_or_default(),
                    j["job_status"].as_str().unwrap_or_default(),
                    j["creation_date"].as_str().unwrap_or_default(),
                    j["name"].as_str().unwrap_or_default()
                )
                .map_err(io)?;
            }
        }
        JobsCommand::Status { id } => show(&mut out, &api.get_status(&id).await?).map_err(io)?,
        JobsCommand::Logs { id, follow } => {
            let mut since = None;
            loop {
                for l in api.get_logs(&id, since).await? {
                    writeln!(
                        out,
                        "{}  {}",
                        fused_http::store::rfc3339(l.timestamp / 1000),
                        l.message
                    )
                    .map_err(io)?;
                    since = Some(l.timestamp);
                }
                out.flush().map_err(io)?;
                if !follow || api.get_status(&id).await?.terminal_status {
                    // One more read: lines written just before the end.
                    if follow {
                        for l in api.get_logs(&id, since).await? {
                            writeln!(
                                out,
                                "{}  {}",
                                fused_http::store::rfc3339(l.timestamp / 1000),
                                l.message
                            )
                            .map_err(io)?;
                        }
                    }
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        JobsCommand::Cancel { id } => show(&mut out, &api.cancel_job(&id).await?).map_err(io)?,
        JobsCommand::Wait { id, timeout } => {
            let t = timeout.map(Duration::from_secs_f64);
            let r = api.wait_for_job(&id, Duration::from_millis(500), t).await?;
            show(&mut out, &r).map_err(io)?;
            if r.job_status.as_deref() != Some("Done") {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `fused worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The data folder of the server whose jobs to run (its `jobs.db`, files and UDFs).
    #[arg(long, default_value = "fused-data", env = "FUSED_DATA_DIR")]
    data_dir: PathBuf,
    /// The job store (as `fused serve --jobs`): a SQLite file or a PostgreSQL URL.
    #[arg(long, env = "FUSED_JOBS")]
    jobs: Option<String>,
    /// Take one job (if any), run it, and stop.
    #[arg(long)]
    once: bool,
    /// Seconds a job stays this worker's without a heartbeat (renewed every third of it, at
    /// most every 2 s); another worker takes the job over after that if this one dies.
    #[arg(long, default_value_t = 30.0)]
    lease: f64,
}

pub(crate) async fn worker(a: WorkerArgs) -> fused::Result<ExitCode> {
    let state = super::serve::state_for_worker(&a.data_dir, a.jobs.as_deref()).await?;
    if !(a.lease >= 1.0 && a.lease <= 86_400.0) {
        return Err(fused::Error::Usage(format!(
            "--lease must be between 1 and 86400 seconds, got {}",
            a.lease
        )));
    }
    let worker = state
        .worker()
        .with_timing(Duration::from_secs_f64(a.lease), Duration::from_millis(500));
    let store = a
        .jobs
        .clone()
        .unwrap_or_else(|| a.data_dir.join("jobs.db").display().to_string());
    eprintln!("worker {} on {store}", worker.name());
    if a.once {
        let ran = worker.run_one().await?;
        eprintln!("{}", if ran { "ran one job" } else { "no job waiting" });
        return Ok(ExitCode::SUCCESS);
    }
    worker
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(ExitCode::SUCCESS)
}

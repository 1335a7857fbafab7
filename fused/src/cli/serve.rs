//! `fused serve`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use fused::UdfRegistry;
use fused_http::server::{self, AppState, ServerConfig, ServerParts, ServerSecret, TokenSource};
use fused_http::store::Store;

/// Options of `fused serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (use 0.0.0.0 to accept other machines).
    #[arg(long, default_value = "127.0.0.1", env = "FUSED_HOST")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = fused_http::DEFAULT_PORT, env = "FUSED_PORT")]
    port: u16,
    /// Folder for the server's state: its secret, database (fused.db), owner token, and — unless
    /// --storage says otherwise — the files of fd:// (in `files/`).
    #[arg(long, default_value = "fused-data", env = "FUSED_DATA_DIR")]
    data_dir: PathBuf,
    /// Root of fd://: a local folder, or s3://bucket/prefix in builds with cloud storage.
    #[arg(long, env = "FUSED_STORAGE")]
    storage: Option<String>,
    /// The job store: a SQLite file (default: jobs.db in the data folder) or a PostgreSQL URL
    /// (postgres://…) shared with `fused worker`s on other machines.
    #[arg(long, env = "FUSED_JOBS")]
    jobs: Option<String>,
    /// E-mail of the server's owner (native UDFs are saved UDFs of this user).
    #[arg(long, default_value = "owner@fused.local", env = "FUSED_OWNER_EMAIL")]
    owner_email: String,
    /// The URL clients reach this server at, for signed URLs (default: each request's Host).
    #[arg(long, env = "FUSED_PUBLIC_URL")]
    public_url: Option<String>,
    /// An XYZ raster URL template the viewer draws under UDFs
    /// (`https://tile.openstreetmap.org/{z}/{x}/{y}.png`); none by default (no internet needed).
    #[arg(long, env = "FUSED_BASEMAP")]
    basemap: Option<String>,
    /// Memory for cached results, in MiB.
    #[arg(long, default_value_t = 256)]
    cache_mb: u64,
    /// Disk for cached results (in the data folder's `cache/`), in MiB; 0: memory only.
    #[arg(long, default_value_t = 2048)]
    cache_disk_mb: u64,
    /// Seconds a UDF run may take before it is stopped.
    #[arg(long, default_value_t = 130.0)]
    run_timeout: f64,
    /// Seconds a run of a posted UDF definition may take before the server answers 202 and
    /// the client polls for the result (keep it under the SDK's 5 s request timeout).
    #[arg(long, default_value_t = 3.0)]
    run_start_wait: f64,
    /// The Python interpreter that runs code UDFs (a virtualenv's `bin/python` with pandas,
    /// pyarrow and geopandas for table outputs); `none` runs native UDFs only.
    #[arg(long, default_value = "python3", env = "FUSED_PYTHON")]
    python: String,
    /// Serve every UDF folder, .zip or .py file of this folder as a code UDF (reloaded when
    /// its files change).
    #[arg(long, env = "FUSED_UDFS")]
    udfs: Option<PathBuf>,
    /// Python worker processes (code UDF calls run at once); default: one per core.
    #[arg(long)]
    python_workers: Option<usize>,
    /// Address space each Python worker may use, in MiB (a UDF past it gets a MemoryError);
    /// 0: no limit.
    #[arg(long, default_value_t = 8192)]
    python_memory_mb: u64,
    /// Run Python workers as this OS user (the server must run as root; the interpreter must
    /// be readable by that user), so UDF code cannot read the server's files.
    #[arg(long, env = "FUSED_PYTHON_USER")]
    python_user: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key", env = "FUSED_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", env = "FUSED_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

pub(crate) async fn serve(a: ServeArgs) -> fused::Result<ExitCode> {
    if !(a.run_timeout > 0.0 && a.run_timeout <= fused_core::options::MAX_SECONDS) {
        return Err(fused::Error::Usage(format!(
            "--run-timeout must be a number of seconds in (0, {}], got {}",
            fused_core::options::MAX_SECONDS,
            a.run_timeout
        )));
    }
    let cache_bytes = a
        .cache_mb
        .checked_mul(1 << 20)
        .ok_or_else(|| fused::Error::Usage(format!("--cache-mb {} is too large", a.cache_mb)))?;
    let registry = Arc::new(UdfRegistry::new());
    fused::demos::register_with_data(&registry, &a.data_dir).await?;
    // The server caches encoded responses itself, so its executor runs every call it is given.
    let executor = Arc::new(
        fused::LocalExecutor::new(Arc::clone(&registry))
            .with_timeout(Duration::from_secs_f64(a.run_timeout)),
    );
    let disk_bytes = a.cache_disk_mb.checked_mul(1 << 20).ok_or_else(|| {
        fused::Error::Usage(format!("--cache-disk-mb {} is too large", a.cache_disk_mb))
    })?;
    let cache = fused::run_cache::open(&a.data_dir.join("cache"), cache_bytes, disk_bytes)?;
    let secret = ServerSecret::from_data_dir(&a.data_dir)?;
    let env_token = std::env::var("FUSED_SERVER_TOKEN").ok();
    let (owner_token, source) = server::owner_token(&a.data_dir, env_token.as_deref())?;
    let storage_root = a
        .storage
        .clone()
        .unwrap_or_else(|| a.data_dir.join("files").display().to_string());
    let storage = Arc::new(fused_storage::ObjectStorage::from_url(&storage_root)?);
    let store = Store::open(&a.data_dir)
        .await
        .map_err(fused_http::Error::from)?;
    let config = ServerConfig {
        data_dir: a.data_dir.clone(),
        owner_email: a.owner_email.clone(),
        owner_token: Some(owner_token.clone()),
        public_url: a.public_url.clone(),
        basemap_url: a.basemap.as_deref().map(check_basemap).transpose()?,
        https: a.tls_cert.is_some(),
        run_start_wait: Duration::from_secs_f64(a.run_start_wait.clamp(0.0, 60.0)),
        ..ServerConfig::default()
    };
    let jobs = open_jobs(a.jobs.as_deref(), &a.data_dir).await?;
    let parts = ServerParts {
        registry: Arc::clone(&registry),
        executor,
        cache,
        store,
        storage,
        jobs,
        secret,
    };
    let state = AppState::new(parts, config).await?;
    fused::ingest_job::register(&state);
    fused::h3_job::register(&state);
    if a.python != "none" {
        let workers = a.python_workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        });
        let mut cfg = fused_python::WorkerConfig::new(&a.python);
        if a.python_memory_mb > 0 {
            cfg = cfg.with_memory_limit(a.python_memory_mb << 20);
        }
        if let Some(user) = &a.python_user {
            cfg = cfg.with_user(user);
        }
        let pool = fused_python::PythonPool::new(cfg, workers);
        let warm = Arc::clone(&pool);
        let python = a.python.clone();
        // Workers come up in the background; until then a call starts its own.
        tokio::spawn(async move {
            if let Err(e) = warm.warm().await {
                tracing::warn!(
                    "code UDFs will fail: the Python runtime ({python}) does not start: {e}"
                );
            }
        });
        let runtime: Arc<dyn fused_core::udf::CodeRuntime> = Arc::new(
            fused_python::PythonRuntime::new(pool, Duration::from_secs_f64(a.run_timeout))
                .with_executor(state.udf_executor())
                .with_cache(Arc::clone(&state.cache)),
        );
        state.set_code_runtime(Arc::clone(&runtime));
        if let Some(dir) = &a.udfs {
            fused::udf_dir::serve_dir(dir.clone(), Arc::clone(&state), runtime).await;
        }
    } else if a.udfs.is_some() {
        return Err(fused::Error::Usage(
            "--udfs serves Python UDFs: it needs --python".into(),
        ));
    }
    // Batch jobs run in this process too (`fused worker` adds more workers on the same store).
    let worker = state.worker();
    tokio::spawn(async move { worker.run(std::future::pending()).await });
    let owner = OwnerToken {
        token: owner_token,
        source,
        storage_root,
    };
    let router = server::router(Arc::clone(&state));
    let addr = SocketAddr::new(a.host, a.port);
    let data_dir = a.data_dir.clone();
    let shutdown = async {
        wait_for_stop_signal().await;
        eprintln!("shutting down");
    };
    match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = server::load_tls_config(cert, key)?;
            let banner = move |bound| print_banner(&state, &owner, "https", bound, &data_dir);
            server::serve_tls(addr, router, tls, banner, shutdown).await?;
        }
        _ => {
            let banner = move |bound| print_banner(&state, &owner, "http", bound, &data_dir);
            server::serve(addr, router, banner, shutdown).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C, or on SIGTERM (what service managers and containers send).
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The owner's token and where it came from, for the banner.
struct OwnerToken {
    token: String,
    source: TokenSource,
    storage_root: String,
}

/// A basemap URL template, checked: http(s) with `{z}`, `{x}` and `{y}`.
fn check_basemap(url: &str) -> fused::Result<String> {
    let url = url.trim();
    let http = url.starts_with("http://") || url.starts_with("https://");
    if http && ["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p)) {
        Ok(url.to_owned())
    } else {
        Err(fused::Error::Usage(format!(
            "--basemap must be an http(s) XYZ URL template with {{z}}, {{x}} and {{y}}, got {url:?}"
        )))
    }
}

/// Prints where the server listens and how to call each UDF. Write errors (a closed stdout)
/// are ignored: the banner is a courtesy, the server keeps running.
fn print_banner(
    state: &AppState,
    owner: &OwnerToken,
    scheme: &str,
    bound: SocketAddr,
    data_dir: &std::path::Path,
) {
    let _ = write_banner(
        &mut std::io::stdout().lock(),
        state,
        owner,
        scheme,
        bound,
        data_dir,
    );
}

fn write_banner(
    out: &mut impl Write,
    state: &AppState,
    owner: &OwnerToken,
    scheme: &str,
    bound: SocketAddr,
    data_dir: &std::path::Path,
) -> std::io::Result<()> {
    let host = if bound.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        bound.ip().to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let base = format!("{scheme}://{host}:{}/v1", bound.port());
    let shared = format!("{base}/realtime-shared");
    writeln!(out, "fused-rs {} serving {base}", env!("CARGO_PKG_VERSION"))?;
    let page = format!("{scheme}://{host}:{}/", bound.port());
    match owner.source {
        TokenSource::Generated => writeln!(out, "viewer: {page}#token={}", owner.token)?,
        TokenSource::DataFolder => writeln!(
            out,
            "viewer: {page} (sign in once with the token in {})",
            data_dir.join("owner.token").display()
        )?,
        TokenSource::Environment => writeln!(
            out,
            "viewer: {page} (sign in once with $FUSED_SERVER_TOKEN)"
        )?,
    }
    writeln!(out, "data folder: {}", data_dir.display())?;
    writeln!(out, "files (fd://): {}", owner.storage_root)?;
    writeln!(out, "owner: {}", state.owner.email)?;
    match owner.source {
        TokenSource::Environment => writeln!(out, "owner token: from FUSED_SERVER_TOKEN")?,
        TokenSource::DataFolder => writeln!(
            out,
            "owner token: {}… (in {})",
            owner.token.chars().take(8).collect::<String>(),
            data_dir.join("owner.token").display()
        )?,
        TokenSource::Generated => writeln!(
            out,
            "owner token (new, kept in {}): {}",
            data_dir.join("owner.token").display(),
            owner.token
        )?,
    }
    writeln!(out)?;
    let token_expr = match owner.source {
        TokenSource::Environment => "$FUSED_SERVER_TOKEN".to_owned(),
        _ => format!("$(cat {})", data_dir.join("owner.token").display()),
    };
    writeln!(
        out,
        "Python SDK (the same variables serve `fused files` and `fused udf`):"
    )?;
    writeln!(
        out,
        "  export FUSED_BASE_URL={base} FUSED_AUTH_TOKEN={token_expr} FUSED_AUTH_TOKEN_TYPE=Fused-Env-Bearer"
    )?;
    writeln!(out, "  import fused")?;
    writeln!(out, "  fused.options.base_url = \"{base}\"")?;
    writeln!(out, "  fused.options.shared_udf_base_url = \"{shared}\"")?;
    writeln!(out, "  fused.run(\"hello\", name=\"Fused\")")?;
    writeln!(out)?;
    writeln!(out, "UDFs (shared token → try it):")?;
    for udf in state.registry.list() {
        let token = state.default_token(udf.name());
        writeln!(
            out,
            "  {:<12} {}",
            udf.name(),
            udf.description().unwrap_or("")
        )?;
        writeln!(out, "    token: {token}")?;
        let example = match udf.name() {
            "hello" => format!("curl '{shared}/{token}/run?name=Fused&format=json'"),
            "vector_tile" => format!("curl '{shared}/{token}/run/tiles/3/4/2?format=geojson'"),
            "h3_relief" => format!("curl '{shared}/{token}/run/tiles/6/33/22?format=geojson'"),
            "raster_tile" => {
                format!("curl -o tile.png '{shared}/{token}/run/tiles/3/4/2?format=png'")
            }
            _ if udf.takes_bounds() => format!("curl '{shared}/{token}/run/tiles/3/4/2'"),
            _ => format!("curl '{shared}/{token}/run'"),
        };
        writeln!(out, "    {example}")?;
        if udf.takes_bounds() {
            writeln!(out, "    fused.run(\"{token}\", x=4, y=2, z=3)")?;
        }
    }
    writeln!(out)?;
    out.flush()
}

/// The job store `spec` names: a PostgreSQL URL, a SQLite file, or `data_dir/jobs.db`.
pub(crate) async fn open_jobs(
    spec: Option<&str>,
    data_dir: &std::path::Path,
) -> fused::Result<Arc<dyn fused_jobs::store::JobStore>> {
    Ok(match spec {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Arc::new(fused_jobs::store::PostgresJobStore::connect(url).await?)
        }
        Some(path) => {
            Arc::new(fused_jobs::store::SqliteJobStore::open(std::path::Path::new(path)).await?)
        }
        None => Arc::new(fused_jobs::store::SqliteJobStore::open(&data_dir.join("jobs.db")).await?),
    })
}

/// The state a `fused worker` runs jobs with: the same UDFs, files and job store as a
/// `fused serve` on `data_dir` (default storage root), without listening.
pub(crate) async fn state_for_worker(
    data_dir: &std::path::Path,
    jobs: Option<&str>,
) -> fused::Result<Arc<AppState>> {
    let registry = Arc::new(UdfRegistry::new());
    fused::demos::register_with_data(&registry, data_dir).await?;
    let executor = Arc::new(
        fused::LocalExecutor::new(Arc::clone(&registry)).with_timeout(Duration::from_secs(130)),
    );
    let cache = fused::run_cache::open(&data_dir.join("cache"), 64 << 20, 1 << 30)?;
    let storage = Arc::new(fused_storage::ObjectStorage::local(data_dir.join("files"))?);
    let store = Store::open(data_dir)
        .await
        .map_err(fused_http::Error::from)?;
    let jobs = open_jobs(jobs, data_dir).await?;
    let parts = ServerParts {
        registry,
        executor,
        cache,
        store,
        storage,
        jobs,
        secret: ServerSecret::from_data_dir(data_dir)?,
    };
    let config = ServerConfig {
        data_dir: data_dir.to_owned(),
        ..ServerConfig::default()
    };
    let state = AppState::new(parts, config).await?;
    fused::ingest_job::register(&state);
    fused::h3_job::register(&state);
    Ok(state)
}

//! `download(url, file_path)` (once across threads and processes) and `file_path(path)`:
//! files under the data directory, as `fused.download` / `fused.file_path` give them.
//!
//! A download is written to a temporary name and renamed, then marked done with
//! `<file>.done`; concurrent callers in this process wait on a lock, other processes on
//! `<file>.lock` (refreshed while the download runs, taken over when its holder stopped).
//! Transient failures (connection errors, timeouts, 5xx, 429) are retried with backoff.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fused_core::{Error, Result, Storage};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

/// Entries of a `file_path` folder older than this are removed when it is asked for.
pub const FILE_PATH_RETENTION: Duration = Duration::from_secs(12 * 3600);
/// A download lock not refreshed for this long belongs to a stopped process.
const LOCK_STALE: Duration = Duration::from_secs(10);
const LOCK_HEARTBEAT: Duration = Duration::from_secs(2);
const ATTEMPTS: u32 = 4;

/// `path` under `base`, refused when it would leave it.
fn inside(base: &Path, path: &str) -> Result<PathBuf> {
    let p = Path::new(path.trim_start_matches('/'));
    let bad = p.as_os_str().is_empty()
        || path.contains('\0')
        || p.components().any(|c| !matches!(c, Component::Normal(_)));
    if bad {
        return Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: "must be a relative path that stays inside the data directory".into(),
        });
    }
    Ok(base.join(p))
}

/// The data directory of these options (created when missing).
fn data_dir() -> Result<PathBuf> {
    let dir = fused_core::Options::load()
        .map(|o| o.data_directory)
        .unwrap_or_else(|_| std::env::temp_dir());
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A path under the data directory: a folder is created (for a name with an extension, its
/// parent), and entries in it older than 12 h are removed.
pub fn file_path(path: &str) -> Result<PathBuf> {
    file_path_in(&data_dir()?, path)
}

/// [`file_path`] under `base`.
pub fn file_path_in(base: &Path, path: &str) -> Result<PathBuf> {
    let target = inside(base, path)?;
    let folder = if target.extension().is_some() {
        target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| base.to_owned())
    } else {
        target.clone()
    };
    std::fs::create_dir_all(&folder)?;
    let now = SystemTime::now();
    for entry in std::fs::read_dir(&folder)?.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > FILE_PATH_RETENTION);
        if old {
            let p = entry.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
    Ok(target)
}

/// Downloads files once: `file:`, `http(s):` and — given a [`Storage`] — its URLs.
#[derive(Debug, Clone, Default)]
pub struct Downloader {
    base: Option<PathBuf>,
    storage: Option<Arc<dyn Storage>>,
    client: Option<reqwest::Client>,
}

impl Downloader {
    /// Downloads into the data directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Downloads into `base` instead.
    #[must_use]
    pub fn in_dir(mut self, base: impl Into<PathBuf>) -> Self {
        self.base = Some(base.into());
        self
    }

    /// Also fetches the URLs `storage` knows (`fd://`, `s3://…`).
    #[must_use]
    pub fn with_storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Fetches `url` to `file_path` under the base folder, once; returns the local path.
    pub async fn download(&self, url: &str, file_path: &str) -> Result<PathBuf> {
        let base = match &self.base {
            Some(b) => b.clone(),
            None => data_dir()?,
        };
        let dest = inside(&base, file_path)?;
        let done = with_suffix(&dest, ".done");
        if done.exists() && dest.exists() {
            return Ok(dest);
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let local = in_process_lock(&dest);
        let _held = local.lock().await;
        if done.exists() && dest.exists() {
            return Ok(dest);
        }
        let _lock = FileLock::acquire(&with_suffix(&dest, ".lock"), &done, &dest).await?;
        if done.exists() && dest.exists() {
            return Ok(dest);
        }
        self.fetch_with_retries(url, &dest).await?;
        tokio::fs::write(&done, b"done").await?;
        Ok(dest)
    }

    async fn fetch_with_retries(&self, url: &str, dest: &Path) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.fetch(url, dest).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt + 1 < ATTEMPTS && transient(&e) => {
                    let pause = Duration::from_millis(200 * 2u64.pow(attempt))
                        .mul_f64(0.5 + rand::random::<f64>());
                    tracing::debug!(error = %e, ?pause, "retrying a download");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt: streamed to a temporary file, renamed when complete.
    async fn fetch(&self, url: &str, dest: &Path) -> Result<()> {
        let tmp = with_suffix(dest, &format!(".part-{}", uuid::Uuid::new_v4().simple()));
        let result = async {
            let mut out = tokio::fs::File::create(&tmp).await?;
            let mut stream = self.open(url).await?;
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk?).await?;
            }
            out.sync_all().await?;
            tokio::fs::rename(&tmp, dest).await?;
            Ok::<(), Error>(())
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn open(
        &self,
        url: &str,
    ) -> Result<futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>> {
        if let Some(path) = url.strip_prefix("file://") {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("{path}: {e}"))))?;
            return Ok(tokio_util::io::ReaderStream::with_capacity(f, 1 << 20).boxed());
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            let client = self.client.clone().unwrap_or_default();
            let resp = client
                .get(url)
                .send()
                .await
                .map_err(|e| Error::Transport(format!("GET {url}: {e}")))?;
            let status = resp.status().as_u16();
            if status >= 400 {
                return Err(Error::Http {
                    status,
                    message: format!("GET {url}"),
                });
            }
            return Ok(resp
                .bytes_stream()
                .map(|c| c.map_err(std::io::Error::other))
                .boxed());
        }
        match &self.storage {
            Some(s) => Ok(s.get(url, None).await?.into_stream()),
            None => Err(Error::Unsupported(format!(
                "cannot download {url}: use file://, http(s):// or a configured storage"
            ))),
        }
    }
}

/// Fetches `url` to `file_path` under the data directory, once across threads and processes.
pub async fn download(url: &str, file_path: &str) -> Result<PathBuf> {
    Downloader::new().download(url, file_path).await
}

fn transient(e: &Error) -> bool {
    match e {
        Error::Transport(_) => true,
        Error::Http { status, .. } => *status >= 500 || *status == 429,
        Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::Other
        ),
        _ => false,
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn in_process_lock(dest: &Path) -> Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if map.len() > 1024 {
        map.retain(|_, l| Arc::strong_count(l) > 1);
    }
    Arc::clone(map.entry(dest.to_owned()).or_default())
}

/// `<file>.lock`, created exclusively, refreshed while held, removed on drop.
struct FileLock {
    path: PathBuf,
    beat: Option<tokio::task::JoinHandle<()>>,
}

impl FileLock {
    /// Waits until the lock is free (or its holder stopped) or the download is done.
    async fn acquire(path: &Path, done: &Path, dest: &Path) -> Result<Self> {
        let mut pause = Duration::from_millis(20);
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => {
                    let p = path.to_owned();
                    let beat = tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(LOCK_HEARTBEAT).await;
                            let _ = tokio::fs::write(&p, b"alive").await;
                        }
                    });
                    return Ok(Self {
                        path: path.to_owned(),
                        beat: Some(beat),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            if done.exists() && dest.exists() {
                return Ok(Self {
                    path: PathBuf::new(),
                    beat: None,
                });
            }
            let stale = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > LOCK_STALE);
            if stale {
                tracing::warn!(path = %path.display(), "taking over a download lock whose holder stopped");
                let _ = std::fs::remove_file(path);
                continue;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if let Some(b) = self.beat.take() {
            b.abort();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

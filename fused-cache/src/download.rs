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

/// `path` under `base`, refused when it would leave it — lexically, or through a symlink on
/// the way.
fn inside(base: &Path, path: &str) -> Result<PathBuf> {
    let p = Path::new(path.trim_start_matches('/'));
    let refuse = |reason: &str| Error::InvalidPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let bad = p.as_os_str().is_empty()
        || path.contains('\0')
        || p.components().any(|c| !matches!(c, Component::Normal(_)));
    if bad {
        return Err(refuse(
            "must be a relative path that stays inside the data directory",
        ));
    }
    let target = base.join(p);
    let root = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
    // The deepest part that exists must resolve inside the base.
    let mut probe = target.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(probe) {
            if !real.starts_with(&root) {
                return Err(refuse("a symlink leads outside the data directory"));
            }
            break;
        }
        match probe.parent() {
            Some(parent) if parent.starts_with(base) => probe = parent,
            _ => break,
        }
    }
    Ok(target)
}

/// The data directory of these options (created when missing); the default one when the
/// options cannot be read — never the temp folder itself, which `file_path` would sweep.
fn data_dir() -> Result<PathBuf> {
    let dir = fused_core::Options::load()
        .map(|o| o.data_directory)
        .unwrap_or_else(|_| fused_core::Options::default().data_directory);
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
        // A folder is as old as the newest thing in it.
        let old = newest(&entry.path(), 3)
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

/// The latest modification time of `path` and, for a folder, of what it holds (`depth`
/// levels down).
fn newest(path: &Path, depth: u32) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut t = meta.modified().ok()?;
    if meta.is_dir() && depth > 0 {
        for e in std::fs::read_dir(path).ok()?.flatten() {
            if let Some(inner) = newest(&e.path(), depth - 1) {
                t = t.max(inner);
            }
        }
    }
    Some(t)
}

/// How long a caller waits for another process's download of the same file by default.
pub const DOWNLOAD_LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// Downloads files once: `file:`, `http(s):` and — given a [`Storage`] — its URLs.
#[derive(Debug, Clone, Default)]
pub struct Downloader {
    base: Option<PathBuf>,
    storage: Option<Arc<dyn Storage>>,
    client: Option<reqwest::Client>,
    lock_timeout: Option<Duration>,
    stale_after: Option<Duration>,
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

    /// How long to wait for another process downloading the same file (default 10 min),
    /// after which this one downloads too.
    #[must_use]
    pub fn with_lock_timeout(mut self, t: Duration) -> Self {
        self.lock_timeout = Some(t);
        self
    }

    /// After how long without a heartbeat another process's lock counts as abandoned
    /// (default 10 s).
    #[must_use]
    pub fn with_stale_after(mut self, t: Duration) -> Self {
        self.stale_after = Some(t);
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
        let local = IN_PROCESS.get(&dest.to_string_lossy());
        let _held = local.lock().await;
        if done.exists() && dest.exists() {
            return Ok(dest);
        }
        let timeout = self.lock_timeout.unwrap_or(DOWNLOAD_LOCK_TIMEOUT);
        let stale = self.stale_after.unwrap_or(LOCK_STALE);
        let lock = with_suffix(&dest, ".lock");
        let _lock = FileLock::acquire(&lock, &done, &dest, timeout, stale).await?;
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
            let client = match &self.client {
                Some(c) => c.clone(),
                // A stalled server must not hold the download (and its lock) forever.
                None => reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(30))
                    .read_timeout(Duration::from_secs(120))
                    .build()
                    .map_err(|e| Error::Transport(e.to_string()))?,
            };
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
        Error::Transport(_) | Error::Storage(_) => true,
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

/// In-process locks by destination, so threads of one process download once.
static IN_PROCESS: crate::keyed::KeyedLocks = crate::keyed::KeyedLocks::new();

/// `<file>.lock`, created exclusively with a random token; refreshed while held (only while it
/// still holds the token), removed when dropped (only if it still does). A lock whose content
/// has not changed for the stale time by this process's clock is taken over. Refreshes and the
/// removal share a mutex, so no refresh lands after the removal.
struct FileLock {
    held: Option<Held>,
}

struct Held {
    path: PathBuf,
    token: String,
    released: Arc<std::sync::Mutex<bool>>,
    beat: tokio::task::JoinHandle<()>,
}

fn holds(path: &Path, token: &str) -> bool {
    std::fs::read(path)
        .ok()
        .is_some_and(|c| c.starts_with(token.as_bytes()))
}

impl FileLock {
    /// Waits until the lock is free (or its holder stopped, or `timeout` passed) or the
    /// download is done.
    async fn acquire(
        path: &Path,
        done: &Path,
        dest: &Path,
        timeout: Duration,
        stale: Duration,
    ) -> Result<Self> {
        let token = format!("{:032x}", rand::random::<u128>());
        let started = std::time::Instant::now();
        let mut seen: Option<(Vec<u8>, std::time::Instant)> = None;
        let mut pause = Duration::from_millis(20);
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(format!("{token}\n0").as_bytes())?;
                    return Ok(Self::held(path.to_owned(), token));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            if done.exists() && dest.exists() {
                return Ok(Self { held: None });
            }
            let mut retry_now = false;
            match (std::fs::read(path).ok(), &seen) {
                (None, _) => retry_now = true,
                (Some(c), Some((old, since))) if &c == old => {
                    if since.elapsed() > stale {
                        if std::fs::read(path).ok().as_ref() == Some(&c) {
                            tracing::warn!(path = %path.display(), "taking over a download lock whose holder stopped");
                            retry_now = std::fs::remove_file(path).is_ok();
                        }
                        seen = None;
                    }
                }
                (Some(c), _) => seen = Some((c, std::time::Instant::now())),
            }
            if started.elapsed() >= timeout {
                tracing::warn!(path = %path.display(), "waited too long for another download; downloading too");
                return Ok(Self { held: None });
            }
            if !retry_now {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }

    fn held(path: PathBuf, token: String) -> Self {
        let released = Arc::new(std::sync::Mutex::new(false));
        let (p, t, r) = (path.clone(), token.clone(), Arc::clone(&released));
        let beat = tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                tokio::time::sleep(LOCK_HEARTBEAT).await;
                let done = r.lock().unwrap_or_else(|e| e.into_inner());
                if *done || !holds(&p, &t) {
                    return;
                }
                n += 1;
                let _ = std::fs::write(&p, format!("{t}\n{n}"));
            }
        });
        Self {
            held: Some(Held {
                path,
                token,
                released,
                beat,
            }),
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if let Some(h) = self.held.take() {
            let mut done = h.released.lock().unwrap_or_else(|e| e.into_inner());
            *done = true;
            if holds(&h.path, &h.token) {
                let _ = std::fs::remove_file(&h.path);
            }
            h.beat.abort();
        }
    }
}

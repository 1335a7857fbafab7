//! [`ObjectStorage`]: the `Storage` trait over any `object_store` backend.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fused_core::storage::ObjectMeta;
use fused_core::transport::Body;
use fused_core::{Error, Result, Storage};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
};

use crate::key::Key;
use crate::local;

/// Size of the parts a streamed upload is cut into.
const PART_SIZE: usize = 8 << 20;
/// Parts of one upload in flight at once.
const PART_CONCURRENCY: usize = 4;
/// Read size when streaming a local file.
const READ_CHUNK: usize = 1 << 20;
/// Reads of a local file in flight ahead of the consumer.
const READ_AHEAD: usize = 2;

/// Fused file semantics over an `object_store` backend, rooted at one URL.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// The root as a URL, ending in `/` (`file:///srv/data/`, `s3://bucket/team/`).
    root_url: String,
    /// The root's path inside `store`.
    prefix: Vec<String>,
    /// For local roots: the canonical folder and its backend, for symlink checks.
    local: Option<Local>,
    /// Presigns URLs, for backends that can.
    signer: Option<Arc<dyn Presign>>,
}

impl ObjectStorage {
    /// A storage rooted at the local folder `dir` (created if missing).
    pub fn local(dir: impl AsRef<FsPath>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let root = std::fs::canonicalize(dir)?;
        let fs = Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(&root)
                .map_err(storage_err)?
                .with_automatic_cleanup(true),
        );
        let mut root_url = format!("file://{}", root.display());
        if !root_url.ends_with('/') {
            root_url.push('/');
        }
        Ok(Self {
            store: fs.clone(),
            root_url,
            prefix: Vec::new(),
            local: Some(Local { root, fs }),
            signer: None,
        })
    }

    /// A storage in memory (for tests and throwaway servers).
    pub fn memory() -> Self {
        Self {
            store: Arc::new(object_store::memory::InMemory::new()),
            root_url: "memory:///".into(),
            prefix: Vec::new(),
            local: None,
            signer: None,
        }
    }

    /// A storage for a root URL: a local path or `file://` URL, `memory://`, or — with the
    /// matching feature — `s3://bucket/prefix` (credentials from the `AWS_*` environment),
    /// `gs://…`, `az://…`.
    pub fn from_url(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("file://") {
            return Self::local(path);
        }
        if url.starts_with("memory:") {
            return Ok(Self::memory());
        }
        if !url.contains("://") {
            return Self::local(url);
        }
        Self::cloud(url)
    }

    #[cfg(feature = "aws")]
    fn cloud(url: &str) -> Result<Self> {
        if url.starts_with("s3://") || url.starts_with("s3a://") {
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .build()
                .map_err(storage_err)?;
            let s3 = Arc::new(s3);
            return Ok(Self::with_signer(url, s3.clone(), Some(s3)));
        }
        Self::cloud_other(url)
    }

    #[cfg(not(feature = "aws"))]
    fn cloud(url: &str) -> Result<Self> {
        Self::cloud_other(url)
    }

    fn cloud_other(url: &str) -> Result<Self> {
        #[cfg(feature = "gcp")]
        if url.starts_with("gs://") {
            let gcs = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .build()
                .map_err(storage_err)?;
            let gcs = Arc::new(gcs);
            return Ok(Self::with_signer(url, gcs.clone(), Some(gcs)));
        }
        #[cfg(feature = "azure")]
        if url.starts_with("az://") || url.starts_with("abfs://") {
            let az = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .build()
                .map_err(storage_err)?;
            let az = Arc::new(az);
            return Ok(Self::with_signer(url, az.clone(), Some(az)));
        }
        Err(Error::Unsupported(format!(
            "storage root {url:?}: this build supports local folders and memory:// \
             (enable the aws, gcp or azure feature of fused-storage for cloud roots)"
        )))
    }

    /// A storage over any `object_store` backend whose root is `root_url` (`scheme://bucket/prefix`).
    pub fn with_store(root_url: &str, store: Arc<dyn ObjectStore>) -> Self {
        Self::with_signer(root_url, store, None)
    }

    fn with_signer(
        root_url: &str,
        store: Arc<dyn ObjectStore>,
        signer: Option<Arc<dyn Presign>>,
    ) -> Self {
        // The prefix is the path after `scheme://bucket/`.
        let after_scheme = root_url.split_once("://").map_or(root_url, |(_, r)| r);
        let prefix = after_scheme
            .split('/')
            .skip(1)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let mut root_url = root_url.to_owned();
        if !root_url.ends_with('/') {
            root_url.push('/');
        }
        Self {
            store,
            root_url,
            prefix,
            local: None,
            signer,
        }
    }

    /// The root, as a URL ending in `/`.
    pub fn root_url(&self) -> &str {
        &self.root_url
    }

    /// The local folder of a local root.
    pub fn local_root(&self) -> Option<&FsPath> {
        self.local.as_ref().map(|l| l.root.as_path())
    }

    /// The checked key that `url` names: `fd://<key>` or `<root url><key>`.
    pub fn key(&self, url: &str) -> Result<Key> {
        let raw = if let Some(k) = url.strip_prefix("fd://") {
            k
        } else if let Some(k) = url.strip_prefix(&self.root_url) {
            k
        } else if url == self.root_url.trim_end_matches('/') {
            ""
        } else {
            return Err(Error::InvalidPath {
                path: url.chars().take(200).collect(),
                reason: format!("outside the storage root (use fd://… or {})", self.root_url),
            });
        };
        let key = Key::parse(raw)?;
        self.check_local(&self.location(&key), url)?;
        Ok(key)
    }

    fn location(&self, key: &Key) -> Path {
        Path::from_iter(self.prefix.iter().chain(key.segments()).map(String::as_str))
    }

    /// The `fd://` URL of a backend location.
    fn url_of(&self, loc: &Path, dir: bool) -> String {
        // Backends escape some characters in names (`~` → `%7E`); URLs show them as keyed.
        let parts: Vec<String> = loc
            .parts()
            .skip(self.prefix.len())
            .map(|p| {
                percent_encoding::percent_decode_str(p.as_ref())
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        format!("fd://{}", Key::from_segments(parts, dir).as_string())
    }

    fn meta_of(&self, m: &object_store::ObjectMeta) -> ObjectMeta {
        ObjectMeta {
            url: self.url_of(&m.location, false),
            file_name: percent_encoding::percent_decode_str(
                m.location.filename().unwrap_or_default(),
            )
            .decode_utf8_lossy()
            .into_owned(),
            is_directory: false,
            size: Some(m.size),
            last_modified: Some(m.last_modified.into()),
        }
    }

    /// For local roots: fails unless the file the backend will touch for `loc` — its own
    /// mapping, escapes included — lies inside the root, symlinks resolved. Also checks
    /// locations found by listings before deleting them (a symlinked folder inside a local root
    /// could list files outside it).
    fn check_local(&self, loc: &Path, shown: &str) -> Result<()> {
        let Some(local) = &self.local else {
            return Ok(());
        };
        let real = if loc.as_ref().is_empty() {
            local.root.clone()
        } else {
            local
                .fs
                .path_to_filesystem(loc)
                .map_err(|e| Error::InvalidPath {
                    path: shown.to_owned(),
                    reason: e.to_string(),
                })?
        };
        local::check_inside(&local.root, &real, shown)
    }

    /// After a failed upload to a local root: removes the folders it created, now empty.
    fn remove_empty_parents(&self, loc: &Path) {
        let Some(local) = &self.local else { return };
        let Ok(real) = local.fs.path_to_filesystem(loc) else {
            return;
        };
        let mut dir = real.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&local.root) && *d != local.root) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    async fn put_stream(&self, loc: &Path, body: Body) -> Result<()> {
        let upload = self.store.put_multipart(loc).await.map_err(storage_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut stream = body.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // Nothing half-written stays visible.
                    let _ = writer.abort().await;
                    return Err(Error::Io(e));
                }
            };
            if let Err(e) = writer.wait_for_capacity(PART_CONCURRENCY).await {
                let _ = writer.abort().await;
                return Err(storage_err(e));
            }
            writer.put(chunk);
        }
        writer.finish().await.map_err(storage_err)?;
        Ok(())
    }
}

#[async_trait]
impl Storage for ObjectStorage {
    async fn list(&self, url: &str) -> Result<Vec<ObjectMeta>> {
        let key = self.key(url)?;
        let loc = self.location(&key);
        let prefix = (!loc.as_ref().is_empty()).then_some(&loc);
        let listing = self
            .store
            .list_with_delimiter(prefix)
            .await
            .map_err(storage_err)?;
        let mut out: Vec<ObjectMeta> = listing
            .common_prefixes
            .iter()
            .map(|p| ObjectMeta {
                url: self.url_of(p, true),
                file_name: percent_encoding::percent_decode_str(p.filename().unwrap_or_default())
                    .decode_utf8_lossy()
                    .into_owned(),
                is_directory: true,
                size: None,
                last_modified: None,
            })
            .chain(listing.objects.iter().map(|m| self.meta_of(m)))
            .collect();
        if out.is_empty() && !key.is_dir() {
            // A file lists as itself.
            if let Ok(m) = self.store.head(&loc).await {
                out.push(self.meta_of(&m));
            }
        }
        out.sort_by(|a, b| a.url.cmp(&b.url));
        Ok(out)
    }

    async fn head(&self, url: &str) -> Result<ObjectMeta> {
        let key = self.key(url)?;
        if key.is_root() || key.is_dir() {
            return Err(Error::InvalidPath {
                path: url.to_owned(),
                reason: "names a folder, not a file".into(),
            });
        }
        let m = self
            .store
            .head(&self.location(&key))
            .await
            .map_err(|e| not_found_or(e, url))?;
        Ok(self.meta_of(&m))
    }

    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<Body> {
        let key = self.key(url)?;
        if key.is_root() || key.is_dir() {
            return Err(Error::InvalidPath {
                path: url.to_owned(),
                reason: "names a folder, not a file".into(),
            });
        }
        if let Some(local) = &self.local {
            // Local files are opened here: small ones come back in one read (cache entries,
            // tiles), larger ones stream.
            let path = local
                .fs
                .path_to_filesystem(&self.location(&key))
                .map_err(storage_err)?;
            return read_local(path, range, url).await;
        }
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&self.location(&key), opts)
            .await
            .map_err(|e| not_found_or(e, url))?;
        let span = got.range.clone();
        Ok(match got.payload {
            GetResultPayload::File(file, _) => Body::from_stream(read_file(file, span)),
            GetResultPayload::Stream(s) => {
                Body::from_stream(s.map_err(|e| std::io::Error::other(e.to_string())))
            }
        })
    }

    async fn put(&self, url: &str, body: Body) -> Result<ObjectMeta> {
        let key = self.key(url)?;
        if key.is_root() || key.is_dir() {
            return Err(Error::InvalidPath {
                path: url.to_owned(),
                reason: "an upload needs a file name, not a folder".into(),
            });
        }
        let loc = self.location(&key);
        match body.as_bytes() {
            Some(b) => {
                self.store
                    .put(&loc, PutPayload::from_bytes(b.clone()))
                    .await
                    .map_err(storage_err)?;
            }
            None => {
                if let Err(e) = self.put_stream(&loc, body).await {
                    self.remove_empty_parents(&loc);
                    return Err(e);
                }
            }
        }
        let m = self.store.head(&loc).await.map_err(storage_err)?;
        Ok(self.meta_of(&m))
    }

    async fn put_if_absent(&self, url: &str, body: Body) -> Result<bool> {
        let key = self.key(url)?;
        if key.is_root() || key.is_dir() {
            return Err(Error::InvalidPath {
                path: url.to_owned(),
                reason: "an upload needs a file name, not a folder".into(),
            });
        }
        let bytes = body.collect(64 << 20).await?;
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.location(&key), PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(storage_err(e)),
        }
    }

    async fn delete(&self, url: &str, max_depth: Option<u32>) -> Result<u64> {
        let key = self.key(url)?;
        let loc = self.location(&key);
        if !key.is_dir() && !key.is_root() && self.store.head(&loc).await.is_ok() {
            self.store.delete(&loc).await.map_err(storage_err)?;
            return Ok(1);
        }
        let prefix = (!loc.as_ref().is_empty()).then_some(&loc);
        let found: Vec<object_store::ObjectMeta> = self
            .store
            .list(prefix)
            .try_collect()
            .await
            .map_err(storage_err)?;
        if found.is_empty() {
            return Err(Error::NotFound(url.to_owned()));
        }
        let base = loc.parts().count();
        if let Some(max) = max_depth
            && let Some(deep) = found
                .iter()
                .find(|m| m.location.parts().count() - base > max as usize)
        {
            return Err(Error::InvalidPath {
                path: url.to_owned(),
                reason: format!(
                    "{} is more than {max} levels below it; pass a larger max_deletion_depth \
                     (or `unlimited`) to delete it",
                    self.url_of(&deep.location, false)
                ),
            });
        }
        for m in &found {
            self.check_local(&m.location, m.location.as_ref())?;
        }
        let mut n = 0;
        for m in found {
            match self.store.delete(&m.location).await {
                Ok(()) => n += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage_err(e)),
            }
        }
        Ok(n)
    }

    async fn sign_url(&self, url: &str, expires_in: Duration) -> Result<String> {
        let key = self.key(url)?;
        let Some(signer) = &self.signer else {
            return Err(Error::Unsupported(format!(
                "{} cannot presign URLs",
                self.root_url
            )));
        };
        signer.presign_get(&self.location(&key), expires_in).await
    }

    fn resolve(&self, url: &str) -> Result<String> {
        let key = self.key(url)?;
        Ok(format!("{}{}", self.root_url, key.as_string()))
    }
}

/// A local root: its canonical folder and the backend that maps keys to files in it.
#[derive(Debug, Clone)]
struct Local {
    root: PathBuf,
    fs: Arc<object_store::local::LocalFileSystem>,
}

/// Presigns GET URLs (the cloud backends' `Signer`, when one is built in).
#[async_trait]
trait Presign: Send + Sync + std::fmt::Debug {
    async fn presign_get(&self, loc: &Path, expires_in: Duration) -> Result<String>;
}

#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
#[async_trait]
impl<T: object_store::signer::Signer> Presign for T {
    async fn presign_get(&self, loc: &Path, expires_in: Duration) -> Result<String> {
        let u = self
            .signed_url(http::Method::GET, loc, expires_in)
            .await
            .map_err(storage_err)?;
        Ok(u.to_string())
    }
}

/// Objects up to this size are read in one go rather than streamed.
const SMALL_READ: u64 = 8 << 20;

/// A local file's bytes (or a range of them): read whole when small, else streamed.
async fn read_local(path: PathBuf, range: Option<Range<u64>>, url: &str) -> Result<Body> {
    let shown = url.to_owned();
    let open = move || -> Result<LocalRead> {
        use std::io::{Read, Seek};
        let mut f = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(shown.clone()),
            _ => Error::Io(e),
        })?;
        let meta = f.metadata()?;
        if meta.is_dir() {
            return Err(Error::InvalidPath {
                path: shown,
                reason: "names a folder, not a file".into(),
            });
        }
        let len = meta.len();
        let span = match range {
            Some(r) if r.start <= r.end && r.end <= len => r,
            Some(r) => {
                return Err(Error::Storage(format!(
                    "range {}..{} is outside the object's {len} bytes",
                    r.start, r.end
                )));
            }
            None => 0..len,
        };
        if span.end - span.start > SMALL_READ {
            return Ok(LocalRead::Stream(f, span));
        }
        f.seek(std::io::SeekFrom::Start(span.start))?;
        let want = (span.end - span.start) as usize;
        // read_to_end fills spare capacity without zeroing it first.
        let mut buf = Vec::with_capacity(want);
        f.take(want as u64).read_to_end(&mut buf)?;
        if buf.len() != want {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file got shorter while it was read",
            )));
        }
        Ok(LocalRead::Whole(buf.into()))
    };
    // A small read from the page cache takes about as long as a hand-off to the blocking
    // pool: on a multi-threaded runtime it runs in place (the worker's other tasks move on).
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let opened = if multi {
        tokio::task::block_in_place(open)?
    } else {
        tokio::task::spawn_blocking(open)
            .await
            .map_err(|e| Error::Storage(format!("reading a file: {e}")))??
    };
    Ok(match opened {
        LocalRead::Whole(b) => Body::from(b),
        LocalRead::Stream(f, span) => Body::from_stream(read_file(f, span)),
    })
}

enum LocalRead {
    Whole(Bytes),
    Stream(std::fs::File, Range<u64>),
}

/// Streams `span` of a local file: sequential reads of [`READ_CHUNK`] bytes on the blocking
/// pool (the kernel's read-ahead sees one sequential reader), each straight into the buffer
/// that is sent, at most [`READ_AHEAD`] chunks ahead of the consumer. No thread waits on a slow
/// client: only a task does.
fn read_file(
    file: std::fs::File,
    span: Range<u64>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        let mut file = Some(file);
        let mut at = span.start;
        let mut first = true;
        while at < span.end {
            let Some(f) = file.take() else { break };
            let len = (span.end - at).min(READ_CHUNK as u64) as usize;
            let seek_to = first.then_some(at);
            first = false;
            let read = tokio::task::spawn_blocking(move || {
                let r = read_chunk(&f, seek_to, len);
                (f, r)
            })
            .await;
            let chunk = match read {
                Ok((f, r)) => {
                    file = Some(f);
                    r
                }
                Err(e) => Err(std::io::Error::other(e)),
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
            at += len as u64;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

/// Exactly `len` bytes from the file's position (after seeking to `seek_to`); a shorter file is
/// an error: it changed under the read.
fn read_chunk(
    mut file: &std::fs::File,
    seek_to: Option<u64>,
    len: usize,
) -> std::io::Result<Bytes> {
    use std::io::{Read, Seek};
    if let Some(at) = seek_to {
        file.seek(std::io::SeekFrom::Start(at))?;
    }
    let mut buf = vec![0u8; len];
    file.read_exact(&mut buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(e.kind(), "the file got shorter while it was read")
        } else {
            e
        }
    })?;
    Ok(buf.into())
}

fn storage_err(e: object_store::Error) -> Error {
    Error::Storage(e.to_string())
}

fn not_found_or(e: object_store::Error, url: &str) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound(url.to_owned()),
        e => storage_err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn text(b: Body) -> String {
        String::from_utf8(b.collect(1 << 20).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn local_round_trip_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStorage::local(dir.path()).unwrap();
        s.put("fd://a/b/c.txt", Bytes::from("hello").into())
            .await
            .unwrap();
        let streamed = futures::stream::iter((0..3).map(|_| Ok(Bytes::from("x"))));
        s.put("fd://a/d.txt", Body::from_stream(streamed))
            .await
            .unwrap();
        assert_eq!(
            text(s.get("fd://a/d.txt", None).await.unwrap()).await,
            "xxx"
        );
        assert_eq!(
            text(s.get("fd://a/b/c.txt", Some(1..4)).await.unwrap()).await,
            "ell"
        );
        let urls: Vec<_> = s
            .list("fd://a/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.url)
            .collect();
        assert_eq!(urls, ["fd://a/b/", "fd://a/d.txt"]);
        let root = s.resolve("fd://a/d.txt").unwrap();
        assert!(
            root.starts_with("file:///") && root.ends_with("/a/d.txt"),
            "{root}"
        );
        assert_eq!(s.head(&root).await.unwrap().size, Some(3));
        // Too deep for depth 1; nothing is removed.
        assert!(s.delete("fd://a/", Some(1)).await.is_err());
        assert_eq!(s.list("fd://a/").await.unwrap().len(), 2);
        assert_eq!(s.delete("fd://a/", Some(2)).await.unwrap(), 2);
        assert!(matches!(
            s.get("fd://a/d.txt", None).await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn failed_stream_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStorage::local(dir.path()).unwrap();
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from(vec![1u8; 1 << 20])),
            Err(std::io::Error::other("client went away")),
        ]);
        assert!(
            s.put("fd://x.bin", Body::from_stream(broken))
                .await
                .is_err()
        );
        assert!(s.list("fd://").await.unwrap().is_empty());
        assert!(s.get("fd://x.bin", None).await.is_err());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let s = ObjectStorage::local(dir.path()).unwrap();
        assert!(matches!(
            s.get("fd://link/secret", None).await,
            Err(Error::InvalidPath { .. })
        ));
        assert!(
            s.put("fd://link/new", Bytes::from("x").into())
                .await
                .is_err()
        );
        assert!(s.delete("fd://link/", None).await.is_err());
        assert!(outside.path().join("secret").exists());
        assert!(!outside.path().join("new").exists());

        // Names the backend escapes on disk are checked where the backend goes, whatever it
        // calls them there.
        for name in ["evil%7E", "ev%5Bil%5D"] {
            let _ = std::os::unix::fs::symlink(outside.path(), dir.path().join(name));
        }
        for url in ["fd://evil~/secret", "fd://ev[il]/secret"] {
            assert!(s.get(url, None).await.is_err(), "{url}");
            assert!(
                s.put(&url.replace("secret", "x"), Bytes::from("x").into())
                    .await
                    .is_err(),
                "{url}"
            );
        }
        assert!(!outside.path().join("x").exists());
    }

    #[tokio::test]
    async fn escaped_names_round_trip_and_failed_uploads_leave_no_folders() {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStorage::local(dir.path()).unwrap();
        s.put("fd://a~b [1].txt", Bytes::from("x").into())
            .await
            .unwrap();
        let urls: Vec<_> = s
            .list("fd://")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.url)
            .collect();
        assert_eq!(urls, ["fd://a~b [1].txt"]);
        assert_eq!(s.head(&urls[0]).await.unwrap().file_name, "a~b [1].txt");
        assert_eq!(text(s.get(&urls[0], None).await.unwrap()).await, "x");
        let broken = futures::stream::iter(vec![Err(std::io::Error::other("gone"))]);
        assert!(
            s.put("fd://new/deep/x.bin", Body::from_stream(broken))
                .await
                .is_err()
        );
        assert!(
            !dir.path().join("new").exists(),
            "no empty folders left behind"
        );
    }

    #[tokio::test]
    async fn put_if_absent_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        for s in [
            ObjectStorage::local(dir.path()).unwrap(),
            ObjectStorage::memory(),
        ] {
            assert!(
                s.put_if_absent("fd://l/k.lock", Bytes::from("a").into())
                    .await
                    .unwrap()
            );
            assert!(
                !s.put_if_absent("fd://l/k.lock", Bytes::from("b").into())
                    .await
                    .unwrap()
            );
            assert_eq!(text(s.get("fd://l/k.lock", None).await.unwrap()).await, "a");
        }
    }

    #[tokio::test]
    async fn memory_root_and_foreign_urls() {
        let s = ObjectStorage::memory();
        s.put("fd://k", Bytes::from("v").into()).await.unwrap();
        assert_eq!(text(s.get("memory:///k", None).await.unwrap()).await, "v");
        assert!(s.get("s3://other/k", None).await.is_err());
        assert!(matches!(
            s.sign_url("fd://k", Duration::from_secs(1)).await,
            Err(Error::Unsupported(_))
        ));
    }
}

//! [`FaultInjector`]: a `Storage` decorator that breaks on demand, for testing what is built on
//! storage (the object_store way: a decorator implementing the same trait).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fused_core::storage::ObjectMeta;
use fused_core::transport::Body;
use fused_core::{Error, Result, Storage};
use futures::StreamExt;

/// Wraps a storage and injects faults: a disk that fills up after some bytes, reads that come
/// back truncated or with a flipped byte, a backend that is down.
#[derive(Debug)]
pub struct FaultInjector {
    inner: Arc<dyn Storage>,
    /// Writes fail once this many more bytes were written (`u64::MAX`: never).
    space_left: AtomicU64,
    truncate_reads: AtomicBool,
    corrupt_reads: AtomicBool,
    down: AtomicBool,
}

impl FaultInjector {
    /// A storage that behaves like `inner` until told otherwise.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self {
            inner,
            space_left: AtomicU64::new(u64::MAX),
            truncate_reads: AtomicBool::new(false),
            corrupt_reads: AtomicBool::new(false),
            down: AtomicBool::new(false),
        }
    }

    /// Writes fail (as a full disk) after `bytes` more bytes.
    pub fn fill_disk_after(&self, bytes: u64) {
        self.space_left.store(bytes, Ordering::SeqCst);
    }

    /// Reads return only the first half of each object.
    pub fn truncate_reads(&self, on: bool) {
        self.truncate_reads.store(on, Ordering::SeqCst);
    }

    /// Reads return each object with its last byte flipped.
    pub fn corrupt_reads(&self, on: bool) {
        self.corrupt_reads.store(on, Ordering::SeqCst);
    }

    /// Every call fails.
    pub fn take_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Storage("injected fault: storage unavailable".into()));
        }
        Ok(())
    }

    /// The body, failing once the disk is "full"; the space is used up as bytes pass.
    fn metered(&self, body: Body) -> Body {
        if self.space_left.load(Ordering::SeqCst) == u64::MAX {
            return body;
        }
        let left = Arc::new(AtomicU64::new(self.space_left.load(Ordering::SeqCst)));
        let stream = body.into_stream().map(move |chunk| {
            let chunk = chunk?;
            let n = chunk.len() as u64;
            let before = left.load(Ordering::SeqCst);
            if n > before {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "injected fault: no space left on device",
                ));
            }
            left.store(before - n, Ordering::SeqCst);
            Ok(chunk)
        });
        Body::from_stream(stream)
    }
}

#[async_trait]
impl Storage for FaultInjector {
    async fn list(&self, url: &str) -> Result<Vec<ObjectMeta>> {
        self.check()?;
        self.inner.list(url).await
    }

    async fn head(&self, url: &str) -> Result<ObjectMeta> {
        self.check()?;
        self.inner.head(url).await
    }

    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<Body> {
        self.check()?;
        let body = self.inner.get(url, range).await?;
        let truncate = self.truncate_reads.load(Ordering::SeqCst);
        let corrupt = self.corrupt_reads.load(Ordering::SeqCst);
        if !truncate && !corrupt {
            return Ok(body);
        }
        let mut bytes = body.collect(usize::MAX).await?.to_vec();
        if truncate {
            bytes.truncate(bytes.len() / 2);
        }
        if corrupt && let Some(last) = bytes.last_mut() {
            *last ^= 0xff;
        }
        Ok(Body::from(Bytes::from(bytes)))
    }

    async fn put(&self, url: &str, body: Body) -> Result<ObjectMeta> {
        self.check()?;
        // Whole bodies become streams so the fault hits mid-write, as on a real disk.
        let body = match body.as_bytes() {
            Some(b) if self.space_left.load(Ordering::SeqCst) != u64::MAX => {
                let b = b.clone();
                let half = b.len() / 2;
                Body::from_stream(futures::stream::iter(vec![
                    Ok(b.slice(..half)),
                    Ok(b.slice(half..)),
                ]))
            }
            _ => body,
        };
        self.inner.put(url, self.metered(body)).await
    }

    async fn put_if_absent(&self, url: &str, body: Body) -> Result<bool> {
        self.check()?;
        self.inner.put_if_absent(url, body).await
    }

    async fn delete(&self, url: &str, max_depth: Option<u32>) -> Result<u64> {
        self.check()?;
        self.inner.delete(url, max_depth).await
    }

    async fn sign_url(&self, url: &str, expires_in: Duration) -> Result<String> {
        self.check()?;
        self.inner.sign_url(url, expires_in).await
    }

    fn resolve(&self, url: &str) -> Result<String> {
        self.inner.resolve(url)
    }
}

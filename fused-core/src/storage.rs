//! The `Storage` trait: Fused file semantics over URLs.

use std::fmt;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::transport::Body;

/// One entry of a listing (the SDK's `ListDetails`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Full URL of the entry.
    pub url: String,
    /// Last path segment.
    pub file_name: String,
    /// True for a "directory" (a common prefix).
    pub is_directory: bool,
    /// Size in bytes, for files.
    pub size: Option<u64>,
    /// Last modification time, for files.
    #[serde(with = "opt_system_time")]
    pub last_modified: Option<SystemTime>,
}

mod opt_system_time {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()) {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<SystemTime>, D::Error> {
        let v: Option<f64> = Option::deserialize(d)?;
        Ok(v.filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s)))
    }
}

/// Object storage with Fused file semantics, addressed by URL (`fd://`, `file://`, `s3://`, …).
///
/// An implementation must:
/// - refuse any path that leaves its root (`..`, encoded traversal, symlinks out) with an error
///   and without touching anything;
/// - make `put` atomic: a reader sees the previous object or the whole new one, never a part,
///   and an aborted `put` leaves nothing visible;
/// - stream `get` and `put` bodies, so object size does not bound memory;
/// - make `delete` refuse to remove more than `max_depth` levels below the URL when one is given.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Entries directly under `url`.
    async fn list(&self, url: &str) -> Result<Vec<ObjectMeta>>;

    /// Metadata of one object.
    async fn head(&self, url: &str) -> Result<ObjectMeta>;

    /// The object's bytes, or a byte range of them.
    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<Body>;

    /// Writes an object atomically.
    async fn put(&self, url: &str, body: Body) -> Result<ObjectMeta>;

    /// Writes an object only if none exists under `url`; `false` when one does. Locks are built
    /// on this, so it must be atomic (the default, for backends without conditional writes,
    /// is not: it checks, then writes).
    async fn put_if_absent(&self, url: &str, body: Body) -> Result<bool> {
        match self.head(url).await {
            Ok(_) => Ok(false),
            Err(crate::Error::NotFound(_)) => self.put(url, body).await.map(|_| true),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object or a prefix, at most `max_depth` levels deep (`None`: unlimited);
    /// returns how many objects were removed.
    async fn delete(&self, url: &str, max_depth: Option<u32>) -> Result<u64>;

    /// A URL that reads the object without credentials until `expires_in` has passed;
    /// [`Error::Unsupported`](crate::Error::Unsupported) when the backend cannot presign (a
    /// server then signs its own download URLs).
    async fn sign_url(&self, url: &str, expires_in: Duration) -> Result<String>;

    /// The backend URL that `url` names (`fd://a/b` → `s3://bucket/root/a/b`), after checking it.
    fn resolve(&self, url: &str) -> Result<String> {
        Ok(url.to_owned())
    }
}

//! The `Transport` trait: send one Fused API request, get one response.

use std::fmt;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};

use crate::error::{Error, Result};

/// A request or response body: whole bytes, or a stream of chunks.
pub struct Body(Inner);

enum Inner {
    Full(Bytes),
    Stream(BoxStream<'static, std::io::Result<Bytes>>),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Full(b) => write!(f, "Body({} bytes)", b.len()),
            Inner::Stream(_) => f.write_str("Body(stream)"),
        }
    }
}

impl Body {
    /// No bytes.
    pub fn empty() -> Self {
        Self(Inner::Full(Bytes::new()))
    }

    /// A body streamed in chunks.
    pub fn from_stream(
        s: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Self {
        Self(Inner::Stream(s.boxed()))
    }

    /// The whole body when it is already in memory.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.0 {
            Inner::Full(b) => Some(b),
            Inner::Stream(_) => None,
        }
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    pub async fn collect(self, limit: usize) -> Result<Bytes> {
        match self.0 {
            Inner::Full(b) if b.len() <= limit => Ok(b),
            Inner::Full(b) => Err(Error::Transport(format!(
                "body of {} bytes exceeds {limit}",
                b.len()
            ))),
            Inner::Stream(mut s) => {
                let mut buf = BytesMut::new();
                while let Some(chunk) = s.next().await {
                    let chunk = chunk?;
                    if buf.len() + chunk.len() > limit {
                        return Err(Error::Transport(format!("body exceeds {limit} bytes")));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(buf.freeze())
            }
        }
    }

    /// The body as a stream of chunks.
    pub fn into_stream(self) -> BoxStream<'static, std::io::Result<Bytes>> {
        match self.0 {
            Inner::Full(b) => futures::stream::once(async move { Ok(b) }).boxed(),
            Inner::Stream(s) => s,
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self(Inner::Full(b))
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Self(Inner::Full(v.into()))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self(Inner::Full(s.into()))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self(Inner::Full(Bytes::from_static(s.as_bytes())))
    }
}

/// Sends Fused API requests.
///
/// An implementation must:
/// - send the request as given (method, URI, headers, body) and return the server's response,
///   whatever its status — an HTTP error status is a response, not an `Err`;
/// - return `Err` only when no response was received (connection refused, timeout, …), saying
///   which, so that callers can decide to retry;
/// - stream response bodies rather than buffer them, so large downloads stay in bounded memory.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Sends one request.
    async fn send(&self, request: http::Request<Body>) -> Result<http::Response<Body>>;
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    async fn send(&self, request: http::Request<Body>) -> Result<http::Response<Body>> {
        (**self).send(request).await
    }
}

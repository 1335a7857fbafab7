//! `InProcessTransport`: the server's router called directly, without a socket.

use async_trait::async_trait;
use fused_core::{Body, Result, Transport};
use futures::TryStreamExt;
use tower::ServiceExt;

/// Sends requests straight to an axum [`Router`](axum::Router) in this process: the whole
/// server stack runs (routing, extractors, handlers, encoders), only the network is skipped.
#[derive(Debug, Clone)]
pub struct InProcessTransport {
    router: axum::Router,
}

impl InProcessTransport {
    /// A transport into `router`.
    pub fn new(router: axum::Router) -> Self {
        Self { router }
    }
}

#[async_trait]
impl Transport for InProcessTransport {
    async fn send(&self, request: http::Request<Body>) -> Result<http::Response<Body>> {
        let (parts, body) = request.into_parts();
        let body = match body.as_bytes() {
            Some(b) => axum::body::Body::from(b.clone()),
            None => axum::body::Body::from_stream(body.into_stream()),
        };
        let resp = match self
            .router
            .clone()
            .oneshot(http::Request::from_parts(parts, body))
            .await
        {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = resp.into_parts();
        let stream = body.into_data_stream().map_err(std::io::Error::other);
        Ok(http::Response::from_parts(parts, Body::from_stream(stream)))
    }
}

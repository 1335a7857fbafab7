//! `HttpTransport`: requests over the network with reqwest.

use std::time::Duration;

use async_trait::async_trait;
use fused_core::{Body, Error, Options, Result, Transport};
use futures::TryStreamExt;

/// Sends requests with reqwest (rustls), retrying 502/503 answers and connection errors with
/// exponential backoff and jitter. Requests with a streamed body are sent once (a stream cannot
/// be replayed).
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    max_retries: u32,
    base_delay: Duration,
}

impl HttpTransport {
    /// A transport with `timeout` per request and `max_retries` retries.
    pub fn new(timeout: Duration, max_retries: u32, base_delay: Duration) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Transport(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            client,
            max_retries,
            base_delay,
        })
    }

    /// A transport configured from options (`run_timeout`, `request_max_retries`,
    /// `request_retry_base_delay`).
    pub fn from_options(o: &Options) -> Result<Self> {
        Self::new(
            o.run_timeout(),
            o.request_max_retries,
            Duration::from_secs_f64(o.request_retry_base_delay.max(0.0)),
        )
    }

    /// The delay before retry `attempt` (0-based): base × 2^attempt × a random factor in
    /// [0.5, 1.5), capped at 30 s.
    fn delay(&self, attempt: u32) -> Duration {
        let jitter = 0.5 + rand::random::<f64>();
        let d = self.base_delay.as_secs_f64() * 2f64.powi(attempt.min(16) as i32) * jitter;
        Duration::from_secs_f64(d.min(30.0))
    }
}

fn to_reqwest(
    client: &reqwest::Client,
    parts: &::http::request::Parts,
    body: reqwest::Body,
) -> reqwest::RequestBuilder {
    client
        .request(parts.method.clone(), parts.uri.to_string())
        .headers(parts.headers.clone())
        .body(body)
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, request: ::http::Request<Body>) -> Result<::http::Response<Body>> {
        let (parts, body) = request.into_parts();
        let replayable = body.as_bytes().cloned();
        let mut stream_body = if replayable.is_none() {
            Some(body)
        } else {
            None
        };
        let mut attempt = 0;
        loop {
            let rb = match (&replayable, stream_body.take()) {
                (Some(b), _) => to_reqwest(&self.client, &parts, reqwest::Body::from(b.clone())),
                (None, Some(s)) => to_reqwest(
                    &self.client,
                    &parts,
                    reqwest::Body::wrap_stream(s.into_stream()),
                ),
                (None, None) => {
                    return Err(Error::Transport(
                        "a streamed request body cannot be retried".into(),
                    ));
                }
            };
            let retryable = replayable.is_some() && attempt < self.max_retries;
            match rb.send().await {
                Ok(resp) if retryable && matches!(resp.status().as_u16(), 502 | 503) => {}
                Ok(resp) => return Ok(from_reqwest(resp)),
                Err(e) if retryable && (e.is_connect() || e.is_timeout() || e.is_request()) => {
                    tracing::debug!(error = %e, attempt, "retrying request");
                }
                Err(e) => {
                    return Err(Error::Transport(format!(
                        "{} {}: {e}",
                        parts.method, parts.uri
                    )));
                }
            }
            tokio::time::sleep(self.delay(attempt)).await;
            attempt += 1;
        }
    }
}

fn from_reqwest(resp: reqwest::Response) -> ::http::Response<Body> {
    let mut b = ::http::Response::builder().status(resp.status());
    if let Some(h) = b.headers_mut() {
        *h = resp.headers().clone();
    }
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    // The builder only fails on invalid parts, and these come from a valid response.
    b.body(Body::from_stream(stream))
        .unwrap_or_else(|_| ::http::Response::new(Body::empty()))
}

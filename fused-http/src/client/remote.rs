//! `RemoteExecutor`: runs shared tokens on a Fused server through a `Transport`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use fused_core::encode::decode;
use fused_core::{
    CacheStatus, Error, Executor, Result, RunMetadata, RunResult, Transport, UdfCall, UdfRef,
};
use serde_json::Value;

/// Largest response body read into memory.
const MAX_BODY: usize = 1 << 30;

/// Runs calls on a server: a shared token as `GET {shared_base}/{token}/run[/tiles/z/x/y]`,
/// asking for Parquet, npy or JSON and decoding them back into outputs; UDF failures come back
/// as failed results with the server's message and logs.
#[derive(Debug, Clone)]
pub struct RemoteExecutor {
    transport: Arc<dyn Transport>,
    shared_base: String,
    formats: String,
}

impl RemoteExecutor {
    /// An executor sending to `shared_base` (for example `http://localhost:8783/v1/realtime-shared`).
    pub fn new(transport: Arc<dyn Transport>, shared_base: impl Into<String>) -> Self {
        Self {
            transport,
            shared_base: shared_base.into().trim_end_matches('/').to_owned(),
            formats: "parquet,npy,json".to_owned(),
        }
    }

    /// An executor over HTTP configured as the SDK is: `shared_udf_base_url`, the request
    /// timeout and retries, and the format list `{raster},{vector},{simple}` from the
    /// `default_dtype_out_*` options.
    pub fn from_options(o: &fused_core::Options) -> Result<Self> {
        let transport = Arc::new(crate::HttpTransport::from_options(o)?);
        let mut ex = Self::new(transport, o.shared_udf_base_url.clone());
        ex.formats = format!(
            "{},{},{}",
            o.default_dtype_out_raster, o.default_dtype_out_vector, o.default_dtype_out_simple
        );
        Ok(ex)
    }
}

/// A query-string value, serialized as the SDK does: text as-is, everything else as JSON.
fn query_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Executor for RemoteExecutor {
    async fn execute(&self, call: UdfCall) -> Result<RunResult> {
        let started = Instant::now();
        let token = match &call.udf {
            UdfRef::Token(t) => t.clone(),
            other => {
                return Err(Error::UnknownUdf(format!(
                    "{} (a remote executor runs shared tokens; `fused serve` prints one per UDF)",
                    other.describe()
                )));
            }
        };
        // A token goes into the URL path as is, so it may hold nothing that changes the path.
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::UnknownUdf(format!(
                "{token:?} is not a shared token"
            )));
        }
        let path = match call.tile {
            Some(t) => format!(
                "{}/{token}/run/tiles/{}/{}/{}",
                self.shared_base, t.z, t.x, t.y
            ),
            None => format!("{}/{token}/run/file", self.shared_base),
        };
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("format", &self.formats);
            if let Some(m) = call.cache_max_age {
                // Whole seconds on the wire, rounded up so a short age does not become "off".
                let d = m.duration();
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                q.append_pair("cache_max_age", &secs.to_string());
            }
            for (k, v) in call.args.iter() {
                if !v.is_null() {
                    q.append_pair(k, &query_value(v));
                }
            }
            q.finish()
        };
        let uri = format!("{path}?{query}");
        let req = http::Request::get(&uri)
            .header("fused-recursion", call.recursion.to_string())
            .body(fused_core::Body::empty())
            .map_err(|e| Error::Transport(format!("building {uri}: {e}")))?;
        let send = self.transport.send(req);
        let resp = match call.timeout {
            Some(t) => tokio::time::timeout(t, send)
                .await
                .map_err(|_| Error::Transport(format!("no answer from {path} within {t:?}")))??,
            None => send.await?,
        };
        let (parts, body) = resp.into_parts();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let metadata: Option<RunMetadata> =
            header("x-fused-metadata").and_then(|m| serde_json::from_str(&m).ok());
        let cache = match header("x-cache").as_deref() {
            Some("hit") => CacheStatus::Hit {
                age: std::time::Duration::ZERO,
            },
            Some("disabled") => CacheStatus::Disabled,
            _ => CacheStatus::Miss,
        };
        let bytes = body.collect(MAX_BODY).await?;
        let logs = metadata.as_ref().map(RunMetadata::logs).unwrap_or_default();
        if parts.status.is_success() {
            let ct = header("content-type").unwrap_or_default();
            let output = decode(&ct, bytes)?;
            return Ok(RunResult {
                output: Ok(output),
                logs,
                elapsed: started.elapsed(),
                cache,
            });
        }
        if let Some(f) = metadata.as_ref().and_then(RunMetadata::failure) {
            return Ok(RunResult {
                output: Err(f),
                logs,
                elapsed: started.elapsed(),
                cache,
            });
        }
        let detail = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(match parts.status.as_u16() {
            404 => Error::UnknownUdf(format!("{}: {detail}", call.udf.describe())),
            s => Error::Transport(format!("{path} answered {s}: {detail}")),
        })
    }
}

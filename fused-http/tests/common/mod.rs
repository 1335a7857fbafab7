//! A server with test UDFs, reached through `InProcessTransport`.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use fused_core::{
    Body, Bounds, Output, Raster, RasterData, RunContext, Table, Transport, Udf, UdfError,
    UdfRegistry,
};
use fused_http::InProcessTransport;
use fused_http::server::{self, AppState, ServerConfig, ServerParts, ServerSecret};
use fused_http::store::Store;
use serde::Deserialize;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct EchoParams {
    pub n: i64,
    pub text: String,
    pub mode: String,
    pub bounds: Option<Bounds>,
}

impl Default for EchoParams {
    fn default() -> Self {
        Self {
            n: 1,
            text: "x".into(),
            mode: "ok".into(),
            bounds: None,
        }
    }
}

/// `echo`: a table of `n` rows; `mode` makes it fail, panic, sleep, or return other kinds.
/// Every run is counted in `runs`.
pub fn echo(runs: Arc<AtomicUsize>) -> Udf {
    Udf::native("echo", move |ctx: RunContext, p: EchoParams| {
        runs.fetch_add(1, Ordering::SeqCst);
        echo_body(ctx, p)
    })
}

async fn echo_body(ctx: RunContext, p: EchoParams) -> Result<Output, UdfError> {
    {
        ctx.print(format!("echo n={} mode={}", p.n, p.mode));
        match p.mode.as_str() {
            "error" => return Err(UdfError::value(format!("bad mode for {}", p.text))),
            "panic" => panic!("echo panicked on purpose"),
            "sleep" => tokio::time::sleep(Duration::from_secs(60)).await,
            "slow" => tokio::time::sleep(Duration::from_millis(300)).await,
            "json" => {
                return Ok(Output::Json(
                    serde_json::json!({"n": p.n, "bounds": p.bounds}),
                ));
            }
            "raster" => {
                let r = Raster::new(1, 2, 2, RasterData::F32(vec![1.0, 2.0, 3.0, 4.0]))
                    .map_err(|e| UdfError::value(e.to_string()))?;
                return Ok(Output::Raster(r));
            }
            "bytes" => return Ok(Output::bytes("text/plain", "plain text")),
            "badtype" => return Ok(Output::bytes("text/\nplain", "x")),
            "loud" => {
                for i in 0..5000 {
                    ctx.print(format!("line {i} {}", "é".repeat(50)));
                }
            }
            _ => {}
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        let n = p.n.max(0);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())),
            Arc::new(StringArray::from(vec![p.text.clone(); n as usize])),
        ];
        let b = RecordBatch::try_new(schema, cols).map_err(|e| UdfError::value(e.to_string()))?;
        Ok(Output::Table(Table::from_batch(b)))
    }
}

/// The owner's API token on test servers.
pub const OWNER_TOKEN: &str = "fsk_test_owner_token_0123456789abcdef";

pub struct TestServer {
    pub state: Arc<AppState>,
    /// The storage root (a temporary folder).
    pub root: tempfile::TempDir,
    /// The server's own files (its job store).
    pub data: tempfile::TempDir,
    pub transport: InProcessTransport,
    pub router: axum::Router,
    /// Runs of `echo` on this server.
    pub runs: Arc<AtomicUsize>,
}

impl TestServer {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// A server whose configuration `tweak` adjusts.
    pub async fn with_config(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let registry = Arc::new(UdfRegistry::new());
        let runs = Arc::new(AtomicUsize::new(0));
        registry.register(echo(Arc::clone(&runs))).unwrap();
        let executor = Arc::new(
            fused_jobs::LocalExecutor::new(Arc::clone(&registry))
                .with_timeout(Duration::from_millis(500)),
        );
        let cache = Arc::new(fused_cache::MemoryCache::new(64 << 20));
        let root = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let storage = Arc::new(fused_storage::ObjectStorage::local(root.path()).unwrap());
        let parts = ServerParts {
            registry,
            executor,
            cache,
            store: Store::memory().await.unwrap(),
            storage,
            jobs: Arc::new(
                fused_jobs::store::SqliteJobStore::open(&data.path().join("jobs.db"))
                    .await
                    .unwrap(),
            ),
            secret: ServerSecret::new([1; 32]),
        };
        let mut config = ServerConfig {
            owner_token: Some(OWNER_TOKEN.into()),
            ..ServerConfig::default()
        };
        tweak(&mut config);
        let state = AppState::new(parts, config).await.unwrap();
        let worker = state
            .worker()
            .with_timing(Duration::from_secs(3), Duration::from_millis(20));
        tokio::spawn(async move { worker.run(std::future::pending()).await });
        let router = server::router(Arc::clone(&state));
        Self {
            transport: InProcessTransport::new(router.clone()),
            state,
            root,
            data,
            router,
            runs,
        }
    }

    /// A `FusedApi` with the owner's token, through the in-process transport.
    pub fn api(&self) -> fused_http::FusedApi {
        fused_http::FusedApi::new(Arc::new(self.transport.clone()), "http://test/v1")
            .with_token(OWNER_TOKEN)
    }

    pub fn token(&self) -> String {
        self.state.default_token("echo")
    }

    pub async fn get(&self, path_and_query: &str) -> Resp {
        self.get_with(path_and_query, &[]).await
    }

    pub async fn get_with(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Resp {
        self.send("GET", path_and_query, headers, Body::empty())
            .await
    }

    /// A request with the owner's token.
    pub async fn call(&self, method: &str, path_and_query: &str, body: impl Into<Body>) -> Resp {
        let auth = format!("Bearer {OWNER_TOKEN}");
        self.send(
            method,
            path_and_query,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.into(),
        )
        .await
    }

    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Resp {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("http://test{path_and_query}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self.transport.send(b.body(body).unwrap()).await.unwrap();
        let (parts, body) = resp.into_parts();
        Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.collect(1 << 30).await.unwrap(),
        }
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn metadata(&self) -> serde_json::Value {
        serde_json::from_str(self.header("x-fused-metadata").expect("x-fused-metadata")).unwrap()
    }
}

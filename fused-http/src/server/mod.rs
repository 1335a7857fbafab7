//! The axum server: routes, shared state, and serving.

mod run;
mod tls;
mod tokens;

pub use tls::{load_tls_config, serve_tls};
pub use tokens::SharedTokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use fused_core::{Cache, Executor, MaxAge, UdfRegistry};

use crate::error::{ApiError, Error};

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Folder for the server's state (its secret, later its database and files).
    pub data_dir: PathBuf,
    /// Max age of cached responses when neither the request nor the UDF sets one.
    pub default_max_age: MaxAge,
    /// Largest request body accepted (enforced on every route; the routes that take bodies
    /// come with the REST API).
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("fused-data"),
            default_max_age: MaxAge::from_secs(3_600),
            max_body_bytes: 16 << 20,
        }
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The UDFs this server runs.
    pub registry: Arc<UdfRegistry>,
    /// Runs them.
    pub executor: Arc<dyn Executor>,
    /// Cache of encoded responses.
    pub cache: Arc<dyn Cache>,
    /// Shared tokens.
    pub tokens: SharedTokens,
    /// The configuration.
    pub config: ServerConfig,
}

impl AppState {
    /// State for `registry`, sharing every UDF in it under its token.
    pub fn new(
        registry: Arc<UdfRegistry>,
        executor: Arc<dyn Executor>,
        cache: Arc<dyn Cache>,
        tokens: SharedTokens,
        config: ServerConfig,
    ) -> Arc<Self> {
        for udf in registry.list() {
            tokens.share(udf.name());
        }
        Arc::new(Self {
            registry,
            executor,
            cache,
            tokens,
            config,
        })
    }
}

/// The router: the API under `/v1`.
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.config.max_body_bytes;
    // Shared-token URLs are capabilities meant to be embedded anywhere (a map on another site
    // fetching tiles), so any origin may read them, including the run's metadata.
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::HEAD])
        .expose_headers([
            axum::http::HeaderName::from_static("x-fused-metadata"),
            axum::http::HeaderName::from_static("x-cache"),
        ]);
    // Full paths in one flat router: nested routers rewrite the path on every request.
    const SHARED: &str = "/v1/realtime-shared/{token}";
    Router::new()
        .route("/v1/health", get(health))
        .route(
            &format!("{SHARED}/run"),
            get(run::shared_file).layer(cors.clone()),
        )
        .route(
            &format!("{SHARED}/run/file"),
            get(run::shared_file).layer(cors.clone()),
        )
        .route(
            &format!("{SHARED}/run/tiles/{{z}}/{{x}}/{{y}}"),
            get(run::shared_tile).layer(cors),
        )
        .fallback(not_found)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

/// Serves `router` on `addr` until `shutdown` resolves; returns the bound address through
/// `on_bound` first (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = bind(addr, on_bound).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Io {
            context: "serving".into(),
            source,
        })
}

/// Binds `addr` and reports the bound address (the real port when `addr` asks for port 0).
pub(crate) async fn bind(
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<tokio::net::TcpListener, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Io {
            context: format!("binding {addr}"),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        context: "reading the bound address".into(),
        source,
    })?;
    on_bound(local);
    Ok(listener)
}

//! The axum server: the Fused REST API under `/v1`.
//!
//! | area | module |
//! |---|---|
//! | shared-token runs (`/realtime-shared/{token}/run…`) | `shared` |
//! | runs of a posted definition (`/realtime/{id}/api/v1/run/udf/…`) | `realtime` |
//! | whoami, instances, team | `identity` |
//! | saved UDFs (`/udf/…`) | `udfs` |
//! | shared tokens (`/udf-access-token/…`) | `access` |
//! | files (`/files/…`) | `files` |
//! | the web viewer (`/`, `/viewer/…`, `/v1/viewer/catalog`) and TileJSON | `viewer` |

mod access;
mod auth;
mod catalog;
mod collections;
mod files;
mod identity;
mod jobs;
mod realtime;
mod reply;
mod secret;
mod shared;
mod tls;
mod udf_executor;
mod udfs;
mod viewer;

pub use identity::{TokenSource, owner_token};
pub use jobs::UdfJob;
pub use secret::ServerSecret;
pub use tls::{load_tls_config, serve_tls};
pub use udf_executor::ServerUdfExecutor;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use fused_core::{Cache, Executor, MaxAge, Storage, UdfRegistry};

use crate::error::{ApiError, Error};
use crate::store::{NewAccessToken, Store, User};

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Folder for the server's state (its secret, database, owner token, files).
    pub data_dir: PathBuf,
    /// Max age of cached responses when neither the request nor the UDF sets one.
    pub default_max_age: MaxAge,
    /// Largest JSON request body accepted.
    pub max_body_bytes: usize,
    /// Largest upload accepted.
    pub max_upload_bytes: u64,
    /// The owner's e-mail: native UDFs are saved UDFs of this user.
    pub owner_email: String,
    /// The owner's API token (registered at start); see [`owner_token`].
    pub owner_token: Option<String>,
    /// The URL clients reach this server at (`https://fused.example.com`), for signed URLs;
    /// by default taken from each request's `Host`.
    pub public_url: Option<String>,
    /// The server is behind TLS (signed URLs use `https`).
    pub https: bool,
    /// How long a run started by a posted definition may take before the answer is 202 and
    /// the client polls (the SDK's start request times out after 5 s).
    pub run_start_wait: Duration,
    /// Longest pause in an upload's data before the upload is abandoned (nothing of it stays).
    pub upload_idle_timeout: Duration,
    /// An XYZ raster URL template (`https://…/{z}/{x}/{y}.png`) the viewer draws under UDFs;
    /// none by default, so the page needs no internet.
    pub basemap_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("fused-data"),
            default_max_age: MaxAge::from_secs(3_600),
            max_body_bytes: 16 << 20,
            max_upload_bytes: 10 << 30,
            owner_email: "owner@fused.local".into(),
            owner_token: None,
            public_url: None,
            https: false,
            run_start_wait: Duration::from_secs(3),
            upload_idle_timeout: Duration::from_secs(60),
            basemap_url: None,
        }
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The native UDFs this server runs.
    pub registry: Arc<UdfRegistry>,
    /// Runs them.
    pub executor: Arc<dyn Executor>,
    /// Cache of encoded responses.
    pub cache: Arc<dyn Cache>,
    /// Users, tokens, saved UDFs.
    pub store: Store,
    /// The files root (`fd://`).
    pub storage: Arc<dyn Storage>,
    /// Batch jobs.
    pub jobs: Arc<dyn fused_jobs::store::JobStore>,
    /// Derives default tokens and signs URLs.
    pub secret: ServerSecret,
    /// The server's owner.
    pub owner: User,
    /// The configuration.
    pub config: ServerConfig,
    auth_cache: moka::future::Cache<String, Option<User>>,
    grant_cache: moka::future::Cache<String, Option<Arc<shared::Grant>>>,
    runs: realtime::Runs,
    /// Job kinds besides `udf` (ingestion, H3), registered by the embedding program.
    kinds: std::sync::RwLock<fused_jobs::JobKinds>,
    /// Runs code UDFs, when the embedding program gives one.
    code_runtime: std::sync::OnceLock<Arc<dyn fused_core::udf::CodeRuntime>>,
    /// The attributes of the last vector tile made by each UDF, for TileJSON.
    vector_fields: viewer::VectorFields,
}

/// Shortest owner token accepted (32 hex digits carry 128 bits).
const MIN_OWNER_TOKEN: usize = 32;

/// How long token lookups are cached: a revocation made by another process (the CLI, another
/// server) takes effect within this time.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// The parts a server is made of.
#[derive(Debug)]
pub struct ServerParts {
    /// Native UDFs.
    pub registry: Arc<UdfRegistry>,
    /// Runs them.
    pub executor: Arc<dyn Executor>,
    /// Response cache.
    pub cache: Arc<dyn Cache>,
    /// Users, tokens, saved UDFs.
    pub store: Store,
    /// The files root.
    pub storage: Arc<dyn Storage>,
    /// Batch jobs.
    pub jobs: Arc<dyn fused_jobs::store::JobStore>,
    /// The secret.
    pub secret: ServerSecret,
}

impl AppState {
    /// The state: ensures the owner and their token exist, and shares every native UDF under
    /// its default token (unless that token was revoked once).
    pub async fn new(parts: ServerParts, config: ServerConfig) -> Result<Arc<Self>, Error> {
        let store = parts.store;
        let owner = store
            .ensure_user(&config.owner_email, Some("Server owner"))
            .await?;
        if let Some(t) = &config.owner_token {
            if t.len() < MIN_OWNER_TOKEN {
                return Err(Error::Config(format!(
                    "the owner's token must be at least {MIN_OWNER_TOKEN} characters of random \
                     text (FUSED_SERVER_TOKEN); `openssl rand -hex 24` makes one"
                )));
            }
            store
                .add_api_token(&owner, t, "owner")
                .await
                .map_err(|e| Error::Config(format!("the owner's token: {e}")))?;
        }
        share_registered(&parts.registry, &parts.secret, &store, &owner).await?;
        fn cache<V: Clone + Send + Sync + 'static>() -> moka::future::Cache<String, V> {
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(TOKEN_CACHE_TTL)
                .build()
        }
        Ok(Arc::new(Self {
            registry: parts.registry,
            executor: parts.executor,
            cache: parts.cache,
            store,
            storage: parts.storage,
            jobs: parts.jobs,
            secret: parts.secret,
            owner,
            config,
            auth_cache: cache(),
            grant_cache: cache(),
            runs: realtime::Runs::default(),
            kinds: Default::default(),
            code_runtime: std::sync::OnceLock::new(),
            vector_fields: Default::default(),
        }))
    }

    /// A worker running this server's batch jobs (the `udf` kind and the registered ones)
    /// from its job store.
    pub fn worker(self: &Arc<Self>) -> fused_jobs::Worker {
        let mut kinds = fused_jobs::JobKinds::new().with("udf", Arc::new(UdfJob::new(self)));
        for name in self.job_kinds().names() {
            if let Some(k) = self.job_kinds().get(&name) {
                kinds = kinds.with(&name, k);
            }
        }
        fused_jobs::Worker::new(Arc::clone(&self.jobs), kinds)
    }

    /// Registers the runner of the job steps of type `kind` (`POST /run` accepts them and
    /// workers made afterwards run them).
    pub fn register_job_kind(&self, kind: &str, runner: Arc<dyn fused_jobs::JobKind>) {
        let mut k = self.kinds.write().unwrap_or_else(|p| p.into_inner());
        *k = std::mem::take(&mut *k).with(kind, runner);
    }

    /// Gives the server a runtime for code UDFs (once; later calls are ignored).
    pub fn set_code_runtime(&self, rt: Arc<dyn fused_core::udf::CodeRuntime>) {
        let _ = self.code_runtime.set(rt);
    }

    /// The runtime for code UDFs, if any.
    pub fn code_runtime(&self) -> Option<&Arc<dyn fused_core::udf::CodeRuntime>> {
        self.code_runtime.get()
    }

    /// The registered job kinds besides `udf`.
    pub fn job_kinds(&self) -> fused_jobs::JobKinds {
        self.kinds.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Gives every registered UDF its default shared token (for UDFs registered after the
    /// server started, such as those of `fused serve --udfs`).
    pub async fn share_registered(&self) -> Result<(), Error> {
        share_registered(&self.registry, &self.secret, &self.store, &self.owner).await
    }

    /// The default shared token of a native UDF.
    pub fn default_token(&self, udf_name: &str) -> String {
        self.secret.token_for(udf_name)
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
    const RT: &str = "/v1/realtime/{client}/api/v1/run/udf";
    const TILE: &str = "tiles/{z}/{x}/{y}";
    let uploads = DefaultBodyLimit::disable();
    Router::new()
        .route("/v1/health", get(health))
        .route(
            &format!("{SHARED}/run"),
            get(shared::shared_file).layer(cors.clone()),
        )
        .route(
            &format!("{SHARED}/run/file"),
            get(shared::shared_file).layer(cors.clone()),
        )
        .route(
            &format!("{SHARED}/run/{TILE}"),
            get(shared::shared_tile).layer(cors.clone()),
        )
        .route(
            &format!("{SHARED}/run/tiles.json"),
            get(viewer::tilejson).layer(cors),
        )
        .route("/", get(viewer::index))
        .route("/viewer/{file}", get(viewer::asset))
        .route("/v1/viewer/catalog", get(viewer::catalog))
        .route(&format!("{RT}/start"), post(realtime::file::<true>))
        .route(&format!("{RT}/start/{TILE}"), post(realtime::tile::<true>))
        .route(RT, post(realtime::file::<false>))
        .route(&format!("{RT}/{TILE}"), post(realtime::tile::<false>))
        .route(&format!("{RT}/get/{{run_id}}"), get(realtime::poll))
        .route("/v1/user/self", get(identity::whoami))
        .route("/v1/realtime-instance/available", get(identity::instances))
        .route("/v1/realtime-instance", get(identity::instances))
        .route("/v1/execution-env/self", get(identity::team))
        .route("/v1/execution-env/token", get(identity::team_token))
        .route("/v1/collection/by-name/{name}", get(collections::by_name))
        .route("/v1/collection/new", post(collections::create))
        .route("/v1/udf/new", post(udfs::create))
        .route(
            "/v1/udf/by-id/{id}",
            get(udfs::by_id).post(udfs::update).delete(udfs::delete),
        )
        .route(
            "/v1/udf/by-user-email/{email}/by-collection/{collection}/by-slug/{slug}",
            get(udfs::by_email),
        )
        .route(
            "/v1/udf/by-user-handle/{handle}/by-collection/{collection}/by-slug/{slug}",
            get(udfs::by_handle),
        )
        .route(
            "/v1/udf/exec-env/self/by-collection/{collection}/by-slug/{slug}",
            get(udfs::by_team),
        )
        .route(
            "/v1/udf/public/by-collection/{collection}/by-slug/{slug}",
            get(udfs::public_by_slug),
        )
        .route("/v1/udf/shared/by-token/{token}", get(udfs::by_token))
        .route("/v1/udf/self", get(udfs::list_self))
        .route("/v1/udf/exec-env/self", get(udfs::list_team))
        .route("/v1/udf/public", get(udfs::list_public))
        .route("/v1/udf-access-token/new", post(access::create))
        .route("/v1/udf-access-token/self", get(access::list_self))
        .route("/v1/udf-access-token/all", get(access::list_all))
        .route(
            "/v1/udf-access-token/by-token/{token}",
            get(access::get).post(access::update).delete(access::revoke),
        )
        .route("/v1/run", post(jobs::start))
        .route("/v1/run/by-id/{id}", get(jobs::status))
        .route("/v1/run/by-id/{id}/cancel", post(jobs::cancel))
        .route("/v1/run/by-id/{id}/results", get(jobs::results))
        .route("/v1/logs/{id}", get(jobs::logs))
        .route("/v1/job/self", get(jobs::list))
        .route("/v1/files/list", get(files::list))
        .route("/v1/files/list-details", get(files::list_details))
        .route("/v1/files/get", get(files::get))
        .route("/v1/files/delete", delete(files::delete))
        .route("/v1/files/sign", get(files::sign))
        .route("/v1/files/sign_prefix", get(files::sign_prefix))
        .route("/v1/files/sign-upload", get(files::sign_upload))
        .route("/v1/files/sign-upload-temp", get(files::sign_upload_temp))
        .route(
            "/v1/files/resolve",
            post(files::resolve).get(files::resolve),
        )
        .route("/v1/files/signed", get(files::signed_get))
        .route(
            "/v1/files/signed-upload",
            post(files::signed_upload).layer(uploads),
        )
        .route("/v1/files/upload", put(files::upload).layer(uploads))
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
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

/// Creates the default shared token of every UDF of `registry` that has none yet.
async fn share_registered(
    registry: &UdfRegistry,
    secret: &ServerSecret,
    store: &Store,
    owner: &User,
) -> Result<(), Error> {
    for udf in registry.list() {
        let token = secret.token_for(udf.name());
        if !store.access_token_exists(&token).await? {
            store
                .create_access_token(
                    &catalog::native_id(udf.name()),
                    &owner.id,
                    NewAccessToken {
                        token: Some(token),
                        enabled: true,
                        cache: true,
                        ..NewAccessToken::default()
                    },
                )
                .await?;
        }
    }
    Ok(())
}

//! `FusedApi`: the Fused REST API, typed, over any [`Transport`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use fused_core::storage::ObjectMeta;
use fused_core::{Body, Error, Options, Result, Transport, UdfMeta};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Largest JSON answer read into memory.
const MAX_JSON: usize = 256 << 20;

/// The caller, as `GET /user/self` describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whoami {
    /// User id.
    #[serde(default)]
    pub id: String,
    /// E-mail.
    pub email: String,
    /// Handle.
    #[serde(default)]
    pub handle: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Team.
    #[serde(default)]
    pub team: String,
}

/// A shared token, as the API describes it (the SDK's `UdfAccessToken`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdfAccessToken {
    /// The token (`fsh_…`).
    pub token: String,
    /// E-mail of the UDF's owner.
    #[serde(default)]
    pub udf_email: Option<String>,
    /// Name of the UDF.
    #[serde(default)]
    pub udf_slug: Option<String>,
    /// Id of the UDF.
    #[serde(default)]
    pub udf_id: Option<String>,
    /// Runs are refused when false.
    pub enabled: bool,
    /// Responses may be cached.
    #[serde(default)]
    pub cache: Option<bool>,
    /// Realtime instance.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata_json: Option<Value>,
    /// Last change (RFC 3339).
    #[serde(default)]
    pub last_updated: Option<String>,
}

/// Which UDFs [`FusedApi::get_udfs`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Whose {
    /// The caller's (`/udf/self`).
    #[default]
    SelfOwned,
    /// The team's (`/udf/exec-env/self`).
    Team,
    /// Publicly listed ones (`/udf/public`).
    Public,
}

/// How [`FusedApi::get_udfs`] keys its answer: `"{collection}/{name|id|slug}"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdfKey {
    /// By name.
    #[default]
    Name,
    /// By id.
    Id,
    /// By slug.
    Slug,
}

/// What [`FusedApi::upload`] sends.
#[derive(Debug)]
pub enum Upload {
    /// These bytes.
    Bytes(Bytes),
    /// A local file, streamed.
    File(PathBuf),
    /// A table, written as Parquet.
    Table(Box<fused_core::Table>),
}

impl From<Bytes> for Upload {
    fn from(b: Bytes) -> Self {
        Upload::Bytes(b)
    }
}

impl From<Vec<u8>> for Upload {
    fn from(b: Vec<u8>) -> Self {
        Upload::Bytes(b.into())
    }
}

impl From<&Path> for Upload {
    fn from(p: &Path) -> Self {
        Upload::File(p.to_owned())
    }
}

impl From<PathBuf> for Upload {
    fn from(p: PathBuf) -> Self {
        Upload::File(p)
    }
}

impl From<fused_core::Table> for Upload {
    fn from(t: fused_core::Table) -> Self {
        Upload::Table(Box::new(t))
    }
}

impl From<arrow::record_batch::RecordBatch> for Upload {
    fn from(b: arrow::record_batch::RecordBatch) -> Self {
        Upload::Table(Box::new(fused_core::Table::from_batch(b)))
    }
}

/// The Fused REST API over a [`Transport`]: files, saved UDFs, shared tokens, identity.
///
/// ```no_run
/// # async fn demo() -> fused_core::Result<()> {
/// use fused_http::FusedApi;
/// let api = FusedApi::from_options(&fused_core::Options::load()?)?;
/// api.upload(b"hello".to_vec(), "fd://notes/hello.txt").await?;
/// assert_eq!(api.list("fd://notes/").await?, ["fd://notes/hello.txt"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FusedApi {
    transport: Arc<dyn Transport>,
    base_url: String,
    authorization: Option<String>,
    default_headers: Vec<(String, String)>,
}

impl FusedApi {
    /// A client for the API at `base_url` (for example `http://localhost:8783/v1`), without
    /// credentials.
    pub fn new(transport: Arc<dyn Transport>, base_url: impl Into<String>) -> Self {
        Self {
            transport,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            authorization: None,
            default_headers: Vec::new(),
        }
    }

    /// Sends `Authorization: Bearer <token>`.
    #[must_use]
    pub fn with_token(self, token: impl AsRef<str>) -> Self {
        self.with_authorization("Bearer", token)
    }

    /// Sends `Authorization: <scheme> <token>` (the SDK's `FUSED_AUTH_TOKEN_TYPE` schemes).
    #[must_use]
    pub fn with_authorization(mut self, scheme: &str, token: impl AsRef<str>) -> Self {
        self.authorization = Some(format!("{scheme} {}", token.as_ref()));
        self
    }

    /// A client configured as the SDK is: `base_url`, timeouts and retries from `options`
    /// (plus its `default_run_headers`), and credentials from `FUSED_AUTH_TOKEN` (with
    /// `FUSED_AUTH_TOKEN_TYPE`), else the `access_token` of `~/.fused/credentials`.
    pub fn from_options(options: &Options) -> Result<Self> {
        let transport = Arc::new(crate::HttpTransport::from_options(options)?);
        let mut api = Self::new(transport, options.base_url.clone());
        api.default_headers = options
            .default_run_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some((scheme, token)) = credentials() {
            api = api.with_authorization(&scheme, token);
        }
        Ok(api)
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut u = format!("{}{path}", self.base_url);
        if !query.is_empty() {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                s.append_pair(k, v);
            }
            u.push('?');
            u.push_str(&s.finish());
        }
        u
    }

    /// Sends a request; an error status becomes [`Error::Http`] with the server's `detail`.
    async fn send(
        &self,
        method: http::Method,
        url: String,
        body: Option<Body>,
        content_type: Option<&str>,
    ) -> Result<http::Response<Body>> {
        let mut b = http::Request::builder().method(method).uri(&url);
        for (k, v) in &self.default_headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if let Some(a) = &self.authorization {
            b = b.header(http::header::AUTHORIZATION, a.as_str());
        }
        if let Some(ct) = content_type {
            b = b.header(http::header::CONTENT_TYPE, ct);
        }
        let req = b
            .body(body.unwrap_or_else(Body::empty))
            .map_err(|e| Error::Transport(format!("building a request for {url}: {e}")))?;
        let resp = self.transport.send(req).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.into_body().collect(1 << 20).await.unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("detail")
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&text).into_owned());
        Err(Error::Http { status, message })
    }

    async fn json(&self, method: http::Method, url: String, body: Option<Value>) -> Result<Value> {
        let (body, ct) = match body {
            Some(v) => (Some(Body::from(v.to_string())), Some("application/json")),
            None => (None, None),
        };
        let resp = self.send(method, url, body, ct).await?;
        let bytes = resp.into_body().collect(MAX_JSON).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        self.json(http::Method::GET, self.url(path, query), None)
            .await
    }

    /// Who the credentials belong to.
    pub async fn whoami(&self) -> Result<Whoami> {
        Ok(serde_json::from_value(
            self.get_json("/user/self", &[]).await?,
        )?)
    }

    /// The team's auth token (`GET /execution-env/token`).
    pub async fn auth_token(&self) -> Result<String> {
        let v = self.get_json("/execution-env/token", &[]).await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Transport(format!("expected a token string, got {v}")))
    }

    /// URLs directly under `path`.
    pub async fn list(&self, path: &str) -> Result<Vec<String>> {
        Ok(serde_json::from_value(
            self.get_json("/files/list", &[("path", path)]).await?,
        )?)
    }

    /// Entries directly under `path`, with sizes and times.
    pub async fn list_details(&self, path: &str) -> Result<Vec<ObjectMeta>> {
        let v = self
            .get_json("/files/list-details", &[("path", path)])
            .await?;
        let items = v.as_array().cloned().unwrap_or_default();
        Ok(items
            .into_iter()
            .map(|m| ObjectMeta {
                url: m["url"].as_str().unwrap_or_default().to_owned(),
                file_name: m["file_name"].as_str().unwrap_or_default().to_owned(),
                is_directory: m["is_directory"].as_bool().unwrap_or(false),
                size: m["size"].as_u64(),
                last_modified: m["last_modified"].as_str().and_then(parse_rfc3339),
            })
            .collect())
    }

    /// An object's bytes, streamed.
    pub async fn get_stream(&self, path: &str) -> Result<Body> {
        let resp = self
            .send(
                http::Method::GET,
                self.url("/files/get", &[("path", path)]),
                None,
                None,
            )
            .await?;
        Ok(resp.into_body())
    }

    /// An object's bytes.
    pub async fn get(&self, path: &str) -> Result<Bytes> {
        self.get_stream(path).await?.collect(usize::MAX).await
    }

    /// Downloads an object to `local` (streamed to a temporary file, renamed when complete).
    pub async fn download(&self, path: &str, local: &Path) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut stream = self.get_stream(path).await?.into_stream();
        let dir = local.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir).await?;
        let tmp = dir.join(format!(
            ".{}.{}.part",
            local
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("download"),
            uuid::Uuid::new_v4().simple()
        ));
        let result = async {
            let mut f = tokio::fs::File::create(&tmp).await?;
            while let Some(chunk) = stream.next().await {
                f.write_all(&chunk?).await?;
            }
            f.sync_all().await?;
            tokio::fs::rename(&tmp, local).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        Ok(result?)
    }

    /// Uploads bytes, a local file (streamed) or a table (as Parquet) to `path`; a `path`
    /// ending in `/` takes the file's name.
    pub async fn upload(&self, data: impl Into<Upload>, path: &str) -> Result<()> {
        let (body, path) = match data.into() {
            Upload::Bytes(b) => (Body::from(b), path.to_owned()),
            Upload::Table(t) => {
                let enc = fused_core::encode::encode(
                    &fused_core::Output::Table(*t),
                    fused_core::encode::Format::Parquet,
                )?;
                (Body::from(enc.body), path.to_owned())
            }
            Upload::File(local) => {
                let f = tokio::fs::File::open(&local).await.map_err(|e| {
                    Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("{}: {e}", local.display()),
                    ))
                })?;
                let mut path = path.to_owned();
                if path.ends_with('/')
                    && let Some(name) = local.file_name().and_then(|n| n.to_str())
                {
                    path.push_str(name);
                }
                let stream = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20);
                (Body::from_stream(stream), path)
            }
        };
        self.send(
            http::Method::PUT,
            self.url("/files/upload", &[("path", &path)]),
            Some(body),
            Some("application/octet-stream"),
        )
        .await?;
        Ok(())
    }

    /// Deletes an object or a folder at most `max_depth` levels deep (`None`: unlimited).
    pub async fn delete(&self, path: &str, max_depth: Option<u32>) -> Result<bool> {
        let depth = max_depth.map_or_else(|| "unlimited".to_owned(), |d| d.to_string());
        let v = self
            .json(
                http::Method::DELETE,
                self.url(
                    "/files/delete",
                    &[("path", path), ("max_deletion_depth", &depth)],
                ),
                None,
            )
            .await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// A URL that reads `path` without credentials for a while.
    pub async fn sign_url(&self, path: &str) -> Result<String> {
        let v = self.get_json("/files/sign", &[("path", path)]).await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Transport(format!("expected a URL, got {v}")))
    }

    /// Signed URLs of every object under `path`.
    pub async fn sign_url_prefix(&self, path: &str) -> Result<BTreeMap<String, String>> {
        Ok(serde_json::from_value(
            self.get_json("/files/sign_prefix", &[("path", path)])
                .await?,
        )?)
    }

    /// The storage URL `fd://…` stands for.
    pub async fn resolve(&self, path: &str) -> Result<String> {
        let v = self
            .json(
                http::Method::POST,
                self.url("/files/resolve", &[("path", path)]),
                None,
            )
            .await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Transport(format!("expected a URL, got {v}")))
    }

    /// Saved UDFs (at most `n`), keyed `"{collection}/{name|id|slug}"`.
    pub async fn get_udfs(
        &self,
        n: Option<usize>,
        skip: usize,
        by: UdfKey,
        whose: Whose,
    ) -> Result<BTreeMap<String, UdfMeta>> {
        let path = match whose {
            Whose::SelfOwned => "/udf/self",
            Whose::Team => "/udf/exec-env/self",
            Whose::Public => "/udf/public",
        };
        let mut out = BTreeMap::new();
        let mut skip = skip;
        loop {
            let want = n.map_or(300, |n| n.saturating_sub(out.len()).min(300));
            if want == 0 {
                break;
            }
            let page = self
                .get_json(
                    path,
                    &[("skip", &skip.to_string()), ("limit", &want.to_string())],
                )
                .await?;
            let records = page.as_array().cloned().unwrap_or_default();
            if records.is_empty() {
                break;
            }
            skip += records.len();
            for r in records {
                let Some(meta) = record_meta(&r) else {
                    continue;
                };
                let collection = r["collection_name"].as_str().unwrap_or("default");
                let key = match by {
                    UdfKey::Name => meta.display_name().to_owned(),
                    UdfKey::Id => r["id"].as_str().unwrap_or_default().to_owned(),
                    UdfKey::Slug => r["slug"].as_str().unwrap_or_default().to_owned(),
                };
                out.insert(format!("{collection}/{key}"), meta);
            }
        }
        Ok(out)
    }

    /// The UDF a shared token runs.
    pub async fn get_udf_by_token(&self, token: &str) -> Result<UdfMeta> {
        let enc = percent_encoding::utf8_percent_encode(token, PATH_SEGMENT).to_string();
        let r = self
            .get_json(&format!("/udf/shared/by-token/{enc}"), &[])
            .await?;
        record_meta(&r).ok_or_else(|| Error::InvalidUdf(format!("{token}: unreadable body")))
    }

    /// A saved UDF by id, `email/name`, `handle/name`, `team/name` or the caller's name.
    pub async fn get_udf(&self, reference: &str) -> Result<UdfMeta> {
        let r = self.udf_record(reference).await?;
        record_meta(&r).ok_or_else(|| Error::InvalidUdf(format!("{reference}: unreadable body")))
    }

    async fn udf_record(&self, reference: &str) -> Result<Value> {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, PATH_SEGMENT).to_string();
        let path = match reference.split_once('/') {
            Some((who, name)) if who.contains('@') => format!(
                "/udf/by-user-email/{}/by-collection/default/by-slug/{}",
                enc(who),
                enc(name)
            ),
            Some(("team", name)) => {
                format!(
                    "/udf/exec-env/self/by-collection/default/by-slug/{}",
                    enc(name)
                )
            }
            Some((who, name)) => format!(
                "/udf/by-user-handle/{}/by-collection/default/by-slug/{}",
                enc(who),
                enc(name)
            ),
            None if uuid::Uuid::parse_str(reference).is_ok() => {
                format!("/udf/by-id/{reference}")
            }
            None => {
                let me = self.whoami().await?;
                format!(
                    "/udf/by-user-email/{}/by-collection/default/by-slug/{}",
                    enc(&me.email),
                    enc(reference)
                )
            }
        };
        self.get_json(&path, &[]).await
    }

    /// Saves a UDF under its name; returns its id. With `overwrite`, an existing UDF of that
    /// name is replaced, otherwise it is an error (409).
    pub async fn save_udf(&self, meta: &UdfMeta, overwrite: bool) -> Result<String> {
        let name = meta.display_name().to_owned();
        let body = json!({
            "slug": name,
            "udf_body": meta.to_json(),
            "udf_type": "auto",
            "allow_public_read": false,
            "allow_public_list": false,
            "collection_id": null,
        });
        let existing = if overwrite {
            match self.udf_record(&name).await {
                Ok(r) => r["id"].as_str().map(str::to_owned),
                Err(Error::Http { status: 404, .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let url = match &existing {
            Some(id) => self.url(&format!("/udf/by-id/{id}"), &[]),
            None => self.url("/udf/new", &[]),
        };
        let v = self.json(http::Method::POST, url, Some(body)).await?;
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Transport(format!("expected an id, got {v}")))
    }

    /// Deletes a saved UDF (by any reference [`get_udf`](Self::get_udf) takes).
    pub async fn delete_udf(&self, reference: &str) -> Result<()> {
        let r = self.udf_record(reference).await?;
        let id = r["id"].as_str().unwrap_or_default();
        self.json(
            http::Method::DELETE,
            self.url(&format!("/udf/by-id/{id}"), &[]),
            None,
        )
        .await?;
        Ok(())
    }

    /// A new shared token for a UDF (by id, `email/name`, or the caller's name).
    pub async fn create_udf_access_token(&self, udf: &str) -> Result<UdfAccessToken> {
        let (id, email, slug) = if uuid::Uuid::parse_str(udf).is_ok() {
            (Some(udf.to_owned()), None, None)
        } else if let Some((email, name)) = udf.split_once('/') {
            (None, Some(email.to_owned()), Some(name.to_owned()))
        } else {
            (None, None, Some(udf.to_owned()))
        };
        let body = json!({
            "udf_email": email, "udf_slug": slug, "udf_id": id, "client_id": null,
            "public_read": null, "access_scope": null, "cache": true, "metadata_json": {},
            "enabled": true,
        });
        let v = self
            .json(
                http::Method::POST,
                self.url("/udf-access-token/new", &[]),
                Some(body),
            )
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    /// The caller's shared tokens.
    pub async fn udf_access_tokens(&self) -> Result<Vec<UdfAccessToken>> {
        Ok(serde_json::from_value(
            self.get_json("/udf-access-token/self", &[]).await?,
        )?)
    }

    /// Revokes a shared token.
    pub async fn delete_udf_access_token(&self, token: &str) -> Result<UdfAccessToken> {
        let v = self
            .json(
                http::Method::DELETE,
                self.url(&format!("/udf-access-token/by-token/{token}"), &[]),
                None,
            )
            .await?;
        Ok(serde_json::from_value(v)?)
    }
}

/// A batch job's state, as `GET /run/by-id/{id}` (the SDK's `RunResponse`) tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResponse {
    /// The job's id.
    pub job_id: String,
    /// Its name.
    pub job_name: String,
    /// `Pending`, `Running`, `Done`, `Failed` or `Canceled`.
    #[serde(default)]
    pub job_status: Option<String>,
    /// True once it will not change again.
    pub terminal_status: bool,
    /// Tasks in it.
    pub total_tasks: u64,
    /// Tasks finished.
    pub finished_tasks: u64,
}

/// One log line of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLogLine {
    /// When (epoch ms).
    pub timestamp: i64,
    /// What.
    pub message: String,
}

impl RunResponse {
    /// The job's state now.
    pub async fn refresh(&self, api: &FusedApi) -> Result<RunResponse> {
        api.get_status(&self.job_id).await
    }

    /// Waits for the job's end.
    pub async fn wait(
        &self,
        api: &FusedApi,
        timeout: Option<std::time::Duration>,
    ) -> Result<RunResponse> {
        api.wait_for_job(&self.job_id, std::time::Duration::from_millis(500), timeout)
            .await
    }

    /// Cancels the job.
    pub async fn cancel(&self, api: &FusedApi) -> Result<RunResponse> {
        api.cancel_job(&self.job_id).await
    }

    /// The job's logs.
    pub async fn logs(&self, api: &FusedApi, since_ms: Option<i64>) -> Result<Vec<JobLogLine>> {
        api.get_logs(&self.job_id, since_ms).await
    }

    /// Time from the job's first log line to its last.
    pub async fn exec_time(&self, api: &FusedApi) -> Result<std::time::Duration> {
        api.get_exec_time(&self.job_id).await
    }
}

impl FusedApi {
    /// Starts a batch job from a job config (`{"name", "steps": [{"type": "udf", "udf": …,
    /// "input": [...]}]}`), as `POST /run`.
    pub async fn start_job(&self, config: Value) -> Result<RunResponse> {
        let v = self
            .json(
                http::Method::POST,
                self.url("/run", &[]),
                Some(json!({ "config": config, "send_status_email": false })),
            )
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    /// Prints a job's log lines.
    pub async fn print_logs(&self, job_id: &str) -> Result<()> {
        for l in self.get_logs(job_id, None).await? {
            println!("{}", l.message);
        }
        Ok(())
    }

    /// Prints a job's log lines as they come, until it ends (or `timeout`).
    pub async fn tail_logs(
        &self,
        job_id: &str,
        timeout: Option<std::time::Duration>,
    ) -> Result<RunResponse> {
        let start = std::time::Instant::now();
        let mut since = None;
        loop {
            for l in self.get_logs(job_id, since).await? {
                println!("{}", l.message);
                since = Some(l.timestamp);
            }
            let s = self.get_status(job_id).await?;
            if s.terminal_status {
                for l in self.get_logs(job_id, since).await? {
                    println!("{}", l.message);
                }
                return Ok(s);
            }
            if timeout.is_some_and(|t| start.elapsed() >= t) {
                return Ok(s);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// Time from a job's first log line to its last (as the SDK's `get_exec_time`).
    pub async fn get_exec_time(&self, job_id: &str) -> Result<std::time::Duration> {
        let logs = self.get_logs(job_id, None).await?;
        match (logs.first(), logs.last()) {
            (Some(a), Some(b)) => Ok(std::time::Duration::from_millis(
                (b.timestamp - a.timestamp).max(0) as u64,
            )),
            _ => Err(Error::NotFound(format!("job {job_id} has no logs yet"))),
        }
    }

    /// The caller's most recent jobs (`GET /job/self`).
    pub async fn get_jobs(&self, n: usize) -> Result<Vec<Value>> {
        let v = self
            .get_json("/job/self", &[("limit", &n.to_string())])
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// A job's state.
    pub async fn get_status(&self, job_id: &str) -> Result<RunResponse> {
        Ok(serde_json::from_value(
            self.get_json(&format!("/run/by-id/{job_id}"), &[]).await?,
        )?)
    }

    /// A job's log lines after `since_ms` (all when `None`).
    pub async fn get_logs(&self, job_id: &str, since_ms: Option<i64>) -> Result<Vec<JobLogLine>> {
        let since = since_ms.map(|s| s.to_string());
        let mut q = Vec::new();
        if let Some(s) = &since {
            q.push(("since_ms", s.as_str()));
        }
        Ok(serde_json::from_value(
            self.get_json(&format!("/logs/{job_id}"), &q).await?,
        )?)
    }

    /// Cancels a job.
    pub async fn cancel_job(&self, job_id: &str) -> Result<RunResponse> {
        let v = self
            .json(
                http::Method::POST,
                self.url(&format!("/run/by-id/{job_id}/cancel"), &[]),
                None,
            )
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    /// Waits until the job has ended (polling every `every`), at most `timeout`.
    pub async fn wait_for_job(
        &self,
        job_id: &str,
        every: std::time::Duration,
        timeout: Option<std::time::Duration>,
    ) -> Result<RunResponse> {
        let start = std::time::Instant::now();
        loop {
            let s = self.get_status(job_id).await?;
            if s.terminal_status {
                return Ok(s);
            }
            if timeout.is_some_and(|t| start.elapsed() >= t) {
                return Err(Error::Transport(format!(
                    "job {job_id} still {} after {:?}",
                    s.job_status.as_deref().unwrap_or("running"),
                    start.elapsed()
                )));
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Characters escaped in a path segment.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'@')
    .remove(b'~');

/// The UDF JSON of a record (`udf_body` is a string of JSON).
fn record_meta(r: &Value) -> Option<UdfMeta> {
    let body = r.get("udf_body")?;
    let text = match body {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Object(_) => body.to_string(),
        _ => return None,
    };
    let mut meta = UdfMeta::from_json(&text).ok()?;
    if meta.metadata_str("fused:id").is_none()
        && let Some(id) = r.get("id").and_then(Value::as_str)
    {
        meta.set_metadata("fused:id", Value::String(id.to_owned()));
    }
    Some(meta)
}

/// Credentials as the SDK finds them: `FUSED_AUTH_TOKEN` (+ `FUSED_AUTH_TOKEN_TYPE`, default
/// `Bearer`), else the OAuth credentials file.
fn credentials() -> Option<(String, String)> {
    if let Ok(t) = std::env::var("FUSED_AUTH_TOKEN")
        && !t.trim().is_empty()
    {
        let scheme = std::env::var("FUSED_AUTH_TOKEN_TYPE").unwrap_or_else(|_| "Bearer".into());
        return Some((scheme, t.trim().to_owned()));
    }
    let path = dirs::home_dir()?.join(".fused").join("credentials");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let token = v.get("access_token")?.as_str()?.to_owned();
    let scheme = v
        .get("auth_scheme")
        .and_then(Value::as_str)
        .unwrap_or("Bearer")
        .to_owned();
    Some((scheme, token))
}

/// Epoch time of an RFC 3339 UTC timestamp (`2026-11-25T09:46:40Z`).
fn parse_rfc3339(s: &str) -> Option<std::time::SystemTime> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        for secs in [0i64, 951_782_400, 1_795_600_000] {
            let text = crate::store::rfc3339(secs);
            let back = parse_rfc3339(&text).unwrap();
            assert_eq!(
                back.duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64,
                secs,
                "{text}"
            );
        }
        assert!(parse_rfc3339("nope").is_none());
    }
}

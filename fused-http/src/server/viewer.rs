//! The web viewer: its page and assets (bundled at build time), the catalog it lists UDFs
//! from (`GET /v1/viewer/catalog`), and TileJSON documents for map clients
//! (`GET /v1/realtime-shared/{token}/run/tiles.json`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fused_core::Udf;
use fused_core::tile::MAX_LATITUDE;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::AppState;
use super::auth::Caller;
use super::catalog::DEFAULT_COLLECTION;
use super::files::Origin;
use crate::error::ApiError;

/// The page's files, bundled at build time (see `build.rs`): (name under `/viewer/`, content
/// type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/viewer_assets.rs"));

/// The attributes of the last vector tile with features each UDF made (by the UDF's identity:
/// names repeat across users and versions), so its TileJSON document can list them.
#[derive(Debug, Default)]
pub(crate) struct VectorFields(
    std::sync::Mutex<std::collections::HashMap<String, Map<String, Value>>>,
);

/// UDFs whose fields are remembered at most (then the memory starts over).
const MAX_REMEMBERED: usize = 10_000;

impl VectorFields {
    /// Remembers the fields of the latest vector tile of the UDF whose identity is `udf`.
    pub(crate) fn remember(&self, udf: &str, fields: Vec<(String, &'static str)>) {
        let fields: Map<String, Value> = fields
            .into_iter()
            .map(|(k, t)| (k, Value::from(t)))
            .collect();
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(udf) == Some(&fields) {
            return;
        }
        if m.len() >= MAX_REMEMBERED {
            m.clear();
        }
        m.insert(udf.to_owned(), fields);
    }

    fn get(&self, udf: &str) -> Map<String, Value> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(udf).cloned().unwrap_or_default()
    }
}

impl AppState {
    /// Remembers the attributes of a vector tile made by the UDF whose identity is `udf`.
    pub(crate) fn remember_vector_fields(&self, udf: &str, fields: Vec<(String, &'static str)>) {
        self.vector_fields.remember(udf, fields);
    }
}

/// Longest the catalog waits for one UDF definition to load.
const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Zoom levels a TileJSON document offers.
const MIN_ZOOM: u8 = 0;
const MAX_ZOOM: u8 = 22;

fn static_response(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The assets change with the binary: revalidate rather than serve a stale page.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Scripts and styles from this server only; tiles and the basemap (any http(s) URL the
    // user sets) as images and fetches; MapLibre's workers from blob URLs; never framed.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; form-action 'none'; \
             img-src 'self' data: blob: http: https:; connect-src 'self' http: https:; \
             worker-src 'self' blob:; child-src blob:; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'",
        ),
    );
    r
}

/// `GET /`: the viewer's page.
pub(crate) async fn index() -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == "index.html") {
        Some((_, ct, body)) => static_response(ct, body),
        None => ApiError::NotFound("the viewer was not bundled".into()).into_response(),
    }
}

/// `GET /viewer/{file}`: one of the page's assets.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, ct, body)) => static_response(ct, body),
        None => ApiError::NotFound(format!("no viewer asset {file:?}")).into_response(),
    }
}

/// `GET /v1/viewer/catalog`: the owner's UDFs — the server's own (native and `--udfs` code)
/// and those saved through the API — with their parameters and an enabled shared token.
pub(crate) async fn catalog(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    if caller.user.id != state.owner.id {
        return Err(ApiError::Forbidden(
            "the viewer lists the server owner's UDFs; sign in with the owner's token".into(),
        ));
    }
    // Enabled shared tokens by UDF id; a native UDF's default token first.
    let mut tokens: std::collections::HashMap<String, Vec<String>> = Default::default();
    for t in state.store.access_tokens(Some(&state.owner.id)).await? {
        if t.enabled {
            tokens.entry(t.udf_id).or_default().push(t.token);
        }
    }
    // Names and tokens first; then the definitions, loaded a few at a time (a code UDF is
    // compiled by the Python runtime once, then kept), each within a time limit.
    let mut listed = Vec::new();
    let mut names = std::collections::HashSet::new();
    for e in state.entries(Some(&state.owner), false).await? {
        let ids = tokens.get(&e.id).map(Vec::as_slice).unwrap_or_default();
        let token = if e.native {
            let default = state.default_token(&e.slug);
            ids.iter().find(|t| **t == default).or(ids.first()).cloned()
        } else {
            ids.first().cloned()
        };
        // Listed by name; a saved UDF outside the default collection, or named like one of
        // the server's own, as `collection/name`.
        let name = if e.collection == DEFAULT_COLLECTION && !names.contains(&e.slug) {
            e.slug.clone()
        } else {
            format!("{}/{}", e.collection, e.slug)
        };
        if names.insert(name.clone()) {
            listed.push((name, e, token));
        }
    }
    let pending: Vec<_> = listed
        .iter()
        .map(|(_, e, _)| {
            let target = state.target(&e.meta);
            let state = Arc::clone(&state);
            async move {
                match tokio::time::timeout(LOAD_TIMEOUT, state.runnable(&target)).await {
                    Ok(r) => r.map_err(error_detail),
                    Err(_) => Err(format!(
                        "loading it took longer than {} s",
                        LOAD_TIMEOUT.as_secs()
                    )),
                }
            }
        })
        .collect();
    let loads: Vec<_> = futures::stream::iter(pending).buffered(4).collect().await;
    let mut udfs = Vec::with_capacity(listed.len());
    for ((name, e, token), loaded) in listed.into_iter().zip(loads) {
        match loaded {
            Ok(udf) => {
                let mut v = entry(&udf, token);
                v["name"] = name.into();
                v["layer"] = udf.name().into();
                udfs.push(v);
            }
            Err(error) => udfs.push(json!({
                "name": name,
                "description": e.meta.metadata_str("fused:description"),
                "kind": "file",
                "code": true,
                "token": token,
                "layer": e.slug,
                "params": [],
                "error": error,
            })),
        }
    }
    Ok(Json(json!({
        "udfs": udfs,
        "basemap": state.config.basemap_url,
    })))
}

/// The message of an error, as its response's `detail` says it.
fn error_detail(e: ApiError) -> String {
    let (_, _, body) = e.parts();
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or(body)
}

/// One UDF as the viewer shows it.
fn entry(udf: &Udf, token: Option<String>) -> Value {
    let params: Vec<Value> = udf
        .schema()
        .params
        .iter()
        .map(|p| {
            let mut o = match serde_json::to_value(&p.kind) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            o.insert("name".into(), p.name.clone().into());
            o.insert("required".into(), p.required.into());
            o.insert("nullable".into(), p.nullable.into());
            let default = udf
                .meta()
                .parameters
                .get(&p.name)
                .cloned()
                .or_else(|| p.default.clone())
                .unwrap_or(Value::Null);
            o.insert("default".into(), default);
            if let Some(d) = &p.description {
                o.insert("description".into(), d.clone().into());
            }
            Value::Object(o)
        })
        .collect();
    json!({
        "name": udf.name(),
        "description": udf.description(),
        "kind": if udf.takes_bounds() { "tile" } else { "file" },
        "code": !udf.meta().code.trim().is_empty(),
        "token": token,
        "layer": udf.name(),
        "minzoom": MIN_ZOOM,
        "maxzoom": MAX_ZOOM,
        "params": params,
    })
}

/// `GET /v1/realtime-shared/{token}/run/tiles.json`: a TileJSON 3.0 document for the shared
/// UDF. The query's parameters go into the tile URLs; `format` picks vector tiles (`mvt`, the
/// default) or images (`png`); the layer's fields are those of the last vector tile the UDF
/// made.
pub(crate) async fn tilejson(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
    Origin(origin): Origin,
) -> Result<Json<Value>, ApiError> {
    let (_, udf) = state.shared_udf(&token).await?;
    let mut format = "mvt".to_owned();
    let mut params = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        if k == "format" {
            format = v.into_owned();
        } else {
            params.append_pair(&k, &v);
        }
    }
    let vector = match format.as_str() {
        "mvt" => true,
        "png" => false,
        f => {
            return Err(ApiError::BadRequest(format!(
                "TileJSON describes vector tiles (format=mvt) or images (format=png), not {f:?}"
            )));
        }
    };
    let mut query = format!("format={format}");
    let params = params.finish();
    if !params.is_empty() {
        query.push('&');
        query.push_str(&params);
    }
    let url = format!("{origin}/v1/realtime-shared/{token}/run/tiles/{{z}}/{{x}}/{{y}}?{query}");
    let mut doc = json!({
        "tilejson": "3.0.0",
        "name": udf.name(),
        "description": udf.description().unwrap_or_default(),
        "scheme": "xyz",
        "tiles": [url],
        "minzoom": MIN_ZOOM,
        "maxzoom": MAX_ZOOM,
        "bounds": [-180.0, -MAX_LATITUDE, 180.0, MAX_LATITUDE],
        "center": [0.0, 0.0, 2],
    });
    if vector {
        doc["vector_layers"] = json!([{
            "id": udf.name(),
            "description": udf.description().unwrap_or_default(),
            "minzoom": MIN_ZOOM,
            "maxzoom": MAX_ZOOM,
            // Known once the UDF has made a vector tile (running it here could take long).
            "fields": state.vector_fields.get(udf.identity()),
        }]);
    }
    Ok(Json(doc))
}

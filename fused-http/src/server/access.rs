//! `/v1/udf-access-token/…`: shared tokens — create, list, look up, update, revoke.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::catalog::{DEFAULT_COLLECTION, Entry};
use crate::error::ApiError;
use crate::store::{AccessToken, NewAccessToken, rfc3339};

/// The body of `POST /udf-access-token/new` (every key present, nulls allowed).
#[derive(Debug, Deserialize)]
pub(crate) struct NewBody {
    #[serde(default)]
    udf_email: Option<String>,
    #[serde(default)]
    udf_slug: Option<String>,
    #[serde(default)]
    udf_id: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    public_read: Option<bool>,
    #[serde(default)]
    access_scope: Option<String>,
    #[serde(default)]
    cache: Option<bool>,
    #[serde(default)]
    metadata_json: Option<Value>,
    #[serde(default)]
    enabled: Option<bool>,
}

/// The body of `POST /udf-access-token/by-token/{token}` (nulls leave fields unchanged).
#[derive(Debug, Deserialize)]
pub(crate) struct UpdateBody {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    cache: Option<bool>,
    #[serde(default)]
    metadata_json: Option<Value>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    public_read: Option<bool>,
    #[serde(default)]
    access_scope: Option<String>,
}

/// `skip` / `limit` of a listing.
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    #[serde(default)]
    skip: usize,
    #[serde(default)]
    limit: Option<usize>,
}

/// The SDK's `UdfAccessToken`.
async fn token_json(state: &AppState, t: &AccessToken) -> Value {
    let entry = state.entry_by_id(&t.udf_id).await.ok().flatten();
    let owner = match entry.as_ref() {
        Some(e) if e.owner_id == state.owner.id => Some(state.owner.clone()),
        Some(e) => state.store.user_by_id(&e.owner_id).await.ok().flatten(),
        None => None,
    };
    json!({
        "token": t.token,
        "udf_email": owner.map(|o| o.email),
        "udf_slug": entry.as_ref().map(|e| e.slug.clone()),
        "udf_id": t.udf_id,
        "enabled": t.enabled,
        "owning_user_id": t.owner_id,
        "owning_execution_environment_id": null,
        "client_id": t.client_id,
        "public_read": t.public_read,
        "access_scope": t.access_scope,
        "cache": t.cache,
        "metadata_json": t.metadata_json,
        "last_updated": rfc3339(t.last_updated),
    })
}

/// The UDF a create request names: `udf_id`, else `udf_email` (default: the caller) + `udf_slug`.
async fn target(state: &AppState, caller: &Caller, b: &NewBody) -> Result<Entry, ApiError> {
    if let Some(id) = b.udf_id.as_deref().filter(|s| !s.is_empty()) {
        return state
            .entry_by_id(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no UDF with id {id}")));
    }
    let slug = b
        .udf_slug
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("name the UDF with udf_id or udf_slug".into()))?;
    let (collection, name) = slug.split_once('/').unwrap_or((DEFAULT_COLLECTION, slug));
    // `udf_email` is whatever came before the `/` of `who/name`: an e-mail, a handle, `team`.
    let owner = match b.udf_email.as_deref() {
        None => caller.user.clone(),
        Some(who) if who == caller.user.email || who == caller.user.handle => caller.user.clone(),
        Some("team") => {
            return super::udfs::team_entry(state, caller, collection, name)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no UDF team/{name}")));
        }
        Some(who) => {
            let user = if who.contains('@') {
                state.store.user_by_email(who).await?
            } else {
                state.store.user_by_handle(who).await?
            };
            user.ok_or_else(|| ApiError::NotFound(format!("no user {who}")))?
        }
    };
    state
        .entry_by_slug(&owner, collection, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no UDF {}/{name}", owner.email)))
}

pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(b): Json<NewBody>,
) -> Result<Json<Value>, ApiError> {
    let entry = target(&state, &caller, &b).await?;
    // A token runs the UDF for anyone who holds it: only the UDF's owner (or the server's)
    // may hand one out.
    if entry.owner_id != caller.user.id && caller.user.id != state.owner.id {
        return Err(ApiError::Forbidden(format!(
            "only the owner of {:?} can share it",
            entry.slug
        )));
    }
    let t = state
        .store
        .create_access_token(
            &entry.id,
            &caller.user.id,
            NewAccessToken {
                token: None,
                enabled: b.enabled.unwrap_or(true),
                cache: b.cache.unwrap_or(true),
                client_id: b.client_id,
                public_read: b.public_read,
                access_scope: b.access_scope,
                metadata_json: b.metadata_json,
            },
        )
        .await?;
    Ok(Json(token_json(&state, &t).await))
}

/// `GET /udf-access-token/self`: the caller's tokens.
pub(crate) async fn list_self(
    state: State<Arc<AppState>>,
    caller: Caller,
    page: Query<Page>,
) -> Result<Json<Value>, ApiError> {
    list(state, caller, page, false).await
}

/// `GET /udf-access-token/all`: every token for the server's owner, the caller's for others.
pub(crate) async fn list_all(
    state: State<Arc<AppState>>,
    caller: Caller,
    page: Query<Page>,
) -> Result<Json<Value>, ApiError> {
    list(state, caller, page, true).await
}

async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(page): Query<Page>,
    all: bool,
) -> Result<Json<Value>, ApiError> {
    let everyone = all && caller.user.id == state.owner.id;
    let owner = (!everyone).then_some(caller.user.id.as_str());
    let mut out = Vec::new();
    for t in state
        .store
        .access_tokens(owner)
        .await?
        .iter()
        .skip(page.skip)
        .take(page.limit.unwrap_or(300).min(300))
    {
        out.push(token_json(&state, t).await);
    }
    Ok(Json(Value::Array(out)))
}

pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = state
        .store
        .access_token(&token)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such shared token".into()))?;
    Ok(Json(token_json(&state, &t).await))
}

/// The token, when the caller may change it (its creator, or the server's owner).
async fn own(state: &AppState, caller: &Caller, token: &str) -> Result<AccessToken, ApiError> {
    let t = state
        .store
        .access_token(token)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such shared token".into()))?;
    if t.owner_id != caller.user.id && caller.user.id != state.owner.id {
        return Err(ApiError::Forbidden(
            "this token belongs to another user".into(),
        ));
    }
    Ok(t)
}

pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(token): Path<String>,
    Json(b): Json<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    own(&state, &caller, &token).await?;
    let t = state
        .store
        .update_access_token(
            &token,
            crate::store::AccessUpdate {
                enabled: b.enabled,
                cache: b.cache,
                client_id: b.client_id,
                metadata_json: b.metadata_json,
                public_read: b.public_read,
                access_scope: b.access_scope,
            },
        )
        .await?;
    state.grant_cache.invalidate(&token).await;
    Ok(Json(token_json(&state, &t).await))
}

pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    own(&state, &caller, &token).await?;
    let t = state.store.delete_access_token(&token).await?;
    state.grant_cache.invalidate(&token).await;
    Ok(Json(token_json(&state, &t).await))
}

//! `/v1/udf/…`: saved UDFs by id, by owner e-mail or handle, by team; saving and deleting.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use fused_core::UdfMeta;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::catalog::{DEFAULT_COLLECTION, Entry};
use crate::error::ApiError;
use crate::store::{SavedUdf, User};

/// Largest page of a listing.
const MAX_PAGE: usize = 300;

/// `skip` / `limit` / `udf_type` of a listing.
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    #[serde(default)]
    skip: usize,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    udf_type: Option<String>,
}

async fn owner_of(state: &AppState, e: &Entry) -> Option<User> {
    if e.owner_id == state.owner.id {
        return Some(state.owner.clone());
    }
    state.store.user_by_id(&e.owner_id).await.ok().flatten()
}

/// True when `caller` may read `e`: their own, listed publicly, or of their team (every user of
/// a server is in its one team today, as in a Fused team); the server's owner reads all.
fn visible(state: &AppState, caller: Option<&Caller>, e: &Entry, owner: Option<&User>) -> bool {
    if e.public_list {
        return true;
    }
    let Some(c) = caller else { return false };
    c.user.id == state.owner.id
        || c.user.id == e.owner_id
        || owner.is_some_and(|o| o.team == c.user.team)
}

/// The record of `e` for `caller`; 404 when there is none or the caller may not read it.
async fn record(
    state: &AppState,
    caller: Option<&Caller>,
    e: Option<Entry>,
    what: &str,
) -> Result<Json<Value>, ApiError> {
    let missing = || ApiError::NotFound(format!("no UDF {what}"));
    let e = e.ok_or_else(missing)?;
    let owner = owner_of(state, &e).await;
    if !visible(state, caller, &e, owner.as_ref()) {
        return Err(missing());
    }
    Ok(Json(e.record(owner.as_ref())))
}

pub(crate) async fn by_id(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = state.entry_by_id(&id).await?;
    record(&state, Some(&caller), e, &format!("with id {id}")).await
}

pub(crate) async fn by_email(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((email, collection, slug)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let what = format!("{email}/{slug} in collection {collection}");
    let Some(owner) = state.store.user_by_email(&email).await? else {
        return Err(ApiError::NotFound(format!("no UDF {what} (no such user)")));
    };
    let e = state.entry_by_slug(&owner, &collection, &slug).await?;
    record(&state, Some(&caller), e, &what).await
}

pub(crate) async fn by_handle(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((handle, collection, slug)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    // The SDK sends `public/<name>` here.
    if handle == "public" {
        return public_entry(&state, &collection, &slug).await;
    }
    let what = format!("{handle}/{slug} in collection {collection}");
    let Some(owner) = state.store.user_by_handle(&handle).await? else {
        return Err(ApiError::NotFound(format!("no UDF {what} (no such user)")));
    };
    let e = state.entry_by_slug(&owner, &collection, &slug).await?;
    record(&state, Some(&caller), e, &what).await
}

/// A team UDF by name: the caller's own first, then the server owner's, then a team member's.
pub(crate) async fn team_entry(
    state: &AppState,
    caller: &Caller,
    collection: &str,
    slug: &str,
) -> Result<Option<Entry>, ApiError> {
    if let Some(e) = state.entry_by_slug(&caller.user, collection, slug).await? {
        return Ok(Some(e));
    }
    if let Some(e) = state.entry_by_slug(&state.owner, collection, slug).await? {
        return Ok(Some(e));
    }
    for e in state.entries(None, false).await? {
        if e.collection == collection && e.slug == slug {
            let owner = owner_of(state, &e).await;
            if visible(state, Some(caller), &e, owner.as_ref()) {
                return Ok(Some(e));
            }
        }
    }
    Ok(None)
}

/// `team/<name>`.
pub(crate) async fn by_team(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((collection, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let found = team_entry(&state, &caller, &collection, &slug).await?;
    record(&state, Some(&caller), found, &format!("team/{slug}")).await
}

async fn public_entry(
    state: &AppState,
    collection: &str,
    slug: &str,
) -> Result<Json<Value>, ApiError> {
    let found = state
        .entries(None, true)
        .await?
        .into_iter()
        .find(|e| e.collection == collection && e.slug == slug);
    record(state, None, found, &format!("public/{slug}")).await
}

/// A public UDF by name (publicly listed ones only).
pub(crate) async fn public_by_slug(
    State(state): State<Arc<AppState>>,
    Path((collection, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    public_entry(&state, &collection, &slug).await
}

/// The UDF a shared token runs — its source, so only for callers who may read it anyway
/// (holding a token lets one run a UDF, not read it).
pub(crate) async fn by_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = state
        .store
        .access_token(&token)
        .await?
        .ok_or_else(|| ApiError::NotFound("no UDF is shared under this token".into()))?;
    let e = state.entry_by_id(&t.udf_id).await?;
    record(&state, Some(&caller), e, "for this token").await
}

async fn list(
    state: &AppState,
    caller: Option<&Caller>,
    owner: Option<&User>,
    public_only: bool,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let mut out = Vec::new();
    let mut visible_entries = Vec::new();
    for e in state.entries(owner, public_only).await? {
        let o = owner_of(state, &e).await;
        if visible(state, caller, &e, o.as_ref()) {
            visible_entries.push((e, o));
        }
    }
    for (e, o) in visible_entries
        .into_iter()
        .filter(|(e, _)| match page.udf_type.as_deref() {
            Some("app") => e.udf_type == "app",
            Some("udf") => e.udf_type != "app",
            _ => true,
        })
        .skip(page.skip)
        .take(limit)
    {
        out.push(e.record(o.as_ref()));
    }
    Ok(Json(Value::Array(out)))
}

pub(crate) async fn list_self(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    list(&state, Some(&caller), Some(&caller.user), false, page).await
}

pub(crate) async fn list_team(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    list(&state, Some(&caller), None, false, page).await
}

pub(crate) async fn list_public(
    State(state): State<Arc<AppState>>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    list(&state, None, None, true, page).await
}

/// The body of `POST /udf/new` and `POST /udf/by-id/{id}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SaveBody {
    #[serde(default)]
    slug: Option<String>,
    udf_body: Value,
    #[serde(default)]
    udf_type: Option<String>,
    #[serde(default)]
    allow_public_list: Option<bool>,
    #[serde(default)]
    collection_id: Option<String>,
}

/// The checked UDF JSON of a save request, and its name.
fn checked_body(b: &SaveBody) -> Result<(String, UdfMeta), ApiError> {
    let text = match &b.udf_body {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let mut meta = UdfMeta::from_json(&text)?;
    let slug = b
        .slug
        .clone()
        .or_else(|| meta.name.clone())
        .ok_or_else(|| ApiError::BadRequest("the UDF needs a name (slug)".into()))?;
    fused_core::udf::validate_name(&slug)?;
    if let Some(m) = meta.metadata.as_mut() {
        // The id is the record's, not the body's.
        m.remove("fused:id");
    }
    meta.name = Some(slug.clone());
    Ok((slug, meta))
}

pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<SaveBody>,
) -> Result<Json<Value>, ApiError> {
    let (slug, meta) = checked_body(&body)?;
    let collection = body
        .collection_id
        .clone()
        .unwrap_or_else(|| DEFAULT_COLLECTION.into());
    if caller.user.id == state.owner.id
        && collection == DEFAULT_COLLECTION
        && state.registry.get(&slug).is_some()
    {
        return Err(ApiError::Conflict(format!(
            "{slug:?} is a native UDF of this server; save under another name"
        )));
    }
    let saved = SavedUdf {
        id: uuid::Uuid::new_v4().to_string(),
        owner_id: caller.user.id.clone(),
        collection: collection.clone(),
        slug,
        body: meta.to_json(),
        udf_type: body.udf_type.clone().unwrap_or_else(|| "auto".into()),
        public_list: body.allow_public_list.unwrap_or(false),
        updated_at: 0,
    };
    state.store.create_udf(&saved).await?;
    Ok(Json(
        json!({ "id": saved.id, "collection_id": null, "collection_name": collection }),
    ))
}

pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<SaveBody>,
) -> Result<Json<Value>, ApiError> {
    let existing = own_saved(&state, &caller, &id).await?;
    let (slug, meta) = checked_body(&body)?;
    state.store.update_udf(&id, &slug, &meta.to_json()).await?;
    state
        .store
        .update_udf_flags(&id, body.udf_type.as_deref(), body.allow_public_list)
        .await?;
    state.grant_cache.invalidate_all();
    Ok(Json(
        json!({ "id": id, "collection_id": null, "collection_name": existing.collection }),
    ))
}

pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    own_saved(&state, &caller, &id).await?;
    state.store.delete_udf(&id).await?;
    state.grant_cache.invalidate_all();
    Ok(Json(json!({ "id": id, "deleted": true })))
}

/// A saved UDF the caller may change: their own (the server's owner may change any).
async fn own_saved(state: &AppState, caller: &Caller, id: &str) -> Result<SavedUdf, ApiError> {
    let Some(saved) = state.store.udf_by_id(id).await? else {
        if state.entry_by_id(id).await?.is_some() {
            return Err(ApiError::Forbidden(
                "native UDFs are part of the server binary and cannot be changed".into(),
            ));
        }
        return Err(ApiError::NotFound(format!("no saved UDF with id {id}")));
    };
    if saved.owner_id != caller.user.id && caller.user.id != state.owner.id {
        return Err(ApiError::Forbidden(
            "this UDF belongs to another user".into(),
        ));
    }
    Ok(saved)
}

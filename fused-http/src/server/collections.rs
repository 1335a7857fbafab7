//! `/v1/collection/…`: the named collections UDFs are saved in (the SDK checks one exists
//! before saving into it).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::catalog::DEFAULT_COLLECTION;
use crate::error::ApiError;
use crate::store::{now, rfc3339};

/// The SDK's `Collection`; the name is the id.
fn collection_json(caller: &Caller, name: &str, created: i64) -> Value {
    json!({
        "id": name,
        "name": name,
        "username": caller.user.handle,
        "access_scope": "team",
        "last_updated": rfc3339(created),
        "allow_public_read": false,
    })
}

pub(crate) async fn by_name(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let created = match state.store.collection(&caller.user.id, &name).await? {
        Some(t) => t,
        None if name == DEFAULT_COLLECTION => now(),
        None => return Err(ApiError::NotFound(format!("no collection named {name:?}"))),
    };
    Ok(Json(collection_json(&caller, &name, created)))
}

/// The body of `POST /collection/new`.
#[derive(Debug, Deserialize)]
pub(crate) struct NewCollection {
    name: String,
}

pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(b): Json<NewCollection>,
) -> Result<Json<Value>, ApiError> {
    fused_core::udf::validate_name(&b.name)?;
    let created = state
        .store
        .ensure_collection(&caller.user.id, &b.name)
        .await?;
    Ok(Json(collection_json(&caller, &b.name, created)))
}

//! Who am I, which realtime instance to use, and the owner's bootstrap token.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use crate::error::Error;
use crate::store::generate_api_token;

/// The realtime instance id this server answers to (any id works in URLs).
pub(crate) const CLIENT_ID: &str = "local";

/// `GET /v1/user/self`.
pub(crate) async fn whoami(State(_state): State<Arc<AppState>>, caller: Caller) -> Json<Value> {
    let u = &caller.user;
    Json(json!({
        "id": u.id,
        "email": u.email,
        "handle": u.handle,
        "name": u.name,
        "team": u.team,
        "execution_environment_id": u.team,
        "is_connected_to_airtable": false,
        "is_connected_to_gdrive": false,
        "is_connected_to_notion": false,
        "is_connected_to_hubspot": false,
        "is_connected_to_dropbox": false,
        "is_connected_to_onedrive": false,
    }))
}

/// `GET /v1/realtime-instance/available`.
pub(crate) async fn instances() -> Json<Value> {
    Json(json!([{ "client_id": CLIENT_ID, "preference_rank": 0 }]))
}

/// `GET /v1/execution-env/self`: the team.
pub(crate) async fn team(caller: Caller) -> Json<Value> {
    Json(json!({ "id": caller.user.team, "name": caller.user.team }))
}

/// `GET /v1/execution-env/token`: the token the caller authenticates with (what
/// `fused.api.auth_token()` returns).
pub(crate) async fn team_token(caller: Caller) -> Json<Value> {
    Json(Value::String(caller.token))
}

/// Where the owner's token comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `FUSED_SERVER_TOKEN`.
    Environment,
    /// `owner.token` in the data folder, from an earlier start.
    DataFolder,
    /// Made now (and kept in the data folder).
    Generated,
}

/// The owner's API token: `env` (the value of `FUSED_SERVER_TOKEN`) when set, else the one
/// kept in `dir/owner.token`, else a new random one written there (readable by the owner only).
pub fn owner_token(dir: &Path, env: Option<&str>) -> Result<(String, TokenSource), Error> {
    if let Some(t) = env.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok((t.to_owned(), TokenSource::Environment));
    }
    let io = |context: String| move |source| Error::Io { context, source };
    let path = dir.join("owner.token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok((t.trim().to_owned(), TokenSource::DataFolder)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::Io {
                context: format!("reading {}", path.display()),
                source: e,
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let t = generate_api_token();
    super::secret::write_private(&path, t.as_bytes())
        .map_err(io(format!("writing {}", path.display())))?;
    Ok((t, TokenSource::Generated))
}

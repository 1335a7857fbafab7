//! Who is calling: API tokens in `Authorization`, in every scheme the SDK sends.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::AppState;
use crate::error::ApiError;
use crate::store::{User, secret_hash};

/// Schemes the SDK puts before a token: OAuth credentials (`Bearer`) and the
/// `FUSED_AUTH_TOKEN_TYPE` values.
const SCHEMES: &[&str] = &[
    "bearer",
    "fused-env-bearer",
    "fused-rtenv-bearer",
    "fused-service-token",
];

/// An authenticated caller; extracting it answers 401 without a valid token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: User,
    /// The token presented (to hand back from `/execution-env/token`).
    pub(crate) token: String,
}

/// The token of an `Authorization` header, whatever the SDK's scheme.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let scheme = scheme.to_ascii_lowercase();
    SCHEMES
        .contains(&scheme.as_str())
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl AppState {
    /// The user an API token authenticates (cached for a few seconds; a revocation through
    /// this server takes effect at once, one made elsewhere within that time).
    pub(crate) async fn user_for_token(&self, token: &str) -> Result<Option<User>, ApiError> {
        let key = secret_hash(token);
        if let Some(hit) = self.auth_cache.get(&key).await {
            return Ok(hit);
        }
        let user = self.store.user_for_api_token(token).await?;
        self.auth_cache.insert(key, user.clone()).await;
        Ok(user)
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer(&parts.headers) else {
            return Err(ApiError::Unauthorized(
                "this endpoint needs an API token: send `Authorization: Bearer <token>` \
                 (the SDK does when FUSED_AUTH_TOKEN is set)"
                    .into(),
            ));
        };
        match state.user_for_token(token).await? {
            Some(user) => Ok(Caller {
                user,
                token: token.to_owned(),
            }),
            None => Err(ApiError::Unauthorized(
                "the API token is unknown or revoked".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        let mut h = HeaderMap::new();
        for (v, want) in [
            ("Bearer abc", Some("abc")),
            ("Fused-Env-Bearer abc", Some("abc")),
            ("fused-service-token  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
        ] {
            h.insert("authorization", v.parse().unwrap());
            assert_eq!(bearer(&h), want, "{v}");
        }
    }
}

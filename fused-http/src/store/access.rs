//! Shared (access) tokens: capabilities that run exactly one UDF.

use serde_json::Value;
use sqlx::Row;

use super::{Store, StoreError, StoreResult, now, secret_hash};

/// A shared token.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessToken {
    /// The token (`fsh_…`).
    pub token: String,
    /// The UDF it runs.
    pub udf_id: String,
    /// The user who made it.
    pub owner_id: String,
    /// Runs are refused when false.
    pub enabled: bool,
    /// Responses may be cached.
    pub cache: bool,
    /// Realtime instance it targets.
    pub client_id: Option<String>,
    /// Public read flag (kept for the SDK).
    pub public_read: Option<bool>,
    /// Access scope (kept for the SDK).
    pub access_scope: Option<String>,
    /// Free-form metadata served with tiles.
    pub metadata_json: Option<Value>,
    /// Last change (epoch seconds).
    pub last_updated: i64,
}

/// What a new token carries besides its UDF.
#[derive(Debug, Clone, Default)]
pub struct NewAccessToken {
    /// The token text; random when `None`.
    pub token: Option<String>,
    /// Enabled at once.
    pub enabled: bool,
    /// Cache responses.
    pub cache: bool,
    /// Realtime instance.
    pub client_id: Option<String>,
    /// Public read flag.
    pub public_read: Option<bool>,
    /// Access scope.
    pub access_scope: Option<String>,
    /// Metadata.
    pub metadata_json: Option<Value>,
}

/// Changes to a shared token (`None` leaves a field as it is).
#[derive(Debug, Clone, Default)]
pub struct AccessUpdate {
    /// Enabled.
    pub enabled: Option<bool>,
    /// Cache responses.
    pub cache: Option<bool>,
    /// Realtime instance.
    pub client_id: Option<String>,
    /// Metadata.
    pub metadata_json: Option<Value>,
    /// Public read flag.
    pub public_read: Option<bool>,
    /// Access scope.
    pub access_scope: Option<String>,
}

/// A new random shared token: `fsh_` and 40 hex digits (160 bits).
pub fn generate_access_token() -> String {
    format!("fsh_{}", hex::encode(rand::random::<[u8; 20]>()))
}

fn access_of(row: &sqlx::sqlite::SqliteRow) -> AccessToken {
    let meta: Option<String> = row.get("metadata_json");
    AccessToken {
        token: row.get("token"),
        udf_id: row.get("udf_id"),
        owner_id: row.get("owner_id"),
        enabled: row.get::<i64, _>("enabled") != 0,
        cache: row.get::<i64, _>("cache") != 0,
        client_id: row.get("client_id"),
        public_read: row.get::<Option<i64>, _>("public_read").map(|v| v != 0),
        access_scope: row.get("access_scope"),
        metadata_json: meta.and_then(|m| serde_json::from_str(&m).ok()),
        last_updated: row.get("last_updated"),
    }
}

impl Store {
    /// Creates a shared token for `udf_id`. A token text that was ever used (even deleted) is
    /// refused, so a revoked token cannot come back.
    pub async fn create_access_token(
        &self,
        udf_id: &str,
        owner_id: &str,
        new: NewAccessToken,
    ) -> StoreResult<AccessToken> {
        let token = new.token.unwrap_or_else(generate_access_token);
        let r = sqlx::query(
            "INSERT INTO access_tokens (hash, token, udf_id, owner_id, enabled, cache, client_id, \
             public_read, access_scope, metadata_json, last_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(secret_hash(&token))
        .bind(&token)
        .bind(udf_id)
        .bind(owner_id)
        .bind(i64::from(new.enabled))
        .bind(i64::from(new.cache))
        .bind(&new.client_id)
        .bind(new.public_read.map(i64::from))
        .bind(&new.access_scope)
        .bind(new.metadata_json.as_ref().map(Value::to_string))
        .bind(now())
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Conflict("that token already exists".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.access_token(&token)
            .await?
            .ok_or_else(|| StoreError::NotFound("token vanished".into()))
    }

    /// A live (not deleted) shared token.
    pub async fn access_token(&self, token: &str) -> StoreResult<Option<AccessToken>> {
        let row = sqlx::query("SELECT * FROM access_tokens WHERE hash = ? AND deleted = 0")
            .bind(secret_hash(token))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(access_of))
    }

    /// True when this token text was ever issued (deleted ones included).
    pub async fn access_token_exists(&self, token: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 FROM access_tokens WHERE hash = ?")
            .bind(secret_hash(token))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Live shared tokens: one user's, or all.
    pub async fn access_tokens(&self, owner_id: Option<&str>) -> StoreResult<Vec<AccessToken>> {
        let rows = sqlx::query(
            "SELECT * FROM access_tokens WHERE deleted = 0 AND (? IS NULL OR owner_id = ?) \
             ORDER BY last_updated DESC, token",
        )
        .bind(owner_id)
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(access_of).collect())
    }

    /// Updates the flags of a live token (`None` leaves a field as it is).
    pub async fn update_access_token(
        &self,
        token: &str,
        u: AccessUpdate,
    ) -> StoreResult<AccessToken> {
        let done = sqlx::query(
            "UPDATE access_tokens SET enabled = COALESCE(?, enabled), cache = COALESCE(?, cache), \
             client_id = COALESCE(?, client_id), metadata_json = COALESCE(?, metadata_json), \
             public_read = COALESCE(?, public_read), access_scope = COALESCE(?, access_scope), \
             last_updated = ? WHERE hash = ? AND deleted = 0",
        )
        .bind(u.enabled.map(i64::from))
        .bind(u.cache.map(i64::from))
        .bind(u.client_id)
        .bind(u.metadata_json.as_ref().map(Value::to_string))
        .bind(u.public_read.map(i64::from))
        .bind(u.access_scope)
        .bind(now())
        .bind(secret_hash(token))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("no such shared token".into()));
        }
        self.access_token(token)
            .await?
            .ok_or_else(|| StoreError::NotFound("no such shared token".into()))
    }

    /// Revokes (deletes) a shared token; returns it as it was.
    pub async fn delete_access_token(&self, token: &str) -> StoreResult<AccessToken> {
        let t = self
            .access_token(token)
            .await?
            .ok_or_else(|| StoreError::NotFound("no such shared token".into()))?;
        sqlx::query(
            "UPDATE access_tokens SET deleted = 1, enabled = 0, last_updated = ? WHERE hash = ?",
        )
        .bind(now())
        .bind(secret_hash(token))
        .execute(&self.pool)
        .await?;
        Ok(AccessToken {
            enabled: false,
            ..t
        })
    }
}

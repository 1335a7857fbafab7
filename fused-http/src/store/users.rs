//! Users and their API tokens.

use sqlx::Row;

use super::{Store, StoreError, StoreResult, now, secret_hash};

/// A user of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id (a UUID).
    pub id: String,
    /// E-mail: the SDK's identity for `email/name` lookups.
    pub email: String,
    /// Handle, for `handle/name` lookups.
    pub handle: String,
    /// Display name.
    pub name: String,
    /// Team (execution environment) name.
    pub team: String,
}

/// An API token as listed (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Id, for revocation.
    pub id: String,
    /// The user it authenticates.
    pub user_email: String,
    /// A label given at creation.
    pub label: String,
    /// The first characters of the token, to recognize it.
    pub hint: String,
    /// Creation time (epoch seconds).
    pub created_at: i64,
    /// Revocation time, when revoked.
    pub revoked_at: Option<i64>,
}

/// A new random API token: `fsk_` and 48 hex digits (192 bits).
pub fn generate_api_token() -> String {
    format!("fsk_{}", hex::encode(rand::random::<[u8; 24]>()))
}

fn user_of(row: &sqlx::sqlite::SqliteRow) -> User {
    User {
        id: row.get("id"),
        email: row.get("email"),
        handle: row.get("handle"),
        name: row.get("name"),
        team: row.get("team"),
    }
}

impl Store {
    /// The user with this e-mail, created (handle from the e-mail's local part) if missing.
    pub async fn ensure_user(&self, email: &str, name: Option<&str>) -> StoreResult<User> {
        if let Some(u) = self.user_by_email(email).await? {
            return Ok(u);
        }
        let local = email.split('@').next().unwrap_or(email);
        let mut handle: String = local
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        // `public/…` and `team/…` mean something else in UDF references.
        if handle.is_empty() || matches!(handle.as_str(), "public" | "team") {
            handle = format!("{handle}user");
        }
        if self.user_by_handle(&handle).await?.is_some() {
            handle = format!(
                "{handle}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..6]
            );
        }
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            email: email.to_owned(),
            handle,
            name: name.unwrap_or(local).to_owned(),
            team: "local".into(),
        };
        sqlx::query(
            "INSERT INTO users (id, email, handle, name, team, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.handle)
        .bind(&user.name)
        .bind(&user.team)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(user)
    }

    /// The user with this e-mail.
    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_of))
    }

    /// The user with this handle.
    pub async fn user_by_handle(&self, handle: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE handle = ?")
            .bind(handle)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_of))
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_of))
    }

    /// Registers `secret` as an API token of `user` (a no-op when it already is); refused when
    /// it belongs to another user or was revoked.
    pub async fn add_api_token(
        &self,
        user: &User,
        secret: &str,
        label: &str,
    ) -> StoreResult<ApiToken> {
        let hash = secret_hash(secret);
        let hint: String = secret.chars().take(8).collect();
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO api_tokens (id, hash, user_id, label, hint, created_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&id)
        .bind(&hash)
        .bind(&user.id)
        .bind(label)
        .bind(&hint)
        .bind(now())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(
            "SELECT t.*, u.email FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?",
        )
        .bind(&hash)
        .fetch_one(&self.pool)
        .await?;
        let token = token_of(&row);
        if token.user_email != user.email {
            return Err(StoreError::Conflict(
                "this token already belongs to another user".into(),
            ));
        }
        if token.revoked_at.is_some() {
            return Err(StoreError::Conflict("this token was revoked".into()));
        }
        Ok(token)
    }

    /// The user an API token authenticates, unless it is unknown or revoked.
    pub async fn user_for_api_token(&self, secret: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT u.* FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.hash = ? AND t.revoked_at IS NULL",
        )
        .bind(secret_hash(secret))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_of))
    }

    /// Every API token (revoked ones included), newest first.
    pub async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT t.*, u.email FROM api_tokens t JOIN users u ON u.id = t.user_id \
             ORDER BY t.created_at DESC, t.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(token_of).collect())
    }

    /// Revokes the API token with this id, or whose secret is `id_or_secret`.
    pub async fn revoke_api_token(&self, id_or_secret: &str) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = ? WHERE (id = ? OR hash = ?) AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(id_or_secret)
        .bind(secret_hash(id_or_secret))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(
                "no active API token with that id".into(),
            ));
        }
        Ok(())
    }
}

fn token_of(row: &sqlx::sqlite::SqliteRow) -> ApiToken {
    ApiToken {
        id: row.get("id"),
        user_email: row.get("email"),
        label: row.get("label"),
        hint: row.get("hint"),
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
    }
}

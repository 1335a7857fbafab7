//! Saved UDFs: UDF JSON by owner, collection and slug.

use sqlx::Row;

use super::{Store, StoreError, StoreResult, now};

/// A saved UDF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedUdf {
    /// Id (a UUID).
    pub id: String,
    /// Owner's user id.
    pub owner_id: String,
    /// Collection name (`default` unless given).
    pub collection: String,
    /// Name within the collection.
    pub slug: String,
    /// The UDF JSON.
    pub body: String,
    /// `auto` or `app`.
    pub udf_type: String,
    /// Listed in `/udf/public`.
    pub public_list: bool,
    /// Last change (epoch seconds).
    pub updated_at: i64,
}

fn saved_of(row: &sqlx::sqlite::SqliteRow) -> SavedUdf {
    SavedUdf {
        id: row.get("id"),
        owner_id: row.get("owner_id"),
        collection: row.get("collection"),
        slug: row.get("slug"),
        body: row.get("body"),
        udf_type: row.get("udf_type"),
        public_list: row.get::<i64, _>("public_list") != 0,
        updated_at: row.get("updated_at"),
    }
}

impl Store {
    /// Saves a new UDF; [`StoreError::Conflict`] when the owner has one by that name.
    pub async fn create_udf(&self, udf: &SavedUdf) -> StoreResult<()> {
        let r = sqlx::query(
            "INSERT INTO udfs (id, owner_id, collection, slug, body, udf_type, public_list, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&udf.id)
        .bind(&udf.owner_id)
        .bind(&udf.collection)
        .bind(&udf.slug)
        .bind(&udf.body)
        .bind(&udf.udf_type)
        .bind(i64::from(udf.public_list))
        .bind(now())
        .bind(now())
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!(
                    "a UDF named {:?} already exists in collection {:?}",
                    udf.slug, udf.collection
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the body (and slug) of a saved UDF.
    pub async fn update_udf(&self, id: &str, slug: &str, body: &str) -> StoreResult<()> {
        let r = sqlx::query("UPDATE udfs SET slug = ?, body = ?, updated_at = ? WHERE id = ?")
            .bind(slug)
            .bind(body)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await;
        match r {
            Ok(done) if done.rows_affected() == 0 => {
                Err(StoreError::NotFound(format!("no saved UDF with id {id}")))
            }
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
                format!("a UDF named {slug:?} already exists"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// A saved UDF by id.
    pub async fn udf_by_id(&self, id: &str) -> StoreResult<Option<SavedUdf>> {
        let row = sqlx::query("SELECT * FROM udfs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(saved_of))
    }

    /// A saved UDF by owner, collection and slug.
    pub async fn udf_by_slug(
        &self,
        owner_id: &str,
        collection: &str,
        slug: &str,
    ) -> StoreResult<Option<SavedUdf>> {
        let row =
            sqlx::query("SELECT * FROM udfs WHERE owner_id = ? AND collection = ? AND slug = ?")
                .bind(owner_id)
                .bind(collection)
                .bind(slug)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(saved_of))
    }

    /// Saved UDFs, by name: one owner's (`Some`), or everybody's; optionally only listed ones.
    pub async fn list_udfs(
        &self,
        owner_id: Option<&str>,
        public_only: bool,
    ) -> StoreResult<Vec<SavedUdf>> {
        let rows = sqlx::query(
            "SELECT * FROM udfs WHERE (? IS NULL OR owner_id = ?) AND (? = 0 OR public_list = 1) \
             ORDER BY collection, slug, id",
        )
        .bind(owner_id)
        .bind(owner_id)
        .bind(i64::from(public_only))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(saved_of).collect())
    }

    /// Creates a collection of `owner_id` (a no-op when it exists); returns its creation time.
    pub async fn ensure_collection(&self, owner_id: &str, name: &str) -> StoreResult<i64> {
        sqlx::query(
            "INSERT INTO collections (owner_id, name, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (owner_id, name) DO NOTHING",
        )
        .bind(owner_id)
        .bind(name)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(self.collection(owner_id, name).await?.unwrap_or_else(now))
    }

    /// When a collection of `owner_id` was created; it exists when it was created explicitly
    /// or holds a saved UDF.
    pub async fn collection(&self, owner_id: &str, name: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT created_at FROM collections WHERE owner_id = ? AND name = ? \
             UNION ALL SELECT MIN(created_at) FROM udfs WHERE owner_id = ? AND collection = ? \
             AND created_at IS NOT NULL LIMIT 1",
        )
        .bind(owner_id)
        .bind(name)
        .bind(owner_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| r.get::<Option<i64>, _>(0)))
    }

    /// Updates a saved UDF's type and listing flag.
    pub async fn update_udf_flags(
        &self,
        id: &str,
        udf_type: Option<&str>,
        public_list: Option<bool>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE udfs SET udf_type = COALESCE(?, udf_type), \
             public_list = COALESCE(?, public_list) WHERE id = ?",
        )
        .bind(udf_type)
        .bind(public_list.map(i64::from))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a saved UDF (its shared tokens stop working).
    pub async fn delete_udf(&self, id: &str) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM udfs WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no saved UDF with id {id}")));
        }
        sqlx::query("UPDATE access_tokens SET deleted = 1, enabled = 0 WHERE udf_id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

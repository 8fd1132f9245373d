//! Organisation API keys: publishable (`pk_…`) and secret (`sk_…`), stored as digests.

use sqlx::FromRow;

use super::{new_id, now_ms, Db};

#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub prefix: String,
    pub last4: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "id, org_id, kind, prefix, last4, created_at, last_used_at, expires_at";

impl Db {
    /// The live key with this digest (not past its rotation grace period).
    pub async fn api_key_by_digest(&self, digest: &str) -> sqlx::Result<Option<ApiKeyRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 \
             AND (expires_at IS NULL OR expires_at > $2)"
        ))
        .bind(digest)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn api_keys_of_org(&self, org_id: &str) -> sqlx::Result<Vec<ApiKeyRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 \
             AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at DESC"
        ))
        .bind(org_id)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await
    }

    /// Stores a new key of `kind`; keys of that kind still live expire after `grace_ms`.
    pub async fn rotate_api_key(
        &self,
        org_id: &str,
        kind: &str,
        prefix: &str,
        last4: &str,
        digest: &str,
        grace_ms: i64,
    ) -> sqlx::Result<ApiKeyRow> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Live keys of this kind stay valid for the grace period, never longer than they had.
        sqlx::query(
            "UPDATE api_keys SET expires_at = $3 WHERE org_id = $1 AND kind = $2 \
             AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(org_id)
        .bind(kind)
        .bind(now + grace_ms)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query_as(&format!(
            "INSERT INTO api_keys (id, org_id, kind, prefix, last4, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(org_id)
        .bind(kind)
        .bind(prefix)
        .bind(last4)
        .bind(digest)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn touch_api_key(&self, id: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

//! The marketplace catalogue: packs of content by an organisation's creators, and who may use them.

use sqlx::FromRow;

use super::query::{bind_all, Arg, Filter};
use super::{now_ms, Db, PageCursor};

#[derive(Debug, Clone, FromRow)]
pub struct PackRow {
    pub id: String,
    pub org_id: String,
    pub creator_id: String,
    pub creator_name: Option<String>,
    pub title: String,
    pub description: String,
    pub tags: String,
    pub price_type: String,
    pub price_cents: i64,
    pub currency: String,
    pub subscription_interval: Option<String>,
    pub status: String,
    pub published_at: Option<i64>,
    pub item_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const PACK_SELECT: &str = "SELECT p.id, p.org_id, p.creator_id, u.display_name AS creator_name, p.title, \
     p.description, p.tags, p.price_type, p.price_cents, p.currency, p.subscription_interval, p.status, \
     p.published_at, (SELECT COUNT(*) FROM pack_items i WHERE i.pack_id = p.id) AS item_count, \
     p.created_at, p.updated_at FROM packs p LEFT JOIN users u ON u.id = p.creator_id";

pub struct NewPack<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub creator_id: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub tags: &'a str,
    pub price_type: &'a str,
    pub price_cents: i64,
    pub currency: &'a str,
    pub subscription_interval: Option<&'a str>,
    pub content_ids: &'a [String],
}

#[derive(Debug, Default)]
pub struct PackQuery<'a> {
    pub search: Option<&'a str>,
    pub tags: &'a [String],
    pub creator_id: Option<&'a str>,
    pub price_type: Option<&'a str>,
}

#[derive(Debug, Clone, FromRow)]
pub struct PackItemRow {
    pub id: String,
    pub title: String,
    pub content_type: String,
    pub duration_minutes: Option<i64>,
}

fn like_pattern(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl Db {
    /// Creates a draft pack of the creator's own content; false when an item is not theirs.
    pub async fn create_pack(&self, pack: NewPack<'_>) -> sqlx::Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO packs (id, org_id, creator_id, title, description, tags, price_type, price_cents, \
             currency, subscription_interval, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'draft', $11, $11)",
        )
        .bind(pack.id)
        .bind(pack.org_id)
        .bind(pack.creator_id)
        .bind(pack.title)
        .bind(pack.description)
        .bind(pack.tags)
        .bind(pack.price_type)
        .bind(pack.price_cents)
        .bind(pack.currency)
        .bind(pack.subscription_interval)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (position, content_id) in pack.content_ids.iter().enumerate() {
            let added = sqlx::query(
                "INSERT INTO pack_items (pack_id, content_id, position) \
                 SELECT $1, id, $3 FROM content_items WHERE id = $2 AND user_id = $4 AND deleted_at IS NULL \
                 ON CONFLICT (pack_id, content_id) DO NOTHING",
            )
            .bind(pack.id)
            .bind(content_id)
            .bind(position as i64)
            .bind(pack.creator_id)
            .execute(&mut *tx)
            .await?;
            if added.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn pack(&self, id: &str) -> sqlx::Result<Option<PackRow>> {
        sqlx::query_as(&format!("{PACK_SELECT} WHERE p.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn publish_pack(&self, id: &str) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE packs SET status = 'published', published_at = COALESCE(published_at, $2), updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Published packs of one organisation.
    pub async fn list_packs(
        &self,
        org_id: &str,
        query: &PackQuery<'_>,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<PackRow>> {
        let mut filter = Filter::new();
        filter.eq("p.org_id", Arg::Text(org_id.to_string()));
        filter.clause("p.status = 'published'");
        if let Some(search) = query.search.filter(|s| !s.is_empty()) {
            let p = filter.arg(Arg::Text(like_pattern(search)));
            filter.clause(format!(
                "(LOWER(p.title) LIKE {p} ESCAPE '\\' OR LOWER(p.description) LIKE {p} ESCAPE '\\')"
            ));
        }
        for tag in query.tags {
            let quoted = serde_json::Value::String(tag.clone()).to_string();
            let p = filter.arg(Arg::Text(like_pattern(&quoted)));
            filter.clause(format!("LOWER(p.tags) LIKE {p} ESCAPE '\\'"));
        }
        if let Some(c) = query.creator_id {
            filter.eq("p.creator_id", Arg::Text(c.to_string()));
        }
        if let Some(t) = query.price_type {
            filter.eq("p.price_type", Arg::Text(t.to_string()));
        }
        if let Some((at, id)) = cursor {
            let at = filter.arg(Arg::Int(*at));
            let id = filter.arg(Arg::Text(id.clone()));
            filter.clause(format!(
                "(p.created_at < {at} OR (p.created_at = {at} AND p.id < {id}))"
            ));
        }
        let sql = format!(
            "{PACK_SELECT}{} ORDER BY p.created_at DESC, p.id DESC LIMIT {}",
            filter.sql(),
            limit + 1
        );
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }

    /// Published packs of an organisation the user cannot use yet (recommendation candidates).
    pub async fn packs_without_access(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> sqlx::Result<Vec<PackRow>> {
        sqlx::query_as(&format!(
            "{PACK_SELECT} WHERE p.org_id = $1 AND p.status = 'published' AND p.creator_id <> $2 \
             AND NOT EXISTS (SELECT 1 FROM pack_access a WHERE a.pack_id = p.id AND a.user_id = $2 \
             AND a.revoked_at IS NULL) ORDER BY p.created_at DESC LIMIT 200"
        ))
        .bind(org_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn pack_items(&self, pack_id: &str) -> sqlx::Result<Vec<PackItemRow>> {
        sqlx::query_as(
            "SELECT c.id, c.title, c.content_type, c.duration_minutes FROM pack_items i \
             JOIN content_items c ON c.id = i.content_id \
             WHERE i.pack_id = $1 AND c.deleted_at IS NULL ORDER BY i.position",
        )
        .bind(pack_id)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn has_pack_access(&self, user_id: &str, pack_id: &str) -> sqlx::Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM pack_access WHERE user_id = $1 AND pack_id = $2 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(pack_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Grants (or restores) access to a pack.
    pub async fn grant_pack_access(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user_id: &str,
        pack_id: &str,
        source: &str,
        reference: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO pack_access (user_id, pack_id, source, reference, granted_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id, pack_id) DO UPDATE SET source = $3, reference = $4, granted_at = $5, revoked_at = NULL",
        )
        .bind(user_id)
        .bind(pack_id)
        .bind(source)
        .bind(reference)
        .bind(now_ms())
        .execute(&mut **tx)
        .await
        .map(|_| ())
    }

    /// Revokes access granted by `reference` (a refunded checkout, an ended subscription) only,
    /// so a later, separate purchase of the same pack is not taken away.
    pub async fn revoke_pack_access(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user_id: &str,
        pack_id: &str,
        reference: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE pack_access SET revoked_at = $4 WHERE user_id = $1 AND pack_id = $2 AND reference = $3 \
             AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(pack_id)
        .bind(reference)
        .bind(now_ms())
        .execute(&mut **tx)
        .await
        .map(|_| ())
    }
}

//! Content items: the rituals, guided meditations and affirmations users own.

use sqlx::FromRow;

use super::{now_ms, Db};

#[derive(Debug, Clone, FromRow)]
pub struct ContentRow {
    pub id: String,
    pub org_id: String,
    pub user_id: Option<String>,
    pub content_type: String,
    pub title: String,
    pub body: String,
    pub depth: Option<String>,
    pub duration_minutes: Option<i64>,
    pub time_preference: Option<String>,
    pub intent: Option<String>,
    pub tags: String,
    pub source_session_id: Option<String>,
    pub generated_by: Option<String>,
    pub play_count: i64,
    pub last_played_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// `pending`, `ready`, `unavailable` or `failed`; absent for items without audio.
    pub audio_status: Option<String>,
    pub audio_key: Option<String>,
}

pub const CONTENT_COLUMNS: &str = "id, org_id, user_id, content_type, title, body, depth, \
     duration_minutes, time_preference, intent, tags, source_session_id, generated_by, play_count, \
     last_played_at, created_at, updated_at, audio_status, audio_key";

pub struct NewContent<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub user_id: &'a str,
    pub content_type: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub depth: Option<&'a str>,
    pub duration_minutes: Option<i64>,
    pub time_preference: Option<&'a str>,
    pub intent: Option<&'a str>,
    pub tags: &'a str,
    pub source_session_id: Option<&'a str>,
    pub generated_by: &'a str,
}

impl Db {
    pub async fn insert_content(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        item: NewContent<'_>,
    ) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO content_items (id, org_id, user_id, content_type, title, body, depth, \
             duration_minutes, time_preference, intent, tags, source_session_id, generated_by, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
        )
        .bind(item.id)
        .bind(item.org_id)
        .bind(item.user_id)
        .bind(item.content_type)
        .bind(item.title)
        .bind(item.body)
        .bind(item.depth)
        .bind(item.duration_minutes)
        .bind(item.time_preference)
        .bind(item.intent)
        .bind(item.tags)
        .bind(item.source_session_id)
        .bind(item.generated_by)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map(|_| ())
    }

    /// A live content item owned by `user_id`.
    pub async fn content_of_user(
        &self,
        id: &str,
        user_id: &str,
    ) -> sqlx::Result<Option<ContentRow>> {
        sqlx::query_as(&format!(
            "SELECT {CONTENT_COLUMNS} FROM content_items WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
    }
}

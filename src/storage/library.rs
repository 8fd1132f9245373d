//! The content library: listing a user's content (their own and that of packs they may use),
//! practice events, and the audio of each item with its durable synthesis jobs.

use sqlx::FromRow;

use super::content::{ContentRow, CONTENT_COLUMNS};
use super::query::{bind_all, Arg, Filter};
use super::{new_id, now_ms, Db, PageCursor};

/// Content a user may read: their own, and items of packs they hold access to.
const VISIBLE_TO: &str = "(user_id = {me} OR id IN (SELECT pi.content_id FROM pack_items pi \
     JOIN pack_access pa ON pa.pack_id = pi.pack_id \
     WHERE pa.user_id = {me} AND pa.revoked_at IS NULL))";

#[derive(Debug, Default)]
pub struct ContentQuery<'a> {
    pub content_type: Option<&'a str>,
    pub depth: Option<&'a str>,
    /// Items carrying every one of these tags.
    pub tags: &'a [String],
}

#[derive(Debug, Clone, FromRow)]
pub struct PracticeRow {
    pub id: String,
    pub content_id: String,
    pub content_title: String,
    pub content_type: String,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub duration_seconds: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    Completed,
    AlreadyCompleted,
    NotFound,
}

/// `LIKE` pattern matching one tag inside a JSON array stored as text.
fn tag_pattern(tag: &str) -> String {
    let quoted = serde_json::Value::String(tag.to_string()).to_string();
    let escaped = quoted
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl Db {
    /// A live content item the user may read.
    pub async fn visible_content(
        &self,
        id: &str,
        user_id: &str,
    ) -> sqlx::Result<Option<ContentRow>> {
        let visible = VISIBLE_TO.replace("{me}", "$2");
        sqlx::query_as(&format!(
            "SELECT {CONTENT_COLUMNS} FROM content_items WHERE id = $1 AND deleted_at IS NULL AND {visible}"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn list_content(
        &self,
        user_id: &str,
        query: &ContentQuery<'_>,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<ContentRow>> {
        let mut filter = Filter::new();
        let me = filter.arg(Arg::Text(user_id.to_string()));
        filter.clause(VISIBLE_TO.replace("{me}", &me));
        filter.clause("deleted_at IS NULL");
        if let Some(t) = query.content_type {
            filter.eq("content_type", Arg::Text(t.to_string()));
        }
        if let Some(d) = query.depth {
            filter.eq("depth", Arg::Text(d.to_string()));
        }
        for tag in query.tags {
            let p = filter.arg(Arg::Text(tag_pattern(tag)));
            filter.clause(format!("tags LIKE {p} ESCAPE '\\'"));
        }
        filter.before(cursor);
        let sql = format!(
            "SELECT {CONTENT_COLUMNS} FROM content_items{} ORDER BY created_at DESC, id DESC LIMIT {}",
            filter.sql(),
            limit + 1
        );
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }

    /// Soft-deletes the user's own item; true when it existed.
    pub async fn delete_content(&self, id: &str, user_id: &str) -> sqlx::Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE content_items SET deleted_at = $3, updated_at = $3 \
             WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(user_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the start of a practice and counts the play, in one transaction.
    pub async fn start_practice(
        &self,
        content_id: &str,
        user_id: &str,
        started_at: i64,
    ) -> sqlx::Result<String> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO practice_events (id, user_id, content_id, started_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(content_id)
        .bind(started_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE content_items SET play_count = play_count + 1, last_played_at = $2 WHERE id = $1",
        )
        .bind(content_id)
        .bind(started_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn complete_practice(
        &self,
        event_id: &str,
        content_id: &str,
        user_id: &str,
        completed_at: i64,
        duration_seconds: Option<i64>,
    ) -> sqlx::Result<Completion> {
        let done = sqlx::query(
            "UPDATE practice_events SET completed_at = $4, \
             duration_seconds = COALESCE($5, ($4 - started_at) / 1000) \
             WHERE id = $1 AND content_id = $2 AND user_id = $3 AND completed_at IS NULL",
        )
        .bind(event_id)
        .bind(content_id)
        .bind(user_id)
        .bind(completed_at)
        .bind(duration_seconds)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Completion::Completed);
        }
        let exists: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM practice_events WHERE id = $1 AND content_id = $2 AND user_id = $3",
        )
        .bind(event_id)
        .bind(content_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(if exists.is_some() {
            Completion::AlreadyCompleted
        } else {
            Completion::NotFound
        })
    }

    pub async fn practice_history(
        &self,
        user_id: &str,
        content_id: Option<&str>,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<PracticeRow>> {
        let mut filter = Filter::new();
        filter.eq("p.user_id", Arg::Text(user_id.to_string()));
        if let Some(c) = content_id {
            filter.eq("p.content_id", Arg::Text(c.to_string()));
        }
        if let Some((at, id)) = cursor {
            let at = filter.arg(Arg::Int(*at));
            let id = filter.arg(Arg::Text(id.clone()));
            filter.clause(format!(
                "(p.created_at < {at} OR (p.created_at = {at} AND p.id < {id}))"
            ));
        }
        let sql = format!(
            "SELECT p.id, p.content_id, c.title AS content_title, c.content_type, p.started_at, \
             p.completed_at, p.duration_seconds, p.created_at \
             FROM practice_events p JOIN content_items c ON c.id = p.content_id{} \
             ORDER BY p.created_at DESC, p.id DESC LIMIT {}",
            filter.sql(),
            limit + 1
        );
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }

    /// Tags of the content a user has practised, one entry per practice (for recommendations).
    pub async fn practised_tags(&self, user_id: &str) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT c.tags FROM practice_events p JOIN content_items c ON c.id = p.content_id \
             WHERE p.user_id = $1 ORDER BY p.created_at DESC LIMIT 200",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .flat_map(|(tags,)| serde_json::from_str::<Vec<String>>(&tags).unwrap_or_default())
            .collect())
    }

    /// Queues audio synthesis for freshly saved content, inside the transaction that saves it.
    pub async fn enqueue_audio_job(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        content_id: &str,
    ) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query("UPDATE content_items SET audio_status = 'pending' WHERE id = $1")
            .bind(content_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO audio_jobs (content_id, status, run_after, created_at, updated_at) \
             VALUES ($1, 'queued', $2, $2, $2) ON CONFLICT (content_id) DO NOTHING",
        )
        .bind(content_id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map(|_| ())
    }

    /// Claims due audio jobs (and, at start-up, those a stopped process left running).
    pub async fn claim_audio_jobs(
        &self,
        limit: i64,
        include_running: bool,
    ) -> sqlx::Result<Vec<(String, i64)>> {
        let now = now_ms();
        let statuses = if include_running {
            "('queued', 'running')"
        } else {
            "('queued')"
        };
        let due: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT content_id FROM audio_jobs WHERE status IN {statuses} AND run_after <= $1 \
             ORDER BY run_after LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for (content_id,) in due {
            // Only one claimer wins each job, across processes.
            let row: Option<(i64,)> = sqlx::query_as(&format!(
                "UPDATE audio_jobs SET status = 'running', attempts = attempts + 1, updated_at = $2 \
                 WHERE content_id = $1 AND status IN {statuses} RETURNING attempts"
            ))
            .bind(&content_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            if let Some((attempts,)) = row {
                claimed.push((content_id, attempts));
            }
        }
        Ok(claimed)
    }

    /// Finishes an audio job and records the item's audio state in one transaction.
    pub async fn finish_audio_job(
        &self,
        content_id: &str,
        audio_status: &str,
        audio_key: Option<&str>,
        error: Option<&str>,
    ) -> sqlx::Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let job_status = if audio_status == "failed" {
            "failed"
        } else {
            "done"
        };
        sqlx::query(
            "UPDATE audio_jobs SET status = $2, error = $3, updated_at = $4 WHERE content_id = $1",
        )
        .bind(content_id)
        .bind(job_status)
        .bind(error)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE content_items SET audio_status = $2, audio_key = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(content_id)
        .bind(audio_status)
        .bind(audio_key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    pub async fn retry_audio_job_later(
        &self,
        content_id: &str,
        error: &str,
        delay_ms: i64,
    ) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE audio_jobs SET status = 'queued', error = $2, run_after = $3, updated_at = $4 WHERE content_id = $1",
        )
        .bind(content_id)
        .bind(error)
        .bind(now + delay_ms)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::tag_pattern;

    #[test]
    fn tag_patterns_match_whole_json_strings_and_escape_wildcards() {
        assert_eq!(tag_pattern("evening"), "%\"evening\"%");
        assert_eq!(tag_pattern("50%_off"), "%\"50\\%\\_off\"%");
    }
}

//! Chat-widget sessions: visitor session tokens, the transcript with each answer's sources,
//! feedback, and the per-organisation counts behind its analytics.

use sqlx::FromRow;

use super::{new_id, now_ms, Db, PageCursor};

#[derive(Debug, Clone, FromRow)]
pub struct ChatSessionRow {
    pub session_id: String,
    pub org_id: String,
    pub token_expires_at: i64,
    pub closed_at: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub struct ChatMessageRow {
    pub id: String,
    pub role: String,
    pub content: String,
    /// JSON `[{kb_id, title, position}]`.
    pub citations: String,
    pub grounded: Option<i64>,
    pub in_reply_to: Option<String>,
    pub created_at: i64,
}

pub struct NewChatMessage<'a> {
    pub id: &'a str,
    pub session_id: &'a str,
    pub org_id: &'a str,
    pub role: &'a str,
    pub content: &'a str,
    pub citations: &'a str,
    pub grounded: Option<bool>,
    pub in_reply_to: Option<&'a str>,
}

pub struct NewChatSession<'a> {
    pub session_id: &'a str,
    pub org_id: &'a str,
    pub api_key_id: &'a str,
    pub token_digest: &'a str,
    pub token_expires_at: i64,
    pub visitor_id: Option<&'a str>,
    pub greeting_id: &'a str,
    pub greeting: &'a str,
}

/// Whether a rating was new or replaced an earlier one of the same target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackWrite {
    Created,
    Replaced,
}

#[derive(Debug, Clone, FromRow)]
pub struct FeedbackRow {
    pub id: String,
    pub target: String,
    pub rating: i64,
    pub comment: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an organisation's chat widget did since a point in time.
#[derive(Debug, Default)]
pub struct ChatCounts {
    pub sessions: i64,
    pub closed_sessions: i64,
    pub user_messages: i64,
    pub assistant_messages: i64,
    pub answered: i64,
    pub fallback: i64,
    pub feedback_up: i64,
    pub feedback_down: i64,
    /// `(hour of day UTC, visitor messages)`, busiest first.
    pub busiest_hours: Vec<(i64, i64)>,
    /// `(question, times asked, last asked ms)` answered with the fallback, most asked first.
    pub unanswered: Vec<(String, i64, i64)>,
}

const MESSAGE_COLUMNS: &str = "id, role, content, citations, grounded, in_reply_to, created_at";

impl Db {
    /// Creates the hub session, its token and the greeting in one transaction.
    pub async fn insert_chat_session(&self, new: NewChatSession<'_>) -> sqlx::Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO conversation_sessions (id, kind, org_id, user_id, content_type, state, \
             checkpoint, last_seq, created_at, updated_at) \
             VALUES ($1, 'chat', $2, NULL, NULL, 'Open', '{}', 0, $3, $3)",
        )
        .bind(new.session_id)
        .bind(new.org_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO chat_sessions (session_id, org_id, api_key_id, token_digest, \
             token_expires_at, visitor_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new.session_id)
        .bind(new.org_id)
        .bind(new.api_key_id)
        .bind(new.token_digest)
        .bind(new.token_expires_at)
        .bind(new.visitor_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO chat_messages (id, session_id, org_id, role, content, citations, grounded, \
             in_reply_to, created_at) VALUES ($1, $2, $3, 'assistant', $4, '[]', NULL, NULL, $5)",
        )
        .bind(new.greeting_id)
        .bind(new.session_id)
        .bind(new.org_id)
        .bind(new.greeting)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The chat session a token was issued for (expired or not: the caller tells them apart).
    pub async fn chat_session_by_token(
        &self,
        digest: &str,
    ) -> sqlx::Result<Option<ChatSessionRow>> {
        sqlx::query_as(
            "SELECT c.session_id, c.org_id, c.token_expires_at, s.closed_at \
             FROM chat_sessions c JOIN conversation_sessions s ON s.id = c.session_id \
             WHERE c.token_digest = $1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
    }

    /// Slides a token's expiry forward while it is in use.
    pub async fn extend_chat_token(&self, session_id: &str, until: i64) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE chat_sessions SET token_expires_at = $2 \
             WHERE session_id = $1 AND token_expires_at < $2",
        )
        .bind(session_id)
        .bind(until)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Marks a session closed; the first close wins. Returns when it was closed.
    pub async fn close_chat_session(&self, session_id: &str) -> sqlx::Result<i64> {
        sqlx::query(
            "UPDATE conversation_sessions SET closed_at = $2, state = 'Closed' \
             WHERE id = $1 AND closed_at IS NULL",
        )
        .bind(session_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        let (closed_at,): (Option<i64>,) =
            sqlx::query_as("SELECT closed_at FROM conversation_sessions WHERE id = $1")
                .bind(session_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(closed_at.unwrap_or_else(now_ms))
    }

    pub async fn insert_chat_message(&self, message: NewChatMessage<'_>) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO chat_messages (id, session_id, org_id, role, content, citations, grounded, \
             in_reply_to, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(message.id)
        .bind(message.session_id)
        .bind(message.org_id)
        .bind(message.role)
        .bind(message.content)
        .bind(message.citations)
        .bind(message.grounded.map(i64::from))
        .bind(message.in_reply_to)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// One page of a session's transcript, newest first.
    pub async fn chat_messages_page(
        &self,
        session_id: &str,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<ChatMessageRow>> {
        use super::query::{bind_all, Arg, Filter};
        let mut filter = Filter::new();
        filter.eq("session_id", Arg::Text(session_id.to_string()));
        filter.before(cursor);
        let limit = filter.arg(Arg::Int(i64::from(limit) + 1));
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages{} \
             ORDER BY created_at DESC, id DESC LIMIT {limit}",
            filter.sql()
        );
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }

    /// The latest `limit` messages, oldest first: the history an answer is given.
    pub async fn recent_chat_messages(
        &self,
        session_id: &str,
        limit: u32,
    ) -> sqlx::Result<Vec<ChatMessageRow>> {
        let mut rows: Vec<ChatMessageRow> = sqlx::query_as(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE session_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(session_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.reverse();
        Ok(rows)
    }

    /// The session's first message (its greeting).
    pub async fn chat_greeting(&self, session_id: &str) -> sqlx::Result<Option<ChatMessageRow>> {
        sqlx::query_as(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE session_id = $1 \
             ORDER BY created_at, id LIMIT 1"
        ))
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn chat_message_role(
        &self,
        session_id: &str,
        message_id: &str,
    ) -> sqlx::Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT role FROM chat_messages WHERE session_id = $1 AND id = $2")
                .bind(session_id)
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(role,)| role))
    }

    /// Records a rating of a message (or, with target `""`, of the whole session).
    pub async fn upsert_chat_feedback(
        &self,
        session_id: &str,
        org_id: &str,
        target: &str,
        rating: i64,
        comment: Option<&str>,
    ) -> sqlx::Result<(FeedbackRow, FeedbackWrite)> {
        let now = now_ms();
        let existed: Option<(String,)> =
            sqlx::query_as("SELECT id FROM chat_feedback WHERE session_id = $1 AND target = $2")
                .bind(session_id)
                .bind(target)
                .fetch_optional(&self.pool)
                .await?;
        sqlx::query(
            "INSERT INTO chat_feedback (id, session_id, org_id, target, rating, comment, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (session_id, target) DO UPDATE SET rating = excluded.rating, \
             comment = excluded.comment, updated_at = excluded.updated_at",
        )
        .bind(new_id())
        .bind(session_id)
        .bind(org_id)
        .bind(target)
        .bind(rating)
        .bind(comment)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let row: FeedbackRow = sqlx::query_as(
            "SELECT id, target, rating, comment, created_at, updated_at FROM chat_feedback \
             WHERE session_id = $1 AND target = $2",
        )
        .bind(session_id)
        .bind(target)
        .fetch_one(&self.pool)
        .await?;
        let write = if existed.is_some() {
            FeedbackWrite::Replaced
        } else {
            FeedbackWrite::Created
        };
        Ok((row, write))
    }

    /// The organisation's chat activity since `since` (ms).
    pub async fn chat_counts(&self, org_id: &str, since: i64) -> sqlx::Result<ChatCounts> {
        let (sessions, closed_sessions): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(s.closed_at) FROM chat_sessions c \
             JOIN conversation_sessions s ON s.id = c.session_id \
             WHERE c.org_id = $1 AND c.created_at >= $2",
        )
        .bind(org_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        // The greeting (no `in_reply_to`) is not an answer.
        let (user_messages, assistant_messages, answered, fallback): (i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT \
                   COALESCE(SUM(CASE WHEN role = 'user' THEN 1 ELSE 0 END), 0), \
                   COALESCE(SUM(CASE WHEN role = 'assistant' AND in_reply_to IS NOT NULL THEN 1 ELSE 0 END), 0), \
                   COALESCE(SUM(CASE WHEN role = 'assistant' AND grounded = 1 THEN 1 ELSE 0 END), 0), \
                   COALESCE(SUM(CASE WHEN role = 'assistant' AND grounded = 0 THEN 1 ELSE 0 END), 0) \
                 FROM chat_messages WHERE org_id = $1 AND created_at >= $2",
            )
            .bind(org_id)
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        let (feedback_up, feedback_down): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN rating > 0 THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN rating < 0 THEN 1 ELSE 0 END), 0) \
             FROM chat_feedback WHERE org_id = $1 AND updated_at >= $2",
        )
        .bind(org_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        // Integer division on BIGINT milliseconds gives the UTC hour in both dialects.
        let busiest_hours = sqlx::query_as(
            "SELECT (created_at / 3600000) % 24 AS hour, COUNT(*) AS n FROM chat_messages \
             WHERE org_id = $1 AND role = 'user' AND created_at >= $2 \
             GROUP BY (created_at / 3600000) % 24 ORDER BY n DESC, hour LIMIT 24",
        )
        .bind(org_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let unanswered = sqlx::query_as(
            "SELECT MAX(u.content), COUNT(*) AS n, MAX(u.created_at) FROM chat_messages a \
             JOIN chat_messages u ON u.id = a.in_reply_to \
             WHERE a.org_id = $1 AND a.role = 'assistant' AND a.grounded = 0 AND a.created_at >= $2 \
             GROUP BY LOWER(TRIM(u.content)) ORDER BY n DESC, MAX(u.created_at) DESC LIMIT 10",
        )
        .bind(org_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(ChatCounts {
            sessions,
            closed_sessions,
            user_messages,
            assistant_messages,
            answered,
            fallback,
            feedback_up,
            feedback_down,
            busiest_hours,
            unanswered,
        })
    }
}

/// A chat session as its organisation lists it.
#[derive(Debug, Clone, FromRow)]
pub struct OrgChatSessionRow {
    pub session_id: String,
    pub visitor_id: Option<String>,
    pub created_at: i64,
    pub closed_at: Option<i64>,
    pub messages: i64,
}

/// A rating with what was rated: the answer and the question it answered (absent for a rating of
/// the whole session).
#[derive(Debug, Clone, FromRow)]
pub struct OrgFeedbackRow {
    pub id: String,
    pub session_id: String,
    pub target: String,
    pub rating: i64,
    pub comment: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub answer: Option<String>,
    pub question: Option<String>,
}

impl Db {
    /// The organisation's chat sessions, newest first.
    pub async fn org_chat_sessions_page(
        &self,
        org_id: &str,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<OrgChatSessionRow>> {
        // Without a cursor every row is before "the end of time".
        let (at, id) = cursor.cloned().unwrap_or((i64::MAX, String::new()));
        sqlx::query_as(
            "SELECT c.session_id, c.visitor_id, c.created_at, s.closed_at, \
               (SELECT COUNT(*) FROM chat_messages m WHERE m.session_id = c.session_id) AS messages \
             FROM chat_sessions c JOIN conversation_sessions s ON s.id = c.session_id \
             WHERE c.org_id = $1 AND (c.created_at < $2 OR (c.created_at = $2 AND c.session_id < $3)) \
             ORDER BY c.created_at DESC, c.session_id DESC LIMIT $4",
        )
        .bind(org_id)
        .bind(at)
        .bind(id)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
    }

    /// Whether a chat session belongs to the organisation.
    pub async fn org_has_chat_session(&self, org_id: &str, session_id: &str) -> sqlx::Result<bool> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT session_id FROM chat_sessions WHERE org_id = $1 AND session_id = $2",
        )
        .bind(org_id)
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The organisation's feedback, newest first, optionally only `rating` (1 or -1).
    pub async fn org_chat_feedback_page(
        &self,
        org_id: &str,
        rating: Option<i64>,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<OrgFeedbackRow>> {
        // Without a cursor every row is before "the end of time".
        let (at, id) = cursor.cloned().unwrap_or((i64::MAX, String::new()));
        sqlx::query_as(
            "SELECT f.id, f.session_id, f.target, f.rating, f.comment, f.created_at, f.updated_at, \
               a.content AS answer, u.content AS question \
             FROM chat_feedback f \
             LEFT JOIN chat_messages a ON a.id = f.target AND a.session_id = f.session_id \
             LEFT JOIN chat_messages u ON u.id = a.in_reply_to \
             WHERE f.org_id = $1 AND ($2 = 0 OR f.rating = $2) \
               AND (f.created_at < $3 OR (f.created_at = $3 AND f.id < $4)) \
             ORDER BY f.created_at DESC, f.id DESC LIMIT $5",
        )
        .bind(org_id)
        .bind(rating.unwrap_or(0))
        .bind(at)
        .bind(id)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
    }
}

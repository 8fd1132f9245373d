//! Live sessions: their checkpoints, numbered frames and processed client message ids.

use sqlx::FromRow;

use super::{now_ms, Db};

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub kind: String,
    pub org_id: String,
    pub user_id: Option<String>,
    pub content_type: Option<String>,
    pub state: String,
    pub checkpoint: String,
    pub last_seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
}

const COLUMNS: &str = "id, kind, org_id, user_id, content_type, state, checkpoint, last_seq, \
                       created_at, updated_at, closed_at";

/// One numbered frame on its way to storage.
#[derive(Debug, Clone)]
pub struct FrameRecord {
    pub session_id: std::sync::Arc<str>,
    pub seq: i64,
    pub frame: std::sync::Arc<str>,
    /// Announce the frame to other nodes following the session (PostgreSQL `NOTIFY` on commit).
    pub announce: bool,
}

pub struct NewSession<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub org_id: &'a str,
    pub user_id: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub state: &'a str,
    pub checkpoint: &'a str,
}

impl Db {
    pub async fn insert_session(&self, session: NewSession<'_>) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO conversation_sessions (id, kind, org_id, user_id, content_type, state, \
             checkpoint, last_seq, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8)",
        )
        .bind(session.id)
        .bind(session.kind)
        .bind(session.org_id)
        .bind(session.user_id)
        .bind(session.content_type)
        .bind(session.state)
        .bind(session.checkpoint)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub async fn session(&self, id: &str) -> sqlx::Result<Option<SessionRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM conversation_sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Saves the state machine and the highest frame number after a turn.
    pub async fn checkpoint_session(
        &self,
        id: &str,
        state: &str,
        checkpoint: &str,
        last_seq: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE conversation_sessions SET state = $2, checkpoint = $3, last_seq = $4, updated_at = $5 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(checkpoint)
        .bind(last_seq)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Appends frames in one transaction (several sessions at once: group commit).
    pub async fn append_frames(&self, frames: &[FrameRecord]) -> sqlx::Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Few rows per statement keeps well inside every backend's bind-parameter limit.
        for chunk in frames.chunks(100) {
            let mut sql = String::from(
                "INSERT INTO session_frames (session_id, seq, frame, created_at) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                let b = i * 3;
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    chunk.len() * 3 + 1
                ));
            }
            sql.push_str(" ON CONFLICT (session_id, seq) DO NOTHING");
            let mut query = sqlx::query(&sql);
            for frame in chunk {
                query = query
                    .bind(frame.session_id.to_string())
                    .bind(frame.seq)
                    .bind(frame.frame.to_string());
            }
            query.bind(now).execute(&mut *tx).await?;
        }
        if self.backend == super::Backend::Postgres {
            // Delivered on commit, so a node told "up to seq N" finds every frame up to N stored.
            let mut highest: Vec<(&str, i64)> = Vec::new();
            for frame in frames.iter().filter(|f| f.announce) {
                match highest.iter_mut().find(|(id, _)| *id == &*frame.session_id) {
                    Some(entry) => entry.1 = entry.1.max(frame.seq),
                    None => highest.push((&frame.session_id, frame.seq)),
                }
            }
            for (session_id, seq) in highest {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(super::cluster::FRAMES_CHANNEL)
                    .bind(format!("{session_id} {seq}"))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await
    }

    /// Frames with `after < seq <= upto`, in order.
    pub async fn frames_between(
        &self,
        session_id: &str,
        after: i64,
        upto: i64,
    ) -> sqlx::Result<Vec<(i64, String)>> {
        sqlx::query_as(
            "SELECT seq, frame FROM session_frames WHERE session_id = $1 AND seq > $2 AND seq <= $3 \
             ORDER BY seq",
        )
        .bind(session_id)
        .bind(after)
        .bind(upto)
        .fetch_all(&self.pool)
        .await
    }

    /// The highest stored frame number (0 when none).
    pub async fn highest_frame(&self, session_id: &str) -> sqlx::Result<i64> {
        let row: (Option<i64>,) =
            sqlx::query_as("SELECT MAX(seq) FROM session_frames WHERE session_id = $1")
                .bind(session_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.0.unwrap_or(0))
    }

    /// Drops frames outside the retained window.
    pub async fn trim_frames(&self, session_id: &str, keep_from: i64) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM session_frames WHERE session_id = $1 AND seq < $2")
            .bind(session_id)
            .bind(keep_from)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn client_message_seen(&self, session_id: &str, id: &str) -> sqlx::Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM session_client_messages WHERE session_id = $1 AND client_message_id = $2",
        )
        .bind(session_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Records a client message id; false when it was already recorded.
    pub async fn record_client_message(&self, session_id: &str, id: &str) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "INSERT INTO session_client_messages (session_id, client_message_id, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (session_id, client_message_id) DO NOTHING",
        )
        .bind(session_id)
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Db {
    /// Takes or renews the right to run a session's actor on `node` until `until` (ms). Fails while
    /// another node holds an unexpired lease.
    pub async fn acquire_session_lease(
        &self,
        id: &str,
        node: &str,
        until: i64,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE conversation_sessions SET lease_node = $2, lease_until = $3 \
             WHERE id = $1 AND (lease_node IS NULL OR lease_node = $2 OR lease_until < $4)",
        )
        .bind(id)
        .bind(node)
        .bind(until)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release_session_lease(&self, id: &str, node: &str) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE conversation_sessions SET lease_node = NULL, lease_until = 0 \
             WHERE id = $1 AND lease_node = $2",
        )
        .bind(id)
        .bind(node)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}

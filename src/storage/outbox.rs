//! The email outbox: messages are stored in the same database as the change that caused them and
//! delivered later by the mailer, so none is lost when the sender is down.

use super::{new_id, now_ms, Db};

pub struct OutgoingEmail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// What kind of message: `verify_email`, `password_reset`, `invitation`…
    pub kind: &'a str,
}

impl Db {
    pub async fn enqueue_email(&self, email: OutgoingEmail<'_>) -> sqlx::Result<String> {
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO email_outbox (id, to_address, subject, body, kind, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(email.to)
        .bind(email.subject)
        .bind(email.body)
        .bind(email.kind)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: String,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub kind: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
}

impl Db {
    /// Messages due for a (first or further) delivery attempt, oldest first.
    pub async fn due_emails(&self, max_attempts: i64, limit: i64) -> sqlx::Result<Vec<OutboxRow>> {
        sqlx::query_as(
            "SELECT id, to_address, subject, body, kind, attempts, next_attempt_at, created_at \
             FROM email_outbox WHERE sent_at IS NULL AND attempts < $1 AND next_attempt_at <= $2 \
             ORDER BY next_attempt_at, id LIMIT $3",
        )
        .bind(max_attempts)
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Leases a due message until `lease_until`, so that of several workers (nodes) only one sends
    /// it; false when another worker got there first.
    pub async fn claim_email(
        &self,
        id: &str,
        seen_next_attempt_at: i64,
        lease_until: i64,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE email_outbox SET next_attempt_at = $3 \
             WHERE id = $1 AND next_attempt_at = $2 AND sent_at IS NULL",
        )
        .bind(id)
        .bind(seen_next_attempt_at)
        .bind(lease_until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn mark_email_sent(&self, id: &str) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE email_outbox SET sent_at = $2, attempts = attempts + 1, last_error = NULL \
             WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub async fn mark_email_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE email_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(next_attempt_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}

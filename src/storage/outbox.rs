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

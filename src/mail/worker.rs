//! The delivery worker: polls the outbox, leases each due message, sends it, and on failure retries
//! with exponential backoff until it gives up after [`MAX_ATTEMPTS`].

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Envelope, Sender};
use crate::auth::mask_email;
use crate::storage::outbox::OutboxRow;
use crate::storage::{now_ms, Db};

pub const MAX_ATTEMPTS: i64 = 8;
/// How long a claimed message is hidden from other workers while it is being sent.
const LEASE_MS: i64 = 5 * 60 * 1000;
const BATCH: i64 = 20;

/// Delay before the attempt after `failures` failed ones: 30 s doubling, at most an hour.
pub fn backoff(failures: i64) -> Duration {
    let secs = 30u64 << failures.clamp(0, 7);
    Duration::from_secs(secs.min(3600))
}

/// Drains the outbox every `poll` until `shutdown` is cancelled.
pub async fn run(db: Db, sender: Arc<dyn Sender>, poll: Duration, shutdown: CancellationToken) {
    tracing::info!(sender = sender.name(), "mail worker started");
    loop {
        if let Err(error) = drain_once(&db, sender.as_ref()).await {
            tracing::warn!(%error, "mail worker could not read the outbox");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(poll) => {}
        }
    }
    tracing::info!("mail worker stopped");
}

/// One pass over the due messages; returns how many were delivered.
pub async fn drain_once(db: &Db, sender: &dyn Sender) -> anyhow::Result<usize> {
    let mut delivered = 0;
    for row in db.due_emails(MAX_ATTEMPTS, BATCH).await? {
        if !db
            .claim_email(&row.id, row.next_attempt_at, now_ms() + LEASE_MS)
            .await?
        {
            continue;
        }
        let envelope = envelope(&row);
        match sender.send(&envelope).await {
            Ok(()) => {
                db.mark_email_sent(&row.id).await?;
                delivered += 1;
                tracing::info!(
                    email_id = %row.id,
                    kind = %row.kind,
                    to = %mask_email(&row.to_address),
                    sender = sender.name(),
                    "email delivered"
                );
            }
            Err(error) => {
                let wait = backoff(row.attempts);
                let next = now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                db.mark_email_failed(&row.id, &format!("{error:#}"), next)
                    .await?;
                let attempts = row.attempts + 1;
                if attempts >= MAX_ATTEMPTS {
                    tracing::error!(email_id = %row.id, kind = %row.kind, %attempts, error = %format!("{error:#}"), "email undeliverable: giving up");
                } else {
                    tracing::warn!(email_id = %row.id, kind = %row.kind, %attempts, retry_in = ?wait, error = %format!("{error:#}"), "email delivery failed; will retry");
                }
            }
        }
    }
    Ok(delivered)
}

fn envelope(row: &OutboxRow) -> Envelope {
    Envelope {
        id: row.id.clone(),
        to: row.to_address.clone(),
        subject: row.subject.clone(),
        body: row.body.clone(),
        created_at: row.created_at,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::storage::outbox::OutgoingEmail;

    /// Fails the first `failures` sends, then succeeds.
    struct Flaky {
        failures: usize,
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Sender for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn send(&self, _message: &Envelope) -> anyhow::Result<()> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.failures {
                anyhow::bail!("relay unavailable")
            }
            Ok(())
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_secs(30));
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(20), Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn failed_deliveries_are_retried_later_then_sent() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("mail.db").display());
        let db = Db::connect(&url, 2).await.unwrap();
        db.migrate().await.unwrap();
        let id = db
            .enqueue_email(OutgoingEmail {
                to: "someone@example.com",
                subject: "Hello",
                body: "Body",
                kind: "test",
            })
            .await
            .unwrap();
        let sender = Flaky {
            failures: 1,
            calls: AtomicUsize::new(0),
        };
        assert_eq!(drain_once(&db, &sender).await.unwrap(), 0);
        // Backed off: not due again straight away.
        assert_eq!(drain_once(&db, &sender).await.unwrap(), 0);
        assert_eq!(sender.calls.load(Ordering::SeqCst), 1);
        sqlx::query("UPDATE email_outbox SET next_attempt_at = 0 WHERE id = $1")
            .bind(&id)
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(drain_once(&db, &sender).await.unwrap(), 1);
        let (attempts, sent): (i64, Option<i64>) =
            sqlx::query_as("SELECT attempts, sent_at FROM email_outbox WHERE id = $1")
                .bind(&id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(attempts, 2);
        assert!(sent.is_some());
        assert_eq!(drain_once(&db, &sender).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_mailbox_sender_writes_eml_files() {
        let dir = tempfile::tempdir().unwrap();
        let sender = crate::mail::mailbox::MailboxSender::new(
            dir.path().join("mailbox"),
            crate::config::DEFAULT_MAIL_FROM,
        );
        let message = Envelope {
            id: "01".into(),
            to: "someone@example.com".into(),
            subject: "Réinitialiser".into(),
            body: "Token: abc\n".into(),
            created_at: 5,
        };
        sender.send(&message).await.unwrap();
        let text = std::fs::read_to_string(sender.path_of(&message)).unwrap();
        assert!(text.contains("To: someone@example.com"));
        assert!(text.contains("Token: abc"));
    }
}

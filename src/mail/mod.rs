//! Outgoing mail. Messages are written to the durable `email_outbox` by whatever caused them; the
//! worker here drains it through a pluggable [`Sender`]: an SMTP relay when one is configured,
//! otherwise `.eml` files in a local mailbox directory.

pub mod mailbox;
pub mod smtp;
pub mod worker;

use std::sync::Arc;

use anyhow::Context;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;

use crate::config::Settings;

/// One message to deliver.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
}

/// Delivers a message or says why it could not.
#[async_trait::async_trait]
pub trait Sender: Send + Sync {
    /// For logs: `smtp` or `mailbox`.
    fn name(&self) -> &'static str;
    async fn send(&self, message: &Envelope) -> anyhow::Result<()>;
}

/// Builds the RFC 5322 message (headers encoded, plain-text UTF-8 body).
pub fn render(from: &str, message: &Envelope) -> anyhow::Result<lettre::Message> {
    let from: Mailbox = from.parse().context("parsing the sender address")?;
    let to: Mailbox = message
        .to
        .parse()
        .context("parsing the recipient address")?;
    lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(message.subject.clone())
        .message_id(Some(format!("<{}@rapport>", message.id)))
        .header(ContentType::TEXT_PLAIN)
        .body(message.body.clone())
        .context("building the message")
}

/// The sender the settings ask for.
pub fn sender_from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn Sender>> {
    use secrecy::ExposeSecret;
    Ok(match &settings.smtp_url {
        Some(url) => Arc::new(smtp::SmtpSender::new(
            url.expose_secret(),
            &settings.mail_from,
        )?),
        None => Arc::new(mailbox::MailboxSender::new(
            settings.mailbox_dir(),
            &settings.mail_from,
        )),
    })
}

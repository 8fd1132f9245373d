//! Delivery through an SMTP relay (STARTTLS or implicit TLS as the URL says, rustls).

use anyhow::Context;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{render, Envelope, Sender};

pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
}

impl SmtpSender {
    /// `url` is `smtp://host:port`, `smtp://host?tls=required` or `smtps://user:pass@host`.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        // The URL may carry credentials: never include it in the error.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| {
                anyhow::anyhow!("RAPPORT_SMTP_URL is not a valid smtp:// or smtps:// URL")
            })?
            .timeout(Some(std::time::Duration::from_secs(30)))
            .build();
        render(
            from,
            &Envelope {
                id: "check".into(),
                to: "check@example.com".into(),
                subject: String::new(),
                body: String::new(),
                created_at: 0,
            },
        )
        .context("RAPPORT_MAIL_FROM is not a valid address")?;
        Ok(Self {
            transport,
            from: from.to_string(),
        })
    }
}

#[async_trait::async_trait]
impl Sender for SmtpSender {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, message: &Envelope) -> anyhow::Result<()> {
        let email = render(&self.from, message)?;
        self.transport
            .send(email)
            .await
            .context("the SMTP relay refused the message")?;
        Ok(())
    }
}

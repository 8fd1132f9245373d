//! The development sender: every message becomes an `.eml` file in a directory, readable with any
//! mail client or a text editor.

use std::path::PathBuf;

use anyhow::Context;

use super::{render, Envelope, Sender};

pub struct MailboxSender {
    dir: PathBuf,
    from: String,
}

impl MailboxSender {
    pub fn new(dir: PathBuf, from: &str) -> Self {
        Self {
            dir,
            from: from.to_string(),
        }
    }

    /// The file a message is written to: ordered by creation, named without personal data.
    pub fn path_of(&self, message: &Envelope) -> PathBuf {
        self.dir
            .join(format!("{}-{}.eml", message.created_at, message.id))
    }
}

#[async_trait::async_trait]
impl Sender for MailboxSender {
    fn name(&self) -> &'static str {
        "mailbox"
    }

    async fn send(&self, message: &Envelope) -> anyhow::Result<()> {
        let bytes = render(&self.from, message)?.formatted();
        tokio::fs::create_dir_all(&self.dir)
            .await
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.path_of(message);
        // Written aside then renamed, so a reader never sees half a message.
        let partial = path.with_extension("eml.partial");
        tokio::fs::write(&partial, &bytes)
            .await
            .with_context(|| format!("writing {}", partial.display()))?;
        tokio::fs::rename(&partial, &path)
            .await
            .with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }
}

//! Audio for content: text-to-speech providers, where the audio is kept, and the signed,
//! expiring URLs it is served through. Knows nothing of HTTP routes or the hub.

pub mod espeak;
pub mod openai;
pub mod signing;
pub mod store;
pub mod worker;

use async_trait::async_trait;

pub use signing::UrlSigner;
pub use store::{LocalStore, MediaStore};

/// Synthesised speech.
#[derive(Debug, Clone)]
pub struct Audio {
    pub bytes: Vec<u8>,
    /// File extension of the format, e.g. `wav` or `mp3`.
    pub extension: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// Worth retrying later (network, 5xx, 429).
    #[error("text-to-speech temporarily failed: {0}")]
    Transient(String),
    #[error("text-to-speech failed: {0}")]
    Permanent(String),
}

/// A text-to-speech provider.
#[async_trait]
pub trait TextToSpeech: Send + Sync {
    /// A short name for logs and API answers.
    fn id(&self) -> &str;
    async fn synthesize(&self, text: &str) -> Result<Audio, TtsError>;
}

/// The content type of a stored media key, by extension.
pub fn content_type_of(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("ogg") | Some("opus") => "audio/ogg",
        Some("aac") => "audio/aac",
        Some("flac") => "audio/flac",
        _ => "application/octet-stream",
    }
}

/// Text as it should be read aloud: markup and the offline provider's label removed.
pub fn speakable(text: &str) -> String {
    text.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .map(|l| {
            l.strip_prefix(crate::llm::OFFLINE_LABEL)
                .unwrap_or(l)
                .trim()
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

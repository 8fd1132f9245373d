//! Text embedders: the offline built-in one and an OpenAI-compatible client.

mod builtin;
mod features;
mod openai;

pub use builtin::{HashEmbedder, DEFAULT_DIMENSION};
pub use openai::{OpenAiEmbedder, OpenAiEmbedderConfig};

use async_trait::async_trait;

/// Turns texts into vectors. Vectors are L2-normalised, so the dot product
/// of two of them is their cosine similarity; an empty text maps to the zero
/// vector.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Identifies the model; vectors from different ids must not be compared.
    fn model_id(&self) -> &str;
    /// Length of every vector returned.
    fn dimension(&self) -> usize;
    /// One vector per text, in input order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("invalid embedder configuration: {0}")]
    Config(String),
    #[error("embedding service unreachable: {0}")]
    Transport(String),
    #[error("embedding service answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error(
        "model {model} returned {got}-dimensional vectors but {expected} are configured; \
         fix the configured dimension (existing vectors must be re-embedded)"
    )]
    DimensionMismatch {
        model: String,
        expected: usize,
        got: usize,
    },
    #[error("invalid embedding response: {0}")]
    InvalidResponse(String),
}

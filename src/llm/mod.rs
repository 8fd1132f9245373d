//! Language-model providers.
//!
//! Every provider implements [`ChatProvider`]: it takes a [`ChatRequest`] and streams
//! [`StreamEvent`]s back. Two providers ship with the server:
//!
//! * [`OfflineProvider`] (the default): no network, deterministic, and every text it
//!   writes is labelled with [`OFFLINE_LABEL`] so nobody mistakes it for model output.
//! * [`OpenAiProvider`]: any OpenAI-compatible `/chat/completions` endpoint
//!   (OpenAI, vLLM, Ollama, llama.cpp server).
//!
//! [`ScriptedProvider`] plays back a fixed script and exists for tests of other layers.
//!
//! Stream contract, shared by all providers:
//! * zero or more `Delta`s and `Usage`s, then exactly one `Done`, then the stream ends;
//! * or an `Err(_)` as the last item, after which the stream ends;
//! * when `cancel` fires, the stream yields `Err(LlmError::Cancelled)` (after any items
//!   already received) and ends;
//! * cancelling or dropping the stream releases the upstream connection at once, whether
//!   or not the stream is being polled.

mod backoff;
mod error;
mod offline;
mod offline_text;
mod openai;
mod openai_stream;
mod openai_wire;
mod outcome;
mod purpose;
mod scripted;
mod sse;

#[cfg(test)]
mod mock_upstream;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use error::{LlmError, TimeoutPhase};
pub use offline::{OfflineProvider, OFFLINE_LABEL};
pub use openai::{OpenAiConfig, OpenAiProvider};
pub use purpose::{Passage, Purpose, Slot};
pub use scripted::{Script, ScriptStep, ScriptedProvider};

/// The events of one streamed completion; see the module docs for the ordering contract.
pub type TokenStream = BoxStream<'static, Result<StreamEvent, LlmError>>;

/// A source of chat completions.
#[async_trait]
pub trait ChatProvider: Send + Sync + 'static {
    /// Stable identifier of the provider kind, e.g. `"offline"`, `"openai-compatible"`.
    fn id(&self) -> &str;

    /// The model used when a request does not override it.
    fn model(&self) -> &str;

    /// True when the text comes from templates rather than a language model.
    fn is_offline(&self) -> bool;

    /// Starts a completion. Resolves once the upstream has accepted the request
    /// (retries, if any, happen before this returns); tokens then arrive on the stream.
    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<TokenStream, LlmError>;

    /// Cheap status for `/health`; never performs network I/O.
    async fn health(&self) -> ProviderHealth;
}

/// One item of a completion stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A piece of generated text; never empty.
    Delta(String),
    /// Token accounting. May arrive more than once; the last one wins.
    Usage(Usage),
    /// The completion finished normally; always the last event.
    Done { finish_reason: Option<String> },
}

/// Token accounting as reported by the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

/// Author of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Everything a provider needs for one completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Overrides the provider's configured model for this request.
    pub model: Option<String>,
    /// Ask the model for a single JSON object (`response_format: json_object`).
    pub response_format_json: bool,
    /// What the text is for; model providers ignore it, the offline provider relies on it.
    pub purpose: Purpose,
}

impl ChatRequest {
    /// A request with provider defaults for everything but the messages and purpose.
    pub fn new(messages: Vec<ChatMessage>, purpose: Purpose) -> Self {
        Self {
            messages,
            temperature: None,
            max_tokens: None,
            model: None,
            response_format_json: false,
            purpose,
        }
    }
}

/// Coarse provider state for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// The last completion succeeded (or the provider needs no upstream).
    Ok,
    /// The last completion failed; the upstream may be struggling.
    Degraded,
    /// No completion attempted yet, so nothing is known.
    Unknown,
}

/// Provider status as shown by `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderHealth {
    pub provider: String,
    pub model: String,
    pub offline: bool,
    pub status: HealthStatus,
    /// Stable error code of the last failure, if the last completion failed.
    pub last_error: Option<String>,
    /// Seconds since the last completed or failed attempt.
    pub last_outcome_age_secs: Option<u64>,
}

/// A finished completion, gathered from a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
}

/// Drains a stream into one [`Completion`], e.g. for JSON extraction.
pub async fn collect_completion(mut stream: TokenStream) -> Result<Completion, LlmError> {
    let mut completion = Completion::default();
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta(text) => completion.text.push_str(&text),
            StreamEvent::Usage(usage) => completion.usage = Some(usage),
            StreamEvent::Done { finish_reason } => {
                completion.finish_reason = finish_reason;
                return Ok(completion);
            }
        }
    }
    Err(LlmError::Protocol(
        "stream ended without a final event".into(),
    ))
}

/// Splits text into word-sized pieces that keep their trailing whitespace, so the
/// pieces concatenate back to the exact input.
pub(crate) fn word_pieces(text: &str) -> Vec<String> {
    text.split_inclusive(char::is_whitespace)
        .fold(Vec::<String>::new(), |mut pieces, piece| {
            // Runs of whitespace stay attached to the preceding word.
            let whitespace_only = piece.chars().all(char::is_whitespace);
            match pieces.last_mut() {
                Some(last) if whitespace_only => last.push_str(piece),
                _ => pieces.push(piece.to_owned()),
            }
            pieces
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn word_pieces_keep_whitespace() {
        let pieces = word_pieces("Hello  world\nnext ");
        assert_eq!(pieces, vec!["Hello  ", "world\n", "next "]);
    }

    #[test]
    fn roles_serialize_lowercase() {
        let json = serde_json::to_string(&ChatMessage::assistant("hi")).unwrap();
        assert_eq!(json, r#"{"role":"assistant","content":"hi"}"#);
    }

    #[tokio::test]
    async fn collect_gathers_text_usage_and_reason() {
        let usage = Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
            total_tokens: 3,
        };
        let events = vec![
            Ok(StreamEvent::Delta("a".into())),
            Ok(StreamEvent::Delta("b".into())),
            Ok(StreamEvent::Usage(usage)),
            Ok(StreamEvent::Done {
                finish_reason: Some("stop".into()),
            }),
        ];
        let completion = collect_completion(futures::stream::iter(events).boxed())
            .await
            .unwrap();
        assert_eq!(completion.text, "ab");
        assert_eq!(completion.usage, Some(usage));
        assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
    }

    #[tokio::test]
    async fn collect_without_done_is_a_protocol_error() {
        let events = vec![Ok(StreamEvent::Delta("a".into()))];
        let err = collect_completion(futures::stream::iter(events).boxed())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "upstream_protocol");
    }

    proptest! {
        #[test]
        fn word_pieces_concatenate_to_input(text in "\\PC{0,80}") {
            prop_assert_eq!(word_pieces(&text).concat(), text);
        }
    }
}

//! The built-in provider used when no language model is configured.
//!
//! It never touches the network and always writes the same text for the same request.
//! Every text starts with [`OFFLINE_LABEL`]; the one exception is JSON extraction, where a
//! prefix would break the JSON, so the object carries an `"_offline_template"` key instead.
//! What it writes depends on the request's [`super::Purpose`]; see `offline_text`.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::offline_text::compose;
use super::{
    word_pieces, ChatProvider, ChatRequest, HealthStatus, LlmError, ProviderHealth, StreamEvent,
    TokenStream,
};

/// Prefix of every offline text, so no reader mistakes a template for model output.
pub const OFFLINE_LABEL: &str = "[offline template]";

const MODEL_NAME: &str = "offline-template";

/// Word delay that makes offline text appear the way streamed model text does.
const DEFAULT_WORD_DELAY: Duration = Duration::from_millis(15);

/// Deterministic, labelled template texts streamed word by word.
#[derive(Debug, Clone)]
pub struct OfflineProvider {
    word_delay: Duration,
}

impl Default for OfflineProvider {
    /// Streams with a 15 ms pause per word.
    fn default() -> Self {
        Self::new(DEFAULT_WORD_DELAY)
    }
}

impl OfflineProvider {
    pub fn new(word_delay: Duration) -> Self {
        Self { word_delay }
    }

    /// No pause between words; for tests.
    pub fn instant() -> Self {
        Self::new(Duration::ZERO)
    }

    /// The complete text that [`ChatProvider::stream`] would stream for `request`.
    pub fn text_for(&self, request: &ChatRequest) -> String {
        compose(&request.purpose, &request.messages)
    }
}

struct Playback {
    pieces: VecDeque<String>,
    word_delay: Duration,
    cancel: CancellationToken,
}

impl Playback {
    async fn next_item(&mut self) -> Result<StreamEvent, LlmError> {
        let Some(piece) = self.pieces.pop_front() else {
            return Ok(StreamEvent::Done {
                finish_reason: Some("stop".into()),
            });
        };
        if !self.word_delay.is_zero() {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(LlmError::Cancelled),
                () = tokio::time::sleep(self.word_delay) => {}
            }
        }
        if self.cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        Ok(StreamEvent::Delta(piece))
    }
}

#[async_trait]
impl ChatProvider for OfflineProvider {
    fn id(&self) -> &str {
        "offline"
    }

    fn model(&self) -> &str {
        MODEL_NAME
    }

    fn is_offline(&self) -> bool {
        true
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<TokenStream, LlmError> {
        if cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        let playback = Playback {
            pieces: word_pieces(&self.text_for(&request)).into(),
            word_delay: self.word_delay,
            cancel,
        };
        let stream = futures::stream::unfold(Some(playback), |playback| async move {
            let mut playback = playback?;
            let item = playback.next_item().await;
            let is_final = !matches!(item, Ok(StreamEvent::Delta(_)));
            Some((item, (!is_final).then_some(playback)))
        });
        Ok(stream.boxed())
    }

    async fn health(&self) -> ProviderHealth {
        ProviderHealth {
            provider: self.id().to_owned(),
            model: MODEL_NAME.to_owned(),
            offline: true,
            status: HealthStatus::Ok,
            last_error: None,
            last_outcome_age_secs: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::llm::{collect_completion, ChatMessage, Purpose};
    use std::time::Instant;

    fn question(text: &str) -> ChatRequest {
        ChatRequest::new(
            vec![ChatMessage::user("hello")],
            Purpose::Question { text: text.into() },
        )
    }

    async fn deltas(provider: &OfflineProvider, request: ChatRequest) -> Vec<String> {
        let mut stream = provider
            .stream(request, CancellationToken::new())
            .await
            .unwrap();
        let mut deltas = Vec::new();
        while let Some(event) = stream.next().await {
            match event.unwrap() {
                StreamEvent::Delta(text) => deltas.push(text),
                StreamEvent::Done { finish_reason } => {
                    assert_eq!(finish_reason.as_deref(), Some("stop"));
                    return deltas;
                }
                StreamEvent::Usage(_) => panic!("offline provider reports no usage"),
            }
        }
        panic!("stream ended without Done");
    }

    #[tokio::test]
    async fn streams_the_question_word_by_word_with_label() {
        let provider = OfflineProvider::instant();
        let pieces = deltas(&provider, question("What would you like to practise?")).await;
        assert_eq!(
            pieces,
            vec![
                "[offline ",
                "template] ",
                "What ",
                "would ",
                "you ",
                "like ",
                "to ",
                "practise?"
            ]
        );
        assert!(provider.is_offline());
        assert_eq!(provider.id(), "offline");
    }

    #[tokio::test]
    async fn every_purpose_is_labelled_and_deterministic() {
        let provider = OfflineProvider::instant();
        let purposes = [
            Purpose::Reply,
            Purpose::Question {
                text: "Why?".into(),
            },
            Purpose::Generation {
                content_type: "practice".into(),
                title: None,
                slots: vec![],
            },
            Purpose::Answer {
                question: "q".into(),
                context_found: false,
                passages: vec![],
            },
        ];
        for purpose in purposes {
            let request = ChatRequest::new(vec![ChatMessage::user("hi")], purpose);
            let first = deltas(&provider, request.clone()).await.concat();
            let second = deltas(&provider, request.clone()).await.concat();
            assert!(first.starts_with(OFFLINE_LABEL), "{first}");
            assert_eq!(first, second);
            assert_eq!(first, provider.text_for(&request));
        }
    }

    #[tokio::test]
    async fn extraction_output_parses_as_json() {
        let provider = OfflineProvider::instant();
        let mut request = ChatRequest::new(
            vec![],
            Purpose::Extraction {
                fields: vec!["topic".into()],
            },
        );
        request.response_format_json = true;
        let stream = provider
            .stream(request, CancellationToken::new())
            .await
            .unwrap();
        let completion = collect_completion(stream).await.unwrap();
        let value: serde_json::Value = serde_json::from_str(&completion.text).unwrap();
        assert!(value["topic"].is_null());
    }

    #[tokio::test]
    async fn cancel_stops_the_stream_promptly() {
        let provider = OfflineProvider::new(Duration::from_secs(5));
        let cancel = CancellationToken::new();
        let mut stream = provider
            .stream(question("one two three"), cancel.clone())
            .await
            .unwrap();
        let started = Instant::now();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            canceller.cancel();
        });
        assert_eq!(stream.next().await, Some(Err(LlmError::Cancelled)));
        assert_eq!(stream.next().await, None);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn cancelled_before_start_is_refused() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let result = OfflineProvider::instant()
            .stream(question("x"), cancel)
            .await;
        assert!(matches!(result, Err(LlmError::Cancelled)));
    }

    #[tokio::test]
    async fn word_delay_paces_the_stream() {
        let provider = OfflineProvider::new(Duration::from_millis(20));
        let started = Instant::now();
        let pieces = deltas(&provider, question("a b c")).await;
        assert_eq!(pieces.len(), 5);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn health_is_ok_and_offline() {
        let health = OfflineProvider::default().health().await;
        assert!(health.offline);
        assert_eq!(health.status, HealthStatus::Ok);
        assert_eq!(health.model, "offline-template");
    }
}

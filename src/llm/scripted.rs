//! A provider that plays back prepared scripts, for tests of the layers above.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{
    ChatProvider, ChatRequest, HealthStatus, LlmError, ProviderHealth, StreamEvent, TokenStream,
};

/// One step of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptStep {
    /// Pause; cancellation cuts it short.
    Sleep(Duration),
    Event(StreamEvent),
    /// Ends the stream with this error.
    Fail(LlmError),
}

/// What one call to `stream` does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Script {
    /// When set, `stream` itself fails with this error.
    pub open_error: Option<LlmError>,
    /// Played in order. A script that ends without `Done` or `Fail` ends the stream
    /// abruptly, which lets callers test that path too.
    pub steps: Vec<ScriptStep>,
}

impl Script {
    /// Each chunk as a `Delta` after `delay`, then `Done` with finish reason `"stop"`.
    pub fn text(chunks: &[&str], delay: Duration) -> Self {
        let mut steps = Vec::with_capacity(chunks.len() * 2 + 1);
        for chunk in chunks {
            if !delay.is_zero() {
                steps.push(ScriptStep::Sleep(delay));
            }
            steps.push(ScriptStep::Event(StreamEvent::Delta((*chunk).to_owned())));
        }
        steps.push(ScriptStep::Event(StreamEvent::Done {
            finish_reason: Some("stop".into()),
        }));
        Self {
            open_error: None,
            steps,
        }
    }

    /// `stream` fails at once with `error`.
    pub fn failing_open(error: LlmError) -> Self {
        Self {
            open_error: Some(error),
            steps: Vec::new(),
        }
    }

    /// The same script with `step` appended.
    pub fn then(mut self, step: ScriptStep) -> Self {
        self.steps.push(step);
        self
    }
}

/// Plays one script per call; the last script repeats once the others are used up.
/// Records every request and counts streams still alive (not yet finished or dropped).
#[derive(Debug)]
pub struct ScriptedProvider {
    scripts: Mutex<VecDeque<Script>>,
    requests: Mutex<Vec<ChatRequest>>,
    open_streams: Arc<AtomicUsize>,
    offline: bool,
}

impl ScriptedProvider {
    pub fn new(script: Script) -> Self {
        Self::sequence(vec![script])
    }

    pub fn sequence(scripts: Vec<Script>) -> Self {
        Self {
            scripts: Mutex::new(scripts.into()),
            requests: Mutex::new(Vec::new()),
            open_streams: Arc::default(),
            offline: false,
        }
    }

    /// Makes the provider claim to be offline, to test offline-specific behaviour.
    pub fn claiming_offline(mut self) -> Self {
        self.offline = true;
        self
    }

    /// Requests received so far, oldest first.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Streams handed out that have neither finished nor been dropped.
    pub fn open_streams(&self) -> usize {
        self.open_streams.load(Ordering::SeqCst)
    }

    fn next_script(&self) -> Script {
        let mut scripts = self.scripts.lock().unwrap_or_else(PoisonError::into_inner);
        if scripts.len() > 1 {
            scripts.pop_front().unwrap_or_default()
        } else {
            scripts.front().cloned().unwrap_or_default()
        }
    }
}

/// Counts a stream as open for as long as it lives.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(counter))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Playback {
    steps: VecDeque<ScriptStep>,
    cancel: CancellationToken,
    _open: OpenGuard,
}

impl Playback {
    /// The next item, or `None` when the script runs out.
    async fn next_item(&mut self) -> Option<Result<StreamEvent, LlmError>> {
        loop {
            if self.cancel.is_cancelled() {
                return Some(Err(LlmError::Cancelled));
            }
            match self.steps.pop_front()? {
                ScriptStep::Sleep(pause) => tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => return Some(Err(LlmError::Cancelled)),
                    () = tokio::time::sleep(pause) => {}
                },
                ScriptStep::Event(event) => return Some(Ok(event)),
                ScriptStep::Fail(error) => return Some(Err(error)),
            }
        }
    }
}

#[async_trait]
impl ChatProvider for ScriptedProvider {
    fn id(&self) -> &str {
        "scripted"
    }

    fn model(&self) -> &str {
        "scripted"
    }

    fn is_offline(&self) -> bool {
        self.offline
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<TokenStream, LlmError> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        if cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        let script = self.next_script();
        if let Some(error) = script.open_error {
            return Err(error);
        }
        let playback = Playback {
            steps: script.steps.into(),
            cancel,
            _open: OpenGuard::new(&self.open_streams),
        };
        let stream = futures::stream::unfold(Some(playback), |playback| async move {
            let mut playback = playback?;
            let item = playback.next_item().await?;
            let is_final = !matches!(item, Ok(StreamEvent::Delta(_) | StreamEvent::Usage(_)));
            Some((item, (!is_final).then_some(playback)))
        });
        Ok(stream.boxed())
    }

    async fn health(&self) -> ProviderHealth {
        ProviderHealth {
            provider: self.id().to_owned(),
            model: self.model().to_owned(),
            offline: self.offline,
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
    use crate::llm::{collect_completion, ChatMessage, Purpose, Usage};

    fn request(text: &str) -> ChatRequest {
        ChatRequest::new(vec![ChatMessage::user(text)], Purpose::Reply)
    }

    #[tokio::test]
    async fn plays_scripts_in_order_and_repeats_the_last() {
        let provider = ScriptedProvider::sequence(vec![
            Script::failing_open(LlmError::Unavailable("down".into())),
            Script::text(&["Hel", "lo"], Duration::ZERO),
        ]);
        let first = provider
            .stream(request("a"), CancellationToken::new())
            .await;
        assert!(matches!(first, Err(LlmError::Unavailable(_))));
        for _ in 0..2 {
            let stream = provider
                .stream(request("b"), CancellationToken::new())
                .await
                .unwrap();
            assert_eq!(collect_completion(stream).await.unwrap().text, "Hello");
        }
        let seen: Vec<String> = provider
            .requests()
            .into_iter()
            .map(|r| r.messages[0].content.clone())
            .collect();
        assert_eq!(seen, vec!["a", "b", "b"]);
    }

    #[tokio::test]
    async fn plays_usage_and_failures() {
        let usage = Usage {
            prompt_tokens: 1,
            completion_tokens: 1,
            total_tokens: 2,
        };
        let script = Script::default()
            .then(ScriptStep::Event(StreamEvent::Delta("x".into())))
            .then(ScriptStep::Event(StreamEvent::Usage(usage)))
            .then(ScriptStep::Fail(LlmError::Timeout {
                phase: crate::llm::TimeoutPhase::Stall,
            }))
            .then(ScriptStep::Event(StreamEvent::Delta("never".into())));
        let provider = ScriptedProvider::new(script);
        let stream = provider
            .stream(request("a"), CancellationToken::new())
            .await
            .unwrap();
        let items: Vec<_> = stream.collect().await;
        assert_eq!(items.len(), 3);
        assert_eq!(items[1], Ok(StreamEvent::Usage(usage)));
        assert!(matches!(items[2], Err(LlmError::Timeout { .. })));
    }

    #[tokio::test]
    async fn cancel_interrupts_a_pause_and_open_streams_are_counted() {
        let provider = ScriptedProvider::new(Script::text(&["slow"], Duration::from_secs(30)));
        let cancel = CancellationToken::new();
        let mut stream = provider.stream(request("a"), cancel.clone()).await.unwrap();
        assert_eq!(provider.open_streams(), 1);
        cancel.cancel();
        assert_eq!(stream.next().await, Some(Err(LlmError::Cancelled)));
        assert_eq!(stream.next().await, None);
        assert_eq!(provider.open_streams(), 0);

        let stream = provider
            .stream(request("b"), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(provider.open_streams(), 1);
        drop(stream);
        assert_eq!(provider.open_streams(), 0);
    }
}

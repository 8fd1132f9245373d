//! Turns an accepted chat-completions response into a [`TokenStream`].
//!
//! A task owns the HTTP response and ends as soon as the stream reaches a final item
//! (done, error, cancellation) or the stream itself is dropped; dropping the response
//! closes the upstream connection, which stops generation there.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::openai_wire::{decode_chunk, upstream_error_from_event_data};
use super::outcome::OutcomeTracker;
use super::sse::{SseEvent, SseParser};
use super::{LlmError, StreamEvent, TimeoutPhase, TokenStream};

/// How long to wait for the end of the body after `[DONE]`; a body read to its end
/// lets the connection go back to the pool instead of being closed.
const DRAIN_AFTER_DONE: Duration = Duration::from_millis(500);

/// Largest non-streamed JSON body accepted.
const MAX_JSON_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Time limits for reading one response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    /// The first token must arrive before this instant.
    pub first_token_deadline: Instant,
    /// Longest silence allowed between chunks once tokens flow.
    pub idle_timeout: Duration,
    /// The whole completion must end before this instant.
    pub request_deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    /// `text/event-stream`, the normal case.
    EventStream,
    /// A single JSON completion, sent by servers that ignore `stream: true`.
    Json,
}

struct ResponseReader {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    format: BodyFormat,
    parser: SseParser,
    json_body: Vec<u8>,
    pending: VecDeque<StreamEvent>,
    body_ended: bool,
    saw_token: bool,
    finish_reason: Option<String>,
    limits: ReadLimits,
    cancel: CancellationToken,
}

/// Wraps an accepted (2xx) response.
pub(crate) fn token_stream(
    response: reqwest::Response,
    limits: ReadLimits,
    cancel: CancellationToken,
    outcomes: Arc<OutcomeTracker>,
) -> TokenStream {
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/json"));
    let reader = ResponseReader {
        body: response.bytes_stream().boxed(),
        format: if is_json {
            BodyFormat::Json
        } else {
            BodyFormat::EventStream
        },
        parser: SseParser::default(),
        json_body: Vec::new(),
        pending: VecDeque::new(),
        body_ended: false,
        saw_token: false,
        finish_reason: None,
        limits,
        cancel,
    };
    // The reader runs in its own task so that cancellation closes the connection even
    // while the consumer is not polling; dropping the stream ends the task too.
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(pump(reader, sender, outcomes));
    futures::stream::unfold(receiver, |mut receiver| async move {
        let item = receiver.recv().await?;
        Some((item, receiver))
    })
    .boxed()
}

/// Reads until a final item (`Done`, an error, cancellation) or until the consumer is
/// gone. Returning drops the reader, which closes the upstream connection.
async fn pump(
    mut reader: ResponseReader,
    sender: mpsc::UnboundedSender<Result<StreamEvent, LlmError>>,
    outcomes: Arc<OutcomeTracker>,
) {
    loop {
        let item = tokio::select! {
            biased;
            () = sender.closed() => return,
            item = reader.next_item() => item,
        };
        let is_final = match &item {
            Ok(StreamEvent::Done { .. }) => {
                outcomes.record_success();
                true
            }
            // Cancellation says nothing about the upstream's health.
            Err(LlmError::Cancelled) => true,
            Err(error) => {
                outcomes.record_failure(error.code());
                true
            }
            Ok(_) => false,
        };
        let is_done = matches!(item, Ok(StreamEvent::Done { .. }));
        if sender.send(item).is_err() {
            return;
        }
        if is_done {
            reader.drain_rest().await;
        }
        if is_final {
            return;
        }
    }
}

impl ResponseReader {
    /// The next item; a `Done` or an error is always the last one.
    async fn next_item(&mut self) -> Result<StreamEvent, LlmError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if matches!(event, StreamEvent::Delta(_)) {
                    self.saw_token = true;
                }
                return Ok(event);
            }
            if let Some(event) = self.parser.next_event() {
                self.handle_event(event)?;
                continue;
            }
            if self.body_ended {
                return self.final_item_without_done();
            }
            let (deadline, phase) = self.current_deadline();
            let read = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(LlmError::Cancelled),
                read = timeout_at(deadline, self.body.next()) => read,
            };
            match read {
                Err(_elapsed) => return Err(LlmError::Timeout { phase }),
                Ok(Some(Ok(bytes))) => self.absorb(&bytes)?,
                Ok(Some(Err(error))) => {
                    return Err(LlmError::Upstream {
                        status: None,
                        message: format!("reading the response failed: {}", error.without_url()),
                    })
                }
                Ok(None) => self.end_of_body()?,
            }
        }
    }

    /// Reads whatever follows `[DONE]` (normally just the end of the body), briefly.
    async fn drain_rest(&mut self) {
        let drain = async { while let Some(Ok(_)) = self.body.next().await {} };
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => {}
            _ = tokio::time::timeout(DRAIN_AFTER_DONE, drain) => {}
        }
    }

    fn current_deadline(&self) -> (Instant, TimeoutPhase) {
        let (deadline, phase) = match (self.format, self.saw_token) {
            (BodyFormat::Json, _) => (self.limits.request_deadline, TimeoutPhase::Request),
            (BodyFormat::EventStream, false) => {
                (self.limits.first_token_deadline, TimeoutPhase::FirstToken)
            }
            (BodyFormat::EventStream, true) => (
                Instant::now() + self.limits.idle_timeout,
                TimeoutPhase::Stall,
            ),
        };
        if self.limits.request_deadline <= deadline {
            (self.limits.request_deadline, TimeoutPhase::Request)
        } else {
            (deadline, phase)
        }
    }

    fn absorb(&mut self, bytes: &[u8]) -> Result<(), LlmError> {
        match self.format {
            BodyFormat::EventStream => self.parser.push(bytes),
            BodyFormat::Json => {
                if self.json_body.len() + bytes.len() > MAX_JSON_BODY_BYTES {
                    return Err(LlmError::Protocol(format!(
                        "response body larger than {MAX_JSON_BODY_BYTES} bytes"
                    )));
                }
                self.json_body.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn handle_event(&mut self, event: SseEvent) -> Result<(), LlmError> {
        let data = event.data.trim();
        if event.event.as_deref() == Some("error") {
            return Err(upstream_error_from_event_data(data));
        }
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            let finish_reason = self.finish_reason.take();
            self.pending.push_back(StreamEvent::Done { finish_reason });
            return Ok(());
        }
        self.queue_parts(data)
    }

    fn queue_parts(&mut self, data: &str) -> Result<(), LlmError> {
        let parts = decode_chunk(data)?;
        if let Some(text) = parts.text {
            self.pending.push_back(StreamEvent::Delta(text));
        }
        if let Some(usage) = parts.usage {
            self.pending.push_back(StreamEvent::Usage(usage));
        }
        if parts.finish_reason.is_some() {
            self.finish_reason = parts.finish_reason;
        }
        Ok(())
    }

    /// The connection ended: parse what is still buffered.
    fn end_of_body(&mut self) -> Result<(), LlmError> {
        self.body_ended = true;
        match self.format {
            BodyFormat::EventStream => {
                self.parser.finish();
                Ok(())
            }
            BodyFormat::Json => {
                let body = std::mem::take(&mut self.json_body);
                self.queue_parts(String::from_utf8_lossy(&body).trim())
            }
        }
    }

    /// Everything received was delivered and no `[DONE]` came.
    fn final_item_without_done(&mut self) -> Result<StreamEvent, LlmError> {
        // A finish reason (or a complete JSON body) still shows the model completed.
        if self.finish_reason.is_some() || self.format == BodyFormat::Json {
            return Ok(StreamEvent::Done {
                finish_reason: self.finish_reason.take(),
            });
        }
        Err(LlmError::Protocol(
            "the language model closed the stream before finishing".into(),
        ))
    }
}

//! Client for OpenAI-compatible `/chat/completions` endpoints (OpenAI, vLLM, Ollama,
//! llama.cpp server), always streaming.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::backoff::{backoff_delay, requested_retry_delay};
use super::openai_stream::{token_stream, ReadLimits};
use super::openai_wire::{upstream_error_from_body, WireRequest};
use super::outcome::OutcomeTracker;
use super::{ChatProvider, ChatRequest, LlmError, ProviderHealth, TimeoutPhase, TokenStream};

/// Longest error body read from a failed response.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

/// Settings for an [`OpenAiProvider`]. `Debug` never shows the API key.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// API root including the version segment, e.g. `http://localhost:11434/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer ...` when set.
    pub api_key: Option<SecretString>,
    pub model: String,
    pub connect_timeout: Duration,
    /// From sending the request to the first generated token (covers queueing and
    /// prompt processing upstream).
    pub first_token_timeout: Duration,
    /// Longest silence between chunks once tokens flow.
    pub idle_timeout: Duration,
    /// Upper bound for the whole completion, retries included.
    pub request_timeout: Duration,
    /// Retries for failures before the first token: connection errors, 5xx, 429.
    pub max_retries: u32,
    /// First backoff step; doubles on each retry, with jitter.
    pub retry_base_delay: Duration,
    /// Cap on any single wait between retries. A `Retry-After` longer than this is not
    /// waited for: the error is returned at once.
    pub max_retry_delay: Duration,
    /// Ask for a final usage chunk (`stream_options.include_usage`). Turn off for
    /// servers that reject the option.
    pub include_usage: bool,
}

impl OpenAiConfig {
    /// Defaults suited to a local or hosted model server.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            connect_timeout: Duration::from_secs(5),
            first_token_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(300),
            max_retries: 2,
            retry_base_delay: Duration::from_millis(250),
            max_retry_delay: Duration::from_secs(10),
            include_usage: true,
        }
    }
}

/// Streams chat completions from an OpenAI-compatible server.
#[derive(Debug)]
pub struct OpenAiProvider {
    config: OpenAiConfig,
    endpoint: reqwest::Url,
    client: reqwest::Client,
    outcomes: Arc<OutcomeTracker>,
}

/// How one attempt ended.
enum Attempt {
    Accepted(reqwest::Response),
    /// Worth retrying; `wait` is what the upstream asked for, if anything.
    Retry {
        error: LlmError,
        wait: Option<Duration>,
    },
    Fail(LlmError),
}

impl OpenAiProvider {
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        let endpoint = chat_completions_url(&config.base_url)?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("rapport/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Unavailable(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            config,
            endpoint,
            client,
            outcomes: Arc::default(),
        })
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    async fn attempt(&self, body: Bytes) -> Attempt {
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.config.api_key {
            // reqwest marks this header sensitive, keeping it out of debug output.
            request = request.bearer_auth(key.expose_secret());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return classify_send_error(error, &self.endpoint),
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Accepted(response);
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let wait = requested_retry_delay(response.headers());
            let error = LlmError::RateLimited { retry_after: wait };
            return match wait {
                Some(wait) if wait > self.config.max_retry_delay => Attempt::Fail(error),
                _ => Attempt::Retry { error, wait },
            };
        }
        let error = upstream_error_from_body(status.as_u16(), &read_limited(response).await);
        if status.is_server_error() {
            Attempt::Retry { error, wait: None }
        } else {
            Attempt::Fail(error)
        }
    }

    fn read_limits(&self, attempt_started: Instant, request_deadline: Instant) -> ReadLimits {
        ReadLimits {
            first_token_deadline: (attempt_started + self.config.first_token_timeout)
                .min(request_deadline),
            idle_timeout: self.config.idle_timeout,
            request_deadline,
        }
    }

    async fn open_stream(
        &self,
        request: &ChatRequest,
        cancel: &CancellationToken,
    ) -> Result<TokenStream, LlmError> {
        let request_deadline = Instant::now() + self.config.request_timeout;
        let wire = WireRequest::streaming(request, &self.config.model, self.config.include_usage);
        let body = Bytes::from(
            serde_json::to_vec(&wire)
                .map_err(|e| LlmError::Protocol(format!("cannot encode request: {e}")))?,
        );
        let mut retries = 0;
        loop {
            let limits = self.read_limits(Instant::now(), request_deadline);
            let attempt = tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(LlmError::Cancelled),
                attempt = timeout_at(limits.first_token_deadline, self.attempt(body.clone())) => attempt,
            };
            let (error, wait) = match attempt {
                Ok(Attempt::Accepted(response)) => {
                    return Ok(token_stream(
                        response,
                        limits,
                        cancel.clone(),
                        Arc::clone(&self.outcomes),
                    ))
                }
                Ok(Attempt::Fail(error)) => return Err(error),
                Ok(Attempt::Retry { error, wait }) => (error, wait),
                Err(_elapsed) => {
                    let phase = if limits.first_token_deadline >= request_deadline {
                        TimeoutPhase::Request
                    } else {
                        TimeoutPhase::FirstToken
                    };
                    return Err(LlmError::Timeout { phase });
                }
            };
            let delay = wait.unwrap_or_else(|| {
                backoff_delay(
                    retries,
                    self.config.retry_base_delay,
                    self.config.max_retry_delay,
                )
            });
            if retries >= self.config.max_retries || Instant::now() + delay >= request_deadline {
                return Err(error);
            }
            retries += 1;
            tracing::warn!(
                code = error.code(),
                error = %error,
                retry = retries,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "language model request failed before the first token; retrying"
            );
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(LlmError::Cancelled),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

#[async_trait]
impl ChatProvider for OpenAiProvider {
    fn id(&self) -> &str {
        "openai-compatible"
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    fn is_offline(&self) -> bool {
        false
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<TokenStream, LlmError> {
        if cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        let opened = self.open_stream(&request, &cancel).await;
        if let Err(error) = &opened {
            if !matches!(error, LlmError::Cancelled) {
                self.outcomes.record_failure(error.code());
            }
        }
        opened
    }

    async fn health(&self) -> ProviderHealth {
        let snapshot = self.outcomes.snapshot();
        ProviderHealth {
            provider: self.id().to_owned(),
            model: self.config.model.clone(),
            offline: false,
            status: snapshot.status,
            last_error: snapshot.last_error,
            last_outcome_age_secs: snapshot.age_secs,
        }
    }
}

fn chat_completions_url(base_url: &str) -> Result<reqwest::Url, LlmError> {
    let joined = format!("{}/chat/completions", base_url.trim_end_matches('/'));
    let url = reqwest::Url::parse(&joined)
        .map_err(|e| LlmError::Unavailable(format!("invalid base_url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(LlmError::Unavailable(
            "base_url must start with http:// or https://".into(),
        ));
    }
    Ok(url)
}

fn classify_send_error(error: reqwest::Error, endpoint: &reqwest::Url) -> Attempt {
    let is_connect = error.is_connect();
    let is_timeout = error.is_timeout();
    let cause = describe(error);
    if is_connect {
        let error = if is_timeout {
            LlmError::Timeout {
                phase: TimeoutPhase::Connect,
            }
        } else {
            LlmError::Unavailable(format!(
                "cannot connect to {}: {cause}",
                host_and_port(endpoint)
            ))
        };
        return Attempt::Retry { error, wait: None };
    }
    // The request may have reached the model; sending it again could double the work.
    Attempt::Fail(LlmError::Upstream {
        status: None,
        message: format!("request to the language model failed: {cause}"),
    })
}

/// The error and its causes, without the URL (a base URL may embed credentials).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn host_and_port(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => "the language model".to_owned(),
    }
}

/// Reads at most [`MAX_ERROR_BODY_BYTES`] of an error response.
async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ERROR_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    body
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant as StdInstant;

    use futures::StreamExt;

    use super::*;
    use crate::llm::mock_upstream::{
        delta_event, finish_event, usage_event, MockResponse, MockUpstream, Part,
    };
    use crate::llm::{collect_completion, ChatMessage, HealthStatus, Purpose, StreamEvent, Usage};

    fn config(upstream: &MockUpstream) -> OpenAiConfig {
        OpenAiConfig {
            connect_timeout: Duration::from_secs(2),
            first_token_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            retry_base_delay: Duration::from_millis(10),
            max_retry_delay: Duration::from_secs(2),
            ..OpenAiConfig::new(upstream.base_url.clone(), "test-model")
        }
    }

    fn provider(config: OpenAiConfig) -> OpenAiProvider {
        OpenAiProvider::new(config).unwrap()
    }

    fn request() -> ChatRequest {
        ChatRequest::new(
            vec![ChatMessage::system("be brief"), ChatMessage::user("hi")],
            Purpose::Reply,
        )
    }

    async fn start(provider: &OpenAiProvider) -> Result<TokenStream, LlmError> {
        provider.stream(request(), CancellationToken::new()).await
    }

    /// All items until the stream ends.
    async fn drain(stream: TokenStream) -> Vec<Result<StreamEvent, LlmError>> {
        stream.collect().await
    }

    fn delta(text: &str) -> Result<StreamEvent, LlmError> {
        Ok(StreamEvent::Delta(text.into()))
    }

    /// Splits `bytes` into pieces of 1..=7 bytes in a fixed, irregular pattern.
    fn irregular_pieces(bytes: &[u8]) -> Vec<Part> {
        let mut parts = Vec::new();
        let mut rest = bytes;
        for size in [3usize, 1, 7, 2, 5, 1, 4, 6].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at((*size).min(rest.len()));
            parts.push(Part::Bytes(piece.to_vec()));
            if parts.len() % 5 == 0 {
                parts.push(Part::Sleep(Duration::from_millis(1)));
            }
            rest = tail;
        }
        parts
    }

    #[tokio::test]
    async fn streams_deltas_usage_and_done_across_arbitrary_splits() {
        let wire = [
            ": connected\r\n\r\n".to_owned(),
            delta_event("Bonjour, "),
            delta_event(""),
            delta_event("ça va? 🙂"),
            ": ping\n\n".to_owned(),
            delta_event(" Très bien."),
            finish_event("stop"),
            usage_event(12, 5),
            "data: [DONE]\r\n\r\n".to_owned(),
        ]
        .concat()
        .replace("\n\n", "\r\n\r\n");
        // Sanity: the split pattern cuts inside multi-byte characters and `data:`.
        let pieces = irregular_pieces(wire.as_bytes());
        assert!(pieces
            .iter()
            .any(|p| matches!(p, Part::Bytes(b) if std::str::from_utf8(b).is_err())));
        assert!(pieces.iter().any(|p| matches!(p, Part::Bytes(b) if b == b"da" || b.ends_with(b"dat") || b.starts_with(b"ta:"))));

        let upstream = MockUpstream::start(vec![MockResponse::sse(pieces)]).await;
        let provider = provider(config(&upstream));
        let items = drain(start(&provider).await.unwrap()).await;
        assert_eq!(
            items,
            vec![
                delta("Bonjour, "),
                delta("ça va? 🙂"),
                delta(" Très bien."),
                Ok(StreamEvent::Usage(Usage {
                    prompt_tokens: 12,
                    completion_tokens: 5,
                    total_tokens: 17
                })),
                Ok(StreamEvent::Done {
                    finish_reason: Some("stop".into())
                }),
            ]
        );
        assert_eq!(provider.health().await.status, HealthStatus::Ok);
    }

    #[tokio::test]
    async fn sends_the_openai_request_with_bearer_key() {
        let body = [delta_event("ok"), "data: [DONE]\n\n".to_owned()].concat();
        let upstream = MockUpstream::start(vec![MockResponse::sse(vec![Part::text(&body)])]).await;
        let mut config = config(&upstream);
        config.api_key = Some(SecretString::from("sk-test-123"));
        assert!(!format!("{config:?}").contains("sk-test-123"));
        let provider = provider(config);
        let mut request = request();
        request.response_format_json = true;
        request.max_tokens = Some(64);
        request.model = Some("override-model".into());
        let stream = provider
            .stream(request, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(collect_completion(stream).await.unwrap().text, "ok");

        let recorded = &upstream.requests()[0];
        assert!(recorded
            .head
            .starts_with("POST /v1/chat/completions HTTP/1.1"));
        assert_eq!(
            recorded.header("authorization").as_deref(),
            Some("Bearer sk-test-123")
        );
        assert_eq!(
            recorded.header("accept").as_deref(),
            Some("text/event-stream")
        );
        let json = recorded.json();
        assert_eq!(json["model"], "override-model");
        assert_eq!(json["stream"], true);
        assert_eq!(json["stream_options"]["include_usage"], true);
        assert_eq!(json["response_format"]["type"], "json_object");
        assert_eq!(json["max_tokens"], 64);
        assert_eq!(json["messages"][0]["role"], "system");
        assert_eq!(json["messages"][1]["content"], "hi");
    }

    #[tokio::test]
    async fn no_authorization_header_without_key() {
        let upstream = MockUpstream::start(vec![MockResponse::sse(vec![Part::text(
            "data: [DONE]\n\n",
        )])])
        .await;
        let provider = provider(config(&upstream));
        let items = drain(start(&provider).await.unwrap()).await;
        assert_eq!(
            items,
            vec![Ok(StreamEvent::Done {
                finish_reason: None
            })]
        );
        assert_eq!(upstream.requests()[0].header("authorization"), None);
    }

    #[tokio::test]
    async fn error_object_mid_stream_is_an_upstream_error() {
        let body = [
            delta_event("Hel"),
            r#"data: {"error":{"message":"model crashed","type":"server_error","code":500}}"#
                .to_owned(),
            "\n\n".to_owned(),
            delta_event("never"),
        ]
        .concat();
        let upstream = MockUpstream::start(vec![MockResponse::sse(vec![Part::text(&body)])]).await;
        let provider = provider(config(&upstream));
        let items = drain(start(&provider).await.unwrap()).await;
        assert_eq!(
            items,
            vec![
                delta("Hel"),
                Err(LlmError::Upstream {
                    status: Some(500),
                    message: "model crashed".into()
                })
            ]
        );
        assert_eq!(upstream.requests().len(), 1);
        let health = provider.health().await;
        assert_eq!(health.status, HealthStatus::Degraded);
        assert_eq!(health.last_error.as_deref(), Some("upstream_error"));
    }

    #[tokio::test]
    async fn error_event_type_is_an_upstream_error() {
        let body = "event: error\ndata: {\"message\":\"quota exhausted\"}\n\n";
        let upstream = MockUpstream::start(vec![MockResponse::sse(vec![Part::text(body)])]).await;
        let items = drain(start(&provider(config(&upstream))).await.unwrap()).await;
        assert_eq!(
            items,
            vec![Err(LlmError::Upstream {
                status: None,
                message: "quota exhausted".into()
            })]
        );
    }

    #[tokio::test]
    async fn stalled_upstream_times_out_within_the_idle_timeout() {
        let upstream = MockUpstream::start(vec![MockResponse::sse(vec![
            Part::text(&delta_event("first")),
            Part::Hold,
        ])])
        .await;
        let mut config = config(&upstream);
        config.idle_timeout = Duration::from_millis(200);
        let provider = provider(config);
        let mut stream = start(&provider).await.unwrap();
        assert_eq!(stream.next().await, Some(delta("first")));
        let waited = StdInstant::now();
        assert_eq!(
            stream.next().await,
            Some(Err(LlmError::Timeout {
                phase: TimeoutPhase::Stall
            }))
        );
        let waited = waited.elapsed();
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        assert_eq!(stream.next().await, None);
        let mut upstream = upstream;
        assert!(upstream.client_closed_within(Duration::from_secs(2)).await);
    }

    #[tokio::test]
    async fn keepalives_alone_hit_the_first_token_timeout() {
        let upstream = MockUpstream::start(vec![MockResponse::sse(vec![
            Part::text(": ping\n\n"),
            Part::Sleep(Duration::from_millis(100)),
            Part::text(": ping\n\n"),
            Part::Hold,
        ])])
        .await;
        let mut config = config(&upstream);
        config.first_token_timeout = Duration::from_millis(300);
        let provider = provider(config);
        let items = drain(start(&provider).await.unwrap()).await;
        assert_eq!(
            items,
            vec![Err(LlmError::Timeout {
                phase: TimeoutPhase::FirstToken
            })]
        );
    }

    #[tokio::test]
    async fn slow_headers_hit_the_first_token_timeout_without_retry() {
        let upstream = MockUpstream::start(vec![]).await;
        // A listener that accepts but never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = config(&upstream);
        config.base_url = format!("http://{}/v1", silent.local_addr().unwrap());
        config.first_token_timeout = Duration::from_millis(200);
        let started = StdInstant::now();
        let result = start(&provider(config)).await;
        assert!(matches!(
            result,
            Err(LlmError::Timeout {
                phase: TimeoutPhase::FirstToken
            })
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn server_error_then_success_is_retried_before_the_first_token() {
        let body = [delta_event("after retry"), "data: [DONE]\n\n".to_owned()].concat();
        let upstream = MockUpstream::start(vec![
            MockResponse::status(500, r#"{"error":{"message":"overloaded"}}"#),
            MockResponse::status(503, "busy"),
            MockResponse::sse(vec![Part::text(&body)]),
        ])
        .await;
        let provider = provider(config(&upstream));
        let completion = collect_completion(start(&provider).await.unwrap())
            .await
            .unwrap();
        assert_eq!(completion.text, "after retry");
        assert_eq!(upstream.requests().len(), 3);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let upstream = MockUpstream::start(vec![
            MockResponse::status(502, "bad gateway"),
            MockResponse::status(502, "bad gateway"),
            MockResponse::status(502, "still bad"),
            MockResponse::sse(vec![Part::text("data: [DONE]\n\n")]),
        ])
        .await;
        let result = start(&provider(config(&upstream))).await;
        assert_eq!(
            result.err(),
            Some(LlmError::Upstream {
                status: Some(502),
                message: "still bad".into()
            })
        );
        assert_eq!(upstream.requests().len(), 3);
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let upstream = MockUpstream::start(vec![MockResponse::status(
            401,
            r#"{"error":{"message":"invalid api key","type":"invalid_request_error"}}"#,
        )])
        .await;
        let provider = provider(config(&upstream));
        let result = start(&provider).await;
        assert_eq!(
            result.err(),
            Some(LlmError::Upstream {
                status: Some(401),
                message: "invalid api key".into()
            })
        );
        assert_eq!(upstream.requests().len(), 1);
        assert_eq!(provider.health().await.status, HealthStatus::Degraded);
    }

    #[tokio::test]
    async fn rate_limit_honours_retry_after() {
        let body = [delta_event("ok"), "data: [DONE]\n\n".to_owned()].concat();
        let upstream = MockUpstream::start(vec![
            MockResponse::status(429, r#"{"error":{"message":"slow down"}}"#)
                .with_header("retry-after", "1"),
            MockResponse::sse(vec![Part::text(&body)]),
        ])
        .await;
        let started = StdInstant::now();
        let completion = collect_completion(start(&provider(config(&upstream))).await.unwrap())
            .await
            .unwrap();
        assert_eq!(completion.text, "ok");
        assert!(started.elapsed() >= Duration::from_millis(950));
        assert_eq!(upstream.requests().len(), 2);
    }

    #[tokio::test]
    async fn rate_limit_beyond_the_retry_cap_fails_at_once() {
        let upstream = MockUpstream::start(vec![
            MockResponse::status(429, "{}").with_header("retry-after", "120")
        ])
        .await;
        let started = StdInstant::now();
        let result = start(&provider(config(&upstream))).await;
        assert_eq!(
            result.err(),
            Some(LlmError::RateLimited {
                retry_after: Some(Duration::from_secs(120))
            })
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(upstream.requests().len(), 1);
    }

    #[tokio::test]
    async fn no_retry_after_the_first_token() {
        // The connection ends after one token, without finish reason or [DONE].
        let upstream = MockUpstream::start(vec![
            MockResponse::sse(vec![Part::text(&delta_event("partial"))]),
            MockResponse::sse(vec![Part::text("data: [DONE]\n\n")]),
        ])
        .await;
        let items = drain(start(&provider(config(&upstream))).await.unwrap()).await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0], delta("partial"));
        assert!(matches!(items[1], Err(LlmError::Protocol(_))));
        assert_eq!(upstream.requests().len(), 1);
    }

    #[tokio::test]
    async fn finish_reason_without_done_still_completes() {
        let body = [delta_event("end"), finish_event("length")].concat();
        let upstream = MockUpstream::start(vec![MockResponse::sse(vec![Part::text(&body)])]).await;
        let items = drain(start(&provider(config(&upstream))).await.unwrap()).await;
        assert_eq!(
            items,
            vec![
                delta("end"),
                Ok(StreamEvent::Done {
                    finish_reason: Some("length".into())
                })
            ]
        );
    }

    #[tokio::test]
    async fn cancel_aborts_the_upstream_connection() {
        let mut upstream = MockUpstream::start(vec![MockResponse::sse(vec![
            Part::text(&delta_event("first")),
            Part::Hold,
        ])])
        .await;
        let provider = provider(config(&upstream));
        let cancel = CancellationToken::new();
        let mut stream = provider.stream(request(), cancel.clone()).await.unwrap();
        assert_eq!(stream.next().await, Some(delta("first")));
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            canceller.cancel();
        });
        assert_eq!(stream.next().await, Some(Err(LlmError::Cancelled)));
        assert!(upstream.client_closed_within(Duration::from_secs(1)).await);
        assert_eq!(stream.next().await, None);
        // Cancellation is not held against the upstream.
        assert_eq!(provider.health().await.status, HealthStatus::Unknown);
    }

    #[tokio::test]
    async fn cancel_aborts_the_upstream_even_while_nobody_polls() {
        let mut upstream = MockUpstream::start(vec![MockResponse::sse(vec![
            Part::text(&delta_event("first")),
            Part::Hold,
        ])])
        .await;
        let provider = provider(config(&upstream));
        let cancel = CancellationToken::new();
        let mut stream = provider.stream(request(), cancel.clone()).await.unwrap();
        assert_eq!(stream.next().await, Some(delta("first")));
        cancel.cancel();
        assert!(upstream.client_closed_within(Duration::from_secs(1)).await);
        assert_eq!(stream.next().await, Some(Err(LlmError::Cancelled)));
        assert_eq!(stream.next().await, None);
    }

    #[tokio::test]
    async fn dropping_the_stream_aborts_the_upstream_connection() {
        let mut upstream = MockUpstream::start(vec![MockResponse::sse(vec![
            Part::text(&delta_event("first")),
            Part::Hold,
        ])])
        .await;
        let provider = provider(config(&upstream));
        let mut stream = start(&provider).await.unwrap();
        assert_eq!(stream.next().await, Some(delta("first")));
        drop(stream);
        assert!(upstream.client_closed_within(Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn connection_is_reused_after_a_completed_stream() {
        let body = [delta_event("ok"), "data: [DONE]\n\n".to_owned()].concat();
        // The end of the body comes a little after `[DONE]`, as it may over a network.
        let response = || {
            MockResponse::sse(vec![
                Part::text(&body),
                Part::Sleep(Duration::from_millis(400)),
            ])
            .keep_alive()
        };
        let upstream = MockUpstream::start(vec![response(), response()]).await;
        let provider = provider(config(&upstream));
        for _ in 0..2 {
            let started = StdInstant::now();
            let stream = start(&provider).await.unwrap();
            assert_eq!(collect_completion(stream).await.unwrap().text, "ok");
            // `Done` is delivered without waiting for the end of the body.
            assert!(started.elapsed() < Duration::from_millis(300));
            // Let the reader finish the body and hand the connection back.
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        assert_eq!(upstream.requests().len(), 2);
        assert_eq!(upstream.connections(), 1);
    }

    #[tokio::test]
    async fn cancel_during_retry_backoff_returns_promptly() {
        let upstream = MockUpstream::start(vec![
            MockResponse::status(429, "{}").with_header("retry-after", "2")
        ])
        .await;
        let mut config = config(&upstream);
        config.max_retry_delay = Duration::from_secs(5);
        let provider = provider(config);
        let cancel = CancellationToken::new();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            canceller.cancel();
        });
        let started = StdInstant::now();
        let result = provider.stream(request(), cancel).await;
        assert!(matches!(result, Err(LlmError::Cancelled)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn non_streamed_json_response_is_accepted() {
        let body = r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"{\"topic\":\"sleep\"}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#;
        let upstream = MockUpstream::start(vec![MockResponse::json(body)]).await;
        let completion = collect_completion(start(&provider(config(&upstream))).await.unwrap())
            .await
            .unwrap();
        assert_eq!(completion.text, r#"{"topic":"sleep"}"#);
        assert_eq!(completion.usage.map(|u| u.total_tokens), Some(13));
        assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
    }

    #[tokio::test]
    async fn invalid_chunk_json_is_a_protocol_error() {
        let upstream = MockUpstream::start(vec![MockResponse::sse(vec![Part::text(
            "data: {\"choices\": [\n\n",
        )])])
        .await;
        let items = drain(start(&provider(config(&upstream))).await.unwrap()).await;
        assert!(matches!(items.as_slice(), [Err(LlmError::Protocol(_))]));
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable_after_retries() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut config = OpenAiConfig::new(format!("http://127.0.0.1:{port}/v1/"), "m");
        config.retry_base_delay = Duration::from_millis(5);
        config.max_retries = 1;
        let provider = provider(config);
        assert_eq!(provider.health().await.status, HealthStatus::Unknown);
        let error = start(&provider).await.err().unwrap();
        assert_eq!(error.code(), "upstream_unavailable");
        assert!(error.to_string().contains(&format!("127.0.0.1:{port}")));
        let health = provider.health().await;
        assert_eq!(health.status, HealthStatus::Degraded);
        assert_eq!(health.last_error.as_deref(), Some("upstream_unavailable"));
    }

    #[test]
    fn base_url_is_validated_and_joined() {
        assert_eq!(
            chat_completions_url("http://h:1/v1/").unwrap().as_str(),
            "http://h:1/v1/chat/completions"
        );
        assert!(OpenAiProvider::new(OpenAiConfig::new("ftp://h/v1", "m")).is_err());
        assert!(OpenAiProvider::new(OpenAiConfig::new("not a url", "m")).is_err());
    }
}

//! Client for OpenAI-compatible embedding services (`POST {base}/embeddings`),
//! e.g. OpenAI, Azure-style gateways, vLLM, Ollama or LM Studio.

use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{EmbedError, Embedder};
use crate::rag::cosine::l2_normalize;

/// Longest error body quoted in an error message.
const MAX_ERROR_BODY_CHARS: usize = 300;

#[derive(Debug, Clone)]
pub struct OpenAiEmbedderConfig {
    /// API root including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    /// Sent as a bearer token; never logged.
    pub api_key: Option<SecretString>,
    /// Expected vector length; responses of another length are rejected.
    pub dimension: usize,
    /// Ask the service for `dimension` (models such as `text-embedding-3-*`
    /// can shorten their vectors); leave off for services that reject it.
    pub request_dimensions: bool,
    /// Texts per request.
    pub batch_size: usize,
    /// Retries after the first attempt on 408, 429, 5xx and network errors.
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
}

impl OpenAiEmbedderConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, dimension: usize) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            dimension,
            request_dimensions: false,
            batch_size: 64,
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

pub struct OpenAiEmbedder {
    client: reqwest::Client,
    url: String,
    authorization: Option<HeaderValue>,
    config: OpenAiEmbedderConfig,
}

impl std::fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("url", &self.url)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

/// Outcome of one attempt: retry it, or stop with this result.
enum Attempt {
    Retry {
        after: Option<Duration>,
        error: EmbedError,
    },
    Done(Result<Vec<Vec<f32>>, EmbedError>),
}

impl OpenAiEmbedder {
    pub fn new(config: OpenAiEmbedderConfig) -> Result<Self, EmbedError> {
        if config.dimension == 0 {
            return Err(EmbedError::Config("dimension must be positive".to_owned()));
        }
        if config.batch_size == 0 {
            return Err(EmbedError::Config("batch size must be positive".to_owned()));
        }
        if config.model.trim().is_empty() {
            return Err(EmbedError::Config("model must be set".to_owned()));
        }
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(EmbedError::Config(format!(
                "base URL must start with http:// or https://, got {base:?}"
            )));
        }
        let authorization = match &config.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| {
                    EmbedError::Config("API key contains invalid characters".to_owned())
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|error| EmbedError::Config(error.to_string()))?;
        Ok(Self {
            client,
            url: format!("{base}/embeddings"),
            authorization,
            config,
        })
    }

    async fn embed_batch(&self, inputs: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut retries = 0;
        loop {
            match self.attempt(inputs).await {
                Attempt::Done(result) => return result,
                Attempt::Retry { after, error } => {
                    if retries >= self.config.max_retries {
                        return Err(error);
                    }
                    let delay = after
                        .map(|after| after.min(self.config.max_backoff))
                        .unwrap_or_else(|| self.backoff(retries));
                    tracing::warn!(
                        model = %self.config.model,
                        retry = retries + 1,
                        delay_ms = delay.as_millis() as u64,
                        %error,
                        "embedding request failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    retries += 1;
                }
            }
        }
    }

    async fn attempt(&self, inputs: &[&str]) -> Attempt {
        let body = EmbeddingRequest {
            model: &self.config.model,
            input: inputs,
            dimensions: self
                .config
                .request_dimensions
                .then_some(self.config.dimension),
        };
        let mut request = self.client.post(&self.url).json(&body);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let retryable = error.is_connect() || error.is_timeout() || error.is_request();
                let error = EmbedError::Transport(format!("{}: {}", self.url, describe(error)));
                return if retryable {
                    Attempt::Retry { after: None, error }
                } else {
                    Attempt::Done(Err(error))
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return match response.json::<EmbeddingResponse>().await {
                Ok(parsed) => Attempt::Done(self.check(parsed, inputs.len())),
                Err(error) => Attempt::Done(Err(EmbedError::InvalidResponse(
                    error.without_url().to_string(),
                ))),
            };
        }
        let after = retry_after(response.headers());
        let message = error_message(response.text().await.unwrap_or_default());
        let error = EmbedError::Status {
            status: status.as_u16(),
            message,
        };
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            Attempt::Retry { after, error }
        } else {
            Attempt::Done(Err(error))
        }
    }

    /// Validates a response and puts the vectors in input order.
    fn check(
        &self,
        response: EmbeddingResponse,
        expected: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if response.data.len() != expected {
            return Err(EmbedError::InvalidResponse(format!(
                "{} embeddings for {expected} inputs",
                response.data.len()
            )));
        }
        let mut ordered: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in response.data {
            if item.embedding.len() != self.config.dimension {
                return Err(EmbedError::DimensionMismatch {
                    model: self.config.model.clone(),
                    expected: self.config.dimension,
                    got: item.embedding.len(),
                });
            }
            if item.embedding.iter().any(|value| !value.is_finite()) {
                return Err(EmbedError::InvalidResponse(
                    "non-finite value in embedding".to_owned(),
                ));
            }
            let slot = ordered.get_mut(item.index).ok_or_else(|| {
                EmbedError::InvalidResponse(format!("index {} out of range", item.index))
            })?;
            if slot.is_some() {
                return Err(EmbedError::InvalidResponse(format!(
                    "index {} repeated",
                    item.index
                )));
            }
            let mut vector = item.embedding;
            // Not every compatible service normalises; scoring assumes unit vectors.
            l2_normalize(&mut vector);
            *slot = Some(vector);
        }
        // Every slot is filled: `expected` distinct in-range indexes were seen.
        Ok(ordered.into_iter().flatten().collect())
    }

    /// Exponential backoff with jitter, so that clients do not retry in step.
    fn backoff(&self, retry: u32) -> Duration {
        let exponential = self
            .config
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.config.max_backoff);
        exponential.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.config.model
    }

    fn dimension(&self) -> usize {
        self.config.dimension
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = vec![vec![0.0; self.config.dimension]; texts.len()];
        // Services reject empty inputs; those keep the zero vector.
        let wanted: Vec<usize> = (0..texts.len())
            .filter(|&i| !texts[i].trim().is_empty())
            .collect();
        for batch in wanted.chunks(self.config.batch_size) {
            let inputs: Vec<&str> = batch.iter().map(|&i| texts[i].as_str()).collect();
            let embedded = self.embed_batch(&inputs).await?;
            for (&i, vector) in batch.iter().zip(embedded) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }
}

/// The error and its causes on one line, without the URL.
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

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let read = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    if let Some(ms) = read("retry-after-ms") {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    Duration::try_from_secs_f64(read(RETRY_AFTER.as_str())?).ok()
}

/// The service's own error message when it sent JSON, else the body, shortened.
fn error_message(body: String) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        message: String,
    }
    let message = serde_json::from_str::<Envelope>(&body)
        .map(|envelope| envelope.error.message)
        .unwrap_or(body);
    let mut short: String = message.chars().take(MAX_ERROR_BODY_CHARS).collect();
    if short.len() < message.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests;

//! JSON shapes of the OpenAI-compatible chat-completions API.
//!
//! Decoding is lenient about optional fields because vLLM, Ollama, llama.cpp and OpenAI
//! each leave out different ones.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ChatMessage, ChatRequest, LlmError, Usage};

/// Longest upstream error text kept in an [`LlmError`].
const MAX_ERROR_MESSAGE_CHARS: usize = 300;

#[derive(Debug, Serialize)]
pub(crate) struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Serialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'a> WireRequest<'a> {
    pub fn streaming(
        request: &'a ChatRequest,
        default_model: &'a str,
        include_usage: bool,
    ) -> Self {
        Self {
            model: request.model.as_deref().unwrap_or(default_model),
            messages: &request.messages,
            stream: true,
            stream_options: include_usage.then_some(StreamOptions {
                include_usage: true,
            }),
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            response_format: request.response_format_json.then_some(ResponseFormat {
                kind: "json_object",
            }),
        }
    }
}

/// What one streamed chunk (or a whole non-streamed response) contributes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ChunkParts {
    /// Generated text; `None` when the chunk carried none (role-only, empty delta).
    pub text: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct WireChunk {
    /// Some servers send `null` instead of `[]`.
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    /// Streamed responses.
    #[serde(default)]
    delta: Option<WireContent>,
    /// Non-streamed responses.
    #[serde(default)]
    message: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireContent {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    total_tokens: Option<u32>,
}

/// Decodes one `data:` payload (or a whole JSON response body).
pub(crate) fn decode_chunk(data: &str) -> Result<ChunkParts, LlmError> {
    let chunk: WireChunk = serde_json::from_str(data)
        .map_err(|e| LlmError::Protocol(format!("invalid chunk JSON: {e}")))?;
    if let Some(error) = chunk.error {
        return Err(upstream_error_from_value(&error, None));
    }
    // One completion is requested (n = 1), so only the first choice matters.
    let choice = chunk.choices.unwrap_or_default().into_iter().next();
    let (text, finish_reason) = match choice {
        Some(choice) => {
            let text = choice
                .delta
                .or(choice.message)
                .and_then(|content| content.content)
                .filter(|text| !text.is_empty());
            let finish_reason = choice.finish_reason.filter(|reason| !reason.is_empty());
            (text, finish_reason)
        }
        None => (None, None),
    };
    let usage = chunk.usage.map(|usage| {
        let prompt_tokens = usage.prompt_tokens.unwrap_or(0);
        let completion_tokens = usage.completion_tokens.unwrap_or(0);
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: usage
                .total_tokens
                .unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
        }
    });
    Ok(ChunkParts {
        text,
        finish_reason,
        usage,
    })
}

/// Builds the error for an `event: error` payload whose data may not be JSON at all.
pub(crate) fn upstream_error_from_event_data(data: &str) -> LlmError {
    match serde_json::from_str::<Value>(data) {
        Ok(value) => {
            let inner = value.get("error").unwrap_or(&value);
            upstream_error_from_value(inner, None)
        }
        Err(_) => LlmError::Upstream {
            status: None,
            message: truncate(data.trim()),
        },
    }
}

/// Builds the error for a non-success HTTP response from its (possibly empty) body.
pub(crate) fn upstream_error_from_body(status: u16, body: &[u8]) -> LlmError {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            // `{"error": {...}}` (OpenAI, vLLM), `{"error": "..."}` (Ollama),
            // `{"detail": "..."}` (FastAPI-based servers), `{"message": "..."}`.
            let inner = value.get("error").unwrap_or(&value);
            upstream_error_from_value(inner, Some(status))
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            LlmError::Upstream {
                status: Some(status),
                message: if text.is_empty() {
                    format!("HTTP status {status}")
                } else {
                    truncate(text)
                },
            }
        }
    }
}

fn upstream_error_from_value(error: &Value, http_status: Option<u16>) -> LlmError {
    let message = match error {
        Value::String(text) => text.clone(),
        Value::Object(fields) => ["message", "detail", "error"]
            .iter()
            .find_map(|key| fields.get(*key).and_then(Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(|| error.to_string()),
        other => other.to_string(),
    };
    // Some servers put an HTTP-like status in `code` of an in-stream error object.
    let code_status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (100..=599).contains(code));
    LlmError::Upstream {
        status: http_status.or(code_status),
        message: truncate(message.trim()),
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::llm::Purpose;

    #[test]
    fn request_body_has_streaming_usage_and_json_format() {
        let mut request = ChatRequest::new(vec![ChatMessage::user("hi")], Purpose::Reply);
        request.response_format_json = true;
        request.temperature = Some(0.5);
        let body = serde_json::to_value(WireRequest::streaming(&request, "m1", true)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "m1",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "temperature": 0.5,
                "response_format": {"type": "json_object"}
            })
        );
    }

    #[test]
    fn model_override_and_optional_fields_left_out() {
        let mut request = ChatRequest::new(vec![], Purpose::Reply);
        request.model = Some("other".into());
        let body = serde_json::to_value(WireRequest::streaming(&request, "m1", false)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model": "other", "messages": [], "stream": true})
        );
    }

    #[test]
    fn decodes_delta_finish_and_usage() {
        let parts = decode_chunk(
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert_eq!(parts.text.as_deref(), Some("Hi"));
        let parts = decode_chunk(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(parts.text, None);
        assert_eq!(parts.finish_reason.as_deref(), Some("stop"));
        let parts =
            decode_chunk(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#)
                .unwrap();
        assert_eq!(
            parts.usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7
            })
        );
    }

    #[test]
    fn empty_and_role_only_deltas_carry_no_text() {
        let parts =
            decode_chunk(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#).unwrap();
        assert_eq!(parts, ChunkParts::default());
    }

    #[test]
    fn non_streamed_message_is_decoded() {
        let parts = decode_chunk(
            r#"{"choices":[{"message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}]}"#,
        )
        .unwrap();
        assert_eq!(parts.text.as_deref(), Some("{}"));
    }

    #[test]
    fn error_objects_become_upstream_errors() {
        let error = decode_chunk(r#"{"error":{"message":"overloaded","code":503}}"#).unwrap_err();
        assert_eq!(
            error,
            LlmError::Upstream {
                status: Some(503),
                message: "overloaded".into()
            }
        );
        let error = upstream_error_from_body(404, br#"{"error":"model 'x' not found"}"#);
        assert_eq!(
            error,
            LlmError::Upstream {
                status: Some(404),
                message: "model 'x' not found".into()
            }
        );
        let error = upstream_error_from_body(422, br#"{"detail":"bad field"}"#);
        assert!(error.to_string().contains("bad field"));
        let error = upstream_error_from_body(502, b"");
        assert!(error.to_string().contains("HTTP status 502"));
        let error = upstream_error_from_event_data("plain failure");
        assert!(error.to_string().contains("plain failure"));
    }

    #[test]
    fn nulls_and_empty_finish_reasons_are_tolerated() {
        let parts = decode_chunk(r#"{"choices":null,"usage":null}"#).unwrap();
        assert_eq!(parts, ChunkParts::default());
        let parts =
            decode_chunk(r#"{"choices":[{"delta":{"content":null},"finish_reason":""}]}"#).unwrap();
        assert_eq!(parts, ChunkParts::default());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(matches!(
            decode_chunk("{not json"),
            Err(LlmError::Protocol(_))
        ));
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = "é".repeat(1000);
        assert_eq!(truncate(&long).chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
    }
}

//! The frames the hub sends, as typed values; `protocol/v1/server.schema.json` describes them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::conversation::ContentType;

/// Numbered session frames: retained and replayed on resume.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum SessionFrame {
    #[serde(rename = "state")]
    State {
        state: &'static str,
        context: serde_json::Value,
    },
    #[serde(rename = "message.started")]
    MessageStarted {
        message_id: Arc<str>,
        role: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<String>,
    },
    #[serde(rename = "token")]
    Token { message_id: Arc<str>, delta: String },
    #[serde(rename = "message.done")]
    MessageDone {
        message_id: Arc<str>,
        role: &'static str,
        content: String,
        cancelled: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        citations: Option<Vec<Citation>>,
    },
    #[serde(rename = "generation.progress")]
    GenerationProgress {
        job_id: String,
        stage: &'static str,
        percent: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        estimated_time_s: Option<u32>,
    },
    #[serde(rename = "generation.completed")]
    GenerationCompleted {
        job_id: String,
        content_id: String,
        credits_remaining: i64,
    },
    #[serde(rename = "generation.failed")]
    GenerationFailed {
        job_id: String,
        code: String,
        message: String,
    },
}

/// Where an answer's facts came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Citation {
    pub kb_id: String,
    pub title: String,
    /// 1-based; a marker `[n]` in the answer refers to the citation with position n.
    #[schema(minimum = 1)]
    pub position: u32,
}

#[derive(Serialize)]
struct Numbered<'a> {
    seq: i64,
    session_id: &'a str,
    #[serde(flatten)]
    frame: &'a SessionFrame,
}

impl SessionFrame {
    pub fn encode(&self, seq: i64, session_id: &str) -> Arc<str> {
        serde_json::to_string(&Numbered {
            seq,
            session_id,
            frame: self,
        })
        .unwrap_or_default()
        .into()
    }
}

/// Typed error codes of `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    UnknownType,
    SchemaViolation,
    FrameTooLarge,
    UnsupportedFrame,
    Unauthorized,
    AuthTimeout,
    Forbidden,
    NotAttached,
    AlreadyAttached,
    SessionNotFound,
    SessionClosed,
    InvalidState,
    Busy,
    RateLimited,
    InsufficientCredits,
    UpstreamError,
    UpstreamTimeout,
    Internal,
}

/// Connection-level frames: answers to one client, never numbered or replayed.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum ConnectionFrame {
    #[serde(rename = "auth.ok")]
    AuthOk {
        protocol: &'static str,
        principal: PrincipalInfo,
    },
    #[serde(rename = "session.attached")]
    SessionAttached {
        session_id: String,
        kind: &'static str,
        last_seq: i64,
        resumed: bool,
    },
    #[serde(rename = "ack")]
    Ack {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        client_message_id: String,
        duplicate: bool,
    },
    #[serde(rename = "pong")]
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    #[serde(rename = "error")]
    Error {
        code: ErrorCode,
        message: String,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    #[serde(rename = "resume_failed")]
    ResumeFailed {
        session_id: String,
        reason: &'static str,
        oldest_seq: i64,
    },
    #[serde(rename = "reconnect")]
    Reconnect { after_ms: u64 },
}

#[derive(Debug, Clone, Serialize)]
pub struct PrincipalInfo {
    pub kind: &'static str,
    pub id: String,
    pub org_id: String,
}

impl ConnectionFrame {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn error(code: ErrorCode, message: impl Into<String>, reference: Option<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            reference,
            retry_after_ms: None,
        }
    }
}

/// Frames a client sends, after schema validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum ClientFrame {
    #[serde(rename = "auth")]
    Auth {
        token: Option<String>,
        api_key: Option<String>,
        session_token: Option<String>,
    },
    #[serde(rename = "session.start")]
    SessionStart {
        content_type: ContentType,
        intent: Option<String>,
    },
    #[serde(rename = "session.resume")]
    SessionResume { session_id: String, last_seq: i64 },
    #[serde(rename = "message")]
    Message {
        content: String,
        client_message_id: String,
    },
    #[serde(rename = "cancel")]
    Cancel {},
    #[serde(rename = "complete")]
    Complete { confirm: bool },
    #[serde(rename = "ping")]
    Ping { nonce: Option<String> },
}

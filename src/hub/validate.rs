//! Validation of every inbound frame against the published protocol schema.

use std::collections::HashMap;

use anyhow::Context;
use serde_json::Value;

use super::frames::{ClientFrame, ErrorCode};

const CLIENT_SCHEMA: &str = include_str!("../../protocol/v1/client.schema.json");

/// The client frame types of protocol v1.
pub const CLIENT_TYPES: &[&str] = &[
    "auth",
    "session.start",
    "session.resume",
    "message",
    "cancel",
    "complete",
    "ping",
];

/// A refused frame: the code and message of the `error` frame that answers it.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
    pub reference: Option<String>,
}

/// A validated frame with its optional `ref`.
#[derive(Debug)]
pub struct Inbound {
    pub frame: ClientFrame,
    pub reference: Option<String>,
}

pub struct ClientSchema {
    validators: HashMap<&'static str, jsonschema::Validator>,
}

impl ClientSchema {
    pub fn load() -> anyhow::Result<Self> {
        let root: Value =
            serde_json::from_str(CLIENT_SCHEMA).context("parsing client.schema.json")?;
        let defs = root.get("$defs").cloned().unwrap_or_default();
        let mut validators = HashMap::new();
        for ty in CLIENT_TYPES {
            let schema = serde_json::json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$defs": defs,
                "$ref": format!("#/$defs/{ty}"),
            });
            let validator = jsonschema::validator_for(&schema)
                .map_err(|e| anyhow::anyhow!("compiling the schema of `{ty}`: {e}"))?;
            validators.insert(*ty, validator);
        }
        Ok(Self { validators })
    }

    /// Parses and validates one text frame.
    pub fn check(&self, text: &str) -> Result<Inbound, Rejection> {
        let value: Value = serde_json::from_str(text).map_err(|e| Rejection {
            code: ErrorCode::InvalidJson,
            message: format!("the frame is not valid JSON: {}", e.classify_name()),
            reference: None,
        })?;
        let reference = value
            .get("ref")
            .and_then(Value::as_str)
            .filter(|r| r.chars().count() <= 64)
            .map(str::to_owned);
        let reject = |code, message: String| Rejection {
            code,
            message,
            reference: reference.clone(),
        };
        let Some(ty) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
            return Err(reject(
                ErrorCode::SchemaViolation,
                "a frame must be a JSON object with a string `type`".into(),
            ));
        };
        let Some(validator) = self.validators.get(ty.as_str()) else {
            return Err(reject(
                ErrorCode::UnknownType,
                format!("unknown frame type `{}`", truncate(&ty, 40)),
            ));
        };
        if let Some(error) = validator.iter_errors(&value).next() {
            // Name the field and the rule, never the offending value (it may be huge or private).
            let rule = error
                .schema_path
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or("schema")
                .to_string();
            let path = error.instance_path.as_str();
            let field = if path.is_empty() { "frame" } else { path };
            return Err(reject(
                ErrorCode::SchemaViolation,
                format!("`{ty}` frame: `{field}` violates `{rule}`"),
            ));
        }
        let frame = serde_json::from_value(value).map_err(|_| {
            reject(
                ErrorCode::SchemaViolation,
                format!("`{ty}` frame does not match the protocol"),
            )
        })?;
        Ok(Inbound { frame, reference })
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable input",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end of input",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn valid_frames_parse() {
        let schema = ClientSchema::load().unwrap();
        let ok = schema
            .check(r#"{"type":"message","content":"hi","client_message_id":"m1","ref":"r1"}"#)
            .unwrap();
        assert_eq!(ok.reference.as_deref(), Some("r1"));
        assert!(matches!(ok.frame, ClientFrame::Message { .. }));
        assert!(schema.check(r#"{"type":"ping"}"#).is_ok());
    }

    #[test]
    fn bad_frames_are_typed() {
        let schema = ClientSchema::load().unwrap();
        let code = |t: &str| schema.check(t).unwrap_err().code;
        assert_eq!(code("{nope"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::SchemaViolation);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"message","content":""}"#),
            ErrorCode::SchemaViolation
        );
        let long = "x".repeat(5000);
        let err = schema
            .check(&format!(
                r#"{{"type":"message","content":"{long}","client_message_id":"a"}}"#
            ))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SchemaViolation);
        assert!(!err.message.contains("xxxx"));
    }
}

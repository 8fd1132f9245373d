//! What can happen to a conversation: the user's understood message, the
//! user's decisions, and reports from the generation pipeline.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::slots::SlotUpdate;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A user message, already turned into slot values (possibly none).
    Update(SlotUpdate),
    /// The user accepts the proposed length and depth ("sounds good").
    AcceptDefaults,
    /// The user says yes to the summary.
    Confirm,
    /// The user says no to the summary and wants to change something.
    Revise,
    /// The generation job was accepted by the pipeline.
    GenerationStarted {
        job_id: String,
    },
    GenerationSucceeded {
        content_id: String,
    },
    GenerationFailed {
        reason: String,
    },
    /// The user stops the session.
    Cancel,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Update(_) => EventKind::Update,
            Event::AcceptDefaults => EventKind::AcceptDefaults,
            Event::Confirm => EventKind::Confirm,
            Event::Revise => EventKind::Revise,
            Event::GenerationStarted { .. } => EventKind::GenerationStarted,
            Event::GenerationSucceeded { .. } => EventKind::GenerationSucceeded,
            Event::GenerationFailed { .. } => EventKind::GenerationFailed,
            Event::Cancel => EventKind::Cancel,
        }
    }
}

/// The name of an event without its data, for error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Update,
    AcceptDefaults,
    Confirm,
    Revise,
    GenerationStarted,
    GenerationSucceeded,
    GenerationFailed,
    Cancel,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Update => "update",
            EventKind::AcceptDefaults => "accept_defaults",
            EventKind::Confirm => "confirm",
            EventKind::Revise => "revise",
            EventKind::GenerationStarted => "generation_started",
            EventKind::GenerationSucceeded => "generation_succeeded",
            EventKind::GenerationFailed => "generation_failed",
            EventKind::Cancel => "cancel",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

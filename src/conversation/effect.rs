//! What the caller must do after a transition. The engine only describes
//! effects; performing them (sending frames, phrasing text, starting jobs) is
//! the caller's business.

use serde::{Deserialize, Serialize};

use super::slots::{
    ContentType, Depth, DurationMinutes, Intent, SlotName, TimePreference, Tone, Voice,
};
use super::state::State;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Welcome the user (only at the start of a session).
    Greet { content_type: ContentType },
    /// The state changed; a `state` frame is due.
    StateChanged { from: State, to: State },
    /// These slots took a new value from the last message (for an acknowledgement).
    SlotsUpdated { slots: Vec<SlotName> },
    /// The last message filled no slot; the current question follows again.
    Unrecognised,
    /// Ask this next. The engine decides what is asked; the caller may phrase it.
    Ask(Question),
    /// Start producing the practice described here.
    StartGeneration(GenerationSpec),
    /// Stop the generation job in flight (the user cancelled while generating).
    CancelGeneration,
    /// A generation attempt failed; the user may confirm again to retry.
    GenerationFailed { reason: String, retries_left: u8 },
    /// The conversation reached a terminal state.
    Finished(Outcome),
}

/// The next thing the engine wants to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "question", rename_all = "snake_case")]
pub enum Question {
    AskIntent {
        content_type: ContentType,
    },
    AskTime {
        content_type: ContentType,
    },
    AskDuration {
        content_type: ContentType,
        suggested: DurationMinutes,
    },
    AskDepth {
        content_type: ContentType,
        suggested: Depth,
    },
    /// After the user declined the summary: what should change?
    AskChanges {
        content_type: ContentType,
    },
    /// Show the summary and ask for a yes or no.
    Confirm {
        summary: String,
    },
}

impl Question {
    /// The slot an answer to this question is expected to fill.
    pub fn expecting(&self) -> Option<SlotName> {
        match self {
            Question::AskIntent { .. } => Some(SlotName::Intent),
            Question::AskTime { .. } => Some(SlotName::TimePreference),
            Question::AskDuration { .. } => Some(SlotName::DurationMinutes),
            Question::AskDepth { .. } => Some(SlotName::Depth),
            Question::AskChanges { .. } | Question::Confirm { .. } => None,
        }
    }
}

/// Everything the generation pipeline needs; only built when every required
/// slot is known, so its fields are not optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationSpec {
    pub content_type: ContentType,
    pub intent: Intent,
    pub time_preference: TimePreference,
    pub duration_minutes: DurationMinutes,
    pub depth: Depth,
    pub tone: Option<Tone>,
    pub voice: Option<Voice>,
    /// 1 for the first attempt; lets the caller derive a distinct idempotency key per retry.
    pub attempt: u8,
}

/// How a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Completed { content_id: String },
    Cancelled,
    Failed { reason: String },
}

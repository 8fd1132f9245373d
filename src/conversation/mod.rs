//! The guided-session conversation engine.
//!
//! A pure state machine: [`Conversation::handle`] takes an [`Event`] and
//! returns the [`Effect`]s the caller must carry out (ask a question, start a
//! generation job, report the end). It performs no I/O, reads no clock and
//! uses no randomness, so the same events always give the same result, and a
//! conversation serialises to JSON for checkpointing and restores exactly.
//!
//! States run `Greeting -> IntentDiscovery -> ContextGathering ->
//! PracticeDetails -> Confirmation -> Generating -> Completed`, with
//! `Cancelled` and `Failed` as the other terminal states. The engine decides
//! *what* to ask ([`Question`]); a language model may phrase it, and
//! [`Question::text`] gives plain wording when none is used.
//!
//! A failed generation returns to `Confirmation` (no credit is spent, and the
//! user can retry by confirming again); after [`MAX_GENERATION_ATTEMPTS`]
//! failed attempts the conversation ends in `Failed`.
//!
//! Free text becomes events through [`extract_slots`] / [`parse_confirmation`]
//! (deterministic, offline) or through [`slot_update_from_json`] (a model's
//! structured answer); [`Conversation::event_for_text`] does the routing.

mod checkpoint;
mod defaults;
mod durations;
mod effect;
mod error;
mod event;
mod extract;
mod interpret;
mod lexicon;
mod machine;
mod questions;
mod slots;
mod state;
mod structured;
mod tokens;

#[cfg(test)]
mod tests;

pub use checkpoint::{CheckpointError, CHECKPOINT_VERSION};
pub use defaults::{suggested_depth, suggested_duration};
pub use effect::{Effect, GenerationSpec, Outcome, Question};
pub use error::TransitionError;
pub use event::{Event, EventKind};
pub use extract::{
    clean_intent, defers_choice, extract_slots, parse_confirmation, EXTRACTED_INTENT_MAX_CHARS,
};
pub use machine::{Conversation, GenerationRecord, MAX_GENERATION_ATTEMPTS};
pub use questions::{greeting, noun, summary};
pub use slots::{
    ContentType, Depth, DurationMinutes, Intent, SlotName, SlotUpdate, SlotValueError, Slots,
    TimePreference, Tone, Voice, DURATION_MAX, DURATION_MIN, INTENT_MAX_CHARS, VOICE_MAX_CHARS,
};
pub use state::State;
pub use structured::{extraction_schema, slot_update_from_json, StructuredSlotsError};

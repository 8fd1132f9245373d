//! The JSON form of a conversation, and the checks made when restoring one.
//!
//! A checkpoint carries a format version so later formats can be told apart.
//! Restoring refuses any record the machine itself could never have produced
//! (for example `Generating` with a missing slot), so every restored
//! conversation satisfies the same invariants as a live one.

use serde::{Deserialize, Serialize};

use super::machine::{Conversation, GenerationRecord, MAX_GENERATION_ATTEMPTS};
use super::slots::Slots;
use super::state::State;

/// Current checkpoint format.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("unsupported checkpoint version {0}")]
    UnsupportedVersion(u32),
    #[error("inconsistent conversation: {0}")]
    Inconsistent(&'static str),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConversationRecord {
    version: u32,
    state: State,
    slots: Slots,
    generation: GenerationRecord,
}

impl From<Conversation> for ConversationRecord {
    fn from(value: Conversation) -> Self {
        ConversationRecord {
            version: CHECKPOINT_VERSION,
            state: value.state,
            slots: value.slots,
            generation: value.generation,
        }
    }
}

impl TryFrom<ConversationRecord> for Conversation {
    type Error = CheckpointError;

    fn try_from(record: ConversationRecord) -> Result<Self, Self::Error> {
        if record.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::UnsupportedVersion(record.version));
        }
        let conversation = Conversation {
            state: record.state,
            slots: record.slots,
            generation: record.generation,
        };
        conversation.check_invariants()?;
        Ok(conversation)
    }
}

impl Conversation {
    /// Checks the invariants every reachable conversation satisfies.
    pub fn check_invariants(&self) -> Result<(), CheckpointError> {
        use CheckpointError::Inconsistent;
        let state = self.state;
        let generation = &self.generation;
        let expected = State::for_slots(&self.slots);

        if generation.attempts > MAX_GENERATION_ATTEMPTS {
            return Err(Inconsistent("more generation attempts than allowed"));
        }
        // `Greeting` is never persisted by the machine itself; a restored one
        // simply moves on with the next message, whatever it already knows.
        match state {
            State::IntentDiscovery | State::ContextGathering if state != expected => {
                return Err(Inconsistent(
                    "gathering state does not match the missing slots",
                ));
            }
            State::PracticeDetails
                if !matches!(expected, State::PracticeDetails | State::Confirmation) =>
            {
                return Err(Inconsistent(
                    "practice details asked before intent and time",
                ));
            }
            State::Confirmation | State::Generating | State::Completed | State::Failed
                if !self.slots.is_complete() =>
            {
                return Err(Inconsistent("a required slot is missing"));
            }
            _ => {}
        }
        if matches!(state, State::Generating | State::Completed) && generation.attempts == 0 {
            return Err(Inconsistent("generation without an attempt"));
        }
        if (state == State::Completed) != generation.content_id.is_some() {
            return Err(Inconsistent(
                "a content id belongs to a completed conversation, and only there",
            ));
        }
        if state == State::Failed
            && (generation.attempts < MAX_GENERATION_ATTEMPTS || generation.last_failure.is_none())
        {
            return Err(Inconsistent("failed before the attempts ran out"));
        }
        if generation.job_id.is_some()
            && !matches!(
                state,
                State::Generating | State::Completed | State::Cancelled
            )
        {
            return Err(Inconsistent("job id outside generation"));
        }
        Ok(())
    }
}

//! The stages of a guided session. Wire names are the variant names
//! (`"IntentDiscovery"`), exactly as the `state` frame carries them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::slots::{SlotName, Slots};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    /// Transient: the session has just been created.
    Greeting,
    /// Waiting for what the practice should help with.
    IntentDiscovery,
    /// Waiting for the time of day.
    ContextGathering,
    /// Waiting for length and depth (or, after a revision, for changes).
    PracticeDetails,
    /// Every required slot is known; waiting for the user's yes or no.
    Confirmation,
    /// The practice is being produced.
    Generating,
    /// Terminal: the practice exists.
    Completed,
    /// Terminal: the user stopped the session.
    Cancelled,
    /// Terminal: generation failed too many times.
    Failed,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Greeting,
        State::IntentDiscovery,
        State::ContextGathering,
        State::PracticeDetails,
        State::Confirmation,
        State::Generating,
        State::Completed,
        State::Cancelled,
        State::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Greeting => "Greeting",
            State::IntentDiscovery => "IntentDiscovery",
            State::ContextGathering => "ContextGathering",
            State::PracticeDetails => "PracticeDetails",
            State::Confirmation => "Confirmation",
            State::Generating => "Generating",
            State::Completed => "Completed",
            State::Cancelled => "Cancelled",
            State::Failed => "Failed",
        }
    }

    /// Terminal states accept no event at all.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Completed | State::Cancelled | State::Failed)
    }

    /// States in which the user's messages fill slots.
    pub fn is_gathering(self) -> bool {
        matches!(
            self,
            State::Greeting
                | State::IntentDiscovery
                | State::ContextGathering
                | State::PracticeDetails
        )
    }

    /// The state that asks for the first missing required slot, or
    /// `Confirmation` when nothing is missing.
    pub fn for_slots(slots: &Slots) -> State {
        match slots.missing_required().first() {
            Some(SlotName::Intent) => State::IntentDiscovery,
            Some(SlotName::TimePreference) => State::ContextGathering,
            Some(_) => State::PracticeDetails,
            None => State::Confirmation,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

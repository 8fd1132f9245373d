//! Why an event was refused. A refused event leaves the conversation unchanged.

use super::event::EventKind;
use super::state::State;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The conversation reached a terminal state; nothing more is accepted.
    #[error("the conversation has ended ({state}); {event} is not accepted")]
    Ended { state: State, event: EventKind },
    /// The event makes no sense in the current state.
    #[error("{event} is not allowed in state {state}")]
    NotAllowed { state: State, event: EventKind },
}

impl TransitionError {
    pub fn state(&self) -> State {
        match self {
            TransitionError::Ended { state, .. } | TransitionError::NotAllowed { state, .. } => {
                *state
            }
        }
    }
}

//! Turning a user's free text into the event the conversation expects, with
//! the deterministic extractor. (With a language model, the caller builds the
//! `SlotUpdate` from the model's JSON instead and routes it the same way.)

use super::event::Event;
use super::extract::{defers_choice, extract_slots, parse_confirmation};
use super::machine::Conversation;
use super::state::State;

impl Conversation {
    /// The event a message means in the current state, or `None` when no
    /// message is expected (while generating, or once finished).
    ///
    /// - At confirmation, any slot value is a correction (the summary is shown
    ///   again); otherwise yes confirms, no revises, anything else re-asks.
    /// - While asking for length and depth, "sounds good" or "you choose"
    ///   accepts the proposed values.
    /// - Elsewhere the message's slot values are applied.
    pub fn event_for_text(&self, text: &str) -> Option<Event> {
        let update = extract_slots(text, self.expecting());
        match self.state() {
            State::Generating | State::Completed | State::Cancelled | State::Failed => None,
            State::Confirmation if update.is_empty() => Some(match parse_confirmation(text) {
                Some(true) => Event::Confirm,
                Some(false) => Event::Revise,
                None => Event::Update(update),
            }),
            State::PracticeDetails
                if update.is_empty()
                    && (parse_confirmation(text) == Some(true) || defers_choice(text)) =>
            {
                Some(Event::AcceptDefaults)
            }
            _ => Some(Event::Update(update)),
        }
    }
}

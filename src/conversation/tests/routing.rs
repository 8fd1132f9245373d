//! From free text to events, and whole conversations driven by text.

use super::support::*;
use crate::conversation::{ContentType, Conversation, Depth, Effect, Event, State, TimePreference};

fn say(conversation: &mut Conversation, text: &str) -> Vec<Effect> {
    let event = conversation.event_for_text(text).unwrap();
    conversation.handle(event).unwrap()
}

#[test]
fn a_whole_session_by_text() {
    let (mut conversation, _) = Conversation::start(ContentType::GuidedMeditation, None);
    say(&mut conversation, "I need something to help me sleep");
    assert_eq!(conversation.state(), State::ContextGathering);
    say(&mut conversation, "before bed");
    assert_eq!(conversation.state(), State::PracticeDetails);
    say(&mut conversation, "ten minutes");
    say(&mut conversation, "deep, with a soft voice");
    assert_eq!(conversation.state(), State::Confirmation);
    let effects = say(&mut conversation, "yes please");
    assert_eq!(conversation.state(), State::Generating);
    let Some(Effect::StartGeneration(spec)) = effects.last() else {
        panic!("expected StartGeneration, got {effects:?}");
    };
    assert_eq!(spec.intent, intent("sleep"));
    assert_eq!(spec.time_preference, TimePreference::Night);
    assert_eq!(spec.duration_minutes, minutes(10));
    assert_eq!(spec.depth, Depth::Deep);
    assert_eq!(spec.voice.as_ref().map(|v| v.as_str()), Some("soft"));
    assert_eq!(conversation.event_for_text("hello?"), None);
}

#[test]
fn one_rich_message_reaches_confirmation() {
    let (mut conversation, _) = Conversation::start(ContentType::Ritual, None);
    say(
        &mut conversation,
        "Something for focus, 15 minutes in the morning, moderate",
    );
    assert_eq!(conversation.state(), State::Confirmation);
    assert_eq!(conversation.slots().intent, Some(intent("focus")));
}

#[test]
fn at_confirmation_no_revises_and_a_value_corrects() {
    let mut conversation = conversation_in(State::Confirmation);
    assert_eq!(conversation.event_for_text("no"), Some(Event::Revise));
    assert_eq!(
        conversation.event_for_text("make it 20 minutes"),
        Some(Event::Update(with_duration(20)))
    );
    assert_eq!(
        conversation.event_for_text("sounds good"),
        Some(Event::Confirm)
    );
    let effects = say(&mut conversation, "hmm");
    assert_eq!(effects[0], Effect::Unrecognised);
    assert_eq!(conversation.state(), State::Confirmation);
}

#[test]
fn accepting_the_proposal_while_asked_for_details() {
    let conversation = conversation_in(State::PracticeDetails);
    assert_eq!(
        conversation.event_for_text("sure"),
        Some(Event::AcceptDefaults)
    );
    assert_eq!(
        conversation.event_for_text("you choose"),
        Some(Event::AcceptDefaults)
    );
    assert_eq!(
        conversation.event_for_text("15"),
        Some(Event::Update(with_duration(15)))
    );
}

#[test]
fn no_event_once_finished() {
    for state in [
        State::Generating,
        State::Completed,
        State::Cancelled,
        State::Failed,
    ] {
        assert_eq!(conversation_in(state).event_for_text("yes"), None);
    }
}

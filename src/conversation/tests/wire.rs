//! JSON shapes: wire names, the `state` frame context, checkpoints.

use serde_json::json;

use super::support::*;
use crate::conversation::{
    CheckpointError, ContentType, Conversation, Effect, Event, Question, Slots, State,
};

#[test]
fn state_names_match_the_protocol() {
    let names: Vec<String> = State::ALL
        .iter()
        .map(|state| {
            serde_json::to_value(state)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "Greeting",
            "IntentDiscovery",
            "ContextGathering",
            "PracticeDetails",
            "Confirmation",
            "Generating",
            "Completed",
            "Cancelled",
            "Failed"
        ]
    );
    for state in State::ALL {
        assert_eq!(state.to_string(), state.as_str());
    }
}

#[test]
fn slots_serialise_as_the_state_frame_context() {
    let empty = Slots::new(ContentType::GuidedMeditation);
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        json!({
            "content_type": "guided_meditation",
            "intent": null,
            "time_preference": null,
            "duration_minutes": null,
            "depth": null,
            "tone": null,
            "voice": null
        })
    );
    let conversation = conversation_in(State::Confirmation);
    assert_eq!(
        serde_json::to_value(conversation.slots()).unwrap(),
        json!({
            "content_type": "guided_meditation",
            "intent": "sleep",
            "time_preference": "night",
            "duration_minutes": 10,
            "depth": "deep",
            "tone": "gentle",
            "voice": "female"
        })
    );
}

#[test]
fn content_types_use_snake_case() {
    for (content_type, name) in [
        (ContentType::Affirmation, "affirmation"),
        (ContentType::GuidedMeditation, "guided_meditation"),
        (ContentType::Ritual, "ritual"),
    ] {
        assert_eq!(serde_json::to_value(content_type).unwrap(), json!(name));
        assert_eq!(content_type.as_str(), name);
    }
}

#[test]
fn out_of_range_slot_values_do_not_deserialise() {
    for bad in [
        json!({"content_type": "ritual", "duration_minutes": 0}),
        json!({"content_type": "ritual", "duration_minutes": 61}),
        json!({"content_type": "ritual", "intent": "   "}),
        json!({"content_type": "ritual", "depth": "bottomless"}),
        json!({"content_type": "podcast"}),
    ] {
        assert!(
            serde_json::from_value::<Slots>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn a_checkpoint_round_trips_in_every_state() {
    for state in State::ALL {
        let conversation = conversation_in(state);
        let text = serde_json::to_string(&conversation).unwrap();
        let restored: Conversation = serde_json::from_str(&text).unwrap();
        assert_eq!(restored, conversation);
    }
}

#[test]
fn a_checkpoint_has_a_stable_shape() {
    let mut conversation = conversation_in(State::Generating);
    apply(
        &mut conversation,
        Event::GenerationStarted {
            job_id: "job-1".into(),
        },
    );
    assert_eq!(
        serde_json::to_value(&conversation).unwrap(),
        json!({
            "version": 1,
            "state": "Generating",
            "slots": {
                "content_type": "guided_meditation",
                "intent": "sleep",
                "time_preference": "night",
                "duration_minutes": 10,
                "depth": "deep",
                "tone": "gentle",
                "voice": "female"
            },
            "generation": {"attempts": 1, "job_id": "job-1", "content_id": null, "last_failure": null}
        })
    );
}

#[test]
fn a_restored_conversation_continues_where_it_stopped() {
    let conversation = conversation_in(State::PracticeDetails);
    let mut restored: Conversation =
        serde_json::from_str(&serde_json::to_string(&conversation).unwrap()).unwrap();
    assert_eq!(restored.current_question(), conversation.current_question());
    apply(&mut restored, Event::AcceptDefaults);
    assert_eq!(restored.state(), State::Confirmation);
}

fn record(
    state: &str,
    slots: serde_json::Value,
    generation: serde_json::Value,
) -> serde_json::Value {
    json!({"version": 1, "state": state, "slots": slots, "generation": generation})
}

fn no_generation() -> serde_json::Value {
    json!({"attempts": 0, "job_id": null, "content_id": null, "last_failure": null})
}

fn full_slots() -> serde_json::Value {
    json!({"content_type": "ritual", "intent": "focus", "time_preference": "morning",
           "duration_minutes": 15, "depth": "medium", "tone": null, "voice": null})
}

#[test]
fn inconsistent_checkpoints_are_refused() {
    let cases = [
        record(
            "Generating",
            json!({"content_type": "ritual", "intent": "focus"}),
            json!({"attempts": 1, "job_id": null, "content_id": null, "last_failure": null}),
        ),
        record(
            "Confirmation",
            json!({"content_type": "ritual"}),
            no_generation(),
        ),
        record("ContextGathering", full_slots(), no_generation()),
        record(
            "PracticeDetails",
            json!({"content_type": "ritual"}),
            no_generation(),
        ),
        record("Generating", full_slots(), no_generation()),
        record(
            "Completed",
            full_slots(),
            json!({"attempts": 1, "job_id": null, "content_id": null, "last_failure": null}),
        ),
        record(
            "Failed",
            full_slots(),
            json!({"attempts": 1, "job_id": null, "content_id": null, "last_failure": "x"}),
        ),
        record(
            "Confirmation",
            full_slots(),
            json!({"attempts": 9, "job_id": null, "content_id": null, "last_failure": null}),
        ),
        record(
            "Confirmation",
            full_slots(),
            json!({"attempts": 1, "job_id": "j", "content_id": null, "last_failure": null}),
        ),
    ];
    for case in cases {
        let error = serde_json::from_value::<Conversation>(case.clone()).unwrap_err();
        assert!(
            error.to_string().contains("inconsistent conversation"),
            "{case}: {error}"
        );
    }
}

#[test]
fn unknown_versions_and_fields_are_refused() {
    let mut future = record("Confirmation", full_slots(), no_generation());
    future["version"] = json!(2);
    let error = serde_json::from_value::<Conversation>(future).unwrap_err();
    assert!(error
        .to_string()
        .contains(&CheckpointError::UnsupportedVersion(2).to_string()));

    let mut extra = record("Confirmation", full_slots(), no_generation());
    extra["mood"] = json!("sunny");
    assert!(serde_json::from_value::<Conversation>(extra).is_err());
}

#[test]
fn effects_and_events_serialise_with_readable_tags() {
    let effect = Effect::Ask(Question::AskIntent {
        content_type: ContentType::Ritual,
    });
    let value = serde_json::to_value(&effect).unwrap();
    assert_eq!(
        value,
        json!({"effect": "ask", "question": "ask_intent", "content_type": "ritual"})
    );
    assert_eq!(serde_json::from_value::<Effect>(value).unwrap(), effect);

    let event = Event::Update(with_duration(5));
    let value = serde_json::to_value(&event).unwrap();
    assert_eq!(value["event"], json!("update"));
    assert_eq!(value["duration_minutes"], json!(5));
    assert_eq!(serde_json::from_value::<Event>(value).unwrap(), event);
}

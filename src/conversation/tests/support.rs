//! Shared builders for the conversation tests.

use crate::conversation::{
    ContentType, Conversation, Depth, DurationMinutes, Event, Intent, SlotUpdate, State,
    TimePreference, Tone, Voice,
};

pub fn intent(text: &str) -> Intent {
    Intent::new(text).unwrap()
}

pub fn minutes(value: i64) -> DurationMinutes {
    DurationMinutes::new(value).unwrap()
}

pub fn with_intent(text: &str) -> SlotUpdate {
    SlotUpdate {
        intent: Some(intent(text)),
        ..SlotUpdate::default()
    }
}

pub fn with_time(time: TimePreference) -> SlotUpdate {
    SlotUpdate {
        time_preference: Some(time),
        ..SlotUpdate::default()
    }
}

pub fn with_duration(value: i64) -> SlotUpdate {
    SlotUpdate {
        duration_minutes: Some(minutes(value)),
        ..SlotUpdate::default()
    }
}

pub fn with_depth(depth: Depth) -> SlotUpdate {
    SlotUpdate {
        depth: Some(depth),
        ..SlotUpdate::default()
    }
}

pub fn with_tone(tone: Tone) -> SlotUpdate {
    SlotUpdate {
        tone: Some(tone),
        ..SlotUpdate::default()
    }
}

pub fn everything() -> SlotUpdate {
    SlotUpdate {
        intent: Some(intent("sleep")),
        time_preference: Some(TimePreference::Night),
        duration_minutes: Some(minutes(10)),
        depth: Some(Depth::Deep),
        tone: Some(Tone::Gentle),
        voice: Some(Voice::new("female").unwrap()),
    }
}

pub fn apply(conversation: &mut Conversation, event: Event) {
    conversation.handle(event).unwrap();
}

/// A guided meditation conversation brought to `state` by ordinary events
/// (`Greeting` is only reachable by restoring a checkpoint).
pub fn conversation_in(state: State) -> Conversation {
    if state == State::Greeting {
        let record = serde_json::json!({
            "version": 1,
            "state": "Greeting",
            "slots": {"content_type": "guided_meditation"},
            "generation": {"attempts": 0, "job_id": null, "content_id": null, "last_failure": null}
        });
        return serde_json::from_value(record).unwrap();
    }
    let (mut conversation, _) = Conversation::start(ContentType::GuidedMeditation, None);
    let steps: Vec<Event> = match state {
        State::IntentDiscovery => vec![],
        State::ContextGathering => vec![Event::Update(with_intent("sleep"))],
        State::PracticeDetails => vec![
            Event::Update(with_intent("sleep")),
            Event::Update(with_time(TimePreference::Night)),
        ],
        State::Confirmation => vec![Event::Update(everything())],
        State::Generating => vec![Event::Update(everything()), Event::Confirm],
        State::Completed => vec![
            Event::Update(everything()),
            Event::Confirm,
            Event::GenerationSucceeded {
                content_id: "content-1".into(),
            },
        ],
        State::Cancelled => vec![Event::Cancel],
        State::Failed => {
            let mut steps = vec![Event::Update(everything())];
            for _ in 0..crate::conversation::MAX_GENERATION_ATTEMPTS {
                steps.push(Event::Confirm);
                steps.push(Event::GenerationFailed {
                    reason: "upstream".into(),
                });
            }
            steps
        }
        State::Greeting => vec![],
    };
    for step in steps {
        apply(&mut conversation, step);
    }
    assert_eq!(conversation.state(), state);
    conversation
}

//! Every (state, event) pair, and the effects of each transition.

use super::support::*;
use crate::conversation::{
    ContentType, Conversation, Depth, Effect, Event, EventKind, Outcome, Question, SlotName, State,
    TimePreference, Tone, TransitionError, MAX_GENERATION_ATTEMPTS,
};

fn sample_event(kind: EventKind) -> Event {
    match kind {
        // A tone alone never completes a stage, so it shows the "stay" behaviour.
        EventKind::Update => Event::Update(with_tone(Tone::Warm)),
        EventKind::AcceptDefaults => Event::AcceptDefaults,
        EventKind::Confirm => Event::Confirm,
        EventKind::Revise => Event::Revise,
        EventKind::GenerationStarted => Event::GenerationStarted {
            job_id: "job-1".into(),
        },
        EventKind::GenerationSucceeded => Event::GenerationSucceeded {
            content_id: "content-9".into(),
        },
        EventKind::GenerationFailed => Event::GenerationFailed {
            reason: "timeout".into(),
        },
        EventKind::Cancel => Event::Cancel,
    }
}

const KINDS: [EventKind; 8] = [
    EventKind::Update,
    EventKind::AcceptDefaults,
    EventKind::Confirm,
    EventKind::Revise,
    EventKind::GenerationStarted,
    EventKind::GenerationSucceeded,
    EventKind::GenerationFailed,
    EventKind::Cancel,
];

/// The state after the event, or `None` when the event is refused.
fn expected(state: State, kind: EventKind) -> Option<State> {
    use EventKind as E;
    use State as S;
    match (state, kind) {
        (S::Completed | S::Cancelled | S::Failed, _) => None,
        (_, E::Cancel) => Some(S::Cancelled),
        (S::Greeting, E::Update) => Some(S::IntentDiscovery),
        (S::IntentDiscovery | S::ContextGathering | S::PracticeDetails, E::Update) => Some(state),
        (S::PracticeDetails, E::AcceptDefaults) => Some(S::Confirmation),
        (S::Confirmation, E::Update) => Some(S::Confirmation),
        (S::Confirmation, E::Confirm) => Some(S::Generating),
        (S::Confirmation, E::Revise) => Some(S::PracticeDetails),
        (S::Generating, E::GenerationStarted) => Some(S::Generating),
        (S::Generating, E::GenerationSucceeded) => Some(S::Completed),
        (S::Generating, E::GenerationFailed) => Some(S::Confirmation),
        _ => None,
    }
}

#[test]
fn every_state_event_pair_follows_the_table() {
    for state in State::ALL {
        for kind in KINDS {
            let mut conversation = conversation_in(state);
            let before = conversation.clone();
            let result = conversation.handle(sample_event(kind));
            match expected(state, kind) {
                Some(next) => {
                    assert!(result.is_ok(), "{state} + {kind}: {result:?}");
                    assert_eq!(conversation.state(), next, "{state} + {kind}");
                }
                None => {
                    let error = result.unwrap_err();
                    assert_eq!(error.state(), state);
                    let ended = matches!(error, TransitionError::Ended { .. });
                    assert_eq!(ended, state.is_terminal(), "{state} + {kind}: {error}");
                    assert_eq!(conversation, before, "{state} + {kind} changed the machine");
                }
            }
            conversation.check_invariants().unwrap();
        }
    }
}

#[test]
fn start_without_intent_asks_for_it() {
    let (conversation, effects) = Conversation::start(ContentType::Ritual, None);
    assert_eq!(conversation.state(), State::IntentDiscovery);
    assert_eq!(
        effects,
        vec![
            Effect::Greet {
                content_type: ContentType::Ritual
            },
            Effect::StateChanged {
                from: State::Greeting,
                to: State::IntentDiscovery
            },
            Effect::Ask(Question::AskIntent {
                content_type: ContentType::Ritual
            }),
        ]
    );
    assert_eq!(conversation.expecting(), Some(SlotName::Intent));
}

#[test]
fn start_with_intent_skips_intent_discovery() {
    let (conversation, effects) = Conversation::start(
        ContentType::Affirmation,
        Some("  confidence at work ".into()),
    );
    assert_eq!(conversation.state(), State::ContextGathering);
    assert_eq!(
        conversation.slots().intent.as_ref().map(|i| i.as_str()),
        Some("confidence at work")
    );
    assert_eq!(
        effects.last(),
        Some(&Effect::Ask(Question::AskTime {
            content_type: ContentType::Affirmation
        }))
    );
}

#[test]
fn start_with_blank_intent_asks_for_it() {
    let (conversation, _) = Conversation::start(ContentType::Ritual, Some(" \n ".into()));
    assert_eq!(conversation.state(), State::IntentDiscovery);
}

#[test]
fn start_with_overlong_intent_keeps_the_first_500_characters() {
    let (conversation, _) = Conversation::start(ContentType::Ritual, Some("a".repeat(700)));
    let kept = conversation.slots().intent.clone().unwrap();
    assert_eq!(kept.as_str().chars().count(), 500);
}

#[test]
fn one_slot_at_a_time_walks_every_stage() {
    let (mut conversation, _) = Conversation::start(ContentType::GuidedMeditation, None);
    let steps = [
        (with_intent("sleep"), State::ContextGathering),
        (with_time(TimePreference::Night), State::PracticeDetails),
        (with_duration(12), State::PracticeDetails),
        (with_depth(Depth::Deep), State::Confirmation),
    ];
    for (update, next) in steps {
        let effects = conversation.handle(Event::Update(update)).unwrap();
        assert_eq!(conversation.state(), next);
        assert!(matches!(effects.last(), Some(Effect::Ask(_))));
    }
}

#[test]
fn practice_details_asks_duration_then_depth_with_suggestions() {
    let mut conversation = conversation_in(State::PracticeDetails);
    assert_eq!(
        conversation.current_question(),
        Some(Question::AskDuration {
            content_type: ContentType::GuidedMeditation,
            suggested: minutes(10)
        })
    );
    apply(&mut conversation, Event::Update(with_duration(20)));
    assert_eq!(
        conversation.current_question(),
        Some(Question::AskDepth {
            content_type: ContentType::GuidedMeditation,
            suggested: Depth::Medium
        })
    );
    assert_eq!(conversation.expecting(), Some(SlotName::Depth));
}

#[test]
fn a_message_filling_several_slots_jumps_ahead() {
    let (mut conversation, _) = Conversation::start(ContentType::GuidedMeditation, None);
    let mut update = with_intent("stress");
    update.time_preference = Some(TimePreference::Evening);
    update.duration_minutes = Some(minutes(15));
    let effects = conversation.handle(Event::Update(update)).unwrap();
    assert_eq!(conversation.state(), State::PracticeDetails);
    assert_eq!(
        effects,
        vec![
            Effect::SlotsUpdated {
                slots: vec![
                    SlotName::Intent,
                    SlotName::TimePreference,
                    SlotName::DurationMinutes
                ]
            },
            Effect::StateChanged {
                from: State::IntentDiscovery,
                to: State::PracticeDetails
            },
            Effect::Ask(Question::AskDepth {
                content_type: ContentType::GuidedMeditation,
                suggested: Depth::Medium
            }),
        ]
    );
}

#[test]
fn a_complete_message_goes_straight_to_confirmation() {
    let (mut conversation, _) = Conversation::start(ContentType::GuidedMeditation, None);
    let effects = conversation.handle(Event::Update(everything())).unwrap();
    assert_eq!(conversation.state(), State::Confirmation);
    let Some(Effect::Ask(Question::Confirm { summary })) = effects.last() else {
        panic!("expected a confirmation question, got {effects:?}");
    };
    assert!(
        summary.contains("10-minute deep guided meditation"),
        "{summary}"
    );
}

#[test]
fn a_correction_updates_an_earlier_slot_in_place() {
    let mut conversation = conversation_in(State::PracticeDetails);
    let effects = conversation
        .handle(Event::Update(with_intent("calm before a presentation")))
        .unwrap();
    assert_eq!(conversation.state(), State::PracticeDetails);
    assert_eq!(
        conversation.slots().intent,
        Some(intent("calm before a presentation"))
    );
    assert_eq!(
        effects[0],
        Effect::SlotsUpdated {
            slots: vec![SlotName::Intent]
        }
    );
}

#[test]
fn a_correction_at_confirmation_shows_the_new_summary() {
    let mut conversation = conversation_in(State::Confirmation);
    let effects = conversation
        .handle(Event::Update(with_duration(25)))
        .unwrap();
    assert_eq!(conversation.state(), State::Confirmation);
    let Some(Effect::Ask(Question::Confirm { summary })) = effects.last() else {
        panic!("expected a confirmation question, got {effects:?}");
    };
    assert!(summary.contains("25-minute"), "{summary}");
}

#[test]
fn an_empty_update_repeats_the_question() {
    for state in [
        State::IntentDiscovery,
        State::ContextGathering,
        State::PracticeDetails,
        State::Confirmation,
    ] {
        let mut conversation = conversation_in(state);
        let question = conversation.current_question().unwrap();
        let effects = conversation
            .handle(Event::Update(Default::default()))
            .unwrap();
        assert_eq!(effects, vec![Effect::Unrecognised, Effect::Ask(question)]);
        assert_eq!(conversation.state(), state);
    }
}

#[test]
fn repeating_a_known_value_reports_no_change() {
    let mut conversation = conversation_in(State::ContextGathering);
    let effects = conversation
        .handle(Event::Update(with_intent("sleep")))
        .unwrap();
    assert_eq!(
        effects,
        vec![Effect::Ask(Question::AskTime {
            content_type: ContentType::GuidedMeditation
        })]
    );
}

#[test]
fn accepting_defaults_fills_only_what_is_missing() {
    let mut conversation = conversation_in(State::PracticeDetails);
    apply(&mut conversation, Event::Update(with_duration(30)));
    let effects = conversation.handle(Event::AcceptDefaults).unwrap();
    assert_eq!(conversation.state(), State::Confirmation);
    assert_eq!(conversation.slots().duration_minutes, Some(minutes(30)));
    assert_eq!(conversation.slots().depth, Some(Depth::Medium));
    assert_eq!(
        effects[0],
        Effect::SlotsUpdated {
            slots: vec![SlotName::Depth]
        }
    );
}

#[test]
fn suggestions_depend_on_the_content_type() {
    for (content_type, duration, depth) in [
        (ContentType::Affirmation, 3, Depth::Shallow),
        (ContentType::GuidedMeditation, 10, Depth::Medium),
        (ContentType::Ritual, 15, Depth::Medium),
    ] {
        let (mut conversation, _) = Conversation::start(content_type, Some("focus".into()));
        apply(
            &mut conversation,
            Event::Update(with_time(TimePreference::Morning)),
        );
        apply(&mut conversation, Event::AcceptDefaults);
        assert_eq!(
            conversation.slots().duration_minutes,
            Some(minutes(duration))
        );
        assert_eq!(conversation.slots().depth, Some(depth));
    }
}

#[test]
fn revising_asks_what_to_change_and_returns_to_confirmation() {
    let mut conversation = conversation_in(State::Confirmation);
    let effects = conversation.handle(Event::Revise).unwrap();
    assert_eq!(conversation.state(), State::PracticeDetails);
    assert_eq!(
        effects.last(),
        Some(&Effect::Ask(Question::AskChanges {
            content_type: ContentType::GuidedMeditation
        }))
    );
    assert_eq!(conversation.expecting(), None);

    // Nothing understood: keep asking what to change.
    let effects = conversation
        .handle(Event::Update(Default::default()))
        .unwrap();
    assert_eq!(effects[0], Effect::Unrecognised);
    assert_eq!(conversation.state(), State::PracticeDetails);

    apply(&mut conversation, Event::Update(with_depth(Depth::Shallow)));
    assert_eq!(conversation.state(), State::Confirmation);
    assert_eq!(conversation.slots().depth, Some(Depth::Shallow));
}

#[test]
fn accepting_after_a_revision_keeps_the_values() {
    let mut conversation = conversation_in(State::Confirmation);
    let slots = conversation.slots().clone();
    apply(&mut conversation, Event::Revise);
    apply(&mut conversation, Event::AcceptDefaults);
    assert_eq!(conversation.state(), State::Confirmation);
    assert_eq!(conversation.slots(), &slots);
}

#[test]
fn confirming_starts_generation_with_every_slot() {
    let mut conversation = conversation_in(State::Confirmation);
    let effects = conversation.handle(Event::Confirm).unwrap();
    let Some(Effect::StartGeneration(spec)) = effects.last() else {
        panic!("expected StartGeneration, got {effects:?}");
    };
    assert_eq!(spec.content_type, ContentType::GuidedMeditation);
    assert_eq!(spec.intent, intent("sleep"));
    assert_eq!(spec.time_preference, TimePreference::Night);
    assert_eq!(spec.duration_minutes, minutes(10));
    assert_eq!(spec.depth, Depth::Deep);
    assert_eq!(spec.tone, Some(Tone::Gentle));
    assert_eq!(spec.voice.as_ref().map(|v| v.as_str()), Some("female"));
    assert_eq!(spec.attempt, 1);
    assert_eq!(conversation.expecting(), None);
    assert_eq!(conversation.current_question(), None);
}

#[test]
fn generation_started_records_the_job_once() {
    let mut conversation = conversation_in(State::Generating);
    let effects = conversation
        .handle(Event::GenerationStarted {
            job_id: "job-7".into(),
        })
        .unwrap();
    assert!(effects.is_empty());
    assert_eq!(conversation.generation().job_id.as_deref(), Some("job-7"));
    let again = conversation.handle(Event::GenerationStarted {
        job_id: "job-8".into(),
    });
    assert_eq!(
        again,
        Err(TransitionError::NotAllowed {
            state: State::Generating,
            event: EventKind::GenerationStarted
        })
    );
}

#[test]
fn success_completes_the_conversation() {
    let mut conversation = conversation_in(State::Generating);
    let effects = conversation
        .handle(Event::GenerationSucceeded {
            content_id: "c-42".into(),
        })
        .unwrap();
    assert_eq!(
        effects,
        vec![
            Effect::StateChanged {
                from: State::Generating,
                to: State::Completed
            },
            Effect::Finished(Outcome::Completed {
                content_id: "c-42".into()
            }),
        ]
    );
    assert_eq!(
        conversation.generation().content_id.as_deref(),
        Some("c-42")
    );
    assert!(conversation.is_terminal());
}

#[test]
fn failure_returns_to_confirmation_for_a_retry() {
    let mut conversation = conversation_in(State::Generating);
    let effects = conversation
        .handle(Event::GenerationFailed {
            reason: "upstream_timeout".into(),
        })
        .unwrap();
    assert_eq!(conversation.state(), State::Confirmation);
    assert_eq!(
        effects[1],
        Effect::GenerationFailed {
            reason: "upstream_timeout".into(),
            retries_left: MAX_GENERATION_ATTEMPTS - 1
        }
    );
    assert!(matches!(
        effects.last(),
        Some(Effect::Ask(Question::Confirm { .. }))
    ));

    let effects = conversation.handle(Event::Confirm).unwrap();
    let Some(Effect::StartGeneration(spec)) = effects.last() else {
        panic!("expected StartGeneration, got {effects:?}");
    };
    assert_eq!(spec.attempt, 2);
}

#[test]
fn the_last_allowed_failure_ends_in_failed() {
    let mut conversation = conversation_in(State::Confirmation);
    for attempt in 1..=MAX_GENERATION_ATTEMPTS {
        apply(&mut conversation, Event::Confirm);
        let effects = conversation
            .handle(Event::GenerationFailed {
                reason: format!("failure {attempt}"),
            })
            .unwrap();
        if attempt < MAX_GENERATION_ATTEMPTS {
            assert_eq!(conversation.state(), State::Confirmation);
        } else {
            assert_eq!(conversation.state(), State::Failed);
            assert_eq!(
                effects.last(),
                Some(&Effect::Finished(Outcome::Failed {
                    reason: format!("failure {attempt}")
                }))
            );
        }
    }
}

#[test]
fn cancelling_while_generating_stops_the_job() {
    let mut conversation = conversation_in(State::Generating);
    let effects = conversation.handle(Event::Cancel).unwrap();
    assert_eq!(
        effects,
        vec![
            Effect::CancelGeneration,
            Effect::StateChanged {
                from: State::Generating,
                to: State::Cancelled
            },
            Effect::Finished(Outcome::Cancelled),
        ]
    );
}

#[test]
fn cancelling_while_gathering_just_ends() {
    let mut conversation = conversation_in(State::ContextGathering);
    let effects = conversation.handle(Event::Cancel).unwrap();
    assert_eq!(
        effects,
        vec![
            Effect::StateChanged {
                from: State::ContextGathering,
                to: State::Cancelled
            },
            Effect::Finished(Outcome::Cancelled),
        ]
    );
}

#[test]
fn terminal_states_refuse_everything() {
    for state in [State::Completed, State::Cancelled, State::Failed] {
        let mut conversation = conversation_in(state);
        for kind in KINDS {
            assert_eq!(
                conversation.handle(sample_event(kind)),
                Err(TransitionError::Ended { state, event: kind })
            );
        }
        assert_eq!(conversation.current_question(), None);
    }
}

#[test]
fn greeting_restored_from_a_checkpoint_accepts_messages() {
    let mut conversation = conversation_in(State::Greeting);
    assert_eq!(
        conversation.current_question(),
        Some(Question::AskIntent {
            content_type: ContentType::GuidedMeditation
        })
    );
    apply(&mut conversation, Event::Update(with_intent("focus")));
    assert_eq!(conversation.state(), State::ContextGathering);
}

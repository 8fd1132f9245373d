//! Properties over arbitrary event sequences and arbitrary text.

use proptest::prelude::*;

use crate::conversation::{
    defers_choice, extract_slots, parse_confirmation, slot_update_from_json, ContentType,
    Conversation, Depth, DurationMinutes, Effect, Event, Intent, SlotName, SlotUpdate, State,
    TimePreference, Tone, TransitionError, Voice, DURATION_MAX, DURATION_MIN,
    EXTRACTED_INTENT_MAX_CHARS,
};

fn content_type() -> impl Strategy<Value = ContentType> {
    prop::sample::select(ContentType::ALL.to_vec())
}

fn intent() -> impl Strategy<Value = Intent> {
    prop_oneof![
        prop::sample::select(vec![
            "sleep",
            "stress",
            "calm before a presentation",
            "focus"
        ]),
        Just("gratitude for small things"),
    ]
    .prop_map(|text| Intent::new(text).unwrap())
}

fn slot_update() -> impl Strategy<Value = SlotUpdate> {
    (
        prop::option::of(intent()),
        prop::option::of(prop::sample::select(TimePreference::ALL.to_vec())),
        prop::option::of(
            (DURATION_MIN..=DURATION_MAX).prop_map(|m| DurationMinutes::clamped(m.into())),
        ),
        prop::option::of(prop::sample::select(Depth::ALL.to_vec())),
        prop::option::of(prop::sample::select(Tone::ALL.to_vec())),
        prop::option::of(
            prop::sample::select(vec!["female", "male", "calm"])
                .prop_map(|v| Voice::new(v).unwrap()),
        ),
    )
        .prop_map(
            |(intent, time_preference, duration_minutes, depth, tone, voice)| SlotUpdate {
                intent,
                time_preference,
                duration_minutes,
                depth,
                tone,
                voice,
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => slot_update().prop_map(Event::Update),
        1 => Just(Event::AcceptDefaults),
        2 => Just(Event::Confirm),
        1 => Just(Event::Revise),
        1 => "[a-z0-9-]{1,8}".prop_map(|job_id| Event::GenerationStarted { job_id }),
        1 => "[a-z0-9-]{1,8}".prop_map(|content_id| Event::GenerationSucceeded { content_id }),
        2 => "[a-z ]{0,12}".prop_map(|reason| Event::GenerationFailed { reason }),
        1 => Just(Event::Cancel),
    ]
}

/// Text made of phrases the parser knows, mixed with arbitrary words.
fn chatty_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        prop::sample::select(vec![
            "before bed",
            "tonight",
            "in the morning",
            "not",
            "no",
            "yes",
            "10 minutes",
            "ten min",
            "half an hour",
            "an hour and a half",
            "1.5 hours",
            "7pm",
            "a.m.",
            "deep",
            "light",
            "quick",
            "not too deep",
            "medium",
            "warm",
            "gentle",
            "voice",
            "female voice",
            "for sleep",
            "help with stress",
            "I need something to help me",
            "doesn't matter",
            "you choose",
            "one",
            "twenty",
            "five",
            "and a half",
            "a",
            "an",
            "hour",
            "minutes",
            ",",
            ".",
            "!",
            "?",
            "don't",
            "but",
            "sure",
            "12",
            "0",
            "999999",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ];
    prop::collection::vec(fragment, 0..12).prop_map(|parts| parts.join(" "))
}

fn expecting() -> impl Strategy<Value = Option<SlotName>> {
    prop::option::of(prop::sample::select(SlotName::ALL.to_vec()))
}

fn check_step(
    before: &Conversation,
    after: &Conversation,
    result: &Result<Vec<Effect>, TransitionError>,
) {
    after.check_invariants().unwrap();
    if after.state() == State::Generating {
        assert!(after.slots().is_complete());
    }
    if let Some(duration) = after.slots().duration_minutes {
        assert!((DURATION_MIN..=DURATION_MAX).contains(&duration.get()));
    }
    match result {
        Err(error) => {
            assert_eq!(before, after, "a refused event changed the machine");
            assert_eq!(error.state(), before.state());
            assert_eq!(
                matches!(error, TransitionError::Ended { .. }),
                before.is_terminal()
            );
        }
        Ok(effects) => {
            assert!(!before.is_terminal(), "a terminal state accepted an event");
            for effect in effects {
                let json = serde_json::to_value(effect).unwrap();
                assert_eq!(&serde_json::from_value::<Effect>(json).unwrap(), effect);
                match effect {
                    Effect::StateChanged { from, to } => {
                        assert_eq!(*from, before.state());
                        assert_eq!(*to, after.state());
                    }
                    Effect::StartGeneration(spec) => {
                        assert_eq!(after.state(), State::Generating);
                        assert_eq!(Some(spec), after.generation_spec().as_ref());
                    }
                    Effect::Finished(_) => assert!(after.is_terminal()),
                    _ => {}
                }
            }
            let asked = effects.iter().rev().find_map(|effect| match effect {
                Effect::Ask(question) => Some(question.clone()),
                _ => None,
            });
            if let Some(question) = asked {
                assert_eq!(Some(question), after.current_question());
            }
            let changed = effects
                .iter()
                .any(|e| matches!(e, Effect::StateChanged { .. }));
            assert_eq!(changed, before.state() != after.state());
        }
    }
    let json = serde_json::to_string(after).unwrap();
    let restored: Conversation = serde_json::from_str(&json).unwrap();
    assert_eq!(&restored, after);
}

proptest! {
    #[test]
    fn arbitrary_events_keep_the_machine_valid(
        content_type in content_type(),
        start_intent in prop::option::of("\\PC{0,40}"),
        events in prop::collection::vec(event(), 0..40),
    ) {
        let (mut conversation, effects) = Conversation::start(content_type, start_intent);
        conversation.check_invariants().unwrap();
        prop_assert!(matches!(effects.last(), Some(Effect::Ask(_))));
        for event in events {
            let before = conversation.clone();
            let result = conversation.handle(event);
            check_step(&before, &conversation, &result);
        }
    }

    #[test]
    fn terminal_states_accept_nothing(
        events in prop::collection::vec(event(), 0..60),
        probes in prop::collection::vec(event(), 1..10),
    ) {
        let (mut conversation, _) = Conversation::start(ContentType::GuidedMeditation, None);
        for event in events {
            let _ = conversation.handle(event);
            if conversation.is_terminal() {
                break;
            }
        }
        if conversation.is_terminal() {
            let frozen = conversation.clone();
            for probe in probes {
                let is_ended = matches!(
                    conversation.handle(probe),
                    Err(TransitionError::Ended { .. })
                );
                prop_assert!(is_ended);
                prop_assert_eq!(&conversation, &frozen);
            }
        }
    }

    #[test]
    fn text_always_yields_an_accepted_event(
        content_type in content_type(),
        setup in prop::collection::vec(event(), 0..12),
        messages in prop::collection::vec(chatty_text(), 1..6),
    ) {
        let (mut conversation, _) = Conversation::start(content_type, None);
        for event in setup {
            let _ = conversation.handle(event);
        }
        for message in messages {
            let before = conversation.clone();
            match conversation.event_for_text(&message) {
                Some(event) => {
                    let result = conversation.handle(event);
                    prop_assert!(result.is_ok(), "{:?} in {}: {:?}", message, before.state(), result);
                    check_step(&before, &conversation, &result);
                }
                None => prop_assert!(matches!(
                    conversation.state(),
                    State::Generating | State::Completed | State::Cancelled | State::Failed
                )),
            }
        }
    }

    #[test]
    fn the_parser_accepts_any_text(text in chatty_text(), expecting in expecting()) {
        let update = extract_slots(&text, expecting);
        if let Some(intent) = &update.intent {
            prop_assert!(intent.as_str().chars().count() <= EXTRACTED_INTENT_MAX_CHARS);
            prop_assert!(!intent.as_str().trim().is_empty());
        }
        if let Some(duration) = update.duration_minutes {
            prop_assert!((DURATION_MIN..=DURATION_MAX).contains(&duration.get()));
        }
        let _ = parse_confirmation(&text);
        let _ = defers_choice(&text);
    }

    #[test]
    fn the_parser_accepts_any_unicode(text in "\\PC{0,200}", expecting in expecting()) {
        let update = extract_slots(&text, expecting);
        if let Some(intent) = &update.intent {
            prop_assert!(intent.as_str().chars().count() <= EXTRACTED_INTENT_MAX_CHARS);
        }
        let _ = parse_confirmation(&text);
    }

    #[test]
    fn spoken_minutes_are_clamped_into_range(minutes in 0u32..100_000) {
        let update = extract_slots(&format!("{minutes} minutes"), None);
        let expected = minutes.clamp(1, 60) as u8;
        prop_assert_eq!(update.duration_minutes.map(|d| d.get()), Some(expected));
    }

    #[test]
    fn structured_answers_round_trip(update in slot_update()) {
        let value = serde_json::to_value(&update).unwrap();
        prop_assert_eq!(slot_update_from_json(&value), Ok(update));
    }
}

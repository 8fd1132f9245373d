//! The deterministic parser, phrase by phrase.

use crate::conversation::{
    clean_intent, defers_choice, extract_slots, parse_confirmation, SlotName, SlotUpdate,
};

/// Compact description of an update: "intent=sleep time=night duration=10".
fn describe(update: &SlotUpdate) -> String {
    let mut parts = Vec::new();
    if let Some(intent) = &update.intent {
        parts.push(format!("intent={intent}"));
    }
    if let Some(time) = update.time_preference {
        parts.push(format!("time={time}"));
    }
    if let Some(duration) = update.duration_minutes {
        parts.push(format!("duration={duration}"));
    }
    if let Some(depth) = update.depth {
        parts.push(format!("depth={depth}"));
    }
    if let Some(tone) = update.tone {
        parts.push(format!("tone={tone}"));
    }
    if let Some(voice) = &update.voice {
        parts.push(format!("voice={voice}"));
    }
    parts.join(" ")
}

fn check(expecting: Option<SlotName>, cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (text, expected) in cases {
        let got = describe(&extract_slots(text, expecting));
        if got != *expected {
            failures.push(format!("{text:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn times_of_day() {
    check(
        Some(SlotName::TimePreference),
        &[
            ("before bed", "time=night"),
            ("right before bedtime", "time=night"),
            ("at night", "time=night"),
            ("when I go to bed", "time=night"),
            ("tonight", "time=evening"),
            ("in the evening", "time=evening"),
            ("after work", "time=evening"),
            ("in the morning", "time=morning"),
            ("Mornings, when I wake up", "time=morning"),
            ("first thing", "time=morning"),
            ("at lunch", "time=midday"),
            ("around noon", "time=midday"),
            ("midday", "time=midday"),
            ("mid-day", "time=midday"),
            ("in the afternoon", "time=afternoon"),
            ("after lunch", "time=afternoon"),
            ("anytime", "time=anytime"),
            ("any time of day", "time=anytime"),
            ("whenever", "time=anytime"),
            ("no preference", "time=anytime"),
            ("I don't have a preference", "time=anytime"),
            ("before work", "time=morning"),
            ("it doesn't matter", "time=anytime"),
            ("I don’t mind", "time=anytime"),
            ("around 7am", "time=morning"),
            ("7:30 a.m.", "time=morning"),
            ("at 1 pm", "time=afternoon"),
            ("7pm", "time=evening"),
            ("10 pm", "time=night"),
            ("12pm", "time=midday"),
            ("not in the morning, in the evening", "time=evening"),
            ("morning, no wait, evening", "time=evening"),
            ("not at night", ""),
            ("hmm", ""),
        ],
    );
}

#[test]
fn indifference_means_anytime_only_when_the_time_was_asked() {
    check(
        Some(SlotName::Depth),
        &[("doesn't matter", ""), ("I don't mind", "")],
    );
}

#[test]
fn durations() {
    check(
        Some(SlotName::DurationMinutes),
        &[
            ("10 minutes", "duration=10"),
            ("10 mins", "duration=10"),
            ("10min", "duration=10"),
            ("10m", "duration=10"),
            ("ten min", "duration=10"),
            ("Ten Minutes please", "duration=10"),
            ("twenty five minutes", "duration=25"),
            ("twenty-five", "duration=25"),
            ("half an hour", "duration=30"),
            ("a half hour", "duration=30"),
            ("quarter of an hour", "duration=15"),
            ("a quarter hour", "duration=15"),
            ("1 hour", "duration=60"),
            ("an hour", "duration=60"),
            ("1h", "duration=60"),
            ("2 hours", "duration=60"),
            ("an hour and a half", "duration=60"),
            ("one and a half hours", "duration=60"),
            ("1.5 hours", "duration=60"),
            ("0.5 hours", "duration=30"),
            ("90 seconds", "duration=2"),
            ("30 secs", "duration=1"),
            ("0 minutes", "duration=1"),
            ("a minute", "duration=1"),
            ("a couple of minutes", "duration=2"),
            ("a few minutes", "duration=3"),
            ("5 or 10 minutes", "duration=10"),
            ("not 10 minutes, 20 minutes", "duration=20"),
            ("15", "duration=15"),
            ("about 20", "duration=20"),
            ("maybe twenty", "duration=20"),
            ("100", "duration=60"),
            ("one", "duration=1"),
            ("the deep one", "depth=deep"),
            ("hmm", ""),
        ],
    );
}

#[test]
fn bare_numbers_count_only_when_the_length_was_asked() {
    check(
        Some(SlotName::TimePreference),
        &[("15", ""), ("15 minutes", "duration=15")],
    );
    check(None, &[("20", ""), ("20 min", "duration=20")]);
}

#[test]
fn depths() {
    check(
        Some(SlotName::Depth),
        &[
            ("quick", "depth=shallow"),
            ("something light", "depth=shallow"),
            ("quick and light", "depth=shallow"),
            ("shallow", "depth=shallow"),
            ("medium", "depth=medium"),
            ("moderate please", "depth=medium"),
            ("something in between", "depth=medium"),
            ("not too deep", "depth=medium"),
            ("deep", "depth=deep"),
            ("Let's go deep", "depth=deep"),
            ("intense", "depth=deep"),
            ("really immersive", "depth=deep"),
            ("not deep", ""),
            ("deep breathing", ""),
            ("a deep voice", "voice=deep"),
            ("I light a candle", ""),
            ("to light incense", ""),
        ],
    );
}

#[test]
fn tones_and_voices() {
    check(
        None,
        &[
            ("in a warm tone", "tone=warm"),
            ("gentle and soft", "tone=gentle"),
            ("something soothing", "tone=gentle"),
            ("upbeat!", "tone=energising"),
            ("energizing", "tone=energising"),
            ("energising", "tone=energising"),
            ("neutral, matter of fact", "tone=neutral"),
            ("not energetic, gentle", "tone=gentle"),
            ("a female voice", "voice=female"),
            ("a man's voice", "voice=male"),
            ("soft voice", "voice=soft"),
            ("can you make it warmer", "tone=warm"),
            ("warm tone with a male voice", "tone=warm voice=male"),
        ],
    );
}

#[test]
fn intents_when_the_intent_was_asked() {
    check(
        Some(SlotName::Intent),
        &[
            ("sleep", "intent=sleep"),
            ("I need something to help me sleep", "intent=sleep"),
            ("I need something to help me with stress.", "intent=stress"),
            (
                "calm before a presentation",
                "intent=calm before a presentation",
            ),
            ("I'd like a meditation for anxiety please", "intent=anxiety"),
            (
                "Hi! I want to feel more confident at work",
                "intent=feel more confident at work",
            ),
            ("help me focus", "intent=focus"),
            ("Just want to relax", "intent=relax"),
            (
                "Can you make me something for my job interview tomorrow?",
                "intent=my job interview tomorrow",
            ),
            ("gratitude", "intent=gratitude"),
            (
                "More energy in the morning",
                "intent=More energy in the morning time=morning",
            ),
            (
                "Sleep, in the evening, 10 minutes",
                "intent=Sleep time=evening duration=10",
            ),
            (
                "Something to help me with my anxiety, 10 minutes, deep",
                "intent=my anxiety duration=10 depth=deep",
            ),
            ("deep sleep", "intent=deep sleep"),
            ("10 minutes", "duration=10"),
            ("in the evening", "time=evening"),
            ("ok", ""),
            ("hi", ""),
            ("I don't know", ""),
            ("no idea", ""),
            ("not sure yet", ""),
            ("yes please", ""),
            ("", ""),
        ],
    );
}

#[test]
fn known_topics_change_the_intent_only_when_introduced_as_one() {
    check(
        None,
        &[
            ("it's for sleep actually", "intent=sleep"),
            ("make it about gratitude", "intent=gratitude"),
            ("help with my anxiety", "intent=anxiety"),
            ("less stress, 10 minutes", "intent=stress duration=10"),
            ("10 minutes so I can sleep", "duration=10"),
            ("sleep", ""),
        ],
    );
}

#[test]
fn long_intents_are_cut_to_200_characters() {
    let text = format!("help me {}", "relax and breathe ".repeat(30));
    let update = extract_slots(&text, Some(SlotName::Intent));
    let intent = update.intent.unwrap();
    assert!(intent.as_str().chars().count() <= 200);
    assert!(intent.as_str().starts_with("relax and breathe"));
}

#[test]
fn cleaning_an_intent() {
    for (text, expected) in [
        ("I need something to help me sleep", Some("sleep")),
        (
            "  I'm looking for a ritual to start my day with energy!  ",
            Some("start my day with energy"),
        ),
        ("My goal is: less worry", Some("less worry")),
        ("help me", None),
        ("...", None),
    ] {
        assert_eq!(
            clean_intent(text).as_ref().map(|i| i.as_str()),
            expected,
            "{text:?}"
        );
    }
}

#[test]
fn confirmations() {
    let cases = [
        ("yes", Some(true)),
        ("Yes!", Some(true)),
        ("yeah", Some(true)),
        ("yep, go ahead", Some(true)),
        ("sure", Some(true)),
        ("ok", Some(true)),
        ("OK.", Some(true)),
        ("sounds good", Some(true)),
        ("perfect, let's do it", Some(true)),
        ("looks great", Some(true)),
        ("no problem", Some(true)),
        ("why not", Some(true)),
        ("don't change anything", Some(true)),
        ("\u{1f44d}", Some(true)),
        ("no", Some(false)),
        ("No.", Some(false)),
        ("nope", Some(false)),
        ("nah, change the time", Some(false)),
        ("not quite", Some(false)),
        ("wait", Some(false)),
        ("that's wrong", Some(false)),
        ("not yet", Some(false)),
        ("not sure", None),
        ("I don't know", None),
        ("maybe", None),
        ("yes but shorter", None),
        ("yes... no", None),
        ("what?", None),
        ("", None),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter(|(text, expected)| parse_confirmation(text) != *expected)
        .map(|(text, expected)| {
            format!(
                "{text:?}: expected {expected:?}, got {:?}",
                parse_confirmation(text)
            )
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn deferring_the_choice() {
    for text in [
        "you choose",
        "Up to you",
        "whatever you think",
        "doesn't matter",
        "surprise me",
        "the default is fine",
    ] {
        assert!(defers_choice(text), "{text:?}");
    }
    for text in ["10 minutes", "deep", "no", ""] {
        assert!(!defers_choice(text), "{text:?}");
    }
}

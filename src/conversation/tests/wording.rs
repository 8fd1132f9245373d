//! Question texts, the greeting and the summary.

use super::support::*;
use crate::conversation::{
    greeting, summary, ContentType, Depth, Question, Slots, State, TimePreference, Tone, Voice,
};

#[test]
fn intent_questions_name_the_content_type() {
    let text = |content_type| Question::AskIntent { content_type }.text();
    assert!(
        text(ContentType::Ritual).starts_with("What would you like this ritual to help you with?")
    );
    assert!(text(ContentType::GuidedMeditation)
        .starts_with("What would you like this meditation to help you with?"));
    assert!(text(ContentType::Affirmation)
        .starts_with("What would you like this affirmation to help you with?"));
}

#[test]
fn every_question_has_distinct_wording_per_content_type() {
    for make in [
        (|content_type| Question::AskIntent { content_type }) as fn(ContentType) -> Question,
        |content_type| Question::AskTime { content_type },
        |content_type| Question::AskDuration {
            content_type,
            suggested: minutes(10),
        },
        |content_type| Question::AskDepth {
            content_type,
            suggested: Depth::Medium,
        },
        |content_type| Question::AskChanges { content_type },
    ] {
        let texts: Vec<String> = ContentType::ALL.iter().map(|c| make(*c).text()).collect();
        for text in &texts {
            assert!(text.ends_with('?') || text.ends_with('.'), "{text}");
        }
        assert_ne!(texts[0], texts[1]);
        assert_ne!(texts[1], texts[2]);
        assert_ne!(texts[0], texts[2]);
    }
}

#[test]
fn proposals_appear_in_the_questions() {
    let duration = Question::AskDuration {
        content_type: ContentType::Ritual,
        suggested: minutes(15),
    };
    assert!(
        duration.text().contains("15 minutes works well"),
        "{}",
        duration.text()
    );
    let one = Question::AskDuration {
        content_type: ContentType::Ritual,
        suggested: minutes(1),
    };
    assert!(one.text().contains("1 minute works well"), "{}", one.text());
    let depth = Question::AskDepth {
        content_type: ContentType::Ritual,
        suggested: Depth::Deep,
    };
    assert!(
        depth.text().ends_with("I'd suggest deep."),
        "{}",
        depth.text()
    );
}

#[test]
fn the_greeting_uses_the_right_article() {
    assert_eq!(
        greeting(ContentType::Affirmation),
        "Hi! Let's create an affirmation made just for you."
    );
    assert_eq!(
        greeting(ContentType::Ritual),
        "Hi! Let's create a ritual made just for you."
    );
}

#[test]
fn the_summary_describes_every_known_slot() {
    let conversation = conversation_in(State::Confirmation);
    assert_eq!(
        summary(conversation.slots()),
        "Here's your practice: a 10-minute deep guided meditation, for the night, \
         to help with \u{201c}sleep\u{201d}, in a gentle tone, voice: female."
    );
    let question = conversation.current_question().unwrap();
    assert!(question.text().ends_with("Shall I create it?"));
}

#[test]
fn the_summary_reads_well_with_few_slots_and_odd_numbers() {
    let mut slots = Slots::new(ContentType::Affirmation);
    assert_eq!(summary(&slots), "Here's your practice: an affirmation.");
    slots.duration_minutes = Some(minutes(8));
    assert_eq!(
        summary(&slots),
        "Here's your practice: an 8-minute affirmation."
    );
    slots.duration_minutes = Some(minutes(18));
    slots.depth = Some(Depth::Shallow);
    slots.time_preference = Some(TimePreference::Anytime);
    slots.tone = Some(Tone::Energising);
    slots.voice = Some(Voice::new("calm").unwrap());
    assert_eq!(
        summary(&slots),
        "Here's your practice: an 18-minute light affirmation, for any time of day, \
         in an energising tone, voice: calm."
    );
}

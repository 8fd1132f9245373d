//! Plain English wording for every question and for the confirmation summary.
//! Used as is when no language model phrases the conversation, and given to
//! the model as the meaning to convey when one does.

use super::effect::Question;
use super::slots::{ContentType, Depth, Slots, TimePreference, Tone};

/// How the content type is named in a sentence.
pub fn noun(content_type: ContentType) -> &'static str {
    match content_type {
        ContentType::Affirmation => "affirmation",
        ContentType::GuidedMeditation => "guided meditation",
        ContentType::Ritual => "ritual",
    }
}

/// The opening line of a session.
pub fn greeting(content_type: ContentType) -> String {
    format!(
        "Hi! Let's create {} {} made just for you.",
        indefinite_article(noun(content_type)),
        noun(content_type)
    )
}

impl Question {
    /// The question as a sentence, specific to the content type.
    pub fn text(&self) -> String {
        match self {
            Question::AskIntent { content_type } => intent_question(*content_type).to_owned(),
            Question::AskTime { content_type } => format!(
                "{} Morning, midday, afternoon, evening, night, or anytime?",
                time_question(*content_type)
            ),
            Question::AskDuration {
                content_type,
                suggested,
            } => format!(
                "How long would you like your {} to be? Anything from 1 to 60 minutes; \
                 {} {} works well.",
                noun(*content_type),
                suggested,
                minutes_word(suggested.get())
            ),
            Question::AskDepth {
                content_type,
                suggested,
            } => format!(
                "How deep would you like this {} to go: shallow (light and easy), medium, \
                 or deep (fully immersive)? I'd suggest {}.",
                noun(*content_type),
                suggested
            ),
            Question::AskChanges { content_type } => format!(
                "What would you like to change in your {}: the focus, the time of day, \
                 the length, the depth or the tone?",
                noun(*content_type)
            ),
            Question::Confirm { summary } => format!("{summary} Shall I create it?"),
        }
    }
}

fn intent_question(content_type: ContentType) -> &'static str {
    match content_type {
        ContentType::Affirmation => {
            "What would you like this affirmation to help you with? For example confidence, \
             calm or gratitude."
        }
        ContentType::GuidedMeditation => {
            "What would you like this meditation to help you with? For example sleep, \
             stress or focus."
        }
        ContentType::Ritual => {
            "What would you like this ritual to help you with? For example starting the day \
             with energy or winding down."
        }
    }
}

fn time_question(content_type: ContentType) -> &'static str {
    match content_type {
        ContentType::Affirmation => "When would you like to hear your affirmation?",
        ContentType::GuidedMeditation => "When do you plan to meditate?",
        ContentType::Ritual => "When in your day will you practise this ritual?",
    }
}

fn minutes_word(minutes: u8) -> &'static str {
    if minutes == 1 {
        "minute"
    } else {
        "minutes"
    }
}

fn time_phrase(time: TimePreference) -> &'static str {
    match time {
        TimePreference::Morning => "for the morning",
        TimePreference::Midday => "for midday",
        TimePreference::Afternoon => "for the afternoon",
        TimePreference::Evening => "for the evening",
        TimePreference::Night => "for the night",
        TimePreference::Anytime => "for any time of day",
    }
}

fn depth_word(depth: Depth) -> &'static str {
    match depth {
        Depth::Shallow => "light",
        Depth::Medium => "medium-depth",
        Depth::Deep => "deep",
    }
}

fn tone_word(tone: Tone) -> &'static str {
    match tone {
        Tone::Warm => "warm",
        Tone::Gentle => "gentle",
        Tone::Energising => "energising",
        Tone::Neutral => "neutral",
    }
}

/// One sentence describing what will be created, from whatever is known, e.g.
/// "Here's your practice: a 10-minute deep guided meditation for the night,
/// to help with sleep, in a gentle tone."
pub fn summary(slots: &Slots) -> String {
    let mut description = Vec::new();
    if let Some(duration) = slots.duration_minutes {
        description.push(format!("{duration}-minute"));
    }
    if let Some(depth) = slots.depth {
        description.push(depth_word(depth).to_owned());
    }
    description.push(noun(slots.content_type).to_owned());
    let description = description.join(" ");

    let mut parts = vec![format!(
        "Here's your practice: {} {description}",
        indefinite_article(&description)
    )];
    if let Some(time) = slots.time_preference {
        parts.push(time_phrase(time).to_owned());
    }
    if let Some(intent) = &slots.intent {
        parts.push(format!("to help with \u{201c}{intent}\u{201d}"));
    }
    if let Some(tone) = slots.tone {
        let word = tone_word(tone);
        parts.push(format!("in {} {word} tone", indefinite_article(word)));
    }
    if let Some(voice) = &slots.voice {
        parts.push(format!("voice: {voice}"));
    }
    let mut sentence = parts.join(", ");
    sentence.push('.');
    sentence
}

/// "a" or "an" for the phrase that follows; durations are read as numbers
/// ("an 8-minute", "an 11-minute", "an 18-minute").
fn indefinite_article(phrase: &str) -> &'static str {
    let first_word = phrase.split(['-', ' ']).next().unwrap_or_default();
    let vowel_sound = match first_word.parse::<u32>() {
        Ok(number) => number == 8 || number == 11 || number == 18 || (80..90).contains(&number),
        Err(_) => first_word.starts_with(['a', 'e', 'i', 'o', 'u']),
    };
    if vowel_sound {
        "an"
    } else {
        "a"
    }
}

//! The texts of the offline provider: pure functions of the request, no randomness.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::offline::OFFLINE_LABEL;
use super::{ChatMessage, Passage, Purpose, Role, Slot};

/// Longest user text or sentence quoted back.
const MAX_QUOTE_CHARS: usize = 300;
/// Sentences quoted in an answer.
const MAX_QUOTED_SENTENCES: usize = 2;
/// JSON key that labels offline extraction output (a text prefix would break the JSON).
pub(crate) const OFFLINE_JSON_KEY: &str = "_offline_template";

/// The full text the offline provider streams for a request.
pub(crate) fn compose(purpose: &Purpose, messages: &[ChatMessage]) -> String {
    match purpose {
        Purpose::Reply => reply(messages),
        Purpose::Question { text } => format!("{OFFLINE_LABEL} {}", text.trim()),
        Purpose::Extraction { fields } => extraction(fields),
        Purpose::Generation {
            content_type,
            title,
            slots,
        } => generation(content_type, title.as_deref(), slots),
        Purpose::Answer {
            question,
            context_found,
            passages,
        } => answer(question, *context_found, passages),
    }
}

fn reply(messages: &[ChatMessage]) -> String {
    let last_user = messages
        .iter()
        .rev()
        .find(|message| message.role == Role::User)
        .map(|message| message.content.trim())
        .filter(|content| !content.is_empty());
    match last_user {
        Some(content) => format!(
            "{OFFLINE_LABEL} No language model is configured, so this is a template reply. \
             I received your message: “{}”.",
            shorten(content)
        ),
        None => {
            format!("{OFFLINE_LABEL} No language model is configured, so this is a template reply.")
        }
    }
}

fn extraction(fields: &[String]) -> String {
    let mut object = Map::new();
    object.insert(
        OFFLINE_JSON_KEY.to_owned(),
        Value::String("no language model is configured; nothing was extracted".into()),
    );
    for field in fields {
        object.insert(field.clone(), Value::Null);
    }
    Value::Object(object).to_string()
}

/// The well-known slots that shape a generated template.
#[derive(Default)]
struct Brief<'a> {
    topic: Option<&'a str>,
    goal: Option<&'a str>,
    audience: Option<&'a str>,
    tone: Option<&'a str>,
    duration: Option<&'a str>,
    details: Vec<&'a Slot>,
}

impl<'a> Brief<'a> {
    fn from_slots(slots: &'a [Slot]) -> Self {
        let mut brief = Self::default();
        for slot in slots {
            let value = slot.value.trim();
            if value.is_empty() {
                continue;
            }
            let target = match slot.name.trim().to_lowercase().as_str() {
                "topic" | "subject" => &mut brief.topic,
                "goal" | "objective" => &mut brief.goal,
                "audience" => &mut brief.audience,
                "tone" => &mut brief.tone,
                "duration" | "length" => &mut brief.duration,
                _ => {
                    brief.details.push(slot);
                    continue;
                }
            };
            target.get_or_insert(value);
        }
        brief
    }
}

fn generation(content_type: &str, title: Option<&str>, slots: &[Slot]) -> String {
    let brief = Brief::from_slots(slots);
    let content_type = match content_type.trim() {
        "" => "practice",
        other => other,
    };
    let topic = brief.topic.unwrap_or("the chosen topic");
    let who = brief.audience.unwrap_or("the participants");
    let title = match (title.map(str::trim).filter(|t| !t.is_empty()), brief.topic) {
        (Some(title), _) => title.to_owned(),
        (None, Some(topic)) => format!("{}: {topic}", capitalize(content_type)),
        (None, None) => format!("Untitled {content_type}"),
    };

    let mut text = format!(
        "{OFFLINE_LABEL} # {title}\n\n\
         _Written from a template because no language model is configured; adapt it freely._\n\n\
         ## Opening\n\
         Welcome {who}. This {content_type} is about {topic}."
    );
    if let Some(goal) = brief.goal {
        text.push_str(&format!(" By the end you should be able to: {goal}."));
    }
    if let Some(duration) = brief.duration {
        text.push_str(&format!(" Planned length: {duration}."));
    }
    if let Some(tone) = brief.tone {
        text.push_str(&format!(" Keep the tone {tone}."));
    }
    text.push_str(&format!(
        "\n\n## Body\n\
         1. Warm-up: ask {who} what they already know about {topic}.\n\
         2. Core: work through {topic} step by step"
    ));
    if let Some(goal) = brief.goal {
        text.push_str(&format!(", keeping the goal in view ({goal})"));
    }
    text.push_str(
        ".\n\
         3. Practice: try it on a short, concrete example and talk about what happened.\n\n\
         ## Closing\n",
    );
    text.push_str(&format!("Recap the main points about {topic}"));
    if let Some(goal) = brief.goal {
        text.push_str(&format!(" and check progress toward the goal: {goal}"));
    }
    text.push_str(". Agree on one next step.");
    if !brief.details.is_empty() {
        text.push_str("\n\n## Details");
        for slot in &brief.details {
            text.push_str(&format!("\n- {}: {}", slot.name.trim(), slot.value.trim()));
        }
    }
    text
}

fn answer(question: &str, context_found: bool, passages: &[Passage]) -> String {
    let question_words = keywords(question);
    let sentences: Vec<(&Passage, String)> = passages
        .iter()
        .flat_map(|passage| {
            sentences(&passage.text)
                .into_iter()
                .map(move |sentence| (passage, sentence))
        })
        .collect();
    if !context_found || sentences.is_empty() {
        return format!(
            "{OFFLINE_LABEL} I don't know. I found nothing in the available material about “{}”.",
            shorten(question.trim())
        );
    }

    let mut scored: Vec<(usize, usize)> = sentences
        .iter()
        .enumerate()
        .map(|(index, (_, sentence))| {
            (
                keywords(sentence).intersection(&question_words).count(),
                index,
            )
        })
        .filter(|(score, _)| *score > 0)
        .collect();
    // Best score first; among equals the earlier sentence, so output is deterministic.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut chosen: Vec<usize> = scored
        .into_iter()
        .take(MAX_QUOTED_SENTENCES)
        .map(|(_, index)| index)
        .collect();
    chosen.sort_unstable();

    let mut text = if chosen.is_empty() {
        chosen.push(0);
        format!(
            "{OFFLINE_LABEL} The available material does not answer this directly. \
             The closest passage says:"
        )
    } else {
        format!("{OFFLINE_LABEL} From the available material:")
    };
    for index in chosen {
        let (passage, sentence) = &sentences[index];
        text.push_str(&format!("\n\n> {}", shorten(sentence)));
        if let Some(source) = passage.source.as_deref().filter(|s| !s.trim().is_empty()) {
            text.push_str(&format!("\n> — {}", source.trim()));
        }
    }
    text.push_str("\n\n(Quoted without a language model; check the source for context.)");
    text
}

/// Splits text at sentence ends (`.`, `!`, `?` before whitespace) and line breaks.
fn sentences(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let ends_line = c == '\n';
        if !ends_line {
            current.push(c);
        }
        let ends_sentence =
            matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|next| next.is_whitespace());
        if ends_line || ends_sentence {
            push_trimmed(&mut sentences, &current);
            current.clear();
        }
    }
    push_trimmed(&mut sentences, &current);
    sentences
}

fn push_trimmed(sentences: &mut Vec<String>, sentence: &str) {
    let sentence = sentence.trim();
    if !sentence.is_empty() {
        sentences.push(sentence.to_owned());
    }
}

const STOP_WORDS: &[&str] = &[
    "about", "all", "also", "and", "any", "are", "but", "can", "could", "did", "does", "for",
    "from", "had", "has", "have", "how", "into", "its", "just", "more", "most", "not", "only",
    "other", "our", "out", "should", "some", "such", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "those", "very", "was", "were", "what", "when",
    "where", "which", "who", "why", "will", "with", "would", "you", "your",
];

/// Lower-cased content words, with a plain plural `s` removed so "practices" meets
/// "practice".
fn keywords(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|word| word.chars().count() >= 3 && !STOP_WORDS.contains(&word.as_str()))
        .map(|word| match word.strip_suffix('s') {
            Some(stem) if stem.chars().count() >= 4 && !stem.ends_with('s') => stem.to_owned(),
            _ => word,
        })
        .collect()
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTE_CHARS) {
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
        None => text.to_owned(),
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn passage(source: &str, text: &str) -> Passage {
        Passage::new(Some(source.into()), text)
    }

    #[test]
    fn question_is_streamed_as_given_with_label() {
        let text = compose(
            &Purpose::Question {
                text: " What is your goal? ".into(),
            },
            &[],
        );
        assert_eq!(text, "[offline template] What is your goal?");
    }

    #[test]
    fn reply_quotes_last_user_message() {
        let messages = [
            ChatMessage::user("first"),
            ChatMessage::assistant("ok"),
            ChatMessage::user("second"),
        ];
        let text = compose(&Purpose::Reply, &messages);
        assert!(text.starts_with(OFFLINE_LABEL));
        assert!(text.contains("“second”"));
    }

    #[test]
    fn extraction_is_labelled_json_with_null_fields() {
        let text = compose(
            &Purpose::Extraction {
                fields: vec!["name".into(), "goal".into()],
            },
            &[],
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["name"], Value::Null);
        assert_eq!(value["goal"], Value::Null);
        assert!(value[OFFLINE_JSON_KEY].is_string());
    }

    #[test]
    fn generation_is_tailored_by_slots() {
        let text = compose(
            &Purpose::Generation {
                content_type: "practice".into(),
                title: None,
                slots: vec![
                    Slot::new("Topic", "active listening"),
                    Slot::new("goal", "summarise what the other person said"),
                    Slot::new("audience", "new team leads"),
                    Slot::new("duration", "15 minutes"),
                    Slot::new("setting", "one-to-one meetings"),
                    Slot::new("tone", ""),
                ],
            },
            &[],
        );
        assert!(text.starts_with("[offline template] # Practice: active listening\n"));
        for expected in [
            "## Opening",
            "Welcome new team leads.",
            "summarise what the other person said",
            "Planned length: 15 minutes.",
            "## Body",
            "## Closing",
            "## Details\n- setting: one-to-one meetings",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in {text}");
        }
        assert!(!text.contains("Keep the tone"));
    }

    #[test]
    fn generation_without_slots_uses_title_or_placeholder() {
        let with_title = compose(
            &Purpose::Generation {
                content_type: "checklist".into(),
                title: Some("Morning routine".into()),
                slots: vec![],
            },
            &[],
        );
        assert!(with_title.starts_with("[offline template] # Morning routine\n"));
        let untitled = compose(
            &Purpose::Generation {
                content_type: "checklist".into(),
                title: None,
                slots: vec![],
            },
            &[],
        );
        assert!(untitled.starts_with("[offline template] # Untitled checklist\n"));
        assert!(untitled.contains("the chosen topic"));
    }

    #[test]
    fn answer_quotes_the_most_relevant_sentences_in_order() {
        let text = compose(
            &Purpose::Answer {
                question: "How long should breathing practices last?".into(),
                context_found: true,
                passages: vec![
                    passage(
                        "guide.md",
                        "Sit comfortably. Each breathing practice should last five minutes.",
                    ),
                    passage("faq.md", "Practices work best daily. Coffee is unrelated."),
                ],
            },
            &[],
        );
        assert!(text.starts_with("[offline template] From the available material:"));
        let first = text
            .find("Each breathing practice should last five minutes.")
            .unwrap();
        let second = text.find("Practices work best daily.").unwrap();
        assert!(first < second);
        assert!(text.contains("> — guide.md"));
        assert!(!text.contains("Coffee"));
        assert!(!text.contains("Sit comfortably"));
    }

    #[test]
    fn answer_without_context_says_it_does_not_know() {
        let text = compose(
            &Purpose::Answer {
                question: "What is the refund policy?".into(),
                context_found: false,
                passages: vec![passage("x", "Unrelated text.")],
            },
            &[],
        );
        assert!(text.starts_with("[offline template] I don't know."));
        assert!(!text.contains("Unrelated"));
    }

    #[test]
    fn answer_with_unrelated_context_quotes_closest_passage() {
        let text = compose(
            &Purpose::Answer {
                question: "Refund policy?".into(),
                context_found: true,
                passages: vec![Passage::new(None, "Opening hours are nine to five. Other.")],
            },
            &[],
        );
        assert!(text.contains("does not answer this directly"));
        assert!(text.contains("> Opening hours are nine to five."));
    }

    #[test]
    fn sentence_split_handles_abbreviation_like_dots_and_lines() {
        assert_eq!(
            sentences("Version 1.5 is out! Really?\nYes"),
            vec!["Version 1.5 is out!", "Really?", "Yes"]
        );
    }
}

//! Deterministic understanding of a user's free text: which slot values it
//! mentions, whether it says yes or no, and whether it leaves the choice to us.
//!
//! This is the offline path; when a language model is configured it extracts
//! slots as JSON instead (see `structured`), with this parser as the fallback.
//! The last mention of a value wins ("morning, no wait, evening"), and a value
//! right after a negation is ignored ("not in the morning").

use super::durations::take_duration;
use super::lexicon::{
    Answer, CONFIRMATION_PHRASES, DEEP_FALSE_FRIENDS_AFTER, DEFERRAL_PHRASES, DEPTH_PHRASES,
    FILLER_WORDS, INDIFFERENCE_PHRASES, INTENT_KEYWORDS, INTENT_MARKERS, INTENT_PREFIXES,
    INTENT_SUFFIXES, LIGHT_AS_VERB_AFTER, LIGHT_FALSE_FRIENDS_AFTER, RESERVATIONS, TIME_PHRASES,
    TONE_FALSE_FRIENDS_AFTER, TONE_PHRASES, VOICE_ADJECTIVES,
};
use super::slots::{Depth, Intent, SlotName, SlotUpdate, TimePreference, Tone, Voice};
use super::tokens::{split_words, PhraseMatch, Tokens};

/// Longest intent taken from free text.
pub const EXTRACTED_INTENT_MAX_CHARS: usize = 200;

/// Reads every slot value the text mentions. `expecting` is the slot the
/// question just asked for: it lets a bare answer count ("10" for the length,
/// "no preference" for the time) and makes the whole message the intent when
/// the intent was asked.
pub fn extract_slots(text: &str, expecting: Option<SlotName>) -> SlotUpdate {
    let mut tokens = Tokens::new(text);
    let found = take_slot_phrases(&mut tokens, expecting);
    let intent = if expecting == Some(SlotName::Intent) {
        intent_from_answer(text, &tokens)
    } else {
        intent_from_keywords(&tokens)
    };
    SlotUpdate { intent, ..found }
}

/// Every slot except the intent, claiming the words that expressed them.
fn take_slot_phrases(tokens: &mut Tokens, expecting: Option<SlotName>) -> SlotUpdate {
    // Order matters: "deep voice" is a voice before "deep" can be a depth, and
    // "7 a.m." is a time before "a m" can be read as "a minute".
    let voice = take_voice(tokens);
    let time_preference = take_time(tokens, expecting == Some(SlotName::TimePreference));
    let duration_minutes = take_duration(tokens, expecting == Some(SlotName::DurationMinutes));
    let depth = take_depth(tokens);
    let tone = take_tone(tokens);
    SlotUpdate {
        intent: None,
        time_preference,
        duration_minutes,
        depth,
        tone,
        voice,
    }
}

/// Yes or no to the confirmation question; `None` when unclear ("not sure",
/// "yes but shorter", or nothing recognisable).
pub fn parse_confirmation(text: &str) -> Option<bool> {
    let mut tokens = Tokens::new(text);
    let answers = tokens.take_phrases(CONFIRMATION_PHRASES);
    let has = |wanted: Answer| answers.iter().any(|m| m.value == wanted);
    let reservation = split_words(text)
        .iter()
        .any(|word| RESERVATIONS.contains(&word.as_str()));
    let thumbs_up = text.contains('\u{1f44d}');
    match (
        has(Answer::Yes) || thumbs_up,
        has(Answer::No),
        has(Answer::Unsure),
    ) {
        (true, false, false) if !reservation => Some(true),
        (false, true, false) => Some(false),
        _ => None,
    }
}

/// Whether the user leaves the remaining choices to the proposal ("you
/// choose", "whatever", "doesn't matter").
pub fn defers_choice(text: &str) -> bool {
    let mut tokens = Tokens::new(text);
    !tokens.take_phrases(DEFERRAL_PHRASES).is_empty()
}

/// The intent stated in an answer to the intent question, without filler
/// ("I need something to help me sleep" -> "sleep"), at most
/// `EXTRACTED_INTENT_MAX_CHARS` characters. `None` when nothing is left.
pub fn clean_intent(text: &str) -> Option<Intent> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let keys: Vec<String> = words.iter().map(|word| comparable(word)).collect();
    let mut start = 0;
    let mut end = words.len();
    loop {
        if keys.get(start).is_some_and(String::is_empty) {
            start += 1;
        } else if let Some(length) = longest_prefix(&keys[start..end], INTENT_PREFIXES) {
            start += length;
        } else {
            break;
        }
    }
    while let Some(length) = longest_suffix(&keys[start..end], INTENT_SUFFIXES) {
        end -= length;
    }
    let kept = words[start..end].join(" ");
    let trimmed = kept.trim_matches(|c: char| !c.is_alphanumeric());
    Intent::truncated(trimmed, EXTRACTED_INTENT_MAX_CHARS)
}

fn take_voice(tokens: &mut Tokens) -> Option<Voice> {
    let mut found = None;
    for index in 1..tokens.len() {
        if !tokens.matches_at(index, &["voice"]) {
            continue;
        }
        let adjective = tokens.word(index - 1).and_then(|word| {
            VOICE_ADJECTIVES
                .iter()
                .find(|(name, _)| *name == word)
                .map(|(_, voice)| *voice)
        });
        if let Some(voice) = adjective.filter(|_| !tokens.is_claimed(index - 1)) {
            let negated = tokens.is_negated(index - 1);
            tokens.claim(index - 1, index + 1);
            if !negated {
                found = Voice::new(voice).ok();
            }
        }
    }
    found
}

fn take_time(tokens: &mut Tokens, answering_time: bool) -> Option<TimePreference> {
    let mut found = take_clock_time(tokens).map(|(value, start)| (start, value));
    let phrases = tokens.take_phrases(TIME_PHRASES);
    if let Some(latest) = last_unnegated(tokens, &phrases) {
        if found.is_none_or(|(start, _)| latest.start > start) {
            found = Some((latest.start, latest.value));
        }
    }
    if found.is_none() && answering_time {
        let indifferent = tokens.take_phrases(INDIFFERENCE_PHRASES);
        if !indifferent.is_empty() {
            found = Some((0, TimePreference::Anytime));
        }
    }
    found.map(|(_, value)| value)
}

/// "7am", "7 pm", "7:30 p.m." -> the part of the day; returns the last one.
fn take_clock_time(tokens: &mut Tokens) -> Option<(TimePreference, usize)> {
    let mut found = None;
    for index in 0..tokens.len() {
        let suffix_length = if tokens.matches_at(index, &["am"])
            || tokens.matches_at(index, &["pm"])
        {
            1
        } else if tokens.matches_at(index, &["a", "m"]) || tokens.matches_at(index, &["p", "m"]) {
            2
        } else {
            continue;
        };
        let afternoon = tokens.word(index).is_some_and(|word| word.starts_with('p'));
        let Some(hour_index) = clock_hour_index(tokens, index) else {
            continue;
        };
        let Some(hour) = tokens
            .word(hour_index)
            .and_then(|word| word.parse::<u8>().ok())
        else {
            continue;
        };
        tokens.claim(hour_index, index + suffix_length);
        found = Some((part_of_day(hour, afternoon), hour_index));
    }
    found
}

/// Index of the hour before an am/pm marker: "7 pm" or "7 30 pm".
fn clock_hour_index(tokens: &Tokens, marker: usize) -> Option<usize> {
    let is_hour = |index: usize| {
        !tokens.is_claimed(index)
            && tokens
                .word(index)
                .and_then(|word| word.parse::<u8>().ok())
                .is_some_and(|hour| (1..=12).contains(&hour))
    };
    let is_minutes = |index: usize| {
        tokens
            .word(index)
            .and_then(|word| word.parse::<u8>().ok())
            .is_some_and(|minutes| minutes < 60)
            && tokens.word(index).is_some_and(|word| word.len() == 2)
    };
    let before = marker.checked_sub(1)?;
    if let Some(hour) = before
        .checked_sub(1)
        .filter(|&h| is_minutes(before) && is_hour(h))
    {
        return Some(hour);
    }
    is_hour(before).then_some(before)
}

fn part_of_day(hour: u8, afternoon: bool) -> TimePreference {
    match (hour % 12, afternoon) {
        (0, false) => TimePreference::Night,
        (1..=4, false) => TimePreference::Night,
        (5..=11, false) => TimePreference::Morning,
        (0, true) => TimePreference::Midday,
        (1..=4, true) => TimePreference::Afternoon,
        (5..=8, true) => TimePreference::Evening,
        _ => TimePreference::Night,
    }
}

fn take_depth(tokens: &mut Tokens) -> Option<Depth> {
    let phrases = tokens.take_phrases(DEPTH_PHRASES);
    let about_depth: Vec<PhraseMatch<Depth>> = phrases
        .into_iter()
        .filter(|m| m.end - m.start > 1 || !is_false_friend(tokens, m.start))
        .collect();
    last_unnegated(tokens, &about_depth).map(|m| m.value)
}

/// "deep sleep", "deep breathing", "light a candle", "to light": the word is
/// not about depth there.
fn is_false_friend(tokens: &Tokens, index: usize) -> bool {
    let next = tokens.word(index + 1).unwrap_or_default();
    let previous = index
        .checked_sub(1)
        .and_then(|i| tokens.word(i))
        .unwrap_or_default();
    match tokens.word(index) {
        Some("deep") => DEEP_FALSE_FRIENDS_AFTER.contains(&next),
        Some("light") => {
            LIGHT_FALSE_FRIENDS_AFTER.contains(&next) || LIGHT_AS_VERB_AFTER.contains(&previous)
        }
        _ => false,
    }
}

fn take_tone(tokens: &mut Tokens) -> Option<Tone> {
    let phrases = tokens.take_phrases(TONE_PHRASES);
    let about_tone: Vec<PhraseMatch<Tone>> = phrases
        .into_iter()
        .filter(|m| {
            let next = tokens.word(m.end).unwrap_or_default();
            !TONE_FALSE_FRIENDS_AFTER.contains(&next)
        })
        .collect();
    last_unnegated(tokens, &about_tone).map(|m| m.value)
}

/// The last match not preceded by a negation. Negation phrases that carry
/// their own meaning ("not too deep") start with the negator itself, so they
/// are checked from their start.
fn last_unnegated<T: Copy>(tokens: &Tokens, matches: &[PhraseMatch<T>]) -> Option<PhraseMatch<T>> {
    matches
        .iter()
        .rev()
        .find(|m| !tokens.is_negated(m.start))
        .copied()
}

/// When the intent was asked, the message itself is the intent, unless it
/// holds nothing but slot phrases and filler ("10 minutes", "ok"). Clauses
/// that only carry other slots are left out ("Sleep, in the evening, 10
/// minutes" -> "Sleep").
fn intent_from_answer(text: &str, tokens: &Tokens) -> Option<Intent> {
    if !has_meaningful_words(tokens) {
        return None;
    }
    let kept: Vec<&str> = clauses(text)
        .filter(|clause| {
            let mut clause_tokens = Tokens::new(clause);
            take_slot_phrases(&mut clause_tokens, None);
            has_meaningful_words(&clause_tokens)
        })
        .collect();
    clean_intent(&kept.join(", "))
}

fn has_meaningful_words(tokens: &Tokens) -> bool {
    tokens.unclaimed().any(|word| {
        !FILLER_WORDS.contains(&word) && !word.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

/// Pieces of a message between commas, semicolons and sentence ends (a
/// decimal point is not a sentence end).
fn clauses(text: &str) -> impl Iterator<Item = &str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        let next = chars.peek().map(|(_, n)| *n);
        let ends_clause = match c {
            ',' | ';' | '!' | '?' | '\n' => true,
            '.' => next.is_none_or(char::is_whitespace),
            _ => false,
        };
        if ends_clause {
            pieces.push(&text[start..index]);
            start = index + c.len_utf8();
        }
    }
    pieces.push(&text[start..]);
    pieces
        .into_iter()
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
}

/// Outside the intent question, only a known topic introduced as one ("for
/// sleep", "help with stress", "less anxiety") changes the intent, so that a
/// passing mention ("10 minutes so I can sleep") does not overwrite it.
fn intent_from_keywords(tokens: &Tokens) -> Option<Intent> {
    let mut found = None;
    for index in 1..tokens.len() {
        if tokens.is_claimed(index) {
            continue;
        }
        let Some(topic) = tokens.word(index).and_then(|word| {
            INTENT_KEYWORDS
                .iter()
                .find(|(name, _)| *name == word)
                .map(|(_, topic)| *topic)
        }) else {
            continue;
        };
        let marker_at = |i: Option<usize>| {
            i.and_then(|i| tokens.word(i))
                .is_some_and(|word| INTENT_MARKERS.contains(&word))
        };
        let before = index.checked_sub(1);
        let introduced = marker_at(before)
            || (before.and_then(|i| tokens.word(i)) == Some("my")
                && marker_at(index.checked_sub(2)));
        if introduced && !tokens.is_negated(index.saturating_sub(1)) {
            found = Intent::new(topic).ok();
        }
    }
    found
}

/// A word as compared against the filler tables: lowercase, straight
/// apostrophes, no surrounding punctuation.
fn comparable(word: &str) -> String {
    word.to_lowercase()
        .replace(['\u{2019}', '\u{2018}'], "'")
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
        .trim_matches('\'')
        .to_owned()
}

fn longest_prefix(keys: &[String], table: &[&[&str]]) -> Option<usize> {
    table
        .iter()
        .filter(|phrase| {
            !phrase.is_empty()
                && phrase.len() <= keys.len()
                && phrase.iter().zip(keys).all(|(p, k)| p == k)
        })
        .map(|phrase| phrase.len())
        .max()
}

fn longest_suffix(keys: &[String], table: &[&[&str]]) -> Option<usize> {
    table
        .iter()
        .filter(|phrase| {
            !phrase.is_empty()
                && phrase.len() <= keys.len()
                && phrase
                    .iter()
                    .rev()
                    .zip(keys.iter().rev())
                    .all(|(p, k)| p == k)
        })
        .map(|phrase| phrase.len())
        .max()
}

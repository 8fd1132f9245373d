//! Spoken lengths: "10 minutes", "ten min", "half an hour", "an hour and a
//! half", "1.5 hours", "90 seconds", and bare numbers when the length was asked.

use super::lexicon::{HOUR_UNITS, MINUTE_UNITS, NUMBER_WORDS, SECOND_UNITS, VAGUE_AMOUNTS};
use super::slots::DurationMinutes;
use super::tokens::Tokens;

/// The last (un-negated) length mentioned, clamped to the allowed range.
/// With `bare_numbers`, a number without a unit counts as minutes.
pub(super) fn take_duration(tokens: &mut Tokens, bare_numbers: bool) -> Option<DurationMinutes> {
    let mut found = None;
    for unit_index in 0..tokens.len() {
        if tokens.is_claimed(unit_index) {
            continue;
        }
        let Some(minutes_per_unit) = tokens.word(unit_index).and_then(unit_minutes) else {
            continue;
        };
        let Some((amount, start)) = amount_before(tokens, unit_index) else {
            continue;
        };
        let (extra, end) = if tokens.matches_at(unit_index + 1, &["and", "a", "half"]) {
            (0.5, unit_index + 4)
        } else {
            (0.0, unit_index + 1)
        };
        let negated = tokens.is_negated(start);
        tokens.claim(start, end);
        if !negated {
            found = Some(to_minutes((amount + extra) * minutes_per_unit));
        }
    }
    if found.is_none() && bare_numbers {
        found = bare_number(tokens).map(to_minutes);
    }
    found
}

fn unit_minutes(word: &str) -> Option<f64> {
    if MINUTE_UNITS.contains(&word) {
        Some(1.0)
    } else if HOUR_UNITS.contains(&word) {
        Some(60.0)
    } else if SECOND_UNITS.contains(&word) {
        Some(1.0 / 60.0)
    } else {
        None
    }
}

/// Rounds up (90 seconds is 2 minutes) and clamps into range.
fn to_minutes(minutes: f64) -> DurationMinutes {
    let rounded = minutes.ceil();
    let whole = if rounded.is_finite() {
        rounded.clamp(0.0, 1000.0) as i64
    } else {
        0
    };
    DurationMinutes::clamped(whole)
}

/// The amount written just before a unit word, with the index where it starts.
fn amount_before(tokens: &Tokens, unit: usize) -> Option<(f64, usize)> {
    let last = unit.checked_sub(1)?;
    let word = |index: usize| tokens.word(index).filter(|_| !tokens.is_claimed(index));
    let word_at = |index: Option<usize>| index.and_then(word);

    match word(last)? {
        // "half an hour", "quarter of an hour", "an hour", "a minute"
        "a" | "an" => {
            if word_at(last.checked_sub(1)) == Some("half") {
                return Some((0.5, last - 1));
            }
            if word_at(last.checked_sub(1)) == Some("of")
                && word_at(last.checked_sub(2)) == Some("quarter")
            {
                return Some((0.25, last - 2));
            }
            Some((1.0, last))
        }
        // "one and a half hours", "a half hour", "half hour"
        "half" => {
            if word_at(last.checked_sub(1)) == Some("a")
                && word_at(last.checked_sub(2)) == Some("and")
            {
                if let Some((whole, start)) = last
                    .checked_sub(3)
                    .and_then(|i| number_ending_at(tokens, i))
                {
                    return Some((whole + 0.5, start));
                }
            }
            Some((0.5, last))
        }
        "quarter" => Some((0.25, last)),
        // "a couple of minutes", "a few minutes"
        "of" => vague_amount(tokens, last.checked_sub(1)?),
        _ => vague_amount(tokens, last).or_else(|| number_ending_at(tokens, last)),
    }
}

fn vague_amount(tokens: &Tokens, index: usize) -> Option<(f64, usize)> {
    let word = tokens.word(index).filter(|_| !tokens.is_claimed(index))?;
    let value = VAGUE_AMOUNTS
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, value)| f64::from(*value))?;
    let start = match index.checked_sub(1) {
        Some(before) if tokens.matches_at(before, &["a"]) => before,
        _ => index,
    };
    Some((value, start))
}

/// A number written in digits ("10", "1.5") or words ("ten", "twenty five")
/// that ends at `index`.
fn number_ending_at(tokens: &Tokens, index: usize) -> Option<(f64, usize)> {
    if tokens.is_claimed(index) {
        return None;
    }
    let word = tokens.word(index)?;
    if let Some(value) = digits_value(word) {
        return Some((value, index));
    }
    let value = number_word(word)?;
    // "twenty five": a tens word followed by a units word.
    if (1..10).contains(&value) {
        if let Some(before) = index.checked_sub(1) {
            let tens = tokens
                .word(before)
                .filter(|_| !tokens.is_claimed(before))
                .and_then(number_word);
            if let Some(tens) = tens.filter(|t| *t >= 20 && t % 10 == 0) {
                return Some((f64::from(tens + value), before));
            }
        }
    }
    Some((f64::from(value), index))
}

fn digits_value(word: &str) -> Option<f64> {
    let looks_numeric = word.chars().all(|c| c.is_ascii_digit() || c == '.')
        && word.chars().next().is_some_and(|c| c.is_ascii_digit());
    if !looks_numeric || word.len() > 6 {
        return None;
    }
    word.parse::<f64>().ok()
}

fn number_word(word: &str) -> Option<u32> {
    NUMBER_WORDS
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, value)| *value)
}

/// The last unclaimed number in a message answering the length question
/// ("15", "ten please", "maybe twenty five"). A lone "one" counts only when it
/// is the whole answer, since "the deep one" is not a length.
fn bare_number(tokens: &mut Tokens) -> Option<f64> {
    let mut found = None;
    let whole_answer = tokens.len() == 1;
    for index in 0..tokens.len() {
        if let Some((value, start)) = number_ending_at(tokens, index) {
            let is_plain_one = tokens.word(index) == Some("one") && start == index;
            if is_plain_one && !whole_answer {
                continue;
            }
            // Skip a tens word immediately followed by its units ("twenty" in "twenty five").
            if let Some(next) = number_ending_at(tokens, index + 1) {
                if next.1 == index {
                    continue;
                }
            }
            if !tokens.is_negated(start) {
                found = Some((value, start, index + 1));
            }
        }
    }
    let (value, start, end) = found?;
    tokens.claim(start, end);
    Some(value)
}

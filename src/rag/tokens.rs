//! Token counting with the `cl100k_base` BPE vocabulary.
//!
//! The vocabulary ships inside the `tiktoken-rs` crate, so counting needs no
//! network. The encoder is built once per process and shared.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// Runs longer than this (no whitespace, or only whitespace) are counted in
/// slices: BPE cost grows faster than linearly with the length of one run and
/// the regex pre-tokenizer can overflow its stack on huge runs.
const MAX_RUN_BYTES: usize = 256;
/// Slice length used when a text has pathological runs.
const SLICE_BYTES: usize = 128;
/// Bytes looked at per token allowed when cutting a prefix: far above the
/// average of about four, so the cut is rarely limited by it.
const PREFIX_BYTES_PER_TOKEN: usize = 32;

/// Counts tokens the way OpenAI-style models do (`cl100k_base`).
pub struct TokenCounter {
    bpe: Option<CoreBPE>,
}

impl TokenCounter {
    /// The process-wide counter; the vocabulary is parsed on first use only.
    pub fn shared() -> &'static TokenCounter {
        static SHARED: OnceLock<TokenCounter> = OnceLock::new();
        SHARED.get_or_init(|| {
            let bpe = match tiktoken_rs::cl100k_base() {
                Ok(bpe) => Some(bpe),
                Err(error) => {
                    tracing::error!(%error, "cl100k_base vocabulary failed to load; token counts are estimated");
                    None
                }
            };
            TokenCounter { bpe }
        })
    }

    /// Number of tokens in `text`.
    pub fn count(&self, text: &str) -> usize {
        if text.is_empty() {
            return 0;
        }
        let Some(bpe) = &self.bpe else {
            return estimate(text);
        };
        if has_long_run(text.as_bytes()) {
            return slices(text).map(|slice| encode_len(bpe, slice)).sum();
        }
        encode_len(bpe, text)
    }
}

impl TokenCounter {
    /// Length in bytes of a prefix of `text` with at most `max_tokens` tokens,
    /// cut on a char boundary and as long as the tokenizer allows. At least
    /// one character is returned for non-empty text, even if it alone is over.
    pub fn prefix_within(&self, text: &str, max_tokens: usize) -> usize {
        let Some(first) = text.chars().next() else {
            return 0;
        };
        let one_char = first.len_utf8();
        let window = floor_boundary(
            text,
            text.len()
                .min(max_tokens.saturating_mul(PREFIX_BYTES_PER_TOKEN)),
        );
        let mut cut = match &self.bpe {
            Some(bpe) => prefix_by_tokens(bpe, &text[..window], max_tokens),
            None => max_tokens.saturating_mul(4),
        };
        cut = floor_boundary(text, cut.min(window)).max(one_char);
        // Counting a prefix on its own can differ slightly from walking the
        // tokens of a longer text: shrink until the count agrees.
        while cut > one_char && self.count(&text[..cut]) > max_tokens {
            cut = floor_boundary(text, cut - (cut / 20).max(1)).max(one_char);
        }
        cut
    }
}

/// Bytes covered by the first `max_tokens` tokens of `text`.
fn prefix_by_tokens(bpe: &CoreBPE, text: &str, max_tokens: usize) -> usize {
    let pieces: Vec<&str> = if has_long_run(text.as_bytes()) {
        slices(text).collect()
    } else {
        vec![text]
    };
    let mut bytes = 0;
    let mut budget = max_tokens;
    for piece in pieces {
        let tokens =
            catch_unwind(AssertUnwindSafe(|| bpe.encode_ordinary(piece))).unwrap_or_default();
        if tokens.is_empty() {
            return bytes;
        }
        for token in tokens {
            if budget == 0 {
                return bytes;
            }
            budget -= 1;
            bytes += bpe
                .decode_bytes(&[token])
                .map_or(0, |decoded| decoded.len());
        }
    }
    bytes
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn encode_len(bpe: &CoreBPE, text: &str) -> usize {
    // The encoder unwraps regex errors internally; a panic here must not take
    // the server down, so it degrades to an estimate instead.
    catch_unwind(AssertUnwindSafe(|| bpe.encode_ordinary(text).len()))
        .unwrap_or_else(|_| estimate(text))
}

/// Rough upper-leaning estimate: about four bytes per token.
fn estimate(text: &str) -> usize {
    text.len().div_ceil(4).max(text.split_whitespace().count())
}

fn has_long_run(bytes: &[u8]) -> bool {
    let mut run = 0usize;
    let mut in_space = false;
    for &byte in bytes {
        let space = byte.is_ascii_whitespace();
        if space == in_space {
            run += 1;
            if run > MAX_RUN_BYTES {
                return true;
            }
        } else {
            in_space = space;
            run = 1;
        }
    }
    false
}

/// Splits `text` into slices of at most about `SLICE_BYTES`, preferring to cut
/// just before whitespace so ordinary words stay intact.
fn slices(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() <= SLICE_BYTES {
            let slice = rest;
            rest = "";
            return Some(slice);
        }
        let mut cut = SLICE_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(char::is_whitespace) {
            if space > 0 {
                cut = space;
            }
        }
        if cut == 0 {
            // A single character wider than the slice cannot happen (UTF-8 is
            // at most four bytes), but never return an empty slice.
            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (slice, tail) = rest.split_at(cut);
        rest = tail;
        Some(slice)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn counts_known_strings() {
        let counter = TokenCounter::shared();
        assert_eq!(counter.count(""), 0);
        assert_eq!(counter.count("hello world"), 2);
        assert!(
            counter.bpe.is_some(),
            "the vocabulary is embedded in the crate"
        );
    }

    #[test]
    fn pathological_runs_are_counted_quickly() {
        let counter = TokenCounter::shared();
        let started = std::time::Instant::now();
        let long_word = "a".repeat(200_000);
        let spaces = " ".repeat(200_000);
        assert!(counter.count(&long_word) > 0);
        assert!(counter.count(&spaces) > 0);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn prefix_within_respects_the_budget() {
        let counter = TokenCounter::shared();
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let cut = counter.prefix_within(&text, 10);
        assert_eq!(counter.count(&text[..cut]), 10);
        let run: String = "é漢x".repeat(5_000);
        let cut = counter.prefix_within(&run, 50);
        assert!(counter.count(&run[..cut]) <= 50 && cut > 20);
        assert_eq!(counter.prefix_within("", 5), 0);
        assert_eq!(counter.prefix_within("😀😀", 0), "😀".len());
    }

    #[test]
    fn slices_cover_the_text() {
        let text = format!("{} tail é", "x".repeat(3000));
        let joined: String = slices(&text).collect();
        assert_eq!(joined, text);
        assert!(slices(&text).all(|slice| slice.len() <= SLICE_BYTES));
    }
}

//! Cuts blocks into segments: the smallest units the packer moves around.
//!
//! A block that fits the budget is one segment. A longer one is cut at
//! sentence boundaries (lines for code); a sentence that is still too long is
//! cut between words, and a word that is too long between characters.

use unicode_segmentation::UnicodeSegmentation;

use crate::rag::extract::Block;
use crate::rag::tokens::TokenCounter;

/// A trimmed, non-empty slice of one block's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Segment {
    pub block: usize,
    /// Byte range in the block text.
    pub start: usize,
    pub end: usize,
    /// The same range in characters.
    pub char_start: usize,
    pub char_end: usize,
    pub tokens: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Sentences,
    Lines,
    Words,
    Characters,
}

impl Level {
    fn finer(self) -> Level {
        match self {
            Level::Sentences | Level::Lines => Level::Words,
            Level::Words | Level::Characters => Level::Characters,
        }
    }
}

/// Appends the segments of block `block` to `out`.
pub(super) fn split_block(
    blocks: &[Block],
    block: usize,
    counter: &TokenCounter,
    max_tokens: usize,
    out: &mut Vec<Segment>,
) {
    let text = blocks[block].text();
    let (start, end) = trimmed(text, 0, text.len());
    if start == end {
        return;
    }
    let first_level = match blocks[block] {
        Block::Code(_) => Level::Lines,
        _ => Level::Sentences,
    };
    let mut splitter = Splitter {
        text,
        block,
        counter,
        max_tokens,
        chars: CharCursor::default(),
        out,
    };
    let tokens = counter.count(&text[start..end]);
    if tokens <= max_tokens {
        splitter.push(start, end, tokens);
    } else {
        splitter.split(start, end, first_level);
    }
}

struct Splitter<'a> {
    text: &'a str,
    block: usize,
    counter: &'a TokenCounter,
    max_tokens: usize,
    chars: CharCursor,
    out: &'a mut Vec<Segment>,
}

impl Splitter<'_> {
    fn split(&mut self, start: usize, end: usize, level: Level) {
        if level == Level::Characters {
            self.split_characters(start, end);
            return;
        }
        for (piece_start, piece_end) in pieces(self.text, start, end, level) {
            let tokens = self.counter.count(&self.text[piece_start..piece_end]);
            if tokens <= self.max_tokens {
                self.push(piece_start, piece_end, tokens);
            } else {
                self.split(piece_start, piece_end, level.finer());
            }
        }
    }

    /// Cuts an unbreakable run into the longest prefixes that fit.
    fn split_characters(&mut self, mut start: usize, end: usize) {
        while start < end {
            let cut = start
                + self
                    .counter
                    .prefix_within(&self.text[start..end], self.max_tokens);
            let tokens = self.counter.count(&self.text[start..cut]);
            self.push(start, cut, tokens);
            start = cut;
        }
    }

    fn push(&mut self, start: usize, end: usize, tokens: usize) {
        let char_start = self.chars.at(self.text, start);
        let char_end = self.chars.at(self.text, end);
        self.out.push(Segment {
            block: self.block,
            start,
            end,
            char_start,
            char_end,
            tokens,
        });
    }
}

/// Trimmed, non-empty sub-ranges of `text[start..end]` at the given level.
fn pieces(text: &str, start: usize, end: usize, level: Level) -> Vec<(usize, usize)> {
    let slice = &text[start..end];
    let raw: Vec<(usize, usize)> = match level {
        Level::Sentences => slice
            .split_sentence_bound_indices()
            .map(|(at, sentence)| (at, at + sentence.len()))
            .collect(),
        Level::Lines => split_keeping_offsets(slice, |c| c == '\n'),
        Level::Words | Level::Characters => split_keeping_offsets(slice, char::is_whitespace),
    };
    raw.into_iter()
        .map(|(a, b)| trimmed(text, start + a, start + b))
        .filter(|(a, b)| a < b)
        .collect()
}

fn split_keeping_offsets(text: &str, separator: impl Fn(char) -> bool) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut piece_start = 0;
    for (at, c) in text.char_indices() {
        if separator(c) {
            ranges.push((piece_start, at));
            piece_start = at + c.len_utf8();
        }
    }
    ranges.push((piece_start, text.len()));
    ranges
}

/// `start..end` without surrounding whitespace.
pub(super) fn trimmed(text: &str, start: usize, end: usize) -> (usize, usize) {
    let slice = &text[start..end];
    let leading = slice.len() - slice.trim_start().len();
    let trailing = slice.len() - slice.trim_end().len();
    if leading == slice.len() {
        return (start, start);
    }
    (start + leading, end - trailing)
}

/// Converts increasing byte offsets to char offsets in one pass.
#[derive(Default)]
struct CharCursor {
    byte: usize,
    chars: usize,
}

impl CharCursor {
    fn at(&mut self, text: &str, byte: usize) -> usize {
        if byte < self.byte {
            self.byte = 0;
            self.chars = 0;
        }
        self.chars += text[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(block: Block, max: usize) -> Vec<(String, usize)> {
        let blocks = vec![block];
        let mut out = Vec::new();
        split_block(&blocks, 0, TokenCounter::shared(), max, &mut out);
        let text = blocks[0].text();
        out.iter()
            .map(|segment| {
                assert_eq!(
                    text[segment.start..segment.end].chars().count(),
                    segment.char_end - segment.char_start
                );
                (text[segment.start..segment.end].to_owned(), segment.tokens)
            })
            .collect()
    }

    #[test]
    fn short_block_is_one_segment() {
        let pieces = split(Block::Paragraph("  One short paragraph. Two. ".into()), 50);
        assert_eq!(pieces, vec![("One short paragraph. Two.".to_owned(), 6)]);
    }

    #[test]
    fn long_block_splits_at_sentences_then_words_then_chars() {
        let text = format!(
            "First sentence is here. Now {} Last one. {}",
            "word ".repeat(30).trim_end(),
            "x".repeat(200)
        );
        let pieces = split(Block::Paragraph(text), 12);
        assert_eq!(pieces[0].0, "First sentence is here.");
        assert!(pieces.iter().all(|(_, tokens)| *tokens <= 12));
        assert!(pieces.iter().any(|(piece, _)| piece == "word"));
        assert!(pieces.iter().any(|(piece, _)| piece.starts_with("xxx")));
        let rejoined: String = pieces.iter().map(|(piece, _)| piece.as_str()).collect();
        assert!(rejoined.contains(&"x".repeat(200)));
    }

    #[test]
    fn code_splits_at_lines() {
        let code = (0..40)
            .map(|i| format!("let v{i} = {i};"))
            .collect::<Vec<_>>()
            .join("\n");
        let pieces = split(Block::Code(code), 10);
        assert_eq!(pieces[0].0, "let v0 = 0;");
        assert_eq!(pieces.len(), 40);
    }

    #[test]
    fn huge_unbreakable_runs_split_in_linear_time() {
        let run: String = (0..300_000u32)
            .map(|i| char::from(b'A' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
            .collect();
        let started = std::time::Instant::now();
        let pieces = split(Block::Paragraph(run.clone()), 300);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert!(pieces.iter().all(|(_, tokens)| *tokens <= 300));
        assert_eq!(
            pieces
                .iter()
                .map(|(piece, _)| piece.as_str())
                .collect::<String>(),
            run
        );
    }

    #[test]
    fn multibyte_text_keeps_char_offsets() {
        let text = "Él está aquí. ".repeat(40) + &"漢字".repeat(100);
        let pieces = split(Block::Paragraph(text), 9);
        assert!(pieces.iter().all(|(_, tokens)| *tokens <= 9));
    }
}

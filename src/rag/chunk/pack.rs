//! Packs segments into chunks under the token budget, with overlap.

use unicode_segmentation::UnicodeSegmentation;

use super::segment::{trimmed, Segment};
use super::{Chunk, SourcePosition};
use crate::rag::extract::Block;
use crate::rag::tokens::TokenCounter;

/// Tokens assumed for the separator between two segments when estimating;
/// every chunk is counted exactly before it is emitted.
const SEPARATOR_TOKENS: usize = 1;

pub(super) struct Packer<'a> {
    blocks: &'a [Block],
    counter: &'a TokenCounter,
    max_tokens: usize,
    overlap_tokens: usize,
    chunks: Vec<Chunk>,
}

/// The chunk being filled: `seeded` leading segments are overlap carried
/// over from the previous chunk.
#[derive(Default)]
struct Draft {
    segments: Vec<Segment>,
    seeded: usize,
    estimate: usize,
}

impl Draft {
    fn has_new_content(&self) -> bool {
        self.segments.len() > self.seeded
    }

    fn cost_of(&self, segment: &Segment) -> usize {
        let separator = if self.segments.is_empty() {
            0
        } else {
            SEPARATOR_TOKENS
        };
        segment.tokens + separator
    }

    fn push(&mut self, segment: Segment) {
        self.estimate += self.cost_of(&segment);
        self.segments.push(segment);
    }

    fn drop_first_seed(&mut self) {
        self.segments.remove(0);
        self.seeded -= 1;
        self.reestimate();
    }

    fn reestimate(&mut self) {
        let tokens: usize = self.segments.iter().map(|segment| segment.tokens).sum();
        self.estimate = tokens + self.segments.len().saturating_sub(1) * SEPARATOR_TOKENS;
    }
}

impl<'a> Packer<'a> {
    pub(super) fn new(
        blocks: &'a [Block],
        counter: &'a TokenCounter,
        max_tokens: usize,
        overlap_tokens: usize,
    ) -> Self {
        Self {
            blocks,
            counter,
            max_tokens,
            overlap_tokens,
            chunks: Vec::new(),
        }
    }

    pub(super) fn finish(self) -> Vec<Chunk> {
        self.chunks
    }

    /// Packs the segments of one section; overlap never leaves a section.
    pub(super) fn pack_section(&mut self, heading_path: &[String], segments: &[Segment]) {
        let mut draft = Draft::default();
        let mut next = 0;
        loop {
            let Some(&segment) = segments.get(next) else {
                if !draft.has_new_content() {
                    return;
                }
                // End of section: emit; segments handed back are packed again.
                let returned = self.emit(&mut draft, heading_path);
                if returned == 0 {
                    return;
                }
                next -= returned;
                draft = self.overlap_after(&draft.segments);
                continue;
            };
            if draft.estimate + draft.cost_of(&segment) <= self.max_tokens {
                draft.push(segment);
                next += 1;
            } else if draft.has_new_content() {
                let returned = self.emit(&mut draft, heading_path);
                next -= returned;
                draft = self.overlap_after(&draft.segments);
            } else if draft.seeded > 0 {
                // Only overlap is waiting and the segment does not fit next to
                // it: give up overlap, oldest first.
                draft.drop_first_seed();
            } else {
                // Unreachable: every segment fits an empty draft. Kept total
                // so the loop always advances.
                draft.push(segment);
                next += 1;
            }
        }
    }

    /// Emits the draft as a chunk. If its exact token count is over budget,
    /// trailing segments are handed back (their number is returned) and then
    /// overlap is dropped until it fits. Afterwards `draft.segments` holds
    /// exactly the emitted segments.
    fn emit(&mut self, draft: &mut Draft, heading_path: &[String]) -> usize {
        let mut returned = 0;
        loop {
            let text = self.text_of(&draft.segments);
            let tokens = self.counter.count(&text);
            let single = draft.segments.len() == 1;
            if tokens <= self.max_tokens || single {
                // A single segment was counted on its own when it was cut and
                // is exactly this text, so it always fits.
                debug_assert!(tokens <= self.max_tokens);
                self.push_chunk(text, tokens, &draft.segments, heading_path);
                return returned;
            }
            if draft.segments.len() - draft.seeded > 1 {
                draft.segments.pop();
                returned += 1;
            } else {
                draft.drop_first_seed();
            }
        }
    }

    fn push_chunk(&mut self, text: String, tokens: usize, segments: &[Segment], path: &[String]) {
        let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
            return;
        };
        self.chunks.push(Chunk {
            index: self.chunks.len(),
            text,
            token_count: tokens,
            heading_path: path.to_vec(),
            position: SourcePosition {
                block_start: first.block,
                block_end: last.block,
                char_start: first.char_start,
                char_end: last.char_end,
            },
        });
    }

    /// Text of consecutive segments: one slice per block, blocks separated
    /// by a blank line (a line break between items of a list or table).
    fn text_of(&self, segments: &[Segment]) -> String {
        let mut text = String::new();
        let mut index = 0;
        while index < segments.len() {
            let first = segments[index];
            let mut last = first;
            while index + 1 < segments.len() && segments[index + 1].block == first.block {
                index += 1;
                last = segments[index];
            }
            if !text.is_empty() {
                text.push_str(self.separator(first.block));
            }
            text.push_str(&self.blocks[first.block].text()[first.start..last.end]);
            index += 1;
        }
        text
    }

    fn separator(&self, block: usize) -> &'static str {
        let is_row = |b: &Block| matches!(b, Block::ListItem(_) | Block::TableRow(_));
        let same_kind_run = block > 0
            && is_row(&self.blocks[block])
            && std::mem::discriminant(&self.blocks[block])
                == std::mem::discriminant(&self.blocks[block - 1]);
        if same_kind_run {
            "\n"
        } else {
            "\n\n"
        }
    }

    /// The overlap seed for the chunk after `emitted`: its trailing segments
    /// within the overlap budget, or else a tail of its last segment.
    fn overlap_after(&self, emitted: &[Segment]) -> Draft {
        let mut draft = Draft::default();
        if self.overlap_tokens == 0 {
            return draft;
        }
        let mut taken = 0;
        let mut tokens = 0;
        // Never the whole previous chunk: the next one must start later.
        for segment in emitted.iter().skip(1).rev() {
            let cost = segment.tokens + if taken == 0 { 0 } else { SEPARATOR_TOKENS };
            if tokens + cost > self.overlap_tokens {
                break;
            }
            tokens += cost;
            taken += 1;
        }
        if taken > 0 {
            draft.segments = emitted[emitted.len() - taken..].to_vec();
        } else if let Some(tail) = emitted.last().and_then(|last| self.tail_of(last)) {
            draft.segments.push(tail);
        }
        draft.seeded = draft.segments.len();
        draft.reestimate();
        draft
    }

    /// The longest tail of `segment` within the overlap budget, cut at a
    /// sentence boundary when possible, else between words.
    fn tail_of(&self, segment: &Segment) -> Option<Segment> {
        let block_text = self.blocks[segment.block].text();
        let text = &block_text[segment.start..segment.end];
        let budget = self.overlap_tokens;
        let mut best: Option<(usize, usize)> = None;
        let sentence_starts: Vec<usize> = text
            .split_sentence_bound_indices()
            .map(|(at, _)| at)
            .collect();
        for &at in sentence_starts.iter().rev() {
            if at == 0 {
                break;
            }
            let tokens = self.counter.count(text[at..].trim());
            if tokens > budget {
                break;
            }
            best = Some((at, tokens));
        }
        if best.is_none() {
            best = self.word_tail(text, budget);
        }
        let (at, tokens) = best?;
        let (start, end) = trimmed(block_text, segment.start + at, segment.end);
        if start == end {
            return None;
        }
        let skipped = block_text[segment.start..start].chars().count();
        Some(Segment {
            block: segment.block,
            start,
            end,
            char_start: segment.char_start + skipped,
            char_end: segment.char_end,
            tokens,
        })
    }

    /// Start offset and tokens of the longest word-aligned tail of `text`
    /// within `budget` tokens.
    fn word_tail(&self, text: &str, budget: usize) -> Option<(usize, usize)> {
        let word_starts: Vec<usize> = text
            .char_indices()
            .filter(|&(at, c)| {
                !c.is_whitespace() && at > 0 && text[..at].ends_with(char::is_whitespace)
            })
            .map(|(at, _)| at)
            .collect();
        // Estimate by adding words from the end, then check exactly.
        let mut chosen = None;
        let mut estimate = 0;
        let mut end = text.len();
        for &start in word_starts.iter().rev() {
            estimate += self.counter.count(&text[start..end]);
            end = start;
            if estimate > budget {
                break;
            }
            chosen = Some(start);
        }
        let chosen = chosen?;
        let first = word_starts.iter().position(|&start| start == chosen)?;
        word_starts[first..].iter().find_map(|&start| {
            let tokens = self.counter.count(text[start..].trim_end());
            (tokens <= budget).then_some((start, tokens))
        })
    }
}

//! Structure-aware chunking of extracted documents.
//!
//! Chunks follow the document structure: they never cross a heading, keep
//! paragraphs and list items whole when they fit, split longer blocks at
//! sentence boundaries (then words, then characters as a last resort), and
//! never exceed the token budget. Consecutive chunks of one section share an
//! overlap taken from the end of the previous chunk. The heading path is
//! metadata: nothing is prefixed into the chunk text.

mod pack;
mod sections;
mod segment;

use serde::{Deserialize, Serialize};

use super::extract::ExtractedDocument;
use super::tokens::TokenCounter;

/// Smallest budget honoured: one character can take up to four tokens, so a
/// tiny budget could not always be met.
pub const MIN_MAX_TOKENS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkConfig {
    /// Upper bound on the tokens of a chunk (at least [`MIN_MAX_TOKENS`]).
    pub max_tokens: usize,
    /// Tokens repeated from the end of the previous chunk of the same
    /// section (capped at half of `max_tokens`).
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            max_tokens: 300,
            overlap_tokens: 50,
        }
    }
}

impl ChunkConfig {
    fn effective(&self) -> (usize, usize) {
        let max = self.max_tokens.max(MIN_MAX_TOKENS);
        (max, self.overlap_tokens.min(max / 2))
    }
}

/// Where a chunk's text comes from in [`ExtractedDocument::blocks`].
///
/// The chunk starts at character `char_start` of block `block_start` and ends
/// before character `char_end` of block `block_end` (inclusive block range).
/// Offsets count Unicode scalar values, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    pub block_start: usize,
    pub block_end: usize,
    pub char_start: usize,
    pub char_end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position of the chunk in the document, from 0.
    pub index: usize,
    pub text: String,
    /// `cl100k_base` tokens in `text`.
    pub token_count: usize,
    /// Headings enclosing the chunk, outermost first.
    pub heading_path: Vec<String>,
    pub position: SourcePosition,
}

impl Chunk {
    /// The text with its heading path above it, for embedders that benefit
    /// from the section context.
    pub fn text_with_headings(&self) -> String {
        if self.heading_path.is_empty() {
            return self.text.clone();
        }
        format!("{}\n\n{}", self.heading_path.join(" > "), self.text)
    }
}

/// Splits a document into chunks.
pub fn chunk(doc: &ExtractedDocument, cfg: &ChunkConfig) -> Vec<Chunk> {
    let (max_tokens, overlap_tokens) = cfg.effective();
    let counter = TokenCounter::shared();
    let mut packer = pack::Packer::new(&doc.blocks, counter, max_tokens, overlap_tokens);
    for section in sections::sections(&doc.blocks) {
        let mut segments = Vec::new();
        for block in section.blocks {
            segment::split_block(&doc.blocks, block, counter, max_tokens, &mut segments);
        }
        packer.pack_section(&section.heading_path, &segments);
    }
    packer.finish()
}

#[cfg(test)]
mod tests;

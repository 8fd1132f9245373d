#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::*;
use crate::rag::extract::{Block, DocumentKind};

fn document(blocks: Vec<Block>) -> ExtractedDocument {
    ExtractedDocument {
        kind: DocumentKind::Markdown,
        title: None,
        blocks,
    }
}

fn heading(level: u8, text: &str) -> Block {
    Block::Heading {
        level,
        text: text.into(),
    }
}

/// Heading path in force at each block, computed independently of the chunker.
fn expected_paths(blocks: &[Block]) -> Vec<Vec<String>> {
    let mut open: Vec<(u8, String)> = Vec::new();
    blocks
        .iter()
        .map(|block| {
            if let Block::Heading { level, text } = block {
                open.retain(|(l, _)| l < level);
                open.push((*level, text.clone()));
            }
            open.iter().map(|(_, t)| t.clone()).collect()
        })
        .collect()
}

/// Checks every invariant the chunker promises.
fn check_invariants(doc: &ExtractedDocument, cfg: &ChunkConfig, chunks: &[Chunk]) {
    let counter = TokenCounter::shared();
    let max = cfg.max_tokens.max(MIN_MAX_TOKENS);
    let paths = expected_paths(&doc.blocks);
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.index, i);
        assert!(!chunk.text.trim().is_empty());
        assert_eq!(
            chunk.token_count,
            counter.count(&chunk.text),
            "token count is exact"
        );
        assert!(
            chunk.token_count <= max,
            "chunk {i} has {} > {max} tokens",
            chunk.token_count
        );
        let pos = chunk.position;
        assert!(pos.block_start <= pos.block_end);
        assert_eq!(
            chunk.heading_path, paths[pos.block_start],
            "heading path of chunk {i}"
        );
        assert_eq!(
            chunk.heading_path, paths[pos.block_end],
            "chunk {i} crosses a heading"
        );
        // The text starts and ends where the position says.
        let first: String = doc.blocks[pos.block_start]
            .text()
            .chars()
            .skip(pos.char_start)
            .collect();
        let last: String = doc.blocks[pos.block_end]
            .text()
            .chars()
            .take(pos.char_end)
            .collect();
        let head = chunk.text.split("\n").next().unwrap();
        assert!(
            first.starts_with(head) || head.starts_with(first.trim_end()),
            "chunk {i} start"
        );
        assert!(
            last.trim_end()
                .ends_with(chunk.text.rsplit('\n').next().unwrap()),
            "chunk {i} end"
        );
        if i > 0 {
            let prev = chunks[i - 1].position;
            assert!(
                (pos.block_start, pos.char_start) > (prev.block_start, prev.char_start),
                "chunks are in document order"
            );
            assert!((pos.block_end, pos.char_end) > (prev.block_end, prev.char_end));
        }
    }
    // Coverage: every non-whitespace character of every non-heading block
    // lies inside some chunk's range, and every word shows up in such a chunk.
    for (b, block) in doc.blocks.iter().enumerate() {
        if matches!(block, Block::Heading { .. }) {
            continue;
        }
        let covering: Vec<&Chunk> = chunks
            .iter()
            .filter(|c| c.position.block_start <= b && b <= c.position.block_end)
            .collect();
        for (ci, ch) in block.text().chars().enumerate() {
            if ch.is_whitespace() {
                continue;
            }
            let covered = covering.iter().any(|c| {
                let p = c.position;
                let after_start = b > p.block_start || ci >= p.char_start;
                let before_end = b < p.block_end || ci < p.char_end;
                after_start && before_end
            });
            assert!(covered, "char {ci} of block {b} is in no chunk");
        }
        for word in block.text().split_whitespace() {
            if counter.count(word) <= max {
                assert!(
                    covering.iter().any(|c| c.text.contains(word)),
                    "word {word:?} of block {b} is in no chunk"
                );
            }
        }
    }
}

#[test]
fn small_document_is_one_chunk_per_section() {
    let doc = document(vec![
        heading(1, "Guide"),
        Block::Paragraph("Intro paragraph.".into()),
        Block::ListItem("first".into()),
        Block::ListItem("second".into()),
        heading(2, "Details"),
        Block::Paragraph("Detail text.".into()),
    ]);
    let chunks = chunk(&doc, &ChunkConfig::default());
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0].text, "Intro paragraph.\n\nfirst\nsecond");
    assert_eq!(chunks[0].heading_path, vec!["Guide"]);
    assert_eq!(
        chunks[0].position,
        SourcePosition {
            block_start: 1,
            block_end: 3,
            char_start: 0,
            char_end: 6
        }
    );
    assert_eq!(chunks[1].text, "Detail text.");
    assert_eq!(chunks[1].heading_path, vec!["Guide", "Details"]);
    assert_eq!(
        chunks[1].text_with_headings(),
        "Guide > Details\n\nDetail text."
    );
    check_invariants(&doc, &ChunkConfig::default(), &chunks);
}

#[test]
fn paragraphs_stay_whole_when_they_fit() {
    let para = |n: usize| Block::Paragraph(format!("Paragraph {n} says something useful here."));
    let doc = document((0..10).map(para).collect());
    let cfg = ChunkConfig {
        max_tokens: 30,
        overlap_tokens: 0,
    };
    let chunks = chunk(&doc, &cfg);
    check_invariants(&doc, &cfg, &chunks);
    for c in &chunks {
        for piece in c.text.split("\n\n") {
            assert!(
                piece.starts_with("Paragraph ") && piece.ends_with("here."),
                "{piece:?}"
            );
        }
    }
}

#[test]
fn long_paragraph_splits_at_sentences_with_overlap() {
    let sentences: Vec<String> = (0..60)
        .map(|i| format!("Sentence number {i} is short."))
        .collect();
    let doc = document(vec![Block::Paragraph(sentences.join(" "))]);
    let cfg = ChunkConfig {
        max_tokens: 40,
        overlap_tokens: 10,
    };
    let chunks = chunk(&doc, &cfg);
    check_invariants(&doc, &cfg, &chunks);
    assert!(chunks.len() > 5);
    for pair in chunks.windows(2) {
        assert!(
            pair[0].text.ends_with('.'),
            "cut at a sentence end: {:?}",
            pair[0].text
        );
        // The next chunk starts with the last sentence of the previous one.
        let last_sentence = pair[0].text.rsplit(". ").next().unwrap();
        assert!(
            pair[1].text.starts_with(last_sentence),
            "overlap: {:?}",
            pair[1].text
        );
    }
}

#[test]
fn overlap_does_not_cross_sections() {
    let long = (0..30)
        .map(|i| format!("Line {i} of text."))
        .collect::<Vec<_>>()
        .join(" ");
    let doc = document(vec![
        heading(1, "A"),
        Block::Paragraph(long.clone()),
        heading(1, "B"),
        Block::Paragraph(long),
    ]);
    let cfg = ChunkConfig {
        max_tokens: 40,
        overlap_tokens: 15,
    };
    let chunks = chunk(&doc, &cfg);
    check_invariants(&doc, &cfg, &chunks);
    let first_b = chunks.iter().find(|c| c.heading_path == ["B"]).unwrap();
    assert!(first_b.text.starts_with("Line 0 of text."));
}

#[test]
fn unbreakable_text_is_cut_by_characters() {
    let doc = document(vec![Block::Paragraph(format!(
        "start {} end",
        "z".repeat(5_000)
    ))]);
    let cfg = ChunkConfig {
        max_tokens: 50,
        overlap_tokens: 10,
    };
    let chunks = chunk(&doc, &cfg);
    check_invariants(&doc, &cfg, &chunks);
}

#[test]
fn overlap_never_repeats_a_whole_chunk() {
    // A short chunk forced out by an exact recount must not come back whole
    // as the next chunk's overlap.
    let doc = document(vec![Block::Code(
        "漢字 the\n  漢字 the the the the the.".into(),
    )]);
    let cfg = ChunkConfig {
        max_tokens: 8,
        overlap_tokens: 4,
    };
    let chunks = chunk(&doc, &cfg);
    check_invariants(&doc, &cfg, &chunks);
}

#[test]
fn headings_only_document_has_no_chunks() {
    let doc = document(vec![heading(1, "Only"), heading(2, "Headings")]);
    assert!(chunk(&doc, &ChunkConfig::default()).is_empty());
}

#[test]
fn tiny_budgets_are_raised_to_the_minimum() {
    let doc = document(vec![Block::Paragraph(
        "A few words 😀 with an emoji in them.".into(),
    )]);
    let cfg = ChunkConfig {
        max_tokens: 0,
        overlap_tokens: 100,
    };
    let chunks = chunk(&doc, &cfg);
    check_invariants(&doc, &cfg, &chunks);
}

const WORDS: &[&str] = &[
    "the",
    "refund",
    "policy",
    "applies",
    "to",
    "orders",
    "café",
    "naïve",
    "über",
    "漢字",
    "😀",
    "e-mail",
    "3.14",
    "x",
    "internationalisation",
    "customer",
    "support",
    "hours",
    "Monday",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9]{1,40}",
        1 => "[a-zA-Zé\\-_/]{1,12}",
    ]
}

fn sentence() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(word(), 1..25),
        prop_oneof![Just("."), Just("!"), Just("?"), Just("")],
    )
        .prop_map(|(words, end)| format!("{}{end}", words.join(" ")))
}

fn paragraph() -> impl Strategy<Value = String> {
    prop::collection::vec(sentence(), 1..12).prop_map(|s| s.join(" "))
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        1 => (1u8..4, prop::collection::vec(word(), 1..4))
            .prop_map(|(level, words)| Block::Heading { level, text: words.join(" ") }),
        5 => paragraph().prop_map(Block::Paragraph),
        2 => sentence().prop_map(Block::ListItem),
        1 => prop::collection::vec(sentence(), 1..8).prop_map(|lines| Block::Code(lines.join("\n  "))),
        1 => prop::collection::vec(word(), 1..5).prop_map(|cells| Block::TableRow(cells.join(" | "))),
        1 => paragraph().prop_map(Block::Quote),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn chunking_invariants_hold(
        blocks in prop::collection::vec(block(), 0..25),
        max_tokens in 8usize..160,
        overlap_percent in 0usize..60,
    ) {
        let cfg = ChunkConfig { max_tokens, overlap_tokens: max_tokens * overlap_percent / 100 };
        let doc = document(blocks);
        let chunks = chunk(&doc, &cfg);
        check_invariants(&doc, &cfg, &chunks);
    }

    #[test]
    fn overlap_is_present_between_chunks_of_a_section(
        sentences in prop::collection::vec(
            prop::collection::vec(proptest::sample::select(WORDS), 1..6)
                .prop_map(|w| format!("Then {}.", w.join(" "))),
            5..80,
        ),
        max_tokens in 40usize..120,
    ) {
        let cfg = ChunkConfig { max_tokens, overlap_tokens: 16 };
        let doc = document(vec![Block::Paragraph(sentences.join(" "))]);
        let chunks = chunk(&doc, &cfg);
        check_invariants(&doc, &cfg, &chunks);
        for pair in chunks.windows(2) {
            let (a, b) = (pair[0].position, pair[1].position);
            prop_assert!(b.char_start < a.char_end, "chunks {a:?} and {b:?} do not overlap");
            let shared = a.char_end - b.char_start;
            let shared_text: String = pair[0].text.chars().rev().take(shared).collect::<Vec<_>>().into_iter().rev().collect();
            prop_assert!(pair[1].text.starts_with(&shared_text));
        }
    }
}

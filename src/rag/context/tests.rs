#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::*;
use crate::rag::chunk::{chunk, ChunkConfig};
use crate::rag::extract::{Block, DocumentKind, ExtractedDocument};

fn retrieved(
    id: u32,
    kb: &str,
    index: usize,
    text: &str,
    score: f32,
) -> RetrievedChunk<u32, String> {
    RetrievedChunk {
        id,
        kb_id: kb.to_owned(),
        kb_title: format!("Doc {kb}"),
        chunk_index: index,
        text: text.to_owned(),
        score,
        heading_path: vec!["Section".to_owned()],
        token_count: TokenCounter::shared().count(text),
    }
}

#[test]
fn nothing_above_the_threshold_means_no_context() {
    let cfg = ContextConfig {
        min_score: 0.5,
        ..ContextConfig::default()
    };
    let built = build_context(vec![retrieved(1, "a", 0, "weak match", 0.2)], &cfg);
    assert!(built.is_empty());
    assert_eq!(built.text, "");
    assert_eq!(built.token_count, 0);
    assert!(build_context(Vec::<RetrievedChunk<u32, String>>::new(), &cfg).is_empty());
    let nan = build_context(
        vec![retrieved(1, "a", 0, "x", f32::NAN)],
        &ContextConfig::default(),
    );
    assert!(nan.is_empty());
}

#[test]
fn passages_are_numbered_by_relevance_with_titles() {
    let chunks = vec![
        retrieved(1, "a", 4, "Less relevant text.", 0.4),
        retrieved(2, "b", 0, "Most relevant text.", 0.9),
    ];
    let built = build_context(chunks, &ContextConfig::default());
    assert_eq!(
        built.text,
        "[1] Doc b — Section\nMost relevant text.\n\n[2] Doc a — Section\nLess relevant text."
    );
    assert_eq!(built.token_count, TokenCounter::shared().count(&built.text));
    let numbers: Vec<(usize, &str, f32)> = built
        .citations
        .iter()
        .map(|c| (c.number, c.kb_id.as_str(), c.score))
        .collect();
    assert_eq!(numbers, vec![(1, "b", 0.9), (2, "a", 0.4)]);
    assert_eq!(
        built.citations[1].position,
        ChunkRange { first: 4, last: 4 }
    );
}

#[test]
fn duplicates_are_removed() {
    let chunks = vec![
        retrieved(1, "a", 0, "Same chunk.", 0.5),
        retrieved(1, "a", 0, "Same chunk.", 0.7),
        retrieved(9, "a", 0, "Same chunk.", 0.6),
    ];
    let built = build_context(chunks, &ContextConfig::default());
    assert_eq!(built.citations.len(), 1);
    assert_eq!(built.citations[0].score, 0.7);
    assert_eq!(built.text.matches("Same chunk.").count(), 1);
}

/// A real document chunked with overlap, so merging has overlap to remove.
fn numbered_document() -> (Vec<String>, Vec<crate::rag::chunk::Chunk>) {
    let sentences: Vec<String> = (0..80)
        .map(|i| format!("Fact number {i} is stated here."))
        .collect();
    let doc = ExtractedDocument {
        kind: DocumentKind::PlainText,
        title: None,
        blocks: vec![
            Block::Heading {
                level: 1,
                text: "Facts".into(),
            },
            Block::Paragraph(sentences.join(" ")),
        ],
    };
    let chunks = chunk(
        &doc,
        &ChunkConfig {
            max_tokens: 60,
            overlap_tokens: 15,
        },
    );
    (sentences, chunks)
}

fn from_chunk(c: &crate::rag::chunk::Chunk, id: u32, score: f32) -> RetrievedChunk<u32, String> {
    RetrievedChunk {
        id,
        kb_id: "facts".to_owned(),
        kb_title: "Fact sheet".to_owned(),
        chunk_index: c.index,
        text: c.text.clone(),
        score,
        heading_path: c.heading_path.clone(),
        token_count: c.token_count,
    }
}

#[test]
fn consecutive_chunks_merge_without_repeating_the_overlap() {
    let (sentences, chunks) = numbered_document();
    assert!(chunks.len() > 6);
    // Chunks 1-3 are adjacent (one passage); chunk 5 stands alone.
    let picked = vec![
        from_chunk(&chunks[3], 3, 0.6),
        from_chunk(&chunks[1], 1, 0.8),
        from_chunk(&chunks[5], 5, 0.7),
        from_chunk(&chunks[2], 2, 0.5),
    ];
    let built = build_context(picked, &ContextConfig::default());
    assert_eq!(built.citations.len(), 2);
    let merged = &built.citations[0];
    assert_eq!(merged.position, ChunkRange { first: 1, last: 3 });
    assert_eq!(merged.score, 0.8);
    assert_eq!(merged.heading_path, vec!["Facts".to_owned()]);
    assert!(built.text.starts_with("[1] Fact sheet — Facts\n"));
    for sentence in &sentences {
        assert!(
            built.text.matches(sentence.as_str()).count() <= 1,
            "{sentence} repeated"
        );
    }
    // The merged passage reads as the original text, in order.
    let passage = built.text.split("\n\n[2]").next().unwrap();
    let body = passage.split_once('\n').unwrap().1;
    let original = sentences.join(" ");
    assert!(
        original.contains(body),
        "merged text differs from the source:\n{body}"
    );
}

#[test]
fn budget_is_respected_and_long_passages_fall_back_to_their_best_chunk() {
    let (_, chunks) = numbered_document();
    let picked: Vec<_> = (1..=4)
        .map(|i| from_chunk(&chunks[i], i as u32, if i == 3 { 0.9 } else { 0.5 }))
        .collect();
    let one_chunk = chunks[3].token_count + 20;
    let cfg = ContextConfig {
        token_budget: one_chunk,
        ..ContextConfig::default()
    };
    let built = build_context(picked, &cfg);
    assert!(built.token_count <= one_chunk);
    assert_eq!(built.citations.len(), 1);
    assert_eq!(
        built.citations[0].position,
        ChunkRange { first: 3, last: 3 }
    );
    assert!(built.text.contains(&chunks[3].text));
}

#[test]
fn max_passages_is_respected() {
    let chunks: Vec<_> = (0..10)
        .map(|i| retrieved(i, &format!("d{i}"), 0, "Text.", 1.0 - i as f32 / 20.0))
        .collect();
    let cfg = ContextConfig {
        max_passages: 3,
        ..ContextConfig::default()
    };
    let built = build_context(chunks, &cfg);
    let kbs: Vec<&str> = built.citations.iter().map(|c| c.kb_id.as_str()).collect();
    assert_eq!(kbs, ["d0", "d1", "d2"]);
}

#[test]
fn merged_sections_show_their_shared_headings() {
    let mut first = retrieved(1, "a", 0, "End of part one.", 0.5);
    first.heading_path = vec!["Guide".into(), "Part one".into()];
    let mut second = retrieved(2, "a", 1, "Start of part two.", 0.5);
    second.heading_path = vec!["Guide".into(), "Part two".into()];
    let built = build_context(vec![first, second], &ContextConfig::default());
    assert_eq!(
        built.text,
        "[1] Doc a — Guide\nEnd of part one.\nStart of part two."
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn built_context_fits_the_budget(
        picks in prop::collection::vec((0u32..6, 0usize..12, 0.0f32..1.0, "[a-z ]{1,300}"), 0..20),
        budget in 0usize..400,
        max_passages in 0usize..6,
    ) {
        let chunks: Vec<_> = picks
            .iter()
            .enumerate()
            .map(|(id, (kb, index, score, text))| retrieved(id as u32, &kb.to_string(), *index, text, *score))
            .collect();
        let cfg = ContextConfig { token_budget: budget, min_score: 0.1, max_passages };
        let built = build_context(chunks, &cfg);
        prop_assert!(built.token_count <= budget);
        prop_assert_eq!(built.token_count, TokenCounter::shared().count(&built.text));
        prop_assert!(built.citations.len() <= max_passages);
        for (i, citation) in built.citations.iter().enumerate() {
            prop_assert_eq!(citation.number, i + 1);
            prop_assert!(citation.score > 0.1);
            let marker = format!("[{}] Doc {}", i + 1, citation.kb_id);
            prop_assert!(built.text.contains(&marker));
        }
        prop_assert!(built.citations.windows(2).all(|w| w[0].score >= w[1].score));
        prop_assert_eq!(built.text.is_empty(), built.citations.is_empty());
    }
}

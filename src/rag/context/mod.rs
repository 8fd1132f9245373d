//! Builds the LLM-ready context from retrieved chunks.
//!
//! Chunks below the relevance threshold are dropped, duplicates removed,
//! consecutive chunks of one document merged into a passage (without the
//! overlap they share), passages ordered by relevance and fitted to a token
//! budget. Each passage is numbered so the answer can cite it.

mod merge;

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use super::tokens::TokenCounter;
use merge::Passage;

/// A chunk returned by search, with what the context needs to show and cite it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievedChunk<C, K> {
    pub id: C,
    /// The knowledge-base document the chunk belongs to.
    pub kb_id: K,
    pub kb_title: String,
    /// Position of the chunk in its document.
    pub chunk_index: usize,
    pub text: String,
    /// Relevance; higher is better. Cosine, fused or any other scale, as long
    /// as `ContextConfig::min_score` uses the same one.
    pub score: f32,
    pub heading_path: Vec<String>,
    /// Tokens of `text` recorded at ingestion. Informational: the builder
    /// counts the text it renders, overlap removal included.
    pub token_count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContextConfig {
    /// Upper bound on the tokens of the built text.
    pub token_budget: usize,
    /// Chunks must score above this to be used.
    pub min_score: f32,
    /// Upper bound on the number of passages.
    pub max_passages: usize,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            token_budget: 2000,
            min_score: 0.0,
            max_passages: 8,
        }
    }
}

/// Inclusive range of chunk indexes within a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRange {
    pub first: usize,
    pub last: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation<K> {
    /// The `[n]` marker of the passage in the context text.
    pub number: usize,
    pub kb_id: K,
    pub title: String,
    pub heading_path: Vec<String>,
    pub position: ChunkRange,
    /// Best score among the passage's chunks.
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltContext<K> {
    /// Numbered passages, most relevant first; empty when nothing relevant
    /// was found (the caller should then say it does not know).
    pub text: String,
    pub citations: Vec<Citation<K>>,
    pub token_count: usize,
}

impl<K> BuiltContext<K> {
    pub fn is_empty(&self) -> bool {
        self.citations.is_empty()
    }

    fn empty() -> Self {
        Self {
            text: String::new(),
            citations: Vec::new(),
            token_count: 0,
        }
    }
}

/// Builds the context for `chunks` (in any order).
pub fn build_context<C, K>(
    chunks: Vec<RetrievedChunk<C, K>>,
    cfg: &ContextConfig,
) -> BuiltContext<K>
where
    C: Eq + Hash,
    K: Clone + Eq + Hash,
{
    let relevant = deduplicate(
        chunks
            .into_iter()
            .filter(|chunk| chunk.score.is_finite() && chunk.score > cfg.min_score)
            .collect(),
    );
    if relevant.is_empty() || cfg.max_passages == 0 {
        return BuiltContext::empty();
    }
    let mut passages = merge::passages(relevant);
    passages.sort_by(|a, b| b.score.total_cmp(&a.score));
    let counter = TokenCounter::shared();
    let mut chosen = choose(passages, cfg, counter);
    loop {
        let built = render(&chosen, counter);
        // Estimates add up parts; the whole is counted exactly and trimmed
        // in the rare case it disagrees.
        if built.token_count <= cfg.token_budget || chosen.is_empty() {
            return built;
        }
        chosen.pop();
    }
}

/// Keeps the best copy of every chunk, by id and by document position,
/// preserving input order otherwise.
fn deduplicate<C, K>(chunks: Vec<RetrievedChunk<C, K>>) -> Vec<RetrievedChunk<C, K>>
where
    C: Eq + Hash,
    K: Eq + Hash,
{
    let mut keep = vec![true; chunks.len()];
    let mut by_id: HashMap<&C, usize> = HashMap::new();
    for (index, chunk) in chunks.iter().enumerate() {
        keep_best(&mut by_id, &chunk.id, index, &chunks, &mut keep);
    }
    let mut by_position: HashMap<(&K, usize), usize> = HashMap::new();
    for (index, chunk) in chunks.iter().enumerate() {
        if keep[index] {
            let key = (&chunk.kb_id, chunk.chunk_index);
            keep_best(&mut by_position, key, index, &chunks, &mut keep);
        }
    }
    chunks
        .into_iter()
        .zip(keep)
        .filter_map(|(chunk, kept)| kept.then_some(chunk))
        .collect()
}

/// Records `index` under `key` unless an earlier chunk with that key scores
/// at least as well; the loser is marked as not kept.
fn keep_best<Key: Eq + Hash, C, K>(
    best: &mut HashMap<Key, usize>,
    key: Key,
    index: usize,
    chunks: &[RetrievedChunk<C, K>],
    keep: &mut [bool],
) {
    match best.get(&key) {
        Some(&other) if chunks[other].score >= chunks[index].score => keep[index] = false,
        Some(&other) => {
            keep[other] = false;
            best.insert(key, index);
        }
        None => {
            best.insert(key, index);
        }
    }
}

/// Greedily takes passages, best first, while the estimate fits the budget;
/// a merged passage that is too long falls back to its best chunk.
fn choose<K: Clone>(
    passages: Vec<Passage<K>>,
    cfg: &ContextConfig,
    counter: &TokenCounter,
) -> Vec<Passage<K>> {
    let mut chosen = Vec::new();
    let mut used = 0;
    for passage in passages {
        if chosen.len() == cfg.max_passages {
            break;
        }
        let separator = if chosen.is_empty() { 0 } else { 1 };
        let cost = passage.estimate_tokens(counter, chosen.len() + 1) + separator;
        if used + cost <= cfg.token_budget {
            used += cost;
            chosen.push(passage);
            continue;
        }
        if let Some(best) = passage.best_single() {
            let cost = best.estimate_tokens(counter, chosen.len() + 1) + separator;
            if used + cost <= cfg.token_budget {
                used += cost;
                chosen.push(best);
            }
        }
    }
    chosen
}

fn render<K: Clone>(passages: &[Passage<K>], counter: &TokenCounter) -> BuiltContext<K> {
    let mut text = String::new();
    let mut citations = Vec::with_capacity(passages.len());
    for (index, passage) in passages.iter().enumerate() {
        let number = index + 1;
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&passage.render(number));
        citations.push(Citation {
            number,
            kb_id: passage.kb_id.clone(),
            title: passage.title.clone(),
            heading_path: passage.heading_path.clone(),
            position: ChunkRange {
                first: passage.first,
                last: passage.last,
            },
            score: passage.score,
        });
    }
    let token_count = counter.count(&text);
    BuiltContext {
        text,
        citations,
        token_count,
    }
}

#[cfg(test)]
mod tests;

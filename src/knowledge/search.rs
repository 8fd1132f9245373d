//! Hybrid search (vector + full text fused by reciprocal rank) and context retrieval, always
//! within one organisation.

use std::collections::HashMap;

use crate::bot_config::RagSettings;
use crate::rag::chunk::SourcePosition;
use crate::rag::context::{build_context, BuiltContext, ContextConfig, RetrievedChunk};
use crate::rag::fuse::{reciprocal_rank_fusion, DEFAULT_RRF_K};

use super::{Knowledge, KnowledgeError};

/// Which rankings a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// Vector and full-text rankings fused by reciprocal rank.
    #[default]
    Hybrid,
    Vector,
    Text,
}

/// One retrieved chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub chunk_id: String,
    pub kb_id: String,
    pub kb_title: String,
    pub chunk_index: usize,
    pub text: String,
    pub token_count: usize,
    pub heading_path: Vec<String>,
    pub position: Option<SourcePosition>,
    /// The ranking score, 0 to 1: cosine similarity in vector mode; in hybrid and text modes the
    /// fused reciprocal-rank score scaled so that first place in every ranking is 1.
    pub score: f32,
    /// Cosine similarity to the query under the current model, when the chunk has a vector.
    pub similarity: Option<f32>,
    /// 1-based rank in the vector and in the full-text ranking, when it appears there.
    pub vector_rank: Option<usize>,
    pub text_rank: Option<usize>,
}

/// Candidates taken from each ranking before fusion.
fn candidates(k: usize) -> usize {
    (k * 4).clamp(20, 200)
}

impl Knowledge {
    /// The `k` chunks of the organisation most relevant to `query`, best first.
    pub async fn search(
        &self,
        org_id: &str,
        query: &str,
        mode: SearchMode,
        k: usize,
    ) -> Result<Vec<SearchHit>, KnowledgeError> {
        let db = self.db();
        let model = self.model();
        if k == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let pool = if mode == SearchMode::Hybrid {
            candidates(k)
        } else {
            k
        };
        let query_vector = if mode == SearchMode::Text {
            None
        } else {
            match self.embedder().embed(&[query.to_string()]).await {
                Ok(mut vectors) if vectors.len() == 1 => vectors.pop(),
                Ok(_) => None,
                // A hybrid search still answers from full text when the embedder is down.
                Err(error) if mode == SearchMode::Hybrid => {
                    tracing::warn!(%error, "query embedding failed; searching full text only");
                    None
                }
                Err(error) => return Err(error.into()),
            }
        };
        let vector_list = match &query_vector {
            Some(vector) => db.vector_search(org_id, &model, vector, pool).await?,
            None => Vec::new(),
        };
        let text_list = if mode == SearchMode::Vector {
            Vec::new()
        } else {
            db.text_search(org_id, query, pool).await?
        };
        let rank_of = |list: &[(String, f32)]| -> HashMap<String, usize> {
            list.iter()
                .enumerate()
                .map(|(i, (id, _))| (id.clone(), i + 1))
                .collect()
        };
        let (vector_ranks, text_ranks) = (rank_of(&vector_list), rank_of(&text_list));
        let mut similarity: HashMap<String, f32> = vector_list.iter().cloned().collect();

        let ranked: Vec<(String, f32)> = match mode {
            SearchMode::Vector => vector_list.into_iter().take(k).collect(),
            _ => {
                let lists: Vec<Vec<(String, f32)>> = [vector_list, text_list]
                    .into_iter()
                    .filter(|l| !l.is_empty())
                    .collect();
                // Scaled so a chunk first in both rankings scores 1.
                let best = 2.0 / (DEFAULT_RRF_K + 1.0);
                reciprocal_rank_fusion(&lists, DEFAULT_RRF_K)
                    .into_iter()
                    .take(k)
                    .map(|(id, score)| (id, (score / best).min(1.0)))
                    .collect()
            }
        };
        let ids: Vec<String> = ranked.iter().map(|(id, _)| id.clone()).collect();
        if let Some(vector) = &query_vector {
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !similarity.contains_key(*id))
                .cloned()
                .collect();
            similarity.extend(
                db.chunk_similarities(org_id, &model, &missing, vector)
                    .await?,
            );
        }
        let mut rows: HashMap<String, _> = db
            .chunk_hits(org_id, &ids)
            .await?
            .into_iter()
            .map(|row| (row.id.clone(), row))
            .collect();
        Ok(ranked
            .into_iter()
            .filter_map(|(id, score)| {
                let row = rows.remove(&id)?;
                Some(SearchHit {
                    similarity: similarity.get(&id).copied(),
                    vector_rank: vector_ranks.get(&id).copied(),
                    text_rank: text_ranks.get(&id).copied(),
                    chunk_id: id,
                    kb_id: row.kb_id,
                    kb_title: row.kb_title,
                    chunk_index: usize::try_from(row.chunk_index).unwrap_or_default(),
                    text: row.text,
                    token_count: usize::try_from(row.token_count).unwrap_or_default(),
                    heading_path: serde_json::from_str(&row.heading_path).unwrap_or_default(),
                    position: serde_json::from_str(&row.position).ok(),
                    score,
                })
            })
            .collect())
    }

    /// The LLM-ready context for answering `query` from the organisation's knowledge base, with
    /// citations; empty when nothing relevant was found (answer with the fallback then).
    pub async fn retrieve(
        &self,
        org_id: &str,
        query: &str,
        settings: &RagSettings,
    ) -> Result<BuiltContext<String>, KnowledgeError> {
        let hits = self
            .search(org_id, query, SearchMode::Hybrid, settings.top_k as usize)
            .await?;
        Ok(build(hits, settings))
    }
}

/// Whether a hit is relevant enough to be shown to the model: the threshold applies to cosine
/// similarity (a scale independent of how many chunks were ranked); a chunk that only full text
/// found (no vector yet, e.g. during a model change) passes when it ranks first there.
pub fn is_relevant(hit: &SearchHit, min_score: f32) -> bool {
    match hit.similarity {
        Some(similarity) => similarity >= min_score,
        None => hit.text_rank == Some(1),
    }
}

/// Builds the context from ranked hits under the organisation's settings.
pub fn build(hits: Vec<SearchHit>, settings: &RagSettings) -> BuiltContext<String> {
    let min_score = settings.min_score as f32;
    let chunks = hits
        .into_iter()
        .filter(|hit| is_relevant(hit, min_score))
        .map(|hit| RetrievedChunk {
            id: hit.chunk_id,
            kb_id: hit.kb_id,
            kb_title: hit.kb_title,
            chunk_index: hit.chunk_index,
            text: hit.text,
            score: hit.score,
            heading_path: hit.heading_path,
            token_count: hit.token_count,
        })
        .collect();
    build_context(
        chunks,
        &ContextConfig {
            token_budget: settings.max_context_tokens as usize,
            min_score: 0.0,
            max_passages: settings.top_k as usize,
        },
    )
}

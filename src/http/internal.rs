//! Internal operator endpoints of the retrieval and answer pipeline (`/internal/…`): never for
//! end users. Callers present the internal service key (`X-Internal-Key`, compared in constant
//! time) or a superuser's access token.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::bot_config::{BotConfig, RagSettings};
use crate::chat::answer::AnswerError;
use crate::error::{ApiError, FieldError};
use crate::http::authn::Authenticated;
use crate::http::json::Json;
use crate::http::knowledge_bases::KnowledgeBase;
use crate::knowledge::{SearchHit, SearchMode};
use crate::llm::collect_completion;
use crate::rag::context::BuiltContext;
use crate::state::AppState;
use crate::storage::knowledge::JobKind;

pub const INTERNAL_KEY_HEADER: &str = "x-internal-key";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chunk))
        .routes(routes!(embed))
        .routes(routes!(rebuild))
        .routes(routes!(search))
        .routes(routes!(context))
        .routes(routes!(generate))
}

/// A caller of the internal endpoints: the service key or a superuser.
#[derive(Debug)]
pub struct InternalCaller;

/// Equal-length digests compared without an early exit, so timing reveals nothing of the key.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl FromRequestParts<AppState> for InternalCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(presented) = parts.headers.get(INTERNAL_KEY_HEADER) {
            return match &state.settings.knowledge.internal_key {
                Some(key) if same_secret(presented.as_bytes(), key.expose_secret().as_bytes()) => {
                    Ok(InternalCaller)
                }
                _ => Err(ApiError::unauthorized("invalid internal key")),
            };
        }
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        principal.require_superuser()?;
        Ok(InternalCaller)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KbRef {
    pub kb_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    /// Only this organisation's entries.
    pub org_id: Option<String>,
    /// Only this entry.
    pub kb_id: Option<String>,
    /// Only entries whose vectors are not of the current model (default false: every entry).
    #[serde(default)]
    pub stale_only: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RebuildResponse {
    /// Entries queued.
    pub queued: usize,
    /// The model their vectors will be made with.
    pub embedding_model: String,
    pub embedding_dimension: usize,
}

/// Which rankings a search uses.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Hybrid,
    Vector,
    Text,
}

impl From<Mode> for SearchMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Hybrid => Self::Hybrid,
            Mode::Vector => Self::Vector,
            Mode::Text => Self::Text,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub org_id: String,
    #[schema(min_length = 1, max_length = 2000)]
    pub query: String,
    /// Chunks to return, 1 to 50 (default 5).
    #[schema(minimum = 1, maximum = 50)]
    pub top_k: Option<u32>,
    #[serde(default)]
    pub mode: Mode,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkPosition {
    pub block_start: usize,
    pub block_end: usize,
    pub char_start: usize,
    pub char_end: usize,
}

/// A raw search result.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResult {
    pub chunk_id: String,
    pub kb_id: String,
    pub kb_title: String,
    pub chunk_index: usize,
    pub text: String,
    pub token_count: usize,
    pub heading_path: Vec<String>,
    /// Where the chunk comes from in the extracted document.
    pub position: Option<ChunkPosition>,
    /// Ranking score, 0 to 1 (fused for hybrid and text, cosine for vector).
    pub score: f32,
    /// Cosine similarity to the query, when the chunk has a vector of the current model.
    pub similarity: Option<f32>,
    pub vector_rank: Option<usize>,
    pub text_rank: Option<usize>,
}

impl From<SearchHit> for SearchResult {
    fn from(hit: SearchHit) -> Self {
        Self {
            chunk_id: hit.chunk_id,
            kb_id: hit.kb_id,
            kb_title: hit.kb_title,
            chunk_index: hit.chunk_index,
            text: hit.text,
            token_count: hit.token_count,
            heading_path: hit.heading_path,
            position: hit.position.map(|p| ChunkPosition {
                block_start: p.block_start,
                block_end: p.block_end,
                char_start: p.char_start,
                char_end: p.char_end,
            }),
            score: hit.score,
            similarity: hit.similarity,
            vector_rank: hit.vector_rank,
            text_rank: hit.text_rank,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub embedding_model: String,
    pub results: Vec<SearchResult>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextRequest {
    pub org_id: String,
    #[schema(min_length = 1, max_length = 2000)]
    pub query: String,
    /// Overrides the organisation's `rag.top_k` (1 to 50).
    #[schema(minimum = 1, maximum = 50)]
    pub top_k: Option<u32>,
    /// Overrides the organisation's `rag.min_score` (0 to 1, cosine similarity).
    #[schema(minimum = 0, maximum = 1)]
    pub min_score: Option<f64>,
    /// Overrides the organisation's `rag.max_context_tokens` (100 to 32000).
    #[schema(minimum = 100, maximum = 32000)]
    pub max_context_tokens: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CitationRange {
    pub first: usize,
    pub last: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContextCitation {
    /// The `[n]` marker of the passage in the text.
    pub number: usize,
    pub kb_id: String,
    pub title: String,
    pub heading_path: Vec<String>,
    /// Chunk indexes the passage spans.
    pub position: CitationRange,
    pub score: f32,
}

/// LLM-ready context.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContextResponse {
    /// False when nothing relevant was found: answer with the fallback.
    pub found: bool,
    /// Numbered passages, most relevant first.
    pub text: String,
    pub citations: Vec<ContextCitation>,
    pub token_count: usize,
}

impl From<BuiltContext<String>> for ContextResponse {
    fn from(context: BuiltContext<String>) -> Self {
        Self {
            found: !context.is_empty(),
            citations: context
                .citations
                .into_iter()
                .map(|c| ContextCitation {
                    number: c.number,
                    kb_id: c.kb_id,
                    title: c.title,
                    heading_path: c.heading_path,
                    position: CitationRange {
                        first: c.position.first,
                        last: c.position.last,
                    },
                    score: c.score,
                })
                .collect(),
            text: context.text,
            token_count: context.token_count,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    pub org_id: String,
    /// The end user's message.
    #[schema(min_length = 1, max_length = 4000)]
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GenerateResponse {
    pub reply: String,
    /// False when the knowledge base had nothing relevant and the fallback answer was given.
    pub grounded: bool,
    pub citations: Vec<ContextCitation>,
    /// The provider and model that wrote the reply (`fallback` when none was asked).
    pub provider: String,
    pub model: String,
}

fn validate_query(field: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > max_chars {
        return Err(ApiError::validation(vec![FieldError::new(
            field,
            format!("must be 1 to {max_chars} characters"),
        )]));
    }
    Ok(())
}

async fn bot_config(state: &AppState, org_id: &str) -> Result<BotConfig, ApiError> {
    let org = state
        .db
        .org(org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organisation"))?;
    Ok(BotConfig::from_stored(&org.bot_config))
}

fn knowledge_error(error: crate::knowledge::KnowledgeError) -> ApiError {
    match error {
        crate::knowledge::KnowledgeError::Storage(e) => ApiError::internal(e),
        crate::knowledge::KnowledgeError::Embed(e) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "EMBEDDER_UNAVAILABLE",
            e.to_string(),
        ),
    }
}

async fn queue(state: &AppState, kb_id: &str, kind: JobKind) -> Result<KnowledgeBase, ApiError> {
    let kb = state
        .db
        .kb_by_id(kb_id)
        .await?
        .ok_or_else(|| ApiError::not_found("knowledge-base entry"))?;
    state.db.queue_kb_job(&kb, kind).await?;
    state.knowledge.wake();
    let kb = state
        .db
        .kb_by_id(kb_id)
        .await?
        .ok_or_else(|| ApiError::not_found("knowledge-base entry"))?;
    Ok(kb.into())
}

/// Re-chunk an entry (then embed its chunks), in the background.
#[utoipa::path(
    post,
    path = "/internal/kb/chunk",
    tag = "internal",
    security(("internal_key" = []), ("bearer" = [])),
    request_body = KbRef,
    responses(
        (status = 202, description = "Queued", body = KnowledgeBase),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid internal key or token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a superuser", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn chunk(
    State(state): State<AppState>,
    _caller: InternalCaller,
    Json(body): Json<KbRef>,
) -> Result<(StatusCode, Json<KnowledgeBase>), ApiError> {
    let kb = queue(&state, &body.kb_id, JobKind::Rebuild).await?;
    Ok((StatusCode::ACCEPTED, Json(kb)))
}

/// Embed an entry's chunks that lack a vector of the current model, in the background.
#[utoipa::path(
    post,
    path = "/internal/kb/embed",
    tag = "internal",
    security(("internal_key" = []), ("bearer" = [])),
    request_body = KbRef,
    responses(
        (status = 202, description = "Queued", body = KnowledgeBase),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid internal key or token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a superuser", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn embed(
    State(state): State<AppState>,
    _caller: InternalCaller,
    Json(body): Json<KbRef>,
) -> Result<(StatusCode, Json<KnowledgeBase>), ApiError> {
    let kb = queue(&state, &body.kb_id, JobKind::Embed).await?;
    Ok((StatusCode::ACCEPTED, Json(kb)))
}

/// Fully re-chunk and re-embed entries (all, one organisation's, or one), e.g. after the
/// embedding model changed; `stale_only` limits it to entries made with another model.
#[utoipa::path(
    post,
    path = "/internal/kb/rebuild",
    tag = "internal",
    security(("internal_key" = []), ("bearer" = [])),
    request_body = RebuildRequest,
    responses(
        (status = 202, description = "Queued", body = RebuildResponse),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid internal key or token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a superuser", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn rebuild(
    State(state): State<AppState>,
    _caller: InternalCaller,
    Json(body): Json<RebuildRequest>,
) -> Result<(StatusCode, Json<RebuildResponse>), ApiError> {
    let model = state.knowledge.model();
    let queued = if let Some(kb_id) = &body.kb_id {
        let kb = state
            .db
            .kb_by_id(kb_id)
            .await?
            .filter(|kb| body.org_id.as_ref().is_none_or(|org| *org == kb.org_id))
            .ok_or_else(|| ApiError::not_found("knowledge-base entry"))?;
        state.db.queue_kb_job(&kb, JobKind::Rebuild).await?;
        1
    } else if body.stale_only {
        state
            .knowledge
            .rebuild_stale(body.org_id.as_deref())
            .await?
    } else {
        let entries = state.db.kbs_of(body.org_id.as_deref()).await?;
        for kb in &entries {
            state.db.queue_kb_job(kb, JobKind::Rebuild).await?;
        }
        entries.len()
    };
    state.knowledge.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(RebuildResponse {
            queued,
            embedding_model: model.id.to_string(),
            embedding_dimension: model.dimension,
        }),
    ))
}

/// Raw search over one organisation's knowledge base: top-k chunks with their scores, not merged.
#[utoipa::path(
    post,
    path = "/internal/ai/rag/search",
    tag = "internal",
    security(("internal_key" = []), ("bearer" = [])),
    request_body = SearchRequest,
    responses(
        (status = 200, description = "Best chunks first", body = SearchResponse),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid internal key or token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a superuser", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "The embedding service failed", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn search(
    State(state): State<AppState>,
    _caller: InternalCaller,
    Json(body): Json<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    validate_query("query", &body.query, 2000)?;
    let top_k = body.top_k.unwrap_or(5);
    if !(1..=50).contains(&top_k) {
        return Err(ApiError::validation(vec![FieldError::new(
            "top_k",
            "must be between 1 and 50",
        )]));
    }
    bot_config(&state, &body.org_id).await?;
    let hits = state
        .knowledge
        .search(&body.org_id, &body.query, body.mode.into(), top_k as usize)
        .await
        .map_err(knowledge_error)?;
    Ok(Json(SearchResponse {
        embedding_model: state.knowledge.model().id.to_string(),
        results: hits.into_iter().map(Into::into).collect(),
    }))
}

fn rag_settings(config: &BotConfig, body: &ContextRequest) -> Result<RagSettings, ApiError> {
    let settings = RagSettings {
        top_k: body.top_k.unwrap_or(config.rag.top_k),
        min_score: body.min_score.unwrap_or(config.rag.min_score),
        max_context_tokens: body
            .max_context_tokens
            .unwrap_or(config.rag.max_context_tokens),
    };
    let checked = BotConfig {
        rag: settings.clone(),
        ..config.clone()
    };
    checked.validate().map_err(ApiError::validation)?;
    Ok(settings)
}

/// The LLM-ready context for a question: relevant chunks de-duplicated, adjacent ones merged,
/// fitted to the token budget, numbered with citations. Defaults come from the organisation's
/// bot configuration.
#[utoipa::path(
    post,
    path = "/internal/ai/rag/context",
    tag = "internal",
    security(("internal_key" = []), ("bearer" = [])),
    request_body = ContextRequest,
    responses(
        (status = 200, description = "The context", body = ContextResponse),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid internal key or token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a superuser", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "The embedding service failed", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn context(
    State(state): State<AppState>,
    _caller: InternalCaller,
    Json(body): Json<ContextRequest>,
) -> Result<Json<ContextResponse>, ApiError> {
    validate_query("query", &body.query, 2000)?;
    let config = bot_config(&state, &body.org_id).await?;
    let settings = rag_settings(&config, &body)?;
    let context = state
        .knowledge
        .retrieve(&body.org_id, &body.query, &settings)
        .await
        .map_err(knowledge_error)?;
    Ok(Json(context.into()))
}

/// Answer an end user's message from the organisation's knowledge base with its bot
/// configuration (persona, prompt, model, temperature); the fallback answer when nothing relevant
/// is known.
#[utoipa::path(
    post,
    path = "/internal/ai/generate",
    tag = "internal",
    security(("internal_key" = []), ("bearer" = [])),
    request_body = GenerateRequest,
    responses(
        (status = 200, description = "The reply", body = GenerateResponse),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid internal key or token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a superuser", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "The model or embedding service failed", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn generate(
    State(state): State<AppState>,
    _caller: InternalCaller,
    Json(body): Json<GenerateRequest>,
) -> Result<Json<GenerateResponse>, ApiError> {
    validate_query("message", &body.message, 4000)?;
    let config = bot_config(&state, &body.org_id).await?;
    let upstream = |e: crate::llm::LlmError| {
        ApiError::new(StatusCode::BAD_GATEWAY, "LLM_UNAVAILABLE", e.to_string())
    };
    let answer = state
        .responder
        .answer(
            &config,
            &body.org_id,
            &body.message,
            &[],
            CancellationToken::new(),
        )
        .await
        .map_err(|error| match error {
            AnswerError::Knowledge(e) => knowledge_error(e),
            AnswerError::Storage(e) => ApiError::internal(e),
            AnswerError::Llm(e) => upstream(e),
        })?;
    let asked_model = answer.grounding.grounded;
    let completion = collect_completion(answer.stream).await.map_err(upstream)?;
    // Only the sources the reply used, and none when the model said the fallback.
    let settled = answer.grounding.settle(&completion.text);
    let grounded = settled.grounded;
    let citations = ContextResponse::from(answer.context)
        .citations
        .into_iter()
        .filter(|c| {
            settled
                .citations
                .iter()
                .any(|s| s.position as usize == c.number)
        })
        .collect();
    let llm = state.responder.llm();
    let (provider, model) = if asked_model {
        (llm.id().to_string(), llm.model().to_string())
    } else {
        ("fallback".to_string(), "none".to_string())
    };
    Ok(Json(GenerateResponse {
        reply: completion.text,
        grounded,
        citations,
        provider,
        model,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}

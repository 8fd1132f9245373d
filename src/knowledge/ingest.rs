//! One ingestion job: extract and chunk the entry's content (unless this version is already
//! chunked), then embed every chunk still lacking a vector of the current model, reporting
//! progress on the entry. Resuming after a crash redoes only what was not stored.

use crate::rag::chunk::chunk;
use crate::rag::embed::EmbedError;
use crate::rag::extract::{detect_and_extract, DocumentKind, ExtractError};
use crate::storage::knowledge::{JobKind, KbJobRow, NewChunk};

use super::Knowledge;

/// Chunks embedded per request to the embedder.
const EMBED_BATCH: i64 = 64;
/// Progress (percent) once chunking is done; embedding fills the rest.
const CHUNKED_PERCENT: i64 = 20;

/// How a job ended, when it did not succeed.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt (network, upstream 5xx/429, storage).
    Transient(String),
    /// Will fail the same way again (unreadable document, misconfigured embedder).
    Permanent(String),
    /// The entry was replaced or deleted, or the server is stopping: nothing to record.
    Superseded,
    Stopping,
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(format!("storage error: {error}"))
    }
}

impl From<EmbedError> for Failure {
    fn from(error: EmbedError) -> Self {
        let transient = match &error {
            EmbedError::Transport(_) => true,
            EmbedError::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        };
        if transient {
            Self::Transient(error.to_string())
        } else {
            Self::Permanent(error.to_string())
        }
    }
}

impl From<ExtractError> for Failure {
    fn from(error: ExtractError) -> Self {
        Self::Permanent(error.to_string())
    }
}

pub(super) async fn run(knowledge: &Knowledge, job_id: &str) {
    let db = knowledge.db();
    let job = match db.claim_kb_job(job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%job_id, %error, "could not claim an ingestion job");
            return;
        }
    };
    let result = work(knowledge, &job).await;
    let outcome = match result {
        Ok(()) => db.finish_kb_job(job_id, "succeeded", None).await,
        Err(Failure::Stopping) => Ok(()), // left running: requeued at the next start
        Err(Failure::Superseded) => db.finish_kb_job(job_id, "cancelled", None).await,
        Err(Failure::Transient(reason)) if job.attempts < knowledge.settings().job_attempts => {
            let base = knowledge.settings().job_backoff.as_millis() as i64;
            let delay = base.saturating_mul(1 << (job.attempts - 1).clamp(0, 10));
            tracing::warn!(%job_id, kb_id = %job.kb_id, attempt = job.attempts, %reason, "ingestion attempt failed; retrying");
            let note = format!("attempt {} failed, retrying: {reason}", job.attempts);
            let _ = db.kb_progress_note(&job.kb_id, job.kb_version, &note).await;
            db.retry_kb_job_later(job_id, &reason, delay).await
        }
        Err(Failure::Transient(reason) | Failure::Permanent(reason)) => {
            tracing::info!(%job_id, kb_id = %job.kb_id, %reason, "ingestion failed");
            let _ = db.kb_failed(&job.kb_id, job.kb_version, &reason).await;
            db.finish_kb_job(job_id, "failed", Some(&reason)).await
        }
    };
    if let Err(error) = outcome {
        tracing::error!(%job_id, %error, "could not record the end of an ingestion job");
    }
}

async fn work(knowledge: &Knowledge, job: &KbJobRow) -> Result<(), Failure> {
    let db = knowledge.db();
    let Some(kb) = db.kb_by_id(&job.kb_id).await? else {
        return Err(Failure::Superseded);
    };
    if kb.version != job.kb_version {
        return Err(Failure::Superseded);
    }
    let kind = JobKind::parse(&job.kind);
    let mut document_kind = None;
    let needs_chunks =
        kind == JobKind::Rebuild || kb.chunked_version != Some(kb.version) || kb.chunk_count == 0;
    if needs_chunks {
        if !db.kb_progress(&kb.id, kb.version, 0, None).await? {
            return Err(Failure::Superseded);
        }
        document_kind = Some(chunk_entry(knowledge, job).await?);
    }
    embed_entry(knowledge, job).await?;
    let kind_name = document_kind.map(kind_name);
    if !db
        .kb_ready(&job.kb_id, job.kb_version, kind_name, &knowledge.model())
        .await?
    {
        return Err(Failure::Superseded);
    }
    Ok(())
}

pub fn kind_name(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Pdf => "pdf",
        DocumentKind::Html => "html",
        DocumentKind::Markdown => "markdown",
        DocumentKind::PlainText => "plain_text",
    }
}

/// Extracts and chunks the stored content (CPU-bound: on a blocking thread) and stores the chunks.
async fn chunk_entry(knowledge: &Knowledge, job: &KbJobRow) -> Result<DocumentKind, Failure> {
    let db = knowledge.db();
    let content = db
        .kb_content(&job.kb_id)
        .await?
        .ok_or(Failure::Superseded)?;
    if content.version != job.kb_version {
        return Err(Failure::Superseded);
    }
    let limits = knowledge.settings().extract_limits();
    let config = knowledge.settings().chunk;
    let (kind, chunks) = tokio::task::spawn_blocking(move || {
        let document = detect_and_extract(&content.content, &limits)?;
        let chunks = chunk(&document, &config);
        Ok::<_, ExtractError>((document.kind, chunks))
    })
    .await
    .map_err(|e| Failure::Transient(format!("chunking stopped: {e}")))??;
    if chunks.is_empty() {
        return Err(Failure::Permanent(ExtractError::NoText.to_string()));
    }
    let rows: Vec<NewChunk> = chunks
        .into_iter()
        .map(|c| NewChunk {
            index: c.index as i64,
            token_count: c.token_count as i64,
            heading_path: serde_json::to_string(&c.heading_path).unwrap_or_else(|_| "[]".into()),
            position: serde_json::to_string(&c.position).unwrap_or_else(|_| "{}".into()),
            text: c.text,
        })
        .collect();
    if !db
        .replace_chunks(&job.kb_id, &job.org_id, job.kb_version, &rows)
        .await?
    {
        return Err(Failure::Superseded);
    }
    if !db
        .kb_progress(&job.kb_id, job.kb_version, CHUNKED_PERCENT, None)
        .await?
    {
        return Err(Failure::Superseded);
    }
    Ok(kind)
}

/// Embeds, batch by batch, the chunks without a vector of the current model.
async fn embed_entry(knowledge: &Knowledge, job: &KbJobRow) -> Result<(), Failure> {
    let db = knowledge.db();
    let model = knowledge.model();
    loop {
        if knowledge.inner.shutdown.is_cancelled() {
            return Err(Failure::Stopping);
        }
        let pending = db
            .chunks_to_embed(&job.kb_id, model.id, EMBED_BATCH)
            .await?;
        if pending.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = pending
            .iter()
            .map(|c| {
                let path: Vec<String> = serde_json::from_str(&c.heading_path).unwrap_or_default();
                if path.is_empty() {
                    c.text.clone()
                } else {
                    format!("{}\n\n{}", path.join(" > "), c.text)
                }
            })
            .collect();
        let vectors = knowledge.embedder().embed(&texts).await?;
        if vectors.len() != pending.len() {
            return Err(Failure::Permanent(format!(
                "the embedder returned {} vectors for {} texts",
                vectors.len(),
                pending.len()
            )));
        }
        let pairs: Vec<(String, Vec<f32>)> =
            pending.into_iter().map(|c| c.id).zip(vectors).collect();
        db.store_embeddings(&model, &pairs).await?;
        let (total, embedded) = db.chunk_counts(&job.kb_id, model.id).await?;
        let percent = CHUNKED_PERCENT + (100 - CHUNKED_PERCENT - 1) * embedded / total.max(1);
        if !db
            .kb_progress(&job.kb_id, job.kb_version, percent, None)
            .await?
        {
            return Err(Failure::Superseded);
        }
    }
}

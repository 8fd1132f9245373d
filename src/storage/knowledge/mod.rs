//! Knowledge bases, their chunks and vectors, and the durable ingestion jobs.
//!
//! Everything here is portable SQL except vector storage, vector search and full-text search,
//! which live in [`postgres`] (pgvector + `tsvector`) and [`sqlite`] (BLOBs scanned in Rust +
//! FTS5) and are chosen by [`Db::backend`]. Every search is filtered by organisation.

mod postgres;
mod sqlite;

use sqlx::any::AnyRow;
use sqlx::{Any, FromRow, Transaction};

use super::query::{bind_all, Arg, Filter};
use super::{new_id, now_ms, Backend, Db, PageCursor};

/// A knowledge-base entry without its (possibly large) content.
#[derive(Debug, Clone, FromRow)]
pub struct KbRow {
    pub id: String,
    pub org_id: String,
    pub title: String,
    pub source: String,
    pub filename: Option<String>,
    pub document_kind: Option<String>,
    pub byte_size: i64,
    pub version: i64,
    pub status: String,
    pub progress: i64,
    pub error: Option<String>,
    pub chunk_count: i64,
    pub chunked_version: Option<i64>,
    pub embedding_model: Option<String>,
    pub embedding_dimension: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const KB_COLUMNS: &str = "id, org_id, title, source, filename, document_kind, byte_size, version, \
     status, progress, error, chunk_count, chunked_version, embedding_model, embedding_dimension, \
     created_by, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct KbJobRow {
    pub id: String,
    pub kb_id: String,
    pub org_id: String,
    pub kind: String,
    pub kb_version: i64,
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
}

const JOB_COLUMNS: &str = "id, kb_id, org_id, kind, kb_version, status, attempts, error";

/// What a job does: `ingest` chunks (unless this version is already chunked) and embeds what
/// lacks a current vector; `rebuild` re-chunks first in any case; `embed` only embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Ingest,
    Rebuild,
    Embed,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Rebuild => "rebuild",
            Self::Embed => "embed",
        }
    }

    pub fn parse(value: &str) -> Self {
        match value {
            "rebuild" => Self::Rebuild,
            "embed" => Self::Embed,
            _ => Self::Ingest,
        }
    }
}

pub struct NewKb<'a> {
    pub org_id: &'a str,
    pub title: &'a str,
    pub source: &'a str,
    pub filename: Option<&'a str>,
    pub document_kind: &'a str,
    pub content: &'a [u8],
    pub created_by: Option<&'a str>,
}

/// A replacement of an entry's content (PUT).
pub struct KbReplacement<'a> {
    pub title: &'a str,
    pub source: &'a str,
    pub filename: Option<&'a str>,
    pub document_kind: &'a str,
    pub content: &'a [u8],
}

/// The stored content an ingestion job works from.
#[derive(Debug, Clone, FromRow)]
pub struct KbContent {
    pub title: String,
    pub version: i64,
    pub content: Vec<u8>,
}

/// A chunk to store (before embedding).
pub struct NewChunk {
    pub index: i64,
    pub text: String,
    pub token_count: i64,
    /// JSON array of strings.
    pub heading_path: String,
    /// JSON source position.
    pub position: String,
}

/// A stored chunk still lacking a vector of the current model.
#[derive(Debug, Clone, FromRow)]
pub struct PendingChunk {
    pub id: String,
    pub text: String,
    pub heading_path: String,
}

/// A chunk as search returns it, with its entry's title for citations.
#[derive(Debug, Clone, FromRow)]
pub struct ChunkHit {
    pub id: String,
    pub kb_id: String,
    pub kb_title: String,
    pub chunk_index: i64,
    pub text: String,
    pub token_count: i64,
    pub heading_path: String,
    pub position: String,
}

/// Why a retry was not started.
#[derive(Debug)]
pub enum RetryOutcome {
    Queued(KbRow),
    NotFound,
    NotFailed(KbRow),
}

/// The current embedding model, as stored with every vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef<'a> {
    pub id: &'a str,
    pub dimension: usize,
}

impl Db {
    /// Stores a new entry and queues its ingestion, atomically.
    pub async fn create_kb(&self, kb: NewKb<'_>) -> sqlx::Result<KbRow> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO knowledge_bases (id, org_id, title, source, filename, document_kind, \
             content, byte_size, version, status, progress, chunk_count, created_by, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, 'pending', 0, 0, $9, $10, $10)",
        )
        .bind(&id)
        .bind(kb.org_id)
        .bind(kb.title)
        .bind(kb.source)
        .bind(kb.filename)
        .bind(kb.document_kind)
        .bind(kb.content.to_vec())
        .bind(kb.content.len() as i64)
        .bind(kb.created_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_job(&mut tx, &id, kb.org_id, JobKind::Ingest, 1).await?;
        let row = kb_in(&mut tx, kb.org_id, &id).await?;
        tx.commit().await?;
        row.ok_or(sqlx::Error::RowNotFound)
    }

    pub async fn list_kbs(
        &self,
        org_id: &str,
        status: Option<&str>,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<KbRow>> {
        let mut filter = Filter::new();
        filter.eq("org_id", Arg::Text(org_id.to_string()));
        if let Some(status) = status {
            filter.eq("status", Arg::Text(status.to_string()));
        }
        filter.before(cursor);
        let limit = filter.arg(Arg::Int(i64::from(limit) + 1));
        let sql = format!(
            "SELECT {KB_COLUMNS} FROM knowledge_bases{} ORDER BY created_at DESC, id DESC LIMIT {limit}",
            filter.sql()
        );
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }

    pub async fn kb(&self, org_id: &str, id: &str) -> sqlx::Result<Option<KbRow>> {
        sqlx::query_as(&format!(
            "SELECT {KB_COLUMNS} FROM knowledge_bases WHERE id = $1 AND org_id = $2"
        ))
        .bind(id)
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// An entry by id alone, for operators and jobs.
    pub async fn kb_by_id(&self, id: &str) -> sqlx::Result<Option<KbRow>> {
        sqlx::query_as(&format!(
            "SELECT {KB_COLUMNS} FROM knowledge_bases WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn kb_content(&self, id: &str) -> sqlx::Result<Option<KbContent>> {
        sqlx::query_as("SELECT title, version, content FROM knowledge_bases WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Replaces an entry's content: a new version, its old chunks gone, its jobs superseded by a
    /// fresh ingestion. None when there is no such entry in the organisation.
    pub async fn replace_kb(
        &self,
        org_id: &str,
        id: &str,
        kb: KbReplacement<'_>,
    ) -> sqlx::Result<Option<KbRow>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE knowledge_bases SET title = $3, source = $4, filename = $5, document_kind = $6, \
             content = $7, byte_size = $8, version = version + 1, status = 'pending', progress = 0, \
             error = NULL, chunk_count = 0, chunked_version = NULL, embedding_model = NULL, \
             embedding_dimension = NULL, updated_at = $9 WHERE id = $1 AND org_id = $2",
        )
        .bind(id)
        .bind(org_id)
        .bind(kb.title)
        .bind(kb.source)
        .bind(kb.filename)
        .bind(kb.document_kind)
        .bind(kb.content.to_vec())
        .bind(kb.content.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        cancel_jobs(&mut tx, id).await?;
        sqlx::query("DELETE FROM knowledge_chunks WHERE kb_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = kb_in(&mut tx, org_id, id).await?;
        if let Some(row) = &row {
            insert_job(&mut tx, id, org_id, JobKind::Ingest, row.version).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Deletes an entry with its chunks, vectors and jobs. True when it existed.
    pub async fn delete_kb(&self, org_id: &str, id: &str) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        // Explicit rather than only by cascade, so SQLite's FTS triggers see every row.
        sqlx::query("DELETE FROM knowledge_chunks WHERE kb_id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM knowledge_bases WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Queues a failed entry again.
    pub async fn retry_kb(&self, org_id: &str, id: &str) -> sqlx::Result<RetryOutcome> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE knowledge_bases SET status = 'pending', progress = 0, error = NULL, updated_at = $3 \
             WHERE id = $1 AND org_id = $2 AND status = 'failed'",
        )
        .bind(id)
        .bind(org_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let Some(row) = kb_in(&mut tx, org_id, id).await? else {
            return Ok(RetryOutcome::NotFound);
        };
        if updated.rows_affected() == 0 {
            return Ok(RetryOutcome::NotFailed(row));
        }
        cancel_jobs(&mut tx, id).await?;
        insert_job(&mut tx, id, org_id, JobKind::Ingest, row.version).await?;
        tx.commit().await?;
        Ok(RetryOutcome::Queued(row))
    }

    /// Queues a job for an entry's current version (operators' chunk, embed and rebuild).
    pub async fn queue_kb_job(&self, kb: &KbRow, kind: JobKind) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        cancel_jobs(&mut tx, &kb.id).await?;
        insert_job(&mut tx, &kb.id, &kb.org_id, kind, kb.version).await?;
        sqlx::query(
            "UPDATE knowledge_bases SET status = 'pending', progress = 0, error = NULL, updated_at = $2 \
             WHERE id = $1",
        )
        .bind(&kb.id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Entries whose vectors are not (all) of `model`, optionally limited to one organisation.
    pub async fn kbs_needing_model(
        &self,
        model: &str,
        org_id: Option<&str>,
    ) -> sqlx::Result<Vec<KbRow>> {
        let mut filter = Filter::new();
        let m = filter.arg(Arg::Text(model.to_string()));
        filter.clause(format!(
            "status IN ('ready', 'failed') AND (embedding_model IS NULL OR embedding_model <> {m})"
        ));
        if let Some(org_id) = org_id {
            filter.eq("org_id", Arg::Text(org_id.to_string()));
        }
        let sql = format!("SELECT {KB_COLUMNS} FROM knowledge_bases{}", filter.sql());
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }

    pub async fn kbs_of(&self, org_id: Option<&str>) -> sqlx::Result<Vec<KbRow>> {
        let mut filter = Filter::new();
        if let Some(org_id) = org_id {
            filter.eq("org_id", Arg::Text(org_id.to_string()));
        }
        let sql = format!("SELECT {KB_COLUMNS} FROM knowledge_bases{}", filter.sql());
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }

    // ---- jobs ----

    pub async fn claim_kb_job(&self, id: &str) -> sqlx::Result<Option<KbJobRow>> {
        sqlx::query_as(&format!(
            "UPDATE knowledge_jobs SET status = 'running', attempts = attempts + 1, updated_at = $2 \
             WHERE id = $1 AND status = 'queued' RETURNING {JOB_COLUMNS}"
        ))
        .bind(id)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn due_kb_jobs(&self, limit: i64) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM knowledge_jobs WHERE status = 'queued' AND run_after <= $1 \
             ORDER BY run_after LIMIT $2",
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// At start-up: jobs left `running` by a stopped process go back to the queue.
    pub async fn requeue_orphaned_kb_jobs(&self) -> sqlx::Result<u64> {
        let done = sqlx::query(
            "UPDATE knowledge_jobs SET status = 'queued', run_after = $1, updated_at = $1 \
             WHERE status = 'running'",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn retry_kb_job_later(
        &self,
        id: &str,
        error: &str,
        delay_ms: i64,
    ) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE knowledge_jobs SET status = 'queued', error = $2, run_after = $3, updated_at = $4 \
             WHERE id = $1 AND status = 'running'",
        )
        .bind(id)
        .bind(error)
        .bind(now + delay_ms)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub async fn finish_kb_job(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE knowledge_jobs SET status = $2, error = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(error)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    // ---- entry progress, guarded by version so a superseded job changes nothing ----

    /// Marks the entry as processing at `progress` percent; false when the version moved on.
    pub async fn kb_progress(
        &self,
        id: &str,
        version: i64,
        progress: i64,
        error: Option<&str>,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE knowledge_bases SET status = 'processing', progress = $3, error = $4, updated_at = $5 \
             WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .bind(progress)
        .bind(error)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Keeps the entry processing with a note (e.g. a failed attempt about to be retried).
    pub async fn kb_progress_note(&self, id: &str, version: i64, note: &str) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE knowledge_bases SET status = 'processing', error = $3, updated_at = $4 \
             WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .bind(note)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn kb_ready(
        &self,
        id: &str,
        version: i64,
        document_kind: Option<&str>,
        model: &ModelRef<'_>,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE knowledge_bases SET status = 'ready', progress = 100, error = NULL, \
             document_kind = COALESCE($3, document_kind), embedding_model = $4, \
             embedding_dimension = $5, \
             chunk_count = (SELECT COUNT(*) FROM knowledge_chunks WHERE kb_id = $1), updated_at = $6 \
             WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .bind(document_kind)
        .bind(model.id)
        .bind(model.dimension as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn kb_failed(&self, id: &str, version: i64, reason: &str) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE knowledge_bases SET status = 'failed', error = $3, updated_at = $4 \
             WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .bind(reason)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- chunks ----

    /// Replaces the chunks of an entry's `version`; false (and nothing written) when the entry
    /// moved on to another version or was deleted.
    pub async fn replace_chunks(
        &self,
        kb_id: &str,
        org_id: &str,
        version: i64,
        chunks: &[NewChunk],
    ) -> sqlx::Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Taking the row lock first serialises against a concurrent replacement.
        let claimed = sqlx::query(
            "UPDATE knowledge_bases SET chunked_version = $2, chunk_count = $3, updated_at = $4 \
             WHERE id = $1 AND version = $2",
        )
        .bind(kb_id)
        .bind(version)
        .bind(chunks.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM knowledge_chunks WHERE kb_id = $1")
            .bind(kb_id)
            .execute(&mut *tx)
            .await?;
        const ROWS_PER_INSERT: usize = 100;
        for batch in chunks.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO knowledge_chunks (id, kb_id, org_id, chunk_index, text, token_count, \
                 heading_path, position, created_at) VALUES ",
            );
            for i in 0..batch.len() {
                let b = i * 9;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8,
                    b + 9
                ));
            }
            let mut query = sqlx::query(&sql);
            for chunk in batch {
                query = query
                    .bind(new_id())
                    .bind(kb_id)
                    .bind(org_id)
                    .bind(chunk.index)
                    .bind(chunk.text.as_str())
                    .bind(chunk.token_count)
                    .bind(chunk.heading_path.as_str())
                    .bind(chunk.position.as_str())
                    .bind(now);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Chunks of an entry without a vector of `model`, in document order.
    pub async fn chunks_to_embed(
        &self,
        kb_id: &str,
        model: &str,
        limit: i64,
    ) -> sqlx::Result<Vec<PendingChunk>> {
        sqlx::query_as(
            "SELECT id, text, heading_path FROM knowledge_chunks WHERE kb_id = $1 \
             AND (embedding_model IS NULL OR embedding_model <> $2) ORDER BY chunk_index LIMIT $3",
        )
        .bind(kb_id)
        .bind(model)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// (chunks of the entry, of which embedded with `model`).
    pub async fn chunk_counts(&self, kb_id: &str, model: &str) -> sqlx::Result<(i64, i64)> {
        sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN embedding_model = $2 THEN 1 ELSE 0 END), 0) \
             FROM knowledge_chunks WHERE kb_id = $1",
        )
        .bind(kb_id)
        .bind(model)
        .fetch_one(&self.pool)
        .await
    }

    /// Stores vectors of `model` for chunks (by id).
    pub async fn store_embeddings(
        &self,
        model: &ModelRef<'_>,
        vectors: &[(String, Vec<f32>)],
    ) -> sqlx::Result<()> {
        match self.backend {
            Backend::Sqlite => sqlite::store_embeddings(self, model, vectors).await,
            Backend::Postgres => postgres::store_embeddings(self, model, vectors).await,
        }
    }

    /// Prepares search for `model` (on PostgreSQL, its HNSW index).
    pub async fn prepare_vector_index(&self, model: &ModelRef<'_>) -> sqlx::Result<()> {
        match self.backend {
            Backend::Sqlite => Ok(()),
            Backend::Postgres => postgres::ensure_hnsw_index(self, model).await,
        }
    }

    /// The `k` chunks of the organisation nearest to `query` (cosine, best first).
    pub async fn vector_search(
        &self,
        org_id: &str,
        model: &ModelRef<'_>,
        query: &[f32],
        k: usize,
    ) -> sqlx::Result<Vec<(String, f32)>> {
        match self.backend {
            Backend::Sqlite => sqlite::vector_search(self, org_id, model, query, k).await,
            Backend::Postgres => postgres::vector_search(self, org_id, model, query, k).await,
        }
    }

    /// The `k` chunks of the organisation best matching `query` in full text (best first).
    pub async fn text_search(
        &self,
        org_id: &str,
        query: &str,
        k: usize,
    ) -> sqlx::Result<Vec<(String, f32)>> {
        let terms = search_terms(query);
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        match self.backend {
            Backend::Sqlite => sqlite::text_search(self, org_id, &terms, k).await,
            Backend::Postgres => postgres::text_search(self, org_id, &terms, k).await,
        }
    }

    /// Cosine similarity of `query` to the given chunks' vectors of `model` (chunks without one
    /// are absent).
    pub async fn chunk_similarities(
        &self,
        org_id: &str,
        model: &ModelRef<'_>,
        ids: &[String],
        query: &[f32],
    ) -> sqlx::Result<Vec<(String, f32)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match self.backend {
            Backend::Sqlite => sqlite::similarities(self, org_id, model, ids, query).await,
            Backend::Postgres => postgres::similarities(self, org_id, model, ids, query).await,
        }
    }

    /// The given chunks of the organisation with their entries' titles (any order).
    pub async fn chunk_hits(&self, org_id: &str, ids: &[String]) -> sqlx::Result<Vec<ChunkHit>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = (0..ids.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT c.id, c.kb_id, k.title AS kb_title, c.chunk_index, c.text, c.token_count, \
             c.heading_path, c.position FROM knowledge_chunks c \
             JOIN knowledge_bases k ON k.id = c.kb_id \
             WHERE c.org_id = $1 AND c.id IN ({placeholders})"
        );
        let mut query = sqlx::query_as(&sql).bind(org_id);
        for id in ids {
            query = query.bind(id.as_str());
        }
        query.fetch_all(&self.pool).await
    }
}

async fn kb_in(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<KbRow>> {
    sqlx::query_as(&format!(
        "SELECT {KB_COLUMNS} FROM knowledge_bases WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut **tx)
    .await
}

async fn insert_job(
    tx: &mut Transaction<'_, Any>,
    kb_id: &str,
    org_id: &str,
    kind: JobKind,
    version: i64,
) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO knowledge_jobs (id, kb_id, org_id, kind, kb_version, status, attempts, \
         run_after, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $6, $6)",
    )
    .bind(new_id())
    .bind(kb_id)
    .bind(org_id)
    .bind(kind.as_str())
    .bind(version)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Unfinished jobs of an entry are superseded by a new one.
async fn cancel_jobs(tx: &mut Transaction<'_, Any>, kb_id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE knowledge_jobs SET status = 'cancelled', updated_at = $2 \
         WHERE kb_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(kb_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// English function words, left out of full-text queries. PostgreSQL's `english` configuration
/// drops them itself; SQLite's FTS5 has no stop words, and since the query ORs its terms, a chunk
/// sharing only "do", "you" or "for" with a question would otherwise rank first and pass as
/// relevant.
const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could",
    "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had",
    "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in",
    "into", "is", "it", "its", "just", "me", "more", "most", "my", "no", "nor", "not", "now", "of",
    "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "s", "same",
    "she", "should", "so", "some", "such", "t", "than", "that", "the", "their", "theirs", "them",
    "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until",
    "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "would", "you", "your", "yours",
];

/// Lower-cased alphanumeric words of a query, without English function words, deduplicated, at
/// most 32: safe to splice into a full-text query of either dialect (no operators, quotes or
/// punctuation survive).
pub fn search_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        if STOP_WORDS.contains(&word.as_str()) {
            continue;
        }
        if !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == 32 {
            break;
        }
    }
    terms
}

/// Reads `(id, score)` pairs whatever numeric type the backend returns.
fn id_score(row: &AnyRow) -> sqlx::Result<(String, f32)> {
    use sqlx::Row;
    let id: String = row.try_get(0)?;
    let score: f64 = row.try_get(1)?;
    Ok((id, score as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_strip_operators() {
        assert_eq!(
            search_terms("What's \"NEAR\" (x OR b)* -c: é?"),
            vec!["near", "x", "b", "c", "é"]
        );
        assert!(search_terms("!!! ???").is_empty());
    }

    #[test]
    fn search_terms_leave_out_function_words() {
        assert_eq!(
            search_terms("Do you offer piano lessons for children?"),
            vec!["offer", "piano", "lessons", "children"]
        );
        assert!(search_terms("What is it for?").is_empty());
    }
}

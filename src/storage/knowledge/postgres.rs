//! PostgreSQL: pgvector with one HNSW cosine index per embedding model, and `tsvector` full text.
//!
//! The `embedding` column has no fixed dimension so models can coexist. Each model's index is an
//! expression index over `embedding::vector(dim)` restricted to that model's rows; queries repeat
//! the same expression and predicate (with the model id as a literal, since a partial index is
//! only matched against constants) so the planner can use it.

use sha2::{Digest, Sha256};

use super::{id_score, ModelRef};
use crate::rag::cosine::vector_to_pgvector;
use crate::storage::Db;

/// pgvector indexes `vector` columns of at most this many dimensions.
const MAX_INDEXED_DIMENSION: usize = 2000;

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn pgvector(vector: &[f32]) -> sqlx::Result<String> {
    vector_to_pgvector(vector).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

pub(super) async fn ensure_hnsw_index(db: &Db, model: &ModelRef<'_>) -> sqlx::Result<()> {
    if model.dimension > MAX_INDEXED_DIMENSION {
        tracing::warn!(
            model = model.id,
            dimension = model.dimension,
            "vectors too long for an HNSW index; searches scan exactly"
        );
        return Ok(());
    }
    let tag = hex::encode(&Sha256::digest(model.id.as_bytes())[..6]);
    let dim = model.dimension;
    let sql = format!(
        "CREATE INDEX IF NOT EXISTS knowledge_chunks_hnsw_{tag}_{dim} ON knowledge_chunks \
         USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WHERE embedding_model = {}",
        literal(model.id)
    );
    sqlx::query(&sql).execute(&db.pool).await.map(|_| ())
}

pub(super) async fn store_embeddings(
    db: &Db,
    model: &ModelRef<'_>,
    vectors: &[(String, Vec<f32>)],
) -> sqlx::Result<()> {
    let mut tx = db.pool.begin().await?;
    for batch in vectors.chunks(100) {
        let values = (0..batch.len())
            .map(|i| format!("(${}, ${})", 3 + 2 * i, 4 + 2 * i))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE knowledge_chunks c SET embedding_model = $1, embedding_dimension = $2, \
             embedding = v.e::vector FROM (VALUES {values}) AS v(id, e) WHERE c.id = v.id"
        );
        let mut query = sqlx::query(&sql)
            .bind(model.id)
            .bind(model.dimension as i64);
        for (id, vector) in batch {
            query = query.bind(id.as_str()).bind(pgvector(vector)?);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}

pub(super) async fn vector_search(
    db: &Db,
    org_id: &str,
    model: &ModelRef<'_>,
    query: &[f32],
    k: usize,
) -> sqlx::Result<Vec<(String, f32)>> {
    let dim = model.dimension;
    let sql = format!(
        "SELECT id, (1 - (embedding::vector({dim}) <=> $1::vector({dim})))::float8 AS score \
         FROM knowledge_chunks WHERE embedding_model = {} AND org_id = $2 \
         ORDER BY embedding::vector({dim}) <=> $1::vector({dim}) LIMIT $3",
        literal(model.id)
    );
    let mut tx = db.pool.begin().await?;
    // The index walk stops after ef_search candidates; the organisation filter applies after it,
    // so a bigger candidate list and iterative scans keep small tenants from getting short lists.
    let ef = (k * 2).clamp(40, 1000);
    // One statement each: prepared statements may not hold several.
    sqlx::query(&format!("SET LOCAL hnsw.ef_search = {ef}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL hnsw.iterative_scan = strict_order")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(&sql)
        .bind(pgvector(query)?)
        .bind(org_id)
        .bind(k as i64)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    rows.iter().map(id_score).collect()
}

pub(super) async fn text_search(
    db: &Db,
    org_id: &str,
    terms: &[String],
    k: usize,
) -> sqlx::Result<Vec<(String, f32)>> {
    // Any term may match (OR); ranking rewards chunks matching more of them.
    let expression = terms.join(" | ");
    let rows = sqlx::query(
        "SELECT id, ts_rank_cd(tsv, q)::float8 AS score \
         FROM knowledge_chunks, to_tsquery('english', $1) AS q \
         WHERE org_id = $2 AND tsv @@ q ORDER BY score DESC, id LIMIT $3",
    )
    .bind(expression)
    .bind(org_id)
    .bind(k as i64)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(id_score).collect()
}

pub(super) async fn similarities(
    db: &Db,
    org_id: &str,
    model: &ModelRef<'_>,
    ids: &[String],
    query: &[f32],
) -> sqlx::Result<Vec<(String, f32)>> {
    let placeholders = (0..ids.len())
        .map(|i| format!("${}", i + 4))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT id, (1 - (embedding <=> $1::vector))::float8 FROM knowledge_chunks \
         WHERE org_id = $2 AND embedding_model = $3 AND id IN ({placeholders})"
    );
    let mut q = sqlx::query(&sql)
        .bind(pgvector(query)?)
        .bind(org_id)
        .bind(model.id);
    for id in ids {
        q = q.bind(id.as_str());
    }
    let rows = q.fetch_all(&db.pool).await?;
    rows.iter().map(id_score).collect()
}

//! SQLite: vectors as little-endian `f32` BLOBs scanned exactly in Rust; full text with FTS5.

use futures::TryStreamExt;
use sqlx::Row;

use super::{id_score, ModelRef};
use crate::rag::cosine::{dot_blob, vector_to_blob, TopK};
use crate::storage::Db;

pub(super) async fn store_embeddings(
    db: &Db,
    model: &ModelRef<'_>,
    vectors: &[(String, Vec<f32>)],
) -> sqlx::Result<()> {
    let mut tx = db.pool.begin().await?;
    for (id, vector) in vectors {
        sqlx::query(
            "UPDATE knowledge_chunks SET embedding_model = $1, embedding_dimension = $2, \
             embedding = $3 WHERE id = $4",
        )
        .bind(model.id)
        .bind(model.dimension as i64)
        .bind(vector_to_blob(vector))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Exact scan over the organisation's vectors of this model, streamed so memory stays at `k`.
pub(super) async fn vector_search(
    db: &Db,
    org_id: &str,
    model: &ModelRef<'_>,
    query: &[f32],
    k: usize,
) -> sqlx::Result<Vec<(String, f32)>> {
    let mut best = TopK::new(k);
    let mut rows = sqlx::query(
        "SELECT id, embedding FROM knowledge_chunks WHERE org_id = $1 AND embedding_model = $2",
    )
    .bind(org_id)
    .bind(model.id)
    .fetch(&db.pool);
    while let Some(row) = rows.try_next().await? {
        let blob: Vec<u8> = row.try_get(1)?;
        if let Some(score) = dot_blob(query, &blob) {
            best.push(row.try_get::<String, _>(0)?, score);
        }
    }
    Ok(best.into_sorted_vec())
}

pub(super) async fn text_search(
    db: &Db,
    org_id: &str,
    terms: &[String],
    k: usize,
) -> sqlx::Result<Vec<(String, f32)>> {
    // Every term quoted: FTS5 reads them as plain strings, never as operators.
    let expression = terms
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(" OR ");
    let rows = sqlx::query(
        "SELECT c.id, -bm25(knowledge_chunks_fts) AS score FROM knowledge_chunks_fts \
         JOIN knowledge_chunks c ON c.seq = knowledge_chunks_fts.rowid \
         WHERE knowledge_chunks_fts MATCH $1 AND c.org_id = $2 \
         ORDER BY bm25(knowledge_chunks_fts) LIMIT $3",
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
        .map(|i| format!("${}", i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT id, embedding FROM knowledge_chunks WHERE org_id = $1 AND embedding_model = $2 \
         AND id IN ({placeholders})"
    );
    let mut q = sqlx::query(&sql).bind(org_id).bind(model.id);
    for id in ids {
        q = q.bind(id.as_str());
    }
    let rows = q.fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let blob: Vec<u8> = row.try_get(1)?;
        if let Some(score) = dot_blob(query, &blob) {
            out.push((row.try_get(0)?, score));
        }
    }
    Ok(out)
}

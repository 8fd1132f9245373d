//! Durable generation jobs: queued in the database, claimed by a worker, retried with backoff, and
//! picked up again after a restart.

use sqlx::FromRow;

use super::{now_ms, Db};

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: String,
    pub session_id: String,
    pub user_id: String,
    pub org_id: String,
    pub status: String,
    pub spec: String,
    pub attempts: i64,
    pub content_id: Option<String>,
    pub error: Option<String>,
}

const COLUMNS: &str = "id, session_id, user_id, org_id, status, spec, attempts, content_id, error";

impl Db {
    /// Queues a job once: a second insert of the same id changes nothing. True when inserted.
    pub async fn enqueue_job(
        &self,
        id: &str,
        session_id: &str,
        user_id: &str,
        org_id: &str,
        spec: &str,
    ) -> sqlx::Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO generation_jobs (id, session_id, user_id, org_id, status, spec, run_after, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'queued', $5, $6, $6, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(session_id)
        .bind(user_id)
        .bind(org_id)
        .bind(spec)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn job(&self, id: &str) -> sqlx::Result<Option<JobRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM generation_jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Claims a queued job for running; only one claimer wins.
    pub async fn claim_job(&self, id: &str) -> sqlx::Result<Option<JobRow>> {
        sqlx::query_as(&format!(
            "UPDATE generation_jobs SET status = 'running', attempts = attempts + 1, updated_at = $2 \
             WHERE id = $1 AND status = 'queued' RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// Jobs to (re)start: queued ones due now, and running ones orphaned by a stopped process.
    pub async fn due_jobs(&self, limit: i64) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM generation_jobs WHERE status = 'queued' AND run_after <= $1 \
             ORDER BY run_after LIMIT $2",
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// At start-up: jobs left `running` by a previous process go back to the queue.
    pub async fn requeue_orphaned_jobs(&self) -> sqlx::Result<u64> {
        let done = sqlx::query(
            "UPDATE generation_jobs SET status = 'queued', updated_at = $1 WHERE status = 'running'",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn retry_job_later(&self, id: &str, error: &str, delay_ms: i64) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE generation_jobs SET status = 'queued', error = $2, run_after = $3, updated_at = $4 \
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

    pub async fn finish_job(
        &self,
        id: &str,
        status: &str,
        content_id: Option<&str>,
        error: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE generation_jobs SET status = $2, content_id = $3, error = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(content_id)
        .bind(error)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Cancels a job that has not finished; true when it was still pending or running.
    pub async fn cancel_job(&self, id: &str) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE generation_jobs SET status = 'cancelled', updated_at = $2 \
             WHERE id = $1 AND status IN ('queued', 'running')",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

//! Login sessions and their rotating refresh tokens.

use super::{new_id, now_ms, Db};

pub const REFRESH_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// The outcome of presenting a refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was valid and is now spent; a successor was stored.
    Rotated { session_id: String, user_id: String },
    /// The token had already been used: the whole family is now revoked.
    Reused { session_id: String, user_id: String },
    /// Unknown, expired, or its session is revoked.
    Invalid,
}

impl Db {
    /// Opens a login session with its first refresh token (given as its digest).
    pub async fn open_session(&self, user_id: &str, refresh_digest: &str) -> sqlx::Result<String> {
        let now = now_ms();
        let session_id = new_id();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO auth_sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(&session_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_refresh(&mut tx, &session_id, refresh_digest, now).await?;
        tx.commit().await?;
        Ok(session_id)
    }

    /// Spends a refresh token and stores its successor, detecting reuse.
    pub async fn rotate_refresh(
        &self,
        presented_digest: &str,
        successor_digest: &str,
    ) -> sqlx::Result<Rotation> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Claiming by a conditional write first makes concurrent presentations race safely.
        let claimed: Option<(String,)> = sqlx::query_as(
            "UPDATE refresh_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING session_id",
        )
        .bind(presented_digest)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((session_id,)) = claimed {
            let session: Option<(String, Option<i64>)> =
                sqlx::query_as("SELECT user_id, revoked_at FROM auth_sessions WHERE id = $1")
                    .bind(&session_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            return match session {
                Some((user_id, None)) => {
                    insert_refresh(&mut tx, &session_id, successor_digest, now).await?;
                    tx.commit().await?;
                    Ok(Rotation::Rotated {
                        session_id,
                        user_id,
                    })
                }
                _ => {
                    tx.commit().await?;
                    Ok(Rotation::Invalid)
                }
            };
        }
        let spent: Option<(String, String)> = sqlx::query_as(
            "SELECT r.session_id, s.user_id FROM refresh_tokens r \
             JOIN auth_sessions s ON s.id = r.session_id \
             WHERE r.token_hash = $1 AND r.used_at IS NOT NULL",
        )
        .bind(presented_digest)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match spent {
            Some((session_id, user_id)) => {
                self.revoke_session(&session_id, "refresh_token_reuse")
                    .await?;
                Ok(Rotation::Reused {
                    session_id,
                    user_id,
                })
            }
            None => Ok(Rotation::Invalid),
        }
    }

    pub async fn revoke_session(&self, session_id: &str, reason: &str) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $2, revoke_reason = $3 \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(session_id)
        .bind(now_ms())
        .bind(reason)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Revokes every session of a user except `keep` (e.g. after a password change).
    pub async fn revoke_other_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: &str,
    ) -> sqlx::Result<u64> {
        let done = sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $3, revoke_reason = $4 \
             WHERE user_id = $1 AND revoked_at IS NULL AND id <> $2",
        )
        .bind(user_id)
        .bind(keep.unwrap_or(""))
        .bind(now_ms())
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

async fn insert_refresh(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session_id: &str,
    digest: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, session_id, token_hash, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id())
    .bind(session_id)
    .bind(digest)
    .bind(now + REFRESH_TTL_MS)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

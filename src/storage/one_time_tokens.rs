//! Single-use, expiring tokens for email verification, password reset and invitations.

use sqlx::FromRow;

use super::{new_id, now_ms, Db};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    PasswordReset,
    Invitation,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
            Self::Invitation => "invitation",
        }
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct OneTimeToken {
    pub id: String,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub email: Option<String>,
    pub role: Option<String>,
    pub created_by: Option<String>,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, user_id, org_id, email, role, created_by, expires_at, used_at, cancelled_at, created_at";

#[derive(Debug, Default)]
pub struct NewOneTimeToken<'a> {
    pub user_id: Option<&'a str>,
    pub org_id: Option<&'a str>,
    pub email: Option<&'a str>,
    pub role: Option<&'a str>,
    pub created_by: Option<&'a str>,
}

impl Db {
    pub async fn insert_one_time_token(
        &self,
        purpose: Purpose,
        digest: &str,
        ttl_ms: i64,
        token: NewOneTimeToken<'_>,
    ) -> sqlx::Result<String> {
        let now = now_ms();
        let id = new_id();
        sqlx::query(
            "INSERT INTO one_time_tokens (id, purpose, token_hash, user_id, org_id, email, role, \
             created_by, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(purpose.as_str())
        .bind(digest)
        .bind(token.user_id)
        .bind(token.org_id)
        .bind(token.email)
        .bind(token.role)
        .bind(token.created_by)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// A token that is still usable (not expired, used or cancelled), without spending it.
    pub async fn peek_one_time_token(
        &self,
        purpose: Purpose,
        digest: &str,
    ) -> sqlx::Result<Option<OneTimeToken>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM one_time_tokens WHERE purpose = $1 AND token_hash = $2 \
             AND used_at IS NULL AND cancelled_at IS NULL AND expires_at > $3"
        ))
        .bind(purpose.as_str())
        .bind(digest)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// Spends a token atomically: of two concurrent uses, exactly one succeeds.
    pub async fn consume_one_time_token(
        &self,
        purpose: Purpose,
        digest: &str,
    ) -> sqlx::Result<Option<OneTimeToken>> {
        let now = now_ms();
        sqlx::query_as(&format!(
            "UPDATE one_time_tokens SET used_at = $3 WHERE purpose = $1 AND token_hash = $2 \
             AND used_at IS NULL AND cancelled_at IS NULL AND expires_at > $3 RETURNING {COLUMNS}"
        ))
        .bind(purpose.as_str())
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
    }
}

impl Db {
    /// Withdraws every still-usable token of `purpose` issued to `user_id` (e.g. older reset links
    /// once the password has been reset).
    pub async fn cancel_user_tokens(&self, user_id: &str, purpose: Purpose) -> sqlx::Result<u64> {
        let done = sqlx::query(
            "UPDATE one_time_tokens SET cancelled_at = $3 WHERE user_id = $1 AND purpose = $2 \
             AND used_at IS NULL AND cancelled_at IS NULL",
        )
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

//! Accounts.

use sqlx::FromRow;

use super::{new_id, now_ms, Db};

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub org_id: Option<String>,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub status: String,
    pub display_name: Option<String>,
    pub preferences: String,
    pub email_verified_at: Option<i64>,
    pub failed_logins: i64,
    pub locked_until: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub const USER_COLUMNS: &str = "id, org_id, email, password_hash, role, status, display_name, \
     preferences, email_verified_at, failed_logins, locked_until, created_at, updated_at";

pub struct NewUser<'a> {
    pub org_id: Option<&'a str>,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub status: &'a str,
    pub display_name: Option<&'a str>,
    pub verified: bool,
}

/// What every authenticated request re-checks, so that revocations act at once.
#[derive(Debug, Clone, FromRow)]
pub struct AccessCheck {
    pub role: String,
    pub org_id: Option<String>,
    pub user_status: String,
    pub email_verified_at: Option<i64>,
    pub org_status: Option<String>,
    pub session_revoked_at: Option<i64>,
}

impl Db {
    pub async fn insert_user<'c, E>(&self, exec: E, user: NewUser<'_>) -> sqlx::Result<UserRow>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let now = now_ms();
        sqlx::query_as(&format!(
            "INSERT INTO users (id, org_id, email, password_hash, role, status, display_name, \
             preferences, email_verified_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, '{{}}', $8, $9, $9) RETURNING {USER_COLUMNS}"
        ))
        .bind(new_id())
        .bind(user.org_id)
        .bind(user.email)
        .bind(user.password_hash)
        .bind(user.role)
        .bind(user.status)
        .bind(user.display_name)
        .bind(user.verified.then_some(now))
        .bind(now)
        .fetch_one(exec)
        .await
    }

    pub async fn user_by_email(&self, email: &str) -> sqlx::Result<Option<UserRow>> {
        sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn user(&self, id: &str) -> sqlx::Result<Option<UserRow>> {
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn access_check(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> sqlx::Result<Option<AccessCheck>> {
        sqlx::query_as(
            "SELECT u.role, u.org_id, u.status AS user_status, u.email_verified_at, \
                    o.status AS org_status, s.revoked_at AS session_revoked_at \
             FROM users u \
             JOIN auth_sessions s ON s.id = $2 AND s.user_id = u.id \
             LEFT JOIN orgs o ON o.id = u.org_id \
             WHERE u.id = $1",
        )
        .bind(user_id)
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records a failed login; after 5 in a row the account is locked for a growing while.
    pub async fn record_failed_login(&self, user_id: &str) -> sqlx::Result<()> {
        let now = now_ms();
        let row: (i64,) = sqlx::query_as(
            "UPDATE users SET failed_logins = failed_logins + 1, updated_at = $2 \
             WHERE id = $1 RETURNING failed_logins",
        )
        .bind(user_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        if row.0 >= 5 {
            let backoff_secs = 30i64 << (row.0 - 5).min(6);
            sqlx::query("UPDATE users SET locked_until = $2 WHERE id = $1")
                .bind(user_id)
                .bind(now + backoff_secs * 1000)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn record_successful_login(&self, user_id: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn set_password_hash(&self, user_id: &str, hash: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(hash)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Marks the email verified and activates the account and, for a pending owner, its org.
    pub async fn verify_email(&self, user_id: &str) -> sqlx::Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let row: (Option<String>, String) = sqlx::query_as(
            "UPDATE users SET email_verified_at = $2, status = 'active', updated_at = $2 \
             WHERE id = $1 RETURNING org_id, role",
        )
        .bind(user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if let (Some(org_id), "owner") = (row.0, row.1.as_str()) {
            sqlx::query(
                "UPDATE orgs SET status = 'active', updated_at = $2 WHERE id = $1 AND status = 'pending'",
            )
            .bind(org_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}

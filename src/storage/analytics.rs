//! Platform-wide counts for the superuser's summary.

use super::{now_ms, Db};

const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Default)]
pub struct PlatformCounts {
    /// `(status, count)` of organisations.
    pub orgs_by_status: Vec<(String, i64)>,
    /// `(role, count)` of accounts.
    pub users_by_role: Vec<(String, i64)>,
    pub signups_7d: i64,
    pub signups_30d: i64,
    pub logins_24h: i64,
    pub active_users_24h: i64,
}

impl Db {
    pub async fn platform_counts(&self) -> sqlx::Result<PlatformCounts> {
        let now = now_ms();
        let orgs_by_status =
            sqlx::query_as("SELECT status, COUNT(*) FROM orgs GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?;
        let users_by_role =
            sqlx::query_as("SELECT role, COUNT(*) FROM users GROUP BY role ORDER BY role")
                .fetch_all(&self.pool)
                .await?;
        // Sign-ups are accounts of organisations (superusers are provisioned, not signed up).
        let signups = |since: i64| {
            sqlx::query_as::<_, (i64,)>(
                "SELECT COUNT(*) FROM users WHERE created_at >= $1 AND role <> 'superuser'",
            )
            .bind(since)
            .fetch_one(&self.pool)
        };
        let (signups_7d,) = signups(now - 7 * DAY_MS).await?;
        let (signups_30d,) = signups(now - 30 * DAY_MS).await?;
        let (logins_24h, active_users_24h): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT actor_id) FROM audit_logs \
             WHERE action = 'auth.login' AND created_at >= $1",
        )
        .bind(now - DAY_MS)
        .fetch_one(&self.pool)
        .await?;
        Ok(PlatformCounts {
            orgs_by_status,
            users_by_role,
            signups_7d,
            signups_30d,
            logins_24h,
            active_users_24h,
        })
    }
}

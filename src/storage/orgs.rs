//! Organisations: the tenants.

use sqlx::FromRow;

use super::{new_id, now_ms, Db};

#[derive(Debug, Clone, FromRow)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub industry: Option<String>,
    pub website: Option<String>,
    pub status: String,
    pub bot_config: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, industry, website, status, bot_config, created_at, updated_at";

pub struct NewOrg<'a> {
    pub name: &'a str,
    pub industry: Option<&'a str>,
    pub website: Option<&'a str>,
    pub status: &'a str,
}

impl Db {
    pub async fn insert_org<'c, E>(&self, exec: E, org: NewOrg<'_>) -> sqlx::Result<OrgRow>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let now = now_ms();
        sqlx::query_as(&format!(
            "INSERT INTO orgs (id, name, industry, website, status, bot_config, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, '{{}}', $6, $6) RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(org.name)
        .bind(org.industry)
        .bind(org.website)
        .bind(org.status)
        .bind(now)
        .fetch_one(exec)
        .await
    }

    pub async fn org(&self, id: &str) -> sqlx::Result<Option<OrgRow>> {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM orgs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn set_org_status(&self, id: &str, status: &str) -> sqlx::Result<bool> {
        let done = sqlx::query("UPDATE orgs SET status = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(status)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// The editable profile of an organisation.
pub struct OrgUpdate<'a> {
    pub name: &'a str,
    pub industry: Option<&'a str>,
    pub website: Option<&'a str>,
}

impl Db {
    pub async fn update_org(
        &self,
        id: &str,
        update: OrgUpdate<'_>,
    ) -> sqlx::Result<Option<OrgRow>> {
        sqlx::query_as(&format!(
            "UPDATE orgs SET name = $2, industry = $3, website = $4, updated_at = $5 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(update.name)
        .bind(update.industry)
        .bind(update.website)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// Stores the bot configuration (a JSON document validated by the caller).
    pub async fn set_bot_config(&self, id: &str, json: &str) -> sqlx::Result<bool> {
        let done = sqlx::query("UPDATE orgs SET bot_config = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(json)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One page of organisations, newest first, optionally only those in `status`.
    pub async fn list_orgs(
        &self,
        status: Option<&str>,
        cursor: Option<&super::PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<OrgRow>> {
        use super::query::{bind_all, Arg, Filter};
        let mut filter = Filter::new();
        if let Some(status) = status {
            filter.eq("status", Arg::Text(status.to_string()));
        }
        filter.before(cursor);
        let limit = filter.arg(Arg::Int(i64::from(limit) + 1));
        let sql = format!(
            "SELECT {COLUMNS} FROM orgs{} ORDER BY created_at DESC, id DESC LIMIT {limit}",
            filter.sql()
        );
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }
}

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

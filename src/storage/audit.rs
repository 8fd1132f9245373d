//! The audit trail: security-relevant events, append-only.

use super::{new_id, now_ms, Db};

/// One event to record. `metadata` must never hold secrets; emails in it are masked.
pub struct AuditEvent<'a> {
    pub org_id: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    pub metadata: serde_json::Value,
}

impl Db {
    pub async fn audit(&self, event: AuditEvent<'_>) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO audit_logs (id, org_id, actor_id, action, resource_type, resource_id, \
             metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(event.org_id)
        .bind(event.actor_id)
        .bind(event.action)
        .bind(event.resource_type)
        .bind(event.resource_id)
        .bind(event.metadata.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}

/// A recorded event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub org_id: Option<String>,
    pub actor_id: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub metadata: String,
    pub created_at: i64,
}

/// Which events to list; every present field narrows the result.
#[derive(Debug, Default)]
pub struct AuditQuery<'a> {
    pub org_id: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub resource_type: Option<&'a str>,
    pub action: Option<&'a str>,
    /// Inclusive lower bound, ms.
    pub from: Option<i64>,
    /// Inclusive upper bound, ms.
    pub to: Option<i64>,
}

impl Db {
    /// One page of events, newest first.
    pub async fn audit_events(
        &self,
        query: AuditQuery<'_>,
        cursor: Option<&super::PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<AuditRow>> {
        use super::query::{bind_all, Arg, Filter};
        let mut filter = Filter::new();
        let text = |v: &str| Arg::Text(v.to_string());
        if let Some(v) = query.org_id {
            filter.eq("org_id", text(v));
        }
        if let Some(v) = query.actor_id {
            filter.eq("actor_id", text(v));
        }
        if let Some(v) = query.resource_type {
            filter.eq("resource_type", text(v));
        }
        if let Some(v) = query.action {
            filter.eq("action", text(v));
        }
        if let Some(from) = query.from {
            let p = filter.arg(Arg::Int(from));
            filter.clause(format!("created_at >= {p}"));
        }
        if let Some(to) = query.to {
            let p = filter.arg(Arg::Int(to));
            filter.clause(format!("created_at <= {p}"));
        }
        filter.before(cursor);
        let limit = filter.arg(Arg::Int(i64::from(limit) + 1));
        let sql = format!(
            "SELECT id, org_id, actor_id, action, resource_type, resource_id, metadata, created_at \
             FROM audit_logs{} ORDER BY created_at DESC, id DESC LIMIT {limit}",
            filter.sql()
        );
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }
}

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

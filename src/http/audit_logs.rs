//! `/audit-logs`: the security-relevant events, for an organisation's owners (their own
//! organisation only) and the platform superuser (all, or one organisation).

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Role;
use crate::error::{ApiError, FieldError};
use crate::http::authn::OrgAuthenticated;
use crate::http::json::Json;
use crate::http::pagination::{Cursor, Page, PageParams};
use crate::state::AppState;
use crate::storage::audit::{AuditQuery, AuditRow};
use crate::storage::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_logs))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only events by this account.
    #[serde(rename = "actorId", alias = "actor_id")]
    pub actor_id: Option<String>,
    /// Only events about this kind of resource: `user`, `org`, `api_key`, `invitation`, `session`…
    #[serde(rename = "resourceType", alias = "resource_type")]
    pub resource_type: Option<String>,
    /// Only events of this action, e.g. `auth.login_failed`.
    pub action: Option<String>,
    /// Events at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Events at or before this instant (RFC 3339).
    pub to: Option<String>,
    /// Superuser only: events of this organisation. Owners always see their own.
    pub org_id: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogEntry {
    pub id: String,
    pub org_id: Option<String>,
    /// The account that acted (absent for system events).
    pub actor_id: Option<String>,
    /// What happened, e.g. `auth.login`, `api_key.rotated`, `employee.role_changed`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    /// Details; never secrets, and emails are masked.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: String,
}

impl From<AuditRow> for AuditLogEntry {
    fn from(row: AuditRow) -> Self {
        Self {
            metadata: serde_json::from_str(&row.metadata).unwrap_or_default(),
            id: row.id,
            org_id: row.org_id,
            actor_id: row.actor_id,
            action: row.action,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            created_at: rfc3339(row.created_at),
        }
    }
}

fn instant(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<i64> {
    let value = value?;
    match time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339) {
        Ok(t) => Some((t.unix_timestamp_nanos() / 1_000_000) as i64),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "must be an RFC 3339 instant, e.g. 2025-01-31T09:30:00Z",
            ));
            None
        }
    }
}

/// Audit events, newest first, with optional filters.
#[utoipa::path(
    get,
    path = "/audit-logs",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "One page of events", body = Page<AuditLogEntry>),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner or superuser, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`org_id` names another organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter, limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_audit_logs(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Query(params): Query<AuditParams>,
) -> Result<Json<Page<AuditLogEntry>>, ApiError> {
    // The organisation is decided by who asks: an owner cannot widen it, only the superuser can
    // choose one (or none, for all).
    let org_id = if principal.is_superuser() {
        params.org_id.clone()
    } else {
        let own = principal
            .org_id
            .clone()
            .ok_or_else(|| ApiError::forbidden("your role does not allow this"))?;
        if let Some(asked) = &params.org_id {
            principal.require_org(asked)?;
        }
        principal.require_role(&[Role::Owner])?;
        principal.require_verified()?;
        Some(own)
    };
    let (limit, cursor) = PageParams {
        limit: params.limit,
        cursor: params.cursor.clone(),
    }
    .resolve()?;
    let mut errors = Vec::new();
    let from = instant("from", params.from.as_deref(), &mut errors);
    let to = instant("to", params.to.as_deref(), &mut errors);
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            errors.push(FieldError::new("to", "must not be before `from`"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .audit_events(
            AuditQuery {
                org_id: org_id.as_deref(),
                actor_id: params.actor_id.as_deref(),
                resource_type: params.resource_type.as_deref(),
                action: params.action.as_deref(),
                from,
                to,
            },
            cursor.as_ref(),
            limit,
        )
        .await?;
    let page = Page::from_rows(rows, limit, |r| Cursor {
        created_at: r.created_at,
        id: r.id.clone(),
    });
    Ok(Json(Page {
        data: page.data.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

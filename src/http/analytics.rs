//! `/analytics`: the platform-wide summary for the superuser.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::authn::Authenticated;
use crate::http::json::Json;
use crate::state::AppState;
use crate::storage::{now_ms, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(summary))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformSummary {
    pub orgs: OrgCounts,
    pub users: UserCounts,
    /// Accounts created (superusers excluded).
    pub signups: SignupCounts,
    pub logins: LoginCounts,
    pub generated_at: String,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct OrgCounts {
    pub total: i64,
    pub pending: i64,
    pub active: i64,
    pub suspended: i64,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct UserCounts {
    pub total: i64,
    pub owner: i64,
    pub staff: i64,
    pub member: i64,
    pub superuser: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignupCounts {
    pub last_7_days: i64,
    pub last_30_days: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginCounts {
    /// Successful sign-ins in the last 24 hours.
    pub last_24_hours: i64,
    /// Distinct accounts that signed in in the last 24 hours.
    pub active_users_last_24_hours: i64,
}

/// Platform-wide summary (superuser): organisations by status, accounts by role, sign-ups and
/// sign-ins.
#[utoipa::path(
    get,
    path = "/analytics",
    tag = "superuser",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The summary", body = PlatformSummary),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a superuser", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn summary(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<PlatformSummary>, ApiError> {
    principal.require_superuser()?;
    let counts = state.db.platform_counts().await?;
    let mut orgs = OrgCounts::default();
    for (status, n) in counts.orgs_by_status {
        orgs.total += n;
        match status.as_str() {
            "pending" => orgs.pending += n,
            "active" => orgs.active += n,
            "suspended" => orgs.suspended += n,
            _ => {}
        }
    }
    let mut users = UserCounts::default();
    for (role, n) in counts.users_by_role {
        users.total += n;
        match role.as_str() {
            "owner" => users.owner += n,
            "staff" => users.staff += n,
            "member" => users.member += n,
            "superuser" => users.superuser += n,
            _ => {}
        }
    }
    Ok(Json(PlatformSummary {
        orgs,
        users,
        signups: SignupCounts {
            last_7_days: counts.signups_7d,
            last_30_days: counts.signups_30d,
        },
        logins: LoginCounts {
            last_24_hours: counts.logins_24h,
            active_users_last_24_hours: counts.active_users_24h,
        },
        generated_at: rfc3339(now_ms()),
    }))
}

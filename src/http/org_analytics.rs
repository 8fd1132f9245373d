//! `/orgs/{id}/analytics`: what an organisation's chat widget did, for its owners and staff.

use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, FieldError};
use crate::http::access::employees_org;
use crate::http::authn::OrgAuthenticated;
use crate::http::json::Json;
use crate::state::AppState;
use crate::storage::{now_ms, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(org_analytics))
}

const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// The period covered: the last `days` days, 1 to 365 (default 30).
    #[param(minimum = 1, maximum = 365)]
    pub days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgAnalytics {
    pub org_id: String,
    pub from: String,
    pub to: String,
    pub sessions: SessionStats,
    pub messages: MessageStats,
    pub answers: AnswerStats,
    pub feedback: FeedbackStats,
    /// Visitor messages per hour of the day (UTC), busiest first; hours without any are left out.
    pub busiest_hours: Vec<HourCount>,
    /// Questions answered with the fallback (the knowledge base had nothing), most asked first.
    pub top_unanswered_questions: Vec<UnansweredQuestion>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStats {
    pub total: i64,
    pub closed: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageStats {
    /// Messages from visitors.
    pub visitor: i64,
    /// Answers (greetings not counted).
    pub assistant: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerStats {
    /// Answered from the knowledge base.
    pub answered: i64,
    /// Answered with the configured fallback.
    pub fallback: i64,
    /// `answered / (answered + fallback)`; absent without answers.
    pub answered_ratio: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackStats {
    pub up: i64,
    pub down: i64,
    /// `up / (up + down)`; absent without feedback.
    pub positive_ratio: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HourCount {
    #[schema(minimum = 0, maximum = 23)]
    pub hour: i64,
    pub messages: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnansweredQuestion {
    pub question: String,
    pub count: i64,
    pub last_asked_at: String,
}

fn ratio(part: i64, other: i64) -> Option<f64> {
    let total = part + other;
    (total > 0).then(|| part as f64 / total as f64)
}

/// Chat-widget activity of the organisation over a period (owners and staff).
#[utoipa::path(
    get,
    path = "/orgs/{id}/analytics",
    tag = "orgs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id"), AnalyticsQuery),
    responses(
        (status = 200, description = "The organisation's chat activity", body = OrgAnalytics),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid period", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn org_analytics(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Json<OrgAnalytics>, ApiError> {
    employees_org(&state, &principal, &id).await?;
    let days = query.days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(ApiError::validation(vec![FieldError::new(
            "days",
            "must be between 1 and 365",
        )]));
    }
    let to = now_ms();
    let from = to - i64::from(days) * DAY_MS;
    let counts = state.db.chat_counts(&id, from).await?;
    Ok(Json(OrgAnalytics {
        org_id: id,
        from: rfc3339(from),
        to: rfc3339(to),
        sessions: SessionStats {
            total: counts.sessions,
            closed: counts.closed_sessions,
        },
        messages: MessageStats {
            visitor: counts.user_messages,
            assistant: counts.assistant_messages,
        },
        answers: AnswerStats {
            answered: counts.answered,
            fallback: counts.fallback,
            answered_ratio: ratio(counts.answered, counts.fallback),
        },
        feedback: FeedbackStats {
            up: counts.feedback_up,
            down: counts.feedback_down,
            positive_ratio: ratio(counts.feedback_up, counts.feedback_down),
        },
        busiest_hours: counts
            .busiest_hours
            .into_iter()
            .map(|(hour, messages)| HourCount { hour, messages })
            .collect(),
        top_unanswered_questions: counts
            .unanswered
            .into_iter()
            .map(|(question, count, last)| UnansweredQuestion {
                question,
                count,
                last_asked_at: rfc3339(last),
            })
            .collect(),
    }))
}

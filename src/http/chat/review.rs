//! What an organisation's owners and staff read of their widget's conversations: the sessions,
//! each transcript, and the visitors' ratings with their comments and what they rated.

use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ChatMessage, Rating};
use crate::error::ApiError;
use crate::http::access::employees_org;
use crate::http::authn::OrgAuthenticated;
use crate::http::json::Json;
use crate::http::pagination::{Cursor, Page, PageParams};
use crate::state::AppState;
use crate::storage::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sessions))
        .routes(routes!(transcript))
        .routes(routes!(feedback))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatSessionSummary {
    pub session_id: String,
    /// The widget's anonymous id for the browser, when it sent one.
    pub visitor_id: Option<String>,
    pub created_at: String,
    pub closed_at: Option<String>,
    /// Messages in the transcript, the greeting included.
    pub messages: i64,
}

/// The organisation's chat-widget sessions, newest first (owners and staff).
#[utoipa::path(
    get,
    path = "/orgs/{id}/chat/sessions",
    tag = "chat",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id"), PageParams),
    responses(
        (status = 200, description = "One page of sessions", body = Page<ChatSessionSummary>),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn sessions(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<ChatSessionSummary>>, ApiError> {
    employees_org(&state, &principal, &id).await?;
    let (limit, cursor) = params.resolve()?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .org_chat_sessions_page(&id, cursor.as_ref(), limit)
        .await?;
    let page = Page::from_rows(rows, limit, |row| Cursor {
        created_at: row.created_at,
        id: row.session_id.clone(),
    });
    Ok(Json(Page {
        data: page
            .data
            .into_iter()
            .map(|row| ChatSessionSummary {
                session_id: row.session_id,
                visitor_id: row.visitor_id,
                created_at: rfc3339(row.created_at),
                closed_at: row.closed_at.map(rfc3339),
                messages: row.messages,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One chat session's transcript, newest first (owners and staff).
#[utoipa::path(
    get,
    path = "/orgs/{id}/chat/sessions/{session_id}/messages",
    tag = "chat",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Organisation id"),
        ("session_id" = String, Path, description = "The chat session"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page of messages", body = Page<ChatMessage>),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation or session (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn transcript(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path((id, session_id)): Path<(String, String)>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<ChatMessage>>, ApiError> {
    employees_org(&state, &principal, &id).await?;
    if !state.db.org_has_chat_session(&id, &session_id).await? {
        return Err(ApiError::not_found("chat session"));
    }
    let (limit, cursor) = params.resolve()?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .chat_messages_page(&session_id, cursor.as_ref(), limit)
        .await?;
    let page = Page::from_rows(rows, limit, |row| Cursor {
        created_at: row.created_at,
        id: row.id.clone(),
    });
    Ok(Json(Page {
        data: page.data.into_iter().map(ChatMessage::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedbackQuery {
    /// Only ratings of this kind.
    pub rating: Option<Rating>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackEntry {
    pub feedback_id: String,
    pub session_id: String,
    /// The answer rated; absent when the whole session was rated.
    pub message_id: Option<String>,
    pub rating: Rating,
    pub comment: Option<String>,
    /// The rated answer's text.
    pub answer: Option<String>,
    /// The visitor's question it answered.
    pub question: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Visitors' ratings with their comments and what they rated, newest first (owners and staff).
#[utoipa::path(
    get,
    path = "/orgs/{id}/chat/feedback",
    tag = "chat",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id"), FeedbackQuery),
    responses(
        (status = 200, description = "One page of feedback", body = Page<FeedbackEntry>),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid rating, limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn feedback(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Query(query): Query<FeedbackQuery>,
) -> Result<Json<Page<FeedbackEntry>>, ApiError> {
    employees_org(&state, &principal, &id).await?;
    let (limit, cursor) = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .resolve()?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rating = query.rating.map(Rating::score);
    let rows = state
        .db
        .org_chat_feedback_page(&id, rating, cursor.as_ref(), limit)
        .await?;
    let page = Page::from_rows(rows, limit, |row| Cursor {
        created_at: row.created_at,
        id: row.id.clone(),
    });
    Ok(Json(Page {
        data: page
            .data
            .into_iter()
            .map(|row| FeedbackEntry {
                feedback_id: row.id,
                session_id: row.session_id,
                message_id: Some(row.target).filter(|t| !t.is_empty()),
                rating: Rating::from_score(row.rating),
                comment: row.comment,
                answer: row.answer,
                question: row.question,
                created_at: rfc3339(row.created_at),
                updated_at: rfc3339(row.updated_at),
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

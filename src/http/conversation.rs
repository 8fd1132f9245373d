//! `/conversation`: the REST mirror of the hub. The same session can be driven from here and from
//! a WebSocket at once; both go through the session's actor.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::conversation::ContentType;
use crate::error::{ApiError, FieldError};
use crate::http::answers::{next_answer, submit, valid_client_message_id, Delivery};
use crate::http::authn::Authenticated;
use crate::http::json::Json;
use crate::hub::frames::ErrorCode;
use crate::hub::{HubError, Owner};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(message))
        .routes(routes!(state))
        .routes(routes!(complete))
}

impl From<HubError> for ApiError {
    fn from(error: HubError) -> Self {
        let (status, code) = match error.code {
            ErrorCode::SessionNotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ErrorCode::SessionClosed => (StatusCode::CONFLICT, "SESSION_CLOSED"),
            ErrorCode::SchemaViolation => (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
            ErrorCode::InvalidState => (StatusCode::CONFLICT, "INVALID_STATE"),
            ErrorCode::Busy => (StatusCode::CONFLICT, "BUSY"),
            ErrorCode::InsufficientCredits => {
                (StatusCode::PAYMENT_REQUIRED, "INSUFFICIENT_CREDITS")
            }
            ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            ErrorCode::Forbidden => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            ErrorCode::UpstreamError => (StatusCode::BAD_GATEWAY, "UPSTREAM_ERROR"),
            ErrorCode::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "UPSTREAM_TIMEOUT"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        };
        if status.is_server_error() {
            return ApiError::internal(anyhow::anyhow!(error.message));
        }
        ApiError::new(status, code, error.message)
    }
}

fn owner_of(principal: &Principal) -> Result<Owner, ApiError> {
    principal.require_verified_or_member()?;
    let org_id = principal
        .org_id
        .clone()
        .ok_or_else(|| ApiError::forbidden("platform accounts hold no sessions"))?;
    Ok(Owner::User {
        user_id: principal.user_id.clone(),
        org_id,
    })
}

/// 404 unless the session exists and belongs to this account.
async fn owned_session(state: &AppState, principal: &Principal, id: &str) -> Result<(), ApiError> {
    let row = state.db.session(id).await?;
    match row {
        Some(row) if row.user_id.as_deref() == Some(principal.user_id.as_str()) => Ok(()),
        _ => Err(ApiError::not_found("session")),
    }
}

/// What a guided session creates.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PracticeType {
    Affirmation,
    GuidedMeditation,
    Ritual,
}

impl From<PracticeType> for ContentType {
    fn from(value: PracticeType) -> Self {
        match value {
            PracticeType::Affirmation => Self::Affirmation,
            PracticeType::GuidedMeditation => Self::GuidedMeditation,
            PracticeType::Ritual => Self::Ritual,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub content_type: PracticeType,
    /// Optional; otherwise discovered in conversation.
    #[schema(max_length = 500)]
    pub intent: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StartResponse {
    pub session_id: String,
    pub content_type: PracticeType,
    pub state: String,
    /// The greeting and first question.
    pub message: String,
}

/// Start a guided session; answers with the greeting.
#[utoipa::path(
    post,
    path = "/conversation/start",
    tag = "conversation",
    security(("bearer" = [])),
    request_body = StartRequest,
    responses(
        (status = 201, description = "Session started", body = StartResponse),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn start(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<StartRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let owner = owner_of(&principal)?;
    if body
        .intent
        .as_ref()
        .is_some_and(|i| i.chars().count() > 500)
    {
        return Err(ApiError::validation(vec![FieldError::new(
            "intent",
            "must be at most 500 characters",
        )]));
    }
    let Owner::User { user_id, org_id } = &owner else {
        return Err(ApiError::forbidden("accounts only"));
    };
    let session_id = state
        .hub
        .start_guided(user_id, org_id, body.content_type.into(), body.intent)
        .await?;
    // Following the new session makes its actor speak its opening lines.
    let mut follower = state.hub.follow(&session_id, &owner).await?;
    let greeting = next_answer(&mut follower, None).await?;
    let snapshot = state.hub.snapshot(&session_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(StartResponse {
            session_id,
            content_type: body.content_type,
            state: snapshot.state.as_str().to_string(),
            message: greeting.content,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    pub session_id: uuid::Uuid,
    #[schema(min_length = 1, max_length = 4000)]
    pub message: String,
    /// Idempotency key: a resent id is not processed twice. Generated when absent.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub client_message_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    pub session_id: String,
    pub state: String,
    pub message_id: String,
    pub response: String,
    /// The slots gathered so far.
    pub context: serde_json::Value,
}

/// Send a message; answers with the reply, or streams it as server-sent events when
/// `Accept: text/event-stream` (events `token` and `done`).
#[utoipa::path(
    post,
    path = "/conversation/message",
    tag = "conversation",
    security(("bearer" = [])),
    request_body = MessageRequest,
    responses(
        (status = 200, description = "The reply (JSON, or an SSE stream)", body = MessageResponse),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Duplicate message id, busy, or wrong state", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn message(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    Json(body): Json<MessageRequest>,
) -> Result<Response, ApiError> {
    let owner = owner_of(&principal)?;
    let mut errors = Vec::new();
    let length = body.message.chars().count();
    if body.message.trim().is_empty() || length > 4000 {
        errors.push(FieldError::new("message", "must be 1 to 4000 characters"));
    }
    if let Some(id) = &body.client_message_id {
        if !valid_client_message_id(id) {
            errors.push(FieldError::new(
                "client_message_id",
                "must be 1 to 64 characters of A-Z, a-z, 0-9, - and _",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let session_id = body.session_id.to_string();
    owned_session(&state, &principal, &session_id).await?;
    if let Some(wait) = state
        .rate_limits
        .check("account", &principal.user_id)
        .retry_after
    {
        return Err(ApiError::rate_limited(wait.as_secs().max(1)));
    }
    let client_message_id = body
        .client_message_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let delivery = submit(
        &state,
        &owner,
        &session_id,
        body.message,
        &client_message_id,
        &headers,
    )
    .await?;
    let answer = match delivery {
        Delivery::Streamed(response) => return Ok(response),
        Delivery::Awaited(answer) => answer,
    };
    let snapshot = state.hub.snapshot(&session_id).await?;
    Ok(Json(MessageResponse {
        session_id,
        state: snapshot.state.as_str().to_string(),
        message_id: answer.message_id,
        response: answer.content,
        context: snapshot.context,
    })
    .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    pub session_id: uuid::Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptMessage {
    pub message_id: String,
    pub role: String,
    pub content: String,
    pub cancelled: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StateResponse {
    pub session_id: String,
    pub content_type: Option<String>,
    pub state: String,
    pub context: serde_json::Value,
    /// The highest frame number, for resuming over WebSocket.
    pub last_seq: i64,
    pub messages: Vec<TranscriptMessage>,
}

/// The session's state, gathered slots and transcript.
#[utoipa::path(
    get,
    path = "/conversation/state",
    tag = "conversation",
    security(("bearer" = [])),
    params(StateQuery),
    responses(
        (status = 200, description = "The session", body = StateResponse),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn state(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<StateQuery>,
) -> Result<Json<StateResponse>, ApiError> {
    let session_id = query.session_id.to_string();
    owned_session(&state, &principal, &session_id).await?;
    let snapshot = state.hub.snapshot(&session_id).await?;
    state.hub.flush_frames().await;
    let frames = state
        .db
        .frames_between(&session_id, 0, snapshot.last_seq)
        .await?;
    let messages = frames
        .iter()
        .filter_map(|(_, f)| serde_json::from_str::<serde_json::Value>(f).ok())
        .filter(|v| v["type"] == "message.done")
        .map(|v| TranscriptMessage {
            message_id: v["message_id"].as_str().unwrap_or_default().to_string(),
            role: v["role"].as_str().unwrap_or_default().to_string(),
            content: v["content"].as_str().unwrap_or_default().to_string(),
            cancelled: v["cancelled"].as_bool().unwrap_or(false),
        })
        .collect();
    Ok(Json(StateResponse {
        session_id,
        content_type: snapshot.content_type,
        state: snapshot.state.as_str().to_string(),
        context: snapshot.context,
        last_seq: snapshot.last_seq,
        messages,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub session_id: uuid::Uuid,
    pub confirm: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompleteResponse {
    pub session_id: String,
    /// `generating`, or `revising` after `confirm: false`.
    pub status: String,
    pub job_id: Option<String>,
    /// Seconds until the content is expected.
    pub estimated_time: Option<u32>,
}

/// Confirm (start generating, 1 credit on success) or decline the summary.
#[utoipa::path(
    post,
    path = "/conversation/complete",
    tag = "conversation",
    security(("bearer" = [])),
    request_body = CompleteRequest,
    responses(
        (status = 202, description = "Generation started, or back to revising", body = CompleteResponse),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 402, description = "Not enough credits", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not awaiting confirmation, or busy", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn complete(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<CompleteRequest>,
) -> Result<impl IntoResponse, ApiError> {
    owner_of(&principal)?;
    let session_id = body.session_id.to_string();
    owned_session(&state, &principal, &session_id).await?;
    let started = state.hub.complete(&session_id, body.confirm).await?;
    let response = match started {
        Some(started) => CompleteResponse {
            session_id,
            status: "generating".into(),
            job_id: Some(started.job_id),
            estimated_time: Some(started.estimated_time_s),
        },
        None => CompleteResponse {
            session_id,
            status: "revising".into(),
            job_id: None,
            estimated_time: None,
        },
    };
    Ok((StatusCode::ACCEPTED, Json(response)))
}

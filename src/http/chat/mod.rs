//! `/chat/sessions`: the chat widget's HTTP API. A visitor opens a session with the organisation's
//! publishable key and then uses the session token it receives; the same session can be driven
//! over the hub's WebSocket at the same time.

pub mod review;
pub mod visitor;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::bot_config::BotConfig;
use crate::error::{ApiError, FieldError};
use crate::http::answers::{submit, valid_client_message_id, Delivery};
use crate::http::client_ip::ClientIp;
use crate::http::json::Json;
use crate::http::pagination::{Cursor, Page, PageParams};
use crate::hub::frames::Citation;
use crate::hub::Owner;
use crate::state::AppState;
use crate::storage::chat::{ChatMessageRow, FeedbackWrite, NewChatSession};
use crate::storage::{new_id, now_ms, rfc3339};
use visitor::{Visitor, WidgetCredentials};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(send_message, history))
        .routes(routes!(close))
        .routes(routes!(feedback))
        .merge(review::router())
}

/// The chat session named in the path, for the visitor whose token was presented; any other
/// session (another visitor's, another organisation's) does not exist as far as they can tell.
async fn visitor_of(
    state: &AppState,
    headers: &HeaderMap,
    session_id: &str,
    key_optional: bool,
) -> Result<Visitor, ApiError> {
    let credentials = WidgetCredentials::from_headers(headers);
    let visitor = visitor::authenticate(state, &credentials, key_optional).await?;
    if visitor.session_id != session_id {
        return Err(ApiError::not_found("chat session"));
    }
    Ok(visitor)
}

fn per_ip(state: &AppState, ip: &ClientIp) -> Result<(), ApiError> {
    state.rate_limits.enforce_recorded("visitor_ip", &ip.0)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// An anonymous id the widget keeps for this browser, to count returning visitors.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub visitor_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Greeting {
    pub message_id: String,
    pub content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSession {
    pub session_id: String,
    /// Send as `X-Session-Token` (HTTP) or in the WebSocket credential; valid for this session only.
    pub session_token: String,
    /// When the token expires unless used; each use within its lifetime extends it.
    pub expires_at: String,
    pub persona: String,
    pub greeting: Greeting,
    /// Longest message the session accepts, in characters.
    pub max_message_chars: usize,
}

/// Start a chat session (publishable key from an allowed origin); answers with the session token
/// and the greeting.
#[utoipa::path(
    post,
    path = "/chat/sessions",
    tag = "chat",
    security(("api_key" = [])),
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "Session started", body = CreatedSession),
        (status = 401, description = "Missing, wrong or rotated-out publishable key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The page's origin may not use this key, or the organisation is suspended", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this key or address", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn create(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Json(body): Json<CreateSessionRequest>,
) -> Result<impl IntoResponse, ApiError> {
    per_ip(&state, &ip)?;
    let credentials = WidgetCredentials::from_headers(&headers);
    let key = visitor::publishable_key(&state, credentials.api_key, credentials.origin).await?;
    if let Some(id) = &body.visitor_id {
        if !valid_client_message_id(id) {
            return Err(ApiError::validation(vec![FieldError::new(
                "visitor_id",
                "must be 1 to 64 characters of A-Z, a-z, 0-9, - and _",
            )]));
        }
    }
    let config = state
        .db
        .org(&key.org_id)
        .await?
        .map(|org| BotConfig::from_stored(&org.bot_config))
        .unwrap_or_default();
    let (session_token, digest) = crate::chat::token::issue();
    let ttl = i64::try_from(state.settings.hub.chat_token_ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_at = now_ms().saturating_add(ttl);
    let session_id = new_id();
    let greeting_id = new_id();
    state
        .db
        .insert_chat_session(NewChatSession {
            session_id: &session_id,
            org_id: &key.org_id,
            api_key_id: &key.id,
            token_digest: &digest,
            token_expires_at: expires_at,
            visitor_id: body.visitor_id.as_deref(),
            greeting_id: &greeting_id,
            greeting: &config.greeting,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSession {
            session_id,
            session_token,
            expires_at: rfc3339(expires_at),
            persona: config.persona,
            greeting: Greeting {
                message_id: greeting_id,
                content: config.greeting,
            },
            max_message_chars: state.settings.hub.chat_max_message_chars,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// The visitor's message (at most the session's `max_message_chars`, 2000 by default).
    #[schema(min_length = 1, max_length = 4000)]
    pub content: String,
    /// Idempotency key: a resent id is not answered twice. Generated when absent.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub client_message_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatAnswer {
    pub message_id: String,
    /// The `client_message_id` of the message answered.
    pub in_reply_to: String,
    pub content: String,
    /// The knowledge-base documents the answer used; `[n]` in `content` refers to `position` n.
    pub citations: Vec<Citation>,
    /// False when the knowledge base had nothing relevant and the configured fallback was said.
    pub grounded: bool,
}

/// Send a visitor message; answers with the reply, or streams it as server-sent events when
/// `Accept: text/event-stream` (events `started`, `token`, `done`, `error`).
#[utoipa::path(
    post,
    path = "/chat/sessions/{session_id}/messages",
    tag = "chat",
    security(("api_key" = [], "session_token" = [])),
    params(("session_id" = String, Path, description = "The chat session")),
    request_body = SendMessageRequest,
    responses(
        (status = 200, description = "The answer (JSON, or an SSE stream)", body = ChatAnswer),
        (status = 401, description = "Missing or invalid key or session token, or the token expired", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The page's origin may not use this key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat session for this token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The session is closed, an answer is still streaming, or the id was already sent", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many messages", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn send_message(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    ip: ClientIp,
    headers: HeaderMap,
    Json(body): Json<SendMessageRequest>,
) -> Result<Response, ApiError> {
    per_ip(&state, &ip)?;
    let visitor = visitor_of(&state, &headers, &session_id, false).await?;
    let limit = state.settings.hub.chat_max_message_chars;
    let mut errors = Vec::new();
    if body.content.trim().is_empty() || body.content.chars().count() > limit {
        errors.push(FieldError::new(
            "content",
            format!("must be 1 to {limit} characters"),
        ));
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
    if visitor.closed {
        return Err(session_closed());
    }
    state
        .rate_limits
        .enforce_recorded("chat_session", &visitor.session_id)?;
    let client_message_id = body
        .client_message_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let owner = Owner::Visitor {
        session_id: visitor.session_id.clone(),
        org_id: visitor.org_id.clone(),
    };
    let delivery = submit(
        &state,
        &owner,
        &session_id,
        body.content,
        &client_message_id,
        &headers,
    )
    .await?;
    let answer = match delivery {
        Delivery::Streamed(response) => return Ok(response),
        Delivery::Awaited(answer) => answer,
    };
    let citations: Vec<Citation> = serde_json::from_value(answer.citations).unwrap_or_default();
    Ok(Json(ChatAnswer {
        message_id: answer.message_id,
        in_reply_to: client_message_id,
        content: answer.content,
        grounded: !citations.is_empty(),
        citations,
    })
    .into_response())
}

fn session_closed() -> ApiError {
    ApiError::conflict(
        "SESSION_CLOSED",
        "this chat session is closed; start a new one",
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatMessage {
    pub message_id: String,
    /// `user` (the visitor) or `assistant`.
    pub role: String,
    pub content: String,
    pub citations: Vec<Citation>,
    /// Assistant answers: whether the knowledge base answered it (false: the fallback). Absent
    /// for the greeting and visitor messages.
    pub grounded: Option<bool>,
    /// Assistant answers: the id of the visitor message answered.
    pub in_reply_to: Option<String>,
    pub created_at: String,
}

impl From<ChatMessageRow> for ChatMessage {
    fn from(row: ChatMessageRow) -> Self {
        Self {
            citations: serde_json::from_str(&row.citations).unwrap_or_default(),
            grounded: row.grounded.map(|g| g != 0),
            message_id: row.id,
            role: row.role,
            content: row.content,
            in_reply_to: row.in_reply_to,
            created_at: rfc3339(row.created_at),
        }
    }
}

/// The session's transcript, newest first (the greeting is the oldest message).
#[utoipa::path(
    get,
    path = "/chat/sessions/{session_id}/messages",
    tag = "chat",
    security(("api_key" = [], "session_token" = [])),
    params(("session_id" = String, Path, description = "The chat session"), PageParams),
    responses(
        (status = 200, description = "One page of messages", body = Page<ChatMessage>),
        (status = 401, description = "Missing or invalid key or session token, or the token expired", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The page's origin may not use this key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat session for this token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn history(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<ChatMessage>>, ApiError> {
    let visitor = visitor_of(&state, &headers, &session_id, false).await?;
    let (limit, cursor) = params.resolve()?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .chat_messages_page(&visitor.session_id, cursor.as_ref(), limit)
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

#[derive(Debug, Serialize, ToSchema)]
pub struct ClosedSession {
    pub session_id: String,
    pub closed_at: String,
}

/// End the chat session; later messages are refused (feedback is still accepted).
#[utoipa::path(
    post,
    path = "/chat/sessions/{session_id}/close",
    tag = "chat",
    security(("api_key" = [], "session_token" = [])),
    params(("session_id" = String, Path, description = "The chat session")),
    responses(
        (status = 200, description = "Closed (also when it already was)", body = ClosedSession),
        (status = 401, description = "Missing or invalid key or session token, or the token expired", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The page's origin may not use this key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat session for this token", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn close(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ClosedSession>, ApiError> {
    let visitor = visitor_of(&state, &headers, &session_id, false).await?;
    let closed_at = state.hub.close(&visitor.session_id).await?;
    Ok(Json(ClosedSession {
        session_id: visitor.session_id,
        closed_at: rfc3339(closed_at),
    }))
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    /// As stored: 1 up, -1 down.
    pub fn score(self) -> i64 {
        match self {
            Self::Up => 1,
            Self::Down => -1,
        }
    }

    pub fn from_score(score: i64) -> Self {
        if score > 0 {
            Self::Up
        } else {
            Self::Down
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub rating: Rating,
    /// The assistant answer rated; absent rates the whole session.
    pub message_id: Option<String>,
    #[schema(max_length = 1000)]
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Feedback {
    pub feedback_id: String,
    pub session_id: String,
    pub message_id: Option<String>,
    pub rating: Rating,
    pub comment: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Rate an answer (or, without `message_id`, the whole session); rating the same target again
/// replaces the earlier rating.
#[utoipa::path(
    post,
    path = "/chat/sessions/{session_id}/feedback",
    tag = "chat",
    security(("session_token" = [])),
    params(("session_id" = String, Path, description = "The chat session")),
    request_body = FeedbackRequest,
    responses(
        (status = 201, description = "Recorded", body = Feedback),
        (status = 200, description = "Replaced an earlier rating of the same target", body = Feedback),
        (status = 401, description = "Missing or invalid session token, or the token expired", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat session, or no such answer in it", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn feedback(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    ip: ClientIp,
    headers: HeaderMap,
    Json(body): Json<FeedbackRequest>,
) -> Result<impl IntoResponse, ApiError> {
    per_ip(&state, &ip)?;
    let visitor = visitor_of(&state, &headers, &session_id, true).await?;
    let comment = body
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 1000) {
        return Err(ApiError::validation(vec![FieldError::new(
            "comment",
            "must be at most 1000 characters",
        )]));
    }
    if let Some(message_id) = &body.message_id {
        let role = state
            .db
            .chat_message_role(&visitor.session_id, message_id)
            .await?;
        match role.as_deref() {
            Some("assistant") => {}
            Some(_) => {
                return Err(ApiError::validation(vec![FieldError::new(
                    "message_id",
                    "only the assistant's answers can be rated",
                )]))
            }
            None => return Err(ApiError::not_found("message")),
        }
    }
    let (row, write) = state
        .db
        .upsert_chat_feedback(
            &visitor.session_id,
            &visitor.org_id,
            body.message_id.as_deref().unwrap_or(""),
            body.rating.score(),
            comment,
        )
        .await?;
    let status = match write {
        FeedbackWrite::Created => StatusCode::CREATED,
        FeedbackWrite::Replaced => StatusCode::OK,
    };
    Ok((
        status,
        Json(Feedback {
            feedback_id: row.id,
            session_id: visitor.session_id,
            message_id: Some(row.target).filter(|t| !t.is_empty()),
            rating: Rating::from_score(row.rating),
            comment: row.comment,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }),
    ))
}

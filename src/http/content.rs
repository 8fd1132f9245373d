//! `/content`: the user's library (their own generated content and the content of packs they may
//! use), practice events, export with pre-signed audio URLs, and `/users/me/history`.

use std::sync::Arc;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, FieldError};
use crate::http::authn::Authenticated;
use crate::http::json::Json;
use crate::http::object::from_object;
use crate::http::pagination::{Cursor, Page, PageParams};
use crate::state::AppState;
use crate::storage::content::ContentRow;
use crate::storage::library::{Completion, ContentQuery, PracticeRow};
use crate::storage::{now_ms, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_content))
        .routes(routes!(get_content, delete_content))
        .routes(routes!(play))
        .routes(routes!(complete))
        .routes(routes!(export))
        .routes(routes!(history))
}

const CONTENT_TYPES: &[&str] = &["affirmation", "guided_meditation", "ritual"];
const DEPTHS: &[&str] = &["shallow", "medium", "deep"];

/// Accounts of an organisation only; pending (unverified) non-members may not use the library.
pub(crate) fn library_user(principal: &Principal) -> Result<(), ApiError> {
    principal.require_verified_or_member()?;
    if principal.org_id.is_none() {
        return Err(ApiError::forbidden("platform accounts have no library"));
    }
    Ok(())
}

/// Repeated query keys (`tags=a&tags=b`, also `tags[]=a`), which the plain query extractor cannot take.
pub(crate) fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or_default())
        .map_err(|_| ApiError::bad_request("BAD_QUERY", "the query string is malformed"))
}

pub(crate) fn one_of(
    field: &str,
    value: Option<&str>,
    allowed: &[&str],
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value?;
    if allowed.contains(&value) {
        Some(value.to_string())
    } else {
        errors.push(FieldError::new(
            field,
            format!("must be one of {}", allowed.join(", ")),
        ));
        None
    }
}

/// Parsed list filters shared by `/content` and `/catalog/packs`.
pub(crate) struct ListQuery {
    pub pairs: Vec<(String, String)>,
}

impl ListQuery {
    pub fn one(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn many(&self, name: &str) -> Vec<String> {
        let bracketed = format!("{name}[]");
        self.pairs
            .iter()
            .filter(|(k, _)| *k == name || *k == bracketed)
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    pub fn page(&self) -> Result<(u32, Option<Cursor>), ApiError> {
        let limit = match self.one("limit") {
            None => None,
            Some(raw) => Some(raw.parse::<u32>().map_err(|_| {
                ApiError::validation(vec![FieldError::new("limit", "must be between 1 and 100")])
            })?),
        };
        PageParams {
            limit,
            cursor: self.one("cursor").map(str::to_string),
        }
        .resolve()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ContentParams {
    /// `affirmation`, `guided_meditation` or `ritual`.
    pub content_type: Option<String>,
    /// Items carrying every one of these tags (`tags=a&tags=b`).
    pub tags: Option<Vec<String>>,
    /// `shallow`, `medium` or `deep`.
    pub depth: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A content item in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContentSummary {
    pub id: String,
    pub content_type: String,
    pub title: String,
    pub depth: Option<String>,
    /// Seconds.
    pub duration: Option<i64>,
    pub tags: Vec<String>,
    /// `pending`, `ready`, `unavailable` or `failed`; absent for items without audio.
    pub audio_status: Option<String>,
    /// Whether the item is the caller's own (else it comes from a pack they may use).
    pub owned: bool,
    pub created_at: String,
    pub last_played_at: Option<String>,
    pub play_count: i64,
}

fn tags_of(row: &ContentRow) -> Vec<String> {
    serde_json::from_str(&row.tags).unwrap_or_default()
}

impl ContentSummary {
    fn of(row: &ContentRow, user_id: &str) -> Self {
        Self {
            id: row.id.clone(),
            content_type: row.content_type.clone(),
            title: row.title.clone(),
            depth: row.depth.clone(),
            duration: row.duration_minutes.map(|m| m * 60),
            tags: tags_of(row),
            audio_status: row.audio_status.clone(),
            owned: row.user_id.as_deref() == Some(user_id),
            created_at: rfc3339(row.created_at),
            last_played_at: row.last_played_at.map(rfc3339),
            play_count: row.play_count,
        }
    }
}

/// A content item with its text and audio.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContentDetail {
    #[serde(flatten)]
    pub summary: ContentSummary,
    pub content_text: String,
    /// A pre-signed, expiring URL of the audio, when it is ready.
    pub audio_url: Option<String>,
    pub audio_url_expires_at: Option<String>,
    /// What the item was made from (the guided session's answers).
    #[schema(value_type = Object)]
    pub context: Value,
}

/// A signed URL of a media key, valid for the configured TTL.
pub(crate) fn signed_url(state: &AppState, key: &str) -> (String, String) {
    let expires = now_ms() / 1000 + state.commerce.url_ttl.as_secs() as i64;
    let url = format!(
        "{}/api/v1/media/{key}?{}",
        state.settings.public_url(),
        state.commerce.signer.query(key, expires)
    );
    (url, rfc3339(expires * 1000))
}

fn detail(state: &AppState, row: &ContentRow, user_id: &str) -> ContentDetail {
    let audio = match (row.audio_status.as_deref(), row.audio_key.as_deref()) {
        (Some("ready"), Some(key)) => Some(signed_url(state, key)),
        _ => None,
    };
    let (audio_url, audio_url_expires_at) = audio.unzip();
    ContentDetail {
        summary: ContentSummary::of(row, user_id),
        content_text: row.body.clone(),
        audio_url,
        audio_url_expires_at,
        context: serde_json::json!({
            "intent": row.intent,
            "time_preference": row.time_preference,
            "source_session_id": row.source_session_id,
            "generated_by": row.generated_by,
        }),
    }
}

/// The item if the caller may read it; metadata comes from the cache when it can.
pub(crate) async fn readable(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<Arc<ContentRow>, ApiError> {
    library_user(principal)?;
    let user_id = principal.user_id.as_str();
    if let Some(row) = state.commerce.cache.content(id) {
        if row.user_id.as_deref() == Some(user_id) {
            return Ok(row);
        }
    }
    let row = state
        .db
        .visible_content(id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("content"))?;
    Ok(state.commerce.cache.put_content(row))
}

/// The caller's library, newest first.
#[utoipa::path(
    get,
    path = "/content",
    tag = "content",
    security(("bearer" = [])),
    params(ContentParams),
    responses(
        (status = 200, description = "One page of content", body = Page<ContentSummary>),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter, limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_content(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<ContentSummary>>, ApiError> {
    library_user(&principal)?;
    let query = ListQuery {
        pairs: query_pairs(raw.as_deref())?,
    };
    let mut errors = Vec::new();
    let content_type = one_of(
        "content_type",
        query.one("content_type"),
        CONTENT_TYPES,
        &mut errors,
    );
    let depth = one_of("depth", query.one("depth"), DEPTHS, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (limit, cursor) = query.page()?;
    let tags = query.many("tags");
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .list_content(
            &principal.user_id,
            &ContentQuery {
                content_type: content_type.as_deref(),
                depth: depth.as_deref(),
                tags: &tags,
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
        data: page
            .data
            .iter()
            .map(|r| ContentSummary::of(r, &principal.user_id))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One content item with its text and a pre-signed audio URL.
#[utoipa::path(
    get,
    path = "/content/{id}",
    tag = "content",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Content item id")),
    responses(
        (status = 200, description = "The item", body = ContentDetail),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such item, or not the caller's", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn get_content(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ContentDetail>, ApiError> {
    let row = readable(&state, &principal, &id).await?;
    Ok(Json(detail(&state, &row, &principal.user_id)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// Always `deleted`.
    pub status: String,
    pub content_item_id: String,
}

/// Deletes one of the caller's own items (pack content cannot be deleted by its users).
#[utoipa::path(
    delete,
    path = "/content/{id}",
    tag = "content",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Content item id")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such item of the caller's", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_content(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    library_user(&principal)?;
    if !state.db.delete_content(&id, &principal.user_id).await? {
        return Err(ApiError::not_found("content"));
    }
    state.commerce.cache.invalidate_content(&id);
    Ok(Json(Deleted {
        status: "deleted".into(),
        content_item_id: id,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayRequest {
    /// When playback started (RFC 3339); now if absent.
    pub started_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PracticeStatus {
    pub practice_event_id: String,
    /// `started` or `completed`.
    pub status: String,
}

fn instant(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
        .map_err(|_| {
            ApiError::validation(vec![FieldError::new(
                field,
                "must be an RFC 3339 instant, e.g. 2025-01-31T09:30:00Z",
            )])
        })
}

/// Starts a practice of an item: records a practice event and counts the play.
#[utoipa::path(
    post,
    path = "/content/{id}/play",
    tag = "content",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Content item id")),
    request_body = PlayRequest,
    responses(
        (status = 201, description = "Practice started", body = PracticeStatus),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such item the caller may use", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn play(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    let body: PlayRequest = from_object(body)?;
    let started_at = instant("started_at", body.started_at.as_deref())?.unwrap_or_else(now_ms);
    let row = readable(&state, &principal, &id).await?;
    let event_id = state
        .db
        .start_practice(&row.id, &principal.user_id, started_at)
        .await?;
    state.commerce.cache.invalidate_content(&row.id);
    Ok((
        StatusCode::CREATED,
        Json(PracticeStatus {
            practice_event_id: event_id,
            status: "started".into(),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub practice_event_id: String,
    /// When the practice ended (RFC 3339); now if absent.
    pub completed_at: Option<String>,
    /// Seconds practised; the time since the start if absent.
    #[schema(minimum = 0, maximum = 86400)]
    pub duration: Option<i64>,
}

/// Completes a practice started with `play`.
#[utoipa::path(
    post,
    path = "/content/{id}/complete",
    tag = "content",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Content item id")),
    request_body = CompleteRequest,
    responses(
        (status = 200, description = "Practice completed", body = PracticeStatus),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such item or practice event of the caller's", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "That practice was already completed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn complete(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Result<Json<PracticeStatus>, ApiError> {
    let body: CompleteRequest = from_object(body)?;
    let completed_at =
        instant("completed_at", body.completed_at.as_deref())?.unwrap_or_else(now_ms);
    if body.duration.is_some_and(|d| !(0..=86_400).contains(&d)) {
        return Err(ApiError::validation(vec![FieldError::new(
            "duration",
            "must be between 0 and 86400 seconds",
        )]));
    }
    let row = readable(&state, &principal, &id).await?;
    match state
        .db
        .complete_practice(
            &body.practice_event_id,
            &row.id,
            &principal.user_id,
            completed_at,
            body.duration,
        )
        .await?
    {
        Completion::Completed => Ok(Json(PracticeStatus {
            practice_event_id: body.practice_event_id,
            status: "completed".into(),
        })),
        Completion::AlreadyCompleted => Err(ApiError::conflict(
            "ALREADY_COMPLETED",
            "this practice was already completed",
        )),
        Completion::NotFound => Err(ApiError::not_found("practice event")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `text`, `audio` or `both` (default).
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    pub text: Option<String>,
    pub audio_url: Option<String>,
    pub audio_url_expires_at: Option<String>,
    /// `pending`, `ready`, `unavailable` or `failed`; absent for items without audio.
    pub audio_status: Option<String>,
    pub exported_at: String,
}

/// Exports an item's text, audio URL, or both.
#[utoipa::path(
    get,
    path = "/content/{id}/export",
    tag = "content",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Content item id"), ExportParams),
    responses(
        (status = 200, description = "The export", body = Export),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such item the caller may use", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Audio was asked for and is not available", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid format", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn export(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<ExportParams>,
) -> Result<Json<Export>, ApiError> {
    let mut errors = Vec::new();
    let format = one_of(
        "format",
        params.format.as_deref(),
        &["text", "audio", "both"],
        &mut errors,
    )
    .unwrap_or_else(|| "both".into());
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let row = readable(&state, &principal, &id).await?;
    let audio = match (row.audio_status.as_deref(), row.audio_key.as_deref()) {
        (Some("ready"), Some(key)) => Some(signed_url(&state, key)),
        _ => None,
    };
    if format == "audio" && audio.is_none() {
        return Err(ApiError::conflict(
            "AUDIO_UNAVAILABLE",
            format!(
                "this item has no audio ({})",
                row.audio_status.as_deref().unwrap_or("none")
            ),
        ));
    }
    let (audio_url, audio_url_expires_at) = if format == "text" {
        (None, None)
    } else {
        audio.unzip()
    };
    Ok(Json(Export {
        text: (format != "audio").then(|| row.body.clone()),
        audio_url,
        audio_url_expires_at,
        audio_status: row.audio_status.clone(),
        exported_at: rfc3339(now_ms()),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only practices of this content item.
    #[serde(alias = "ritual_id")]
    pub content_id: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PracticeEvent {
    pub id: String,
    pub content_id: String,
    pub content_title: String,
    pub content_type: String,
    pub started_at: String,
    pub completed_at: Option<String>,
    /// Seconds practised, once completed.
    pub duration: Option<i64>,
}

impl From<PracticeRow> for PracticeEvent {
    fn from(row: PracticeRow) -> Self {
        Self {
            id: row.id,
            content_id: row.content_id,
            content_title: row.content_title,
            content_type: row.content_type,
            started_at: rfc3339(row.started_at),
            completed_at: row.completed_at.map(rfc3339),
            duration: row.duration_seconds,
        }
    }
}

/// The caller's practice events, newest first.
#[utoipa::path(
    get,
    path = "/users/me/history",
    tag = "content",
    security(("bearer" = [])),
    params(HistoryParams),
    responses(
        (status = 200, description = "One page of practice events", body = Page<PracticeEvent>),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn history(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(params): Query<HistoryParams>,
) -> Result<Json<Page<PracticeEvent>>, ApiError> {
    library_user(&principal)?;
    let (limit, cursor) = PageParams {
        limit: params.limit,
        cursor: params.cursor.clone(),
    }
    .resolve()?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .practice_history(
            &principal.user_id,
            params.content_id.as_deref(),
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

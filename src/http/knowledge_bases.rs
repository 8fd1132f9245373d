//! An organisation's knowledge bases: documents (typed text or uploaded files) that answers are
//! grounded in. Creating or replacing one queues its ingestion; the entry shows its progress.

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::config::Settings;
use crate::error::{ApiError, FieldError};
use crate::http::access::{EMPLOYEES, OWNERS};
use crate::http::authn::OrgAuthenticated;
use crate::http::json::Json;
use crate::http::pagination::{Cursor, Page, PageParams};
use crate::knowledge::document_kind_name;
use crate::rag::extract::{detect_and_extract, ExtractError};
use crate::state::AppState;
use crate::storage::knowledge::{KbReplacement, KbRow, NewKb, RetryOutcome};
use crate::storage::rfc3339;

/// Room for multipart framing and the other form fields around the file itself.
const MULTIPART_OVERHEAD: usize = 64 * 1024;
const MAX_TITLE_CHARS: usize = 200;

/// The largest request body an upload route accepts.
pub fn upload_body_limit(settings: &Settings) -> usize {
    settings
        .knowledge
        .max_upload_bytes
        .saturating_add(MULTIPART_OVERHEAD)
}

/// Whether a request may carry a document (creation or replacement of an entry).
pub fn is_upload(method: &axum::http::Method, path: &str) -> bool {
    (method == axum::http::Method::POST || method == axum::http::Method::PUT)
        && path.starts_with("/api/v1/orgs/")
        && path.contains("/knowledge-bases")
}

pub fn router(settings: &Settings) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_kb, list_kbs))
        .routes(routes!(get_kb, replace_kb, delete_kb))
        .routes(routes!(retry_kb))
        .layer(DefaultBodyLimit::max(upload_body_limit(settings)))
}

/// Ingestion status of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KbStatus {
    Pending,
    Processing,
    Ready,
    Failed,
}

impl KbStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    fn parse(value: &str) -> Self {
        match value {
            "processing" => Self::Processing,
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            _ => Self::Pending,
        }
    }
}

/// A knowledge-base entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct KnowledgeBase {
    pub id: String,
    pub org_id: String,
    pub title: String,
    /// `text` (typed in) or `file` (uploaded).
    pub source: String,
    /// The uploaded file's name, as sent.
    pub filename: Option<String>,
    /// Detected from the content: `pdf`, `html`, `markdown` or `plain_text`.
    pub document_kind: Option<String>,
    pub byte_size: i64,
    /// Increases with every replacement of the content.
    pub version: i64,
    pub status: KbStatus,
    /// Percent done while pending or processing; 100 when ready.
    #[schema(minimum = 0, maximum = 100)]
    pub progress: i64,
    /// Why ingestion failed (status `failed`), or a note about a retried attempt.
    pub error: Option<String>,
    pub chunk_count: i64,
    /// The model the entry's vectors were made with (set once ready).
    pub embedding_model: Option<String>,
    pub embedding_dimension: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<KbRow> for KnowledgeBase {
    fn from(row: KbRow) -> Self {
        Self {
            status: KbStatus::parse(&row.status),
            id: row.id,
            org_id: row.org_id,
            title: row.title,
            source: row.source,
            filename: row.filename,
            document_kind: row.document_kind,
            byte_size: row.byte_size,
            version: row.version,
            progress: row.progress,
            error: row.error,
            chunk_count: row.chunk_count,
            embedding_model: row.embedding_model,
            embedding_dimension: row.embedding_dimension,
            created_by: row.created_by,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

/// A typed-in entry. Its format (plain text, Markdown or HTML) is detected from the text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextEntry {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(min_length = 1)]
    pub text: String,
}

/// A file upload (`multipart/form-data`): plain text, Markdown, HTML or PDF, recognised by
/// content, not by name.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads the parts directly
pub struct FileUpload {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// Defaults to the document's own title, else the file name.
    #[schema(max_length = 200)]
    pub title: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KbListParams {
    /// Only entries in this status.
    pub status: Option<KbStatus>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated document, ready to store.
struct Document {
    title: String,
    source: &'static str,
    filename: Option<String>,
    kind: &'static str,
    bytes: Vec<u8>,
}

fn too_large(size: usize, max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!("the document is {size} bytes; the limit is {max} bytes"),
    )
}

fn extract_problem(error: ExtractError) -> ApiError {
    let code = match &error {
        ExtractError::TooLarge { size, max } => return too_large(*size, *max),
        ExtractError::Unsupported(_) => "UNSUPPORTED_DOCUMENT",
        ExtractError::TooManyPages { .. } => "TOO_MANY_PAGES",
        ExtractError::Encrypted => "ENCRYPTED_DOCUMENT",
        ExtractError::NoText => "NO_TEXT",
        ExtractError::Malformed(_) => "MALFORMED_DOCUMENT",
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, error.to_string())
}

fn check_title(title: &str) -> Result<String, ApiError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::validation(vec![FieldError::new(
            "title",
            format!("must be 1 to {MAX_TITLE_CHARS} characters"),
        )]));
    }
    Ok(title.to_string())
}

/// Reads a JSON text entry or a multipart upload, checks size and type, and extracts the text
/// once so unreadable documents are refused now rather than failing later.
async fn read_document(state: &AppState, request: Request) -> Result<Document, ApiError> {
    let max = state.settings.knowledge.max_upload_bytes;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (title, source, filename, bytes) =
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(request, state)
                .await
                .map_err(|e| ApiError::bad_request("BAD_MULTIPART", e.body_text()))?;
            let (mut title, mut file, mut filename) = (None, None, None);
            while let Some(field) = multipart.next_field().await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large(max + 1, max)
                } else {
                    ApiError::bad_request("BAD_MULTIPART", e.body_text())
                }
            })? {
                match field.name() {
                    Some("file") => {
                        filename = field.file_name().map(str::to_string);
                        let data = field.bytes().await.map_err(|e| {
                            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                                too_large(max + 1, max)
                            } else {
                                ApiError::bad_request("BAD_MULTIPART", e.body_text())
                            }
                        })?;
                        file = Some(data.to_vec());
                    }
                    Some("title") => {
                        title =
                            Some(field.text().await.map_err(|e| {
                                ApiError::bad_request("BAD_MULTIPART", e.body_text())
                            })?);
                    }
                    _ => {}
                }
            }
            let file = file.ok_or_else(|| {
                ApiError::validation(vec![FieldError::new("file", "a `file` part is required")])
            })?;
            (title, "file", filename, file)
        } else {
            let Json(entry) = Json::<TextEntry>::from_request(request, state).await?;
            (Some(entry.title), "text", None, entry.text.into_bytes())
        };
    if bytes.len() > max {
        return Err(too_large(bytes.len(), max));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let field = if source == "file" { "file" } else { "text" };
        return Err(ApiError::validation(vec![FieldError::new(
            field,
            "must not be empty",
        )]));
    }
    let limits = state.settings.knowledge.extract_limits();
    let (bytes, extracted) = tokio::task::spawn_blocking(move || {
        let result = detect_and_extract(&bytes, &limits);
        (bytes, result)
    })
    .await
    .map_err(ApiError::internal)?;
    let document = extracted.map_err(extract_problem)?;
    let title = match title.filter(|t| !t.trim().is_empty()) {
        Some(title) => check_title(&title)?,
        None => {
            let fallback = document
                .title
                .clone()
                .or_else(|| filename.clone())
                .unwrap_or_else(|| "Untitled document".into());
            fallback.trim().chars().take(MAX_TITLE_CHARS).collect()
        }
    };
    Ok(Document {
        title,
        source,
        filename,
        kind: document_kind_name(document.kind),
        bytes,
    })
}

async fn require_org_exists(state: &AppState, org_id: &str) -> Result<(), ApiError> {
    state
        .db
        .org(org_id)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("organisation"))
}

fn authorise(
    principal: &Principal,
    org_id: &str,
    roles: &[crate::auth::Role],
) -> Result<(), ApiError> {
    principal.require_org_role(org_id, roles)
}

/// Add a knowledge-base entry (owner, staff): JSON `{title, text}` or a `multipart/form-data`
/// upload with a `file` part. Ingestion runs in the background; poll the entry for its status.
#[utoipa::path(
    post,
    path = "/orgs/{id}/knowledge-bases",
    tag = "knowledge-bases",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id")),
    request_body(content(
        (TextEntry = "application/json"),
        (FileUpload = "multipart/form-data"),
    )),
    responses(
        (status = 201, description = "Stored; ingestion queued", body = KnowledgeBase),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner or staff, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Document too large", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor multipart", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or an unsupported, malformed or textless document", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn create_kb(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<KnowledgeBase>), ApiError> {
    authorise(&principal, &id, EMPLOYEES)?;
    require_org_exists(&state, &id).await?;
    let document = read_document(&state, request).await?;
    let row = state
        .db
        .create_kb(NewKb {
            org_id: &id,
            title: &document.title,
            source: document.source,
            filename: document.filename.as_deref(),
            document_kind: document.kind,
            content: &document.bytes,
            created_by: Some(&principal.user_id),
        })
        .await?;
    state.knowledge.wake();
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// The organisation's knowledge-base entries, newest first, with their ingestion status
/// (owner, staff).
#[utoipa::path(
    get,
    path = "/orgs/{id}/knowledge-bases",
    tag = "knowledge-bases",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id"), KbListParams),
    responses(
        (status = 200, description = "One page of entries", body = Page<KnowledgeBase>),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner or staff, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_kbs(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Query(params): Query<KbListParams>,
) -> Result<Json<Page<KnowledgeBase>>, ApiError> {
    authorise(&principal, &id, EMPLOYEES)?;
    let (limit, cursor) = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .resolve()?;
    require_org_exists(&state, &id).await?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .list_kbs(
            &id,
            params.status.map(KbStatus::as_str),
            cursor.as_ref(),
            limit,
        )
        .await?;
    let page = Page::from_rows(rows, limit, |row| Cursor {
        created_at: row.created_at,
        id: row.id.clone(),
    });
    Ok(Json(Page {
        data: page.data.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn load_kb(state: &AppState, org_id: &str, kb_id: &str) -> Result<KbRow, ApiError> {
    state
        .db
        .kb(org_id, kb_id)
        .await?
        .ok_or_else(|| ApiError::not_found("knowledge-base entry"))
}

/// One knowledge-base entry with its ingestion status (owner, staff).
#[utoipa::path(
    get,
    path = "/orgs/{id}/knowledge-bases/{kb_id}",
    tag = "knowledge-bases",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Organisation id"),
        ("kb_id" = String, Path, description = "Knowledge-base entry id"),
    ),
    responses(
        (status = 200, description = "The entry", body = KnowledgeBase),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner or staff, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry in your organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn get_kb(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path((id, kb_id)): Path<(String, String)>,
) -> Result<Json<KnowledgeBase>, ApiError> {
    authorise(&principal, &id, EMPLOYEES)?;
    Ok(Json(load_kb(&state, &id, &kb_id).await?.into()))
}

/// Replace an entry's content (owner, staff): same bodies as creation. Its chunks and vectors are
/// dropped and it is ingested again.
#[utoipa::path(
    put,
    path = "/orgs/{id}/knowledge-bases/{kb_id}",
    tag = "knowledge-bases",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Organisation id"),
        ("kb_id" = String, Path, description = "Knowledge-base entry id"),
    ),
    request_body(content(
        (TextEntry = "application/json"),
        (FileUpload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "Replaced; ingestion queued", body = KnowledgeBase),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner or staff, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry in your organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Document too large", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor multipart", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or an unsupported, malformed or textless document", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn replace_kb(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path((id, kb_id)): Path<(String, String)>,
    request: Request,
) -> Result<Json<KnowledgeBase>, ApiError> {
    authorise(&principal, &id, EMPLOYEES)?;
    load_kb(&state, &id, &kb_id).await?;
    let document = read_document(&state, request).await?;
    let row = state
        .db
        .replace_kb(
            &id,
            &kb_id,
            KbReplacement {
                title: &document.title,
                source: document.source,
                filename: document.filename.as_deref(),
                document_kind: document.kind,
                content: &document.bytes,
            },
        )
        .await?
        .ok_or_else(|| ApiError::not_found("knowledge-base entry"))?;
    state.knowledge.wake();
    Ok(Json(row.into()))
}

/// Delete an entry with its chunks and vectors (owner).
#[utoipa::path(
    delete,
    path = "/orgs/{id}/knowledge-bases/{kb_id}",
    tag = "knowledge-bases",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Organisation id"),
        ("kb_id" = String, Path, description = "Knowledge-base entry id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry in your organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_kb(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path((id, kb_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require_org(&id)?;
    // Staff may see entries but not delete them; tell them so only for entries they can see.
    if principal.require_org_role(&id, OWNERS).is_err() {
        authorise(&principal, &id, EMPLOYEES)?;
        load_kb(&state, &id, &kb_id).await?;
        return Err(ApiError::forbidden(
            "only an owner may delete knowledge-base entries",
        ));
    }
    if state.db.delete_kb(&id, &kb_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("knowledge-base entry"))
    }
}

/// Queue a failed entry's ingestion again (owner, staff).
#[utoipa::path(
    post,
    path = "/orgs/{id}/knowledge-bases/{kb_id}/retry",
    tag = "knowledge-bases",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Organisation id"),
        ("kb_id" = String, Path, description = "Knowledge-base entry id"),
    ),
    responses(
        (status = 202, description = "Ingestion queued again", body = KnowledgeBase),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner or staff, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry in your organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The entry has not failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn retry_kb(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path((id, kb_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<KnowledgeBase>), ApiError> {
    authorise(&principal, &id, EMPLOYEES)?;
    match state.db.retry_kb(&id, &kb_id).await? {
        RetryOutcome::Queued(row) => {
            state.knowledge.wake();
            Ok((StatusCode::ACCEPTED, Json(row.into())))
        }
        RetryOutcome::NotFound => Err(ApiError::not_found("knowledge-base entry")),
        RetryOutcome::NotFailed(row) => Err(ApiError::conflict(
            "NOT_FAILED",
            format!(
                "the entry is {}; only a failed entry can be retried",
                row.status
            ),
        )),
    }
}

//! `/orgs`: an organisation's profile, its bot configuration and its API keys; and, for the
//! platform superuser, the list of organisations, their creation and their status.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{mask_email, secrets};
use crate::bot_config::BotConfig;
use crate::error::{ApiError, FieldError};
use crate::http::access::{EMPLOYEES, OWNERS};
use crate::http::auth::{bounded_text, normalise_email};
use crate::http::authn::{KeyKind, OrgAuthenticated};
use crate::http::employees::{invite, InvitationResponse};
use crate::http::json::Json;
use crate::http::pagination::{Cursor, Page, PageParams};
use crate::state::AppState;
use crate::storage::api_keys::ApiKeyRow;
use crate::storage::audit::AuditEvent;
use crate::storage::orgs::{NewOrg, OrgRow, OrgUpdate};
use crate::storage::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org, update_org, set_org_status))
        .routes(routes!(get_config, put_config))
        .routes(routes!(list_credentials, rotate_credential))
}

/// An organisation's lifecycle: `pending` until its owner verifies their email, `active`, or
/// `suspended` by the platform (its keys and sessions stop working at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrgStatus {
    Pending,
    Active,
    Suspended,
}

impl OrgStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    fn parse(value: &str) -> Self {
        match value {
            "active" => Self::Active,
            "suspended" => Self::Suspended,
            _ => Self::Pending,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgResponse {
    pub id: String,
    pub name: String,
    pub industry: Option<String>,
    pub website: Option<String>,
    pub status: OrgStatus,
    pub created_at: String,
    pub updated_at: String,
}

impl From<OrgRow> for OrgResponse {
    fn from(org: OrgRow) -> Self {
        Self {
            status: OrgStatus::parse(&org.status),
            id: org.id,
            name: org.name,
            industry: org.industry,
            website: org.website,
            created_at: rfc3339(org.created_at),
            updated_at: rfc3339(org.updated_at),
        }
    }
}

/// The organisation's profile; replaces all three fields (omitted optional ones are cleared).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub industry: Option<String>,
    #[serde(default)]
    #[schema(max_length = 300)]
    pub website: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub industry: Option<String>,
    #[serde(default)]
    #[schema(max_length = 300)]
    pub website: Option<String>,
    /// Who is invited to own the new organisation.
    #[serde(alias = "ownerEmail")]
    pub owner_email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOrg {
    pub org: OrgResponse,
    /// The owner's invitation (emailed); the organisation becomes active once it is accepted.
    pub invitation: InvitationResponse,
}

/// The statuses the platform can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SettableOrgStatus {
    Active,
    Suspended,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgStatusRequest {
    pub status: SettableOrgStatus,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgListParams {
    /// Only organisations in this status.
    pub status: Option<OrgStatus>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn org_page(rows: Vec<OrgRow>, limit: u32) -> Page<OrgResponse> {
    let page = Page::from_rows(rows, limit, |o| Cursor {
        created_at: o.created_at,
        id: o.id.clone(),
    });
    Page {
        data: page.data.into_iter().map(OrgResponse::from).collect(),
        next_cursor: page.next_cursor,
    }
}

async fn load_org(state: &AppState, id: &str) -> Result<OrgRow, ApiError> {
    state
        .db
        .org(id)
        .await?
        .ok_or_else(|| ApiError::not_found("organisation"))
}

fn org_fields(
    name: &str,
    industry: Option<&String>,
    website: Option<&String>,
    errors: &mut Vec<FieldError>,
) -> (String, Option<String>, Option<String>) {
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    let industry = bounded_text("industry", industry, 100)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let website = bounded_text("website", website, 300)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    (name, industry, website)
}

/// List organisations (superuser).
#[utoipa::path(
    get,
    path = "/orgs",
    tag = "superuser",
    security(("bearer" = [])),
    params(OrgListParams),
    responses(
        (status = 200, description = "One page of organisations, newest first", body = Page<OrgResponse>),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a superuser", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_orgs(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Query(params): Query<OrgListParams>,
) -> Result<Json<Page<OrgResponse>>, ApiError> {
    principal.require_superuser()?;
    let (limit, cursor) = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .resolve()?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .list_orgs(params.status.map(OrgStatus::as_str), cursor.as_ref(), limit)
        .await?;
    Ok(Json(org_page(rows, limit)))
}

/// Create an organisation and invite its owner (superuser).
///
/// The organisation stays `pending` until the invited owner accepts.
#[utoipa::path(
    post,
    path = "/orgs",
    tag = "superuser",
    security(("bearer" = [])),
    request_body = CreateOrgRequest,
    responses(
        (status = 201, description = "Organisation created, owner invited", body = CreatedOrg),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a superuser", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The owner email already has an account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn create_org(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Json(body): Json<CreateOrgRequest>,
) -> Result<(StatusCode, Json<CreatedOrg>), ApiError> {
    principal.require_superuser()?;
    let mut errors = Vec::new();
    let (name, industry, website) = org_fields(
        &body.name,
        body.industry.as_ref(),
        body.website.as_ref(),
        &mut errors,
    );
    let owner_email = normalise_email(&body.owner_email)
        .map_err(|e| errors.push(FieldError::new("owner_email", e.message)))
        .ok();
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let owner_email = owner_email.unwrap_or_default();
    if state.db.user_by_email(&owner_email).await?.is_some() {
        return Err(ApiError::conflict(
            "EMAIL_TAKEN",
            "an account with this email already exists",
        ));
    }
    let org = state
        .db
        .insert_org(
            &state.db.pool,
            NewOrg {
                name: &name,
                industry: industry.as_deref(),
                website: website.as_deref(),
                status: "pending",
            },
        )
        .await?;
    state
        .db
        .audit(AuditEvent {
            org_id: Some(&org.id),
            actor_id: Some(&principal.user_id),
            action: "org.created",
            resource_type: "org",
            resource_id: Some(&org.id),
            metadata: json!({"owner_email": mask_email(&owner_email)}),
        })
        .await?;
    let invitation = invite(&state, &principal, &org, &owner_email, "owner").await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOrg {
            org: org.into(),
            invitation,
        }),
    ))
}

/// An organisation's profile (its owners and staff, or the superuser).
#[utoipa::path(
    get,
    path = "/orgs/{id}",
    tag = "orgs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "The organisation", body = OrgResponse),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn get_org(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
) -> Result<Json<OrgResponse>, ApiError> {
    principal.require_org_role(&id, EMPLOYEES)?;
    Ok(Json(load_org(&state, &id).await?.into()))
}

/// Update an organisation's profile (owner).
#[utoipa::path(
    put,
    path = "/orgs/{id}",
    tag = "orgs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id")),
    request_body = UpdateOrgRequest,
    responses(
        (status = 200, description = "The updated organisation", body = OrgResponse),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn update_org(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Json(body): Json<UpdateOrgRequest>,
) -> Result<Json<OrgResponse>, ApiError> {
    principal.require_org_role(&id, OWNERS)?;
    let mut errors = Vec::new();
    let (name, industry, website) = org_fields(
        &body.name,
        body.industry.as_ref(),
        body.website.as_ref(),
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let org = state
        .db
        .update_org(
            &id,
            OrgUpdate {
                name: &name,
                industry: industry.as_deref(),
                website: website.as_deref(),
            },
        )
        .await?
        .ok_or_else(|| ApiError::not_found("organisation"))?;
    state
        .db
        .audit(AuditEvent {
            org_id: Some(&id),
            actor_id: Some(&principal.user_id),
            action: "org.updated",
            resource_type: "org",
            resource_id: Some(&id),
            metadata: json!({}),
        })
        .await?;
    Ok(Json(org.into()))
}

/// Activate or suspend an organisation (superuser).
///
/// Suspension takes effect at once: the organisation's API keys and its accounts' tokens are
/// refused from the next request on.
#[utoipa::path(
    patch,
    path = "/orgs/{id}",
    tag = "superuser",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id")),
    request_body = OrgStatusRequest,
    responses(
        (status = 200, description = "The updated organisation", body = OrgResponse),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a superuser", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid status", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn set_org_status(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Json(body): Json<OrgStatusRequest>,
) -> Result<Json<OrgResponse>, ApiError> {
    // Tenancy first: another organisation's owner learns nothing, not even that this route is
    // the superuser's.
    principal.require_org(&id)?;
    principal.require_superuser()?;
    let before = load_org(&state, &id).await?;
    let status = match body.status {
        SettableOrgStatus::Active => "active",
        SettableOrgStatus::Suspended => "suspended",
    };
    state.db.set_org_status(&id, status).await?;
    if before.status != status {
        state
            .db
            .audit(AuditEvent {
                org_id: Some(&id),
                actor_id: Some(&principal.user_id),
                action: "org.status_changed",
                resource_type: "org",
                resource_id: Some(&id),
                metadata: json!({"from": before.status, "to": status}),
            })
            .await?;
        tracing::info!(org_id = %id, from = %before.status, to = status, "organisation status changed");
    }
    Ok(Json(load_org(&state, &id).await?.into()))
}

/// How the organisation's bot behaves (owners and staff).
#[utoipa::path(
    get,
    path = "/orgs/{id}/config",
    tag = "orgs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "The bot configuration (defaults where never set)", body = BotConfig),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn get_config(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
) -> Result<Json<BotConfig>, ApiError> {
    principal.require_org_role(&id, EMPLOYEES)?;
    let org = load_org(&state, &id).await?;
    Ok(Json(BotConfig::from_stored(&org.bot_config)))
}

/// Replace the bot configuration (owner); omitted fields take their defaults.
#[utoipa::path(
    put,
    path = "/orgs/{id}/config",
    tag = "orgs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id")),
    request_body = BotConfig,
    responses(
        (status = 200, description = "The stored configuration (origins normalised)", body = BotConfig),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn put_config(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Json(body): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<BotConfig>, ApiError> {
    principal.require_org_role(&id, OWNERS)?;
    crate::http::object::nested_object(&body, "rag")?;
    let body: BotConfig = crate::http::object::from_object(body)?;
    let before = BotConfig::from_stored(&load_org(&state, &id).await?.bot_config);
    let config = body.validate().map_err(ApiError::validation)?;
    let stored = serde_json::to_string(&config).map_err(ApiError::internal)?;
    if !state.db.set_bot_config(&id, &stored).await? {
        return Err(ApiError::not_found("organisation"));
    }
    state
        .db
        .audit(AuditEvent {
            org_id: Some(&id),
            actor_id: Some(&principal.user_id),
            action: "org.config_updated",
            resource_type: "org",
            resource_id: Some(&id),
            metadata: json!({"changed": changed_fields(&before, &config)}),
        })
        .await?;
    Ok(Json(config))
}

/// The top-level configuration fields that differ (names only: prompts may be confidential).
fn changed_fields(before: &BotConfig, after: &BotConfig) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    b.iter()
        .filter(|(k, v)| a.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Which kind of API key: `publishable` (`pk_…`: the chat widget and member sign-up, locked to the
/// allowed origins) or `secret` (`sk_…`: server-to-server, full organisation scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyKind {
    Publishable,
    Secret,
}

impl From<ApiKeyKind> for KeyKind {
    fn from(kind: ApiKeyKind) -> Self {
        match kind {
            ApiKeyKind::Publishable => KeyKind::Publishable,
            ApiKeyKind::Secret => KeyKind::Secret,
        }
    }
}

/// `active`, or `rotating` for a replaced key still valid until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyStatus {
    Active,
    Rotating,
}

/// An API key as shown after creation: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyInfo {
    pub id: String,
    pub kind: ApiKeyKind,
    /// The key's first characters, e.g. `pk_a1B2c`.
    pub prefix: String,
    /// The key's last four characters.
    pub last4: String,
    pub status: ApiKeyStatus,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// Set on a rotated-out key: it is refused after this instant.
    pub expires_at: Option<String>,
}

impl From<ApiKeyRow> for ApiKeyInfo {
    fn from(key: ApiKeyRow) -> Self {
        Self {
            kind: if key.kind == "secret" {
                ApiKeyKind::Secret
            } else {
                ApiKeyKind::Publishable
            },
            status: if key.expires_at.is_some() {
                ApiKeyStatus::Rotating
            } else {
                ApiKeyStatus::Active
            },
            id: key.id,
            prefix: key.prefix,
            last4: key.last4,
            created_at: rfc3339(key.created_at),
            last_used_at: key.last_used_at.map(rfc3339),
            expires_at: key.expires_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialList {
    /// Live keys, newest first: at most one active key per kind, plus rotated-out keys still in
    /// their grace period.
    pub keys: Vec<ApiKeyInfo>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    pub kind: ApiKeyKind,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewApiKey {
    /// The key itself. Shown this once: store it now.
    pub key: String,
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// Until when the previous key of this kind keeps working, if there was one.
    pub previous_key_expires_at: Option<String>,
}

/// Generates a key: the kind's prefix and 32 random base62 characters (no `.`, URL-safe).
pub fn generate_key(kind: KeyKind) -> String {
    let prefix = match kind {
        KeyKind::Publishable => "pk_",
        KeyKind::Secret => "sk_",
    };
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
    )
}

/// The organisation's API keys (owner): prefixes and dates, never the keys.
#[utoipa::path(
    get,
    path = "/orgs/{id}/credentials",
    tag = "orgs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "The live keys", body = CredentialList),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_credentials(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
) -> Result<Json<CredentialList>, ApiError> {
    principal.require_org_role(&id, OWNERS)?;
    load_org(&state, &id).await?;
    let keys = state.db.api_keys_of_org(&id).await?;
    Ok(Json(CredentialList {
        keys: keys.into_iter().map(ApiKeyInfo::from).collect(),
    }))
}

/// Issue a new key of a kind (owner), replacing the current one.
///
/// The new key is returned once. The key it replaces keeps working for the configured grace
/// period (`RAPPORT_API_KEY_GRACE_SECS`), so clients can switch without downtime, then is refused.
#[utoipa::path(
    post,
    path = "/orgs/{id}/credentials",
    tag = "orgs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id")),
    request_body = RotateRequest,
    responses(
        (status = 201, description = "The new key, shown once", body = NewApiKey),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid kind", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn rotate_credential(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Json(body): Json<RotateRequest>,
) -> Result<(StatusCode, Json<NewApiKey>), ApiError> {
    principal.require_org_role(&id, OWNERS)?;
    load_org(&state, &id).await?;
    let kind = KeyKind::from(body.kind);
    let raw = generate_key(kind);
    let prefix: String = raw.chars().take(8).collect();
    let last4: String = raw[raw.len() - 4..].to_string();
    let grace_ms = i64::try_from(state.settings.api_key_grace.as_millis()).unwrap_or(i64::MAX / 4);
    let key = state
        .db
        .rotate_api_key(
            &id,
            kind.as_str(),
            &prefix,
            &last4,
            &secrets::digest(&raw),
            grace_ms,
        )
        .await?;
    let previous_key_expires_at = state
        .db
        .api_keys_of_org(&id)
        .await?
        .into_iter()
        .filter(|k| k.kind == kind.as_str() && k.id != key.id)
        .filter_map(|k| k.expires_at)
        .max();
    state
        .db
        .audit(AuditEvent {
            org_id: Some(&id),
            actor_id: Some(&principal.user_id),
            action: "api_key.rotated",
            resource_type: "api_key",
            resource_id: Some(&key.id),
            metadata: json!({
                "kind": kind.as_str(),
                "prefix": prefix,
                "last4": last4,
                "grace_secs": state.settings.api_key_grace.as_secs(),
                "previous_expires_at": previous_key_expires_at,
            }),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewApiKey {
            key: raw,
            info: key.into(),
            previous_key_expires_at: previous_key_expires_at.map(rfc3339),
        }),
    ))
}

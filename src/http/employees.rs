//! An organisation's employees (owners and staff) and their invitations, including the public
//! invitation page and acceptance under `/auth/invitations`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{mask_email, password, secrets, Principal};
use crate::error::{ApiError, FieldError};
use crate::http::access::{EMPLOYEES, OWNERS};
use crate::http::auth::{bounded_text, issue_tokens, normalise_email, TokenResponse};
use crate::http::authn::OrgAuthenticated;
use crate::http::json::Json;
use crate::http::pagination::{Cursor, Page, PageParams};
use crate::state::AppState;
use crate::storage::audit::AuditEvent;
use crate::storage::employees::OwnerGuarded;
use crate::storage::invitations::{Acceptance, InvitationStatus, NewInvitation};
use crate::storage::one_time_tokens::OneTimeToken;
use crate::storage::orgs::OrgRow;
use crate::storage::outbox::OutgoingEmail;
use crate::storage::users::UserRow;
use crate::storage::{now_ms, rfc3339};

pub const INVITATION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    let public = OpenApiRouter::new()
        .routes(routes!(invitation_details))
        .routes(routes!(accept_invitation))
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::http::rate_limit::per_ip_auth,
        ));
    OpenApiRouter::new()
        .merge(public)
        .routes(routes!(create_invitation, list_invitations))
        .routes(routes!(cancel_invitation))
        .routes(routes!(resend_invitation))
        .routes(routes!(list_employees))
        .routes(routes!(get_employee, update_employee, remove_employee))
}

/// An employee's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum EmployeeRole {
    Owner,
    #[default]
    Staff,
}

impl EmployeeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Staff => "staff",
        }
    }

    fn parse(value: &str) -> Self {
        if value == "owner" {
            Self::Owner
        } else {
            Self::Staff
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvitationState {
    Pending,
    Accepted,
    Expired,
    Cancelled,
}

impl From<InvitationStatus> for InvitationState {
    fn from(status: InvitationStatus) -> Self {
        match status {
            InvitationStatus::Pending => Self::Pending,
            InvitationStatus::Accepted => Self::Accepted,
            InvitationStatus::Expired => Self::Expired,
            InvitationStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<InvitationState> for InvitationStatus {
    fn from(state: InvitationState) -> Self {
        match state {
            InvitationState::Pending => Self::Pending,
            InvitationState::Accepted => Self::Accepted,
            InvitationState::Expired => Self::Expired,
            InvitationState::Cancelled => Self::Cancelled,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationResponse {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub role: EmployeeRole,
    pub status: InvitationState,
    /// The account that sent it.
    pub invited_by: Option<String>,
    pub expires_at: String,
    pub accepted_at: Option<String>,
    pub cancelled_at: Option<String>,
    pub created_at: String,
}

impl From<OneTimeToken> for InvitationResponse {
    fn from(token: OneTimeToken) -> Self {
        Self {
            status: InvitationStatus::of(&token, now_ms()).into(),
            role: EmployeeRole::parse(token.role.as_deref().unwrap_or_default()),
            id: token.id,
            org_id: token.org_id.unwrap_or_default(),
            email: token.email.unwrap_or_default(),
            invited_by: token.created_by,
            expires_at: rfc3339(token.expires_at),
            accepted_at: token.used_at.map(rfc3339),
            cancelled_at: token.cancelled_at.map(rfc3339),
            created_at: rfc3339(token.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    pub email: String,
    /// `staff` unless given.
    #[serde(default)]
    pub role: EmployeeRole,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvitationListParams {
    /// Only invitations in this status.
    pub status: Option<InvitationState>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// What the invitation page shows before the invitee sets a password.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationDetails {
    pub org: InvitingOrg,
    pub email: String,
    pub role: EmployeeRole,
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitingOrg {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    pub password: String,
    #[serde(default, alias = "displayName")]
    #[schema(max_length = 100)]
    pub display_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmployeeResponse {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: EmployeeRole,
    /// `pending`, `active` or `disabled`.
    pub status: String,
    pub email_verified: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<UserRow> for EmployeeResponse {
    fn from(user: UserRow) -> Self {
        Self {
            role: EmployeeRole::parse(&user.role),
            email_verified: user.email_verified_at.is_some(),
            id: user.id,
            org_id: user.org_id.unwrap_or_default(),
            email: user.email,
            display_name: user.display_name,
            status: user.status,
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChangeRequest {
    pub role: EmployeeRole,
}

fn invalid_token() -> ApiError {
    ApiError::bad_request(
        "INVALID_TOKEN",
        "this invitation is unknown, used, cancelled or expired",
    )
}

fn last_owner() -> ApiError {
    ApiError::conflict(
        "LAST_OWNER",
        "an organisation must keep at least one owner; promote another employee first",
    )
}

async fn send_invitation_email(
    state: &AppState,
    org: &OrgRow,
    email: &str,
    role: &str,
    token: &str,
) -> Result<(), ApiError> {
    let link = format!(
        "{}/api/v1/auth/invitations/verify/{token}",
        state.settings.public_url()
    );
    state
        .db
        .enqueue_email(OutgoingEmail {
            to: email,
            subject: &format!("You are invited to join {} on Rapport", org.name),
            body: &format!(
                "You have been invited to join {} on Rapport as {role}.\n\n\
                 Accept within 7 days by opening this link:\n{link}\n\n\
                 Invitation token: {token}\n",
                org.name
            ),
            kind: "invitation",
        })
        .await?;
    Ok(())
}

/// Creates and emails an invitation to `org`; used by employees' invitations and by the
/// superuser's organisation creation.
pub async fn invite(
    state: &AppState,
    principal: &Principal,
    org: &OrgRow,
    email: &str,
    role: &str,
) -> Result<InvitationResponse, ApiError> {
    if state.db.user_by_email(email).await?.is_some() {
        return Err(ApiError::conflict(
            "EMAIL_TAKEN",
            "an account with this email already exists",
        ));
    }
    if state.db.has_pending_invitation(&org.id, email).await? {
        return Err(ApiError::conflict(
            "INVITATION_PENDING",
            "this email already has a pending invitation; resend it instead",
        ));
    }
    let token = secrets::generate();
    let invitation = state
        .db
        .create_invitation(NewInvitation {
            org_id: &org.id,
            email,
            role,
            created_by: Some(&principal.user_id),
            token_digest: &secrets::digest(&token),
            ttl_ms: INVITATION_TTL_MS,
        })
        .await?;
    send_invitation_email(state, org, email, role, &token).await?;
    state
        .db
        .audit(AuditEvent {
            org_id: Some(&org.id),
            actor_id: Some(&principal.user_id),
            action: "invitation.created",
            resource_type: "invitation",
            resource_id: Some(&invitation.id),
            metadata: json!({"email": mask_email(email), "role": role}),
        })
        .await?;
    Ok(invitation.into())
}

async fn load_org(state: &AppState, id: &str) -> Result<OrgRow, ApiError> {
    state
        .db
        .org(id)
        .await?
        .ok_or_else(|| ApiError::not_found("organisation"))
}

/// Invite someone to become an employee (owner); they receive a link valid for 7 days.
#[utoipa::path(
    post,
    path = "/orgs/{id}/employee/invitations",
    tag = "employees",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id")),
    request_body = InvitationRequest,
    responses(
        (status = 201, description = "Invitation created and emailed", body = InvitationResponse),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email has an account or a pending invitation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn create_invitation(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Json(body): Json<InvitationRequest>,
) -> Result<(StatusCode, Json<InvitationResponse>), ApiError> {
    principal.require_org_role(&id, OWNERS)?;
    let email = normalise_email(&body.email).map_err(|e| ApiError::validation(vec![e]))?;
    let org = load_org(&state, &id).await?;
    let invitation = invite(&state, &principal, &org, &email, body.role.as_str()).await?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

/// The organisation's invitations, newest first (owner).
#[utoipa::path(
    get,
    path = "/orgs/{id}/employee/invitations",
    tag = "employees",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id"), InvitationListParams),
    responses(
        (status = 200, description = "One page of invitations", body = Page<InvitationResponse>),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_invitations(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Query(params): Query<InvitationListParams>,
) -> Result<Json<Page<InvitationResponse>>, ApiError> {
    principal.require_org_role(&id, OWNERS)?;
    let (limit, cursor) = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .resolve()?;
    load_org(&state, &id).await?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .list_invitations(&id, params.status.map(Into::into), cursor.as_ref(), limit)
        .await?;
    let page = Page::from_rows(rows, limit, |t| Cursor {
        created_at: t.created_at,
        id: t.id.clone(),
    });
    Ok(Json(Page {
        data: page.data.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Cancel an invitation that has not been accepted (owner); its link stops working.
#[utoipa::path(
    delete,
    path = "/orgs/{id}/employee/invitations/{invitation_id}",
    tag = "employees",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Organisation id"),
        ("invitation_id" = String, Path, description = "Invitation id"),
    ),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation in your organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already accepted or cancelled", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn cancel_invitation(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path((id, invitation_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require_org_role(&id, OWNERS)?;
    let existing = state
        .db
        .invitation(&id, &invitation_id)
        .await?
        .ok_or_else(|| ApiError::not_found("invitation"))?;
    let cancelled = state.db.cancel_invitation(&id, &invitation_id).await?;
    if cancelled.is_none() {
        return Err(ApiError::conflict(
            "INVITATION_CLOSED",
            format!(
                "this invitation is already {}",
                InvitationStatus::of(&existing, now_ms()).as_str()
            ),
        ));
    }
    state
        .db
        .audit(AuditEvent {
            org_id: Some(&id),
            actor_id: Some(&principal.user_id),
            action: "invitation.cancelled",
            resource_type: "invitation",
            resource_id: Some(&invitation_id),
            metadata: json!({"email": mask_email(existing.email.as_deref().unwrap_or_default())}),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send an invitation again with a new link (owner); the previous link stops working and the
/// 7 days start over.
#[utoipa::path(
    post,
    path = "/orgs/{id}/employee/invitations/{invitation_id}/resend",
    tag = "employees",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Organisation id"),
        ("invitation_id" = String, Path, description = "Invitation id"),
    ),
    responses(
        (status = 200, description = "Resent", body = InvitationResponse),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation in your organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already accepted or cancelled", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn resend_invitation(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path((id, invitation_id)): Path<(String, String)>,
) -> Result<Json<InvitationResponse>, ApiError> {
    principal.require_org_role(&id, OWNERS)?;
    let existing = state
        .db
        .invitation(&id, &invitation_id)
        .await?
        .ok_or_else(|| ApiError::not_found("invitation"))?;
    let org = load_org(&state, &id).await?;
    let token = secrets::generate();
    let Some(reissued) = state
        .db
        .reissue_invitation(
            &id,
            &invitation_id,
            &secrets::digest(&token),
            INVITATION_TTL_MS,
        )
        .await?
    else {
        return Err(ApiError::conflict(
            "INVITATION_CLOSED",
            format!(
                "this invitation is already {}",
                InvitationStatus::of(&existing, now_ms()).as_str()
            ),
        ));
    };
    let email = reissued.email.clone().unwrap_or_default();
    let role = reissued.role.clone().unwrap_or_default();
    send_invitation_email(&state, &org, &email, &role, &token).await?;
    state
        .db
        .audit(AuditEvent {
            org_id: Some(&id),
            actor_id: Some(&principal.user_id),
            action: "invitation.resent",
            resource_type: "invitation",
            resource_id: Some(&invitation_id),
            metadata: json!({"email": mask_email(&email)}),
        })
        .await?;
    Ok(Json(reissued.into()))
}

/// What an invitation link is for (public): the organisation, the invited email and role.
#[utoipa::path(
    get,
    path = "/auth/invitations/verify/{token}",
    tag = "auth",
    params(("token" = String, Path, description = "The token from the invitation email")),
    responses(
        (status = 200, description = "The invitation can be accepted", body = InvitationDetails),
        (status = 400, description = "Unknown, used, cancelled or expired token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn invitation_details(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<InvitationDetails>, ApiError> {
    let (invitation, org) = state
        .db
        .invitation_by_token(&secrets::digest(&token))
        .await?
        .ok_or_else(invalid_token)?;
    Ok(Json(InvitationDetails {
        org: InvitingOrg {
            id: org.id,
            name: org.name,
        },
        email: invitation.email.unwrap_or_default(),
        role: EmployeeRole::parse(invitation.role.as_deref().unwrap_or_default()),
        expires_at: rfc3339(invitation.expires_at),
    }))
}

/// Accept an invitation (public): creates the employee's account, already verified, and signs
/// it in.
#[utoipa::path(
    post,
    path = "/auth/invitations/{token}/accept",
    tag = "auth",
    params(("token" = String, Path, description = "The token from the invitation email")),
    request_body = AcceptRequest,
    responses(
        (status = 201, description = "Account created and signed in", body = TokenResponse),
        (status = 400, description = "Malformed request, or unknown, used, cancelled or expired token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The organisation is suspended", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "An account with this email already exists", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn accept_invitation(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Json(body): Json<AcceptRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    let digest = secrets::digest(&token);
    let (invitation, org) = state
        .db
        .invitation_by_token(&digest)
        .await?
        .ok_or_else(invalid_token)?;
    let email = invitation.email.clone().unwrap_or_default();
    let mut errors = Vec::new();
    if let Some(reason) = password::policy_violation(&body.password, &email) {
        errors.push(FieldError::new("password", reason));
    }
    let display_name = bounded_text("display_name", body.display_name.as_ref(), 100)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if org.status == "suspended" {
        return Err(ApiError::org_suspended());
    }
    let hash = password::hash_blocking(body.password).await?;
    let (user, invitation) = match state
        .db
        .accept_invitation(&digest, &hash, display_name.as_deref())
        .await?
    {
        Acceptance::Accepted { user, invitation } => (user, invitation),
        Acceptance::InvalidToken => return Err(invalid_token()),
        Acceptance::EmailTaken => {
            return Err(ApiError::conflict(
                "EMAIL_TAKEN",
                "an account with this email already exists",
            ))
        }
    };
    state
        .db
        .audit(AuditEvent {
            org_id: Some(&org.id),
            actor_id: Some(&user.id),
            action: "invitation.accepted",
            resource_type: "invitation",
            resource_id: Some(&invitation.id),
            metadata: json!({"email": mask_email(&user.email), "role": user.role}),
        })
        .await?;
    tracing::info!(user_id = %user.id, org_id = %org.id, role = %user.role, "invitation accepted");
    Ok((
        StatusCode::CREATED,
        Json(issue_tokens(&state, &user).await?),
    ))
}

/// The organisation's employees (owners and staff), newest first.
#[utoipa::path(
    get,
    path = "/orgs/{id}/employee",
    tag = "employees",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Organisation id"), PageParams),
    responses(
        (status = 200, description = "One page of employees", body = Page<EmployeeResponse>),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_employees(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path(id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<EmployeeResponse>>, ApiError> {
    principal.require_org_role(&id, EMPLOYEES)?;
    let (limit, cursor) = params.resolve()?;
    load_org(&state, &id).await?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state.db.list_employees(&id, cursor.as_ref(), limit).await?;
    let page = Page::from_rows(rows, limit, |u| Cursor {
        created_at: u.created_at,
        id: u.id.clone(),
    });
    Ok(Json(Page {
        data: page.data.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One employee.
#[utoipa::path(
    get,
    path = "/orgs/{id}/employee/{employee_id}",
    tag = "employees",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Organisation id"),
        ("employee_id" = String, Path, description = "Employee (account) id"),
    ),
    responses(
        (status = 200, description = "The employee", body = EmployeeResponse),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such employee in your organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn get_employee(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path((id, employee_id)): Path<(String, String)>,
) -> Result<Json<EmployeeResponse>, ApiError> {
    principal.require_org_role(&id, EMPLOYEES)?;
    let employee = state
        .db
        .employee(&id, &employee_id)
        .await?
        .ok_or_else(|| ApiError::not_found("employee"))?;
    Ok(Json(employee.into()))
}

/// Change an employee's role (owner). The last owner cannot be demoted.
#[utoipa::path(
    patch,
    path = "/orgs/{id}/employee/{employee_id}",
    tag = "employees",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Organisation id"),
        ("employee_id" = String, Path, description = "Employee (account) id"),
    ),
    request_body = RoleChangeRequest,
    responses(
        (status = 200, description = "The updated employee", body = EmployeeResponse),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such employee in your organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would leave the organisation without an owner", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid role", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn update_employee(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path((id, employee_id)): Path<(String, String)>,
    Json(body): Json<RoleChangeRequest>,
) -> Result<Json<EmployeeResponse>, ApiError> {
    principal.require_org_role(&id, OWNERS)?;
    let role = body.role.as_str();
    let previous = match state
        .db
        .change_employee_role(&id, &employee_id, role)
        .await?
    {
        OwnerGuarded::Done(previous) => previous,
        OwnerGuarded::NotFound => return Err(ApiError::not_found("employee")),
        OwnerGuarded::LastOwner => return Err(last_owner()),
    };
    if previous != role {
        state
            .db
            .audit(AuditEvent {
                org_id: Some(&id),
                actor_id: Some(&principal.user_id),
                action: "employee.role_changed",
                resource_type: "user",
                resource_id: Some(&employee_id),
                metadata: json!({"from": previous, "to": role}),
            })
            .await?;
    }
    let employee = state
        .db
        .employee(&id, &employee_id)
        .await?
        .ok_or_else(|| ApiError::not_found("employee"))?;
    Ok(Json(employee.into()))
}

/// Remove an employee (owner): their account and sessions are deleted. The last owner cannot be
/// removed.
#[utoipa::path(
    delete,
    path = "/orgs/{id}/employee/{employee_id}",
    tag = "employees",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Organisation id"),
        ("employee_id" = String, Path, description = "Employee (account) id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such employee in your organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would leave the organisation without an owner", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn remove_employee(
    State(state): State<AppState>,
    OrgAuthenticated(principal): OrgAuthenticated,
    Path((id, employee_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require_org_role(&id, OWNERS)?;
    let removed = match state.db.remove_employee(&id, &employee_id).await? {
        OwnerGuarded::Done(user) => user,
        OwnerGuarded::NotFound => return Err(ApiError::not_found("employee")),
        OwnerGuarded::LastOwner => return Err(last_owner()),
    };
    state
        .db
        .audit(AuditEvent {
            org_id: Some(&id),
            actor_id: Some(&principal.user_id),
            action: "employee.removed",
            resource_type: "user",
            resource_id: Some(&employee_id),
            metadata: json!({"email": mask_email(&removed.email), "role": removed.role}),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

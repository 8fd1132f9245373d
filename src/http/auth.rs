//! `/auth`: registration, email verification, login, token refresh, logout and the current account.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{mask_email, password, secrets, Role};
use crate::error::{ApiError, FieldError};
use crate::http::authn::{api_key_header, authenticate_api_key, Authenticated, KeyKind};
use crate::http::json::Json;
use crate::state::AppState;
use crate::storage::audit::AuditEvent;
use crate::storage::one_time_tokens::{NewOneTimeToken, Purpose};
use crate::storage::orgs::NewOrg;
use crate::storage::outbox::OutgoingEmail;
use crate::storage::sessions::Rotation;
use crate::storage::users::{NewUser, UserRow};
use crate::storage::{is_unique_violation, now_ms, rfc3339};

pub const VERIFY_TTL_MS: i64 = 48 * 3600 * 1000;

pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    let public = OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(verify_email))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::http::rate_limit::per_ip_auth,
        ));
    OpenApiRouter::new()
        .merge(public)
        .routes(routes!(logout))
        .routes(routes!(me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    /// Required without an API key: the new organisation's name.
    #[serde(default, alias = "orgName")]
    pub org_name: Option<String>,
    #[serde(default)]
    pub industry: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default, alias = "displayName")]
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[serde(alias = "refresh_token")]
    #[serde(rename = "refreshToken")]
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
    pub user: UserSummary,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgSummary {
    pub id: String,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: String,
    pub email: String,
    pub roles: Vec<Role>,
    pub status: String,
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub org: Option<OrgSummary>,
    pub created_at: String,
}

pub async fn user_summary(state: &AppState, user: &UserRow) -> Result<UserSummary, ApiError> {
    let org = match &user.org_id {
        Some(id) => state.db.org(id).await?.map(|o| OrgSummary {
            id: o.id,
            name: o.name,
            status: o.status,
        }),
        None => None,
    };
    Ok(UserSummary {
        id: user.id.clone(),
        email: user.email.clone(),
        roles: Role::parse(&user.role).into_iter().collect(),
        status: user.status.clone(),
        email_verified: user.email_verified_at.is_some(),
        display_name: user.display_name.clone(),
        org,
        created_at: rfc3339(user.created_at),
    })
}

pub fn normalise_email(raw: &str) -> Result<String, FieldError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                && email.matches('@').count() == 1
        });
    if valid {
        Ok(email)
    } else {
        Err(FieldError::new("email", "is not a valid email address"))
    }
}

pub fn bounded_text(
    field: &str,
    value: Option<&String>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match value.map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > max => Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(v) => Ok(Some(v.to_string())),
    }
}

/// Refuses accounts of a suspended organisation.
async fn ensure_org_not_suspended(state: &AppState, user: &UserRow) -> Result<(), ApiError> {
    if let Some(org_id) = &user.org_id {
        if state
            .db
            .org(org_id)
            .await?
            .is_some_and(|o| o.status == "suspended")
        {
            return Err(ApiError::org_suspended());
        }
    }
    Ok(())
}

/// Issues an access token and opens a login session with its first refresh token.
pub async fn issue_tokens(state: &AppState, user: &UserRow) -> Result<TokenResponse, ApiError> {
    let refresh_token = secrets::generate();
    let session_id = state
        .db
        .open_session(&user.id, &secrets::digest(&refresh_token))
        .await?;
    let role = Role::parse(&user.role)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown role in storage")))?;
    let access_token = state
        .keys
        .issue(
            &user.id,
            user.org_id.as_deref(),
            role,
            &session_id,
            now_ms() / 1000,
        )
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    Ok(TokenResponse {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: crate::auth::tokens::ACCESS_TTL_SECS,
        user: user_summary(state, user).await?,
    })
}

/// Sends (through the outbox) a link that verifies the account's email.
pub async fn send_verification(state: &AppState, user: &UserRow) -> Result<(), ApiError> {
    let token = secrets::generate();
    state
        .db
        .insert_one_time_token(
            Purpose::VerifyEmail,
            &secrets::digest(&token),
            VERIFY_TTL_MS,
            NewOneTimeToken {
                user_id: Some(&user.id),
                org_id: user.org_id.as_deref(),
                email: Some(&user.email),
                ..Default::default()
            },
        )
        .await?;
    let link = format!("{}/api/v1/auth/verify/{token}", state.settings.public_url());
    state
        .db
        .enqueue_email(OutgoingEmail {
            to: &user.email,
            subject: "Verify your email address",
            body: &format!(
                "Welcome to Rapport.\n\nVerify your email address by opening this link within 48 hours:\n{link}\n\nVerification token: {token}\n"
            ),
            kind: "verify_email",
        })
        .await?;
    Ok(())
}

/// Register an organisation and its owner, or (with a publishable key) a member of that organisation.
///
/// Without `X-API-Key`: creates an organisation and its owner, both `pending` until the email is
/// verified. With the organisation's publishable key: creates an active `member` (mobile sign-up).
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    params(("X-API-Key" = Option<String>, Header, description = "An organisation's publishable key (`pk_…`) to sign up as its member")),
    responses(
        (status = 201, description = "Account created", body = TokenResponse),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid API key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a publishable key, a site outside the allowed origins, or a suspended organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Vec::new();
    let email = normalise_email(&body.email)
        .map_err(|e| errors.push(e))
        .ok();
    if let Some(reason) = password::policy_violation(&body.password, &body.email) {
        errors.push(FieldError::new("password", reason));
    }
    let display_name = bounded_text("display_name", body.display_name.as_ref(), 100)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let api_key = api_key_header(&headers);
    let org_name = bounded_text("org_name", body.org_name.as_ref(), 200)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let industry = bounded_text("industry", body.industry.as_ref(), 100)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let website = bounded_text("website", body.website.as_ref(), 300)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    if api_key.is_none() && org_name.is_none() {
        errors.push(FieldError::new(
            "org_name",
            "is required when registering a new organisation",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let email = email.unwrap_or_default();
    let member_of = match api_key {
        Some(raw) => {
            let key = authenticate_api_key(&state, raw).await?;
            if KeyKind::of(raw) != Some(KeyKind::Publishable) {
                return Err(ApiError::forbidden(
                    "sign-up takes the publishable key (pk_…)",
                ));
            }
            crate::http::authn::require_allowed_origin(&state, &key, &headers).await?;
            Some(key.org_id)
        }
        None => None,
    };
    let password_hash = password::hash_blocking(body.password.clone()).await?;

    let mut tx = state.db.pool.begin().await?;
    let (org_id, role, status) = match &member_of {
        Some(org_id) => (org_id.clone(), Role::Member, "active"),
        None => {
            let org = state
                .db
                .insert_org(
                    &mut *tx,
                    NewOrg {
                        name: org_name.as_deref().unwrap_or_default(),
                        industry: industry.as_deref(),
                        website: website.as_deref(),
                        status: "pending",
                    },
                )
                .await?;
            (org.id, Role::Owner, "pending")
        }
    };
    let user = state
        .db
        .insert_user(
            &mut *tx,
            NewUser {
                org_id: Some(&org_id),
                email: &email,
                password_hash: &password_hash,
                role: role.as_str(),
                status,
                display_name: display_name.as_deref(),
                verified: false,
            },
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::conflict("EMAIL_TAKEN", "an account with this email already exists")
            } else {
                e.into()
            }
        })?;
    tx.commit().await?;

    send_verification(&state, &user).await?;
    let free = state.settings.hub.free_credits;
    if free > 0 {
        state
            .db
            .grant_credits(&user.id, free, &format!("signup:{}", user.id))
            .await?;
    }
    state
        .db
        .audit(AuditEvent {
            org_id: Some(&org_id),
            actor_id: Some(&user.id),
            action: "account.registered",
            resource_type: "user",
            resource_id: Some(&user.id),
            metadata: json!({"role": role.as_str(), "email": mask_email(&email)}),
        })
        .await?;
    tracing::info!(user_id = %user.id, email = %mask_email(&email), role = role.as_str(), "account registered");
    Ok((
        StatusCode::CREATED,
        Json(issue_tokens(&state, &user).await?),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

/// Verify an email address with the token sent by email; activates a pending organisation.
#[utoipa::path(
    get,
    path = "/auth/verify/{token}",
    tag = "auth",
    params(("token" = String, Path, description = "The verification token from the email")),
    responses(
        (status = 200, description = "Email verified", body = Message),
        (status = 400, description = "Unknown, used or expired token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn verify_email(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<Message>, ApiError> {
    let spent = state
        .db
        .consume_one_time_token(Purpose::VerifyEmail, &secrets::digest(&token))
        .await?
        .ok_or_else(|| {
            ApiError::bad_request("INVALID_TOKEN", "this link is unknown, used or expired")
        })?;
    let user_id = spent
        .user_id
        .ok_or_else(|| ApiError::bad_request("INVALID_TOKEN", "this link is not for an account"))?;
    state.db.verify_email(&user_id).await?;
    state
        .db
        .audit(AuditEvent {
            org_id: spent.org_id.as_deref(),
            actor_id: Some(&user_id),
            action: "account.email_verified",
            resource_type: "user",
            resource_id: Some(&user_id),
            metadata: json!({}),
        })
        .await?;
    Ok(Json(Message {
        message: "email verified".into(),
    }))
}

/// Sign in with email and password.
///
/// Unknown emails and wrong passwords get the same answer in the same time. Repeated failures lock
/// the account for a growing while.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong email or password", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<AppState>,
    Json(body): Json<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let email = body.email.trim().to_lowercase();
    state
        .rate_limits
        .enforce("account", &format!("login:{email}"))?;
    let user = state.db.user_by_email(&email).await?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::dummy_hash().to_string());
    let password_ok = password::verify_blocking(body.password, hash).await;
    let failed = || ApiError::unauthorized("wrong email or password");
    let Some(user) = user else {
        return Err(failed());
    };
    let now = now_ms();
    if user.locked_until > now {
        let wait = ((user.locked_until - now) / 1000).max(1) as u64;
        return Err(ApiError::rate_limited(wait));
    }
    if !password_ok || user.status == "disabled" {
        state.db.record_failed_login(&user.id).await?;
        state
            .db
            .audit(AuditEvent {
                org_id: user.org_id.as_deref(),
                actor_id: Some(&user.id),
                action: "auth.login_failed",
                resource_type: "user",
                resource_id: Some(&user.id),
                metadata: json!({"email": mask_email(&email)}),
            })
            .await?;
        return Err(failed());
    }
    ensure_org_not_suspended(&state, &user).await?;
    state.db.record_successful_login(&user.id).await?;
    state
        .db
        .audit(AuditEvent {
            org_id: user.org_id.as_deref(),
            actor_id: Some(&user.id),
            action: "auth.login",
            resource_type: "user",
            resource_id: Some(&user.id),
            metadata: json!({}),
        })
        .await?;
    Ok(Json(issue_tokens(&state, &user).await?))
}

/// Exchange a refresh token for a new access token and a new refresh token.
///
/// Refresh tokens are single-use: presenting one that was already used revokes the whole session
/// (token family) and is recorded as a security event.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid, expired or reused refresh token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let successor = secrets::generate();
    let rotation = state
        .db
        .rotate_refresh(
            &secrets::digest(&body.refresh_token),
            &secrets::digest(&successor),
        )
        .await?;
    let (session_id, user_id) = match rotation {
        Rotation::Rotated {
            session_id,
            user_id,
        } => (session_id, user_id),
        Rotation::Reused {
            session_id,
            user_id,
        } => {
            let org_id = state.db.user(&user_id).await?.and_then(|u| u.org_id);
            state
                .db
                .audit(AuditEvent {
                    org_id: org_id.as_deref(),
                    actor_id: Some(&user_id),
                    action: "auth.refresh_token_reused",
                    resource_type: "session",
                    resource_id: Some(&session_id),
                    metadata: json!({"revoked": "session"}),
                })
                .await?;
            tracing::warn!(%user_id, %session_id, "refresh token reuse detected: session revoked");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "REFRESH_TOKEN_REUSED",
                "this refresh token was already used; the session has been revoked",
            ));
        }
        Rotation::Invalid => {
            return Err(ApiError::unauthorized("invalid or expired refresh token"))
        }
    };
    let user = state
        .db
        .user(&user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    if user.status == "disabled" {
        return Err(ApiError::unauthorized("this account is disabled"));
    }
    ensure_org_not_suspended(&state, &user).await?;
    let role = Role::parse(&user.role)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown role in storage")))?;
    let access_token = state
        .keys
        .issue(
            &user.id,
            user.org_id.as_deref(),
            role,
            &session_id,
            now_ms() / 1000,
        )
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    Ok(Json(TokenResponse {
        access_token,
        refresh_token: successor,
        token_type: "Bearer",
        expires_in: crate::auth::tokens::ACCESS_TTL_SECS,
        user: user_summary(&state, &user).await?,
    }))
}

/// Sign out: revokes this session's refresh tokens and access tokens at once.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn logout(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<StatusCode, ApiError> {
    state
        .db
        .revoke_session(&principal.session_id, "logout")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The current account", body = UserSummary),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn me(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<UserSummary>, ApiError> {
    let user = state
        .db
        .user(&principal.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    Ok(Json(user_summary(&state, &user).await?))
}

//! `/auth/password`: forgotten-password reset by email, and password change when signed in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{mask_email, password, secrets};
use crate::error::{ApiError, FieldError};
use crate::http::auth::{normalise_email, Message};
use crate::http::authn::Authenticated;
use crate::http::json::Json;
use crate::state::AppState;
use crate::storage::audit::AuditEvent;
use crate::storage::one_time_tokens::{NewOneTimeToken, Purpose};
use crate::storage::outbox::OutgoingEmail;
use crate::storage::rfc3339;

pub const RESET_TTL_MS: i64 = 3600 * 1000;

pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    let public = OpenApiRouter::new()
        .routes(routes!(forgot))
        .routes(routes!(verify_reset_token))
        .routes(routes!(reset))
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::http::rate_limit::per_ip_auth,
        ));
    OpenApiRouter::new().merge(public).routes(routes!(change))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The token from the reset email.
    pub token: String,
    /// The new password.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    #[serde(alias = "currentPassword")]
    pub current_password: String,
    #[serde(alias = "newPassword")]
    pub new_password: String,
}

/// A reset token that can still be used.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetTokenInfo {
    /// Always true (unusable tokens answer 400).
    pub valid: bool,
    /// The account's email, masked.
    pub email: String,
    pub expires_at: String,
}

fn invalid_token() -> ApiError {
    ApiError::bad_request("INVALID_TOKEN", "this link is unknown, used or expired")
}

/// Ask for a password-reset email.
///
/// Answers the same whether or not an account has this email, so it cannot be used to find
/// accounts; when one does, a single-use link valid for one hour is emailed.
#[utoipa::path(
    post,
    path = "/auth/password/forgot",
    tag = "auth",
    request_body = ForgotRequest,
    responses(
        (status = 202, description = "If the account exists, an email is on its way", body = Message),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn forgot(
    State(state): State<AppState>,
    Json(body): Json<ForgotRequest>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let email = normalise_email(&body.email).map_err(|e| ApiError::validation(vec![e]))?;
    // Keyed by the address asked for, existing or not: bounds mail sent to one inbox.
    state
        .rate_limits
        .enforce("account", &format!("forgot:{email}"))?;
    // The work happens after the answer, so known and unknown emails take the same time.
    let task_state = state.clone();
    state.tasks.spawn(async move {
        if let Err(error) = send_reset_link(&task_state, &email).await {
            tracing::warn!(error = %format!("{error:#}"), email = %mask_email(&email), "could not queue a password-reset email");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(Message {
            message: "if an account exists for this email, a reset link has been sent".into(),
        }),
    ))
}

async fn send_reset_link(state: &AppState, email: &str) -> anyhow::Result<()> {
    let Some(user) = state.db.user_by_email(email).await? else {
        return Ok(());
    };
    if user.status == "disabled" {
        return Ok(());
    }
    let token = secrets::generate();
    state
        .db
        .insert_one_time_token(
            Purpose::PasswordReset,
            &secrets::digest(&token),
            RESET_TTL_MS,
            NewOneTimeToken {
                user_id: Some(&user.id),
                org_id: user.org_id.as_deref(),
                email: Some(&user.email),
                ..Default::default()
            },
        )
        .await?;
    let link = format!(
        "{}/api/v1/auth/password/reset/verify/{token}",
        state.settings.public_url()
    );
    state
        .db
        .enqueue_email(OutgoingEmail {
            to: &user.email,
            subject: "Reset your password",
            body: &format!(
                "Someone asked to reset the password of your Rapport account.\n\n\
                 To choose a new password, open this link within one hour:\n{link}\n\n\
                 Reset token: {token}\n\n\
                 If it was not you, ignore this email: your password stays as it is.\n"
            ),
            kind: "password_reset",
        })
        .await?;
    state
        .db
        .audit(AuditEvent {
            org_id: user.org_id.as_deref(),
            actor_id: Some(&user.id),
            action: "auth.password_reset_requested",
            resource_type: "user",
            resource_id: Some(&user.id),
            metadata: json!({"email": mask_email(&user.email)}),
        })
        .await?;
    Ok(())
}

/// Check a password-reset token before showing the new-password form.
#[utoipa::path(
    get,
    path = "/auth/password/reset/verify/{token}",
    tag = "auth",
    params(("token" = String, Path, description = "The token from the reset email")),
    responses(
        (status = 200, description = "The token can be used", body = ResetTokenInfo),
        (status = 400, description = "Unknown, used or expired token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn verify_reset_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<ResetTokenInfo>, ApiError> {
    let found = state
        .db
        .peek_one_time_token(Purpose::PasswordReset, &secrets::digest(&token))
        .await?
        .ok_or_else(invalid_token)?;
    Ok(Json(ResetTokenInfo {
        valid: true,
        email: mask_email(found.email.as_deref().unwrap_or_default()),
        expires_at: rfc3339(found.expires_at),
    }))
}

/// Set a new password with a reset token; every session of the account is signed out.
#[utoipa::path(
    post,
    path = "/auth/password/reset",
    tag = "auth",
    request_body = ResetRequest,
    responses(
        (status = 200, description = "Password changed; sign in again", body = Message),
        (status = 400, description = "Malformed request, or unknown, used or expired token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password is refused", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn reset(
    State(state): State<AppState>,
    Json(body): Json<ResetRequest>,
) -> Result<Json<Message>, ApiError> {
    let digest = secrets::digest(&body.token);
    let found = state
        .db
        .peek_one_time_token(Purpose::PasswordReset, &digest)
        .await?
        .ok_or_else(invalid_token)?;
    let user_id = found.user_id.ok_or_else(invalid_token)?;
    let user = state.db.user(&user_id).await?.ok_or_else(invalid_token)?;
    // Checked before the token is spent, so a refused password does not burn the link.
    if let Some(reason) = password::policy_violation(&body.password, &user.email) {
        return Err(ApiError::validation(vec![FieldError::new(
            "password", reason,
        )]));
    }
    let hash = password::hash_blocking(body.password).await?;
    state
        .db
        .consume_one_time_token(Purpose::PasswordReset, &digest)
        .await?
        .ok_or_else(invalid_token)?;
    state.db.set_password_hash(&user.id, &hash).await?;
    // A reset proves control of the mailbox: lift any lockout from failed sign-ins.
    state.db.record_successful_login(&user.id).await?;
    let revoked = state
        .db
        .revoke_other_sessions(&user.id, None, "password_reset")
        .await?;
    state
        .db
        .cancel_user_tokens(&user.id, Purpose::PasswordReset)
        .await?;
    state
        .db
        .audit(AuditEvent {
            org_id: user.org_id.as_deref(),
            actor_id: Some(&user.id),
            action: "auth.password_reset",
            resource_type: "user",
            resource_id: Some(&user.id),
            metadata: json!({"sessions_revoked": revoked}),
        })
        .await?;
    tracing::info!(user_id = %user.id, "password reset");
    Ok(Json(Message {
        message: "password changed; sign in with the new password".into(),
    }))
}

/// Change the signed-in account's password; every other session is signed out.
#[utoipa::path(
    post,
    path = "/auth/password/change",
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangeRequest,
    responses(
        (status = 204, description = "Password changed; this session stays signed in"),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The current password is wrong", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password is refused", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn change(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<ChangeRequest>,
) -> Result<StatusCode, ApiError> {
    let user = state
        .db
        .user(&principal.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    if !password::verify_blocking(body.current_password.clone(), user.password_hash.clone()).await {
        state
            .db
            .audit(AuditEvent {
                org_id: user.org_id.as_deref(),
                actor_id: Some(&user.id),
                action: "auth.password_change_failed",
                resource_type: "user",
                resource_id: Some(&user.id),
                metadata: json!({}),
            })
            .await?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "WRONG_PASSWORD",
            "the current password is wrong",
        ));
    }
    let mut errors = Vec::new();
    if body.new_password == body.current_password {
        errors.push(FieldError::new(
            "new_password",
            "must differ from the current password",
        ));
    } else if let Some(reason) = password::policy_violation(&body.new_password, &user.email) {
        errors.push(FieldError::new("new_password", reason));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let hash = password::hash_blocking(body.new_password).await?;
    state.db.set_password_hash(&user.id, &hash).await?;
    let revoked = state
        .db
        .revoke_other_sessions(&user.id, Some(&principal.session_id), "password_change")
        .await?;
    state
        .db
        .audit(AuditEvent {
            org_id: user.org_id.as_deref(),
            actor_id: Some(&user.id),
            action: "auth.password_changed",
            resource_type: "user",
            resource_id: Some(&user.id),
            metadata: json!({"sessions_revoked": revoked}),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

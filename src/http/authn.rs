//! Authentication extractors: bearer access tokens (accounts) and API keys (organisations).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::auth::tokens::TokenError;
use crate::auth::{secrets, Principal, Role};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::api_keys::ApiKeyRow;

/// An authenticated account. Every request re-checks storage, so logout, password changes,
/// disabled accounts and suspended organisations take effect at once.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("missing `Authorization: Bearer` access token")
        })?;
        let principal = authenticate_token(state, token).await?;
        state
            .rate_limits
            .enforce_recorded("account", &principal.user_id)?;
        if let Some(org_id) = &principal.org_id {
            state.rate_limits.enforce_recorded("org", org_id)?;
        }
        Ok(Authenticated(principal))
    }
}

/// Verifies an access token and the account, session and organisation behind it.
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let claims = state.keys.verify(token).map_err(|e| match e {
        TokenError::Expired => ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "TOKEN_EXPIRED",
            "the access token has expired; refresh it",
        ),
        other => ApiError::unauthorized(other.to_string()),
    })?;
    let check = state
        .db
        .access_check(&claims.sub, &claims.sid)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account or session no longer exists"))?;
    if check.session_revoked_at.is_some() {
        return Err(ApiError::unauthorized("this session has been signed out"));
    }
    if check.user_status == "disabled" {
        return Err(ApiError::unauthorized("this account is disabled"));
    }
    if check.org_status.as_deref() == Some("suspended") {
        return Err(ApiError::org_suspended());
    }
    let role = Role::parse(&check.role)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown role in storage")))?;
    Ok(Principal {
        user_id: claims.sub,
        org_id: check.org_id,
        role,
        session_id: claims.sid,
        verified: check.email_verified_at.is_some(),
    })
}

impl Principal {
    /// Pending accounts (email not yet verified) may only read themselves and sign out.
    pub fn require_verified(&self) -> Result<(), ApiError> {
        if self.verified || self.is_superuser() {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "EMAIL_NOT_VERIFIED",
                "verify your email address first",
            ))
        }
    }

    /// Verified accounts, and members (app users, who may start before verifying their email).
    pub fn require_verified_or_member(&self) -> Result<(), ApiError> {
        if self.role == Role::Member {
            Ok(())
        } else {
            self.require_verified()
        }
    }

    /// The principal's own organisation, or 404 for any other, so existence never leaks.
    pub fn require_org(&self, org_id: &str) -> Result<(), ApiError> {
        if self.belongs_to(org_id) {
            Ok(())
        } else {
            Err(ApiError::not_found("organisation"))
        }
    }

    pub fn require_role(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if self.is_superuser() || allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden("your role does not allow this"))
        }
    }
}

/// Which kind of organisation key was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Publishable,
    Secret,
}

impl KeyKind {
    pub fn of(raw: &str) -> Option<Self> {
        if raw.starts_with("pk_") {
            Some(Self::Publishable)
        } else if raw.starts_with("sk_") {
            Some(Self::Secret)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publishable => "publishable",
            Self::Secret => "secret",
        }
    }
}

/// Looks up an `X-API-Key` value; a suspended organisation's keys stop working at once.
pub async fn authenticate_api_key(state: &AppState, raw: &str) -> Result<ApiKeyRow, ApiError> {
    let invalid = || ApiError::unauthorized("invalid or expired API key");
    KeyKind::of(raw).ok_or_else(invalid)?;
    let key = state
        .db
        .api_key_by_digest(&secrets::digest(raw))
        .await?
        .ok_or_else(invalid)?;
    let org = state.db.org(&key.org_id).await?.ok_or_else(invalid)?;
    if org.status == "suspended" {
        return Err(ApiError::org_suspended());
    }
    state.rate_limits.enforce_recorded("api_key", &key.id)?;
    state.rate_limits.enforce_recorded("org", &key.org_id)?;
    let _ = state.db.touch_api_key(&key.id).await;
    Ok(key)
}

pub fn api_key_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

/// A publishable key is locked to the organisation's allowed widget origins: a browser request
/// (which always names its `Origin`) from any other site is refused. Requests without an `Origin`
/// (mobile apps, servers) are not browser-embedded and pass.
pub async fn require_allowed_origin(
    state: &AppState,
    key: &ApiKeyRow,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    require_allowed_origin_of(state, key, origin_header(headers)).await
}

/// The request's `Origin`. An unreadable one is still an origin, and one no organisation allows.
pub fn origin_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("invalid"))
}

/// [`require_allowed_origin`] for an `Origin` already read (e.g. from a WebSocket upgrade).
pub async fn require_allowed_origin_of(
    state: &AppState,
    key: &ApiKeyRow,
    origin: Option<&str>,
) -> Result<(), ApiError> {
    if key.kind != KeyKind::Publishable.as_str() {
        return Ok(());
    }
    let Some(origin) = origin else {
        return Ok(());
    };
    let config = match state.db.org(&key.org_id).await? {
        Some(org) => crate::bot_config::BotConfig::from_stored(&org.bot_config),
        None => return Err(ApiError::unauthorized("invalid or expired API key")),
    };
    if config.allows_origin(origin) {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "ORIGIN_NOT_ALLOWED",
            "this site is not among the organisation's allowed origins for its publishable key",
        ))
    }
}

/// An organisation-scoped caller: an account (bearer token), or a server holding the organisation's
/// secret key (`X-API-Key: sk_…`), which acts with owner scope inside that organisation only.
#[derive(Debug, Clone)]
pub struct OrgAuthenticated(pub Principal);

impl FromRequestParts<AppState> for OrgAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if bearer(&parts.headers).is_none() {
            if let Some(raw) = api_key_header(&parts.headers) {
                if KeyKind::of(raw) != Some(KeyKind::Secret) {
                    return Err(ApiError::unauthorized(
                        "organisation routes take an access token or the secret key (sk_…)",
                    ));
                }
                let key = authenticate_api_key(state, raw).await?;
                return Ok(Self(Principal {
                    user_id: format!("api_key:{}", key.id),
                    org_id: Some(key.org_id),
                    role: Role::Owner,
                    session_id: String::new(),
                    verified: true,
                }));
            }
        }
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        Ok(Self(principal))
    }
}

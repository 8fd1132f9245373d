//! Who a widget request comes from: the organisation's publishable key (from one of its allowed
//! origins) and the session token issued for one chat session. Used by the chat routes and by
//! WebSocket authentication alike.

use axum::http::{HeaderMap, StatusCode};

use crate::chat::token;
use crate::error::ApiError;
use crate::http::authn::{
    api_key_header, authenticate_api_key, origin_header, require_allowed_origin_of, KeyKind,
};
use crate::state::AppState;
use crate::storage::api_keys::ApiKeyRow;
use crate::storage::now_ms;

pub const SESSION_TOKEN_HEADER: &str = "x-session-token";

/// A visitor bound to one chat session.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub session_id: String,
    pub org_id: String,
    pub closed: bool,
}

/// The credentials a widget presents, however they travelled.
pub struct WidgetCredentials<'a> {
    pub api_key: Option<&'a str>,
    pub session_token: Option<&'a str>,
    pub origin: Option<&'a str>,
}

impl<'a> WidgetCredentials<'a> {
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        Self {
            api_key: api_key_header(headers),
            session_token: headers
                .get(SESSION_TOKEN_HEADER)
                .map(|v| v.to_str().map(str::trim).unwrap_or("")),
            origin: origin_header(headers),
        }
    }
}

/// Checks a publishable key and, for a browser, that the page's origin may use it.
pub async fn publishable_key(
    state: &AppState,
    raw: Option<&str>,
    origin: Option<&str>,
) -> Result<ApiKeyRow, ApiError> {
    let raw = raw.filter(|k| !k.is_empty()).ok_or_else(|| {
        ApiError::unauthorized("send the organisation's publishable key in X-API-Key")
    })?;
    if KeyKind::of(raw) != Some(KeyKind::Publishable) {
        return Err(ApiError::unauthorized(
            "chat sessions take the organisation's publishable key (pk_…)",
        ));
    }
    let key = authenticate_api_key(state, raw).await?;
    require_allowed_origin_of(state, &key, origin).await?;
    Ok(key)
}

/// Authenticates a visitor. The key is required unless `key_optional` (feedback may be sent with
/// the session token alone); when present it must belong to the session's organisation.
pub async fn authenticate(
    state: &AppState,
    credentials: &WidgetCredentials<'_>,
    key_optional: bool,
) -> Result<Visitor, ApiError> {
    let key = match credentials.api_key.filter(|k| !k.is_empty()) {
        None if key_optional => None,
        raw => Some(publishable_key(state, raw, credentials.origin).await?),
    };
    let raw_token = credentials
        .session_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("send the chat session token in X-Session-Token"))?;
    let invalid = || ApiError::unauthorized("invalid session token");
    let digest = token::digest_of(raw_token).ok_or_else(invalid)?;
    let session = state
        .db
        .chat_session_by_token(&digest)
        .await?
        .ok_or_else(invalid)?;
    match &key {
        Some(key) if key.org_id != session.org_id => return Err(invalid()),
        Some(_) => {}
        // Without a key (feedback), the organisation's standing is checked here instead.
        None => {
            let org = state.db.org(&session.org_id).await?.ok_or_else(invalid)?;
            if org.status == "suspended" {
                return Err(ApiError::org_suspended());
            }
        }
    }
    let now = now_ms();
    if session.token_expires_at <= now {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "SESSION_TOKEN_EXPIRED",
            "the session token has expired; start a new chat session",
        ));
    }
    // The token lives while it is used: renewed once half of its lifetime has passed.
    let ttl = i64::try_from(state.settings.hub.chat_token_ttl.as_millis()).unwrap_or(i64::MAX);
    if session.token_expires_at - now < ttl / 2 {
        state
            .db
            .extend_chat_token(&session.session_id, now.saturating_add(ttl))
            .await?;
    }
    Ok(Visitor {
        session_id: session.session_id,
        org_id: session.org_id,
        closed: session.closed_at.is_some(),
    })
}

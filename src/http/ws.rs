//! `GET /api/v1/ws`: the WebSocket upgrade. Credentials travel in `Sec-WebSocket-Protocol` or a
//! first `auth` frame, never in the URL.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::http::chat::visitor::{self, WidgetCredentials};
use crate::http::client_ip::ClientIp;
use crate::hub::connection::{self, Authenticator, Credential, Identity, PROTOCOL};
use crate::hub::frames::{ErrorCode, PrincipalInfo};
use crate::hub::{HubError, Owner};
use crate::state::AppState;

/// Query parameters that would put a secret in the URL.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "jwt",
    "api_key",
    "key",
    "session_token",
];

/// Open a WebSocket session (protocol `rapport.v1`, see `protocol/`).
#[utoipa::path(
    get,
    path = "/ws",
    tag = "hub",
    responses(
        (status = 101, description = "Switching to the `rapport.v1` WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade, protocol not offered, or a credential in the URL", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 426, description = "A WebSocket upgrade is required", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    ip: ClientIp,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if let Some(query) = query {
        let has_secret = url_params(&query).any(|name| SECRET_PARAMS.contains(&name.as_str()));
        if has_secret {
            return ApiError::bad_request(
                "CREDENTIAL_IN_URL",
                "credentials are never accepted in the URL; use Sec-WebSocket-Protocol or an `auth` frame",
            )
            .into_response();
        }
    }
    let Ok(ws) = ws else {
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "UPGRADE_REQUIRED",
            "this endpoint speaks WebSocket (protocol rapport.v1)",
        )
        .into_response();
    };
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if !offered.iter().any(|p| p == PROTOCOL) {
        return ApiError::bad_request(
            "PROTOCOL_REQUIRED",
            "offer the `rapport.v1` subprotocol in Sec-WebSocket-Protocol",
        )
        .into_response();
    }
    let auth: Arc<dyn Authenticator> = Arc::new(StateAuthenticator {
        state: state.clone(),
        origin: crate::http::authn::origin_header(&headers).map(str::to_owned),
        ip: ip.0,
    });
    let credentials: Vec<&String> = offered.iter().filter(|p| *p != PROTOCOL).collect();
    let credential = match credentials.as_slice() {
        [] => Credential::None,
        [one] => header_credential(one, auth.as_ref()).await,
        _ => Credential::Refused(HubError::new(
            ErrorCode::Unauthorized,
            "offer at most one credential",
        )),
    };
    // A browser cannot read why an upgrade failed, but a refused origin is final, so it is refused
    // before the upgrade (HTTP 403) rather than retried forever.
    if let Credential::Refused(error) = &credential {
        if error.code == ErrorCode::Forbidden {
            return ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", error.message.clone())
                .into_response();
        }
    }
    let hub = state.hub.clone();
    ws.protocols([PROTOCOL])
        .read_buffer_size(512)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(1024 * 1024)
        .max_frame_size(1024 * 1024)
        .on_upgrade(move |socket| connection::serve(socket, hub, credential, auth))
}

fn url_params(query: &str) -> impl Iterator<Item = String> + '_ {
    query.split('&').map(|pair| {
        pair.split('=')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    })
}

async fn header_credential(entry: &str, auth: &dyn Authenticator) -> Credential {
    let result = if let Some(token) = entry.strip_prefix("rapport.bearer.") {
        auth.bearer(token).await
    } else if let Some(rest) = entry.strip_prefix("rapport.key.") {
        match rest.split_once('.') {
            Some((key, session_token)) => auth.widget(key, session_token).await,
            None => Err(HubError::new(
                ErrorCode::Unauthorized,
                "malformed key credential",
            )),
        }
    } else {
        Err(HubError::new(
            ErrorCode::Unauthorized,
            "unknown credential kind",
        ))
    };
    match result {
        Ok(identity) => Credential::Accepted(identity),
        Err(error) => Credential::Refused(error),
    }
}

struct StateAuthenticator {
    state: AppState,
    /// The upgrade request's `Origin`, checked against a widget key's allowed origins.
    origin: Option<String>,
    ip: String,
}

#[async_trait::async_trait]
impl Authenticator for StateAuthenticator {
    async fn bearer(&self, token: &str) -> Result<Identity, HubError> {
        let principal = crate::http::authn::authenticate_token(&self.state, token)
            .await
            .map_err(|e| HubError::new(ErrorCode::Unauthorized, e.to_string()))?;
        let org_id = principal.org_id.clone().ok_or_else(|| {
            HubError::new(ErrorCode::Forbidden, "platform accounts hold no sessions")
        })?;
        Ok(Identity {
            owner: Owner::User {
                user_id: principal.user_id.clone(),
                org_id: org_id.clone(),
            },
            info: PrincipalInfo {
                kind: "user",
                id: principal.user_id.clone(),
                org_id,
            },
            account: Some(principal.user_id),
        })
    }

    async fn widget(&self, api_key: &str, session_token: &str) -> Result<Identity, HubError> {
        let credentials = WidgetCredentials {
            api_key: Some(api_key),
            session_token: Some(session_token),
            origin: self.origin.as_deref(),
        };
        let visitor = visitor::authenticate(&self.state, &credentials, false)
            .await
            .map_err(|error| {
                let code = if error.status() == StatusCode::FORBIDDEN {
                    ErrorCode::Forbidden
                } else {
                    ErrorCode::Unauthorized
                };
                HubError::new(code, error.detail())
            })?;
        Ok(Identity {
            info: PrincipalInfo {
                kind: "visitor",
                id: visitor.session_id.clone(),
                org_id: visitor.org_id.clone(),
            },
            owner: Owner::Visitor {
                session_id: visitor.session_id,
                org_id: visitor.org_id,
            },
            account: None,
        })
    }

    fn throttle(&self, identity: &Identity) -> Option<Duration> {
        let limits = &self.state.rate_limits;
        match &identity.owner {
            Owner::User { user_id, .. } => limits.check("account", user_id).retry_after,
            Owner::Visitor { session_id, .. } => limits
                .check("chat_session", session_id)
                .retry_after
                .or_else(|| limits.check("visitor_ip", &self.ip).retry_after),
        }
    }
}

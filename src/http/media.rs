//! `/media/{key}`: audio served through pre-signed, expiring URLs. The URL is the credential, so
//! it works in an audio player that cannot send headers; a tampered or expired one is refused.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::media::signing::SignatureCheck;
use crate::state::AppState;
use crate::storage::now_ms;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(media))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedParams {
    /// Unix seconds after which the URL no longer works.
    pub expires: i64,
    /// Hex HMAC-SHA256 signature of the key and expiry.
    pub sig: String,
}

/// A stored media file, through a pre-signed URL (as found in `audio_url`).
#[utoipa::path(
    get,
    path = "/media/{key}",
    tag = "content",
    params(("key" = String, Path, description = "Media key"), SignedParams),
    responses(
        (status = 200, description = "The file", content_type = "audio/wav", body = Vec<u8>),
        (status = 400, description = "Missing or malformed signature parameters", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Tampered or expired URL", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn media(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(params): Query<SignedParams>,
) -> Result<Response, ApiError> {
    match state
        .commerce
        .signer
        .check(&key, params.expires, &params.sig, now_ms() / 1000)
    {
        SignatureCheck::Valid => {}
        SignatureCheck::Expired => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "URL_EXPIRED",
                "this media URL has expired; fetch the item again for a fresh one",
            ))
        }
        SignatureCheck::Invalid => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "INVALID_SIGNATURE",
                "this media URL's signature does not match",
            ))
        }
    }
    let bytes = state
        .commerce
        .store
        .get(&key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("media"))?;
    Ok((
        [
            (header::CONTENT_TYPE, crate::media::content_type_of(&key)),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        bytes,
    )
        .into_response())
}

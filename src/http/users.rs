//! `/users/me`: the signed-in account's profile and preferences.

use axum::extract::State;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Role;
use crate::error::{ApiError, FieldError};
use crate::http::auth::{bounded_text, OrgSummary};
use crate::http::authn::Authenticated;
use crate::http::json::Json;
use crate::state::AppState;
use crate::storage::rfc3339;
use crate::storage::users::UserRow;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_me, put_me))
}

/// How fast guided sessions are spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    Slower,
    Moderate,
    Faster,
}

/// The voice's manner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tone {
    Warm,
    Neutral,
    Energising,
    Gentle,
}

/// Listening preferences; unset ones use the product's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Preferences {
    /// The chosen voice's id.
    pub voice_id: Option<String>,
    pub pace: Option<Pace>,
    pub tone: Option<Tone>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub email_verified: bool,
    pub org: Option<OrgSummary>,
    pub preferences: Preferences,
    pub created_at: String,
    pub updated_at: String,
}

/// Distinguishes an absent field (keep) from `null` (clear).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Changes to the profile: absent fields are kept, `null` clears a field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[serde(default, deserialize_with = "present", alias = "displayName")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub display_name: Option<Option<String>>,
    #[serde(default)]
    pub preferences: Option<PreferencesUpdate>,
}

/// Preference changes, merged into the stored ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesUpdate {
    #[serde(default, deserialize_with = "present", alias = "voiceId")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_-]+$")]
    pub voice_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Pace>)]
    pub pace: Option<Option<Pace>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Tone>)]
    pub tone: Option<Option<Tone>>,
}

async fn profile(state: &AppState, user: &UserRow) -> Result<Profile, ApiError> {
    let summary = crate::http::auth::user_summary(state, user).await?;
    let role = Role::parse(&user.role)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown role in storage")))?;
    Ok(Profile {
        id: user.id.clone(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role,
        email_verified: user.email_verified_at.is_some(),
        org: summary.org,
        preferences: serde_json::from_str(&user.preferences).unwrap_or_default(),
        created_at: rfc3339(user.created_at),
        updated_at: rfc3339(user.updated_at),
    })
}

fn valid_voice_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The signed-in account's profile and preferences.
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn get_me(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Profile>, ApiError> {
    let user = state
        .db
        .user(&principal.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    Ok(Json(profile(&state, &user).await?))
}

/// Update the display name and merge preference changes.
#[utoipa::path(
    put,
    path = "/users/me",
    tag = "users",
    security(("bearer" = [])),
    request_body = ProfileUpdate,
    responses(
        (status = 200, description = "The updated profile", body = Profile),
        (status = 400, description = "Malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn put_me(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<Profile>, ApiError> {
    crate::http::object::nested_object(&body, "preferences")?;
    let body: ProfileUpdate = crate::http::object::from_object(body)?;
    let user = state
        .db
        .user(&principal.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    let mut errors = Vec::new();
    let display_name = match &body.display_name {
        None => user.display_name.clone(),
        Some(value) => bounded_text("display_name", value.as_ref(), 100)
            .map_err(|e| errors.push(e))
            .ok()
            .flatten(),
    };
    let mut preferences: Preferences = serde_json::from_str(&user.preferences).unwrap_or_default();
    if let Some(update) = body.preferences {
        if let Some(voice_id) = update.voice_id {
            match voice_id.map(|v| v.trim().to_string()) {
                Some(v) if !valid_voice_id(&v) => errors.push(FieldError::new(
                    "preferences.voice_id",
                    "must be 1 to 64 letters, digits, `-` or `_`",
                )),
                other => preferences.voice_id = other,
            }
        }
        if let Some(pace) = update.pace {
            preferences.pace = pace;
        }
        if let Some(tone) = update.tone {
            preferences.tone = tone;
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let stored = serde_json::to_string(&preferences).map_err(ApiError::internal)?;
    let user = state
        .db
        .update_profile(&user.id, display_name.as_deref(), &stored)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    Ok(Json(profile(&state, &user).await?))
}

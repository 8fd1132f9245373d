//! `/catalog`: the organisation's marketplace of packs, with access per user, recommendations,
//! and pack creation and publishing for its staff (the creators).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, FieldError};
use crate::http::access::EMPLOYEES;
use crate::http::authn::Authenticated;
use crate::http::content::{library_user, one_of, query_pairs, ListQuery};
use crate::http::json::Json;
use crate::http::object::from_object;
use crate::http::pagination::{Cursor, Page};
use crate::state::AppState;
use crate::storage::catalog::{NewPack, PackQuery, PackRow};
use crate::storage::{new_id, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_packs, create_pack))
        .routes(routes!(get_pack))
        .routes(routes!(publish_pack))
        .routes(routes!(recommendations))
}

const PRICE_TYPES: &[&str] = &["free", "one_time", "subscription"];

#[derive(Debug, Serialize, ToSchema)]
pub struct Creator {
    pub id: String,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PackSummary {
    pub id: String,
    pub title: String,
    pub description: String,
    pub creator: Creator,
    pub tags: Vec<String>,
    /// `free`, `one_time` or `subscription`.
    pub price_type: String,
    /// In the currency's major unit, e.g. 9.99.
    pub price_amount: f64,
    pub currency: String,
    /// `month` or `year`, for subscriptions.
    pub subscription_interval: Option<String>,
    pub ritual_count: i64,
    /// `draft` or `published`.
    pub status: String,
    pub created_at: String,
    pub published_at: Option<String>,
}

impl From<&PackRow> for PackSummary {
    fn from(row: &PackRow) -> Self {
        Self {
            id: row.id.clone(),
            title: row.title.clone(),
            description: row.description.clone(),
            creator: Creator {
                id: row.creator_id.clone(),
                name: row.creator_name.clone(),
            },
            tags: serde_json::from_str(&row.tags).unwrap_or_default(),
            price_type: row.price_type.clone(),
            price_amount: row.price_cents as f64 / 100.0,
            currency: row.currency.clone(),
            subscription_interval: row.subscription_interval.clone(),
            ritual_count: row.item_count,
            status: row.status.clone(),
            created_at: rfc3339(row.created_at),
            published_at: row.published_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PackItem {
    pub id: String,
    pub title: String,
    pub content_type: String,
    /// Seconds.
    pub duration: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PackDetail {
    #[serde(flatten)]
    pub summary: PackSummary,
    pub rituals: Vec<PackItem>,
    /// Whether the caller may use the pack's content now.
    pub user_has_access: bool,
}

/// A pack the caller may see: published packs of their organisation; drafts for its employees.
pub(crate) async fn visible_pack(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<Arc<PackRow>, ApiError> {
    library_user(principal)?;
    let row = match state.commerce.cache.pack(id) {
        Some(row) => row,
        None => match state.db.pack(id).await? {
            Some(row) => state.commerce.cache.put_pack(row),
            None => return Err(ApiError::not_found("pack")),
        },
    };
    if !principal.belongs_to(&row.org_id) {
        return Err(ApiError::not_found("pack"));
    }
    if row.status != "published"
        && !EMPLOYEES.contains(&principal.role)
        && !principal.is_superuser()
    {
        return Err(ApiError::not_found("pack"));
    }
    Ok(row)
}

pub(crate) async fn user_has_access(
    state: &AppState,
    principal: &Principal,
    pack: &PackRow,
) -> Result<bool, ApiError> {
    Ok(pack.price_type == "free"
        || pack.creator_id == principal.user_id
        || state
            .db
            .has_pack_access(&principal.user_id, &pack.id)
            .await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PackParams {
    /// Words in the title or description.
    pub search: Option<String>,
    /// Packs carrying every one of these tags (`tags=a&tags=b`).
    pub tags: Option<Vec<String>>,
    pub creator_id: Option<String>,
    /// `free`, `one_time` or `subscription`.
    pub price_type: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Published packs of the caller's organisation, newest first.
#[utoipa::path(
    get,
    path = "/catalog/packs",
    tag = "marketplace",
    security(("bearer" = [])),
    params(PackParams),
    responses(
        (status = 200, description = "One page of packs", body = Page<PackSummary>),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter, limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_packs(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<PackSummary>>, ApiError> {
    library_user(&principal)?;
    let org_id = principal.org_id.clone().unwrap_or_default();
    let query = ListQuery {
        pairs: query_pairs(raw.as_deref())?,
    };
    let mut errors = Vec::new();
    let price_type = one_of(
        "price_type",
        query.one("price_type"),
        PRICE_TYPES,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (limit, cursor) = query.page()?;
    let tags = query.many("tags");
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .list_packs(
            &org_id,
            &PackQuery {
                search: query.one("search"),
                tags: &tags,
                creator_id: query.one("creator_id"),
                price_type: price_type.as_deref(),
            },
            cursor.as_ref(),
            limit,
        )
        .await?;
    let page = Page::from_rows(rows, limit, |r| Cursor {
        created_at: r.created_at,
        id: r.id.clone(),
    });
    Ok(Json(Page {
        data: page.data.iter().map(PackSummary::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One pack with its items and whether the caller may use it.
#[utoipa::path(
    get,
    path = "/catalog/packs/{id}",
    tag = "marketplace",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Pack id")),
    responses(
        (status = 200, description = "The pack", body = PackDetail),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such pack in the caller's organisation", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn get_pack(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<PackDetail>, ApiError> {
    let pack = visible_pack(&state, &principal, &id).await?;
    let items = state.db.pack_items(&pack.id).await?;
    Ok(Json(PackDetail {
        summary: PackSummary::from(pack.as_ref()),
        rituals: items
            .into_iter()
            .map(|i| PackItem {
                id: i.id,
                title: i.title,
                content_type: i.content_type,
                duration: i.duration_minutes.map(|m| m * 60),
            })
            .collect(),
        user_has_access: user_has_access(&state, &principal, &pack).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePack {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(max_length = 5000)]
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `free`, `one_time` or `subscription`.
    pub price_type: String,
    /// Price in cents (0 for free packs).
    #[schema(minimum = 0, maximum = 100000000)]
    #[serde(default)]
    pub price_cents: i64,
    /// ISO currency code, lower case (default `usd`).
    pub currency: Option<String>,
    /// `month` or `year`; required for subscriptions.
    pub subscription_interval: Option<String>,
    /// The creator's own content items, in order.
    #[serde(default)]
    pub content_ids: Vec<String>,
}

fn validate_pack(body: &CreatePack) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let title = body.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        errors.push(FieldError::new("title", "must be 1 to 200 characters"));
    }
    if body.description.chars().count() > 5000 {
        errors.push(FieldError::new(
            "description",
            "must be at most 5000 characters",
        ));
    }
    if body.tags.len() > 20
        || body
            .tags
            .iter()
            .any(|t| t.trim().is_empty() || t.len() > 50)
    {
        errors.push(FieldError::new(
            "tags",
            "at most 20 tags of 1 to 50 characters",
        ));
    }
    if body.content_ids.len() > 100 {
        errors.push(FieldError::new("content_ids", "at most 100 items"));
    }
    match body.price_type.as_str() {
        "free" if body.price_cents != 0 => {
            errors.push(FieldError::new("price_cents", "must be 0 for a free pack"))
        }
        "one_time" | "subscription" if !(50..=100_000_000).contains(&body.price_cents) => errors
            .push(FieldError::new(
                "price_cents",
                "must be between 50 and 100000000",
            )),
        "free" | "one_time" | "subscription" => {}
        _ => errors.push(FieldError::new(
            "price_type",
            "must be one of free, one_time, subscription",
        )),
    }
    match (
        body.price_type.as_str(),
        body.subscription_interval.as_deref(),
    ) {
        ("subscription", Some("month" | "year")) | ("free" | "one_time", None) => {}
        ("subscription", _) => errors.push(FieldError::new(
            "subscription_interval",
            "must be month or year",
        )),
        _ => errors.push(FieldError::new(
            "subscription_interval",
            "only for subscriptions",
        )),
    }
    if body
        .currency
        .as_deref()
        .is_some_and(|c| c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_lowercase()))
    {
        errors.push(FieldError::new(
            "currency",
            "must be a lower-case ISO 4217 code",
        ));
    }
    errors
}

/// Creates a draft pack of the caller's own content (organisation staff and owners).
#[utoipa::path(
    post,
    path = "/catalog/packs",
    tag = "marketplace",
    security(("bearer" = [])),
    request_body = CreatePack,
    responses(
        (status = 201, description = "Draft created", body = PackDetail),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff or an owner, or email not verified", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or content that is not the caller's", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn create_pack(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<Map<String, Value>>,
) -> Result<(StatusCode, Json<PackDetail>), ApiError> {
    let body: CreatePack = from_object(body)?;
    let org_id = principal
        .org_id
        .clone()
        .ok_or_else(|| ApiError::forbidden("platform accounts do not create packs"))?;
    principal.require_org_role(&org_id, EMPLOYEES)?;
    let errors = validate_pack(&body);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let id = new_id();
    let tags: Vec<String> = body.tags.iter().map(|t| t.trim().to_lowercase()).collect();
    let tags = serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into());
    let created = state
        .db
        .create_pack(NewPack {
            id: &id,
            org_id: &org_id,
            creator_id: &principal.user_id,
            title: body.title.trim(),
            description: body.description.trim(),
            tags: &tags,
            price_type: &body.price_type,
            price_cents: body.price_cents,
            currency: body.currency.as_deref().unwrap_or("usd"),
            subscription_interval: body.subscription_interval.as_deref(),
            content_ids: &body.content_ids,
        })
        .await?;
    if !created {
        return Err(ApiError::validation(vec![FieldError::new(
            "content_ids",
            "every item must be the creator's own content",
        )]));
    }
    let pack = visible_pack(&state, &principal, &id).await?;
    let Json(detail) = get_pack(
        State(state),
        Authenticated(principal),
        Path(pack.id.clone()),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(detail)))
}

/// Publishes a draft pack to the organisation's catalogue (its staff and owners).
#[utoipa::path(
    post,
    path = "/catalog/packs/{id}/publish",
    tag = "marketplace",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Pack id")),
    responses(
        (status = 200, description = "Published", body = PackSummary),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff or an owner", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such pack in the caller's organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The pack has no content", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn publish_pack(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<PackSummary>, ApiError> {
    let pack = visible_pack(&state, &principal, &id).await?;
    principal.require_org_role(&pack.org_id, EMPLOYEES)?;
    if pack.item_count == 0 {
        return Err(ApiError::conflict(
            "EMPTY_PACK",
            "add content before publishing",
        ));
    }
    state.db.publish_pack(&pack.id).await?;
    state.commerce.cache.invalidate_pack(&pack.id);
    let pack = visible_pack(&state, &principal, &id).await?;
    Ok(Json(PackSummary::from(pack.as_ref())))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendation {
    pub pack_id: String,
    pub title: String,
    pub reason: String,
    /// 0 to 1; higher is a better match.
    pub score: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendations {
    pub recommendations: Vec<Recommendation>,
}

/// Scores packs by how much their tags overlap the tags of what the user has practised
/// (weighted by how often); packs with no overlap follow as new arrivals with a low score.
pub fn rank(practised: &[String], packs: &[PackRow], limit: usize) -> Vec<Recommendation> {
    let mut weights: HashMap<&str, f64> = HashMap::new();
    for tag in practised {
        *weights.entry(tag.as_str()).or_default() += 1.0;
    }
    let total: f64 = weights.values().sum();
    let mut ranked: Vec<Recommendation> = packs
        .iter()
        .enumerate()
        .map(|(i, pack)| {
            let tags: Vec<String> = serde_json::from_str(&pack.tags).unwrap_or_default();
            let mut shared: Vec<&str> = tags
                .iter()
                .map(String::as_str)
                .filter(|t| weights.contains_key(t))
                .collect();
            shared.sort_by(|a, b| weights[b].total_cmp(&weights[a]).then(a.cmp(b)));
            let overlap: f64 = shared.iter().map(|t| weights[t]).sum();
            if total > 0.0 && overlap > 0.0 {
                Recommendation {
                    pack_id: pack.id.clone(),
                    title: pack.title.clone(),
                    reason: format!(
                        "Based on your practice history: {}",
                        shared
                            .iter()
                            .take(3)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    score: (0.3 + 0.7 * overlap / total).min(1.0),
                }
            } else {
                // Newer packs first among the unrelated ones.
                Recommendation {
                    pack_id: pack.id.clone(),
                    title: pack.title.clone(),
                    reason: "New in your catalogue".into(),
                    score: 0.1 / (1.0 + i as f64 * 0.1),
                }
            }
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.pack_id.cmp(&b.pack_id)));
    ranked.truncate(limit);
    for r in &mut ranked {
        r.score = (r.score * 1000.0).round() / 1000.0;
    }
    ranked
}

/// Packs the caller does not have yet, ranked by their practice history and tags.
#[utoipa::path(
    get,
    path = "/catalog/recommendations",
    tag = "marketplace",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recommendations, best first", body = Recommendations),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn recommendations(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Recommendations>, ApiError> {
    library_user(&principal)?;
    let org_id = principal.org_id.clone().unwrap_or_default();
    let practised = state.db.practised_tags(&principal.user_id).await?;
    let packs = state
        .db
        .packs_without_access(&org_id, &principal.user_id)
        .await?;
    Ok(Json(Recommendations {
        recommendations: rank(&practised, &packs, 10),
    }))
}

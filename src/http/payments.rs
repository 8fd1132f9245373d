//! `/payments` and `/subscriptions`: Stripe Checkout for packs and credits, the signed webhook
//! that fulfils them, and subscription status and changes.
//!
//! The webhook is the source of truth: a checkout only records what was offered; access and
//! credits are granted when Stripe reports the payment, in the same transaction that records the
//! event id, so a replayed event grants nothing twice.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, FieldError};
use crate::http::authn::Authenticated;
use crate::http::catalog::{user_has_access, visible_pack};
use crate::http::content::library_user;
use crate::http::json::Json;
use crate::http::object::from_object;
use crate::http::pagination::{Cursor, Page, PageParams};
use crate::payments::{verify_signature, StripeError};
use crate::state::AppState;
use crate::storage::credits::CreditKind;
use crate::storage::payments::{NewCheckout, SubscriptionRow, SubscriptionState};
use crate::storage::{new_id, now_ms, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_checkout))
        .routes(routes!(webhook))
        .routes(routes!(list_subscriptions))
        .routes(routes!(get_subscription))
        .routes(routes!(change_subscription))
}

impl From<StripeError> for ApiError {
    fn from(error: StripeError) -> Self {
        tracing::warn!(%error, "Stripe request failed");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_ERROR",
            "the payment provider could not complete the request",
        )
    }
}

/// What a checkout sells.
pub enum Sale<'a> {
    Credits {
        pack_type: &'a str,
        credits: i64,
        cents: i64,
    },
    Pack(&'a crate::storage::catalog::PackRow),
}

pub struct CreatedCheckout {
    pub id: String,
    pub url: String,
}

fn checked_url(field: &str, url: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let url = url?;
    if (url.starts_with("https://") || url.starts_with("http://")) && url.len() <= 2000 {
        Some(url.to_string())
    } else {
        errors.push(FieldError::new(field, "must be an http(s) URL"));
        None
    }
}

/// Creates a Stripe Checkout Session for a sale and records it.
pub async fn checkout(
    state: &AppState,
    principal: &Principal,
    sale: Sale<'_>,
    success_url: Option<&str>,
    cancel_url: Option<&str>,
) -> Result<CreatedCheckout, ApiError> {
    let mut errors = Vec::new();
    let success = checked_url("success_url", success_url, &mut errors);
    let cancel = checked_url("cancel_url", cancel_url, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let stripe = state
        .commerce
        .stripe
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("payments are not configured on this server"))?;
    let base = state.settings.public_url();
    let success = success
        .unwrap_or_else(|| format!("{base}/payments/success?session_id={{CHECKOUT_SESSION_ID}}"));
    let cancel = cancel.unwrap_or_else(|| format!("{base}/payments/cancel"));
    let org_id = principal.org_id.clone().unwrap_or_default();
    // Our own id goes to Stripe as the client reference and the idempotency key: a retried
    // request cannot create a second session.
    let reference = new_id();
    let mut form: Vec<(String, String)> = vec![
        ("success_url".into(), success),
        ("cancel_url".into(), cancel),
        ("client_reference_id".into(), reference.clone()),
        ("metadata[user_id]".into(), principal.user_id.clone()),
        ("metadata[org_id]".into(), org_id.clone()),
        ("line_items[0][quantity]".into(), "1".into()),
    ];
    let (kind, pack_id, credit_pack, credits, cents) = match &sale {
        Sale::Credits {
            pack_type,
            credits,
            cents,
        } => {
            form.extend([
                ("mode".into(), "payment".into()),
                ("metadata[kind]".into(), "credits".into()),
                ("metadata[credit_pack]".into(), pack_type.to_string()),
                ("line_items[0][price_data][currency]".into(), "usd".into()),
                (
                    "line_items[0][price_data][unit_amount]".into(),
                    cents.to_string(),
                ),
                (
                    "line_items[0][price_data][product_data][name]".into(),
                    format!("{credits} credits ({pack_type})"),
                ),
            ]);
            ("credits", None, Some(*pack_type), Some(*credits), *cents)
        }
        Sale::Pack(pack) => {
            form.extend([
                ("metadata[kind]".into(), "pack".into()),
                ("metadata[pack_id]".into(), pack.id.clone()),
                (
                    "line_items[0][price_data][currency]".into(),
                    pack.currency.clone(),
                ),
                (
                    "line_items[0][price_data][unit_amount]".into(),
                    pack.price_cents.to_string(),
                ),
                (
                    "line_items[0][price_data][product_data][name]".into(),
                    pack.title.clone(),
                ),
            ]);
            if pack.price_type == "subscription" {
                let interval = pack
                    .subscription_interval
                    .clone()
                    .unwrap_or_else(|| "month".into());
                form.extend([
                    ("mode".into(), "subscription".into()),
                    (
                        "line_items[0][price_data][recurring][interval]".into(),
                        interval,
                    ),
                    (
                        "subscription_data[metadata][user_id]".into(),
                        principal.user_id.clone(),
                    ),
                    ("subscription_data[metadata][org_id]".into(), org_id.clone()),
                    (
                        "subscription_data[metadata][pack_id]".into(),
                        pack.id.clone(),
                    ),
                ]);
            } else {
                form.push(("mode".into(), "payment".into()));
            }
            ("pack", Some(pack.id.as_str()), None, None, pack.price_cents)
        }
    };
    let session = stripe
        .create_checkout_session(&form, &format!("checkout-{reference}"))
        .await?;
    let url = session.url.ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("Stripe sent a session without a URL"))
    })?;
    state
        .db
        .insert_checkout(NewCheckout {
            id: &session.id,
            user_id: &principal.user_id,
            org_id: &org_id,
            kind,
            pack_id,
            credit_pack,
            credits_amount: credits,
            amount_cents: cents,
        })
        .await?;
    Ok(CreatedCheckout {
        id: session.id,
        url,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub pack_id: String,
    /// Accepted for compatibility; the pack decides how it is sold.
    pub price_type: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutResponse {
    /// Where to send the user to pay; absent when nothing is to be paid (free packs).
    pub checkout_url: Option<String>,
    pub session_id: Option<String>,
    /// True when access was granted at once (a free pack).
    pub access_granted: bool,
}

/// Buys a pack: creates a Stripe Checkout Session (free packs are granted at once).
#[utoipa::path(
    post,
    path = "/payments/checkout",
    tag = "payments",
    security(("bearer" = [])),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "Checkout created, or access granted", body = CheckoutResponse),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such pack in the caller's organisation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The caller already has access", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe refused or failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Payments are not configured", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn create_checkout(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<Map<String, Value>>,
) -> Result<(StatusCode, Json<CheckoutResponse>), ApiError> {
    let body: CheckoutRequest = from_object(body)?;
    library_user(&principal)?;
    let pack = visible_pack(&state, &principal, &body.pack_id).await?;
    if pack.status != "published" {
        return Err(ApiError::not_found("pack"));
    }
    if pack.price_type != "free" && user_has_access(&state, &principal, &pack).await? {
        return Err(ApiError::conflict(
            "ALREADY_OWNED",
            "you already have this pack",
        ));
    }
    if pack.price_type == "free" {
        let mut tx = state.db.pool.begin().await?;
        state
            .db
            .grant_pack_access(&mut tx, &principal.user_id, &pack.id, "free", "free")
            .await?;
        tx.commit().await?;
        return Ok((
            StatusCode::CREATED,
            Json(CheckoutResponse {
                checkout_url: None,
                session_id: None,
                access_granted: true,
            }),
        ));
    }
    let session = checkout(
        &state,
        &principal,
        Sale::Pack(&pack),
        body.success_url.as_deref(),
        body.cancel_url.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CheckoutResponse {
            checkout_url: Some(session.url),
            session_id: Some(session.id),
            access_granted: false,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// True when this event id was handled before and nothing changed.
    pub duplicate: bool,
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    created: i64,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: Value,
}

fn text<'a>(object: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = object;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str()
}

/// Stripe's webhook: verifies `Stripe-Signature`, then handles each event once.
#[utoipa::path(
    post,
    path = "/payments/webhook",
    tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "`t=…,v1=…` as Stripe sends it")),
    request_body(content = Object, description = "A Stripe event", content_type = "application/json"),
    responses(
        (status = 200, description = "Handled (or a replay, changing nothing)", body = WebhookAck),
        (status = 400, description = "Missing or bad signature, or not an event", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Webhooks are not configured", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    let secret = state
        .commerce
        .webhook_secret
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("webhooks are not configured on this server"))?;
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("INVALID_SIGNATURE", "Stripe-Signature is missing"))?;
    verify_signature(
        header,
        &body,
        secret.expose_secret().as_bytes(),
        now_ms() / 1000,
        state.commerce.webhook_tolerance_secs,
    )
    .map_err(|e| ApiError::bad_request("INVALID_SIGNATURE", e.to_string()))?;
    let event: Event = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("BAD_EVENT", "the body is not a Stripe event"))?;
    let db = &state.db;
    let mut tx = db.pool.begin().await?;
    if !db
        .claim_stripe_event(&mut tx, &event.id, &event.kind, event.created)
        .await?
    {
        tx.rollback().await?;
        return Ok(Json(WebhookAck {
            received: true,
            duplicate: true,
        }));
    }
    let object = &event.data.object;
    let mut touched_packs = Vec::new();
    match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let paid = matches!(
                text(object, &["payment_status"]),
                None | Some("paid") | Some("no_payment_required")
            );
            if let (Some(session_id), true) = (text(object, &["id"]), paid) {
                if let Some(checkout) = db.checkout_in(&mut tx, session_id).await? {
                    // A refund that overtook this event wins: nothing is granted.
                    if checkout.status == "open" {
                        let intent = text(object, &["payment_intent"]);
                        let subscription = text(object, &["subscription"]);
                        match checkout.kind.as_str() {
                            "credits" => {
                                db.add_credits(
                                    &mut tx,
                                    &checkout.user_id,
                                    CreditKind::Purchase,
                                    checkout.credits_amount.unwrap_or(0),
                                    &checkout.id,
                                )
                                .await?;
                            }
                            _ => {
                                if let Some(pack_id) = &checkout.pack_id {
                                    let (source, reference) = match subscription {
                                        Some(sub) => ("subscription", sub),
                                        None => ("purchase", checkout.id.as_str()),
                                    };
                                    db.grant_pack_access(
                                        &mut tx,
                                        &checkout.user_id,
                                        pack_id,
                                        source,
                                        reference,
                                    )
                                    .await?;
                                    if let Some(sub) = subscription {
                                        db.apply_subscription(
                                            &mut tx,
                                            SubscriptionState {
                                                id: sub,
                                                user_id: &checkout.user_id,
                                                org_id: &checkout.org_id,
                                                pack_id,
                                                status: "active",
                                                item_id: None,
                                                price_cents: checkout.amount_cents,
                                                cancel_at_period_end: false,
                                                current_period_end: None,
                                                event_at: event.created,
                                            },
                                        )
                                        .await?;
                                    }
                                    touched_packs.push(pack_id.clone());
                                }
                            }
                        }
                        db.update_checkout(
                            &mut tx,
                            &checkout.id,
                            "completed",
                            intent,
                            subscription,
                        )
                        .await?;
                    }
                } else {
                    tracing::warn!(%session_id, "checkout.session.completed for an unknown session");
                }
            }
        }
        "charge.refunded" => {
            let fully = object
                .get("refunded")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let charge = text(object, &["id"]).unwrap_or_default().to_string();
            if let (Some(intent), true) = (text(object, &["payment_intent"]), fully) {
                if let Some(checkout) = db.checkout_by_intent_in(&mut tx, intent).await? {
                    if checkout.status == "completed" {
                        match checkout.kind.as_str() {
                            "credits" => {
                                db.take_back_credits(
                                    &mut tx,
                                    &checkout.user_id,
                                    CreditKind::Refund,
                                    checkout.credits_amount.unwrap_or(0),
                                    &format!("refund:{charge}"),
                                )
                                .await?;
                            }
                            _ => {
                                if let Some(pack_id) = &checkout.pack_id {
                                    let reference =
                                        checkout.subscription_id.as_deref().unwrap_or(&checkout.id);
                                    db.revoke_pack_access(
                                        &mut tx,
                                        &checkout.user_id,
                                        pack_id,
                                        reference,
                                    )
                                    .await?;
                                }
                            }
                        }
                    }
                    db.update_checkout(&mut tx, &checkout.id, "refunded", None, None)
                        .await?;
                } else if let Some(session) = text(object, &["metadata", "checkout_session"]) {
                    // Refund before the completion event reached us: mark it so the late
                    // completion grants nothing.
                    db.update_checkout(&mut tx, session, "refunded", Some(intent), None)
                        .await?;
                }
            }
        }
        "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.created" => {
            let sub_id = text(object, &["id"]).unwrap_or_default();
            let known = db.subscription_in(&mut tx, sub_id).await?;
            let user_id = known
                .as_ref()
                .map(|s| s.user_id.clone())
                .or_else(|| text(object, &["metadata", "user_id"]).map(str::to_string));
            let pack_id = known
                .as_ref()
                .map(|s| s.pack_id.clone())
                .or_else(|| text(object, &["metadata", "pack_id"]).map(str::to_string));
            let org_id = known
                .as_ref()
                .map(|s| s.org_id.clone())
                .or_else(|| text(object, &["metadata", "org_id"]).map(str::to_string))
                .unwrap_or_default();
            if let (Some(user_id), Some(pack_id), false) = (user_id, pack_id, sub_id.is_empty()) {
                let status = if event.kind == "customer.subscription.deleted" {
                    "canceled"
                } else {
                    subscription_status(object)
                };
                let item_id = object.pointer("/items/data/0/id").and_then(Value::as_str);
                let price = object
                    .pointer("/items/data/0/price/unit_amount")
                    .and_then(Value::as_i64)
                    .or(known.as_ref().map(|s| s.price_cents))
                    .unwrap_or(0);
                let applied = db
                    .apply_subscription(
                        &mut tx,
                        SubscriptionState {
                            id: sub_id,
                            user_id: &user_id,
                            org_id: &org_id,
                            pack_id: &pack_id,
                            status,
                            item_id,
                            price_cents: price,
                            cancel_at_period_end: object
                                .get("cancel_at_period_end")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                            current_period_end: object
                                .get("current_period_end")
                                .and_then(Value::as_i64)
                                .map(|s| s * 1000),
                            event_at: event.created,
                        },
                    )
                    .await?;
                // Older events than the newest applied change nothing, so out-of-order delivery
                // cannot resurrect a cancelled subscription.
                if applied {
                    if status == "active" {
                        db.grant_pack_access(&mut tx, &user_id, &pack_id, "subscription", sub_id)
                            .await?;
                    } else {
                        db.revoke_pack_access(&mut tx, &user_id, &pack_id, sub_id)
                            .await?;
                    }
                }
            }
        }
        _ => {}
    }
    tx.commit().await?;
    for pack in touched_packs {
        state.commerce.cache.invalidate_pack(&pack);
    }
    Ok(Json(WebhookAck {
        received: true,
        duplicate: false,
    }))
}

/// Our status of a Stripe subscription object.
fn subscription_status(object: &Value) -> &'static str {
    let paused = object.get("pause_collection").is_some_and(|p| !p.is_null());
    match object.get("status").and_then(Value::as_str) {
        Some("canceled") | Some("incomplete_expired") => "canceled",
        Some("paused") => "paused",
        Some("active") | Some("trialing") if paused => "paused",
        Some("active") | Some("trialing") => "active",
        _ => "past_due",
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: String,
    pub pack_id: String,
    /// `active`, `paused`, `past_due` or `canceled`.
    pub status: String,
    pub price_amount: f64,
    pub cancel_at_period_end: bool,
    pub current_period_end: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<SubscriptionRow> for SubscriptionView {
    fn from(row: SubscriptionRow) -> Self {
        Self {
            id: row.id,
            pack_id: row.pack_id,
            status: row.status,
            price_amount: row.price_cents as f64 / 100.0,
            cancel_at_period_end: row.cancel_at_period_end != 0,
            current_period_end: row.current_period_end.map(rfc3339),
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

/// The caller's subscriptions, newest first (as last reported by Stripe's webhooks).
#[utoipa::path(
    get,
    path = "/subscriptions",
    tag = "payments",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "One page of subscriptions", body = Page<SubscriptionView>),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn list_subscriptions(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<SubscriptionView>>, ApiError> {
    library_user(&principal)?;
    let (limit, cursor) = params.resolve()?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .subscriptions_of(&principal.user_id, cursor.as_ref(), limit)
        .await?;
    let page = Page::from_rows(rows, limit, |r| Cursor {
        created_at: r.created_at,
        id: r.id.clone(),
    });
    Ok(Json(Page {
        data: page.data.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn own_subscription(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<SubscriptionRow, ApiError> {
    library_user(principal)?;
    match state.db.subscription(id).await? {
        Some(row) if row.user_id == principal.user_id => Ok(row),
        _ => Err(ApiError::not_found("subscription")),
    }
}

/// One subscription's status.
#[utoipa::path(
    get,
    path = "/subscriptions/{id}",
    tag = "payments",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription of the caller's", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn get_subscription(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    Ok(Json(
        own_subscription(&state, &principal, &id).await?.into(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    /// `upgrade`, `downgrade`, `pause`, `resume` or `cancel`.
    pub action: String,
    /// For upgrade and downgrade: the subscription pack to move to (same organisation).
    pub pack_id: Option<String>,
    /// For cancel: `immediately` or `period_end` (default).
    #[serde(alias = "effectiveDate")]
    pub effective: Option<String>,
}

/// Changes a subscription through Stripe; the webhook that follows confirms the new state.
#[utoipa::path(
    post,
    path = "/subscriptions/{id}/change",
    tag = "payments",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")),
    request_body = ChangeRequest,
    responses(
        (status = 200, description = "Changed; the state Stripe reported", body = SubscriptionView),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription (or target pack)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not allowed in the subscription's state", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid action or target", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe refused or failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Payments are not configured", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn change_subscription(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let body: ChangeRequest = from_object(body)?;
    let allowed = ["upgrade", "downgrade", "pause", "resume", "cancel"];
    if !allowed.contains(&body.action.as_str()) {
        return Err(ApiError::validation(vec![FieldError::new(
            "action",
            "must be one of upgrade, downgrade, pause, resume, cancel",
        )]));
    }
    if body
        .effective
        .as_deref()
        .is_some_and(|e| e != "immediately" && e != "period_end")
    {
        return Err(ApiError::validation(vec![FieldError::new(
            "effective",
            "must be immediately or period_end",
        )]));
    }
    let sub = own_subscription(&state, &principal, &id).await?;
    let stripe = state
        .commerce
        .stripe
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("payments are not configured on this server"))?;
    let refuse = |why: &str| Err(ApiError::conflict("INVALID_STATE", why.to_string()));
    let key = format!("change-{}-{}", sub.id, new_id());
    let mut new_price = sub.price_cents;
    let mut new_pack = sub.pack_id.clone();
    let answer = match body.action.as_str() {
        "pause" if sub.status != "active" => {
            return refuse("only an active subscription can be paused")
        }
        "pause" => {
            stripe
                .update_subscription(
                    &sub.id,
                    &[("pause_collection[behavior]".into(), "void".into())],
                    &key,
                )
                .await?
        }
        "resume" if sub.status != "paused" => {
            return refuse("only a paused subscription can be resumed")
        }
        "resume" => {
            stripe
                .update_subscription(&sub.id, &[("pause_collection".into(), String::new())], &key)
                .await?
        }
        "cancel" if sub.status == "canceled" => {
            return refuse("the subscription is already cancelled")
        }
        "cancel" if body.effective.as_deref() == Some("immediately") => {
            stripe.cancel_subscription(&sub.id).await?
        }
        "cancel" => {
            stripe
                .update_subscription(
                    &sub.id,
                    &[("cancel_at_period_end".into(), "true".into())],
                    &key,
                )
                .await?
        }
        _ => {
            if sub.status != "active" {
                return refuse("only an active subscription can change plan");
            }
            let target_id = body.pack_id.as_deref().ok_or_else(|| {
                ApiError::validation(vec![FieldError::new(
                    "pack_id",
                    "is required to change plan",
                )])
            })?;
            let target = visible_pack(&state, &principal, target_id).await?;
            if target.price_type != "subscription"
                || target.status != "published"
                || target.id == sub.pack_id
            {
                return Err(ApiError::validation(vec![FieldError::new(
                    "pack_id",
                    "must be another published subscription pack",
                )]));
            }
            let up = target.price_cents > sub.price_cents;
            if up != (body.action == "upgrade") {
                return Err(ApiError::validation(vec![FieldError::new(
                    "pack_id",
                    if up {
                        "costs more: that is an upgrade"
                    } else {
                        "does not cost more: that is a downgrade"
                    },
                )]));
            }
            let item = sub.item_id.clone().ok_or_else(|| {
                ApiError::conflict(
                    "INVALID_STATE",
                    "the subscription is not confirmed by the provider yet",
                )
            })?;
            let interval = target
                .subscription_interval
                .clone()
                .unwrap_or_else(|| "month".into());
            let form: Vec<(String, String)> = vec![
                ("items[0][id]".into(), item),
                (
                    "items[0][price_data][currency]".into(),
                    target.currency.clone(),
                ),
                (
                    "items[0][price_data][unit_amount]".into(),
                    target.price_cents.to_string(),
                ),
                (
                    "items[0][price_data][product_data][name]".into(),
                    target.title.clone(),
                ),
                ("items[0][price_data][recurring][interval]".into(), interval),
                // Upgrades are charged pro rata at once; downgrades take effect without a refund.
                (
                    "proration_behavior".into(),
                    if up { "always_invoice" } else { "none" }.into(),
                ),
                ("metadata[pack_id]".into(), target.id.clone()),
            ];
            new_price = target.price_cents;
            new_pack = target.id.clone();
            stripe.update_subscription(&sub.id, &form, &key).await?
        }
    };
    let status = subscription_status(&serde_json::json!({
        "status": answer.status,
        "pause_collection": answer.pause_collection,
    }));
    let mut tx = state.db.pool.begin().await?;
    if new_pack != sub.pack_id {
        db_move_pack(&state, &mut tx, &sub, &new_pack).await?;
    }
    state
        .db
        .apply_subscription(
            &mut tx,
            SubscriptionState {
                id: &sub.id,
                user_id: &sub.user_id,
                org_id: &sub.org_id,
                pack_id: &new_pack,
                status,
                item_id: answer
                    .items
                    .as_ref()
                    .and_then(|i| i.data.first())
                    .map(|i| i.id.as_str()),
                price_cents: new_price,
                cancel_at_period_end: answer.cancel_at_period_end,
                current_period_end: None,
                event_at: sub.last_event_at,
            },
        )
        .await?;
    if status == "active" {
        state
            .db
            .grant_pack_access(&mut tx, &sub.user_id, &new_pack, "subscription", &sub.id)
            .await?;
    } else {
        state
            .db
            .revoke_pack_access(&mut tx, &sub.user_id, &new_pack, &sub.id)
            .await?;
    }
    tx.commit().await?;
    let row = own_subscription(&state, &principal, &id).await?;
    Ok(Json(row.into()))
}

/// A plan change moves the subscription's access from the old pack to the new one.
async fn db_move_pack(
    state: &AppState,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sub: &SubscriptionRow,
    new_pack: &str,
) -> Result<(), ApiError> {
    state
        .db
        .revoke_pack_access(tx, &sub.user_id, &sub.pack_id, &sub.id)
        .await?;
    sqlx::query("UPDATE subscriptions SET pack_id = $2 WHERE id = $1")
        .bind(&sub.id)
        .bind(new_pack)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

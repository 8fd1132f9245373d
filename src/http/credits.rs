//! `/credits`: the balance, the ledger, whether an action is affordable, and buying credit packs
//! through Stripe Checkout.

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, FieldError};
use crate::http::authn::Authenticated;
use crate::http::content::library_user;
use crate::http::json::Json;
use crate::http::object::from_object;
use crate::http::pagination::{Cursor, Page, PageParams};
use crate::state::AppState;
use crate::storage::credits::{CreditKind, TransactionRow};
use crate::storage::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(balance))
        .routes(routes!(transactions))
        .routes(routes!(check))
        .routes(routes!(purchase))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Balance {
    pub balance: i64,
    /// Whether the free credits granted at sign-up have all been spent.
    pub free_tier_used: bool,
    pub last_transaction_at: Option<String>,
}

/// The caller's credit balance.
#[utoipa::path(
    get,
    path = "/credits/balance",
    tag = "credits",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The balance", body = Balance),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn balance(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Balance>, ApiError> {
    library_user(&principal)?;
    let summary = state.db.credit_summary(&principal.user_id).await?;
    Ok(Json(Balance {
        balance: summary.balance,
        free_tier_used: summary.granted > 0 && summary.consumed >= summary.granted,
        last_transaction_at: summary.last_transaction_at.map(rfc3339),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionParams {
    /// `purchase`, `consumption`, `refund` or `grant`.
    #[serde(rename = "type", alias = "transaction_type")]
    pub kind: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Transaction {
    pub id: String,
    /// `purchase`, `consumption`, `refund` or `grant`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Credits added (positive) or taken (negative).
    pub amount: i64,
    pub balance_after: i64,
    /// What caused it: a generation job, a checkout session, `signup:<user id>`…
    pub reference: String,
    /// For consumptions: the content paid for.
    pub content_id: Option<String>,
    pub created_at: String,
}

impl From<TransactionRow> for Transaction {
    fn from(row: TransactionRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            amount: row.amount,
            balance_after: row.balance_after,
            reference: row.reference,
            content_id: row.content_id,
            created_at: rfc3339(row.created_at),
        }
    }
}

/// The caller's credit ledger, newest first.
#[utoipa::path(
    get,
    path = "/credits/transactions",
    tag = "credits",
    security(("bearer" = [])),
    params(TransactionParams),
    responses(
        (status = 200, description = "One page of transactions", body = Page<Transaction>),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid type, limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn transactions(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(params): Query<TransactionParams>,
) -> Result<Json<Page<Transaction>>, ApiError> {
    library_user(&principal)?;
    let kind = match params.kind.as_deref() {
        None => None,
        Some(raw) => Some(CreditKind::parse(raw).ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(
                "type",
                "must be one of purchase, consumption, refund, grant",
            )])
        })?),
    };
    let (limit, cursor) = PageParams {
        limit: params.limit,
        cursor: params.cursor.clone(),
    }
    .resolve()?;
    let cursor = cursor.map(|c| (c.created_at, c.id));
    let rows = state
        .db
        .credit_transactions(&principal.user_id, kind, cursor.as_ref(), limit)
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

/// Actions that cost credits, and how many.
const ACTIONS: &[(&str, i64)] = &[
    ("ritual_creation", 1),
    ("guided_meditation_creation", 1),
    ("affirmation_creation", 1),
];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// `ritual_creation`, `guided_meditation_creation` or `affirmation_creation`.
    pub action: String,
    /// For modifications of an existing item (costs the same).
    pub ritual_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    pub sufficient: bool,
    pub balance: i64,
    pub required: i64,
    pub message: String,
}

/// Whether the caller can afford an action now.
#[utoipa::path(
    post,
    path = "/credits/check",
    tag = "credits",
    security(("bearer" = [])),
    request_body = CheckRequest,
    responses(
        (status = 200, description = "The answer", body = CheckResponse),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown action", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn check(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<Map<String, Value>>,
) -> Result<Json<CheckResponse>, ApiError> {
    let body: CheckRequest = from_object(body)?;
    library_user(&principal)?;
    let required = ACTIONS
        .iter()
        .find(|(a, _)| *a == body.action)
        .map(|(_, cost)| *cost)
        .ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(
                "action",
                "must be one of ritual_creation, guided_meditation_creation, affirmation_creation",
            )])
        })?;
    let balance = state.db.credit_balance(&principal.user_id).await?;
    let sufficient = balance >= required;
    Ok(Json(CheckResponse {
        sufficient,
        balance,
        required,
        message: if sufficient {
            "You have sufficient credits".into()
        } else {
            format!("You need {required} credit(s); buy a credit pack to continue")
        },
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseRequest {
    /// `starter` (3 credits), `seeker` (10) or `architect` (30).
    pub pack_type: String,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseResponse {
    pub checkout_url: String,
    pub session_id: String,
    pub credits_amount: i64,
}

/// Buys a credit pack: creates a Stripe Checkout Session; credits arrive with the webhook.
#[utoipa::path(
    post,
    path = "/credits/purchase",
    tag = "credits",
    security(("bearer" = [])),
    request_body = PurchaseRequest,
    responses(
        (status = 201, description = "Checkout created", body = PurchaseResponse),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified, or a platform account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown pack or invalid URL", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe refused or failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Payments are not configured", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn purchase(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<Map<String, Value>>,
) -> Result<(axum::http::StatusCode, Json<PurchaseResponse>), ApiError> {
    let body: PurchaseRequest = from_object(body)?;
    library_user(&principal)?;
    let (credits, cents) = crate::payments::credit_pack(&body.pack_type).ok_or_else(|| {
        ApiError::validation(vec![FieldError::new(
            "pack_type",
            "must be one of starter, seeker, architect",
        )])
    })?;
    let session = crate::http::payments::checkout(
        &state,
        &principal,
        crate::http::payments::Sale::Credits {
            pack_type: &body.pack_type,
            credits,
            cents,
        },
        body.success_url.as_deref(),
        body.cancel_url.as_deref(),
    )
    .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(PurchaseResponse {
            checkout_url: session.url,
            session_id: session.id,
            credits_amount: credits,
        }),
    ))
}

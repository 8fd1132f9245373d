//! The HTTP edge: one module per resource, each with its own router, merged here under `/api/v1`.

pub mod access;
pub mod analytics;
pub mod answers;
pub mod audit_logs;
pub mod auth;
pub mod authn;
pub mod catalog;
pub mod chat;
pub mod client_ip;
pub mod content;
pub mod conversation;
pub mod credits;
pub mod employees;
pub mod health;
pub mod internal;
pub mod json;
pub mod knowledge_bases;
pub mod media;
pub mod object;
pub mod openapi;
pub mod org_analytics;
pub mod orgs;
pub mod pagination;
pub mod passwords;
pub mod payments;
pub mod problem;
pub mod rate_limit;
pub mod request_id;
pub mod users;
pub mod widget;
pub mod ws;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

pub const API_PREFIX: &str = "/api/v1";

/// All routes with their OpenAPI document.
pub fn routes(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let api = OpenApiRouter::new()
        .merge(health::api_router())
        .merge(auth::router(state.clone()))
        .merge(passwords::router(state.clone()))
        .merge(orgs::router())
        .merge(org_analytics::router())
        .merge(employees::router(state.clone()))
        .merge(users::router())
        .merge(audit_logs::router())
        .merge(analytics::router())
        .merge(conversation::router())
        .merge(chat::router())
        .merge(content::router())
        .merge(media::router())
        .merge(credits::router())
        .merge(catalog::router())
        .merge(payments::router())
        .merge(knowledge_bases::router(&state.settings))
        .merge(internal::router())
        .routes(utoipa_axum::routes!(ws::upgrade))
        .merge(openapi::router());
    let (router, mut document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest(API_PREFIX, api)
        .merge(health::probe_router())
        .merge(widget::router())
        .split_for_parts();
    openapi::add_problem_defaults(&mut document);
    (router, document)
}

/// The full application: routes, fallbacks and the middleware every request passes through.
pub fn app(routes: Router<AppState>, state: AppState) -> Router {
    let settings = state.settings.clone();
    routes
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            BodyLimits {
                default: RequestBodyLimitLayer::new(settings.max_body_bytes),
                upload: RequestBodyLimitLayer::new(knowledge_bases::upload_body_limit(&settings)),
            },
            body_limit,
        ))
        .layer(axum::middleware::from_fn(rate_limit::headers))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(cors(&settings.cors_origins))
        .layer(axum::middleware::from_fn(problem::middleware))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(state)
}

#[derive(Clone)]
struct BodyLimits {
    default: RequestBodyLimitLayer,
    upload: RequestBodyLimitLayer,
}

/// Bounds every request body; knowledge-base uploads get their own, larger bound.
async fn body_limit(
    axum::extract::State(limits): axum::extract::State<BodyLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use tower::{Layer, ServiceExt};
    let layer = if knowledge_bases::is_upload(request.method(), request.uri().path()) {
        limits.upload
    } else {
        limits.default
    };
    let inner = tower::service_fn(move |request: axum::http::Request<_>| {
        let next = next.clone();
        async move {
            Ok::<_, std::convert::Infallible>(next.run(request.map(axum::body::Body::new)).await)
        }
    });
    match layer.layer(inner).oneshot(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::ACCEPT,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-session-token"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ])
}

/// Used by handlers that must answer with an empty body.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

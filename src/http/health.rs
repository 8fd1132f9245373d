//! Health: a detailed report for operators and the two probes orchestrators poll.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::json::Json;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    /// `ok` when every critical dependency is up, else `degraded`.
    pub status: &'static str,
    pub version: &'static str,
    pub build: BuildInfo,
    pub uptime_seconds: u64,
    /// Whether the server is draining before shutdown.
    pub draining: bool,
    pub checks: BTreeMap<&'static str, DependencyCheck>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BuildInfo {
    pub git_sha: &'static str,
    pub profile: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyCheck {
    /// `up` or `down`.
    pub status: &'static str,
    pub latency_ms: f64,
    /// What the dependency is, e.g. `sqlite` or `postgres`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeStatus {
    pub status: &'static str,
}

pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

pub fn probe_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(livez))
        .routes(routes!(readyz))
}

/// Status of each critical dependency, version and build.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Every critical dependency is up", body = HealthReport),
        (status = 503, description = "A critical dependency is down", body = HealthReport),
    )
)]
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let database = check_database(&state).await;
    let healthy = database.status == "up";
    let mut checks = BTreeMap::new();
    checks.insert("database", database);
    let report = HealthReport {
        status: if healthy { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        build: BuildInfo {
            git_sha: option_env!("RAPPORT_GIT_SHA").unwrap_or("unknown"),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        },
        uptime_seconds: state.started_at.elapsed().as_secs(),
        draining: state.is_draining(),
        checks,
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

async fn check_database(state: &AppState) -> DependencyCheck {
    let started = Instant::now();
    let result = state.db.ping().await;
    DependencyCheck {
        status: if result.is_ok() { "up" } else { "down" },
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        kind: state.db.backend.name().to_string(),
        error: result.err().map(|e| e.to_string()),
    }
}

/// Liveness: the process is running and serving.
#[utoipa::path(
    get,
    path = "/livez",
    tag = "health",
    responses((status = 200, description = "Alive", body = ProbeStatus))
)]
async fn livez() -> Json<ProbeStatus> {
    Json(ProbeStatus { status: "alive" })
}

/// Readiness: the database answers and the server is not draining.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready for traffic", body = ProbeStatus),
        (status = 503, description = "Not ready (database down or draining)", body = ProbeStatus),
    )
)]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ProbeStatus { status: "draining" }),
        );
    }
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, Json(ProbeStatus { status: "ready" })),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ProbeStatus {
                status: "database unavailable",
            }),
        ),
    }
}

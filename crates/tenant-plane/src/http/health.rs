//! Liveness and readiness. Neither depends on the AI provider: a provider outage must never
//! take the tenant plane out of its load balancer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::state::AppState;

/// A health answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `shutting_down`.
    pub status: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process serves requests with a valid configuration.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Health),
    (status = 503, description = "shutting down", body = Health),
))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Health>) {
    if state.shutting_down.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "shutting_down",
            }),
        )
    } else {
        (StatusCode::OK, Json(Health { status: "ready" }))
    }
}

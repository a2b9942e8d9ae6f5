//! The HTTP API: thin axum handlers, one file per resource. Handlers extract and
//! authenticate, then call a service; errors map to HTTP in one place ([`crate::error`]).

mod auth;
mod portal;
mod resources;
mod tp;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::Error;
use crate::state::AppState;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Every endpoint, as `METHOD path`; `docs/control-plane.md` must list each one (checked by a
/// test) and the isolation tests walk the tenant-scoped ones.
pub const ENDPOINTS: &[&str] = &[
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "POST /api/v1/tenants",
    "POST /api/v1/auth/token",
    "GET /api/v1/tenants/{tenant}",
    "GET /api/v1/tenants/{tenant}/users",
    "POST /api/v1/tenants/{tenant}/users",
    "POST /api/v1/tenants/{tenant}/users/{user}/tokens",
    "GET /api/v1/tenants/{tenant}/clusters",
    "POST /api/v1/tenants/{tenant}/clusters",
    "POST /api/v1/tenants/{tenant}/clusters/{cluster}/admin-tokens",
    "GET /api/v1/tenants/{tenant}/ai/settings",
    "PUT /api/v1/tenants/{tenant}/ai/settings",
    "POST /api/v1/tenants/{tenant}/ai/test",
    "POST /api/v1/tenants/{tenant}/ai/models",
    "PUT /api/v1/tenants/{tenant}/clusters/{cluster}/ai/settings",
    "DELETE /api/v1/tenants/{tenant}/clusters/{cluster}/ai/settings",
    "POST /api/v1/tenants/{tenant}/clusters/{cluster}/ai/test",
    "POST /api/v1/tenants/{tenant}/clusters/{cluster}/ai/models",
    "GET /api/v1/tenants/{tenant}/credits",
    "POST /api/v1/tenants/{tenant}/credits/transfers",
    "POST /api/tp/v1/enroll",
    "GET /api/tp/v1/settings",
    "POST /api/tp/v1/status",
    "POST /api/tp/v1/usage",
    "POST /api/tp/v1/validations/{id}",
    "POST /api/tp/v1/managed/chat",
    "GET /portal",
    "GET /portal/settings/ai",
    "GET /portal/assets/ai.js",
    "GET /portal/assets/ai.css",
];

/// Builds the application.
pub fn app(state: Arc<AppState>) -> Router {
    use resources as r;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/tenants", post(r::create_tenant))
        .route("/api/v1/auth/token", post(r::login))
        .route("/api/v1/tenants/{tenant}", get(r::tenant))
        .route(
            "/api/v1/tenants/{tenant}/users",
            get(r::list_users).post(r::create_user),
        )
        .route(
            "/api/v1/tenants/{tenant}/users/{user}/tokens",
            post(r::create_token),
        )
        .route(
            "/api/v1/tenants/{tenant}/clusters",
            get(r::list_clusters).post(r::create_cluster),
        )
        .route(
            "/api/v1/tenants/{tenant}/clusters/{cluster}/admin-tokens",
            post(r::tp_admin_token),
        )
        .route(
            "/api/v1/tenants/{tenant}/ai/settings",
            get(r::get_settings).put(r::put_settings),
        )
        .route("/api/v1/tenants/{tenant}/ai/test", post(r::test_settings))
        .route("/api/v1/tenants/{tenant}/ai/models", post(r::list_models))
        .route(
            "/api/v1/tenants/{tenant}/clusters/{cluster}/ai/settings",
            put(r::put_cluster_settings).delete(r::delete_cluster_settings),
        )
        .route(
            "/api/v1/tenants/{tenant}/clusters/{cluster}/ai/test",
            post(r::test_cluster_settings),
        )
        .route(
            "/api/v1/tenants/{tenant}/clusters/{cluster}/ai/models",
            post(r::list_cluster_models),
        )
        .route("/api/v1/tenants/{tenant}/credits", get(r::credits))
        .route(
            "/api/v1/tenants/{tenant}/credits/transfers",
            post(r::transfer),
        )
        .route("/api/tp/v1/enroll", post(tp::enroll))
        .route("/api/tp/v1/settings", get(tp::settings))
        .route("/api/tp/v1/status", post(tp::status))
        .route("/api/tp/v1/usage", post(tp::usage))
        .route("/api/tp/v1/validations/{id}", post(tp::validation))
        .route("/api/tp/v1/managed/chat", post(tp::managed_chat))
        .route("/portal", get(portal::index))
        .route("/portal/settings/ai", get(portal::ai_page))
        .route("/portal/assets/ai.js", get(portal::script))
        .route("/portal/assets/ai.css", get(portal::style))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found() -> Error {
    Error::NotFound("endpoint (see docs/control-plane.md)")
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<serde_json::Value>) {
    if state.store.ping().await {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "database unavailable"})),
        )
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Logs one line per request and feeds the metrics: method, route template (never the raw
/// path, which carries ids), status, latency. Never headers or bodies.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .request(method.as_str(), &route, status, elapsed);
    if route == "/healthz" || route == "/readyz" || route == "/metrics" {
        tracing::trace!(%method, route, status, ms = elapsed.as_millis() as u64, "request");
    } else {
        tracing::info!(%method, route, status, ms = elapsed.as_millis() as u64, "request");
    }
    resp
}

/// A JSON body whose rejections read as our errors (naming what is wrong).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(body_error(&e)),
        }
    }
}

fn body_error(e: &JsonRejection) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::bad(
            "body_too_large",
            format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
        );
    }
    Error::bad(
        "invalid_body",
        format!(
            "the body must be JSON of the documented shape: {}",
            e.body_text()
        ),
    )
}

//! `GET /metrics` (Prometheus/OpenMetrics text). Requests are counted by the `observe` middleware
//! in `http/mod.rs`, which also logs them.
//!
//! The endpoint is unauthenticated by default, like most Prometheus targets scraped inside a
//! cluster; with `TP_METRICS_TOKEN` set it requires that bearer token. It exposes tenant ids,
//! model names and counts, never prompts, answers or secrets.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::state::AppState;

/// The metrics exposition.
#[utoipa::path(get, path = "/metrics", tag = "meta", responses(
    (status = 200, description = "OpenMetrics text exposition", content_type = "application/openmetrics-text"),
    (status = 401, description = "TP_METRICS_TOKEN is set and the bearer token is missing or wrong", body = super::ErrorBody),
    (status = 404, description = "metrics are disabled (TP_METRICS_ENABLED=0)", body = super::ErrorBody),
))]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(metrics) = &state.metrics else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_disabled",
            "metrics are disabled on this tenant plane (TP_METRICS_ENABLED=0)",
        ));
    };
    if let Some(token) = &state.current().config.metrics.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Constant-time comparison so response timing reveals nothing about the token.
        let ok: bool = presented
            .as_bytes()
            .ct_eq(token.expose_secret().as_bytes())
            .into();
        if !ok {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "GET /metrics needs Authorization: Bearer <TP_METRICS_TOKEN>",
            ));
        }
    }
    // The queue gauges come from the database (shared by every replica); a scrape must not
    // hang on it, so a slow or failing read leaves the previous values.
    if let Some(data) = state.data() {
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            data.store.queue_stats(None),
        );
        match read.await {
            Ok(Ok(q)) => {
                metrics.queue(q.queued, q.running, crate::jobs::age_seconds(q.oldest));
            }
            Ok(Err(e)) => tracing::warn!("metrics: cannot read the AI queue: {e}"),
            Err(_) => tracing::warn!("metrics: reading the AI queue timed out"),
        }
    }
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        metrics.render(),
    )
        .into_response())
}

//! `GET /api/status`: what the tenant plane runs with, for operators and the Settings → AI
//! page. Never shows a secret.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::auth::Admin;
use crate::state::{AppState, ReloadStatus};

/// The status document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// The chat provider, or null when not configured.
    pub provider: Option<String>,
    /// The chat model.
    pub model: Option<String>,
    /// The provider endpoint's host.
    pub endpoint_host: Option<String>,
    /// Where the AI settings came from: `environment`, `values file`, `secret file` or a mix;
    /// `control plane (portal)` or `control plane (managed)` without local settings.
    pub config_source: String,
    /// The embedding provider: `openai`, `bedrock` or `fallback`.
    pub embeddings_provider: String,
    /// The embedding model (`keyword` for the fallback).
    pub embeddings_model: String,
    /// Increases with every accepted reload.
    pub config_generation: u64,
    /// The last reload attempt.
    pub last_reload: ReloadStatus,
    /// Whether a control plane is connected.
    pub cp_connected: bool,
    /// Configuration warnings.
    pub warnings: Vec<String>,
    /// The circuit breaker of every provider endpoint in use: `closed`, `open` (failing fast
    /// after repeated failures) or `half_open` (the next call probes).
    pub circuits: Vec<Circuit>,
    /// The fallback policy set locally (`TP_FALLBACK_POLICY`); without it the portal's
    /// policy applies per tenant (default `fail_closed`).
    pub fallback_policy: Option<String>,
    /// AI requests waiting under `queue_and_retry`, all tenants.
    pub queue: QueueStatus,
}

/// The `queue_and_retry` queue.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct QueueStatus {
    /// Jobs waiting for their next attempt.
    pub queued: i64,
    /// Jobs a worker is running.
    pub running: i64,
    /// Age of the oldest unfinished job in seconds (0 when none).
    pub oldest_age_seconds: f64,
    /// Why the numbers are missing, when the database could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One endpoint's circuit breaker.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Circuit {
    /// `kind model @ host`.
    pub endpoint: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
}

/// The tenant plane's status.
#[utoipa::path(get, path = "/api/status", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, body = Status),
    (status = 401, body = super::ErrorBody),
))]
pub async fn status(_admin: Admin, State(state): State<Arc<AppState>>) -> Json<Status> {
    let published = state.current();
    let c = &published.config;
    // Without local settings, what the control plane distributes is in force.
    let (provider, model, config_source) = match &c.provider {
        Some(p) => (
            Some(p.kind.to_string()),
            Some(p.model.clone()),
            c.provider_source(),
        ),
        None => {
            let (p, m, source) = crate::cp::in_force(&state);
            let source = match source {
                atlasai_core::protocol::ConfigSource::None => c.provider_source(),
                s => format!("control plane ({})", s.as_str()),
            };
            (p, m, source)
        }
    };
    let queue = match state.data() {
        Some(data) => match data.store.queue_stats(None).await {
            Ok(q) => QueueStatus {
                queued: q.queued,
                running: q.running,
                oldest_age_seconds: crate::jobs::age_seconds(q.oldest),
                error: None,
            },
            Err(e) => QueueStatus {
                error: Some(format!("the database could not be read: {e}")),
                ..QueueStatus::default()
            },
        },
        None => QueueStatus::default(),
    };
    Json(Status {
        provider,
        model,
        endpoint_host: c
            .provider
            .as_ref()
            .and_then(|p| p.endpoint.as_ref())
            .and_then(|u| u.host_str().map(str::to_owned)),
        config_source,
        embeddings_provider: c.embeddings.provider_name().to_owned(),
        embeddings_model: c.embeddings.model().to_owned(),
        config_generation: published.generation,
        last_reload: state.last_reload(),
        cp_connected: state.cp_connected(),
        warnings: c.warnings.clone(),
        circuits: state
            .routes
            .circuits()
            .into_iter()
            .map(|(endpoint, s)| Circuit {
                endpoint,
                state: s.as_str().to_owned(),
            })
            .collect(),
        fallback_policy: c.queue.policy.map(|p| p.as_str().to_owned()),
        queue,
    })
}

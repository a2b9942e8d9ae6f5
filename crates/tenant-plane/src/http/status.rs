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
    })
}

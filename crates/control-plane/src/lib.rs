//! AtlasAI control plane (`atlasai-cp`): the SaaS side. It will own portal AI settings,
//! distribute them to tenant planes and meter AI credits; today it serves health endpoints and
//! validates its configuration.
//!
//! `main.rs` only calls [`cli::main`]; the server is built by [`app`] so tests can drive it.

pub mod cli;
pub mod config;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// Builds the application.
pub fn app() -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz() -> Json<Value> {
    Json(json!({"status": "ready"}))
}

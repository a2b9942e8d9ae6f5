//! `POST /api/ai/test`: the connection test.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiError;
use super::auth::{Admin, Tenant};
use crate::connection_test::{self, Outcome, Target, TestFailed, TestOk};
use crate::state::AppState;

/// The request body: `{"test": true}`, optionally with `"target": "embeddings"`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Must be `true`.
    pub test: bool,
    /// `chat` (default) or `embeddings`.
    #[serde(default)]
    pub target: Target,
}

/// Makes a small real completion (or embedding) through the configured provider.
#[utoipa::path(
    post, path = "/api/ai/test", tag = "ai",
    request_body = TestRequest,
    params(("x-tenant-id" = String, Header, description = "the tenant")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the provider answered", body = TestOk),
        (status = 400, description = "missing x-tenant-id or bad body", body = super::ErrorBody),
        (status = 401, description = "missing or wrong admin token", body = super::ErrorBody),
        (status = 503, description = "the provider failed, or none is configured", body = TestFailed),
    )
)]
pub async fn test_connection(
    _admin: Admin,
    Tenant(tenant): Tenant,
    State(state): State<Arc<AppState>>,
    body: Result<Json<TestRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body exceeds {} bytes", super::MAX_BODY_BYTES),
            );
        }
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body must be JSON like {{\"test\": true}} (optionally \"target\": \"chat\" or \"embeddings\"): {}", e.body_text()),
        )
    })?;
    if !body.test {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "\"test\" must be true",
        ));
    }
    Ok(
        match connection_test::run(&state, &tenant, body.target).await {
            Outcome::Ok(ok) => (StatusCode::OK, Json(ok)).into_response(),
            Outcome::NotConfigured(f) | Outcome::Failed(f) => {
                (StatusCode::SERVICE_UNAVAILABLE, Json(f)).into_response()
            }
        },
    )
}

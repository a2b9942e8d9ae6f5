//! `POST /api/alerts`: alert correlation.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::ApiError;
use super::auth::{Admin, Tenant};
use super::extract::{DataApi, JsonBody};
use crate::incidents::CreateAlert;
use crate::incidents::correlation::{self, CorrelationOutcome, Decision};
use crate::state::AppState;

/// Files an alert: it joins the open incident of its service it is most similar to (same
/// fingerprint; else embeddings when configured, keyword similarity otherwise, within
/// `TP_CORRELATION_WINDOW`), or opens a new incident. The answer says which and why.
#[utoipa::path(
    post, path = "/api/alerts", tag = "incidents",
    request_body = CreateAlert,
    params(("x-tenant-id" = String, Header, description = "the tenant")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "attached to an open incident", body = CorrelationOutcome),
        (status = 201, description = "a new incident was opened", body = CorrelationOutcome),
        (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn create(
    _admin: Admin,
    Tenant(tenant): Tenant,
    State(state): State<Arc<AppState>>,
    DataApi(data): DataApi,
    JsonBody(body): JsonBody<CreateAlert>,
) -> Result<(StatusCode, Json<CorrelationOutcome>), ApiError> {
    let outcome = correlation::correlate(&state, &data, &tenant, body).await?;
    let status = match outcome.decision {
        Decision::Attached => StatusCode::OK,
        Decision::Created => StatusCode::CREATED,
    };
    Ok((status, Json(outcome)))
}

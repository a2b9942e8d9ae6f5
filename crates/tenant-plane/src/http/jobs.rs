//! Queued AI requests (`queue_and_retry`): `GET /api/ai/jobs`, `GET /api/ai/jobs/{id}` and
//! `GET /api/ai/jobs/{id}/events`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::ApiError;
use super::auth::{Admin, Tenant};
use super::extract::{DataApi, Params};
use crate::jobs::{self, JobView};
use crate::state::AppState;

/// `GET /api/ai/jobs` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListJobs {
    /// Only jobs in this state: `queued`, `running`, `succeeded`, `failed`, `expired`.
    pub status: Option<String>,
    /// At most this many, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// The tenant's queued AI requests, newest first.
#[utoipa::path(
    get, path = "/api/ai/jobs", tag = "ai",
    params(("x-tenant-id" = String, Header, description = "the tenant"), ListJobs),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Vec<JobView>),
        (status = 400, description = "a parameter is invalid", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn list(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Params(p): Params<ListJobs>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    Ok(Json(
        jobs::list(&data, &tenant, p.status.as_deref(), p.limit).await?,
    ))
}

/// One queued AI request: its state, and the answer once it succeeded.
#[utoipa::path(
    get, path = "/api/ai/jobs/{id}", tag = "ai",
    params(("x-tenant-id" = String, Header, description = "the tenant"), ("id" = String, Path)),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = JobView),
        (status = 401, body = super::ErrorBody),
        (status = 404, description = "no such job for this tenant", body = super::ErrorBody),
    )
)]
pub async fn get(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(jobs::get(&data, &tenant, &id).await?))
}

/// A queued AI request's progress as server-sent events: `status` whenever it changes, then
/// `done` with the final state (and the answer).
#[utoipa::path(
    get, path = "/api/ai/jobs/{id}/events", tag = "ai",
    params(("x-tenant-id" = String, Header, description = "the tenant"), ("id" = String, Path)),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "text/event-stream"),
        (status = 401, body = super::ErrorBody),
        (status = 404, description = "no such job for this tenant", body = super::ErrorBody),
    )
)]
pub async fn events(
    _admin: Admin,
    Tenant(tenant): Tenant,
    State(_state): State<Arc<AppState>>,
    DataApi(data): DataApi,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let first = jobs::get(&data, &tenant, &id).await?;
    Ok(super::event_stream(jobs::events(data, tenant, first)))
}

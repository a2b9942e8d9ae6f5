//! `/api/runbooks`: runbook documents (markdown).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;

use super::ApiError;
use super::auth::{Admin, Tenant};
use super::extract::{DataApi, JsonBody, Params};
use crate::runbooks::{self, CreateRunbook, ListRunbooks};
use crate::store::{Page, Runbook, RunbookSummary};

/// Stores a runbook.
#[utoipa::path(
    post, path = "/api/runbooks", tag = "runbooks",
    request_body = CreateRunbook,
    params(("x-tenant-id" = String, Header, description = "the tenant")),
    security(("admin_token" = [])),
    responses(
        (status = 201, body = Runbook),
        (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn create(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    JsonBody(body): JsonBody<CreateRunbook>,
) -> Result<(StatusCode, Json<Runbook>), ApiError> {
    let runbook = runbooks::create(&data, &tenant, body).await?;
    Ok((StatusCode::CREATED, Json(runbook)))
}

/// Lists runbooks (without their content), newest first.
#[utoipa::path(
    get, path = "/api/runbooks", tag = "runbooks",
    params(("x-tenant-id" = String, Header, description = "the tenant"), ListRunbooks),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Page<RunbookSummary>),
        (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn list(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Params(q): Params<ListRunbooks>,
) -> Result<Json<Page<RunbookSummary>>, ApiError> {
    Ok(Json(runbooks::list(&data, &tenant, q).await?))
}

/// One runbook, with its markdown.
#[utoipa::path(
    get, path = "/api/runbooks/{id}", tag = "runbooks",
    params(("x-tenant-id" = String, Header, description = "the tenant"), ("id" = String, Path, description = "runbook id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Runbook),
        (status = 404, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn get(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Path(id): Path<String>,
) -> Result<Json<Runbook>, ApiError> {
    Ok(Json(runbooks::get(&data, &tenant, &id).await?))
}

//! Incidents and what is attached to them: `/api/incidents`, `/api/incidents/{id}`,
//! `/api/incidents/{id}/alerts`, `/api/incidents/{id}/changes`.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;

use super::ApiError;
use super::auth::{Admin, Tenant};
use super::extract::{DataApi, JsonBody, Params};
use crate::incidents::{
    self, CreateAlert, CreateChange, CreateIncident, ListIncidents, PageParams, UpdateIncident,
};
use crate::store::{Alert, Change, Incident, IncidentDetail, Page};

/// Records an incident.
#[utoipa::path(
    post, path = "/api/incidents", tag = "incidents",
    request_body = CreateIncident,
    params(("x-tenant-id" = String, Header, description = "the tenant")),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "created", body = Incident),
        (status = 400, description = "a field is missing or invalid; the message names it", body = super::ErrorBody),
        (status = 401, description = "missing or wrong admin token", body = super::ErrorBody),
    )
)]
pub async fn create(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    JsonBody(body): JsonBody<CreateIncident>,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let incident = incidents::create(&data, &tenant, body).await?;
    Ok((StatusCode::CREATED, Json(incident)))
}

/// Lists incidents, newest first (by start time), with filters and cursor pagination.
#[utoipa::path(
    get, path = "/api/incidents", tag = "incidents",
    params(("x-tenant-id" = String, Header, description = "the tenant"), ListIncidents),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "one page", body = Page<Incident>),
        (status = 400, description = "a filter is invalid", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn list(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Params(q): Params<ListIncidents>,
) -> Result<Json<Page<Incident>>, ApiError> {
    Ok(Json(incidents::list(&data, &tenant, q).await?))
}

/// One incident, with how many alerts, changes and log lines are attached.
#[utoipa::path(
    get, path = "/api/incidents/{id}", tag = "incidents",
    params(("x-tenant-id" = String, Header, description = "the tenant"), ("id" = String, Path, description = "incident id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = IncidentDetail),
        (status = 404, description = "no such incident for this tenant", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn get(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    Ok(Json(incidents::get(&data, &tenant, &id).await?))
}

/// Changes an incident's status (`resolved` and `closed` stamp `resolved_at`; reopening
/// clears it).
#[utoipa::path(
    patch, path = "/api/incidents/{id}", tag = "incidents",
    request_body = UpdateIncident,
    params(("x-tenant-id" = String, Header, description = "the tenant"), ("id" = String, Path, description = "incident id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Incident),
        (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn update(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateIncident>,
) -> Result<Json<Incident>, ApiError> {
    Ok(Json(incidents::update(&data, &tenant, &id, body).await?))
}

/// Attaches an alert to this incident (no correlation; see `POST /api/alerts` for that).
#[utoipa::path(
    post, path = "/api/incidents/{id}/alerts", tag = "incidents",
    request_body = CreateAlert,
    params(("x-tenant-id" = String, Header, description = "the tenant"), ("id" = String, Path, description = "incident id")),
    security(("admin_token" = [])),
    responses(
        (status = 201, body = Alert),
        (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn add_alert(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CreateAlert>,
) -> Result<(StatusCode, Json<Alert>), ApiError> {
    let alert = incidents::add_alert(&data, &tenant, &id, body).await?;
    Ok((StatusCode::CREATED, Json(alert)))
}

/// An incident's alerts, oldest first.
#[utoipa::path(
    get, path = "/api/incidents/{id}/alerts", tag = "incidents",
    params(("x-tenant-id" = String, Header, description = "the tenant"), ("id" = String, Path, description = "incident id"), PageParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Page<Alert>),
        (status = 404, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn list_alerts(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Path(id): Path<String>,
    Params(p): Params<PageParams>,
) -> Result<Json<Page<Alert>>, ApiError> {
    Ok(Json(incidents::list_alerts(&data, &tenant, &id, p).await?))
}

/// Attaches a change or configuration record (deploy, config diff, feature flag...).
#[utoipa::path(
    post, path = "/api/incidents/{id}/changes", tag = "incidents",
    request_body = CreateChange,
    params(("x-tenant-id" = String, Header, description = "the tenant"), ("id" = String, Path, description = "incident id")),
    security(("admin_token" = [])),
    responses(
        (status = 201, body = Change),
        (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn add_change(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CreateChange>,
) -> Result<(StatusCode, Json<Change>), ApiError> {
    let change = incidents::add_change(&data, &tenant, &id, body).await?;
    Ok((StatusCode::CREATED, Json(change)))
}

/// An incident's change records, oldest first.
#[utoipa::path(
    get, path = "/api/incidents/{id}/changes", tag = "incidents",
    params(("x-tenant-id" = String, Header, description = "the tenant"), ("id" = String, Path, description = "incident id"), PageParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Page<Change>),
        (status = 404, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn list_changes(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Path(id): Path<String>,
    Params(p): Params<PageParams>,
) -> Result<Json<Page<Change>>, ApiError> {
    Ok(Json(incidents::list_changes(&data, &tenant, &id, p).await?))
}

//! `POST /api/logs` (NDJSON bulk ingest) and `GET /api/logs`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

use super::ApiError;
use super::auth::{Admin, Tenant};
use super::extract::{DataApi, Params};
use crate::ingest::{self, IngestResult, LogParams};
use crate::store::{LogLine, Page};

/// Stores a batch of log lines: one JSON object per line (NDJSON), for an incident
/// (`?incident_id=`) or a service (`?service=`, or `"service"` on each line). All lines are
/// stored in one transaction, or none: the first bad line is reported by number with what is
/// wrong. The body may be up to `TP_INGEST_MAX_BODY` (default 32 MiB).
#[utoipa::path(
    post, path = "/api/logs", tag = "logs",
    request_body(content = String, content_type = "application/x-ndjson", description = "one JSON object per line: {\"ts\": \"2026-11-02T14:03:07Z\", \"level\": \"error\", \"message\": \"...\", \"service\": \"...\"}"),
    params(("x-tenant-id" = String, Header, description = "the tenant"), LogParams),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "every line was stored", body = IngestResult),
        (status = 400, description = "a line is invalid (nothing was stored); the message names the line number", body = super::ErrorBody),
        (status = 404, description = "the incident does not exist", body = super::ErrorBody),
        (status = 413, description = "the body exceeds TP_INGEST_MAX_BODY", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn ingest(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Params(params): Params<LogParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestResult>), ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the log batch exceeds {} bytes (TP_INGEST_MAX_BODY); split it into several requests",
                    data.settings.ingest_max_body
                ),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
        }
    })?;
    let result = ingest::ingest(&data, &tenant, body, params).await?;
    Ok((StatusCode::CREATED, Json(result)))
}

/// Lists log lines of an incident or a service, oldest first.
#[utoipa::path(
    get, path = "/api/logs", tag = "logs",
    params(("x-tenant-id" = String, Header, description = "the tenant"), LogParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Page<LogLine>),
        (status = 400, description = "neither incident_id nor service, or a bad filter", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn list(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Params(params): Params<LogParams>,
) -> Result<Json<Page<LogLine>>, ApiError> {
    Ok(Json(ingest::list(&data, &tenant, params).await?))
}

//! `GET /api/audit/egress`: the egress audit log of a tenant.

use axum::Json;

use super::ApiError;
use super::auth::{Admin, Tenant};
use super::extract::{DataApi, Params};
use crate::audit::{self, AuditParams};
use crate::calls::AuditRecord;
use crate::store::Page;

/// Every model call of the tenant, newest first: feature, provider, endpoint host, model,
/// tokens, latency, outcome, and whether the data left the customer's network.
#[utoipa::path(
    get, path = "/api/audit/egress", tag = "admin",
    params(("x-tenant-id" = String, Header, description = "the tenant"), AuditParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "one page", body = Page<AuditRecord>),
        (status = 400, description = "a parameter is invalid; the message names it", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn egress(
    _admin: Admin,
    Tenant(tenant): Tenant,
    DataApi(data): DataApi,
    Params(p): Params<AuditParams>,
) -> Result<Json<Page<AuditRecord>>, ApiError> {
    Ok(Json(audit::list(&data, &tenant, p).await?))
}

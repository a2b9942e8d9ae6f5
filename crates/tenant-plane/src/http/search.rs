//! `GET /api/search` and `GET /api/search/status`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::ApiError;
use super::auth::{Admin, Tenant};
use super::extract::{DataApi, Params};
use crate::search::params::SearchParams;
use crate::search::{self, SearchResults, SearchStatus};
use crate::state::AppState;

/// Searches the tenant's incidents, log lines and runbooks: BM25 with phrase queries, field
/// filters and highlights; hybrid (keyword and vector results fused by reciprocal rank
/// fusion) when an embedding provider is configured and available. Works without any AI
/// provider.
#[utoipa::path(
    get, path = "/api/search", tag = "search",
    params(("x-tenant-id" = String, Header, description = "the tenant"), SearchParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = SearchResults),
        (status = 400, description = "a parameter is invalid; the message names it", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn search(
    _admin: Admin,
    Tenant(tenant): Tenant,
    State(state): State<Arc<AppState>>,
    DataApi(data): DataApi,
    Params(params): Params<SearchParams>,
) -> Result<Json<SearchResults>, ApiError> {
    let req = params.into_request()?;
    Ok(Json(search::search(&state, &data, &tenant, &req).await?))
}

/// How far this replica's search index and the tenant's embeddings have caught up.
#[utoipa::path(
    get, path = "/api/search/status", tag = "search",
    params(("x-tenant-id" = String, Header, description = "the tenant")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = SearchStatus),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn status(
    _admin: Admin,
    Tenant(tenant): Tenant,
    State(state): State<Arc<AppState>>,
    DataApi(data): DataApi,
) -> Result<Json<SearchStatus>, ApiError> {
    Ok(Json(search::status(&state, &data, &tenant).await?))
}

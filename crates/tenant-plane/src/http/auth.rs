//! Extractors for the admin bearer token and the tenant header. Authentication is checked
//! before the tenant, so an unauthenticated caller learns nothing else.

use std::sync::Arc;

use atlasai_core::TenantId;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::state::AppState;

/// Proof that the request carried the admin token.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let unauthorized = |msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg);
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(unauthorized("missing Authorization: Bearer <admin token>"));
        };
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .unwrap_or_default();
        // Admin tokens the control plane issued for this cluster (EdDSA JWTs) work alongside
        // the static token.
        if presented.matches('.').count() == 2 && state.routes.cp().verify_admin_token(presented) {
            return Ok(Admin);
        }
        let Some(expected) = state.admin_token() else {
            return Err(unauthorized(
                "admin endpoints are disabled: no admin token is configured",
            ));
        };
        // Constant-time comparison so response timing reveals nothing about the token.
        let ok: bool = presented
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes())
            .into();
        if ok {
            Ok(Admin)
        } else {
            Err(unauthorized("invalid admin token"))
        }
    }
}

/// The tenant named by the `x-tenant-id` header.
#[derive(Debug)]
pub struct Tenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("x-tenant-id") else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_tenant",
                "missing x-tenant-id header: name the tenant this request is for",
            ));
        };
        let text = value.to_str().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_tenant",
                "x-tenant-id must be ASCII",
            )
        })?;
        TenantId::parse(text.trim()).map(Tenant).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_tenant",
                format!("x-tenant-id: {e}"),
            )
        })
    }
}

//! Extractors that authenticate a request: the operator's bootstrap token, a portal user's
//! JWT access token, or an enrolled cluster's credential. Each reads `Authorization: Bearer`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::identity::{self, Caller, hash_token};
use crate::state::AppState;
use crate::store::EnrolledCluster;

fn bearer(parts: &Parts) -> Result<&str, Error> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| Error::Unauthorized("missing Authorization: Bearer <token>".to_owned()))?;
    header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::Unauthorized("the Authorization header must be Bearer <token>".to_owned())
        })
}

/// The operator (holder of `CP_BOOTSTRAP_TOKEN`).
#[derive(Debug)]
pub struct Operator;

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Error> {
        let presented = bearer(parts)?;
        let Some(expected) = &state.config.bootstrap_token else {
            return Err(Error::Unauthorized(
                "operator endpoints are disabled: CP_BOOTSTRAP_TOKEN is not set".to_owned(),
            ));
        };
        // Constant-time so response timing reveals nothing about the token.
        if bool::from(
            presented
                .as_bytes()
                .ct_eq(expected.expose_secret().as_bytes()),
        ) {
            Ok(Operator)
        } else {
            Err(Error::Unauthorized("invalid operator token".to_owned()))
        }
    }
}

/// A portal user, from a verified access token.
#[derive(Debug)]
pub struct User(pub Caller);

impl FromRequestParts<Arc<AppState>> for User {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Error> {
        identity::authenticate(state, bearer(parts)?).map(User)
    }
}

/// An enrolled cluster, from its credential.
#[derive(Debug)]
pub struct Cluster(pub EnrolledCluster);

impl FromRequestParts<Arc<AppState>> for Cluster {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Error> {
        let token = bearer(parts)?;
        state
            .store
            .cluster_by_credential(&hash_token(token))
            .await?
            .map(Cluster)
            .ok_or_else(|| {
                Error::Unauthorized(
                    "unknown cluster credential; enroll again with a new enrollment token"
                        .to_owned(),
                )
            })
    }
}

//! Handlers for the tenant-plane protocol (`/api/tp/v1/...`), authenticated by the cluster's
//! credential (except enrollment, which spends a one-time token).

use std::sync::Arc;
use std::time::Duration;

use atlasai_core::protocol::{
    EnrollRequest, ManagedChatRequest, StatusReport, UsageReport, ValidationResult,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Body;
use super::auth::Cluster;
use crate::error::Error;
use crate::state::AppState;

type S = State<Arc<AppState>>;

pub async fn enroll(State(s): S, Body(b): Body<EnrollRequest>) -> Result<Response, Error> {
    let out = crate::tp::enroll(&s, &b).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct Wait {
    /// Seconds to hold the request open while nothing changes.
    #[serde(default)]
    wait: u64,
}

pub async fn settings(
    Cluster(c): Cluster,
    State(s): S,
    Query(q): Query<Wait>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    match crate::tp::settings(&s, &c, inm, Duration::from_secs(q.wait)).await? {
        None => {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            if let Some(v) = inm.and_then(|t| HeaderValue::from_str(t).ok()) {
                r.headers_mut().insert(header::ETAG, v);
            }
            Ok(r)
        }
        Some(body) => {
            let mut r = Json(&body).into_response();
            if let Ok(v) = HeaderValue::from_str(&body.etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            // The body carries the tenant's provider keys: never cache it anywhere.
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(r)
        }
    }
}

pub async fn status(
    Cluster(c): Cluster,
    State(s): S,
    Body(b): Body<StatusReport>,
) -> Result<StatusCode, Error> {
    crate::tp::status(&s, &c, &b).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn usage(
    Cluster(c): Cluster,
    State(s): S,
    Body(b): Body<UsageReport>,
) -> Result<Response, Error> {
    Ok(Json(crate::tp::usage(&s, &c, &b).await?).into_response())
}

pub async fn validation(
    Cluster(c): Cluster,
    State(s): S,
    Path(id): Path<String>,
    Body(b): Body<ValidationResult>,
) -> Result<Response, Error> {
    let state_name = crate::tp::validation_result(&s, &c, &id, &b).await?;
    Ok(Json(json!({"state": state_name})).into_response())
}

pub async fn managed_chat(
    Cluster(c): Cluster,
    State(s): S,
    Body(b): Body<ManagedChatRequest>,
) -> Result<Response, Error> {
    Ok(Json(crate::credits::managed_chat(&s, &c.tenant_id, b).await?).into_response())
}

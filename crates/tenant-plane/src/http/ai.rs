//! The AI endpoints: `POST /api/ai/test` (the connection test), `/api/ai/rca`,
//! `/api/ai/runbook`, `/api/ai/chat` and `/api/ai/search`. Handlers only extract and call the
//! features in [`crate::ai`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use axum::http::header;

use super::ApiError;
use super::auth::{Admin, Tenant};
use super::extract::{DataApi, JsonBody};
use crate::ai::FeatureError;
use crate::ai::chat::{ChatAnswer, ChatApiRequest};
use crate::ai::nl_search::{NlSearchAnswer, NlSearchRequest};
use crate::ai::rca::{RcaAnswer, RcaRequest};
use crate::ai::runbook::{RunbookAnswer, RunbookRequest};
use crate::connection_test::{self, Target, TestFailed, TestOk};
use crate::jobs::{self, JobView, Outcome};
use crate::state::AppState;

/// The request body: `{"test": true}`, optionally with `"target": "embeddings"`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Must be `true`.
    pub test: bool,
    /// `chat` (default) or `embeddings`.
    #[serde(default)]
    pub target: Target,
}

/// Makes a small real completion (or embedding) through the configured provider.
#[utoipa::path(
    post, path = "/api/ai/test", tag = "ai",
    request_body = TestRequest,
    params(("x-tenant-id" = String, Header, description = "the tenant")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the provider answered", body = TestOk),
        (status = 400, description = "missing x-tenant-id or bad body", body = super::ErrorBody),
        (status = 401, description = "missing or wrong admin token", body = super::ErrorBody),
        (status = 503, description = "the provider failed, or none is configured", body = TestFailed),
    )
)]
pub async fn test_connection(
    _admin: Admin,
    Tenant(tenant): Tenant,
    State(state): State<Arc<AppState>>,
    body: Result<Json<TestRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body exceeds {} bytes", super::MAX_BODY_BYTES),
            );
        }
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body must be JSON like {{\"test\": true}} (optionally \"target\": \"chat\" or \"embeddings\"): {}", e.body_text()),
        )
    })?;
    if !body.test {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "\"test\" must be true",
        ));
    }
    Ok(
        match connection_test::run(&state, &tenant, body.target).await {
            connection_test::Outcome::Ok(ok) => (StatusCode::OK, Json(ok)).into_response(),
            connection_test::Outcome::NotConfigured(f) | connection_test::Outcome::Failed(f) => {
                (StatusCode::SERVICE_UNAVAILABLE, Json(f)).into_response()
            }
        },
    )
}

/// A request accepted under `queue_and_retry`: 202 with the job and where to poll it.
fn queued(job: crate::store::jobs::Job) -> Response {
    let view = JobView::from(job);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, view.poll.clone())],
        Json(view),
    )
        .into_response()
}

/// A feature's answer, its queued job, or its failure.
fn feature_outcome<R: serde::Serialize>(r: Result<Outcome<R>, FeatureError>) -> Response {
    match r {
        Ok(Outcome::Done(answer)) => Json(answer).into_response(),
        Ok(Outcome::Queued(job)) => queued(*job),
        Err(e) => feature_error(e),
    }
}

/// A feature's failure: the model's in the connection test's error shape, the rest as
/// [`ApiError`].
fn feature_error(e: FeatureError) -> Response {
    match e {
        FeatureError::Ai(ai) => ai.into_response(),
        FeatureError::Data(d) => ApiError::from(d).into_response(),
    }
}

/// Root cause analysis of an incident: its alerts, changes, recurring log errors and the most
/// relevant log lines, fitted into the model's context (summarised in batches when they do
/// not fit), answered as ranked hypotheses that cite their evidence.
#[utoipa::path(
    post, path = "/api/ai/rca", tag = "ai",
    request_body = RcaRequest,
    params(("x-tenant-id" = String, Header, description = "the tenant")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the analysis", body = RcaAnswer),
        (status = 202, description = "the provider is unavailable and the policy is queue_and_retry: the request was queued", body = JobView),
        (status = 400, description = "a field is invalid; the message names it", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
        (status = 404, description = "no such incident", body = super::ErrorBody),
        (status = 422, description = "the model's context window is too small", body = TestFailed),
        (status = 502, description = "the model's answer was invalid after one repair attempt", body = TestFailed),
        (status = 503, description = "AI provider temporarily unavailable, or not configured", body = TestFailed),
    )
)]
pub async fn rca(
    _admin: Admin,
    Tenant(tenant): Tenant,
    State(state): State<Arc<AppState>>,
    DataApi(data): DataApi,
    JsonBody(body): JsonBody<RcaRequest>,
) -> Response {
    let run = Box::pin(crate::ai::rca::analyse(&state, &data, &tenant, &body));
    feature_outcome(jobs::run_or_queue(&state, &data, &tenant, jobs::RCA, &body, run).await)
}

/// Generates a remediation runbook: the model investigates with read-only tools (incident,
/// logs, runbook knowledge, similar incidents), then writes steps with commands, risk levels,
/// rollbacks and verifications.
#[utoipa::path(
    post, path = "/api/ai/runbook", tag = "ai",
    request_body = RunbookRequest,
    params(("x-tenant-id" = String, Header, description = "the tenant")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the runbook", body = RunbookAnswer),
        (status = 202, description = "the provider is unavailable and the policy is queue_and_retry: the request was queued", body = JobView),
        (status = 400, description = "a field is invalid; the message names it", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
        (status = 404, description = "no such incident", body = super::ErrorBody),
        (status = 422, description = "model does not support tool use", body = TestFailed),
        (status = 502, description = "the model's answer was invalid after one repair attempt", body = TestFailed),
        (status = 503, description = "AI provider temporarily unavailable, or not configured", body = TestFailed),
    )
)]
pub async fn runbook(
    _admin: Admin,
    Tenant(tenant): Tenant,
    State(state): State<Arc<AppState>>,
    DataApi(data): DataApi,
    JsonBody(body): JsonBody<RunbookRequest>,
) -> Response {
    let run = Box::pin(crate::ai::runbook::generate(&state, &data, &tenant, &body));
    feature_outcome(jobs::run_or_queue(&state, &data, &tenant, jobs::RUNBOOK, &body, run).await)
}

/// Copilot chat: a multi-turn conversation, optionally about one incident, with read-only
/// tools. Streamed as server-sent events (`meta`, `delta`, `tool_call`, `tool_result`, then
/// `done` or `error`) unless `"stream": false`.
#[utoipa::path(
    post, path = "/api/ai/chat", tag = "ai",
    request_body = ChatApiRequest,
    params(("x-tenant-id" = String, Header, description = "the tenant")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "text/event-stream, or the whole answer with \"stream\": false", body = ChatAnswer),
        (status = 202, description = "\"stream\": false, the provider is unavailable and the policy is queue_and_retry: the request was queued", body = JobView),
        (status = 400, description = "a field is invalid; the message names it", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
        (status = 404, description = "no such incident", body = super::ErrorBody),
        (status = 422, description = "model does not support tool use", body = TestFailed),
        (status = 503, description = "AI provider temporarily unavailable, or not configured", body = TestFailed),
    )
)]
pub async fn chat(
    _admin: Admin,
    Tenant(tenant): Tenant,
    State(state): State<Arc<AppState>>,
    DataApi(data): DataApi,
    JsonBody(body): JsonBody<ChatApiRequest>,
) -> Response {
    if body.stream == Some(false) {
        let run = Box::pin(async {
            let prepared = crate::ai::chat::prepare(&state, &data, &tenant, &body).await?;
            Ok(crate::ai::chat::answer(prepared).await?)
        });
        return feature_outcome(
            jobs::run_or_queue(&state, &data, &tenant, jobs::CHAT, &body, run).await,
        );
    }
    let prepared = match crate::ai::chat::prepare(&state, &data, &tenant, &body).await {
        Ok(p) => p,
        Err(e) => return feature_error(e),
    };
    match crate::ai::chat::stream(prepared).await {
        Ok(events) => super::event_stream(events),
        Err(e) => e.into_response(),
    }
}

/// Natural-language search: the model turns the question into keywords and filters; without
/// a working model the question is searched as typed. Always answers with results and says
/// how they were found.
#[utoipa::path(
    post, path = "/api/ai/search", tag = "ai",
    request_body = NlSearchRequest,
    params(("x-tenant-id" = String, Header, description = "the tenant")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the results, and how the question was interpreted", body = NlSearchAnswer),
        (status = 400, description = "a field is invalid; the message names it", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
    )
)]
pub async fn search(
    _admin: Admin,
    Tenant(tenant): Tenant,
    State(state): State<Arc<AppState>>,
    DataApi(data): DataApi,
    JsonBody(body): JsonBody<NlSearchRequest>,
) -> Result<Json<NlSearchAnswer>, ApiError> {
    Ok(Json(
        crate::ai::nl_search::search(&state, &data, &tenant, &body).await?,
    ))
}

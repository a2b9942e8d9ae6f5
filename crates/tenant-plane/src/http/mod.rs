//! The HTTP API: thin axum handlers, one file per resource. Handlers extract and authorise,
//! then call a service; errors map to HTTP in one place ([`ApiError`]).

mod ai;
mod alerts;
mod audit;
mod auth;
mod extract;
mod health;
mod incidents;
mod jobs;
mod logs;
mod metrics;
mod openai;
mod openapi;
mod runbooks;
mod search;
mod status;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::state::AppState;

pub use self::openapi::ApiDoc;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Builds the application.
pub fn app(state: Arc<AppState>) -> Router {
    // Log batches are far larger than any other request; only their route gets the larger
    // limit (the innermost DefaultBodyLimit wins). The /v1 handlers read bodies of up to
    // 16 MiB themselves.
    let ingest_limit = state.current().config.data.ingest_max_body;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/ai/test", post(ai::test_connection))
        .route("/api/ai/rca", post(ai::rca))
        .route("/api/ai/runbook", post(ai::runbook))
        .route("/api/ai/chat", post(ai::chat))
        .route("/api/ai/search", post(ai::search))
        .route("/api/ai/jobs", get(jobs::list))
        .route("/api/ai/jobs/{id}", get(jobs::get))
        .route("/api/ai/jobs/{id}/events", get(jobs::events))
        .route("/api/status", get(status::status))
        .route("/api/audit/egress", get(audit::egress))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route(
            "/api/incidents",
            post(incidents::create).get(incidents::list),
        )
        .route(
            "/api/incidents/{id}",
            get(incidents::get).patch(incidents::update),
        )
        .route(
            "/api/incidents/{id}/alerts",
            post(incidents::add_alert).get(incidents::list_alerts),
        )
        .route(
            "/api/incidents/{id}/changes",
            post(incidents::add_change).get(incidents::list_changes),
        )
        .route("/api/alerts", post(alerts::create))
        .route(
            "/api/logs",
            post(logs::ingest)
                .layer(DefaultBodyLimit::max(ingest_limit))
                .get(logs::list),
        )
        .route("/api/runbooks", post(runbooks::create).get(runbooks::list))
        .route("/api/runbooks/{id}", get(runbooks::get))
        .route("/api/search", get(search::search))
        .route("/api/search/status", get(search::status))
        .route("/metrics", get(metrics::metrics))
        // Only the routes above: the /v1 handlers limit their bodies themselves, and every
        // layer a route passes through costs each of its requests (axum wraps the route once
        // per layer).
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(openai::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see GET /api/openapi.json",
    )
}

/// Logs one line per request (method, route template rather than the raw path, which may
/// carry ids, status and latency; never headers or bodies) and counts it in the metrics by
/// method, route and status, timed to the response head (streams to their first chunk; the
/// model-call metrics cover whole answers). One middleware for both: every layer wraps every
/// route once more, at a cost on each request.
///
/// A streamed answer is recorded when its body ends rather than before its head goes out: the
/// log line and the histogram updates would otherwise sit between the provider's first chunk
/// and the client's.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let seen = Observed {
        state,
        method,
        route,
        status: resp.status().as_u16(),
        elapsed: started.elapsed(),
    };
    let streamed = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streamed {
        seen.record();
        return resp;
    }
    let (parts, body) = resp.into_parts();
    Response::from_parts(
        parts,
        axum::body::Body::new(RecordedAtEnd {
            body,
            seen: Some(seen),
        }),
    )
}

/// One request as [`observe`] saw it.
struct Observed {
    state: Arc<AppState>,
    method: axum::http::Method,
    route: Option<MatchedPath>,
    status: u16,
    elapsed: std::time::Duration,
}

impl Observed {
    fn record(self) {
        let route_name = self.route.as_ref().map(MatchedPath::as_str);
        if let Some(metrics) = self.state.metrics.as_deref() {
            metrics.http_request(&self.method, route_name, self.status, self.elapsed);
        }
        let (method, status) = (&self.method, self.status);
        let route = route_name.unwrap_or("(unmatched)");
        let ms = self.elapsed.as_millis() as u64;
        if route == "/healthz" || route == "/readyz" {
            tracing::trace!(%method, route, status, ms, "request");
        } else {
            tracing::info!(%method, route, status, ms, "request");
        }
    }
}

/// A response body that records its request when it is dropped: after its last frame, or
/// when the client went away first.
struct RecordedAtEnd {
    body: axum::body::Body,
    seen: Option<Observed>,
}

impl http_body::Body for RecordedAtEnd {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for RecordedAtEnd {
    fn drop(&mut self) {
        if let Some(seen) = self.seen.take() {
            seen.record();
        }
    }
}

/// A `text/event-stream` response of these events.
pub(crate) fn event_stream<S>(events: S) -> Response
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Send + 'static,
{
    use axum::http::{HeaderValue, header};
    let mut resp = Response::new(axum::body::Body::from_stream(events));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Reverse proxies (nginx ingress) would otherwise buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// The error body of every endpoint except the connection test's documented shapes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what to do about it.
    pub error: String,
    /// A stable machine-readable code.
    pub code: String,
}

/// An error that knows its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with a status, code and client-visible message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.message,
                code: self.code.to_owned(),
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

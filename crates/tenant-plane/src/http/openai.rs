//! The OpenAI-compatible API under `/v1`: thin handlers over [`crate::gateway`]. Requests
//! authenticate with a tenant-plane API key (`Authorization: Bearer`), which names the tenant;
//! every answer, errors included, has OpenAI's shape.

use std::sync::Arc;

use atlasai_core::TenantId;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::gateway::{self, ChatReply, ErrorBody, ErrorObject, ErrorReply, GatewayError};
use crate::state::AppState;

/// Request bodies under `/v1` may be this large: long conversations and inline images are far
/// bigger than the admin API's bodies.
pub const MAX_GATEWAY_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The `/v1` routes.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        // Model ids may hold slashes (`meta-llama/Llama-3.1-8B-Instruct`).
        .route("/v1/models/{*model}", get(get_model))
        .route("/v1/{*rest}", any(unknown_endpoint))
    // No `DefaultBodyLimit` layer: the handlers read their bodies with this limit themselves
    // ([`read_body`]). A layer would wrap every route once more, at a cost on each request.
}

/// The tenant a valid API key acts for.
#[derive(Debug)]
pub struct ApiKeyTenant(pub TenantId);

fn auth_error(status: u16, code: &'static str, message: &str) -> ErrorReply {
    ErrorReply {
        status,
        body: ErrorBody {
            error: ErrorObject {
                message: message.to_owned(),
                kind: "invalid_request_error",
                param: None,
                code: Some(code),
            },
        },
        retry_after: None,
        no_retry: false,
    }
}

impl FromRequestParts<Arc<AppState>> for ApiKeyTenant {
    type Rejection = ErrorReply;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ErrorReply> {
        let published = state.current();
        let keys = &published.config.gateway.api_keys;
        if keys.is_empty() {
            return Err(auth_error(
                401,
                "api_keys_not_configured",
                "The OpenAI-compatible API is not enabled on this tenant plane: no API keys are configured. Operators set TP_API_KEYS or TP_API_KEYS_FILE (tenant:key entries)",
            ));
        }
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty());
        let Some(presented) = presented else {
            return Err(auth_error(
                401,
                "missing_api_key",
                "You didn't provide an API key. Send your tenant-plane API key in an Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY)",
            ));
        };
        let Some(tenant) = keys.authenticate(presented) else {
            return Err(auth_error(
                401,
                "invalid_api_key",
                "Incorrect API key provided. Use a key configured in TP_API_KEYS or TP_API_KEYS_FILE on this tenant plane",
            ));
        };
        // A key acts for exactly one tenant; a header naming another is a client mistake
        // worth stopping rather than silently answering for the key's tenant.
        if let Some(named) = parts.headers.get("x-tenant-id")
            && named.as_bytes() != tenant.as_str().as_bytes()
        {
            return Err(auth_error(
                403,
                "tenant_mismatch",
                "x-tenant-id names a different tenant than the one this API key belongs to; leave the header out or use that tenant's key",
            ));
        }
        Ok(ApiKeyTenant(tenant.clone()))
    }
}

impl IntoResponse for ErrorReply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        let h = resp.headers_mut();
        if let Some(wait) = self.retry_after {
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs_f64().ceil() as u64),
            );
            h.insert(
                "retry-after-ms",
                HeaderValue::from(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            );
        }
        if self.no_retry {
            h.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.reply().into_response()
    }
}

/// Reads a request body of at most [`MAX_GATEWAY_BODY_BYTES`].
async fn read_body(body: Body) -> Result<Bytes, GatewayError> {
    axum::body::to_bytes(body, MAX_GATEWAY_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                GatewayError::TooLarge(MAX_GATEWAY_BODY_BYTES)
            } else {
                GatewayError::Body(format!("Failed to buffer the request body: {e}"))
            }
        })
}

fn json(bytes: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// Creates a chat completion with the tenant's configured provider. The request and response
/// bodies are OpenAI's (`CreateChatCompletionRequest`, `CreateChatCompletionResponse`, and
/// `chat.completion.chunk` server-sent events when `stream` is true); see docs/gateway.md for
/// what is not supported.
#[utoipa::path(
    post, path = "/v1/chat/completions", tag = "openai",
    request_body(content = Object, description = "OpenAI CreateChatCompletionRequest", content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "a chat.completion object, or text/event-stream of chat.completion.chunk events"),
        (status = 400, description = "invalid or unsupported request (OpenAI error shape)"),
        (status = 401, description = "missing or unknown API key"),
        (status = 404, description = "model_not_found"),
        (status = 429, description = "the provider rate-limited the request"),
        (status = 502, description = "the provider failed or rejected the tenant plane's credentials"),
        (status = 503, description = "no provider configured, or the provider is unavailable"),
    )
)]
pub async fn chat_completions(
    ApiKeyTenant(tenant): ApiKeyTenant,
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<Response, GatewayError> {
    let body = read_body(body).await?;
    Ok(match gateway::chat(&state, &tenant, &body).await? {
        ChatReply::Json(bytes) => json(bytes),
        ChatReply::Stream(stream) => super::event_stream(*stream),
    })
}

/// Creates embeddings with the configured embedding provider (OpenAI's
/// `CreateEmbeddingRequest`/`CreateEmbeddingResponse`; `encoding_format` float or base64).
#[utoipa::path(
    post, path = "/v1/embeddings", tag = "openai",
    request_body(content = Object, description = "OpenAI CreateEmbeddingRequest", content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "a list of embedding objects"),
        (status = 400, description = "invalid or unsupported request"),
        (status = 401, description = "missing or unknown API key"),
        (status = 404, description = "model_not_found (also when no embedding model is configured)"),
    )
)]
pub async fn embeddings(
    ApiKeyTenant(tenant): ApiKeyTenant,
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<Response, GatewayError> {
    let body = read_body(body).await?;
    Ok(json(gateway::embeddings(&state, &tenant, &body).await?))
}

/// Lists the configured chat and embedding models and their aliases.
#[utoipa::path(
    get, path = "/v1/models", tag = "openai", security(("api_key" = [])),
    responses((status = 200, description = "OpenAI ListModelsResponse"), (status = 401, description = "missing or unknown API key"))
)]
pub async fn list_models(
    ApiKeyTenant(_tenant): ApiKeyTenant,
    State(state): State<Arc<AppState>>,
) -> Response {
    json(gateway::list_models(&state))
}

/// One model or alias.
#[utoipa::path(
    get, path = "/v1/models/{model}", tag = "openai", security(("api_key" = [])),
    params(("model" = String, Path, description = "a model id or alias")),
    responses((status = 200, description = "OpenAI Model"), (status = 404, description = "model_not_found"))
)]
pub async fn get_model(
    ApiKeyTenant(_tenant): ApiKeyTenant,
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Response, GatewayError> {
    Ok(json(gateway::get_model(&state, &model)?))
}

async fn unknown_endpoint(method: axum::http::Method, uri: axum::http::Uri) -> ErrorReply {
    let mut r = auth_error(
        404,
        "unknown_url",
        &format!(
            "Invalid URL ({method} {}): this tenant plane serves POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models",
            uri.path().chars().take(200).collect::<String>()
        ),
    );
    r.body.error.code = None;
    r
}

/// Adds the API-key security scheme to the OpenAPI document.
#[derive(Debug)]
pub(super) struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "a tenant-plane API key from TP_API_KEYS or TP_API_KEYS_FILE; it names the tenant",
                    ))
                    .build(),
            ),
        );
    }
}

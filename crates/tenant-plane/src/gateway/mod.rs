//! The OpenAI-compatible gateway: `POST /v1/chat/completions`, `POST /v1/embeddings` and
//! `GET /v1/models` served by the tenant's configured BYOC provider, whatever its dialect.
//!
//! The path of one request: the HTTP handler authenticates the API key (which names the
//! tenant) and hands the raw body here; this service parses it into the neutral request,
//! checks the model name against the configured models and aliases, takes the tenant's cached
//! provider client from the route cache (connection pools reused, configuration read through
//! one lock-free load), calls it, and maps the answer back to OpenAI's shape. Every model call
//! is recorded through [`crate::calls::CallRecorder`] (log line and metrics), including calls
//! the client abandoned.

pub mod config;
pub mod error;
pub mod keys;
pub mod models;
mod stream;
pub mod wire;

use std::sync::Arc;
use std::time::Instant;

use atlasai_core::{TenantId, Usage};
use atlasai_providers::{Provider, ProviderError};
use bytes::Bytes;
use futures_util::StreamExt;

pub use self::config::GatewayConfig;
pub use self::error::{ErrorBody, ErrorObject, ErrorReply, GatewayError};
pub use self::stream::SseBody;

use self::models::{Miss, ModelCatalog, Purpose};
use self::wire::{ChatCompletionRequest, ChunkEncoder, EmbeddingsRequest, WireModel};
use crate::calls::{CallOutcome, Feature, ModelCall};
use crate::routing::RouteError;
use crate::state::{AppState, unix_now};

/// A chat answer, ready to send.
#[derive(Debug)]
pub enum ChatReply {
    /// A `chat.completion` JSON document.
    Json(Bytes),
    /// `chat.completion.chunk` server-sent events.
    Stream(Box<SseBody>),
}

/// Serves `POST /v1/chat/completions` for a tenant.
pub async fn chat(
    state: &Arc<AppState>,
    tenant: &TenantId,
    body: &[u8],
) -> Result<ChatReply, GatewayError> {
    let request: ChatCompletionRequest = parse(body)?;
    let published = state.current();
    let config = &published.config;
    if config.provider.is_none() {
        return Err(GatewayError::NotConfigured);
    }
    check_model(&config.gateway.models, &request.model, Purpose::Chat)?;
    let (neutral, streaming) = request.into_neutral().map_err(GatewayError::Invalid)?;
    let client = state
        .routes
        .chat(tenant, &published)
        .await
        .map_err(route_error)?;
    let provider = client.info().kind.as_str();
    let mut call = CallGuard::start(state, tenant, &client);

    if !streaming.stream {
        let (result, fell_back) = crate::calls::watch_fallback(client.chat(&neutral)).await;
        call.cloud_fallback = fell_back;
        return match result {
            Ok(answer) => {
                call.finish(CallOutcome::Ok, answer.usage);
                let id = answer.id.clone().unwrap_or_else(new_id);
                Ok(ChatReply::Json(Bytes::from(wire::completion_json(
                    &answer,
                    &id,
                    unix_now(),
                ))))
            }
            Err(error) => Err(call.failed(provider, error)),
        };
    }

    let (result, fell_back) = crate::calls::watch_fallback(client.chat_stream(&neutral)).await;
    call.cloud_fallback = fell_back;
    let mut upstream = match result {
        Ok(s) => s,
        Err(error) => return Err(call.failed(provider, error)),
    };
    // Wait for the first event before answering, so that a provider failing at the start of
    // its stream (Bedrock and Vertex report many errors there) still gets a proper HTTP error
    // instead of a 200 with an error inside.
    let first = match upstream.next().await {
        Some(Ok(event)) => event,
        Some(Err(error)) => return Err(call.failed(provider, error)),
        None => {
            let error = ProviderError::invalid_response("the stream ended before any event");
            return Err(call.failed(provider, error));
        }
    };
    let (id, model) = match &first {
        atlasai_core::StreamEvent::Start { id, model } => (id.clone(), model.clone()),
        _ => (None, None),
    };
    let encoder = ChunkEncoder::new(
        id.unwrap_or_else(new_id),
        unix_now(),
        model.unwrap_or_else(|| client.info().model.clone()),
        streaming.include_usage,
    );
    Ok(ChatReply::Stream(Box::new(SseBody::new(
        first, upstream, encoder, call, provider,
    ))))
}

/// Serves `POST /v1/embeddings` for a tenant.
pub async fn embeddings(
    state: &Arc<AppState>,
    tenant: &TenantId,
    body: &[u8],
) -> Result<Bytes, GatewayError> {
    let request: EmbeddingsRequest = parse(body)?;
    let published = state.current();
    check_model(
        &published.config.gateway.models,
        &request.model,
        Purpose::Embeddings,
    )?;
    let model = shown(&request.model);
    let (neutral, encoding) = request.into_neutral().map_err(GatewayError::Invalid)?;
    let client = state
        .routes
        .embeddings(tenant, &published)
        .await
        .map_err(route_error)?
        // Only when a reload switched embeddings off between the check and here.
        .ok_or(GatewayError::ModelNotFound {
            model,
            available: Vec::new(),
            purpose: Purpose::Embeddings,
        })?;
    let provider = client.info().kind.as_str();
    let mut call = CallGuard::start(state, tenant, &client);
    match client.embed(&neutral).await {
        Ok(answer) => {
            call.finish(
                CallOutcome::Ok,
                answer.prompt_tokens.map(|p| Usage::new(p, 0)),
            );
            Ok(Bytes::from(wire::embeddings_json(&answer, encoding)))
        }
        Err(error) => Err(call.failed(provider, error)),
    }
}

/// `GET /v1/models`: the configured models and their aliases.
pub fn list_models(state: &AppState) -> Bytes {
    let published = state.current();
    let gateway = &published.config.gateway;
    let models: Vec<WireModel<'_>> = gateway
        .models
        .list()
        .into_iter()
        .map(|m| WireModel {
            id: m.id,
            object: "model",
            created: gateway.loaded_at_unix,
            owned_by: m.owned_by,
        })
        .collect();
    Bytes::from(wire::models_json(&models))
}

/// `GET /v1/models/{model}`.
pub fn get_model(state: &AppState, id: &str) -> Result<Bytes, GatewayError> {
    let published = state.current();
    let gateway = &published.config.gateway;
    let list = gateway.models.list();
    let Some(m) = list.iter().find(|m| m.id == id) else {
        return Err(GatewayError::ModelNotFound {
            model: shown(id),
            available: list.iter().map(|m| m.id.to_owned()).collect(),
            purpose: Purpose::Chat,
        });
    };
    Ok(Bytes::from(wire::model_json(&WireModel {
        id: m.id,
        object: "model",
        created: gateway.loaded_at_unix,
        owned_by: m.owned_by,
    })))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(body).map_err(|e| GatewayError::Body(e.to_string()))
}

fn check_model(models: &ModelCatalog, name: &str, purpose: Purpose) -> Result<(), GatewayError> {
    match models.resolve(name, purpose) {
        Ok(()) => Ok(()),
        Err(Miss::Unknown) => Err(GatewayError::ModelNotFound {
            model: shown(name),
            available: models
                .names_for(purpose)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            purpose,
        }),
        Err(Miss::WrongPurpose(_)) => Err(GatewayError::WrongModel {
            model: shown(name),
            wanted: purpose,
        }),
    }
}

/// A client-supplied name as echoed in errors: bounded, so a huge name cannot inflate them.
fn shown(name: &str) -> String {
    name.chars().take(200).collect()
}

fn route_error(e: RouteError) -> GatewayError {
    match e {
        RouteError::NotConfigured => GatewayError::NotConfigured,
        RouteError::Build(e) => GatewayError::Setup(e),
    }
}

/// An id for answers whose provider gave none, in OpenAI's `chatcmpl-` style.
fn new_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::with_capacity(38);
    id.push_str("chatcmpl-");
    for _ in 0..29 {
        id.push(char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]));
    }
    id
}

/// Records one model call exactly once: with its outcome when it ends, or as cancelled when
/// the request (or the stream body) is dropped first because the client went away.
pub(crate) struct CallGuard {
    state: Arc<AppState>,
    tenant: TenantId,
    client: Arc<dyn Provider>,
    started: Instant,
    done: bool,
    /// The managed model that stood in (cloud fallback), if one did.
    cloud_fallback: Option<String>,
}

impl CallGuard {
    fn start(state: &Arc<AppState>, tenant: &TenantId, client: &Arc<dyn Provider>) -> Self {
        CallGuard {
            state: state.clone(),
            tenant: tenant.clone(),
            client: client.clone(),
            started: Instant::now(),
            done: false,
            cloud_fallback: None,
        }
    }

    fn finish(&mut self, outcome: CallOutcome, usage: Option<Usage>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.state.calls.record(&ModelCall {
            tenant: &self.tenant,
            feature: Feature::Gateway,
            provider: self.client.info(),
            usage,
            latency: self.started.elapsed(),
            outcome,
            cloud_fallback: self.cloud_fallback.as_deref(),
        });
    }

    fn failed(&mut self, provider: &'static str, error: ProviderError) -> GatewayError {
        self.finish(CallOutcome::Error(error.kind), None);
        GatewayError::Provider { provider, error }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.finish(CallOutcome::Cancelled, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_look_like_openai_ids() {
        let a = new_id();
        assert!(a.starts_with("chatcmpl-") && a.len() == 38, "{a}");
        assert_ne!(a, new_id());
    }
}

//! Shared machinery of the AI features: a session bound to one tenant's provider route that
//! records every call, token budgeting, structured (schema-checked) output, and the
//! tool-calling loop. Features (root cause analysis, runbooks, copilot chat, natural-language
//! search) are built from these pieces.
//!
//! Every AI failure surfaces as [`AiError`], whose HTTP form is the connection test's
//! documented error shape.

pub mod budget;
pub mod chat;
pub mod nl_search;
pub mod rca;
pub mod runbook;
pub mod structured;
pub mod toolbox;
pub mod tools;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use atlasai_core::{ChatRequest, ChatResponse, ProviderErrorKind, TenantId};
use atlasai_providers::{ChatStream, Provider, ProviderError};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::calls::{CallOutcome, Feature, ModelCall};
use crate::connection_test::{HOW_TO_CONFIGURE, NOT_CONFIGURED, TestFailed, UNAVAILABLE};
use crate::routing::RouteError;
use crate::state::{AppState, Published};

use self::budget::{Budget, default_context_tokens};

/// Tokens kept free for answers by default.
const DEFAULT_OUTPUT_TOKENS: u32 = 2_048;

/// Why an AI feature could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// No provider is configured.
    #[error("AI provider not configured")]
    NotConfigured,
    /// The provider failed (after retries), or could not be set up.
    #[error("AI provider temporarily unavailable: {detail}")]
    Unavailable {
        /// The provider kind.
        provider: String,
        /// The model.
        model: String,
        /// The provider's reason, secrets removed.
        detail: String,
        /// When the provider said to try again (a `retry-after`, or when an open circuit
        /// lets a probe through), if it said.
        retry_after: Option<std::time::Duration>,
    },
    /// The managed model refused: the tenant has no AI credits left.
    #[error("AI credits exhausted: {detail}")]
    OutOfCredits {
        /// The provider kind.
        provider: String,
        /// The model.
        model: String,
        /// The control plane's message.
        detail: String,
    },
    /// The model cannot call tools, which the feature needs.
    #[error("model does not support tool use: {detail}")]
    ToolsNotSupported {
        /// The provider kind.
        provider: String,
        /// The model.
        model: String,
        /// The provider's reason.
        detail: String,
    },
    /// The model's context window cannot hold even the smallest request the feature needs.
    #[error("model context window too small: {detail}")]
    ContextTooSmall {
        /// The provider kind.
        provider: String,
        /// The model.
        model: String,
        /// How much is needed.
        detail: String,
    },
    /// The model's answer did not match the required shape, even after a repair attempt.
    #[error("AI provider returned invalid output: {detail}")]
    InvalidOutput {
        /// The provider kind.
        provider: String,
        /// The model.
        model: String,
        /// What was wrong.
        detail: String,
    },
}

impl AiError {
    fn parts(&self) -> (StatusCode, Option<&str>, Option<&str>, &str, String) {
        match self {
            AiError::NotConfigured => (
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                None,
                NOT_CONFIGURED,
                HOW_TO_CONFIGURE.to_owned(),
            ),
            AiError::Unavailable {
                provider,
                model,
                detail,
                ..
            } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(provider),
                Some(model),
                UNAVAILABLE,
                detail.clone(),
            ),
            AiError::ToolsNotSupported {
                provider,
                model,
                detail,
            } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(provider),
                Some(model),
                "model does not support tool use",
                format!(
                    "{detail}; this feature needs a model with function calling (for example gpt-4o-mini, Claude 3+, Llama 3.1 8B+ with tool calling enabled)"
                ),
            ),
            AiError::OutOfCredits {
                provider,
                model,
                detail,
            } => (
                StatusCode::PAYMENT_REQUIRED,
                Some(provider),
                Some(model),
                "AI credits exhausted",
                format!(
                    "{detail}; add AI credits in the portal, or configure your own provider (BYOC), which uses no credits"
                ),
            ),
            AiError::ContextTooSmall {
                provider,
                model,
                detail,
            } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(provider),
                Some(model),
                "model context window too small",
                detail.clone(),
            ),
            AiError::InvalidOutput {
                provider,
                model,
                detail,
            } => (
                StatusCode::BAD_GATEWAY,
                Some(provider),
                Some(model),
                "AI provider returned invalid output",
                detail.clone(),
            ),
        }
    }
}

impl AiError {
    /// The HTTP status and the body, in the connection test's error shape.
    pub fn body(&self) -> (StatusCode, TestFailed) {
        let (status, provider, model, error, detail) = self.parts();
        (
            status,
            TestFailed {
                status: "error".to_owned(),
                provider: provider.map(str::to_owned),
                model: model.map(str::to_owned),
                error: error.to_owned(),
                detail,
            },
        )
    }
}

impl IntoResponse for AiError {
    fn into_response(self) -> Response {
        let (status, body) = self.body();
        (status, Json(body)).into_response()
    }
}

/// Why an AI feature request failed: the model (answered in the connection test's error
/// shape), or the data it needed (an unknown incident, a bad field, the store).
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// The model could not answer.
    #[error(transparent)]
    Ai(#[from] AiError),
    /// The request or the data behind it.
    #[error(transparent)]
    Data(#[from] crate::data::ServiceError),
}

impl From<crate::store::StoreError> for FeatureError {
    fn from(e: crate::store::StoreError) -> Self {
        FeatureError::Data(e.into())
    }
}

/// A request's optional tool-calling turn limit: `default` when absent, else 1 to `max`.
pub(crate) fn steps_param(
    given: Option<u32>,
    default: u32,
    max: u32,
) -> Result<u32, crate::data::ServiceError> {
    match given {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(crate::data::ServiceError::invalid(format!(
            "max_steps: {n} is not from 1 to {max}"
        ))),
    }
}

/// A request's optional free text (a question, instructions): trimmed, at most 2000 bytes,
/// `None` when empty.
pub(crate) fn optional_text(
    field: &str,
    value: Option<&str>,
) -> Result<Option<String>, crate::data::ServiceError> {
    let Some(v) = value else { return Ok(None) };
    let v = crate::validate::text(field, v, false, 2_000)
        .map_err(crate::data::ServiceError::Invalid)?;
    Ok((!v.is_empty()).then_some(v))
}

/// The incident a feature is about, with its evidence counts; 404 when this tenant has none
/// with that id.
pub(crate) async fn incident(
    data: &crate::data::Data,
    tenant: &TenantId,
    id: &str,
) -> Result<(String, crate::store::IncidentDetail), FeatureError> {
    let id = crate::incidents::incident_id(id)?;
    let detail = data
        .store
        .incident_detail(tenant, &id)
        .await?
        .ok_or_else(|| crate::data::ServiceError::NotFound {
            what: "incident",
            id: id.clone(),
        })?;
    Ok((id, detail))
}

/// What an AI answer says about how it was made: the provider and model, the tokens of every
/// call it took, and the time from the request to the answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AiMeta {
    /// The provider kind that answered (`openai`, `anthropic`, `bedrock`, ...).
    pub provider: String,
    /// The model.
    pub model: String,
    /// Model calls made (tool-calling turns, map-reduce batches and repairs each count).
    pub model_calls: u32,
    /// Prompt tokens over all calls, as the provider reported them.
    pub prompt_tokens: u32,
    /// Completion tokens over all calls.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
    /// Wall-clock time of the whole feature request, in milliseconds.
    pub latency_ms: u64,
}

#[derive(Debug, Default)]
struct Totals {
    calls: u32,
    usage: atlasai_core::Usage,
}

/// One feature's access to a tenant's model: the route resolved once, every call recorded
/// and counted for the answer's [`AiMeta`].
#[derive(Debug, Clone)]
pub struct AiSession {
    state: Arc<AppState>,
    tenant: TenantId,
    feature: Feature,
    client: Arc<dyn Provider>,
    published: Arc<Published>,
    started: Instant,
    totals: Arc<Mutex<Totals>>,
    /// The managed model that stood in for the last stream opened (cloud fallback), until
    /// its end is recorded.
    stream_fallback: Arc<Mutex<Option<String>>>,
}

#[cfg(test)]
impl AiMeta {
    /// A made-up value for unit tests of answer assembly.
    pub(crate) fn sample() -> AiMeta {
        AiMeta {
            provider: "openai".into(),
            model: "m".into(),
            model_calls: 1,
            prompt_tokens: 1,
            completion_tokens: 1,
            total_tokens: 2,
            latency_ms: 1,
        }
    }
}

impl AiSession {
    /// Resolves the tenant's chat route.
    pub async fn open(
        state: Arc<AppState>,
        tenant: TenantId,
        feature: Feature,
    ) -> Result<AiSession, AiError> {
        let published = state.current();
        let client = match state.routes.chat(&tenant, &published).await {
            Ok(c) => c,
            Err(RouteError::NotConfigured) => return Err(AiError::NotConfigured),
            Err(RouteError::Build(e)) => {
                let p = published.config.provider.as_ref();
                return Err(AiError::Unavailable {
                    provider: p.map(|p| p.kind.to_string()).unwrap_or_default(),
                    model: p.map(|p| p.model.clone()).unwrap_or_default(),
                    detail: e.to_string(),
                    retry_after: None,
                });
            }
        };
        Ok(AiSession {
            state,
            tenant,
            feature,
            client,
            published,
            started: Instant::now(),
            totals: Arc::default(),
            stream_fallback: Arc::default(),
        })
    }

    /// How the answer was made so far.
    pub fn meta(&self) -> AiMeta {
        let t = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        AiMeta {
            provider: self.provider(),
            model: self.model(),
            model_calls: t.calls,
            prompt_tokens: t.usage.prompt_tokens,
            completion_tokens: t.usage.completion_tokens,
            total_tokens: t.usage.total_tokens,
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The provider kind, as configured.
    pub fn provider(&self) -> String {
        self.client.info().kind.to_string()
    }

    /// The model.
    pub fn model(&self) -> String {
        self.client.info().model.clone()
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The application state.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The context budget for this model: `TP_CONTEXT_TOKENS` when set, else the model's
    /// known window.
    pub fn budget(&self) -> Budget {
        let info = self.client.info();
        let context = self
            .published
            .config
            .context_tokens
            .unwrap_or_else(|| default_context_tokens(info.kind, &info.model));
        Budget::new(context, DEFAULT_OUTPUT_TOKENS)
    }

    /// Maps a provider error to the feature's error.
    pub fn error(&self, e: &ProviderError) -> AiError {
        if e.code.as_deref() == Some(crate::cp::managed::INSUFFICIENT_CREDITS) {
            AiError::OutOfCredits {
                provider: self.provider(),
                model: self.model(),
                detail: e.message.clone(),
            }
        } else if e.kind == ProviderErrorKind::ToolsNotSupported {
            AiError::ToolsNotSupported {
                provider: self.provider(),
                model: self.model(),
                detail: e.to_string(),
            }
        } else {
            AiError::Unavailable {
                provider: self.provider(),
                model: self.model(),
                detail: e.to_string(),
                retry_after: e.retry_after,
            }
        }
    }

    /// A context-too-small error for this model.
    pub fn context_too_small(&self, detail: impl Into<String>) -> AiError {
        AiError::ContextTooSmall {
            provider: self.provider(),
            model: self.model(),
            detail: detail.into(),
        }
    }

    /// An invalid-output error for this model.
    pub fn invalid_output(&self, detail: impl Into<String>) -> AiError {
        AiError::InvalidOutput {
            provider: self.provider(),
            model: self.model(),
            detail: detail.into(),
        }
    }

    /// A complete answer, recorded.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, AiError> {
        self.chat_raw(request).await.map_err(|e| self.error(&e))
    }

    /// A complete answer, recorded, with the provider's own error for callers that decide on
    /// its kind.
    pub async fn chat_raw(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let started = Instant::now();
        let (result, fell_back) = crate::calls::watch_fallback(self.client.chat(request)).await;
        let (usage, outcome) = match &result {
            Ok(r) => (r.usage, CallOutcome::Ok),
            Err(e) => (None, CallOutcome::Error(e.kind)),
        };
        self.record(usage, started, outcome, fell_back.as_deref());
        result
    }

    /// A streamed answer. The call is recorded when the caller reports how it ended
    /// ([`AiSession::record_stream`]), because only the caller sees the end of the stream.
    pub async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, AiError> {
        let started = Instant::now();
        let (result, fell_back) =
            crate::calls::watch_fallback(self.client.chat_stream(request)).await;
        match result {
            Ok(s) => {
                // Recorded when the caller reports the stream's end.
                *self
                    .stream_fallback
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = fell_back;
                Ok(s)
            }
            Err(e) => {
                self.record(
                    None,
                    started,
                    CallOutcome::Error(e.kind),
                    fell_back.as_deref(),
                );
                Err(self.error(&e))
            }
        }
    }

    /// Records a streamed call's end.
    pub fn record_stream(
        &self,
        usage: Option<atlasai_core::Usage>,
        started: Instant,
        outcome: CallOutcome,
    ) {
        let fell_back = self
            .stream_fallback
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.record(usage, started, outcome, fell_back.as_deref());
    }

    fn record(
        &self,
        usage: Option<atlasai_core::Usage>,
        started: Instant,
        outcome: CallOutcome,
        cloud_fallback: Option<&str>,
    ) {
        {
            let mut t = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
            t.calls += 1;
            if let Some(u) = usage {
                t.usage.prompt_tokens = t.usage.prompt_tokens.saturating_add(u.prompt_tokens);
                t.usage.completion_tokens = t
                    .usage
                    .completion_tokens
                    .saturating_add(u.completion_tokens);
                t.usage.total_tokens = t.usage.total_tokens.saturating_add(if u.total_tokens > 0 {
                    u.total_tokens
                } else {
                    u.prompt_tokens + u.completion_tokens
                });
            }
        }
        self.state.calls.record(&ModelCall {
            tenant: &self.tenant,
            feature: self.feature,
            provider: self.client.info(),
            usage,
            latency: started.elapsed(),
            outcome,
            cloud_fallback,
        });
    }
}

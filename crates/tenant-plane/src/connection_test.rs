//! The connection test behind `POST /api/ai/test` and `atlasai-tp test-connection`: a small
//! real completion (or embedding) through the configured provider, timed.

use std::time::{Duration, Instant};

use atlasai_core::{ChatRequest, EmbeddingRequest, Message, TenantId};
use serde::{Deserialize, Serialize};

use crate::calls::{CallOutcome, Feature, ModelCall};
use crate::routing::RouteError;
use crate::state::AppState;

/// The message every provider failure carries; the detail says why.
pub const UNAVAILABLE: &str = "AI provider temporarily unavailable";
/// The message when no provider is configured.
pub const NOT_CONFIGURED: &str = "AI provider not configured";
/// How to configure one, for the not-configured detail.
pub const HOW_TO_CONFIGURE: &str = "set BYOC_PROVIDER (openai, azure, bedrock, anthropic, vertex, ollama, vllm or openai-compatible) with BYOC_MODEL and the provider's credentials, or the byoc: block of the Helm values; run `atlasai-tp check-config` to see what is set, and see docs/configuration.md";
/// The longest a connection test may take, retries included.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// What to test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The chat model (the default).
    #[default]
    Chat,
    /// The embedding model.
    Embeddings,
}

/// A successful test. Serialises exactly as the documentation shows.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestOk {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
    /// The provider, as configured.
    #[schema(example = "openai")]
    pub provider: String,
    /// The model (for Azure, the deployment).
    #[schema(example = "gpt-4o-mini")]
    pub model: String,
    /// How long the call took, retries included.
    #[schema(example = 850)]
    pub latency_ms: u64,
    /// Whether a control plane is connected.
    pub cp_connected: bool,
}

/// A failed test.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestFailed {
    /// Always `error`.
    #[schema(example = "error")]
    pub status: String,
    /// The provider, when one is configured.
    pub provider: Option<String>,
    /// The model, when one is configured.
    pub model: Option<String>,
    /// `AI provider temporarily unavailable` or `AI provider not configured`.
    pub error: String,
    /// Why, in the provider's words with secrets removed, or how to configure a provider.
    pub detail: String,
}

/// The outcome of a test.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It worked.
    Ok(TestOk),
    /// Nothing is configured.
    NotConfigured(TestFailed),
    /// The provider failed.
    Failed(TestFailed),
}

/// Runs a connection test for a tenant.
pub async fn run(state: &AppState, tenant: &TenantId, target: Target) -> Outcome {
    let published = state.current();
    let cp_connected = state.cp_connected();
    let config = &published.config;
    let (provider, model) = match target {
        Target::Chat => match chat_names(state, tenant, config) {
            Some(names) => names,
            None => return not_configured(),
        },
        Target::Embeddings => (
            config.embeddings.provider_name().to_owned(),
            config.embeddings.model().to_owned(),
        ),
    };
    let failed = |detail: String| {
        Outcome::Failed(TestFailed {
            status: "error".to_owned(),
            provider: Some(provider.clone()),
            model: Some(model.clone()),
            error: UNAVAILABLE.to_owned(),
            detail,
        })
    };
    let started = Instant::now();
    let result = match target {
        Target::Chat => {
            // The test goes around the circuit breaker (a customer who just fixed the provider
            // wants a real call), and its outcome tells the breaker whether the provider is back.
            let route = match state.routes.chat_route(tenant, &published).await {
                Ok(r) => r,
                Err(RouteError::NotConfigured) => return not_configured(),
                Err(e) => return failed(e.to_string()),
            };
            let client = route.unguarded;
            let request = ChatRequest {
                messages: vec![
                    Message::system("This is a connection test from AtlasAI."),
                    Message::user("Reply with the single word: ok"),
                ],
                // Enough for any model to answer one word; reasoning models may still stop
                // at the limit, which proves the connection just as well.
                max_tokens: Some(16),
                ..ChatRequest::default()
            };
            let result = tokio::time::timeout(TEST_DEADLINE, client.chat(&request)).await;
            route.breaker.observe(match &result {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.kind),
                Err(_) => Err(atlasai_core::ProviderErrorKind::Unavailable),
            });
            record(
                state,
                tenant,
                client.info(),
                started,
                &result.as_ref().map(|r| r.as_ref().map(|a| a.usage)),
            );
            result.map(|r| r.map(|_| ()))
        }
        Target::Embeddings => {
            let client = match state.routes.embeddings_route(tenant, &published).await {
                Ok(Some(r)) => r.unguarded,
                // Keyword search needs no model: nothing to call, nothing that can fail.
                Ok(None) => {
                    return Outcome::Ok(TestOk {
                        status: "ok".to_owned(),
                        provider,
                        model,
                        latency_ms: 0,
                        cp_connected,
                    });
                }
                Err(e) => return failed(e.to_string()),
            };
            let request = EmbeddingRequest {
                inputs: vec!["AtlasAI connection test".to_owned()],
                dimensions: None,
            };
            let result = tokio::time::timeout(TEST_DEADLINE, client.embed(&request)).await;
            let usage = |e: &atlasai_core::EmbeddingResponse| {
                e.prompt_tokens.map(|p| atlasai_core::Usage::new(p, 0))
            };
            record(
                state,
                tenant,
                client.info(),
                started,
                &result.as_ref().map(|r| r.as_ref().map(usage)),
            );
            result.map(|r| r.map(|_| ()))
        }
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    if target == Target::Chat {
        state
            .routes
            .cp()
            .record_test(atlasai_core::protocol::LastTest {
                ok: matches!(result, Ok(Ok(()))),
                latency_ms,
                at_unix: crate::state::unix_now(),
                error: match &result {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!("no answer within {}s", TEST_DEADLINE.as_secs())),
                },
            });
    }
    match result {
        Ok(Ok(())) => {
            tracing::info!(%tenant, %provider, %model, latency_ms, ?target, "connection test passed");
            Outcome::Ok(TestOk {
                status: "ok".to_owned(),
                provider,
                model,
                latency_ms,
                cp_connected,
            })
        }
        Ok(Err(e)) => {
            tracing::warn!(%tenant, %provider, %model, error = %e, ?target, "connection test failed");
            failed(e.to_string())
        }
        Err(_) => failed(format!("no answer within {}s", TEST_DEADLINE.as_secs())),
    }
}

/// The chat provider and model a tenant is served by: local settings, else the portal's,
/// else the managed model.
fn chat_names(
    state: &AppState,
    tenant: &TenantId,
    config: &crate::config::TenantPlaneConfig,
) -> Option<(String, String)> {
    if let Some(p) = &config.provider {
        return Some((p.kind.to_string(), p.model.clone()));
    }
    let cp = state.routes.cp();
    if let Some((_, p)) = cp.portal_for(tenant) {
        return Some((p.chat.kind.to_string(), p.chat.model.clone()));
    }
    cp.managed_for(tenant).map(|m| (m.provider, m.model))
}

fn record(
    state: &AppState,
    tenant: &TenantId,
    provider: &atlasai_providers::ProviderInfo,
    started: Instant,
    result: &Result<
        Result<Option<atlasai_core::Usage>, &atlasai_providers::ProviderError>,
        &tokio::time::error::Elapsed,
    >,
) {
    let (usage, outcome) = match result {
        Ok(Ok(usage)) => (*usage, CallOutcome::Ok),
        Ok(Err(e)) => (None, CallOutcome::Error(e.kind)),
        Err(_) => (
            None,
            CallOutcome::Error(atlasai_core::ProviderErrorKind::Unavailable),
        ),
    };
    state.calls.record(&ModelCall {
        tenant,
        feature: Feature::ConnectionTest,
        provider,
        usage,
        latency: started.elapsed(),
        outcome,
        cloud_fallback: None,
    });
}

fn not_configured() -> Outcome {
    Outcome::NotConfigured(TestFailed {
        status: "error".to_owned(),
        provider: None,
        model: None,
        error: NOT_CONFIGURED.to_owned(),
        detail: HOW_TO_CONFIGURE.to_owned(),
    })
}

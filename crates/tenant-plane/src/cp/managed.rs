//! The managed default model as a [`Provider`]: requests go to the control plane's managed
//! endpoint, which meters them in AI credits. Each logical request carries one request id,
//! reused on retries, so a retry after a lost answer is never charged twice.

use std::sync::Arc;
use std::time::Duration;

use atlasai_core::protocol::{ManagedChatRequest, ManagedReason};
use atlasai_core::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo, ProviderErrorKind,
    ProviderKind, StreamEvent,
};
use atlasai_providers::{ChatStream, Provider, ProviderError, ProviderInfo};

use super::CpState;
use super::client::CpError;

/// Retries of one request after the control plane could not be reached.
const RETRIES: u32 = 2;

/// The managed model through the control plane.
#[derive(Debug)]
pub struct ManagedProvider {
    cp: Arc<CpState>,
    info: ProviderInfo,
    reason: ManagedReason,
    timeout: Duration,
}

impl ManagedProvider {
    /// A client for the managed model, or `None` when not enrolled or none is offered.
    pub fn new(cp: Arc<CpState>, reason: ManagedReason, timeout: Duration) -> Option<Self> {
        let link = cp.link()?;
        let snapshot = cp.snapshot()?;
        let managed = snapshot.managed.clone()?;
        let kind = managed
            .provider
            .parse::<ProviderKind>()
            .unwrap_or(ProviderKind::OpenAiCompatible);
        Some(ManagedProvider {
            info: ProviderInfo {
                kind,
                model: managed.model,
                endpoint: link.managed_url(),
            },
            cp,
            reason,
            timeout,
        })
    }
}

/// The error code of a managed call refused for lack of AI credits.
pub const INSUFFICIENT_CREDITS: &str = "insufficient_credits";

fn to_provider_error(e: CpError) -> ProviderError {
    match e {
        // Out of credits: the tenant's balance, not the provider, is the problem. A quota
        // error (like OpenAI's insufficient_quota) rather than "down", so it neither trips the
        // circuit breaker nor counts as an outage; callers answer 402.
        CpError::Refused {
            status: 402,
            message,
            ..
        } => ProviderError::new(ProviderErrorKind::RateLimited, message)
            .with_status(402)
            .with_code(INSUFFICIENT_CREDITS),
        CpError::Refused {
            status, message, ..
        } => ProviderError::new(
            ProviderErrorKind::BadRequest,
            format!("the control plane refused the managed request: {message}"),
        )
        .with_status(status),
        CpError::Unreachable { detail, .. } => ProviderError::unavailable(format!(
            "the control plane (managed model) is unreachable: {detail}"
        )),
    }
}

#[async_trait::async_trait]
impl Provider for ManagedProvider {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let link = self
            .cp
            .link()
            .ok_or_else(|| ProviderError::unavailable("not connected to a control plane"))?;
        let req = ManagedChatRequest {
            request_id: uuid::Uuid::now_v7().to_string(),
            reason: self.reason,
            request: request.clone(),
        };
        let mut attempt = 0;
        loop {
            match link.managed_chat(&req, self.timeout).await {
                Ok(r) => {
                    self.cp.set_connected(true);
                    return Ok(r.response);
                }
                Err(e @ CpError::Unreachable { .. }) if attempt < RETRIES => {
                    tracing::debug!(attempt, error = %e, "retrying the managed request with the same request id");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => {
                    if matches!(e, CpError::Unreachable { .. }) {
                        self.cp.set_connected(false);
                    }
                    return Err(to_provider_error(e));
                }
            }
        }
    }

    /// The managed endpoint answers whole; the answer is replayed as a stream.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let r = self.chat(request).await?;
        let mut events = vec![Ok(StreamEvent::Start {
            id: r.id.clone(),
            model: Some(r.model.clone()),
        })];
        if let Some(text) = r.content {
            events.push(Ok(StreamEvent::TextDelta { text }));
        }
        for (i, c) in r.tool_calls.into_iter().enumerate() {
            events.push(Ok(StreamEvent::ToolCallDelta {
                index: i as u32,
                id: Some(c.id),
                name: Some(c.name),
                arguments: c.arguments,
            }));
        }
        if let Some(usage) = r.usage {
            events.push(Ok(StreamEvent::Usage { usage }));
        }
        events.push(Ok(StreamEvent::Finish {
            reason: r.finish_reason,
        }));
        Ok(Box::pin(futures_util::stream::iter(events)))
    }

    async fn embed(&self, _request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        Err(ProviderError::unsupported(
            "the managed model does not serve embeddings; configure an embedding provider",
        ))
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        Ok(vec![ModelInfo {
            id: self.info.model.clone(),
            display_name: Some("AtlasAI managed model".to_owned()),
            owned_by: Some("atlasai".to_owned()),
        }])
    }
}

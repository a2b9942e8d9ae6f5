//! The cloud-fallback policy: when the tenant's own provider is down, use the managed model
//! through the control plane, but only if the policy allows it, `AI_CREDITS_FAIL_OPEN=1` is
//! set and the control plane is reachable at that moment. Otherwise the provider's error
//! stands ("AI provider temporarily unavailable"). A stream never switches provider after its
//! first event; only a failure before it falls back.

use std::sync::Arc;
use std::time::Duration;

use atlasai_core::protocol::ManagedReason;
use atlasai_core::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo, ProviderErrorKind,
    TenantId,
};
use atlasai_providers::{ChatStream, Provider, ProviderError, ProviderInfo};

use super::CpState;
use super::managed::ManagedProvider;

/// A provider that may fall back to the managed model.
#[derive(Debug)]
pub struct WithCloudFallback {
    primary: Arc<dyn Provider>,
    cp: Arc<CpState>,
    tenant: TenantId,
    timeout: Duration,
    /// Whether requests that fall back are redacted first (`TP_REDACTION`: the control plane
    /// is normally a public endpoint).
    redact: bool,
}

impl WithCloudFallback {
    /// Wraps a tenant's provider.
    pub fn wrap(
        primary: Arc<dyn Provider>,
        cp: Arc<CpState>,
        tenant: TenantId,
        timeout: Duration,
        redact: bool,
    ) -> Arc<dyn Provider> {
        Arc::new(WithCloudFallback {
            primary,
            cp,
            tenant,
            timeout,
            redact,
        })
    }

    /// The managed model, if falling back is allowed now and this error means "down".
    fn fallback_for(&self, e: &ProviderError) -> Option<Arc<dyn Provider>> {
        let down = matches!(
            e.kind,
            ProviderErrorKind::Unavailable | ProviderErrorKind::RateLimited
        );
        if !down || !self.cp.cloud_fallback_allowed(&self.tenant) {
            return None;
        }
        let managed =
            ManagedProvider::new(self.cp.clone(), ManagedReason::CloudFallback, self.timeout)?;
        // The call's audit record says so (destination control_plane, the managed model);
        // this line says why, at once.
        crate::calls::note_cloud_fallback(&managed.info().model);
        tracing::warn!(
            target: "atlasai::egress",
            tenant = %self.tenant,
            provider = %self.primary.info().kind,
            model = %self.primary.info().model,
            managed_model = %managed.info().model,
            error = %e,
            left_customer_network = true,
            "the tenant's provider is unavailable; falling back to the managed model through the control plane (cloud_fallback, AI_CREDITS_FAIL_OPEN=1): this request's data leaves the customer's network"
        );
        let managed: Arc<dyn Provider> = Arc::new(managed);
        Some(if self.redact {
            atlasai_providers::redact::Redacting::wrap(managed)
        } else {
            managed
        })
    }
}

#[async_trait::async_trait]
impl Provider for WithCloudFallback {
    fn info(&self) -> &ProviderInfo {
        self.primary.info()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        match self.primary.chat(request).await {
            Ok(r) => Ok(r),
            Err(e) => match self.fallback_for(&e) {
                Some(m) => m.chat(request).await,
                None => Err(e),
            },
        }
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        match self.primary.chat_stream(request).await {
            Ok(s) => Ok(s),
            Err(e) => match self.fallback_for(&e) {
                Some(m) => m.chat_stream(request).await,
                None => Err(e),
            },
        }
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        self.primary.embed(request).await
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        self.primary.list_models().await
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use atlasai_core::protocol::{ManagedInfo, SettingsResponse};
    use atlasai_core::{ProviderKind, StreamEvent};
    use futures_util::StreamExt;

    /// The tenant's own provider: down for complete answers; for streams, one piece of text
    /// and then the connection fails.
    #[derive(Debug)]
    struct DiesMidStream(ProviderInfo);

    #[async_trait::async_trait]
    impl Provider for DiesMidStream {
        fn info(&self) -> &ProviderInfo {
            &self.0
        }
        async fn chat(&self, _: &ChatRequest) -> Result<ChatResponse, ProviderError> {
            Err(ProviderError::unavailable(
                "the customer's provider is down",
            ))
        }
        async fn chat_stream(&self, _: &ChatRequest) -> Result<ChatStream, ProviderError> {
            let events = vec![
                Ok(StreamEvent::TextDelta {
                    text: "partial answer".into(),
                }),
                Err(ProviderError::unavailable("connection reset mid-stream")),
            ];
            Ok(Box::pin(futures_util::stream::iter(events)))
        }
        async fn embed(&self, _: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
            Err(ProviderError::unavailable("down"))
        }
        async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
            Ok(Vec::new())
        }
    }

    /// A control plane link that allows the fallback (fail-open, connected, a managed model
    /// offered, no portal settings) but whose address refuses connections.
    fn cp() -> Arc<CpState> {
        atlasai_providers::http::install_crypto_provider();
        let cp = CpState::default();
        cp.publish(crate::cp::Snapshot::from_response(SettingsResponse {
            managed: Some(ManagedInfo {
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
            }),
            ..crate::cp::test_settings(String::new())
        }));
        cp.set_link(crate::cp::client::CpLink::new(
            reqwest::Client::new(),
            url::Url::parse("http://127.0.0.1:9/").unwrap(),
            "credential".to_owned().into(),
            "c1".into(),
            "acme".into(),
        ));
        cp.set_fail_open(true);
        cp.set_connected(true);
        Arc::new(cp)
    }

    #[tokio::test]
    async fn a_stream_never_switches_provider_after_its_first_event() {
        let primary: Arc<dyn Provider> = Arc::new(DiesMidStream(ProviderInfo {
            kind: ProviderKind::OpenAi,
            model: "llama3.2".into(),
            endpoint: url::Url::parse("http://10.0.0.5/v1").unwrap(),
        }));
        let wrapped = WithCloudFallback::wrap(
            primary,
            cp(),
            TenantId::parse("acme").unwrap(),
            Duration::from_secs(2),
            false,
        );
        // A complete answer falls back (here to a control plane that cannot be reached), so
        // the fallback is live in this setup...
        let (answer, fell_back) =
            crate::calls::watch_fallback(wrapped.chat(&ChatRequest::user("hi"))).await;
        assert_eq!(fell_back.as_deref(), Some("gpt-4o-mini"));
        assert!(
            answer.unwrap_err().message.contains("control plane"),
            "the managed model was tried"
        );
        // ...but a stream that already delivered text keeps its provider: the failure reaches
        // the caller, and nothing is sent to the managed model.
        let (stream, fell_back) =
            crate::calls::watch_fallback(wrapped.chat_stream(&ChatRequest::user("hi"))).await;
        assert_eq!(fell_back, None);
        let events: Vec<_> = stream.unwrap().collect().await;
        assert_eq!(events.len(), 2);
        assert!(
            matches!(&events[0], Ok(StreamEvent::TextDelta { text }) if text == "partial answer")
        );
        let err = events[1].as_ref().unwrap_err();
        assert!(err.message.contains("mid-stream"), "{err}");
    }
}

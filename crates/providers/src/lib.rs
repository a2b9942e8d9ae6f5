//! Provider clients for AtlasAI BYOC: one provider-neutral trait ([`Provider`]) for chat,
//! streaming, embeddings and listing models, with one module per wire dialect.
//!
//! Architecture invariant: this crate knows nothing about tenants, HTTP servers or storage.
//! Clients are built once per resolved route ([`build_chat_provider`]) and reused, so their
//! connection pools are too.

pub mod anthropic;
pub mod bedrock;
pub mod breaker;
pub mod check;
mod direct;
pub mod egress;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod openai;
pub mod redact;
mod scrub;
mod sse;
pub mod vertex;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use atlasai_core::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, EmbeddingSettings, ModelInfo,
    ProviderKind, ProviderSettings, StreamAccumulator, StreamEvent,
};
use futures_util::{Stream, StreamExt};
use url::Url;

pub use crate::error::ProviderError;
pub use crate::http::{HttpOptions, RetryPolicy};

/// A streamed answer: neutral events, ending after `Finish` (and `Usage` when reported), or
/// with an error.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// What a client talks to, for status pages, audit records and metrics labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// The configured provider kind.
    pub kind: ProviderKind,
    /// The model (deployment, model id) this client uses.
    pub model: String,
    /// The base URL requests go to.
    pub endpoint: Url,
}

impl ProviderInfo {
    /// The endpoint's host, for audit and metrics (never a full URL with a path).
    pub fn endpoint_host(&self) -> String {
        self.endpoint.host_str().unwrap_or_default().to_owned()
    }
}

/// One provider client, whatever its dialect.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// What this client talks to.
    fn info(&self) -> &ProviderInfo;

    /// A complete answer.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError>;

    /// A streamed answer. Errors before the first event are returned here (and retried per
    /// policy); errors after it arrive in the stream.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError>;

    /// Embeddings, one vector per input, in order.
    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError>;

    /// The models the credentials can use.
    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError>;
}

/// Builds the chat client for resolved settings. Secrets in provider error messages are
/// scrubbed before they reach the caller.
pub async fn build_chat_provider(
    settings: &ProviderSettings,
    opts: &HttpOptions,
) -> Result<Arc<dyn Provider>, ProviderError> {
    let inner: Arc<dyn Provider> = match settings.kind.dialect() {
        atlasai_core::Dialect::OpenAi => Arc::new(openai::OpenAiClient::new(settings, opts)?),
        atlasai_core::Dialect::Anthropic => {
            Arc::new(anthropic::AnthropicClient::new(settings, opts)?)
        }
        atlasai_core::Dialect::Bedrock => {
            Arc::new(bedrock::BedrockClient::new(settings, opts).await?)
        }
        atlasai_core::Dialect::Vertex => Arc::new(vertex::VertexClient::new(settings, opts)?),
    };
    Ok(scrub::Scrubbed::wrap(inner, settings.secrets()))
}

/// Builds the embedding client, or `None` for the keyword-only fallback.
pub async fn build_embedding_provider(
    settings: &EmbeddingSettings,
    opts: &HttpOptions,
) -> Result<Option<Arc<dyn Provider>>, ProviderError> {
    let (provider_settings, inner): (ProviderSettings, Arc<dyn Provider>) = match settings {
        EmbeddingSettings::Fallback => return Ok(None),
        EmbeddingSettings::OpenAi {
            model,
            endpoint,
            api_key,
            azure_api_version,
        } => {
            let kind = if azure_api_version.is_some() {
                ProviderKind::Azure
            } else {
                ProviderKind::OpenAi
            };
            let mut s = ProviderSettings::new(kind, model.clone());
            s.endpoint = Some(endpoint.clone());
            s.api_key = api_key.clone();
            s.api_version = azure_api_version.clone();
            let client = openai::OpenAiClient::new(&s, opts)?;
            (s, Arc::new(client))
        }
        EmbeddingSettings::Bedrock {
            model,
            region,
            endpoint,
            aws,
        } => {
            let mut s = ProviderSettings::new(ProviderKind::Bedrock, model.clone());
            s.region = Some(region.clone());
            s.endpoint = endpoint.clone();
            s.aws = Some(aws.clone());
            let client = bedrock::BedrockClient::new(&s, opts).await?;
            (s, Arc::new(client))
        }
    };
    Ok(Some(scrub::Scrubbed::wrap(
        inner,
        provider_settings.secrets(),
    )))
}

/// Streams a request and folds the events into a complete answer; for tests and for callers
/// that want streaming's early failure but a whole answer.
pub async fn collect_stream(
    mut stream: ChatStream,
    model: &str,
) -> Result<ChatResponse, ProviderError> {
    let mut acc = StreamAccumulator::default();
    while let Some(event) = stream.next().await {
        acc.push(&event?);
    }
    Ok(acc.finish(model))
}

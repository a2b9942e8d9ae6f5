//! Placeholder until the vertex dialect lands: every call reports "not supported".

use atlasai_core::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo, ProviderSettings,
};

use crate::{ChatStream, HttpOptions, Provider, ProviderError, ProviderInfo};

/// Not implemented yet.
#[derive(Debug)]
pub struct VertexClient {
    info: ProviderInfo,
}

impl VertexClient {
    /// Always fails: the dialect is not implemented yet.
    pub fn new(settings: &ProviderSettings, _opts: &HttpOptions) -> Result<Self, ProviderError> {
        Err(ProviderError::unsupported(format!(
            "provider {} is not supported yet",
            settings.kind
        )))
    }
}

#[async_trait::async_trait]
impl Provider for VertexClient {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }
    async fn chat(&self, _r: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        Err(ProviderError::unsupported("not supported yet"))
    }
    async fn chat_stream(&self, _r: &ChatRequest) -> Result<ChatStream, ProviderError> {
        Err(ProviderError::unsupported("not supported yet"))
    }
    async fn embed(&self, _r: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        Err(ProviderError::unsupported("not supported yet"))
    }
    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        Err(ProviderError::unsupported("not supported yet"))
    }
}

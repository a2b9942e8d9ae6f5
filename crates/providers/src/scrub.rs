//! A decorator that removes configured secrets from every error a client returns.

use std::sync::Arc;

use atlasai_core::secret::Redactor;
use atlasai_core::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo};
use futures_util::StreamExt;
use secrecy::SecretString;

use crate::{ChatStream, Provider, ProviderError, ProviderInfo};

#[derive(Debug)]
pub(crate) struct Scrubbed {
    inner: Arc<dyn Provider>,
    redactor: Redactor,
}

impl Scrubbed {
    pub(crate) fn wrap(inner: Arc<dyn Provider>, secrets: Vec<&SecretString>) -> Arc<dyn Provider> {
        Arc::new(Scrubbed {
            inner,
            redactor: Redactor::new(secrets),
        })
    }

    fn scrub(&self, mut err: ProviderError) -> ProviderError {
        err.message = self.redactor.scrub(&err.message);
        err
    }
}

#[async_trait::async_trait]
impl Provider for Scrubbed {
    fn info(&self) -> &ProviderInfo {
        self.inner.info()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.inner.chat(request).await.map_err(|e| self.scrub(e))
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let stream = self
            .inner
            .chat_stream(request)
            .await
            .map_err(|e| self.scrub(e))?;
        let redactor = self.redactor.clone();
        Ok(Box::pin(stream.map(move |item| {
            item.map_err(|mut e| {
                e.message = redactor.scrub(&e.message);
                e
            })
        })))
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        self.inner.embed(request).await.map_err(|e| self.scrub(e))
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        self.inner.list_models().await.map_err(|e| self.scrub(e))
    }
}

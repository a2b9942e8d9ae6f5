//! The connection check both planes run on settings before trusting them: a small completion
//! (for Anthropic a models list, which is how its console checks a key), and an embedding
//! when an embedding backend is set, all with the same clients that will serve the traffic.

use std::time::Instant;

use atlasai_core::{
    ChatRequest, EmbeddingRequest, EmbeddingSettings, Message, ProviderKind, ProviderSettings,
};

use crate::{HttpOptions, build_chat_provider, build_embedding_provider};

/// Checks settings against their provider. Returns the latency in milliseconds, or the
/// provider's reason (already free of the settings' secrets).
pub async fn check_settings(
    chat: &ProviderSettings,
    embeddings: &EmbeddingSettings,
    opts: &HttpOptions,
) -> Result<u64, String> {
    let started = Instant::now();
    let client = build_chat_provider(chat, opts)
        .await
        .map_err(|e| e.to_string())?;
    if chat.kind == ProviderKind::Anthropic {
        client.list_models().await.map_err(|e| e.to_string())?;
    } else {
        let request = ChatRequest {
            messages: vec![
                Message::system("This is a connection test from AtlasAI."),
                Message::user("Reply with the single word: ok"),
            ],
            // Enough for any model to answer one word.
            max_tokens: Some(16),
            ..ChatRequest::default()
        };
        client.chat(&request).await.map_err(|e| e.to_string())?;
    }
    if let Some(embedder) = build_embedding_provider(embeddings, opts)
        .await
        .map_err(|e| format!("embeddings: {e}"))?
    {
        embedder
            .embed(&EmbeddingRequest {
                inputs: vec!["AtlasAI connection test".to_owned()],
                dimensions: None,
            })
            .await
            .map_err(|e| format!("embeddings: {e}"))?;
    }
    Ok(started.elapsed().as_millis() as u64)
}

//! Error kinds shared by provider clients, the planes and their APIs.

use serde::{Deserialize, Serialize};

/// What went wrong with a provider call, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderErrorKind {
    /// The key or credentials were rejected (401), or the caller lacks permission (403).
    Authentication,
    /// Too many requests (429, Bedrock `ThrottlingException`, Vertex `RESOURCE_EXHAUSTED`).
    RateLimited,
    /// The provider could not answer: 5xx, 529 overloaded, connection failure, timeout.
    Unavailable,
    /// The request was rejected as malformed (400, 422).
    BadRequest,
    /// The prompt does not fit the model's context window.
    ContextTooLong,
    /// The model or deployment does not support tool calling.
    ToolsNotSupported,
    /// The model, deployment or endpoint path does not exist (404).
    NotFound,
    /// The provider answered with something we could not parse, or a stream ended early.
    InvalidResponse,
    /// The operation is not offered by this provider (for example embeddings on Anthropic).
    Unsupported,
}

impl ProviderErrorKind {
    /// Whether retrying the same request may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ProviderErrorKind::RateLimited | ProviderErrorKind::Unavailable
        )
    }

    /// A stable snake_case name for APIs and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderErrorKind::Authentication => "authentication",
            ProviderErrorKind::RateLimited => "rate_limited",
            ProviderErrorKind::Unavailable => "unavailable",
            ProviderErrorKind::BadRequest => "bad_request",
            ProviderErrorKind::ContextTooLong => "context_too_long",
            ProviderErrorKind::ToolsNotSupported => "tools_not_supported",
            ProviderErrorKind::NotFound => "not_found",
            ProviderErrorKind::InvalidResponse => "invalid_response",
            ProviderErrorKind::Unsupported => "unsupported",
        }
    }
}

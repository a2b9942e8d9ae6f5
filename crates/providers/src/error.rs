//! The error every provider call returns: a kind the caller can act on plus the provider's
//! reason, with secrets scrubbed.

use std::fmt;
use std::time::Duration;

use atlasai_core::ProviderErrorKind;

/// A failed provider call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    /// What kind of failure.
    pub kind: ProviderErrorKind,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The provider's own error code or type (`rate_limit_exceeded`, `ThrottlingException`).
    pub code: Option<String>,
    /// The provider's reason in its own words, or ours when there was no response.
    pub message: String,
    /// How long the provider asked us to wait, when it said.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// An error with only a kind and a message.
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// An operation this provider does not offer.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ProviderErrorKind::Unsupported, message)
    }

    /// A response we could not understand.
    pub fn invalid_response(message: impl Into<String>) -> Self {
        Self::new(ProviderErrorKind::InvalidResponse, message)
    }

    /// The provider could not be reached or did not answer in time.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ProviderErrorKind::Unavailable, message)
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the provider's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Whether a retry of the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ProviderErrorKind::Authentication => "authentication failed",
            ProviderErrorKind::RateLimited => "rate limited",
            ProviderErrorKind::Unavailable => "provider unavailable",
            ProviderErrorKind::BadRequest => "request rejected",
            ProviderErrorKind::ContextTooLong => "prompt too long for the model's context window",
            ProviderErrorKind::ToolsNotSupported => "the model does not support tool calling",
            ProviderErrorKind::NotFound => "not found",
            ProviderErrorKind::InvalidResponse => "invalid response from provider",
            ProviderErrorKind::Unsupported => "not supported",
        };
        f.write_str(what)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ProviderError {}

/// Classifies an HTTP status the way every dialect agrees on; dialects refine it from the body.
pub(crate) fn kind_for_status(status: u16) -> ProviderErrorKind {
    match status {
        401 | 403 => ProviderErrorKind::Authentication,
        404 => ProviderErrorKind::NotFound,
        408 | 409 => ProviderErrorKind::Unavailable,
        413 => ProviderErrorKind::ContextTooLong,
        429 => ProviderErrorKind::RateLimited,
        400..=499 => ProviderErrorKind::BadRequest,
        _ => ProviderErrorKind::Unavailable,
    }
}

/// Refines a 400 by what the message says: context overflow and missing tool support are
/// reported as 400s by every provider, with different words.
pub(crate) fn refine_bad_request(kind: ProviderErrorKind, message: &str) -> ProviderErrorKind {
    if kind != ProviderErrorKind::BadRequest {
        return kind;
    }
    let m = message.to_ascii_lowercase();
    let context = [
        "context length",
        "context_length",
        "maximum context",
        "context window",
        "prompt is too long",
        "input is too long",
        "too many input tokens",
        "too many tokens",
        "exceeds the maximum number of tokens",
        "maximum number of tokens",
        "reduce the length",
    ];
    let tools = [
        "does not support tools",
        "doesn't support tool",
        "does not support tool",
        "tool use is not supported",
        "tools are not supported",
        "enable-auto-tool-choice",
        "function calling is not enabled",
        "does not support function calling",
    ];
    if context.iter().any(|p| m.contains(p)) {
        ProviderErrorKind::ContextTooLong
    } else if tools.iter().any(|p| m.contains(p)) {
        ProviderErrorKind::ToolsNotSupported
    } else {
        kind
    }
}

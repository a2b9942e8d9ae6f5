//! Every way a gateway request can fail, and its OpenAI-shaped answer:
//! `{"error": {"message", "type", "param", "code"}}` with the status OpenAI would use. The same
//! object is sent as the error event when a stream fails after its first chunk.

use std::time::Duration;

use atlasai_core::ProviderErrorKind;
use atlasai_providers::ProviderError;
use serde::Serialize;

use super::models::Purpose;
use super::wire::Invalid;

/// A failed gateway request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request is malformed or asks for something we do not offer.
    #[error("{0}")]
    Invalid(Invalid),
    /// The body is not a JSON request of the expected shape.
    #[error("the request body is not valid: {0}")]
    Body(String),
    /// The body is larger than the endpoint accepts.
    #[error("the request body exceeds {0} bytes")]
    TooLarge(usize),
    /// No model or alias has this name.
    #[error("the model `{model}` does not exist")]
    ModelNotFound {
        /// What was asked for.
        model: String,
        /// The names that would work for this endpoint.
        available: Vec<String>,
        /// What the endpoint serves.
        purpose: Purpose,
    },
    /// The name is a model of the other kind (an embedding model sent to chat).
    #[error("the model `{model}` is not a {wanted} model")]
    WrongModel {
        /// What was asked for.
        model: String,
        /// What the endpoint serves.
        wanted: Purpose,
    },
    /// No chat provider is configured.
    #[error("AI provider not configured")]
    NotConfigured,
    /// The provider client could not be set up.
    #[error("could not set up the provider client: {0}")]
    Setup(ProviderError),
    /// The provider failed (secrets already scrubbed by the client).
    #[error("{provider}: {error}")]
    Provider {
        /// The provider kind, so operators see which backend failed.
        provider: &'static str,
        /// What it said.
        error: ProviderError,
    },
}

/// OpenAI's error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorObject {
    /// What went wrong, and what to do about it.
    pub message: String,
    /// `invalid_request_error`, `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The offending parameter, when there is one.
    pub param: Option<String>,
    /// A stable code (`model_not_found`, `invalid_api_key`, `upstream_unavailable`, ...).
    pub code: Option<&'static str>,
}

/// OpenAI's error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// Everything the HTTP layer needs to answer a failure.
#[derive(Debug)]
pub struct ErrorReply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: ErrorBody,
    /// `retry-after`, when the provider asked us to wait.
    pub retry_after: Option<Duration>,
    /// Sent as `x-should-retry: false` when retrying cannot help (a configuration problem),
    /// which OpenAI's SDKs obey instead of retrying 5xx answers.
    pub no_retry: bool,
}

const INVALID: &str = "invalid_request_error";
const SERVER: &str = "server_error";

fn reply(
    status: u16,
    kind: &'static str,
    code: Option<&'static str>,
    message: String,
) -> ErrorReply {
    ErrorReply {
        status,
        body: ErrorBody {
            error: ErrorObject {
                message,
                kind,
                param: None,
                code,
            },
        },
        retry_after: None,
        no_retry: false,
    }
}

impl GatewayError {
    /// The OpenAI-shaped answer for this failure.
    pub fn reply(&self) -> ErrorReply {
        match self {
            GatewayError::Invalid(i) => {
                let mut r = reply(400, INVALID, i.code, i.message.clone());
                r.body.error.param.clone_from(&i.param);
                r
            }
            GatewayError::Body(_) => reply(400, INVALID, None, self.to_string()),
            GatewayError::TooLarge(_) => {
                reply(413, INVALID, Some("request_too_large"), self.to_string())
            }
            GatewayError::ModelNotFound {
                model,
                available,
                purpose,
            } => {
                let message = if available.is_empty() {
                    match purpose {
                        Purpose::Chat => format!(
                            "The model `{model}` does not exist: no chat model is configured on this tenant plane"
                        ),
                        Purpose::Embeddings => format!(
                            "The model `{model}` does not exist: no embedding model is configured on this tenant plane (EMBEDDING_PROVIDER is fallback)"
                        ),
                    }
                } else {
                    format!(
                        "The model `{model}` does not exist on this tenant plane. Available {purpose} models: {}. Operators can add aliases with TP_MODEL_ALIASES",
                        available.join(", ")
                    )
                };
                let mut r = reply(404, INVALID, Some("model_not_found"), message);
                r.body.error.param = Some("model".to_owned());
                r
            }
            GatewayError::WrongModel { model, wanted } => {
                let message = match wanted {
                    Purpose::Chat => format!(
                        "The model `{model}` is an embedding model; use it with /v1/embeddings"
                    ),
                    Purpose::Embeddings => format!(
                        "The model `{model}` is a chat model; use it with /v1/chat/completions"
                    ),
                };
                let mut r = reply(400, INVALID, Some("model_not_supported"), message);
                r.body.error.param = Some("model".to_owned());
                r
            }
            GatewayError::NotConfigured => {
                let mut r = reply(
                    503,
                    SERVER,
                    Some("provider_not_configured"),
                    format!(
                        "AI provider not configured: {}",
                        crate::connection_test::HOW_TO_CONFIGURE
                    ),
                );
                r.no_retry = true;
                r
            }
            GatewayError::Setup(e) => reply(
                503,
                SERVER,
                Some("upstream_unavailable"),
                format!(
                    "AI provider temporarily unavailable: could not set up the provider client: {e}"
                ),
            ),
            GatewayError::Provider { provider, error } => provider_reply(provider, error),
        }
    }
}

/// Maps a provider failure to what an OpenAI client understands: the client's own mistakes
/// stay 4xx, the provider's limits stay 429, everything else is a gateway failure (5xx) whose
/// message says which provider failed and why.
fn provider_reply(provider: &str, e: &ProviderError) -> ErrorReply {
    let message = format!("AI provider ({provider}) error: {e}");
    let mut r = match e.kind {
        ProviderErrorKind::BadRequest => reply(400, INVALID, Some("upstream_bad_request"), message),
        ProviderErrorKind::ContextTooLong => {
            let mut r = reply(400, INVALID, Some("context_length_exceeded"), message);
            r.body.error.param = Some("messages".to_owned());
            r
        }
        ProviderErrorKind::ToolsNotSupported => {
            let mut r = reply(400, INVALID, Some("tools_not_supported"), message);
            r.body.error.param = Some("tools".to_owned());
            r
        }
        ProviderErrorKind::Unsupported => {
            reply(400, INVALID, Some("unsupported_by_provider"), message)
        }
        ProviderErrorKind::RateLimited
            if e.code.as_deref() == Some(crate::cp::managed::INSUFFICIENT_CREDITS) =>
        {
            let mut r = reply(
                402,
                "insufficient_quota",
                Some("insufficient_credits"),
                message,
            );
            r.no_retry = true;
            r
        }
        ProviderErrorKind::RateLimited => reply(
            429,
            "rate_limit_error",
            Some("rate_limit_exceeded"),
            message,
        ),
        ProviderErrorKind::Unavailable if e.code.as_deref() == Some("timeout") => {
            reply(504, SERVER, Some("upstream_timeout"), message)
        }
        ProviderErrorKind::Unavailable => reply(503, SERVER, Some("upstream_unavailable"), message),
        ProviderErrorKind::InvalidResponse => {
            reply(502, SERVER, Some("upstream_invalid_response"), message)
        }
        // The provider rejected the tenant plane's own credentials, or does not know the
        // configured model: the operator must fix the configuration; retrying cannot help.
        ProviderErrorKind::Authentication => {
            let mut r = reply(502, SERVER, Some("upstream_authentication_failed"), message);
            r.no_retry = true;
            r
        }
        ProviderErrorKind::NotFound => {
            let mut r = reply(502, SERVER, Some("upstream_not_found"), message);
            r.no_retry = true;
            r
        }
    };
    r.retry_after = e.retry_after;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_failures_map_to_openai_statuses() {
        let cases = [
            (
                ProviderErrorKind::BadRequest,
                None,
                400,
                "upstream_bad_request",
                false,
            ),
            (
                ProviderErrorKind::ContextTooLong,
                None,
                400,
                "context_length_exceeded",
                false,
            ),
            (
                ProviderErrorKind::RateLimited,
                None,
                429,
                "rate_limit_exceeded",
                false,
            ),
            (
                ProviderErrorKind::RateLimited,
                Some("insufficient_credits"),
                402,
                "insufficient_credits",
                true,
            ),
            (
                ProviderErrorKind::Unavailable,
                None,
                503,
                "upstream_unavailable",
                false,
            ),
            (
                ProviderErrorKind::Unavailable,
                Some("timeout"),
                504,
                "upstream_timeout",
                false,
            ),
            (
                ProviderErrorKind::InvalidResponse,
                None,
                502,
                "upstream_invalid_response",
                false,
            ),
            (
                ProviderErrorKind::Authentication,
                None,
                502,
                "upstream_authentication_failed",
                true,
            ),
            (
                ProviderErrorKind::NotFound,
                None,
                502,
                "upstream_not_found",
                true,
            ),
        ];
        for (kind, code, status, wire_code, no_retry) in cases {
            let mut e = ProviderError::new(kind, "why").with_status(418);
            e.code = code.map(str::to_owned);
            e.retry_after = Some(Duration::from_secs(3));
            let r = GatewayError::Provider {
                provider: "anthropic",
                error: e,
            }
            .reply();
            assert_eq!(r.status, status, "{kind:?}");
            assert_eq!(r.body.error.code, Some(wire_code), "{kind:?}");
            assert_eq!(r.no_retry, no_retry, "{kind:?}");
            assert_eq!(r.retry_after, Some(Duration::from_secs(3)));
            assert!(
                r.body
                    .error
                    .message
                    .starts_with("AI provider (anthropic) error: "),
                "{}",
                r.body.error.message
            );
            assert!(r.body.error.message.contains("why"));
        }
    }

    #[test]
    fn the_body_has_all_four_fields() {
        let r = GatewayError::ModelNotFound {
            model: "gpt-3.5-turbo".into(),
            available: vec!["claude".into(), "gpt-4o".into()],
            purpose: Purpose::Chat,
        }
        .reply();
        assert_eq!(r.status, 404);
        let v = serde_json::to_value(&r.body).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("claude, gpt-4o")
        );
        let v = serde_json::to_value(&GatewayError::Body("x".into()).reply().body).unwrap();
        assert_eq!(v["error"].as_object().unwrap().len(), 4);
        assert_eq!(v["error"]["param"], serde_json::Value::Null);
        assert_eq!(v["error"]["code"], serde_json::Value::Null);
    }
}

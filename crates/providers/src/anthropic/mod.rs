//! The Anthropic Messages dialect: `POST /v1/messages` (whole and streamed) and `GET /v1/models`.
//!
//! Wire format: the official Python SDK's types (`anthropics/anthropic-sdk-python`,
//! `src/anthropic/types/`: `MessageCreateParams`, `Message`, `RawMessageStreamEvent`,
//! `ModelInfo`, `shared/ErrorResponse`) and Anthropic's API documentation (errors, streaming,
//! structured outputs, rate limits). Anthropic has no embeddings API.

mod request;
mod response;
mod stream;

use atlasai_core::{
    ANTHROPIC_BASE_URL, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo,
    ProviderErrorKind, ProviderSettings,
};
use http::HeaderMap;
use reqwest::RequestBuilder;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::error::{ProviderError, kind_for_status, refine_bad_request};
use crate::http::{HttpOptions, build_client, read_json, send_with_retry};
use crate::sse::{events, parse_frames};
use crate::{ChatStream, Provider, ProviderInfo};

/// The API version every request declares. Anthropic adds features to `2023-06-01` without
/// cutting new versions, and rejects dates it does not know.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` when the request sets none: Anthropic requires the field, and 4096 fits every
/// current model's output limit.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Models asked for per page of `GET /v1/models` (the API allows 1 to 1000).
const MODELS_PAGE_LIMIT: u32 = 1000;

/// The most pages of models we follow. A key sees a few dozen models, so hitting this means the
/// server keeps answering `has_more`; we stop rather than loop forever.
const MAX_MODEL_PAGES: usize = 20;

/// What a user gets when asking Anthropic for embeddings.
const NO_EMBEDDINGS: &str =
    "Anthropic has no embeddings API; set EMBEDDING_PROVIDER to openai, bedrock or fallback";

/// A client for the Anthropic Messages API.
#[derive(Debug)]
pub struct AnthropicClient {
    http: reqwest::Client,
    opts: HttpOptions,
    info: ProviderInfo,
    /// `{endpoint}/v1`, whether or not the configured endpoint already ended in `/v1`.
    api_base: Url,
    /// `None` only for a custom endpoint (a gateway that adds the key itself).
    api_key: Option<SecretString>,
}

impl AnthropicClient {
    /// Builds a client from resolved settings.
    pub fn new(settings: &ProviderSettings, opts: &HttpOptions) -> Result<Self, ProviderError> {
        let endpoint = match &settings.endpoint {
            Some(url) => url.clone(),
            None => Url::parse(ANTHROPIC_BASE_URL).map_err(|e| {
                ProviderError::new(
                    ProviderErrorKind::BadRequest,
                    format!("invalid URL {ANTHROPIC_BASE_URL:?}: {e}"),
                )
            })?,
        };
        let api_key = settings
            .api_key
            .clone()
            .filter(|k| !k.expose_secret().is_empty() && k.expose_secret() != "none");
        if let Some(key) = &api_key
            && http::HeaderValue::from_str(key.expose_secret()).is_err()
        {
            // Otherwise every request fails in the HTTP layer and looks like an outage.
            return Err(ProviderError::new(
                ProviderErrorKind::BadRequest,
                "BYOC_API_KEY contains characters an HTTP header cannot carry (a line break \
                 from copying it?)",
            ));
        }
        if api_key.is_none() && settings.endpoint.is_none() {
            return Err(ProviderError::new(
                ProviderErrorKind::BadRequest,
                "Anthropic needs an API key: set BYOC_API_KEY to a key from console.anthropic.com",
            ));
        }
        Ok(AnthropicClient {
            http: build_client(opts)?,
            opts: opts.clone(),
            api_base: api_base(&endpoint),
            info: ProviderInfo {
                kind: settings.kind,
                model: settings.model.clone(),
                endpoint,
            },
            api_key,
        })
    }

    /// `{api_base}/{op}`.
    fn url(&self, op: &str) -> Url {
        let mut url = self.api_base.clone();
        let path = format!("{}/{op}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    fn authorize(&self, mut req: RequestBuilder) -> RequestBuilder {
        if let Some(key) = &self.api_key {
            req = req.header("x-api-key", key.expose_secret());
        }
        req.header("anthropic-version", ANTHROPIC_VERSION)
    }

    async fn post_messages(
        &self,
        body: &Value,
        streaming: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = self.url("messages");
        send_with_retry(&self.opts, streaming, map_error, || {
            let req = self.authorize(self.http.post(url.clone()).json(body));
            async move { Ok(req) }
        })
        .await
    }
}

#[async_trait::async_trait]
impl Provider for AnthropicClient {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = request::body(&self.info.model, request, false)?;
        let resp = self.post_messages(&body, false).await?;
        let wire: response::WireMessage = read_json(resp, "message").await?;
        Ok(wire.into_neutral(&self.info.model))
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = request::body(&self.info.model, request, true)?;
        let resp = self.post_messages(&body, true).await?;
        Ok(parse_frames(
            events(resp, self.opts.timeout),
            stream::StreamParser::default(),
        ))
    }

    async fn embed(&self, _request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        Err(ProviderError::unsupported(NO_EMBEDDINGS))
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let mut models = Vec::new();
        let mut after_id: Option<String> = None;
        for _ in 0..MAX_MODEL_PAGES {
            let mut url = self.url("models");
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("limit", &MODELS_PAGE_LIMIT.to_string());
                if let Some(after) = &after_id {
                    query.append_pair("after_id", after);
                }
            }
            let resp = send_with_retry(&self.opts, false, map_error, || {
                let req = self.authorize(self.http.get(url.clone()));
                async move { Ok(req) }
            })
            .await?;
            let page: response::WireModelPage = read_json(resp, "model list").await?;
            let next = page.next_cursor();
            models.extend(page.data.into_iter().map(|m| ModelInfo {
                id: m.id,
                display_name: m.display_name.filter(|n| !n.is_empty()),
                owned_by: Some("anthropic".to_owned()),
            }));
            match next {
                Some(cursor) => after_id = Some(cursor),
                None => return Ok(models),
            }
        }
        tracing::warn!(
            pages = MAX_MODEL_PAGES,
            models = models.len(),
            "Anthropic model list still had more pages; returning what we have"
        );
        Ok(models)
    }
}

/// `{endpoint}/v1`, without doubling a `/v1` the endpoint already has (customer proxies are
/// often configured either way).
fn api_base(endpoint: &Url) -> Url {
    let mut url = endpoint.clone();
    let path = url.path().trim_end_matches('/');
    let path = if path.ends_with("/v1") {
        path.to_owned()
    } else {
        format!("{path}/v1")
    };
    url.set_path(&path);
    url
}

/// Reads Anthropic's error body, `{"type":"error","error":{"type":…,"message":…},"request_id":…}`.
/// Gateways in front of Anthropic sometimes answer in OpenAI's shape (`{"error":{"message":…}}`)
/// or with plain text; those are read too.
/// Parses a Messages response body, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let wire: response::WireMessage = crate::http::parse_json(body, "message")?;
    Ok(wire.into_neutral("fuzz-model"))
}

/// A fresh stream parser, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_stream_parser() -> impl crate::sse::FrameParser<eventsource_stream::Event> {
    stream::StreamParser::default()
}

pub(crate) fn map_error(status: u16, _headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().map(|v| v.get("error").unwrap_or(v));
    let message = error
        .and_then(|e| {
            e.get("message")
                .and_then(Value::as_str)
                .or_else(|| e.as_str())
        })
        .filter(|m| !m.trim().is_empty())
        .map(str::to_owned);
    let error_type = error
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            text.chars().take(300).collect()
        }
    });
    let mut kind = kind_for_status(status);
    match error_type.as_deref() {
        // An account without credit: waiting will not help, the customer must act.
        Some("billing_error") => kind = ProviderErrorKind::Authentication,
        // Whatever status a gateway put on it, an overload is temporary.
        Some("overloaded_error") => kind = ProviderErrorKind::Unavailable,
        _ => {}
    }
    let kind = refine_bad_request(kind, &message);
    let mut err = ProviderError::new(kind, message);
    err.code = error_type;
    err
}

/// The HTTP status Anthropic pairs with an error type (from its error documentation), for
/// errors that arrive inside a 200 stream.
pub(crate) fn status_for_error_type(error_type: &str) -> u16 {
    match error_type {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlasai_core::ProviderKind;

    fn client(endpoint: Option<&str>, key: Option<&str>) -> Result<AnthropicClient, ProviderError> {
        let mut s = ProviderSettings::new(ProviderKind::Anthropic, "claude-sonnet-4-5");
        s.endpoint = endpoint.map(|e| Url::parse(e).unwrap());
        s.api_key = key.map(SecretString::from);
        AnthropicClient::new(&s, &HttpOptions::default())
    }

    #[test]
    fn urls_add_v1_once() {
        let c = client(None, Some("k")).unwrap();
        assert_eq!(
            c.url("messages").as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        for endpoint in [
            "https://proxy.corp/anthropic",
            "https://proxy.corp/anthropic/",
            "https://proxy.corp/anthropic/v1",
            "https://proxy.corp/anthropic/v1/",
        ] {
            let c = client(Some(endpoint), Some("k")).unwrap();
            assert_eq!(
                c.url("models").as_str(),
                "https://proxy.corp/anthropic/v1/models",
                "{endpoint}"
            );
        }
    }

    #[test]
    fn the_public_api_needs_a_key_but_a_gateway_may_not() {
        let err = client(None, None).unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::BadRequest);
        assert!(err.message.contains("BYOC_API_KEY"), "{err}");
        assert!(client(None, Some("none")).is_err());
        let err = client(None, Some("sk-ant-api03-abc\n")).unwrap_err();
        assert!(err.message.contains("line break"), "{err}");
        let c = client(Some("https://gw.corp"), None).unwrap();
        assert!(c.api_key.is_none());
    }

    #[test]
    fn errors_map_by_status_type_and_wording() {
        let h = HeaderMap::new();
        let e = map_error(
            400,
            &h,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 219898 tokens > 200000 maximum"},"request_id":"req_011CVjxiYzEFcAQC4Fk87zw2"}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ContextTooLong);
        assert_eq!(e.code.as_deref(), Some("invalid_request_error"));
        let e = map_error(
            400,
            &h,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"claude-instant-1.2 does not support tool use."}}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ToolsNotSupported);
        let e = map_error(
            401,
            &h,
            br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::Authentication);
        assert_eq!(e.message, "invalid x-api-key");
        let e = map_error(
            529,
            &h,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::Unavailable);
        assert!(e.is_retryable());
        let e = map_error(
            413,
            &h,
            br#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ContextTooLong);
        let e = map_error(
            402,
            &h,
            br#"{"type":"error","error":{"type":"billing_error","message":"Your credit balance is too low."}}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::Authentication);
        let e = map_error(
            404,
            &h,
            br#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::NotFound);
        let e = map_error(502, &h, b"<html>bad gateway</html>");
        assert_eq!(e.kind, ProviderErrorKind::Unavailable);
        assert!(e.message.contains("bad gateway"));
        let e = map_error(429, &h, b"");
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        assert!(e.message.contains("429"));
    }

    #[test]
    fn stream_error_types_get_their_documented_status() {
        assert_eq!(status_for_error_type("overloaded_error"), 529);
        assert_eq!(status_for_error_type("rate_limit_error"), 429);
        assert_eq!(status_for_error_type("something_new"), 500);
        assert_eq!(
            kind_for_status(status_for_error_type("overloaded_error")),
            ProviderErrorKind::Unavailable
        );
    }
}

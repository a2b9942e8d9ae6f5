//! The Google Vertex AI dialect: Gemini through `generateContent` and
//! `streamGenerateContent?alt=sse`, text embeddings through `predict`, authenticated with a
//! service-account key exchanged for OAuth access tokens.
//!
//! Wire format: googleapis/googleapis `google/cloud/aiplatform/v1/*.proto` (REST mapping
//! `POST /v1/{model=projects/*/locations/*/publishers/*/models/*}:generateContent`), errors as
//! `google.rpc.Status` (`{"error":{"code","message","status","details"}}`), and the request
//! shapes of the official SDK googleapis/python-genai (`google/genai/models.py`).
//!
//! - [`auth`]: the key file, the JWT bearer grant and the token cache.
//! - [`request`]: neutral request → `GenerateContentRequest`.
//! - [`response`]: `GenerateContentResponse` → neutral answer and stream events.

mod auth;
mod request;
mod response;

use std::ops::Range;
use std::time::Duration;

use atlasai_core::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo, ProviderErrorKind,
    ProviderSettings,
};
use bytes::Bytes;
use http::HeaderMap;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::error::{ProviderError, kind_for_status, refine_bad_request};
use crate::http::{HttpOptions, build_client, read_json, send_with_retry};
use crate::sse::{events, parse_frames};
use crate::{ChatStream, Provider, ProviderInfo};

use self::auth::{ServiceAccount, TokenSource};
use self::response::{GenerateContentResponse, StreamParser};

/// Vertex AI accepts at most this many texts per `predict` call.
const MAX_EMBEDDING_BATCH: usize = 250;
/// Vertex AI rejects a `predict` call whose inputs total more than 20,000 tokens. We cannot
/// count tokens, so batches are cut at a character budget that stays under the limit for
/// ordinary text (about four characters per token), and a longer single input goes alone.
const EMBEDDING_BATCH_CHARS: usize = 40_000;

/// A client for Gemini on Vertex AI.
#[derive(Debug)]
pub struct VertexClient {
    http: reqwest::Client,
    opts: HttpOptions,
    info: ProviderInfo,
    generate_url: Url,
    stream_url: Url,
    predict_url: Url,
    auth: TokenSource,
}

fn config_error(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::BadRequest, message)
}

/// A project id or location must be a plain path segment: they are pasted into the URL.
fn check_segment(what: &str, value: &str, example: &str) -> Result<(), ProviderError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(config_error(format!(
            "the Vertex AI {what} {value:?} is not valid; expected something like {example}"
        )))
    }
}

/// Accepts `gemini-2.0-flash` as well as the resource forms `models/…` and
/// `publishers/google/models/…` that Google's documentation also shows.
fn model_id(model: &str) -> Result<String, ProviderError> {
    let model = model.trim();
    let id = model
        .strip_prefix("publishers/google/models/")
        .or_else(|| model.strip_prefix("models/"))
        .unwrap_or(model);
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(config_error(format!(
            "the Vertex AI model {model:?} is not a Google publisher model id; enter an id such as gemini-2.0-flash"
        )))
    }
}

/// `https://{location}-aiplatform.googleapis.com`, or the global endpoint.
fn default_base(location: &str) -> Result<Url, ProviderError> {
    let text = if location == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    };
    Url::parse(&text).map_err(|e| config_error(format!("invalid Vertex AI endpoint {text:?}: {e}")))
}

/// `{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}`. A base
/// that already ends in `/v1` (a proxy configured with the version) is not given a second one.
fn model_resource_url(base: &Url, project: &str, location: &str, model: &str) -> String {
    let base = base.as_str().trim_end_matches('/');
    let base = base.strip_suffix("/v1").unwrap_or(base);
    format!("{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}")
}

fn parse_url(text: &str) -> Result<Url, ProviderError> {
    Url::parse(text).map_err(|e| config_error(format!("invalid URL {text:?}: {e}")))
}

impl VertexClient {
    /// Builds a client from resolved settings. The service-account key is parsed and checked
    /// here; access tokens are fetched on first use.
    pub fn new(settings: &ProviderSettings, opts: &HttpOptions) -> Result<Self, ProviderError> {
        let key = settings
            .service_account
            .as_ref()
            .map(|k| k.expose_secret().trim())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::Authentication,
                    "Vertex AI needs a service-account key: provide the content of the JSON key file",
                )
                .with_code("invalid_service_account")
            })?;
        let account = ServiceAccount::parse(key)?;
        let project = settings
            .gcp_project
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .or_else(|| account.project_id.clone())
            .ok_or_else(|| {
                config_error("Vertex AI needs a Google Cloud project id (BYOC_GCP_PROJECT), for example my-project-123")
            })?;
        check_segment("project", &project, "my-project-123")?;
        let location = settings
            .region
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                config_error(
                    "Vertex AI needs a location (region), for example us-central1 or global",
                )
            })?;
        check_segment("location", location, "us-central1 or global")?;
        let model = model_id(&settings.model)?;
        let base = match &settings.endpoint {
            Some(url) => url.clone(),
            None => default_base(location)?,
        };
        let resource = model_resource_url(&base, &project, location, &model);
        let http = build_client(opts)?;
        Ok(VertexClient {
            generate_url: parse_url(&format!("{resource}:generateContent"))?,
            stream_url: parse_url(&format!("{resource}:streamGenerateContent?alt=sse"))?,
            predict_url: parse_url(&format!("{resource}:predict"))?,
            auth: TokenSource::new(account, http.clone(), opts.clone()),
            http,
            opts: opts.clone(),
            info: ProviderInfo {
                kind: settings.kind,
                model,
                endpoint: base,
            },
        })
    }

    /// POSTs a JSON body with a bearer token, retrying per policy. A 401 means the token was
    /// revoked or expired early: the cached token is dropped, and if it was a cached one the
    /// call is repeated once with a fresh token.
    async fn post(
        &self,
        url: &Url,
        body: &Value,
        streaming: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let body = Bytes::from(serde_json::to_vec(body).map_err(|e| {
            ProviderError::invalid_response(format!("could not encode the request: {e}"))
        })?);
        let had_token = self.auth.has_cached().await;
        match self.send(url, &body, streaming).await {
            Err(e) if e.status == Some(401) => {
                self.auth.invalidate().await;
                if had_token {
                    self.send(url, &body, streaming).await
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    async fn send(
        &self,
        url: &Url,
        body: &Bytes,
        streaming: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        send_with_retry(&self.opts, streaming, map_error, move || async move {
            // Each attempt asks for the token again: a retry after a long wait may need a new one.
            let token = self.auth.token().await?;
            Ok(self
                .http
                .post(url.clone())
                .bearer_auth(token.expose_secret())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.clone()))
        })
        .await
    }
}

#[async_trait::async_trait]
impl Provider for VertexClient {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = to_json(&request::build(request)?)?;
        let resp = self.post(&self.generate_url, &body, false).await?;
        let wire: GenerateContentResponse = read_json(resp, "generateContent response").await?;
        wire.into_neutral(&self.info.model)
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = to_json(&request::build(request)?)?;
        let resp = self.post(&self.stream_url, &body, true).await?;
        Ok(parse_frames(
            events(resp, self.opts.timeout),
            StreamParser::default(),
        ))
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        // gemini-embedding-001 takes one text per call; the text-embedding models take many.
        let per_call = if self.info.model.starts_with("gemini-embedding") {
            1
        } else {
            MAX_EMBEDDING_BATCH
        };
        let mut vectors = Vec::with_capacity(request.inputs.len());
        let mut tokens: Option<u32> = None;
        for range in embedding_batches(&request.inputs, per_call, EMBEDDING_BATCH_CHARS) {
            let batch = &request.inputs[range];
            let mut body = json!({
                "instances": batch
                    .iter()
                    .map(|text| json!({"content": text, "task_type": "RETRIEVAL_DOCUMENT"}))
                    .collect::<Vec<_>>(),
            });
            if let Some(d) = request.dimensions {
                body["parameters"] = json!({"outputDimensionality": d});
            }
            let resp = self.post(&self.predict_url, &body, false).await?;
            let wire: PredictResponse = read_json(resp, "predict response").await?;
            if wire.predictions.len() != batch.len() {
                return Err(ProviderError::invalid_response(format!(
                    "asked for {} embeddings, got {}",
                    batch.len(),
                    wire.predictions.len()
                )));
            }
            for p in wire.predictions {
                if let Some(count) = p.embeddings.statistics.and_then(|s| s.token_count) {
                    *tokens.get_or_insert(0) += count as u32;
                }
                vectors.push(p.embeddings.values);
            }
        }
        Ok(EmbeddingResponse {
            model: self.info.model.clone(),
            vectors,
            prompt_tokens: tokens,
        })
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        Err(ProviderError::unsupported(
            "Vertex AI does not offer a model list for publisher models; enter the model id (for example gemini-2.0-flash)",
        ))
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ProviderError> {
    serde_json::to_value(value)
        .map_err(|e| ProviderError::invalid_response(format!("could not encode the request: {e}")))
}

/// Splits inputs into consecutive batches of at most `max_items` texts and, where possible,
/// at most `max_chars` characters.
fn embedding_batches(inputs: &[String], max_items: usize, max_chars: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = 0;
    for (i, text) in inputs.iter().enumerate() {
        let len = text.chars().count();
        let full = i - start >= max_items || (i > start && chars + len > max_chars);
        if full {
            out.push(start..i);
            start = i;
            chars = 0;
        }
        chars += len;
    }
    if start < inputs.len() {
        out.push(start..inputs.len());
    }
    out
}

#[derive(Debug, Deserialize)]
struct PredictResponse {
    #[serde(default)]
    predictions: Vec<Prediction>,
}

#[derive(Debug, Deserialize)]
struct Prediction {
    embeddings: PredictionEmbeddings,
}

#[derive(Debug, Deserialize)]
struct PredictionEmbeddings {
    values: Vec<f32>,
    statistics: Option<PredictionStatistics>,
}

#[derive(Debug, Deserialize)]
struct PredictionStatistics {
    /// A JSON number that Vertex sometimes writes as a float (`6.0`).
    token_count: Option<f64>,
}

/// Reads a `google.rpc.Status` error body (`{"error":{"code":429,"message":"…",
/// "status":"RESOURCE_EXHAUSTED","details":[…]}}`, sometimes wrapped in a one-element array).
pub(crate) fn map_error(status: u16, _headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let parsed = match parsed {
        Some(Value::Array(mut items)) if !items.is_empty() => Some(items.swap_remove(0)),
        other => other,
    };
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| fallback_message(status, body));
    let rpc_status = error
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut kind = match rpc_status.as_deref() {
        Some("UNAUTHENTICATED" | "PERMISSION_DENIED") => ProviderErrorKind::Authentication,
        Some("NOT_FOUND") => ProviderErrorKind::NotFound,
        Some("RESOURCE_EXHAUSTED") => ProviderErrorKind::RateLimited,
        Some("UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED" | "ABORTED") => {
            ProviderErrorKind::Unavailable
        }
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            ProviderErrorKind::BadRequest
        }
        _ => kind_for_status(status),
    };
    let lower = message.to_ascii_lowercase();
    if kind == ProviderErrorKind::BadRequest {
        if lower.contains("input token count") && lower.contains("exceeds the maximum") {
            kind = ProviderErrorKind::ContextTooLong;
        } else if lower.contains("function calling is not")
            || lower.contains("function calling is unsupported")
        {
            // "Function calling is not enabled for models/…", "… is not supported …", and
            // "Tool use with function calling is unsupported by the model."
            kind = ProviderErrorKind::ToolsNotSupported;
        }
    }
    let kind = refine_bad_request(kind, &message);
    let mut err = ProviderError::new(kind, message);
    err.code = rpc_status;
    err.retry_after = error.and_then(retry_delay);
    err
}

/// The wait asked for in a `google.rpc.RetryInfo` detail (`"retryDelay": "20s"`).
fn retry_delay(error: &Value) -> Option<Duration> {
    error
        .get("details")?
        .as_array()?
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| {
            d.get("retryDelay")?
                .as_str()?
                .strip_suffix('s')?
                .parse::<f64>()
                .ok()
        })
        .filter(|s| s.is_finite() && *s >= 0.0)
        // A wait beyond `Duration`'s range is simply longer than we ever wait.
        .map(|s| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX))
}

/// A message for a body that is not a Google error, such as a proxy's HTML error page.
fn fallback_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status} with an empty body")
    } else if text.starts_with('<') {
        format!(
            "HTTP {status} with an HTML error page (from a load balancer or proxy in front of Vertex AI)"
        )
    } else {
        text.chars().take(300).collect()
    }
}

/// Parses a generateContent response body, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let wire: GenerateContentResponse = crate::http::parse_json(body, "generateContent response")?;
    wire.into_neutral("fuzz-model")
}

/// A fresh stream parser, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_stream_parser() -> impl crate::sse::FrameParser<eventsource_stream::Event> {
    StreamParser::default()
}

#[cfg(test)]
mod tests {
    use atlasai_core::ProviderKind;
    use secrecy::SecretString;

    use super::*;

    const TEST_KEY: &str = atlasai_fakes::vertex::TEST_PRIVATE_KEY;

    fn settings(region: &str, endpoint: Option<&str>) -> ProviderSettings {
        let mut s = ProviderSettings::new(ProviderKind::Vertex, "gemini-2.0-flash");
        s.region = Some(region.into());
        s.gcp_project = Some("proj-1".into());
        s.endpoint = endpoint.map(|e| Url::parse(e).unwrap());
        s.service_account = Some(SecretString::from(
            json!({
                "type": "service_account",
                "project_id": "key-project",
                "private_key_id": "k1",
                "private_key": TEST_KEY,
                "client_email": "sa@proj-1.iam.gserviceaccount.com",
                "token_uri": "https://oauth2.googleapis.com/token",
            })
            .to_string(),
        ));
        s
    }

    #[test]
    fn urls_follow_the_location_and_a_configured_endpoint() {
        let c = VertexClient::new(&settings("us-central1", None), &HttpOptions::default()).unwrap();
        assert_eq!(
            c.generate_url.as_str(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            c.stream_url.as_str(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        let c = VertexClient::new(&settings("global", None), &HttpOptions::default()).unwrap();
        assert_eq!(
            c.predict_url.as_str(),
            "https://aiplatform.googleapis.com/v1/projects/proj-1/locations/global/publishers/google/models/gemini-2.0-flash:predict"
        );
        let c = VertexClient::new(
            &settings(
                "europe-west4",
                Some("https://llm-proxy.corp.example/vertex/v1/"),
            ),
            &HttpOptions::default(),
        )
        .unwrap();
        assert_eq!(
            c.generate_url.as_str(),
            "https://llm-proxy.corp.example/vertex/v1/projects/proj-1/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(c.info().endpoint_host(), "llm-proxy.corp.example");
    }

    #[test]
    fn settings_errors_say_what_is_missing() {
        let mut s = settings("us-central1", None);
        s.region = None;
        let err = VertexClient::new(&s, &HttpOptions::default()).unwrap_err();
        assert!(err.message.contains("location"), "{err}");
        let mut s = settings("us-central1", None);
        s.region = Some("us-central1/../x".into());
        assert!(VertexClient::new(&s, &HttpOptions::default()).is_err());
        let mut s = settings("us-central1", None);
        s.gcp_project = None;
        let c = VertexClient::new(&s, &HttpOptions::default()).unwrap();
        assert!(
            c.generate_url.as_str().contains("/projects/key-project/"),
            "the key's project_id is the fallback"
        );
        let mut s = settings("us-central1", None);
        s.service_account = None;
        let err = VertexClient::new(&s, &HttpOptions::default()).unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::Authentication);
        assert!(err.message.contains("service-account key"), "{err}");
        let mut s = settings("us-central1", None);
        s.model = "publishers/google/models/gemini-2.5-pro".into();
        assert_eq!(
            VertexClient::new(&s, &HttpOptions::default())
                .unwrap()
                .info()
                .model,
            "gemini-2.5-pro"
        );
        s.model = "publishers/anthropic/models/claude".into();
        assert!(VertexClient::new(&s, &HttpOptions::default()).is_err());
    }

    #[test]
    fn google_errors_map_by_status_and_wording() {
        let h = HeaderMap::new();
        let e = map_error(
            429,
            &h,
            br#"{"error":{"code":429,"message":"Resource exhausted. Please try again later.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        assert_eq!(e.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(e.retry_after, Some(Duration::from_millis(1500)));
        // A wait beyond `Duration`'s range is "too long to wait", not a crash.
        let e = map_error(
            429,
            &h,
            br#"{"error":{"code":429,"message":"Resource exhausted.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1e300s"}]}}"#,
        );
        assert_eq!(e.retry_after, Some(Duration::MAX));
        let e = map_error(
            400,
            &h,
            br#"[{"error":{"code":400,"message":"The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}]"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ContextTooLong);
        let e = map_error(
            400,
            &h,
            br#"{"error":{"code":400,"message":"Tool use with function calling is unsupported by the model.","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ToolsNotSupported);
        let e = map_error(403, &h, br#"{"error":{"code":403,"message":"Permission 'aiplatform.endpoints.predict' denied","status":"PERMISSION_DENIED"}}"#);
        assert_eq!(e.kind, ProviderErrorKind::Authentication);
        let e = map_error(
            502,
            &h,
            b"<!DOCTYPE html><html><title>Error 502 (Server Error)!!1</title></html>",
        );
        assert_eq!(e.kind, ProviderErrorKind::Unavailable);
        assert!(e.message.contains("HTML error page"), "{e}");
    }

    #[test]
    fn embedding_batches_respect_count_and_size() {
        let texts: Vec<String> = ["a", "bb", "ccc", "dddd", "e"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(embedding_batches(&texts, 2, 100), vec![0..2, 2..4, 4..5]);
        assert_eq!(
            embedding_batches(&texts, 1, 100),
            vec![0..1, 1..2, 2..3, 3..4, 4..5]
        );
        assert_eq!(
            embedding_batches(&texts, 250, 4),
            vec![0..2, 2..3, 3..4, 4..5]
        );
        assert!(embedding_batches(&[], 250, 4).is_empty());
    }
}

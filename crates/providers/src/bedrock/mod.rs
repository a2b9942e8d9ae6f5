//! The AWS Bedrock dialect: Converse and ConverseStream for chat, InvokeModel with Titan or
//! Cohere bodies for embeddings, and ListFoundationModels, all signed with SigV4 (service
//! `bedrock`).
//!
//! Wire format: the Bedrock Runtime and Bedrock service models (botocore
//! `bedrock-runtime/2023-09-30/service-2.json` and `bedrock/2023-04-20/service-2.json`), the
//! AWS event-stream encoding for ConverseStream, and the model-parameter pages of the Bedrock
//! user guide for the embedding bodies.
//!
//! Endpoints: `https://bedrock-runtime.{region}.amazonaws.com` for inference and
//! `https://bedrock.{region}.amazonaws.com` for listing models. An endpoint override
//! (`BYOC_ENDPOINT_URL`: a VPC endpoint or a proxy) replaces both; listing models through a
//! bedrock-runtime VPC endpoint therefore needs a proxy that also serves the control-plane
//! path `/foundation-models`.

mod auth;
mod embed;
pub(crate) mod errors;
pub(crate) mod stream;
mod wire;

use std::time::SystemTime;

use atlasai_core::{
    AwsAuth, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo,
    ProviderErrorKind, ProviderSettings,
};
use futures_util::{StreamExt, TryStreamExt};
use http::Method;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use self::auth::Signer;
use self::embed::{CohereResponse, Family, TitanResponse};
use self::errors::map_error;
use self::stream::{StreamParser, exception_error, messages};
use self::wire::{ConverseResponse, converse_body};
use crate::http::{HttpOptions, build_client, header_str, read_json, send_with_retry};
use crate::sse::parse_frames;
use crate::{ChatStream, Provider, ProviderError, ProviderInfo};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// A client for one Bedrock model in one region.
#[derive(Debug)]
pub struct BedrockClient {
    http: reqwest::Client,
    opts: HttpOptions,
    info: ProviderInfo,
    /// Where `GET /foundation-models` goes.
    control: Url,
    signer: Signer,
    family: Family,
}

impl BedrockClient {
    /// Builds a client from resolved settings. With the default credential chain the chain is
    /// assembled here; credentials are fetched on the first request and cached until shortly
    /// before they expire. Without `aws` settings the default chain is used.
    pub async fn new(
        settings: &ProviderSettings,
        opts: &HttpOptions,
    ) -> Result<Self, ProviderError> {
        let region = settings
            .region
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| bad_request("bedrock needs an AWS region (for example us-east-1)"))?;
        // The region becomes part of a host name and of the signature scope.
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad_request(format!(
                "invalid AWS region {region:?}: expected a name like us-east-1"
            )));
        }
        if settings.model.trim().is_empty() {
            return Err(bad_request(
                "bedrock needs a model id, inference profile id or ARN",
            ));
        }
        let (runtime, control) = match &settings.endpoint {
            Some(url) => (url.clone(), url.clone()),
            None => {
                let domain = if region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                (
                    parse_url(&format!("https://bedrock-runtime.{region}.{domain}"))?,
                    parse_url(&format!("https://bedrock.{region}.{domain}"))?,
                )
            }
        };
        let auth = settings.aws.clone().unwrap_or(AwsAuth::DefaultChain);
        Ok(BedrockClient {
            http: build_client(opts)?,
            opts: opts.clone(),
            info: ProviderInfo {
                kind: settings.kind,
                model: settings.model.clone(),
                endpoint: runtime,
            },
            control,
            signer: Signer::new(&auth, region).await,
            family: Family::of(&settings.model),
        })
    }

    /// `{base}/model/{id}/{op}`. The id is percent-encoded as one path segment, so the `:` of
    /// versioned ids and the `/` of ARNs survive; the signer encodes the path once more.
    fn model_url(&self, op: &str) -> Result<Url, ProviderError> {
        let base = self.info.endpoint.as_str().trim_end_matches('/');
        parse_url(&format!(
            "{base}/model/{}/{op}",
            encode_segment(&self.info.model)
        ))
    }

    /// Sends a request signed afresh for each attempt (the signature covers the time).
    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Vec<u8>,
        accept: &'static str,
        streaming: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let has_body = method != Method::GET;
        send_with_retry(&self.opts, streaming, map_error, || {
            let method = method.clone();
            let body = body.clone();
            async move {
                let credentials = self.signer.credentials().await?;
                let mut headers = vec![("accept", accept)];
                if has_body {
                    headers.push(("content-type", JSON));
                }
                let signed = self.signer.sign(
                    &credentials,
                    method.as_str(),
                    url,
                    &headers,
                    &body,
                    SystemTime::now(),
                )?;
                let mut req = self.http.request(method, url.clone());
                for (name, value) in headers {
                    req = req.header(name, value);
                }
                for (name, value) in signed {
                    req = req.header(name, value);
                }
                if has_body {
                    req = req.body(body);
                }
                Ok(req)
            }
        })
        .await
    }

    async fn invoke<T: serde::de::DeserializeOwned>(
        &self,
        body: &Value,
    ) -> Result<T, ProviderError> {
        let url = self.model_url("invoke")?;
        let resp = self
            .send(Method::POST, &url, to_bytes(body)?, JSON, false)
            .await?;
        read_json(resp, "InvokeModel response").await
    }
}

#[async_trait::async_trait]
impl Provider for BedrockClient {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = to_bytes(&converse_body(request)?)?;
        let url = self.model_url("converse")?;
        let resp = self.send(Method::POST, &url, body, JSON, false).await?;
        let request_id = request_id(&resp);
        let wire: ConverseResponse = read_json(resp, "Converse response").await?;
        Ok(wire.into_neutral(&self.info.model, request_id))
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = to_bytes(&converse_body(request)?)?;
        let url = self.model_url("converse-stream")?;
        // Bedrock can accept a stream and then fail it at once with an exception event
        // (throttling, validation). Such a stream has delivered nothing yet, so it is
        // reported here, and retried like an HTTP error, instead of inside the stream.
        let mut attempt = 0u32;
        loop {
            let resp = self
                .send(Method::POST, &url, body.clone(), EVENT_STREAM, true)
                .await?;
            let request_id = request_id(&resp);
            let mut frames = Box::pin(messages(resp, self.opts.timeout));
            let err = match frames.next().await {
                Some(Ok(first)) => match exception_error(&first) {
                    Some(err) => err,
                    None => {
                        let frames = futures_util::stream::iter([Ok(first)]).chain(frames);
                        let parser = StreamParser::new(&self.info.model, request_id);
                        return Ok(parse_frames(frames, parser));
                    }
                },
                Some(Err(err)) => err,
                None => {
                    ProviderError::invalid_response("ConverseStream answered with an empty body")
                        .with_code("truncated_stream")
                }
            };
            if !err.is_retryable() || attempt >= self.opts.retry.max_retries {
                return Err(err);
            }
            tracing::debug!(attempt, error = %err, "retrying a bedrock stream that failed before its first event");
            tokio::time::sleep(self.opts.retry.backoff(attempt)).await;
            attempt += 1;
        }
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let family = self.family;
        let (vectors, prompt_tokens) = if family.is_cohere() {
            let mut vectors = Vec::with_capacity(request.inputs.len());
            for chunk in request.inputs.chunks(embed::COHERE_MAX_TEXTS) {
                let body = embed::cohere_body(family, chunk, request.dimensions);
                let resp: CohereResponse = self.invoke(&body).await?;
                vectors.extend(resp.into_vectors(chunk.len())?);
            }
            (vectors, None)
        } else {
            // One call per text, a few in flight; `buffered` yields in input order.
            let bodies: Vec<Value> = request
                .inputs
                .iter()
                .map(|text| embed::titan_body(family, text, request.dimensions))
                .collect();
            let answers: Vec<TitanResponse> = futures_util::stream::iter(bodies)
                .map(|body| async move { self.invoke::<TitanResponse>(&body).await })
                .buffered(embed::TITAN_CONCURRENCY)
                .try_collect()
                .await?;
            let tokens = answers
                .iter()
                .map(|a| a.input_text_token_count)
                .sum::<Option<u32>>();
            (answers.into_iter().map(|a| a.embedding).collect(), tokens)
        };
        Ok(EmbeddingResponse {
            model: self.info.model.clone(),
            vectors,
            prompt_tokens,
        })
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let base = self.control.as_str().trim_end_matches('/');
        let url = parse_url(&format!("{base}/foundation-models"))?;
        let resp = self
            .send(Method::GET, &url, Vec::new(), JSON, false)
            .await?;
        let wire: WireModels = read_json(resp, "ListFoundationModels response").await?;
        Ok(wire
            .model_summaries
            .into_iter()
            .map(|m| ModelInfo {
                id: m.model_id,
                display_name: m.model_name,
                owned_by: m.provider_name,
            })
            .collect())
    }
}

/// `ListFoundationModelsResponse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireModels {
    #[serde(default)]
    model_summaries: Vec<WireModel>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireModel {
    model_id: String,
    model_name: Option<String>,
    provider_name: Option<String>,
}

/// Bedrock answers have no id of their own; the request id AWS support asks for is the
/// closest thing.
fn request_id(resp: &reqwest::Response) -> Option<String> {
    header_str(resp.headers(), "x-amzn-requestid").map(str::to_owned)
}

fn to_bytes(body: &Value) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body)
        .map_err(|e| bad_request(format!("could not serialise the request: {e}")))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, as AWS SDKs encode labels.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() * 3);
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_url(text: &str) -> Result<Url, ProviderError> {
    Url::parse(text).map_err(|e| bad_request(format!("invalid URL {text:?}: {e}")))
}

fn bad_request(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::BadRequest, message)
}

/// Parses a Converse response body, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let wire: ConverseResponse = crate::http::parse_json(body, "Converse response")?;
    Ok(wire.into_neutral("fuzz-model", None))
}

#[cfg(test)]
mod tests {
    use atlasai_core::ProviderKind;

    use super::*;

    fn settings(model: &str, endpoint: Option<&str>) -> ProviderSettings {
        let mut s = ProviderSettings::new(ProviderKind::Bedrock, model);
        s.region = Some("us-east-1".into());
        s.endpoint = endpoint.map(|e| Url::parse(e).unwrap());
        s.aws = Some(AwsAuth::StaticKeys {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        });
        s
    }

    #[tokio::test]
    async fn model_ids_and_arns_are_one_encoded_path_segment() {
        let c = BedrockClient::new(
            &settings(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                None,
            ),
            &HttpOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            c.model_url("converse").unwrap().as_str(),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
        );
        assert_eq!(
            c.control.as_str(),
            "https://bedrock.us-east-1.amazonaws.com/"
        );
        let c = BedrockClient::new(
            &settings(
                "amazon.nova-lite-v1:0",
                Some("https://vpce-1.example.com/bedrock/"),
            ),
            &HttpOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            c.model_url("converse-stream").unwrap().as_str(),
            "https://vpce-1.example.com/bedrock/model/amazon.nova-lite-v1%3A0/converse-stream"
        );
    }

    #[tokio::test]
    async fn a_missing_or_odd_region_is_refused() {
        let mut s = settings("m.x", None);
        s.region = None;
        let err = BedrockClient::new(&s, &HttpOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::BadRequest);
        assert!(err.message.contains("region"), "{err}");
        s.region = Some("us-east-1.evil.com/".into());
        let err = BedrockClient::new(&s, &HttpOptions::default())
            .await
            .unwrap_err();
        assert!(err.message.contains("invalid AWS region"), "{err}");
    }
}

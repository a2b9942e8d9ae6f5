//! The OpenAI chat-completions dialect: OpenAI itself, Azure OpenAI (deployment URLs with
//! `api-version`, or the v1 API), Ollama, vLLM/TGI and any OpenAI-compatible server.
//!
//! Wire format: OpenAI's OpenAPI specification (`CreateChatCompletionRequest`,
//! `CreateChatCompletionResponse`, `CreateChatCompletionStreamResponse`, `Error`).

use atlasai_core::{
    ChatRequest, ChatResponse, ContentPart, DEFAULT_AZURE_API_VERSION, EmbeddingRequest,
    EmbeddingResponse, FinishReason, Message, ModelInfo, OPENAI_BASE_URL, ProviderErrorKind,
    ProviderKind, ProviderSettings, ResponseFormat, StreamEvent, ToolCall, ToolChoice, Usage,
};
use bytes::Bytes;
use http::HeaderMap;
use reqwest::RequestBuilder;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::direct::{Direct, Endpoint, secret_header};
use crate::error::{ProviderError, kind_for_status, refine_bad_request};
use crate::http::{Failed, HttpOptions, build_client, read_json, send_with_retry, with_retries};
use crate::sse::{FrameParser, events, parse_frames};
use crate::{ChatStream, Provider, ProviderInfo};

/// How URLs are formed.
#[derive(Debug, Clone)]
enum UrlStyle {
    /// `{base}/chat/completions`, `{base}/embeddings`, `{base}/models`.
    V1,
    /// Azure: `{resource}/openai/deployments/{deployment}/chat/completions?api-version=`.
    AzureDeployment { api_version: String },
}

/// How requests authenticate.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Bearer(SecretString),
    AzureApiKey(SecretString),
}

/// A client for the OpenAI dialect.
#[derive(Debug)]
pub struct OpenAiClient {
    transport: Transport,
    opts: HttpOptions,
    info: ProviderInfo,
    auth: Auth,
    organization: Option<String>,
    /// Newer OpenAI models reject `max_tokens`; compatible servers often only know it.
    use_max_completion_tokens: bool,
    /// Ollama's OpenAI-compatible streaming drops tool calls, so tool requests go unstreamed.
    stream_tools: bool,
}

/// How requests travel. Plain-HTTP endpoints reached without a proxy skip reqwest (see
/// [`crate::direct`]); a client then never builds reqwest's (TLS setup included).
#[derive(Debug)]
enum Transport {
    Direct(Box<DirectRoute>),
    Reqwest(Box<ReqwestRoute>),
}

/// reqwest's client and the operation URLs, built once: parsing a URL per request is
/// measurable overhead.
#[derive(Debug)]
struct ReqwestRoute {
    client: reqwest::Client,
    chat: Url,
    embeddings: Url,
    models: Url,
}

/// The direct client and the operation URIs it requests.
#[derive(Debug)]
struct DirectRoute {
    client: Direct,
    chat: Endpoint,
    embeddings: Endpoint,
    models: Endpoint,
}

/// The operation a request is for.
#[derive(Debug, Clone, Copy)]
enum Op {
    Chat,
    Embeddings,
    Models,
}

impl OpenAiClient {
    /// Builds a client from resolved settings.
    pub fn new(settings: &ProviderSettings, opts: &HttpOptions) -> Result<Self, ProviderError> {
        let kind = settings.kind;
        let (base, style) = match kind {
            ProviderKind::Azure => azure_base(settings)?,
            _ => {
                let base = match &settings.endpoint {
                    Some(url) => url.clone(),
                    None if kind == ProviderKind::OpenAi => parse_url(OPENAI_BASE_URL)?,
                    None => {
                        return Err(ProviderError::new(
                            ProviderErrorKind::BadRequest,
                            format!("provider {kind} needs an endpoint URL"),
                        ));
                    }
                };
                (base, UrlStyle::V1)
            }
        };
        let key = settings
            .api_key
            .clone()
            .filter(|k| !k.expose_secret().is_empty() && k.expose_secret() != "none");
        let auth = match (kind, key) {
            (_, None) => Auth::None,
            (ProviderKind::Azure, Some(k)) => Auth::AzureApiKey(k),
            (_, Some(k)) => Auth::Bearer(k),
        };
        let official = kind == ProviderKind::Azure
            || (kind == ProviderKind::OpenAi && settings.endpoint.is_none());
        let ollama = kind == ProviderKind::Ollama
            // Our documentation configures Ollama as `BYOC_PROVIDER=openai` with its endpoint,
            // so recognise Ollama's well-known port as well.
            || (kind == ProviderKind::OpenAi && base.port() == Some(11434));
        let url = |op: &str| make_url(&base, &style, &settings.model, op);
        let (chat_url, embeddings_url, models_url) =
            (url("chat/completions")?, url("embeddings")?, url("models")?);
        let organization = settings.organization.clone().filter(|o| !o.is_empty());
        let transport = match direct_route(
            opts,
            &auth,
            organization.as_deref(),
            [&chat_url, &embeddings_url, &models_url],
        ) {
            Some(direct) => Transport::Direct(Box::new(direct)),
            None => Transport::Reqwest(Box::new(ReqwestRoute {
                client: build_client(opts)?,
                chat: chat_url,
                embeddings: embeddings_url,
                models: models_url,
            })),
        };
        Ok(OpenAiClient {
            transport,
            opts: opts.clone(),
            info: ProviderInfo {
                kind,
                model: settings.model.clone(),
                endpoint: base,
            },
            auth,
            organization,
            use_max_completion_tokens: official,
            stream_tools: !ollama,
        })
    }

    fn authorize(&self, mut req: RequestBuilder) -> RequestBuilder {
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(k) => req = req.bearer_auth(k.expose_secret()),
            Auth::AzureApiKey(k) => req = req.header("api-key", k.expose_secret()),
        }
        if let Some(org) = &self.organization {
            req = req.header("OpenAI-Organization", org);
        }
        req
    }

    /// The request body, serialised once from borrowed views of the neutral request (no copy
    /// of the conversation into an intermediate JSON tree).
    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Bytes, ProviderError> {
        let (max_tokens, max_completion_tokens) = if self.use_max_completion_tokens {
            (None, request.max_tokens)
        } else {
            (request.max_tokens, None)
        };
        let has_tools = !request.tools.is_empty();
        let body = WireRequest {
            model: &self.info.model,
            messages: request.messages.iter().map(WireMessageIn).collect(),
            tools: request.tools.iter().map(WireTool::from).collect(),
            parallel_tool_calls: request.parallel_tool_calls.filter(|_| has_tools),
            tool_choice: request.tool_choice.as_ref().map(WireToolChoice),
            response_format: request.response_format.as_ref().map(WireFormat),
            max_tokens,
            max_completion_tokens,
            temperature: request.temperature,
            top_p: request.top_p,
            frequency_penalty: request.frequency_penalty,
            presence_penalty: request.presence_penalty,
            stop: &request.stop,
            seed: request.seed,
            user: request.user.as_deref(),
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        };
        to_body(&body)
    }

    /// The URL an operation requests.
    #[cfg(test)]
    fn url(&self, op: Op) -> &Url {
        match (&self.transport, op) {
            (Transport::Reqwest(r), Op::Chat) => &r.chat,
            (Transport::Reqwest(r), Op::Embeddings) => &r.embeddings,
            (Transport::Reqwest(r), Op::Models) => &r.models,
            (Transport::Direct(d), Op::Chat) => d.chat.url(),
            (Transport::Direct(d), Op::Embeddings) => d.embeddings.url(),
            (Transport::Direct(d), Op::Models) => d.models.url(),
        }
    }

    /// Sends one operation's request (a POST with `body`, or a GET without), with retries.
    async fn request(
        &self,
        op: Op,
        body: Option<Bytes>,
        streaming: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let (client, url) = match &self.transport {
            Transport::Reqwest(r) => match op {
                Op::Chat => (&r.client, &r.chat),
                Op::Embeddings => (&r.client, &r.embeddings),
                Op::Models => (&r.client, &r.models),
            },
            Transport::Direct(direct) => {
                let (method, endpoint) = match op {
                    Op::Chat => (http::Method::POST, &direct.chat),
                    Op::Embeddings => (http::Method::POST, &direct.embeddings),
                    Op::Models => (http::Method::GET, &direct.models),
                };
                return with_retries(&self.opts, || {
                    // `Bytes` clones share the buffer: a retry re-sends without re-serialising.
                    let sent = direct.client.send(
                        &self.opts,
                        streaming,
                        map_error,
                        method.clone(),
                        endpoint,
                        body.clone(),
                    );
                    async move { sent.await.map_err(Failed::Attempt) }
                })
                .await;
            }
        };
        send_with_retry(&self.opts, streaming, map_error, || {
            let req = match &body {
                Some(body) => client
                    .post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body.clone()),
                None => client.get(url.clone()),
            };
            let req = self.authorize(req);
            async move { Ok(req) }
        })
        .await
    }
}

/// The direct route for plain-HTTP endpoints reached without a proxy, with the credentials
/// built into its headers once; `None` sends everything through reqwest.
fn direct_route(
    opts: &HttpOptions,
    auth: &Auth,
    organization: Option<&str>,
    [chat, embeddings, models]: [&Url; 3],
) -> Option<DirectRoute> {
    if !Direct::applies_to(chat, opts) {
        return None;
    }
    let mut headers = http::HeaderMap::new();
    let credential = match auth {
        Auth::None => None,
        Auth::Bearer(k) => Some((
            http::header::AUTHORIZATION,
            format!("Bearer {}", k.expose_secret()),
        )),
        Auth::AzureApiKey(k) => Some((
            http::HeaderName::from_static("api-key"),
            k.expose_secret().to_owned(),
        )),
    };
    // A value that cannot be a header goes to reqwest, which reports it.
    if let Some((name, value)) = credential {
        let (name, value) = secret_header(name, &value)?;
        headers.insert(name, value);
    }
    if let Some(org) = organization {
        let value = http::HeaderValue::from_str(org).ok()?;
        headers.insert(http::HeaderName::from_static("openai-organization"), value);
    }
    Some(DirectRoute {
        client: Direct::new(opts, headers),
        chat: Endpoint::new(chat)?,
        embeddings: Endpoint::new(embeddings)?,
        models: Endpoint::new(models)?,
    })
}

fn to_body<T: Serialize>(value: &T) -> Result<Bytes, ProviderError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
        ProviderError::new(
            ProviderErrorKind::BadRequest,
            format!("could not serialise the request: {e}"),
        )
    })
}

/// `CreateChatCompletionRequest`, borrowing from the neutral request.
#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessageIn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// One message in OpenAI's request shape.
struct WireMessageIn<'a>(&'a Message);

impl Serialize for WireMessageIn<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            Message::System { content } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("role", "system")?;
                m.serialize_entry("content", content)?;
                m.end()
            }
            Message::User { content } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("role", "user")?;
                match content.as_slice() {
                    // A plain string is what every compatible server accepts.
                    [ContentPart::Text { text }] => m.serialize_entry("content", text)?,
                    parts if parts.iter().all(|p| matches!(p, ContentPart::Text { .. })) => {
                        m.serialize_entry("content", &atlasai_core::joined_text(parts))?;
                    }
                    parts => {
                        let parts: Vec<WirePart<'_>> = parts.iter().map(WirePart).collect();
                        m.serialize_entry("content", &parts)?;
                    }
                }
                m.end()
            }
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("role", "assistant")?;
                m.serialize_entry("content", content)?;
                if !tool_calls.is_empty() {
                    let calls: Vec<WireToolCallIn<'_>> =
                        tool_calls.iter().map(WireToolCallIn).collect();
                    m.serialize_entry("tool_calls", &calls)?;
                }
                m.end()
            }
            Message::Tool {
                tool_call_id,
                content,
            } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("role", "tool")?;
                m.serialize_entry("tool_call_id", tool_call_id)?;
                m.serialize_entry("content", content)?;
                m.end()
            }
        }
    }
}

struct WirePart<'a>(&'a ContentPart);

impl Serialize for WirePart<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        match self.0 {
            ContentPart::Text { text } => {
                m.serialize_entry("type", "text")?;
                m.serialize_entry("text", text)?;
            }
            ContentPart::ImageUrl { url } => {
                m.serialize_entry("type", "image_url")?;
                m.serialize_entry("image_url", &ImageUrlIn { url })?;
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct ImageUrlIn<'a> {
    url: &'a str,
}

struct WireToolCallIn<'a>(&'a ToolCall);

impl Serialize for WireToolCallIn<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("id", &self.0.id)?;
        m.serialize_entry("type", "function")?;
        m.serialize_entry(
            "function",
            &FunctionIn {
                name: &self.0.name,
                arguments: &self.0.arguments,
            },
        )?;
        m.end()
    }
}

#[derive(Serialize)]
struct FunctionIn<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionDef<'a>,
}

#[derive(Serialize)]
struct WireFunctionDef<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

impl<'a> From<&'a atlasai_core::ToolDefinition> for WireTool<'a> {
    fn from(t: &'a atlasai_core::ToolDefinition) -> Self {
        WireTool {
            kind: "function",
            function: WireFunctionDef {
                name: &t.name,
                description: t.description.as_deref(),
                parameters: &t.parameters,
                strict: t.strict,
            },
        }
    }
}

struct WireToolChoice<'a>(&'a ToolChoice);

impl Serialize for WireToolChoice<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Auto => s.serialize_str("auto"),
            ToolChoice::None => s.serialize_str("none"),
            ToolChoice::Required => s.serialize_str("required"),
            ToolChoice::Function(name) => {
                #[derive(Serialize)]
                struct Named<'a> {
                    #[serde(rename = "type")]
                    kind: &'static str,
                    function: NameOnly<'a>,
                }
                #[derive(Serialize)]
                struct NameOnly<'a> {
                    name: &'a str,
                }
                Named {
                    kind: "function",
                    function: NameOnly { name },
                }
                .serialize(s)
            }
        }
    }
}

struct WireFormat<'a>(&'a ResponseFormat);

impl Serialize for WireFormat<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self.0 {
            ResponseFormat::Text => m.serialize_entry("type", "text")?,
            ResponseFormat::JsonObject => m.serialize_entry("type", "json_object")?,
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
                description,
            } => {
                #[derive(Serialize)]
                struct Schema<'a> {
                    name: &'a str,
                    schema: &'a Value,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    strict: Option<bool>,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    description: Option<&'a str>,
                }
                m.serialize_entry("type", "json_schema")?;
                m.serialize_entry(
                    "json_schema",
                    &Schema {
                        name,
                        schema,
                        strict: *strict,
                        description: description.as_deref(),
                    },
                )?;
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct WireEmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

#[async_trait::async_trait]
impl Provider for OpenAiClient {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = self.body(request, false)?;
        let resp = self.request(Op::Chat, Some(body), false).await?;
        let wire: WireResponse = read_json(resp, "chat completion").await?;
        wire.into_neutral(&self.info.model)
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        if !self.stream_tools && !request.tools.is_empty() {
            // Ollama drops tool calls from streamed answers; ask unstreamed and replay.
            let answer = self.chat(request).await?;
            return Ok(Box::pin(futures_util::stream::iter(
                replay(answer).into_iter().map(Ok),
            )));
        }
        let body = self.body(request, true)?;
        let resp = self.request(Op::Chat, Some(body), true).await?;
        Ok(parse_frames(
            events(resp, self.opts.timeout),
            StreamParser::default(),
        ))
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let body = to_body(&WireEmbeddingRequest {
            model: &self.info.model,
            input: &request.inputs,
            encoding_format: "float",
            dimensions: request.dimensions,
        })?;
        let resp = self.request(Op::Embeddings, Some(body), false).await?;
        let wire: WireEmbeddings = read_json(resp, "embeddings response").await?;
        wire.into_neutral(&self.info.model, request.inputs.len())
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let resp = self.request(Op::Models, None, false).await?;
        let wire: WireModels = read_json(resp, "model list").await?;
        Ok(wire
            .data
            .into_iter()
            .map(|m| ModelInfo {
                id: m.id,
                display_name: None,
                owned_by: m.owned_by,
            })
            .collect())
    }
}

/// The URL of an operation (`chat/completions`, `embeddings`, `models`).
fn make_url(endpoint: &Url, style: &UrlStyle, model: &str, op: &str) -> Result<Url, ProviderError> {
    let base = endpoint.as_str().trim_end_matches('/');
    let text = match style {
        UrlStyle::V1 => format!("{base}/{op}"),
        UrlStyle::AzureDeployment { api_version } => {
            let deployment = url_escape(model);
            if op == "models" {
                format!("{base}/openai/models?api-version={api_version}")
            } else {
                format!("{base}/openai/deployments/{deployment}/{op}?api-version={api_version}")
            }
        }
    };
    parse_url(&text)
}

/// Azure: the resource endpoint (deployment URLs) or the v1 API (`…/openai/v1`).
fn azure_base(settings: &ProviderSettings) -> Result<(Url, UrlStyle), ProviderError> {
    let endpoint = settings.endpoint.clone().ok_or_else(|| {
        ProviderError::new(
            ProviderErrorKind::BadRequest,
            "Azure OpenAI needs the resource endpoint URL",
        )
    })?;
    let path = endpoint.path().trim_end_matches('/');
    if path.ends_with("/openai/v1") {
        return Ok((endpoint, UrlStyle::V1));
    }
    let api_version = settings
        .api_version
        .clone()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned());
    Ok((endpoint, UrlStyle::AzureDeployment { api_version }))
}

fn parse_url(text: &str) -> Result<Url, ProviderError> {
    Url::parse(text).map_err(|e| {
        ProviderError::new(
            ProviderErrorKind::BadRequest,
            format!("invalid URL {text:?}: {e}"),
        )
    })
}

/// Percent-encodes a path segment (deployment names may hold characters URLs reserve).
fn url_escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads an OpenAI-style error body. Compatible servers vary: `{"error":{"message":…}}`
/// (OpenAI, Azure, Ollama), `{"error":"…"}`, `{"message":…}` (vLLM), `{"detail":…}`.
pub(crate) fn map_error(status: u16, _headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let (message, code, err_type) = match &parsed {
        Some(v) => {
            let e = v.get("error").unwrap_or(v);
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| e.as_str())
                .or_else(|| v.get("detail").and_then(Value::as_str))
                .map(str::to_owned);
            let code = e.get("code").and_then(|c| match c {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            let err_type = e.get("type").and_then(Value::as_str).map(str::to_owned);
            (message, code, err_type)
        }
        None => (None, None, None),
    };
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
    if code.as_deref() == Some("context_length_exceeded") {
        kind = ProviderErrorKind::ContextTooLong;
    }
    // OpenAI reports an exhausted quota as a 429 too; waiting will not help with it, so it
    // is an authentication-like account problem rather than a rate limit.
    if code.as_deref() == Some("insufficient_quota") {
        kind = ProviderErrorKind::Authentication;
    }
    let kind = refine_bad_request(kind, &message);
    let mut err = ProviderError::new(kind, message);
    err.code = code.or(err_type);
    err
}

#[derive(Debug, Deserialize)]
struct WireResponse {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    message: WireMessageOut,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessageOut {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    id: Option<String>,
    function: WireFunction,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: String,
    /// A JSON string per the spec; Ollama's native API sends an object, accepted too.
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    total_tokens: Option<u32>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        let mut usage = Usage::new(u.prompt_tokens, u.completion_tokens);
        if let Some(t) = u.total_tokens {
            usage.total_tokens = t;
        }
        usage
    }
}

fn arguments_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

fn finish_reason(s: &str) -> FinishReason {
    match s {
        "stop" | "end_turn" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

impl WireResponse {
    fn into_neutral(self, configured_model: &str) -> Result<ChatResponse, ProviderError> {
        let choice = self
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::invalid_response("chat completion has no choices"))?;
        let tool_calls: Vec<ToolCall> = choice
            .message
            .tool_calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: c.id.unwrap_or_else(|| format!("call_{i}")),
                name: c.function.name,
                arguments: arguments_text(c.function.arguments),
            })
            .collect();
        let finish = match choice.finish_reason.as_deref() {
            Some(r) => finish_reason(r),
            None if !tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        Ok(ChatResponse {
            id: self.id,
            model: self.model.unwrap_or_else(|| configured_model.to_owned()),
            content: choice.message.content.or(choice.message.refusal),
            tool_calls,
            finish_reason: finish,
            usage: self.usage.map(Usage::from),
        })
    }
}

/// Parses `chat.completion.chunk` events until `data: [DONE]`.
#[derive(Debug, Default)]
struct StreamParser {
    started: bool,
    done: bool,
}

#[derive(Debug, Deserialize)]
struct WireChunk {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    usage: Option<WireUsage>,
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: WireDelta,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct WireDelta {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCallDelta>,
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: u32,
    id: Option<String>,
    function: Option<WireFunctionDelta>,
}

#[derive(Debug, Deserialize)]
struct WireFunctionDelta {
    name: Option<String>,
    #[serde(default)]
    arguments: Value,
}

impl FrameParser<eventsource_stream::Event> for StreamParser {
    fn on_frame(
        &mut self,
        event: eventsource_stream::Event,
    ) -> Result<Vec<StreamEvent>, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let chunk: WireChunk = serde_json::from_str(data).map_err(|e| {
            ProviderError::invalid_response(format!("could not parse stream chunk: {e}"))
        })?;
        if let Some(error) = chunk.error {
            // Azure and some compatible servers report failures inside a 200 stream.
            let body = serde_json::to_vec(&json!({ "error": error })).unwrap_or_default();
            let status = error
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500);
            return Err(map_error(status, &HeaderMap::new(), &body));
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id,
                model: chunk.model,
            });
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content.or(choice.delta.refusal)
                && !text.is_empty()
            {
                out.push(StreamEvent::TextDelta { text });
            }
            for call in choice.delta.tool_calls {
                let (name, arguments) = match call.function {
                    Some(f) => (f.name, f.arguments),
                    None => (None, Value::Null),
                };
                let arguments = match arguments {
                    Value::Null => String::new(),
                    other => arguments_text(other),
                };
                out.push(StreamEvent::ToolCallDelta {
                    index: call.index,
                    id: call.id,
                    name,
                    arguments,
                });
            }
            if let Some(reason) = choice.finish_reason {
                out.push(StreamEvent::Finish {
                    reason: finish_reason(&reason),
                });
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(StreamEvent::Usage {
                usage: usage.into(),
            });
        }
        Ok(out)
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

/// Replays a complete answer as stream events.
pub(crate) fn replay(answer: ChatResponse) -> Vec<StreamEvent> {
    let mut out = vec![StreamEvent::Start {
        id: answer.id,
        model: Some(answer.model),
    }];
    if let Some(text) = answer.content {
        out.push(StreamEvent::TextDelta { text });
    }
    for (i, call) in answer.tool_calls.into_iter().enumerate() {
        out.push(StreamEvent::ToolCallDelta {
            index: i as u32,
            id: Some(call.id),
            name: Some(call.name),
            arguments: call.arguments,
        });
    }
    out.push(StreamEvent::Finish {
        reason: answer.finish_reason,
    });
    if let Some(usage) = answer.usage {
        out.push(StreamEvent::Usage { usage });
    }
    out
}

#[derive(Debug, Deserialize)]
struct WireEmbeddings {
    data: Vec<WireEmbedding>,
    model: Option<String>,
    usage: Option<WireEmbeddingUsage>,
}

#[derive(Debug, Deserialize)]
struct WireEmbedding {
    #[serde(default)]
    index: usize,
    embedding: Vec<f32>,
}

#[derive(Debug, Deserialize)]
struct WireEmbeddingUsage {
    prompt_tokens: Option<u32>,
}

impl WireEmbeddings {
    fn into_neutral(
        mut self,
        configured_model: &str,
        expected: usize,
    ) -> Result<EmbeddingResponse, ProviderError> {
        if self.data.len() != expected {
            return Err(ProviderError::invalid_response(format!(
                "asked for {expected} embeddings, got {}",
                self.data.len()
            )));
        }
        self.data.sort_by_key(|d| d.index);
        Ok(EmbeddingResponse {
            model: self.model.unwrap_or_else(|| configured_model.to_owned()),
            vectors: self.data.into_iter().map(|d| d.embedding).collect(),
            prompt_tokens: self.usage.and_then(|u| u.prompt_tokens),
        })
    }
}

#[derive(Debug, Deserialize)]
struct WireModels {
    data: Vec<WireModel>,
}

#[derive(Debug, Deserialize)]
struct WireModel {
    id: String,
    owned_by: Option<String>,
}

/// Parses a chat completion body, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let wire: WireResponse = crate::http::parse_json(body, "chat completion")?;
    wire.into_neutral("fuzz-model")
}

/// A fresh stream parser, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_stream_parser() -> impl crate::sse::FrameParser<eventsource_stream::Event> {
    StreamParser::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_from_every_compatible_body_shape() {
        let h = HeaderMap::new();
        let e = map_error(
            400,
            &h,
            br#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ContextTooLong);
        assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
        let e = map_error(
            400,
            &h,
            br#"{"error":"registry.ollama.ai/library/gemma:2b does not support tools"}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ToolsNotSupported);
        let e = map_error(
            400,
            &h,
            br#"{"object":"error","message":"\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set","type":"BadRequestError","param":null,"code":400}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ToolsNotSupported);
        let e = map_error(401, &h, b"");
        assert_eq!(e.kind, ProviderErrorKind::Authentication);
        assert!(e.message.contains("401"));
        let e = map_error(429, &h, br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#);
        assert_eq!(e.kind, ProviderErrorKind::Authentication);
    }

    #[test]
    fn azure_deployment_urls_escape_the_deployment_and_carry_the_api_version() {
        let mut s = ProviderSettings::new(ProviderKind::Azure, "gpt 4o");
        s.endpoint = Some(Url::parse("https://res.openai.azure.com/").unwrap());
        s.api_key = Some(SecretString::from("k"));
        let c = OpenAiClient::new(&s, &HttpOptions::default()).unwrap();
        assert_eq!(
            c.url(Op::Chat).as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            c.url(Op::Models).as_str(),
            "https://res.openai.azure.com/openai/models?api-version=2024-10-21"
        );
        s.endpoint = Some(Url::parse("https://res.openai.azure.com/openai/v1/").unwrap());
        let c = OpenAiClient::new(&s, &HttpOptions::default()).unwrap();
        assert_eq!(
            c.url(Op::Chat).as_str(),
            "https://res.openai.azure.com/openai/v1/chat/completions"
        );
    }
}

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
use http::HeaderMap;
use reqwest::RequestBuilder;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::error::{ProviderError, kind_for_status, refine_bad_request};
use crate::http::{HttpOptions, build_client, read_json, send_with_retry};
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
    http: reqwest::Client,
    opts: HttpOptions,
    info: ProviderInfo,
    style: UrlStyle,
    auth: Auth,
    organization: Option<String>,
    /// Newer OpenAI models reject `max_tokens`; compatible servers often only know it.
    use_max_completion_tokens: bool,
    /// Ollama's OpenAI-compatible streaming drops tool calls, so tool requests go unstreamed.
    stream_tools: bool,
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
        Ok(OpenAiClient {
            http: build_client(opts)?,
            opts: opts.clone(),
            info: ProviderInfo {
                kind,
                model: settings.model.clone(),
                endpoint: base,
            },
            style,
            auth,
            organization: settings.organization.clone().filter(|o| !o.is_empty()),
            use_max_completion_tokens: official,
            stream_tools: !ollama,
        })
    }

    fn url(&self, op: &str) -> Result<Url, ProviderError> {
        let base = self.info.endpoint.as_str().trim_end_matches('/');
        let text = match &self.style {
            UrlStyle::V1 => format!("{base}/{op}"),
            UrlStyle::AzureDeployment { api_version } => {
                let deployment = url_escape(&self.info.model);
                if op == "models" {
                    format!("{base}/openai/models?api-version={api_version}")
                } else {
                    format!("{base}/openai/deployments/{deployment}/{op}?api-version={api_version}")
                }
            }
        };
        parse_url(&text)
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

    fn body(&self, request: &ChatRequest, stream: bool) -> Value {
        let mut body = json!({
            "model": self.info.model,
            "messages": request.messages.iter().map(wire_message).collect::<Vec<_>>(),
        });
        let obj = body.as_object_mut();
        let Some(obj) = obj else { return body };
        if !request.tools.is_empty() {
            obj.insert(
                "tools".into(),
                request
                    .tools
                    .iter()
                    .map(|t| {
                        let mut function = json!({"name": t.name, "parameters": t.parameters});
                        if let Some(d) = &t.description {
                            function["description"] = json!(d);
                        }
                        if let Some(s) = t.strict {
                            function["strict"] = json!(s);
                        }
                        json!({"type": "function", "function": function})
                    })
                    .collect(),
            );
            if let Some(p) = request.parallel_tool_calls {
                obj.insert("parallel_tool_calls".into(), json!(p));
            }
        }
        if let Some(choice) = &request.tool_choice {
            obj.insert(
                "tool_choice".into(),
                match choice {
                    ToolChoice::Auto => json!("auto"),
                    ToolChoice::None => json!("none"),
                    ToolChoice::Required => json!("required"),
                    ToolChoice::Function(name) => {
                        json!({"type": "function", "function": {"name": name}})
                    }
                },
            );
        }
        if let Some(format) = &request.response_format {
            obj.insert("response_format".into(), wire_response_format(format));
        }
        if let Some(max) = request.max_tokens {
            let field = if self.use_max_completion_tokens {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            obj.insert(field.into(), json!(max));
        }
        if let Some(t) = request.temperature {
            obj.insert("temperature".into(), json!(t));
        }
        if let Some(p) = request.top_p {
            obj.insert("top_p".into(), json!(p));
        }
        if let Some(p) = request.frequency_penalty {
            obj.insert("frequency_penalty".into(), json!(p));
        }
        if let Some(p) = request.presence_penalty {
            obj.insert("presence_penalty".into(), json!(p));
        }
        if !request.stop.is_empty() {
            obj.insert("stop".into(), json!(request.stop));
        }
        if let Some(seed) = request.seed {
            obj.insert("seed".into(), json!(seed));
        }
        if let Some(user) = &request.user {
            obj.insert("user".into(), json!(user));
        }
        if stream {
            obj.insert("stream".into(), json!(true));
            obj.insert("stream_options".into(), json!({"include_usage": true}));
        }
        body
    }

    async fn post(
        &self,
        op: &str,
        body: &Value,
        streaming: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = self.url(op)?;
        send_with_retry(&self.opts, streaming, map_error, || {
            let req = self.authorize(self.http.post(url.clone()).json(body));
            async move { Ok(req) }
        })
        .await
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiClient {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = self.body(request, false);
        let resp = self.post("chat/completions", &body, false).await?;
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
        let body = self.body(request, true);
        let resp = self.post("chat/completions", &body, true).await?;
        Ok(parse_frames(
            events(resp, self.opts.timeout),
            StreamParser::default(),
        ))
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let mut body = json!({
            "model": self.info.model,
            "input": request.inputs,
            "encoding_format": "float",
        });
        if let Some(d) = request.dimensions {
            body["dimensions"] = json!(d);
        }
        let resp = self.post("embeddings", &body, false).await?;
        let wire: WireEmbeddings = read_json(resp, "embeddings response").await?;
        wire.into_neutral(&self.info.model, request.inputs.len())
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let url = self.url("models")?;
        let resp = send_with_retry(&self.opts, false, map_error, || {
            let req = self.authorize(self.http.get(url.clone()));
            async move { Ok(req) }
        })
        .await?;
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

fn wire_message(message: &Message) -> Value {
    match message {
        Message::System { content } => json!({"role": "system", "content": content}),
        Message::User { content } => {
            let only_text = content
                .iter()
                .all(|p| matches!(p, ContentPart::Text { .. }));
            if only_text {
                // A plain string is what every compatible server accepts.
                json!({"role": "user", "content": atlasai_core::joined_text(content)})
            } else {
                let parts: Vec<Value> = content
                    .iter()
                    .map(|p| match p {
                        ContentPart::Text { text } => json!({"type": "text", "text": text}),
                        ContentPart::ImageUrl { url } => {
                            json!({"type": "image_url", "image_url": {"url": url}})
                        }
                    })
                    .collect();
                json!({"role": "user", "content": parts})
            }
        }
        Message::Assistant {
            content,
            tool_calls,
        } => {
            let mut m = json!({"role": "assistant", "content": content});
            if !tool_calls.is_empty() {
                m["tool_calls"] = tool_calls
                    .iter()
                    .map(|c| {
                        json!({
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        })
                    })
                    .collect();
            }
            m
        }
        Message::Tool {
            tool_call_id,
            content,
        } => json!({"role": "tool", "tool_call_id": tool_call_id, "content": content}),
    }
}

fn wire_response_format(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
            description,
        } => {
            let mut js = json!({"name": name, "schema": schema});
            if let Some(s) = strict {
                js["strict"] = json!(s);
            }
            if let Some(d) = description {
                js["description"] = json!(d);
            }
            json!({"type": "json_schema", "json_schema": js})
        }
    }
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
            c.url("chat/completions").unwrap().as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
        );
        s.endpoint = Some(Url::parse("https://res.openai.azure.com/openai/v1/").unwrap());
        let c = OpenAiClient::new(&s, &HttpOptions::default()).unwrap();
        assert_eq!(
            c.url("chat/completions").unwrap().as_str(),
            "https://res.openai.azure.com/openai/v1/chat/completions"
        );
    }
}

//! OpenAI's wire format for chat completions, embeddings and models, written by hand from
//! OpenAI's OpenAPI specification (`CreateChatCompletionRequest`,
//! `CreateChatCompletionResponse`, `CreateChatCompletionStreamResponse`,
//! `CreateEmbeddingRequest`/`Response`, `ListModelsResponse`), and the mapping to and from the
//! neutral types in `atlasai_core`.
//!
//! Requests are read into flat structs and checked field by field, so every refusal names the
//! parameter (`messages[2].content[0].type`) the way OpenAI's own errors do. Fields that only
//! steer OpenAI's platform (`store`, `metadata`, `service_tier`, ...) and unknown fields are
//! ignored; fields that would change the answer and that we cannot honour are refused.

use std::fmt;

use atlasai_core::{
    ChatRequest, ChatResponse, ContentPart, EmbeddingRequest, EmbeddingResponse, FinishReason,
    Message, ResponseFormat, StreamEvent, ToolCall, ToolChoice, ToolDefinition, Usage,
};
use base64::Engine as _;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request that cannot be served as sent: answered with 400 in OpenAI's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// What is wrong and what would be accepted.
    pub message: String,
    /// The parameter, as OpenAI names it (`messages[0].content`).
    pub param: Option<String>,
    /// `unsupported_parameter` or `unsupported_value` for things we do not offer.
    pub code: Option<&'static str>,
}

impl Invalid {
    fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            message: message.into(),
            param: Some(param.into()),
            code: None,
        }
    }

    fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            code: Some("unsupported_parameter"),
            ..Invalid::new(param, message)
        }
    }

    fn unsupported_value(param: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            code: Some("unsupported_value"),
            ..Invalid::new(param, message)
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// ---------------------------------------------------------------------------------------------
// Chat completions: the request
// ---------------------------------------------------------------------------------------------

/// `POST /v1/chat/completions` as sent.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model or alias the client asked for.
    pub model: String,
    messages: Vec<WireMessage>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    tools: Option<Vec<WireTool>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    response_format: Option<WireResponseFormat>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    stop: Option<Value>,
    seed: Option<i64>,
    user: Option<String>,
    n: Option<u32>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
    logit_bias: Option<serde_json::Map<String, Value>>,
    functions: Option<Value>,
    function_call: Option<Value>,
    audio: Option<Value>,
    modalities: Option<Vec<String>>,
    web_search_options: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// How the answer goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streaming {
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage: true`: a last chunk with usage and no choices.
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    role: String,
    content: Option<Content>,
    tool_calls: Option<Vec<WireToolCall>>,
    tool_call_id: Option<String>,
    refusal: Option<String>,
    function_call: Option<Value>,
    audio: Option<Value>,
}

/// Message content: a string, or an array of typed parts.
#[derive(Debug)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Content, A::Error> {
                Vec::<Part>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(Content::Parts)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    image_url: Option<ImageUrl>,
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ImageUrl {
    url: String,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    id: String,
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    function: Option<WireFunctionCall>,
}

fn function_type() -> String {
    "function".to_owned()
}

#[derive(Debug, Deserialize)]
struct WireFunctionCall {
    name: String,
    /// A JSON string per the specification; an object is accepted and written out as text.
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Deserialize)]
struct WireTool {
    #[serde(rename = "type")]
    kind: String,
    function: Option<WireFunctionDef>,
}

#[derive(Debug, Deserialize)]
struct WireFunctionDef {
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
    strict: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct WireResponseFormat {
    #[serde(rename = "type")]
    kind: String,
    json_schema: Option<WireJsonSchema>,
}

#[derive(Debug, Deserialize)]
struct WireJsonSchema {
    name: String,
    schema: Option<Value>,
    strict: Option<bool>,
    description: Option<String>,
}

impl ChatCompletionRequest {
    /// Checks the request and maps it to the neutral request, without copying message text.
    pub fn into_neutral(self) -> Result<(ChatRequest, Streaming), Invalid> {
        self.refuse_unsupported()?;
        if self.messages.is_empty() {
            return Err(Invalid::new(
                "messages",
                "messages must hold at least one message",
            ));
        }
        let messages = self
            .messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| m.into_neutral(i))
            .collect::<Result<Vec<_>, _>>()?;
        let tools = self
            .tools
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.into_neutral(i))
            .collect::<Result<Vec<_>, _>>()?;
        let tool_choice = self.tool_choice.map(tool_choice).transpose()?.flatten();
        let response_format = self
            .response_format
            .map(WireResponseFormat::into_neutral)
            .transpose()?;
        let stop = match self.stop {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(Invalid::new(
                        "stop",
                        "stop must be a string or an array of strings",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(Invalid::new(
                    "stop",
                    "stop must be a string or an array of strings",
                ));
            }
        };
        let stream = self.stream.unwrap_or(false);
        let streaming = Streaming {
            stream,
            include_usage: stream
                && self
                    .stream_options
                    .and_then(|o| o.include_usage)
                    .unwrap_or(false),
        };
        Ok((
            ChatRequest {
                messages,
                tools,
                tool_choice,
                parallel_tool_calls: self.parallel_tool_calls,
                response_format,
                // The newer name wins when a client sends both.
                max_tokens: self.max_completion_tokens.or(self.max_tokens),
                temperature: self.temperature,
                top_p: self.top_p,
                frequency_penalty: self.frequency_penalty,
                presence_penalty: self.presence_penalty,
                stop,
                seed: self.seed,
                user: self.user,
            },
            streaming,
        ))
    }

    /// Refuses what would change the answer and that no provider behind us can honour the
    /// OpenAI way. Harmless defaults (`n: 1`, `logprobs: false`, `modalities: ["text"]`) pass.
    fn refuse_unsupported(&self) -> Result<(), Invalid> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(Invalid::unsupported_value(
                "n",
                "n: only one choice per request is supported; send n=1 or leave it out and repeat the request",
            ));
        }
        if self.logprobs == Some(true) || self.top_logprobs.is_some_and(|n| n > 0) {
            return Err(Invalid::unsupported(
                "logprobs",
                "logprobs are not supported by this endpoint",
            ));
        }
        if self.logit_bias.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(Invalid::unsupported(
                "logit_bias",
                "logit_bias is not supported by this endpoint (token ids differ between the providers behind it)",
            ));
        }
        if present(&self.functions) || present(&self.function_call) {
            let param = if present(&self.functions) {
                "functions"
            } else {
                "function_call"
            };
            return Err(Invalid::unsupported(
                param,
                format!("{param} is deprecated and not supported; use tools and tool_choice"),
            ));
        }
        if present(&self.audio)
            || self
                .modalities
                .as_ref()
                .is_some_and(|m| m.iter().any(|x| x != "text"))
        {
            return Err(Invalid::unsupported(
                "modalities",
                "audio output is not supported; only text answers are",
            ));
        }
        if present(&self.web_search_options) {
            return Err(Invalid::unsupported(
                "web_search_options",
                "web search is not supported by this endpoint",
            ));
        }
        Ok(())
    }
}

fn present(v: &Option<Value>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_null())
}

impl WireMessage {
    fn into_neutral(self, i: usize) -> Result<Message, Invalid> {
        let at = |field: &str| format!("messages[{i}].{field}");
        if present(&self.function_call) {
            return Err(Invalid::unsupported(
                at("function_call"),
                "function_call is deprecated and not supported; use tool_calls",
            ));
        }
        match self.role.as_str() {
            "system" | "developer" => Ok(Message::System {
                content: text_only(self.content, &at("content"), true)?,
            }),
            "user" => {
                let content = match self.content {
                    None => {
                        return Err(Invalid::new(
                            at("content"),
                            format!("{} is required for role user", at("content")),
                        ));
                    }
                    Some(Content::Text(text)) => vec![ContentPart::Text { text }],
                    Some(Content::Parts(parts)) => parts
                        .into_iter()
                        .enumerate()
                        .map(|(j, p)| user_part(p, &format!("messages[{i}].content[{j}]")))
                        .collect::<Result<_, _>>()?,
                };
                Ok(Message::User { content })
            }
            "assistant" => {
                if present(&self.audio) {
                    return Err(Invalid::unsupported(
                        at("audio"),
                        "audio in assistant messages is not supported",
                    ));
                }
                let tool_calls = self
                    .tool_calls
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(j, c)| c.into_neutral(&format!("messages[{i}].tool_calls[{j}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                let content = match self.content {
                    None => None,
                    Some(c) => Some(text_only(Some(c), &at("content"), false)?),
                }
                .or(self.refusal);
                Ok(Message::Assistant {
                    content,
                    tool_calls,
                })
            }
            "tool" => {
                let Some(tool_call_id) = self.tool_call_id else {
                    return Err(Invalid::new(
                        at("tool_call_id"),
                        format!(
                            "{} is required for role tool: the id of the tool call this answers",
                            at("tool_call_id")
                        ),
                    ));
                };
                Ok(Message::Tool {
                    tool_call_id,
                    content: text_only(self.content, &at("content"), true)?,
                })
            }
            "function" => Err(Invalid::unsupported(
                at("role"),
                "the function role is deprecated and not supported; use role tool with tool_call_id",
            )),
            other => Err(Invalid::new(
                at("role"),
                format!("unknown role {other:?}; use system, developer, user, assistant or tool"),
            )),
        }
    }
}

/// Text content: a string, or text parts joined by newlines (refusal parts count as text).
fn text_only(content: Option<Content>, param: &str, required: bool) -> Result<String, Invalid> {
    match content {
        None if required => Err(Invalid::new(param, format!("{param} is required"))),
        None => Ok(String::new()),
        Some(Content::Text(t)) => Ok(t),
        Some(Content::Parts(parts)) => {
            let mut out = String::new();
            for (j, p) in parts.into_iter().enumerate() {
                let text = match p.kind.as_str() {
                    "text" => p.text,
                    "refusal" => p.refusal,
                    other => {
                        return Err(Invalid::unsupported_value(
                            format!("{param}[{j}].type"),
                            format!(
                                "content parts of type {other:?} are not allowed here; only text"
                            ),
                        ));
                    }
                };
                let Some(text) = text else {
                    return Err(Invalid::new(
                        format!("{param}[{j}]"),
                        format!("{param}[{j}] has no text"),
                    ));
                };
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&text);
            }
            Ok(out)
        }
    }
}

fn user_part(p: Part, at: &str) -> Result<ContentPart, Invalid> {
    match p.kind.as_str() {
        "text" => match p.text {
            Some(text) => Ok(ContentPart::Text { text }),
            None => Err(Invalid::new(
                format!("{at}.text"),
                format!("{at}.text is required for a text part"),
            )),
        },
        "image_url" => match p.image_url {
            Some(i) => Ok(ContentPart::ImageUrl { url: i.url }),
            None => Err(Invalid::new(
                format!("{at}.image_url"),
                format!("{at}.image_url is required for an image_url part"),
            )),
        },
        other => Err(Invalid::unsupported_value(
            format!("{at}.type"),
            format!("content parts of type {other:?} are not supported; use text or image_url"),
        )),
    }
}

impl WireToolCall {
    fn into_neutral(self, at: &str) -> Result<ToolCall, Invalid> {
        if self.kind != "function" {
            return Err(Invalid::unsupported_value(
                format!("{at}.type"),
                format!(
                    "tool calls of type {:?} are not supported; only function",
                    self.kind
                ),
            ));
        }
        let Some(f) = self.function else {
            return Err(Invalid::new(
                format!("{at}.function"),
                format!("{at}.function is required"),
            ));
        };
        Ok(ToolCall {
            id: self.id,
            name: f.name,
            arguments: match f.arguments {
                Value::String(s) => s,
                Value::Null => "{}".to_owned(),
                other => other.to_string(),
            },
        })
    }
}

impl WireTool {
    fn into_neutral(self, i: usize) -> Result<ToolDefinition, Invalid> {
        if self.kind != "function" {
            return Err(Invalid::unsupported_value(
                format!("tools[{i}].type"),
                format!(
                    "tools of type {:?} are not supported; only function",
                    self.kind
                ),
            ));
        }
        let Some(f) = self.function else {
            return Err(Invalid::new(
                format!("tools[{i}].function"),
                format!("tools[{i}].function is required"),
            ));
        };
        Ok(ToolDefinition {
            name: f.name,
            description: f.description,
            // The specification allows leaving the parameters out: a function without
            // arguments.
            parameters: f
                .parameters
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            strict: f.strict,
        })
    }
}

fn tool_choice(v: Value) -> Result<Option<ToolChoice>, Invalid> {
    let bad = || {
        Invalid::new(
            "tool_choice",
            "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
        )
    };
    match v {
        Value::Null => Ok(None),
        Value::String(s) => match s.as_str() {
            "none" => Ok(Some(ToolChoice::None)),
            "auto" => Ok(Some(ToolChoice::Auto)),
            "required" => Ok(Some(ToolChoice::Required)),
            _ => Err(bad()),
        },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .map(|n| Some(ToolChoice::Function(n.to_owned())))
                .ok_or_else(bad),
            Some(other) => Err(Invalid::unsupported_value(
                "tool_choice.type",
                format!("tool_choice of type {other:?} is not supported; use function"),
            )),
            None => Err(bad()),
        },
        _ => Err(bad()),
    }
}

impl WireResponseFormat {
    fn into_neutral(self) -> Result<ResponseFormat, Invalid> {
        match self.kind.as_str() {
            "text" => Ok(ResponseFormat::Text),
            "json_object" => Ok(ResponseFormat::JsonObject),
            "json_schema" => {
                let Some(js) = self.json_schema else {
                    return Err(Invalid::new(
                        "response_format.json_schema",
                        "response_format.json_schema is required when the type is json_schema",
                    ));
                };
                Ok(ResponseFormat::JsonSchema {
                    name: js.name,
                    schema: js
                        .schema
                        .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
                    strict: js.strict,
                    description: js.description,
                })
            }
            other => Err(Invalid::new(
                "response_format.type",
                format!("unknown response format {other:?}; use text, json_object or json_schema"),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chat completions: the answer
// ---------------------------------------------------------------------------------------------

/// Token counts in OpenAI's shape.
#[derive(Debug, Clone, Copy, Serialize)]
struct WireUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

impl From<Usage> for WireUsage {
    fn from(u: Usage) -> Self {
        WireUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
        }
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<WireUsage>,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: OutMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutToolCall<'a>>,
}

#[derive(Serialize)]
struct OutToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// OpenAI's spelling of a finish reason. Reasons outside OpenAI's enumeration (a provider's
/// `pause_turn`, `malformed_function_call`) become `stop`, or `tool_calls` when tools were
/// called, because strict clients reject values outside the enumeration.
pub fn finish_reason(reason: &FinishReason, called_tools: bool) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Other(_) if called_tools => "tool_calls",
        FinishReason::Other(_) => "stop",
    }
}

/// A complete answer as a `chat.completion` object.
pub fn completion_json(answer: &ChatResponse, id: &str, created: u64) -> Vec<u8> {
    let body = Completion {
        id,
        object: "chat.completion",
        created,
        model: &answer.model,
        choices: [CompletionChoice {
            index: 0,
            message: OutMessage {
                role: "assistant",
                content: answer.content.as_deref(),
                refusal: None,
                tool_calls: answer
                    .tool_calls
                    .iter()
                    .map(|c| OutToolCall {
                        id: &c.id,
                        kind: "function",
                        function: OutFunction {
                            name: &c.name,
                            arguments: &c.arguments,
                        },
                    })
                    .collect(),
            },
            logprobs: None,
            finish_reason: finish_reason(&answer.finish_reason, !answer.tool_calls.is_empty()),
        }],
        usage: answer.usage.map(WireUsage::from),
    };
    to_json(&body)
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs into memory cannot fail (no maps with non-string
    // keys, no IO); an empty body would be the visible symptom if it ever did.
    serde_json::to_vec(value).unwrap_or_default()
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    /// Present (null, or the counts on the last chunk) only when `include_usage` was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<WireUsage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Turns neutral stream events into `chat.completion.chunk` server-sent events, one event at
/// a time, as they arrive.
#[derive(Debug)]
pub struct ChunkEncoder {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    role_sent: bool,
    called_tools: bool,
    finished: bool,
    usage: Option<Usage>,
}

impl ChunkEncoder {
    /// An encoder for one answer.
    pub fn new(id: String, created: u64, model: String, include_usage: bool) -> Self {
        ChunkEncoder {
            id,
            created,
            model,
            include_usage,
            role_sent: false,
            called_tools: false,
            finished: false,
            usage: None,
        }
    }

    /// The token counts seen so far.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn frame(
        &self,
        out: &mut Vec<u8>,
        choices: &[ChunkChoice<'_>],
        usage: Option<Option<WireUsage>>,
    ) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        out.extend_from_slice(b"data: ");
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &chunk);
        out.extend_from_slice(b"\n\n");
    }

    fn delta(&mut self, out: &mut Vec<u8>, mut delta: Delta<'_>, finish: Option<&'static str>) {
        if !self.role_sent {
            self.role_sent = true;
            delta.role = Some("assistant");
        }
        let usage = self.include_usage.then_some(None);
        self.frame(
            out,
            &[ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish,
            }],
            usage,
        );
    }

    /// Appends the server-sent event(s) for one neutral event to `out` (none for usage, which
    /// is held for the last chunk as OpenAI sends it).
    pub fn event(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match event {
            StreamEvent::Start { .. } => {
                if !self.role_sent {
                    self.delta(
                        out,
                        Delta {
                            content: Some(""),
                            ..Delta::default()
                        },
                        None,
                    );
                }
            }
            StreamEvent::TextDelta { text } => self.delta(
                out,
                Delta {
                    content: Some(text),
                    ..Delta::default()
                },
                None,
            ),
            StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => {
                self.called_tools = true;
                self.delta(
                    out,
                    Delta {
                        tool_calls: Some([ToolCallDelta {
                            index: *index,
                            id: id.as_deref(),
                            kind: id.as_ref().map(|_| "function"),
                            function: FunctionDelta {
                                name: name.as_deref(),
                                arguments,
                            },
                        }]),
                        ..Delta::default()
                    },
                    None,
                );
            }
            StreamEvent::Usage { usage } => self.usage = Some(*usage),
            StreamEvent::Finish { reason } => {
                if !self.finished {
                    self.finished = true;
                    let reason = finish_reason(reason, self.called_tools);
                    self.delta(out, Delta::default(), Some(reason));
                }
            }
        }
    }

    /// Appends the end of the stream: a finish chunk if the provider sent none, the usage
    /// chunk when asked for, and `data: [DONE]`.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        if !self.finished {
            let reason = if self.called_tools {
                FinishReason::ToolCalls
            } else {
                FinishReason::Stop
            };
            self.event(&StreamEvent::Finish { reason }, out);
        }
        if self.include_usage {
            let usage = self.usage.unwrap_or_default();
            self.frame(out, &[], Some(Some(usage.into())));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

// ---------------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------------

/// `POST /v1/embeddings` as sent.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    /// The model or alias the client asked for.
    pub model: String,
    input: Value,
    encoding_format: Option<String>,
    dimensions: Option<u32>,
}

/// How vectors go back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Arrays of numbers.
    Float,
    /// Base64 of the little-endian `f32` bytes (what the OpenAI SDKs ask for by default).
    Base64,
}

impl EmbeddingsRequest {
    /// Checks the request and maps it to the neutral request.
    pub fn into_neutral(self) -> Result<(EmbeddingRequest, Encoding), Invalid> {
        let encoding = match self.encoding_format.as_deref() {
            None | Some("float") => Encoding::Float,
            Some("base64") => Encoding::Base64,
            Some(other) => {
                return Err(Invalid::new(
                    "encoding_format",
                    format!("unknown encoding_format {other:?}; use float or base64"),
                ));
            }
        };
        let tokens = || {
            Invalid::unsupported_value(
                "input",
                "token arrays are not supported as input (the providers behind this endpoint use different tokenizers); send text",
            )
        };
        let inputs = match self.input {
            Value::String(s) => vec![s],
            Value::Array(items) if items.is_empty() => {
                return Err(Invalid::new("input", "input must not be an empty array"));
            }
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    Value::Number(_) | Value::Array(_) => Err(tokens()),
                    _ => Err(Invalid::new(
                        "input",
                        "input must be a string or an array of strings",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(Invalid::new(
                    "input",
                    "input must be a string or an array of strings",
                ));
            }
        };
        if let Some(i) = inputs.iter().position(|s| s.is_empty()) {
            return Err(Invalid::new(
                format!("input[{i}]"),
                "input strings must not be empty",
            ));
        }
        Ok((
            EmbeddingRequest {
                inputs,
                dimensions: self.dimensions,
            },
            encoding,
        ))
    }
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem<'a>>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingItem<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Float(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u32,
    total_tokens: u32,
}

/// The vectors as an OpenAI `list` of `embedding` objects.
pub fn embeddings_json(answer: &EmbeddingResponse, encoding: Encoding) -> Vec<u8> {
    let tokens = answer.prompt_tokens.unwrap_or(0);
    let data = answer
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| EmbeddingItem {
            object: "embedding",
            index,
            embedding: match encoding {
                Encoding::Float => Vector::Float(v),
                Encoding::Base64 => {
                    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                    Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            },
        })
        .collect();
    to_json(&EmbeddingList {
        object: "list",
        data,
        model: &answer.model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/// One model in OpenAI's shape.
#[derive(Debug, Serialize)]
pub struct WireModel<'a> {
    /// The name clients send.
    pub id: &'a str,
    /// Always `model`.
    pub object: &'static str,
    /// When the configuration was read.
    pub created: u64,
    /// The provider that serves it.
    pub owned_by: &'a str,
}

/// `GET /v1/models`.
pub fn models_json(models: &[WireModel<'_>]) -> Vec<u8> {
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: &'a [WireModel<'a>],
    }
    to_json(&List {
        object: "list",
        data: models,
    })
}

/// `GET /v1/models/{model}`.
pub fn model_json(model: &WireModel<'_>) -> Vec<u8> {
    to_json(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<(ChatRequest, Streaming), Invalid> {
        serde_json::from_value::<ChatCompletionRequest>(v)
            .unwrap()
            .into_neutral()
    }

    #[test]
    fn a_full_request_maps_without_loss() {
        let (req, streaming) = parse(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "system", "content": [{"type": "text", "text": "Use metric."}, {"type": "text", "text": "No jokes."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
                ], "name": "ops"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "{\"ok\":true}"}]},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}
            ],
            "tools": [{"type": "function", "function": {"name": "lookup", "description": "find", "parameters": {"type": "object"}, "strict": true}},
                      {"type": "function", "function": {"name": "ping"}}],
            "tool_choice": {"type": "function", "function": {"name": "lookup"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}},
            "max_tokens": 10, "max_completion_tokens": 20,
            "temperature": 0.5, "top_p": 0.9, "frequency_penalty": 0.1, "presence_penalty": -0.1,
            "stop": "END", "seed": 7, "user": "u1", "n": 1, "logprobs": false,
            "stream": true, "stream_options": {"include_usage": true},
            "store": true, "metadata": {"a": "b"}, "service_tier": "auto", "some_future_field": 1
        }))
        .unwrap();
        assert_eq!(
            streaming,
            Streaming {
                stream: true,
                include_usage: true
            }
        );
        assert_eq!(req.messages.len(), 6);
        assert_eq!(req.messages[0], Message::system("Be brief."));
        assert_eq!(req.messages[1], Message::system("Use metric.\nNo jokes."));
        assert_eq!(
            req.messages[2],
            Message::User {
                content: vec![
                    ContentPart::Text {
                        text: "What is this?".into()
                    },
                    ContentPart::ImageUrl {
                        url: "data:image/png;base64,AAAA".into()
                    }
                ]
            }
        );
        assert_eq!(
            req.messages[3],
            Message::Assistant {
                content: None,
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "lookup".into(),
                    arguments: "{\"q\":1}".into()
                }]
            }
        );
        assert_eq!(req.messages[4], Message::tool("call_1", "{\"ok\":true}"));
        assert_eq!(req.messages[5], Message::assistant("no"));
        assert_eq!(req.tools.len(), 2);
        assert_eq!(req.tools[0].strict, Some(true));
        assert_eq!(
            req.tools[1].parameters,
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(req.tool_choice, Some(ToolChoice::Function("lookup".into())));
        assert_eq!(req.parallel_tool_calls, Some(false));
        assert!(
            matches!(req.response_format, Some(ResponseFormat::JsonSchema { ref name, strict: Some(true), .. }) if name == "answer")
        );
        assert_eq!(req.max_tokens, Some(20), "max_completion_tokens wins");
        assert_eq!(req.frequency_penalty, Some(0.1));
        assert_eq!(req.presence_penalty, Some(-0.1));
        assert_eq!(req.stop, ["END"]);
        assert_eq!((req.seed, req.user.as_deref()), (Some(7), Some("u1")));
    }

    #[test]
    fn include_usage_needs_stream() {
        let (_, s) = parse(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "stream_options": {"include_usage": true}}),
        )
        .unwrap();
        assert_eq!(
            s,
            Streaming {
                stream: false,
                include_usage: false
            }
        );
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        let base = || json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let cases = [
            ("n", json!(2), "n", Some("unsupported_value")),
            (
                "logprobs",
                json!(true),
                "logprobs",
                Some("unsupported_parameter"),
            ),
            (
                "logit_bias",
                json!({"50256": -100}),
                "logit_bias",
                Some("unsupported_parameter"),
            ),
            (
                "functions",
                json!([{"name": "f"}]),
                "functions",
                Some("unsupported_parameter"),
            ),
            (
                "modalities",
                json!(["text", "audio"]),
                "modalities",
                Some("unsupported_parameter"),
            ),
            (
                "web_search_options",
                json!({}),
                "web_search_options",
                Some("unsupported_parameter"),
            ),
            (
                "tools",
                json!([{"type": "custom", "custom": {"name": "x"}}]),
                "tools[0].type",
                Some("unsupported_value"),
            ),
            ("tool_choice", json!("sometimes"), "tool_choice", None),
            (
                "response_format",
                json!({"type": "yaml"}),
                "response_format.type",
                None,
            ),
            ("stop", json!(5), "stop", None),
        ];
        for (field, value, param, code) in cases {
            let mut req = base();
            req[field] = value;
            let err = parse(req).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{field}: {err:?}");
            assert_eq!(err.code, code, "{field}: {err:?}");
        }
        let err = parse(json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}))
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].content[0].type"));
        let err = parse(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}))
            .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].tool_call_id"));
        let err = parse(json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}))
            .unwrap_err();
        assert!(err.message.contains("unknown role \"robot\""));
        let err = parse(json!({"model": "m", "messages": []})).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages"));
    }

    #[test]
    fn completion_has_the_openai_shape() {
        let answer = ChatResponse {
            id: None,
            model: "claude".into(),
            content: None,
            tool_calls: vec![ToolCall {
                id: "t1".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            finish_reason: FinishReason::Other("pause_turn".into()),
            usage: Some(Usage::new(3, 4)),
        };
        let v: Value = serde_json::from_slice(&completion_json(&answer, "chatcmpl-1", 5)).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "claude",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": null, "refusal": null,
                        "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
            })
        );
    }

    fn frames(out: &[u8]) -> Vec<Value> {
        std::str::from_utf8(out)
            .unwrap()
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                let data = f.strip_prefix("data: ").unwrap();
                if data == "[DONE]" {
                    json!("[DONE]")
                } else {
                    serde_json::from_str(data).unwrap()
                }
            })
            .collect()
    }

    #[test]
    fn stream_chunks_follow_openai_including_usage_last() {
        let mut enc = ChunkEncoder::new("c1".into(), 9, "m".into(), true);
        let mut out = Vec::new();
        for e in [
            StreamEvent::Start {
                id: None,
                model: None,
            },
            StreamEvent::TextDelta { text: "Hel".into() },
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("t".into()),
                name: Some("f".into()),
                arguments: String::new(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                id: None,
                name: None,
                arguments: "{}".into(),
            },
            StreamEvent::Usage {
                usage: Usage::new(1, 2),
            },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
            },
        ] {
            enc.event(&e, &mut out);
        }
        enc.end(&mut out);
        let f = frames(&out);
        assert_eq!(f.len(), 7, "{f:?}");
        assert_eq!(
            f[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(f[0]["object"], "chat.completion.chunk");
        assert_eq!(f[0]["usage"], Value::Null);
        assert!(f[0].as_object().unwrap().contains_key("usage"));
        assert_eq!(f[1]["choices"][0]["delta"], json!({"content": "Hel"}));
        assert_eq!(
            f[2]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}])
        );
        assert_eq!(
            f[3]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "function": {"arguments": "{}"}}])
        );
        assert_eq!(f[4]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(f[5]["choices"], json!([]));
        assert_eq!(
            f[5]["usage"],
            json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
        );
        assert_eq!(f[6], "[DONE]");
    }

    #[test]
    fn streams_without_usage_request_carry_no_usage_field() {
        let mut enc = ChunkEncoder::new("c1".into(), 9, "m".into(), false);
        let mut out = Vec::new();
        enc.event(&StreamEvent::TextDelta { text: "x".into() }, &mut out);
        enc.event(
            &StreamEvent::Usage {
                usage: Usage::new(1, 2),
            },
            &mut out,
        );
        enc.end(&mut out);
        let f = frames(&out);
        assert_eq!(f.len(), 3, "text (with role), finish, done: {f:?}");
        assert_eq!(
            f[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "x"})
        );
        assert!(!f[0].as_object().unwrap().contains_key("usage"));
        assert_eq!(f[1]["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn embeddings_in_float_and_base64() {
        let req: EmbeddingsRequest =
            serde_json::from_value(json!({"model": "e", "input": ["a", "bb"], "encoding_format": "base64", "dimensions": 2})).unwrap();
        let (n, enc) = req.into_neutral().unwrap();
        assert_eq!(n.inputs, ["a", "bb"]);
        assert_eq!(n.dimensions, Some(2));
        assert_eq!(enc, Encoding::Base64);
        let answer = EmbeddingResponse {
            model: "e".into(),
            vectors: vec![vec![1.0, -0.5]],
            prompt_tokens: Some(3),
        };
        let v: Value = serde_json::from_slice(&embeddings_json(&answer, Encoding::Base64)).unwrap();
        let b64 = v["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat()
        );
        let v: Value = serde_json::from_slice(&embeddings_json(&answer, Encoding::Float)).unwrap();
        assert_eq!(
            v,
            json!({"object": "list", "model": "e", "usage": {"prompt_tokens": 3, "total_tokens": 3},
                   "data": [{"object": "embedding", "index": 0, "embedding": [1.0, -0.5]}]})
        );
        for bad in [json!([1, 2, 3]), json!([]), json!(["ok", ""]), json!(7)] {
            let req: EmbeddingsRequest =
                serde_json::from_value(json!({"model": "e", "input": bad})).unwrap();
            assert!(req.into_neutral().is_err(), "{bad}");
        }
    }
}

//! Converse request and response shapes, and the translation between them and the neutral
//! chat types.
//!
//! Shapes follow the Bedrock Runtime service model (botocore
//! `botocore/data/bedrock-runtime/2023-09-30/service-2.json`: `ConverseRequest`, `Message`,
//! `ContentBlock`, `ToolConfiguration`, `OutputConfig`, `ConverseResponse`, `TokenUsage`).

use std::collections::HashMap;

use atlasai_core::{
    ChatRequest, ChatResponse, ContentPart, FinishReason, Message, ProviderErrorKind,
    ResponseFormat, ToolCall, ToolChoice, Usage,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ProviderError;

/// Appended to the system prompt for `ResponseFormat::JsonObject`: Converse has a JSON-schema
/// output mode but no "any JSON object" mode.
pub(crate) const JSON_OBJECT_INSTRUCTION: &str =
    "Respond with a single valid JSON object and nothing else: no prose, no code fences.";

/// The longest tool-use id Bedrock accepts (`ToolUseId`: 1-64 of `[a-zA-Z0-9_.:-]`).
const MAX_TOOL_USE_ID: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// The conversation being built: Bedrock wants strictly alternating user and assistant turns,
/// so consecutive messages of one role are merged into one turn.
#[derive(Default)]
struct Turns(Vec<(Role, Vec<Value>)>);

impl Turns {
    fn push(&mut self, role: Role, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => self.0.push((role, blocks)),
        }
    }

    fn into_wire(self) -> Vec<Value> {
        self.0
            .into_iter()
            .map(|(role, mut content)| {
                if role == Role::User {
                    // Anthropic models on Bedrock want a turn's tool results before its text;
                    // a stable sort keeps each group in order.
                    content.sort_by_key(|b| b.get("toolResult").is_none());
                }
                json!({"role": role.as_str(), "content": content})
            })
            .collect()
    }
}

/// Builds the Converse request body (the same for `converse` and `converse-stream`).
pub(crate) fn converse_body(request: &ChatRequest) -> Result<Value, ProviderError> {
    let history_has_tools = request.messages.iter().any(|m| match m {
        Message::Assistant { tool_calls, .. } => !tool_calls.is_empty(),
        Message::Tool { .. } => true,
        _ => false,
    });
    // Bedrock rejects toolUse and toolResult blocks unless toolConfig is present, and has no
    // "none" tool choice. So with ToolChoice::None the tools are still declared when the
    // history holds tool blocks (the model may then call one: the closest Bedrock allows),
    // and dropped otherwise.
    let send_tools = !request.tools.is_empty()
        && (request.tool_choice != Some(ToolChoice::None) || history_has_tools);
    let mut system: Vec<Value> = Vec::new();
    let mut turns = Turns::default();
    // Tool results name only the call id; flattened results also show the function name.
    let mut names: HashMap<&str, &str> = HashMap::new();
    for message in &request.messages {
        match message {
            Message::System { content } => {
                if !content.trim().is_empty() {
                    system.push(json!({"text": content}));
                }
            }
            Message::User { content } => turns.push(Role::User, user_blocks(content)?),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut blocks = Vec::new();
                if let Some(text) = content
                    && !text.trim().is_empty()
                {
                    blocks.push(json!({"text": text}));
                }
                for call in tool_calls {
                    names.insert(&call.id, &call.name);
                    if send_tools {
                        blocks.push(json!({"toolUse": {
                            "toolUseId": tool_use_id(&call.id),
                            "name": call.name,
                            "input": tool_input(&call.arguments),
                        }}));
                    } else {
                        // Without toolConfig the call can only be shown as text; this keeps a
                        // final "answer without tools" request valid.
                        blocks.push(json!({"text": format!(
                            "[called tool {} with arguments {}]",
                            call.name, call.arguments
                        )}));
                    }
                }
                turns.push(Role::Assistant, blocks);
            }
            Message::Tool {
                tool_call_id,
                content,
            } => {
                let block = if send_tools {
                    // Always text: every tool-capable model accepts it, while `json` results
                    // are model-specific.
                    json!({"toolResult": {
                        "toolUseId": tool_use_id(tool_call_id),
                        "content": [{"text": non_blank(content)}],
                    }})
                } else {
                    let name = names.get(tool_call_id.as_str()).copied().unwrap_or("tool");
                    json!({"text": format!("[result of {name}: {}]", non_blank(content))})
                };
                turns.push(Role::User, vec![block]);
            }
        }
    }
    let mut body = json!({"messages": turns.into_wire()});
    match &request.response_format {
        Some(ResponseFormat::JsonObject) => {
            system.push(json!({"text": JSON_OBJECT_INSTRUCTION}));
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            description,
            ..
        }) => {
            // The schema travels as a JSON *string* (`JsonSchemaDefinition.schema` is a String).
            let mut js = json!({"schema": schema.to_string(), "name": name});
            if let Some(d) = description {
                js["description"] = json!(d);
            }
            body["outputConfig"] = json!({"textFormat": {
                "type": "json_schema",
                "structure": {"jsonSchema": js},
            }});
        }
        Some(ResponseFormat::Text) | None => {}
    }
    if !system.is_empty() {
        body["system"] = Value::Array(system);
    }
    if let Some(config) = inference_config(request) {
        body["inferenceConfig"] = config;
    }
    if send_tools {
        body["toolConfig"] = tool_config(request);
    }
    Ok(body)
}

fn user_blocks(parts: &[ContentPart]) -> Result<Vec<Value>, ProviderError> {
    let mut blocks = Vec::new();
    for part in parts {
        match part {
            ContentPart::Text { text } => {
                if !text.trim().is_empty() {
                    blocks.push(json!({"text": text}));
                }
            }
            ContentPart::ImageUrl { url } => blocks.push(image_block(url)?),
        }
    }
    Ok(blocks)
}

/// Converse takes images as bytes (base64 in JSON) or an S3 location; it cannot fetch URLs.
fn image_block(url: &str) -> Result<Value, ProviderError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').unwrap_or((rest, ""));
        let mime = meta.split(';').next().unwrap_or_default();
        if !meta.split(';').any(|p| p == "base64") || data.is_empty() {
            return Err(bad_request("bedrock needs images as base64 data: URLs"));
        }
        let format = image_format(mime)?;
        return Ok(json!({"image": {"format": format, "source": {"bytes": data}}}));
    }
    if url.starts_with("s3://") {
        let ext = url
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let format = image_format(&format!("image/{ext}"))?;
        return Ok(json!({"image": {"format": format, "source": {"s3Location": {"uri": url}}}}));
    }
    Err(bad_request(
        "bedrock cannot fetch image URLs: send the image as a base64 data: URL or an s3:// location",
    ))
}

fn image_format(mime: &str) -> Result<&'static str, ProviderError> {
    match mime.to_ascii_lowercase().as_str() {
        "image/png" => Ok("png"),
        "image/jpeg" | "image/jpg" => Ok("jpeg"),
        "image/gif" => Ok("gif"),
        "image/webp" => Ok("webp"),
        other => Err(bad_request(format!(
            "bedrock accepts png, jpeg, gif and webp images, not {other:?}"
        ))),
    }
}

fn inference_config(request: &ChatRequest) -> Option<Value> {
    let mut config = serde_json::Map::new();
    if let Some(max) = request.max_tokens {
        config.insert("maxTokens".into(), json!(max.max(1)));
    }
    // The neutral types follow OpenAI's 0-2 temperature range; Bedrock accepts 0-1 and rejects
    // anything above, so larger values are clamped rather than failing the request.
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = request.top_p {
        config.insert("topP".into(), json!(p.clamp(0.0, 1.0)));
    }
    let stops: Vec<&String> = request.stop.iter().filter(|s| !s.is_empty()).collect();
    if !stops.is_empty() {
        config.insert("stopSequences".into(), json!(stops));
    }
    (!config.is_empty()).then_some(Value::Object(config))
}

fn tool_config(request: &ChatRequest) -> Value {
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            let schema = if t.parameters.is_object() {
                t.parameters.clone()
            } else {
                json!({"type": "object", "properties": {}})
            };
            let mut spec = json!({"name": t.name, "inputSchema": {"json": schema}});
            if let Some(d) = t.description.as_deref().filter(|d| !d.is_empty()) {
                spec["description"] = json!(d);
            }
            if let Some(strict) = t.strict {
                spec["strict"] = json!(strict);
            }
            json!({"toolSpec": spec})
        })
        .collect();
    let mut config = json!({"tools": tools});
    // `auto` is Bedrock's default, and some models reject an explicit toolChoice, so it is
    // only sent when it asks for more than the default.
    match &request.tool_choice {
        Some(ToolChoice::Required) => config["toolChoice"] = json!({"any": {}}),
        Some(ToolChoice::Function(name)) => config["toolChoice"] = json!({"tool": {"name": name}}),
        Some(ToolChoice::Auto | ToolChoice::None) | None => {}
    }
    config
}

/// Tool-use ids must match `[a-zA-Z0-9_.:-]{1,64}`. Ids from another provider (after a
/// fallback) may not, so other characters become `_`; calls and results are mapped the same
/// way and stay paired.
fn tool_use_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOOL_USE_ID)
        .collect()
}

/// `toolUse.input` must be a JSON object; arguments that are not one (a truncated stream, a
/// model's malformed output) are sent as an empty object rather than failing the turn.
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            if !arguments.trim().is_empty() {
                tracing::warn!("tool call arguments are not a JSON object; sending {{}} instead");
            }
            json!({})
        }
    }
}

/// Bedrock rejects blank text blocks.
fn non_blank(text: &str) -> &str {
    if text.trim().is_empty() {
        "(empty)"
    } else {
        text
    }
}

fn bad_request(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::BadRequest, message)
}

/// `ConverseResponse`. `output` and `stopReason` are required by the service model; a body
/// without them is not a Converse answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ConverseResponse {
    output: ConverseOutput,
    #[serde(rename = "stopReason")]
    stop_reason: String,
    usage: Option<TokenUsage>,
}

/// A union; `message` is its only member today.
#[derive(Debug, Deserialize)]
struct ConverseOutput {
    message: Option<WireMessage>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Vec<Value>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenUsage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
    total_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: u32,
    #[serde(default)]
    cache_write_input_tokens: u32,
}

impl From<TokenUsage> for Usage {
    /// `inputTokens` leaves out prompt-cache reads and writes; the neutral prompt count
    /// includes them, as OpenAI's does.
    fn from(u: TokenUsage) -> Usage {
        let prompt = u
            .input_tokens
            .saturating_add(u.cache_read_input_tokens)
            .saturating_add(u.cache_write_input_tokens);
        let mut usage = Usage::new(prompt, u.output_tokens);
        if let Some(total) = u.total_tokens {
            usage.total_tokens = total;
        }
        usage
    }
}

/// Maps `StopReason`.
pub(crate) fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

impl ConverseResponse {
    pub(crate) fn into_neutral(self, model: &str, request_id: Option<String>) -> ChatResponse {
        let mut text: Option<String> = None;
        let mut tool_calls = Vec::new();
        let blocks = self.output.message.map(|m| m.content).unwrap_or_default();
        for block in blocks {
            if let Some(t) = block.get("text").and_then(Value::as_str) {
                text.get_or_insert_with(String::new).push_str(t);
            } else if let Some(tool) = block.get("toolUse") {
                let input = tool.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(ToolCall {
                    id: str_field(tool, "toolUseId"),
                    name: str_field(tool, "name"),
                    arguments: input.to_string(),
                });
            }
            // Reasoning, citations and other blocks have no neutral counterpart.
        }
        ChatResponse {
            id: request_id,
            model: model.to_owned(),
            content: text,
            tool_calls,
            finish_reason: finish_reason(&self.stop_reason),
            usage: self.usage.map(Usage::from),
        }
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use atlasai_core::ToolDefinition;

    use super::*;

    fn weather_tool() -> ToolDefinition {
        ToolDefinition {
            name: "get_weather".into(),
            description: Some("Weather".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            strict: None,
        }
    }

    fn calls() -> Vec<ToolCall> {
        vec![
            ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            },
            ToolCall {
                id: "call|2".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Rome"}"#.into(),
            },
        ]
    }

    #[test]
    fn consecutive_turns_merge_and_tool_results_share_one_user_message() {
        let req = ChatRequest {
            messages: vec![
                Message::system("be brief"),
                Message::user("a"),
                Message::user("b"),
                Message::Assistant {
                    content: Some(String::new()),
                    tool_calls: calls(),
                },
                Message::tool("call_1", "sunny"),
                Message::tool("call|2", "rainy"),
                Message::user("and tomorrow?"),
                Message::system("late system note"),
            ],
            tools: vec![weather_tool()],
            ..ChatRequest::default()
        };
        let body = converse_body(&req).unwrap();
        assert_eq!(
            body["system"],
            json!([{"text": "be brief"}, {"text": "late system note"}])
        );
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3, "{body}");
        assert_eq!(
            messages[0],
            json!({"role": "user", "content": [{"text": "a"}, {"text": "b"}]})
        );
        assert_eq!(messages[1]["role"], "assistant");
        assert_eq!(
            messages[1]["content"][1]["toolUse"],
            json!({"toolUseId": "call_2", "name": "get_weather", "input": {"city": "Rome"}}),
            "the empty text is dropped and ids are made valid"
        );
        let user = &messages[2]["content"];
        assert_eq!(user[0]["toolResult"]["toolUseId"], "call_1");
        assert_eq!(user[1]["toolResult"]["toolUseId"], "call_2");
        assert_eq!(user[1]["toolResult"]["content"], json!([{"text": "rainy"}]));
        assert_eq!(user[2], json!({"text": "and tomorrow?"}));
        assert_eq!(
            body["toolConfig"],
            json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}]})
        );
    }

    #[test]
    fn tool_choice_maps_and_none_keeps_tools_only_when_the_history_needs_them() {
        let mut req = ChatRequest {
            tools: vec![weather_tool()],
            tool_choice: Some(ToolChoice::Required),
            ..ChatRequest::user("hi")
        };
        assert_eq!(
            converse_body(&req).unwrap()["toolConfig"]["toolChoice"],
            json!({"any": {}})
        );
        req.tool_choice = Some(ToolChoice::Function("get_weather".into()));
        assert_eq!(
            converse_body(&req).unwrap()["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "get_weather"}})
        );
        req.tool_choice = Some(ToolChoice::Auto);
        let body = converse_body(&req).unwrap();
        assert!(body["toolConfig"]["tools"].is_array());
        assert!(body["toolConfig"].get("toolChoice").is_none());
        req.tool_choice = Some(ToolChoice::None);
        assert!(converse_body(&req).unwrap().get("toolConfig").is_none());
        req.messages.push(Message::Assistant {
            content: None,
            tool_calls: calls()[..1].to_vec(),
        });
        req.messages.push(Message::tool("call_1", "sunny"));
        let body = converse_body(&req).unwrap();
        assert!(body["toolConfig"]["tools"].is_array(), "{body}");
        assert!(body["toolConfig"].get("toolChoice").is_none());
    }

    #[test]
    fn tool_history_without_tools_is_flattened_to_text() {
        let req = ChatRequest {
            messages: vec![
                Message::user("weather?"),
                Message::Assistant {
                    content: None,
                    tool_calls: calls()[..1].to_vec(),
                },
                Message::tool("call_1", "sunny"),
                Message::user("summarise"),
            ],
            ..ChatRequest::default()
        };
        let body = converse_body(&req).unwrap();
        assert!(body.get("toolConfig").is_none());
        let text = body.to_string();
        assert!(
            !text.contains("toolUse") && !text.contains("toolResult"),
            "{text}"
        );
        assert_eq!(
            body["messages"][2]["content"][0]["text"],
            "[result of get_weather: sunny]"
        );
    }

    #[test]
    fn structured_output_sends_the_schema_as_a_string_and_inference_config_is_clamped() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let req = ChatRequest {
            response_format: Some(ResponseFormat::JsonSchema {
                name: "answer".into(),
                schema: schema.clone(),
                strict: Some(true),
                description: None,
            }),
            temperature: Some(1.7),
            top_p: Some(0.9),
            max_tokens: Some(100),
            stop: vec!["END".into(), String::new()],
            ..ChatRequest::user("hi")
        };
        let body = converse_body(&req).unwrap();
        let js = &body["outputConfig"]["textFormat"];
        assert_eq!(js["type"], "json_schema");
        assert_eq!(js["structure"]["jsonSchema"]["name"], "answer");
        let sent: Value =
            serde_json::from_str(js["structure"]["jsonSchema"]["schema"].as_str().unwrap())
                .unwrap();
        assert_eq!(sent, schema);
        assert_eq!(
            body["inferenceConfig"],
            json!({"maxTokens": 100, "temperature": 1.0, "topP": 0.9_f32, "stopSequences": ["END"]})
        );
        let req = ChatRequest {
            response_format: Some(ResponseFormat::JsonObject),
            ..ChatRequest::user("hi")
        };
        assert_eq!(
            converse_body(&req).unwrap()["system"],
            json!([{"text": JSON_OBJECT_INSTRUCTION}])
        );
    }

    #[test]
    fn images_go_as_bytes_or_s3_and_urls_are_refused() {
        let req = ChatRequest {
            messages: vec![Message::User {
                content: vec![
                    ContentPart::Text {
                        text: "what is this".into(),
                    },
                    ContentPart::ImageUrl {
                        url: "data:image/png;base64,iVBORw0KGgo=".into(),
                    },
                    ContentPart::ImageUrl {
                        url: "s3://bucket/cat.JPG".into(),
                    },
                ],
            }],
            ..ChatRequest::default()
        };
        let body = converse_body(&req).unwrap();
        let content = &body["messages"][0]["content"];
        assert_eq!(
            content[1],
            json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
        );
        assert_eq!(
            content[2]["image"]["source"]["s3Location"]["uri"],
            "s3://bucket/cat.JPG"
        );
        assert_eq!(content[2]["image"]["format"], "jpeg");
        let req = ChatRequest {
            messages: vec![Message::User {
                content: vec![ContentPart::ImageUrl {
                    url: "https://example.com/a.png".into(),
                }],
            }],
            ..ChatRequest::default()
        };
        let err = converse_body(&req).unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::BadRequest);
        assert!(err.message.contains("data: URL"), "{err}");
    }

    #[test]
    fn responses_map_text_tools_stop_reasons_and_usage() {
        let wire: ConverseResponse = serde_json::from_value(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "hmm"}}},
                {"text": "Let me check."},
                {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 10, "outputTokens": 4, "totalTokens": 20, "cacheReadInputTokens": 6},
            "metrics": {"latencyMs": 120},
        }))
        .unwrap();
        let resp = wire.into_neutral("m", Some("req-1".into()));
        assert_eq!(resp.id.as_deref(), Some("req-1"));
        assert_eq!(resp.content.as_deref(), Some("Let me check."));
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
        assert_eq!(resp.tool_calls[0].id, "tooluse_1");
        assert_eq!(resp.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
        assert_eq!(
            resp.usage,
            Some(Usage {
                prompt_tokens: 16,
                completion_tokens: 4,
                total_tokens: 20
            })
        );
        for (reason, want) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("guardrail_intervened", FinishReason::ContentFilter),
            ("content_filtered", FinishReason::ContentFilter),
            (
                "malformed_tool_use",
                FinishReason::Other("malformed_tool_use".into()),
            ),
        ] {
            assert_eq!(finish_reason(reason), want);
        }
    }
}

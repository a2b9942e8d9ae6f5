//! Translation of a neutral [`ChatRequest`] into a Messages API request body
//! (`MessageCreateParams` in the official SDK).
//!
//! Anthropic differs from the OpenAI shape in ways that matter here: the system prompt is a
//! top-level field, turns must alternate between `user` and `assistant` (tool results are user
//! content), tool calls carry their input as a JSON object, and `max_tokens` is required.

use atlasai_core::{
    ChatRequest, ContentPart, Message, ProviderErrorKind, ResponseFormat, ToolChoice,
};
use serde_json::{Map, Value, json};

use super::DEFAULT_MAX_TOKENS;
use crate::error::ProviderError;

/// Appended to the system prompt for `ResponseFormat::JsonObject`. Anthropic has no "any JSON
/// object" mode (`output_config.format` needs a schema), so we ask in words; the model follows
/// this reliably, but nothing enforces it.
pub(super) const JSON_OBJECT_INSTRUCTION: &str = "Respond with a single JSON object and nothing \
     else: no prose before or after it and no Markdown code fences.";

/// The image types Anthropic accepts (`Base64ImageSourceParam.media_type`).
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The request body for `POST /v1/messages`.
pub(super) fn body(
    model: &str,
    request: &ChatRequest,
    stream: bool,
) -> Result<Value, ProviderError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert(
        "max_tokens".into(),
        json!(request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    let mut system: Vec<&str> = request
        .messages
        .iter()
        .filter_map(|m| match m {
            Message::System { content } if !content.trim().is_empty() => Some(content.as_str()),
            _ => None,
        })
        .collect();
    if matches!(request.response_format, Some(ResponseFormat::JsonObject)) {
        system.push(JSON_OBJECT_INSTRUCTION);
    }
    if !system.is_empty() {
        // One string, the messages in order: Anthropic takes a single system prompt.
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    let turns = messages(&request.messages)?;
    if turns.is_empty() {
        // Anthropic needs at least one turn; a system prompt alone is not a conversation.
        return Err(ProviderError::new(
            ProviderErrorKind::BadRequest,
            "the request has no user or assistant message; Anthropic needs at least one \
             besides the system prompt",
        ));
    }
    body.insert("messages".into(), Value::Array(turns));
    if !request.tools.is_empty() {
        body.insert(
            "tools".into(),
            request
                .tools
                .iter()
                .map(|t| {
                    let mut tool =
                        json!({"name": t.name, "input_schema": input_schema(&t.parameters)});
                    if let Some(d) = t.description.as_deref().filter(|d| !d.is_empty()) {
                        tool["description"] = json!(d);
                    }
                    if let Some(s) = t.strict {
                        tool["strict"] = json!(s);
                    }
                    tool
                })
                .collect(),
        );
        if let Some(choice) = tool_choice(request.tool_choice.as_ref(), request.parallel_tool_calls)
        {
            body.insert("tool_choice".into(), choice);
        }
    }
    if let Some(ResponseFormat::JsonSchema { schema, .. }) = &request.response_format {
        // Anthropic's format has no name, description or strict flag: decoding is always
        // constrained to the schema.
        body.insert(
            "output_config".into(),
            json!({"format": {"type": "json_schema", "schema": schema}}),
        );
    }
    if let Some(t) = request.temperature {
        // The neutral range is OpenAI's 0 to 2; Anthropic rejects anything above 1.
        let clamped = t.clamp(0.0, 1.0);
        if clamped != t {
            tracing::debug!(
                requested = t,
                sent = clamped,
                "clamped temperature to Anthropic's 0..=1"
            );
        }
        body.insert("temperature".into(), json!(clamped));
    }
    if let Some(p) = request.top_p {
        // Current Claude models reject `temperature` and `top_p` together ("cannot both be
        // specified for this model"); temperature is the one callers usually mean.
        if request.temperature.is_none() {
            body.insert("top_p".into(), json!(p));
        }
    }
    let stops: Vec<&String> = request
        .stop
        .iter()
        .filter(|s| !s.trim().is_empty())
        .collect();
    if !stops.is_empty() {
        body.insert("stop_sequences".into(), json!(stops));
    }
    if let Some(user) = request.user.as_deref().filter(|u| !u.is_empty()) {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    // `seed` has no Anthropic equivalent and is dropped: the neutral type documents it as
    // honoured only where supported.
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(body))
}

/// One `user` or `assistant` turn being assembled.
struct Turn {
    role: &'static str,
    /// `tool_result` blocks: Anthropic requires them at the start of a user turn.
    results: Vec<Value>,
    /// Everything else, in order.
    blocks: Vec<Value>,
}

/// The conversation as alternating turns: system messages are left out (they went to
/// `system`), consecutive messages of one role become one turn, and tool results become
/// `tool_result` blocks of a user turn.
fn messages(messages: &[Message]) -> Result<Vec<Value>, ProviderError> {
    let mut turns: Vec<Turn> = Vec::new();
    for message in messages {
        let (role, results, blocks) = match message {
            Message::System { .. } => continue,
            Message::User { content } => {
                let blocks = content
                    .iter()
                    .filter_map(|part| match part {
                        ContentPart::Text { text } if text.is_empty() => None,
                        ContentPart::Text { text } => {
                            Some(Ok(json!({"type": "text", "text": text})))
                        }
                        ContentPart::ImageUrl { url } => Some(image_block(url)),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                ("user", Vec::new(), blocks)
            }
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut blocks = Vec::new();
                if let Some(text) = content.as_deref().filter(|t| !t.is_empty()) {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in tool_calls {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": tool_input(&call.id, &call.name, &call.arguments)?,
                    }));
                }
                ("assistant", Vec::new(), blocks)
            }
            Message::Tool {
                tool_call_id,
                content,
            } => {
                let mut block = json!({"type": "tool_result", "tool_use_id": tool_call_id});
                if !content.is_empty() {
                    block["content"] = json!(content);
                }
                ("user", vec![block], Vec::new())
            }
        };
        if results.is_empty() && blocks.is_empty() {
            // An empty message would be rejected ("all messages must have non-empty content")
            // and says nothing; leave it out.
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => {
                last.results.extend(results);
                last.blocks.extend(blocks);
            }
            _ => turns.push(Turn {
                role,
                results,
                blocks,
            }),
        }
    }
    Ok(turns
        .into_iter()
        .map(|t| {
            let mut content = t.results;
            content.extend(t.blocks);
            json!({"role": t.role, "content": content})
        })
        .collect())
}

/// Parses a tool call's argument text into the object Anthropic's `tool_use.input` requires.
fn tool_input(id: &str, name: &str, arguments: &str) -> Result<Value, ProviderError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(ProviderError::new(
            ProviderErrorKind::BadRequest,
            format!(
                "tool call {id} ({name}) has arguments that are not a JSON object; Anthropic \
                 needs tool input as an object"
            ),
        )),
    }
}

/// Anthropic requires `input_schema` to be an object schema; OpenAI lets `parameters` be
/// omitted for functions without arguments.
fn input_schema(parameters: &Value) -> Value {
    match parameters {
        Value::Object(map) if map.contains_key("type") => parameters.clone(),
        Value::Object(map) => {
            let mut map = map.clone();
            map.insert("type".into(), json!("object"));
            Value::Object(map)
        }
        _ => json!({"type": "object", "properties": {}}),
    }
}

/// `tool_choice`, with `disable_parallel_tool_use` when parallel calls are turned off.
fn tool_choice(choice: Option<&ToolChoice>, parallel: Option<bool>) -> Option<Value> {
    let mut wire = match choice {
        // `none` takes no other fields.
        Some(ToolChoice::None) => return Some(json!({"type": "none"})),
        Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Function(name)) => json!({"type": "tool", "name": name}),
        None if parallel == Some(false) => json!({"type": "auto"}),
        None => return None,
    };
    if parallel == Some(false) {
        wire["disable_parallel_tool_use"] = json!(true);
    }
    Some(wire)
}

/// An `image` block: `https:` URLs by reference, `data:` URLs as base64.
fn image_block(url: &str) -> Result<Value, ProviderError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    };
    let bad = |why: &str| {
        ProviderError::new(
            ProviderErrorKind::BadRequest,
            format!(
                "image data URL {why}; Anthropic accepts base64 image/jpeg, image/png, image/gif or image/webp"
            ),
        )
    };
    let (meta, data) = rest.split_once(',').ok_or_else(|| bad("has no data"))?;
    let media_type = meta
        .strip_suffix(";base64")
        .ok_or_else(|| bad("is not base64-encoded"))?
        .to_ascii_lowercase();
    if !IMAGE_MEDIA_TYPES.contains(&media_type.as_str()) {
        return Err(bad(&format!("has media type {media_type:?}")));
    }
    Ok(json!({
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlasai_core::{ToolCall, ToolDefinition};

    fn call(id: &str, name: &str, args: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: args.into(),
        }
    }

    #[test]
    fn system_messages_join_and_turns_alternate() {
        let req = ChatRequest {
            messages: vec![
                Message::system("Be brief."),
                Message::user("Weather?"),
                Message::Assistant {
                    content: Some("Checking.".into()),
                    tool_calls: vec![
                        call("toolu_1", "get_weather", r#"{"city":"Paris"}"#),
                        call("toolu_2", "get_time", ""),
                    ],
                },
                Message::tool("toolu_1", r#"{"sky":"sunny"}"#),
                Message::system("Answer in French."),
                Message::tool("toolu_2", "14:00"),
                Message::user("And tomorrow?"),
                Message::assistant(""),
            ],
            ..ChatRequest::default()
        };
        let b = body("claude-x", &req, false).unwrap();
        assert_eq!(b["system"], "Be brief.\n\nAnswer in French.");
        assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
        assert!(b.get("stream").is_none());
        assert_eq!(
            b["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{\"sky\":\"sunny\"}"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "14:00"},
                    {"type": "text", "text": "And tomorrow?"},
                ]},
            ])
        );
    }

    #[test]
    fn tool_results_come_first_even_after_user_text() {
        let req = ChatRequest {
            messages: vec![
                Message::user("hi"),
                Message::Assistant {
                    content: None,
                    tool_calls: vec![call("t1", "f", "{}")],
                },
                Message::user("note"),
                Message::tool("t1", "done"),
            ],
            ..ChatRequest::default()
        };
        let b = body("m", &req, true).unwrap();
        assert_eq!(b["stream"], true);
        assert_eq!(b["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(b["messages"][2]["content"][1]["text"], "note");
    }

    #[test]
    fn a_system_prompt_alone_is_refused() {
        let req = ChatRequest {
            messages: vec![Message::system("You are helpful."), Message::user("")],
            ..ChatRequest::default()
        };
        let err = body("m", &req, false).unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::BadRequest);
    }

    #[test]
    fn arguments_that_are_not_an_object_are_refused() {
        let req = ChatRequest {
            messages: vec![
                Message::user("hi"),
                Message::Assistant {
                    content: None,
                    tool_calls: vec![call("t1", "f", "[1,2]")],
                },
            ],
            ..ChatRequest::default()
        };
        let err = body("m", &req, false).unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::BadRequest);
        assert!(err.message.contains("t1"), "{err}");
    }

    #[test]
    fn tools_choice_and_parallelism() {
        let tool = ToolDefinition {
            name: "lookup".into(),
            description: None,
            parameters: Value::Null,
            strict: Some(true),
        };
        let mut req = ChatRequest {
            tools: vec![tool],
            tool_choice: Some(ToolChoice::Required),
            parallel_tool_calls: Some(false),
            ..ChatRequest::user("x")
        };
        let b = body("m", &req, false).unwrap();
        assert_eq!(
            b["tools"],
            json!([{"name": "lookup", "input_schema": {"type": "object", "properties": {}}, "strict": true}])
        );
        assert_eq!(
            b["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        req.tool_choice = Some(ToolChoice::Function("lookup".into()));
        req.parallel_tool_calls = None;
        assert_eq!(
            body("m", &req, false).unwrap()["tool_choice"],
            json!({"type": "tool", "name": "lookup"})
        );
        req.tool_choice = Some(ToolChoice::None);
        req.parallel_tool_calls = Some(false);
        assert_eq!(
            body("m", &req, false).unwrap()["tool_choice"],
            json!({"type": "none"})
        );
        req.tool_choice = None;
        assert_eq!(
            body("m", &req, false).unwrap()["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        req.tools.clear();
        req.tool_choice = Some(ToolChoice::Required);
        assert!(body("m", &req, false).unwrap().get("tool_choice").is_none());
    }

    #[test]
    fn output_formats_sampling_and_metadata() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let req = ChatRequest {
            response_format: Some(ResponseFormat::JsonSchema {
                name: "x".into(),
                schema: schema.clone(),
                strict: Some(true),
                description: None,
            }),
            temperature: Some(1.5),
            top_p: Some(0.9),
            stop: vec!["END".into(), " ".into()],
            seed: Some(7),
            user: Some("u-1".into()),
            max_tokens: Some(64),
            ..ChatRequest::user("x")
        };
        let b = body("m", &req, false).unwrap();
        assert_eq!(
            b["output_config"],
            json!({"format": {"type": "json_schema", "schema": schema}})
        );
        assert_eq!(b["temperature"], 1.0);
        assert!(b.get("top_p").is_none());
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert_eq!(b["metadata"], json!({"user_id": "u-1"}));
        assert_eq!(b["max_tokens"], 64);
        assert!(b.get("seed").is_none() && b.get("system").is_none());
        let req = ChatRequest {
            response_format: Some(ResponseFormat::JsonObject),
            top_p: Some(0.5),
            ..ChatRequest::user("x")
        };
        let b = body("m", &req, false).unwrap();
        assert_eq!(b["system"], JSON_OBJECT_INSTRUCTION);
        assert_eq!(b["top_p"], 0.5);
        assert!(b.get("output_config").is_none());
    }

    #[test]
    fn images_by_url_and_data_url() {
        assert_eq!(
            image_block("https://x/cat.png").unwrap(),
            json!({"type": "image", "source": {"type": "url", "url": "https://x/cat.png"}})
        );
        assert_eq!(
            image_block("data:image/PNG;base64,iVBORw0K").unwrap(),
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}})
        );
        assert!(image_block("data:image/svg+xml;base64,PHN2Zz4=").is_err());
        assert!(image_block("data:image/png,rawbytes").is_err());
    }
}

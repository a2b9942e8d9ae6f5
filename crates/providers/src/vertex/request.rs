//! Translation of a neutral [`ChatRequest`] into a Vertex AI `GenerateContentRequest`.
//!
//! Wire format: `google/cloud/aiplatform/v1/prediction_service.proto` (`GenerateContentRequest`),
//! `content.proto` (`Content`, `Part`, `GenerationConfig`) and `tool.proto`
//! (`FunctionDeclaration`, `FunctionCall`, `FunctionResponse`, `ToolConfig`) in
//! googleapis/googleapis, in their proto3 JSON (camelCase) form.

use std::collections::HashMap;

use atlasai_core::{
    ChatRequest, ContentPart, Message, ProviderErrorKind, ResponseFormat, ToolChoice,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ProviderError;

/// `GenerateContentRequest`. The model is named by the URL, not the body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentRequest {
    pub(super) contents: Vec<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) system_instruction: Option<Content>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tools: Vec<Tool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) generation_config: Option<GenerationConfig>,
}

/// `Content`: one turn. Used in requests and responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) role: Option<String>,
    #[serde(default)]
    pub(super) parts: Vec<Part>,
}

/// `Part`: exactly one of the data fields is set. Used in requests and responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) inline_data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) file_data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) function_call: Option<FunctionCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) function_response: Option<FunctionResponse>,
    /// Marks a thought summary; never part of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) thought: Option<bool>,
    /// Opaque bytes (base64 in JSON) that Gemini 3 requires back on function-call parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) thought_signature: Option<String>,
}

impl Part {
    fn text(text: impl Into<String>) -> Part {
        Part {
            text: Some(text.into()),
            ..Part::default()
        }
    }
}

/// `FunctionCall`: `args` is a JSON object. v1 has no call id; newer API versions add `id`,
/// which is read when present but never sent (v1 would reject the unknown field).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct FunctionCall {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) args: Option<Value>,
    #[serde(default, skip_serializing)]
    pub(super) id: Option<String>,
}

/// `FunctionResponse`: results are paired with calls by function name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct FunctionResponse {
    pub(super) name: String,
    pub(super) response: Value,
}

/// `Tool` with function declarations only.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Tool {
    function_declarations: Vec<FunctionDeclaration>,
}

/// `FunctionDeclaration`. The neutral parameters are JSON Schema, so they go in
/// `parametersJsonSchema` (full JSON Schema) rather than `parameters` (an OpenAPI 3.0 subset
/// whose proto rejects keywords such as `additionalProperties` or `const`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclaration {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<Value>,
}

/// `GenerationConfig`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    /// Full JSON Schema (v1 field 28); `responseSchema` would need the OpenAPI subset.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<Value>,
}

impl GenerationConfig {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_empty()
            && self.seed.is_none()
            && self.response_mime_type.is_none()
    }
}

fn bad_request(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::BadRequest, message)
}

/// Separates the call id from a thought signature carried inside it (see [`call_id`]).
const SIGNATURE_MARK: &str = "__ts_";

/// The neutral id for a function call: Gemini's own id when it sends one, else `call_<n>` by
/// position in the answer. A thought signature, which Gemini 3 requires to get back with the
/// call, rides along in the id (URL-safe base64, so the id stays `[A-Za-z0-9_-]`): the id is
/// the one piece of a tool call every client returns verbatim.
pub(super) fn call_id(index: u32, id: Option<&str>, signature: Option<&str>) -> String {
    let base = match id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("call_{index}"),
    };
    match signature.and_then(|s| STANDARD.decode(s).ok()) {
        Some(bytes) if !bytes.is_empty() => {
            format!("{base}{SIGNATURE_MARK}{}", URL_SAFE_NO_PAD.encode(bytes))
        }
        _ => base,
    }
}

/// The thought signature carried in a call id, back in the standard base64 of the wire.
fn signature_from_id(id: &str) -> Option<String> {
    let (_, sig) = id.split_once(SIGNATURE_MARK)?;
    URL_SAFE_NO_PAD.decode(sig).ok().map(|b| STANDARD.encode(b))
}

/// Appends parts to the conversation, merging them into the previous turn when it has the
/// same role: Gemini wants user and model turns to alternate.
fn push_turn(contents: &mut Vec<Content>, role: &str, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
        _ => contents.push(Content {
            role: Some(role.to_owned()),
            parts,
        }),
    }
}

/// A user content part: text, or an image as inline data (`data:` URLs) or a file reference.
fn user_part(part: &ContentPart) -> Option<Part> {
    match part {
        ContentPart::Text { text } if text.is_empty() => None,
        ContentPart::Text { text } => Some(Part::text(text.clone())),
        ContentPart::ImageUrl { url } => Some(match url.strip_prefix("data:") {
            Some(rest) => {
                let (meta, data) = rest.split_once(',').unwrap_or(("", rest));
                let mime = meta
                    .split(';')
                    .next()
                    .filter(|m| !m.is_empty())
                    .unwrap_or("image/jpeg");
                Part {
                    inline_data: Some(json!({"mimeType": mime, "data": data})),
                    ..Part::default()
                }
            }
            None => Part {
                file_data: Some(json!({"mimeType": image_mime_for(url), "fileUri": url})),
                ..Part::default()
            },
        }),
    }
}

/// `fileData` needs a MIME type; guess it from the file extension.
fn image_mime_for(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        _ => "image/jpeg",
    }
}

/// A tool result as the `response` object Gemini wants. Objects go as they are; anything else
/// is wrapped as `{"output": …}`, the key `FunctionResponse` documents for a function's output.
fn tool_response(content: &str) -> Value {
    match serde_json::from_str::<Value>(content) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(other) => json!({ "output": other }),
        Err(_) => json!({ "output": content }),
    }
}

/// Builds the request body.
pub(super) fn build(request: &ChatRequest) -> Result<GenerateContentRequest, ProviderError> {
    let mut system: Vec<Part> = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    // Gemini pairs results with calls by function name, so remember each call's name.
    let mut names: HashMap<&str, &str> = HashMap::new();
    for message in &request.messages {
        match message {
            Message::System { content } => {
                if !content.is_empty() {
                    system.push(Part::text(content.clone()));
                }
            }
            Message::User { content } => {
                push_turn(
                    &mut contents,
                    "user",
                    content.iter().filter_map(user_part).collect(),
                );
            }
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut parts = Vec::new();
                if let Some(text) = content.as_deref().filter(|t| !t.is_empty()) {
                    parts.push(Part::text(text));
                }
                for call in tool_calls {
                    names.insert(&call.id, &call.name);
                    let args = match call.arguments.trim() {
                        "" => json!({}),
                        text => match serde_json::from_str::<Value>(text) {
                            Ok(v @ Value::Object(_)) => v,
                            _ => {
                                return Err(bad_request(format!(
                                    "tool call {:?} ({}) has arguments that are not a JSON object; Gemini needs an object",
                                    call.id, call.name
                                )));
                            }
                        },
                    };
                    parts.push(Part {
                        function_call: Some(FunctionCall {
                            name: call.name.clone(),
                            args: Some(args),
                            id: None,
                        }),
                        thought_signature: signature_from_id(&call.id),
                        ..Part::default()
                    });
                }
                push_turn(&mut contents, "model", parts);
            }
            Message::Tool {
                tool_call_id,
                content,
            } => {
                let name = names.get(tool_call_id.as_str()).ok_or_else(|| {
                    bad_request(format!(
                        "tool result for call id {tool_call_id:?} has no matching tool call in an earlier assistant message; Gemini pairs results with calls by function name"
                    ))
                })?;
                let part = Part {
                    function_response: Some(FunctionResponse {
                        name: (*name).to_owned(),
                        response: tool_response(content),
                    }),
                    ..Part::default()
                };
                push_turn(&mut contents, "user", vec![part]);
            }
        }
    }

    let tools = if request.tools.is_empty() {
        Vec::new()
    } else {
        vec![Tool {
            function_declarations: request
                .tools
                .iter()
                .map(|t| FunctionDeclaration {
                    name: t.name.clone(),
                    description: t.description.clone().filter(|d| !d.is_empty()),
                    parameters_json_schema: (!t.parameters.is_null()).then(|| t.parameters.clone()),
                })
                .collect(),
        }]
    };
    let tool_config = match (&request.tool_choice, tools.is_empty()) {
        (Some(choice), false) => Some(json!({ "functionCallingConfig": match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        }})),
        _ => None,
    };

    let mut config = GenerationConfig {
        temperature: request.temperature,
        top_p: request.top_p,
        max_output_tokens: request.max_tokens,
        stop_sequences: request.stop.clone(),
        // The API's seed is an int32; truncating keeps a given seed reproducible.
        seed: request.seed.map(|s| s as i32),
        ..GenerationConfig::default()
    };
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => config.response_mime_type = Some("application/json"),
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            config.response_mime_type = Some("application/json");
            config.response_json_schema = Some(schema.clone());
        }
    }

    Ok(GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(Content {
            role: None,
            parts: system,
        }),
        tools,
        tool_config,
        generation_config: (!config.is_empty()).then_some(config),
    })
}

#[cfg(test)]
mod tests {
    use atlasai_core::{ToolCall, ToolDefinition};

    use super::*;

    fn body(req: &ChatRequest) -> Value {
        serde_json::to_value(build(req).unwrap()).unwrap()
    }

    #[test]
    fn system_goes_to_system_instruction_and_turns_alternate() {
        let req = ChatRequest {
            messages: vec![
                Message::system("Be brief."),
                Message::user("one"),
                Message::user("two"),
                Message::assistant("ok"),
                Message::system("Use metric units."),
                Message::user("three"),
            ],
            max_tokens: Some(64),
            temperature: Some(0.5),
            stop: vec!["END".into()],
            seed: Some(7),
            ..ChatRequest::default()
        };
        assert_eq!(
            body(&req),
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
                    {"role": "model", "parts": [{"text": "ok"}]},
                    {"role": "user", "parts": [{"text": "three"}]},
                ],
                "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use metric units."}]},
                "generationConfig": {"temperature": 0.5, "maxOutputTokens": 64, "stopSequences": ["END"], "seed": 7},
            })
        );
    }

    #[test]
    fn tool_calls_and_results_pair_by_name_and_keep_thought_signatures() {
        let sig_id = call_id(0, None, Some("c2lnbmF0dXJlLWJ5dGVz"));
        assert!(sig_id.starts_with("call_0__ts_"), "{sig_id}");
        assert!(
            sig_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{sig_id}"
        );
        let req = ChatRequest {
            messages: vec![
                Message::user("weather?"),
                Message::Assistant {
                    content: None,
                    tool_calls: vec![
                        ToolCall {
                            id: sig_id.clone(),
                            name: "get_weather".into(),
                            arguments: r#"{"city":"Paris"}"#.into(),
                        },
                        ToolCall {
                            id: "call_1".into(),
                            name: "get_time".into(),
                            arguments: String::new(),
                        },
                    ],
                },
                Message::tool(&sig_id, r#"{"sky":"sunny"}"#),
                Message::tool("call_1", "14:00"),
                Message::user("thanks"),
            ],
            tools: vec![ToolDefinition {
                name: "get_weather".into(),
                description: Some("Weather".into()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}),
                strict: Some(true),
            }],
            tool_choice: Some(ToolChoice::Function("get_weather".into())),
            ..ChatRequest::default()
        };
        let b = body(&req);
        assert_eq!(
            b["contents"],
            json!([
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnbmF0dXJlLWJ5dGVz"},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
                    {"functionResponse": {"name": "get_time", "response": {"output": "14:00"}}},
                    {"text": "thanks"},
                ]},
            ])
        );
        assert_eq!(
            b["tools"],
            json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather", "parametersJsonSchema": req.tools[0].parameters}]}])
        );
        assert_eq!(
            b["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
        );
    }

    #[test]
    fn results_without_a_matching_call_and_non_object_arguments_are_rejected_here() {
        let req = ChatRequest {
            messages: vec![Message::user("hi"), Message::tool("call_9", "{}")],
            ..ChatRequest::default()
        };
        let err = build(&req).unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::BadRequest);
        assert!(err.message.contains("call_9"), "{err}");

        let req = ChatRequest {
            messages: vec![Message::Assistant {
                content: None,
                tool_calls: vec![ToolCall {
                    id: "a".into(),
                    name: "f".into(),
                    arguments: "[1]".into(),
                }],
            }],
            ..ChatRequest::default()
        };
        assert!(
            build(&req)
                .unwrap_err()
                .message
                .contains("not a JSON object")
        );
    }

    #[test]
    fn json_modes_set_the_mime_type_and_the_json_schema() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false});
        let req = ChatRequest {
            response_format: Some(ResponseFormat::JsonSchema {
                name: "x".into(),
                schema: schema.clone(),
                strict: Some(true),
                description: None,
            }),
            ..ChatRequest::user("hi")
        };
        assert_eq!(
            body(&req)["generationConfig"],
            json!({"responseMimeType": "application/json", "responseJsonSchema": schema})
        );
        let req = ChatRequest {
            response_format: Some(ResponseFormat::JsonObject),
            ..ChatRequest::user("hi")
        };
        assert_eq!(
            body(&req)["generationConfig"],
            json!({"responseMimeType": "application/json"})
        );
    }

    #[test]
    fn images_become_inline_data_or_file_references() {
        let req = ChatRequest {
            messages: vec![Message::User {
                content: vec![
                    ContentPart::ImageUrl {
                        url: "data:image/png;base64,iVBORw0K".into(),
                    },
                    ContentPart::ImageUrl {
                        url: "gs://bucket/chart.webp".into(),
                    },
                ],
            }],
            ..ChatRequest::default()
        };
        assert_eq!(
            body(&req)["contents"][0]["parts"],
            json!([
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
                {"fileData": {"mimeType": "image/webp", "fileUri": "gs://bucket/chart.webp"}},
            ])
        );
    }
}

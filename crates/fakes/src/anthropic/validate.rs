//! Rejects Messages requests the way the real API does, with its error wording, so that a
//! client's translation bug shows up as a 400 in tests instead of passing silently.
//!
//! Wording comes from real API responses quoted in public bug reports (for example
//! "messages.22: `tool_use` ids were found without `tool_result` blocks immediately after: …",
//! "response_format: Extra inputs are not permitted", "max_tokens: Field required",
//! "`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
//! and from the request types of the official SDK (`MessageCreateParams`, `ToolParam`,
//! `ToolChoice*Param`, `OutputConfigParam`, `ImageBlockParam`). Where the API's exact words
//! are not known, the message says what is wrong in the API's style; those are marked.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// Top-level fields of `MessageCreateParams` (GA, without beta headers).
const REQUEST_FIELDS: [&str; 18] = [
    "model",
    "messages",
    "max_tokens",
    "cache_control",
    "container",
    "inference_geo",
    "metadata",
    "output_config",
    "service_tier",
    "stop_sequences",
    "stream",
    "system",
    "temperature",
    "thinking",
    "tool_choice",
    "tools",
    "top_k",
    "top_p",
];

/// Fields of a custom tool (`ToolParam`).
const TOOL_FIELDS: [&str; 10] = [
    "name",
    "description",
    "input_schema",
    "type",
    "cache_control",
    "strict",
    "input_examples",
    "eager_input_streaming",
    "defer_loading",
    "allowed_callers",
];

/// Content block tags a request may carry.
const BLOCK_TYPES: [&str; 10] = [
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
];

const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

type Check = Result<(), String>;

fn extra(path: &str) -> String {
    format!("{path}: Extra inputs are not permitted")
}

fn only_fields(obj: &Map<String, Value>, allowed: &[&str], path: &str) -> Check {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) if path.is_empty() => Err(extra(k)),
        Some(k) => Err(extra(&format!("{path}.{k}"))),
        None => Ok(()),
    }
}

/// Checks a `POST /v1/messages` body; the error is the API's `message`.
pub(super) fn messages_request(body: &Value) -> Check {
    let Some(obj) = body.as_object() else {
        return Err("Input should be a valid dictionary or object to extract fields from".into());
    };
    only_fields(obj, &REQUEST_FIELDS, "")?;
    match obj.get("model") {
        None => return Err("model: Field required".into()),
        Some(Value::String(m)) if !m.is_empty() => {}
        Some(_) => return Err("model: Input should be a valid string".into()),
    }
    match obj.get("max_tokens") {
        None => return Err("max_tokens: Field required".into()),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => {}
            Some(_) => return Err("max_tokens: Input should be greater than or equal to 0".into()),
            None => return Err("max_tokens: Input should be a valid integer".into()),
        },
    }
    if let Some(system) = obj.get("system") {
        check_system(system)?;
    }
    let Some(messages) = obj.get("messages") else {
        return Err("messages: Field required".into());
    };
    let Some(messages) = messages.as_array() else {
        return Err("messages: Input should be a valid list".into());
    };
    if messages.is_empty() {
        // Marked: wording not confirmed.
        return Err("messages: at least one message is required".into());
    }
    for (i, m) in messages.iter().enumerate() {
        check_message(m, i, i + 1 == messages.len())?;
    }
    check_tool_pairing(messages)?;
    let tool_names = match obj.get("tools") {
        Some(tools) => check_tools(tools)?,
        None => HashSet::new(),
    };
    if let Some(choice) = obj.get("tool_choice") {
        check_tool_choice(choice, &tool_names)?;
    }
    if let Some(config) = obj.get("output_config") {
        check_output_config(config)?;
    }
    for field in ["temperature", "top_p"] {
        if let Some(v) = obj.get(field) {
            match v.as_f64() {
                Some(x) if x < 0.0 => {
                    return Err(format!(
                        "{field}: Input should be greater than or equal to 0"
                    ));
                }
                Some(x) if x > 1.0 => {
                    return Err(format!("{field}: Input should be less than or equal to 1"));
                }
                Some(_) => {}
                None => return Err(format!("{field}: Input should be a valid number")),
            }
        }
    }
    if obj.contains_key("temperature") && obj.contains_key("top_p") {
        return Err(
            "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
                .into(),
        );
    }
    if let Some(stops) = obj.get("stop_sequences") {
        let Some(stops) = stops.as_array() else {
            return Err("stop_sequences: Input should be a valid list".into());
        };
        for (i, s) in stops.iter().enumerate() {
            match s.as_str() {
                Some(s) if s.trim().is_empty() => {
                    return Err(
                        "stop_sequences: each stop sequence must contain non-whitespace".into(),
                    );
                }
                Some(_) => {}
                None => {
                    return Err(format!(
                        "stop_sequences.{i}: Input should be a valid string"
                    ));
                }
            }
        }
    }
    if let Some(metadata) = obj.get("metadata") {
        let Some(m) = metadata.as_object() else {
            return Err("metadata: Input should be a valid dictionary".into());
        };
        only_fields(m, &["user_id"], "metadata")?;
        if let Some(u) = m.get("user_id")
            && !u.is_null()
            && u.as_str().is_none_or(|s| s.len() > 256)
        {
            return Err("metadata.user_id: String should have at most 256 characters".into());
        }
    }
    if let Some(stream) = obj.get("stream")
        && !stream.is_boolean()
    {
        return Err("stream: Input should be a valid boolean".into());
    }
    Ok(())
}

fn check_system(system: &Value) -> Check {
    match system {
        Value::String(_) => Ok(()),
        Value::Array(blocks) => {
            for (i, b) in blocks.iter().enumerate() {
                if b["type"] != "text" || !b["text"].is_string() {
                    return Err(format!("system.{i}: Input should be a valid text block"));
                }
            }
            Ok(())
        }
        _ => Err("system: Input should be a valid string".into()),
    }
}

fn check_message(m: &Value, i: usize, last: bool) -> Check {
    let Some(obj) = m.as_object() else {
        return Err(format!("messages.{i}: Input should be a valid dictionary"));
    };
    only_fields(obj, &["role", "content"], &format!("messages.{i}"))?;
    let role = obj.get("role").and_then(Value::as_str).unwrap_or_default();
    match role {
        "user" | "assistant" => {}
        "system" if i == 0 => {
            return Err(
                "messages.0: use the top-level 'system' parameter for the initial system prompt"
                    .into(),
            );
        }
        _ => {
            return Err(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
    }
    let empty = || {
        Err(format!(
            "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
        ))
    };
    match obj.get("content") {
        None => Err(format!("messages.{i}.content: Field required")),
        Some(Value::String(s)) if s.is_empty() && !(last && role == "assistant") => empty(),
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(blocks)) if blocks.is_empty() && !(last && role == "assistant") => {
            empty()
        }
        Some(Value::Array(blocks)) => {
            for (j, b) in blocks.iter().enumerate() {
                check_block(b, role, &format!("messages.{i}.content.{j}"))?;
            }
            Ok(())
        }
        Some(_) => Err(format!(
            "messages.{i}.content: Input should be a valid list"
        )),
    }
}

fn check_block(b: &Value, role: &str, path: &str) -> Check {
    let kind = b.get("type").and_then(Value::as_str).unwrap_or_default();
    if !BLOCK_TYPES.contains(&kind) {
        let expected = BLOCK_TYPES.map(|t| format!("'{t}'")).join(", ");
        return Err(format!(
            "{path}: Input tag '{kind}' found using 'type' does not match any of the expected tags: {expected}"
        ));
    }
    match kind {
        "text" => match b.get("text").and_then(Value::as_str) {
            Some("") => Err("messages: text content blocks must be non-empty".into()),
            Some(_) => Ok(()),
            None => Err(format!("{path}.text.text: Field required")),
        },
        "image" => check_image(b, &format!("{path}.image")),
        "tool_use" => {
            if role != "assistant" {
                // Marked: wording not confirmed.
                return Err(format!(
                    "{path}: `tool_use` blocks can only be in `assistant` messages"
                ));
            }
            for field in ["id", "name"] {
                if !b.get(field).is_some_and(Value::is_string) {
                    return Err(format!("{path}.tool_use.{field}: Field required"));
                }
            }
            if !b.get("input").is_some_and(Value::is_object) {
                return Err(format!(
                    "{path}.tool_use.input: Input should be a valid dictionary"
                ));
            }
            Ok(())
        }
        "tool_result" => {
            if role != "user" {
                // Marked: wording not confirmed.
                return Err(format!(
                    "{path}: `tool_result` blocks can only be in `user` messages"
                ));
            }
            if !b.get("tool_use_id").is_some_and(Value::is_string) {
                return Err(format!("{path}.tool_result.tool_use_id: Field required"));
            }
            match b.get("content") {
                None | Some(Value::String(_)) => Ok(()),
                Some(Value::Array(parts)) => {
                    for (k, p) in parts.iter().enumerate() {
                        check_block(p, "user", &format!("{path}.tool_result.content.{k}"))?;
                    }
                    Ok(())
                }
                Some(_) => Err(format!(
                    "{path}.tool_result.content: Input should be a valid string"
                )),
            }
        }
        _ => Ok(()),
    }
}

fn check_image(b: &Value, path: &str) -> Check {
    let source = &b["source"];
    match source["type"].as_str() {
        Some("base64") => {
            let media = source["media_type"].as_str().unwrap_or_default();
            if !IMAGE_MEDIA_TYPES.contains(&media) {
                return Err(format!(
                    "{path}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                ));
            }
            if !source["data"].is_string() {
                return Err(format!("{path}.source.base64.data: Field required"));
            }
            Ok(())
        }
        Some("url") if source["url"].is_string() => Ok(()),
        Some("url") => Err(format!("{path}.source.url.url: Field required")),
        _ => Err(format!(
            "{path}.source: Input tag '{}' found using 'type' does not match any of the expected tags: 'base64', 'url', 'file'",
            source["type"].as_str().unwrap_or_default()
        )),
    }
}

fn ids_of<'a>(m: &'a Value, kind: &str, field: &str) -> Vec<&'a str> {
    m["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b["type"] == kind)
                .filter_map(|b| b[field].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// Every `tool_use` needs its `tool_result` at the start of the next message, and every
/// `tool_result` needs a `tool_use` in the previous one.
fn check_tool_pairing(messages: &[Value]) -> Check {
    for (i, m) in messages.iter().enumerate() {
        if m["role"] == "user" {
            let previous: Vec<&str> = match i.checked_sub(1).map(|p| &messages[p]) {
                Some(p) if p["role"] == "assistant" => ids_of(p, "tool_use", "id"),
                _ => Vec::new(),
            };
            if let Some(blocks) = m["content"].as_array() {
                for (j, b) in blocks.iter().enumerate() {
                    if b["type"] != "tool_result" {
                        continue;
                    }
                    let id = b["tool_use_id"].as_str().unwrap_or_default();
                    if !previous.contains(&id) {
                        return Err(format!(
                            "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        ));
                    }
                }
            }
            continue;
        }
        let uses = ids_of(m, "tool_use", "id");
        if uses.is_empty() {
            continue;
        }
        let next = messages.get(i + 1);
        if let Some(next) = next.filter(|n| n["role"] == "user") {
            let leading = next["content"]
                .as_array()
                .map(|b| b.iter().take_while(|b| b["type"] == "tool_result").count())
                .unwrap_or(0);
            if leading < uses.len() {
                return Err(format!(
                    "messages.{}: Did not find {} `tool_result` block(s) at the beginning of this message. Messages following `tool_use` blocks must begin with a matching number of `tool_result` blocks.",
                    i + 1,
                    uses.len()
                ));
            }
        }
        let answered = next
            .map(|n| ids_of(n, "tool_result", "tool_use_id"))
            .unwrap_or_default();
        let missing: Vec<&str> = uses
            .into_iter()
            .filter(|id| !answered.contains(id))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

/// Checks `tools` and returns the declared names.
fn check_tools(tools: &Value) -> Result<HashSet<String>, String> {
    let Some(tools) = tools.as_array() else {
        return Err("tools: Input should be a valid list".into());
    };
    let mut names = HashSet::new();
    for (i, t) in tools.iter().enumerate() {
        let path = format!("tools.{i}.custom");
        let Some(obj) = t.as_object() else {
            return Err(format!("tools.{i}: Input should be a valid dictionary"));
        };
        only_fields(obj, &TOOL_FIELDS, &path)?;
        if let Some(kind) = obj.get("type")
            && kind != "custom"
        {
            return Err(format!(
                "tools.{i}: Input tag '{}' found using 'type' does not match any of the expected tags",
                kind.as_str().unwrap_or_default()
            ));
        }
        let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
        let valid = (1..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(format!(
                "{path}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            ));
        }
        match obj.get("input_schema") {
            None => return Err(format!("{path}.input_schema: Field required")),
            Some(schema) if schema["type"] != "object" => {
                return Err(format!(
                    "{path}.input_schema.type: Input should be 'object'"
                ));
            }
            Some(_) => {}
        }
        if !names.insert(name.to_owned()) {
            return Err("tools: Tool names must be unique.".into());
        }
    }
    Ok(names)
}

fn check_tool_choice(choice: &Value, tools: &HashSet<String>) -> Check {
    let Some(obj) = choice.as_object() else {
        return Err("tool_choice: Input should be a valid dictionary".into());
    };
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or_default();
    let path = format!("tool_choice.{kind}");
    match kind {
        "none" => only_fields(obj, &["type"], &path),
        "auto" | "any" => only_fields(obj, &["type", "disable_parallel_tool_use"], &path),
        "tool" => {
            only_fields(obj, &["type", "name", "disable_parallel_tool_use"], &path)?;
            let Some(name) = obj.get("name").and_then(Value::as_str) else {
                return Err("tool_choice.tool.name: Field required".into());
            };
            if !tools.contains(name) {
                // Marked: wording not confirmed.
                return Err(format!(
                    "tool_choice: tool '{name}' was not found in `tools`"
                ));
            }
            Ok(())
        }
        other => Err(format!(
            "tool_choice: Input tag '{other}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
        )),
    }
}

fn check_output_config(config: &Value) -> Check {
    let Some(obj) = config.as_object() else {
        return Err("output_config: Input should be a valid dictionary".into());
    };
    only_fields(obj, &["effort", "format"], "output_config")?;
    if let Some(format) = obj.get("format").filter(|f| !f.is_null()) {
        let Some(f) = format.as_object() else {
            return Err("output_config.format: Input should be a valid dictionary".into());
        };
        only_fields(f, &["type", "schema"], "output_config.format")?;
        if f.get("type").and_then(Value::as_str) != Some("json_schema") {
            return Err("output_config.format.type: Input should be 'json_schema'".into());
        }
        if !f.get("schema").is_some_and(Value::is_object) {
            return Err("output_config.format.schema: Field required".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut b = base();
        b[field] = value;
        b
    }

    #[test]
    fn a_minimal_request_passes() {
        assert_eq!(messages_request(&base()), Ok(()));
    }

    #[test]
    fn openai_shapes_are_rejected_in_the_apis_words() {
        let err = messages_request(&with("response_format", json!({"type": "json_object"})));
        assert_eq!(
            err,
            Err("response_format: Extra inputs are not permitted".into())
        );
        let mut b = base();
        b.as_object_mut().unwrap().remove("max_tokens");
        assert_eq!(
            messages_request(&b),
            Err("max_tokens: Field required".into())
        );
        let b = with(
            "messages",
            json!([{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]),
        );
        assert!(
            messages_request(&b)
                .unwrap_err()
                .contains("top-level 'system'")
        );
        let b = with("messages", json!([{"role": "tool", "content": "x"}]));
        assert!(
            messages_request(&b)
                .unwrap_err()
                .contains("'user' or 'assistant'")
        );
        let b = with(
            "tools",
            json!([{"type": "function", "function": {"name": "f"}}]),
        );
        assert!(messages_request(&b).is_err());
        let b = with(
            "messages",
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
        );
        assert!(
            messages_request(&b)
                .unwrap_err()
                .contains("Input tag 'image_url'")
        );
    }

    #[test]
    fn tool_use_and_tool_result_must_pair_up() {
        let assistant = json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "b", "name": "g", "input": {}},
        ]});
        let only_first = json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "1"}]});
        let b = with(
            "messages",
            json!([{"role": "user", "content": "hi"}, assistant, only_first]),
        );
        assert!(
            messages_request(&b)
                .unwrap_err()
                .contains("Did not find 2 `tool_result`")
        );
        let both = json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "1"},
            {"type": "tool_result", "tool_use_id": "b", "content": "2"},
        ]});
        let b = with(
            "messages",
            json!([{"role": "user", "content": "hi"}, assistant, both]),
        );
        assert_eq!(messages_request(&b), Ok(()));
        let stray =
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "zzz"}]});
        let b = with("messages", json!([stray]));
        assert!(
            messages_request(&b)
                .unwrap_err()
                .contains("unexpected `tool_use_id`")
        );
        let string_input = json!({"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": "{}"}]});
        let b = with(
            "messages",
            json!([{"role": "user", "content": "hi"}, string_input]),
        );
        assert!(
            messages_request(&b)
                .unwrap_err()
                .contains("valid dictionary")
        );
    }

    #[test]
    fn sampling_tools_choice_and_output_config() {
        assert!(messages_request(&with("temperature", json!(1.5))).is_err());
        let mut b = with("temperature", json!(0.5));
        b["top_p"] = json!(0.9);
        assert!(
            messages_request(&b)
                .unwrap_err()
                .contains("cannot both be specified")
        );
        let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        let mut b = with("tools", tools);
        b["tool_choice"] = json!({"type": "none", "disable_parallel_tool_use": true});
        assert!(messages_request(&b).unwrap_err().contains("Extra inputs"));
        b["tool_choice"] = json!({"type": "tool", "name": "g"});
        assert!(messages_request(&b).is_err());
        b["tool_choice"] = json!({"type": "any", "disable_parallel_tool_use": true});
        assert_eq!(messages_request(&b), Ok(()));
        let b = with(
            "output_config",
            json!({"format": {"type": "json_schema", "name": "x", "schema": {}}}),
        );
        assert!(
            messages_request(&b)
                .unwrap_err()
                .contains("output_config.format.name")
        );
        let b = with(
            "output_config",
            json!({"format": {"type": "json_schema", "schema": {"type": "object"}}}),
        );
        assert_eq!(messages_request(&b), Ok(()));
    }
}

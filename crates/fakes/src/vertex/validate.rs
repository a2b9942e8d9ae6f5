//! Request validation the way Vertex AI rejects bad requests: Google's JSON front end refuses
//! unknown fields (`Invalid JSON payload received. Unknown name "x"`), and Gemini adds its own
//! rules (roles, alternation, function response counts, Gemini 3 thought signatures).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::{SIGNATURE_PREFIX, SKIP_SIGNATURE};

const LEARN_MORE: &str =
    "Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini";

fn unknown_fields(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Option<String> {
    let name = obj.keys().find(|k| !allowed.contains(&k.as_str()))?;
    Some(if at.is_empty() {
        format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.")
    } else {
        format!(
            "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
        )
    })
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("Invalid JSON payload received. Expected an object at '{at}'."))
}

const REQUEST_FIELDS: &[&str] = &[
    "model",
    "contents",
    "systemInstruction",
    "cachedContent",
    "tools",
    "toolConfig",
    "labels",
    "safetySettings",
    "modelArmorConfig",
    "generationConfig",
];
const CONTENT_FIELDS: &[&str] = &["role", "parts"];
const PART_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "mediaResolution",
];
const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];
const FUNCTION_CALL_FIELDS: &[&str] = &["name", "args", "partialArgs", "willContinue"];
const FUNCTION_RESPONSE_FIELDS: &[&str] = &["name", "response", "parts"];
const GENERATION_FIELDS: &[&str] = &[
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "responseLogprobs",
    "logprobs",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "routingConfig",
    "thinkingConfig",
    "responseModalities",
    "mediaResolution",
    "speechConfig",
    "audioTimestamp",
    "enableAffectiveDialog",
    "imageConfig",
];
const TOOL_FIELDS: &[&str] = &[
    "functionDeclarations",
    "retrieval",
    "googleSearch",
    "googleSearchRetrieval",
    "codeExecution",
    "urlContext",
    "enterpriseWebSearch",
    "googleMaps",
    "computerUse",
];
const DECLARATION_FIELDS: &[&str] = &[
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
];
/// The OpenAPI subset `Schema` of `openapi.proto`; JSON Schema goes in `parametersJsonSchema`.
const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "default",
    "items",
    "minItems",
    "maxItems",
    "enum",
    "properties",
    "propertyOrdering",
    "required",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "additionalProperties",
    "ref",
    "defs",
];

pub(super) fn validate_generate(body: &Value, model: &str) -> Option<String> {
    check_generate(body, model).err()
}

fn check_generate(body: &Value, model: &str) -> Result<(), String> {
    let obj = object(body, "")?;
    if let Some(m) = unknown_fields(obj, REQUEST_FIELDS, "") {
        return Err(m);
    }
    let no_parts = format!(
        "Unable to submit request because it must include at least one parts field, which describes the prompt input. {LEARN_MORE}"
    );
    let contents = match obj.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        _ => return Err(no_parts),
    };
    let mut previous_role = "";
    for (i, content) in contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        let c = object(content, &at)?;
        if let Some(m) = unknown_fields(c, CONTENT_FIELDS, &at) {
            return Err(m);
        }
        let role = c.get("role").and_then(Value::as_str).unwrap_or_default();
        if role != "user" && role != "model" {
            return Err("Please use a valid role: user, model.".to_owned());
        }
        if role == previous_role {
            return Err(
                "Please ensure that multiturn requests alternate between user and model."
                    .to_owned(),
            );
        }
        previous_role = if role == "user" { "user" } else { "model" };
        let parts = match c.get("parts") {
            Some(Value::Array(p)) if !p.is_empty() => p,
            _ => return Err(no_parts),
        };
        for (j, part) in parts.iter().enumerate() {
            check_part(part, &format!("{at}.parts[{j}]"))?;
        }
    }
    check_function_turns(contents)?;
    if model.starts_with("gemini-3") {
        check_thought_signatures(contents)?;
    }
    if let Some(system) = obj.get("systemInstruction") {
        let s = object(system, "system_instruction")?;
        if let Some(m) = unknown_fields(s, CONTENT_FIELDS, "system_instruction") {
            return Err(m);
        }
        for (j, part) in s
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_part(part, &format!("system_instruction.parts[{j}]"))?;
        }
    }
    let declared = check_tools(obj.get("tools"))?;
    check_tool_config(obj.get("toolConfig"), &declared)?;
    check_generation_config(obj.get("generationConfig"))
}

fn check_part(part: &Value, at: &str) -> Result<(), String> {
    let p = object(part, at)?;
    if let Some(m) = unknown_fields(p, PART_FIELDS, at) {
        return Err(m);
    }
    let data: Vec<&str> = PART_DATA
        .iter()
        .copied()
        .filter(|k| p.contains_key(*k))
        .collect();
    if data.len() != 1 {
        return Err(format!(
            "Invalid value at '{at}': exactly one of text, inline_data, file_data, function_call, function_response must be set; found {}.",
            data.len()
        ));
    }
    if let Some(text) = p.get("text") {
        match text.as_str() {
            Some("") => {
                return Err(format!(
                    "Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again. {LEARN_MORE}"
                ));
            }
            Some(_) => {}
            None => return Err(format!("Invalid value at '{at}.text' (TYPE_STRING)")),
        }
    }
    if let Some(call) = p.get("functionCall") {
        let c = object(call, &format!("{at}.function_call"))?;
        if let Some(m) = unknown_fields(c, FUNCTION_CALL_FIELDS, &format!("{at}.function_call")) {
            return Err(m);
        }
        if c.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!(
                "Unable to submit request because the function call at '{at}' has no name."
            ));
        }
        if c.get("args").is_some_and(|a| !a.is_object()) {
            return Err(format!(
                "Invalid value at '{at}.function_call.args' (type.googleapis.com/google.protobuf.Struct)"
            ));
        }
    }
    if let Some(resp) = p.get("functionResponse") {
        let r = object(resp, &format!("{at}.function_response"))?;
        if let Some(m) = unknown_fields(
            r,
            FUNCTION_RESPONSE_FIELDS,
            &format!("{at}.function_response"),
        ) {
            return Err(m);
        }
        if r.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!(
                "Unable to submit request because the function response at '{at}' has no name."
            ));
        }
        if !r.get("response").is_some_and(Value::is_object) {
            return Err(format!(
                "Invalid value at '{at}.function_response.response' (type.googleapis.com/google.protobuf.Struct)"
            ));
        }
    }
    if let Some(sig) = p.get("thoughtSignature")
        && sig
            .as_str()
            .is_none_or(|s| STANDARD.decode(s).is_err() && s != SKIP_SIGNATURE)
    {
        return Err(format!(
            "Invalid value at '{at}.thought_signature' (TYPE_BYTES), Base64 decoding failed"
        ));
    }
    Ok(())
}

fn count_parts(content: &Value, key: &str) -> usize {
    content["parts"]
        .as_array()
        .map(|p| p.iter().filter(|p| p.get(key).is_some()).count())
        .unwrap_or(0)
}

/// Each function-call turn must be answered by a turn with as many function responses.
fn check_function_turns(contents: &[Value]) -> Result<(), String> {
    for pair in contents.windows(2) {
        let calls = count_parts(&pair[0], "functionCall");
        let responses = count_parts(&pair[1], "functionResponse");
        if (calls > 0 || responses > 0) && calls != responses {
            return Err("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.".to_owned());
        }
    }
    if let Some(first) = contents.first()
        && count_parts(first, "functionResponse") > 0
    {
        return Err("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.".to_owned());
    }
    Ok(())
}

/// Gemini 3: in the current turn (after the last user text), the first function call of each
/// model step must come back with the signature it was issued with.
fn check_thought_signatures(contents: &[Value]) -> Result<(), String> {
    let current = contents
        .iter()
        .rposition(|c| c["role"] == "user" && count_parts(c, "text") > 0)
        .map_or(0, |i| i + 1);
    for (i, content) in contents.iter().enumerate().skip(current) {
        let parts = content["parts"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(first_call) = parts.iter().find(|p| p.get("functionCall").is_some()) else {
            continue;
        };
        let signed = first_call
            .get("thoughtSignature")
            .and_then(Value::as_str)
            .is_some_and(|s| {
                s == SKIP_SIGNATURE
                    || STANDARD
                        .decode(s)
                        .is_ok_and(|b| b.starts_with(SIGNATURE_PREFIX))
            });
        if !signed {
            let name = first_call["functionCall"]["name"]
                .as_str()
                .unwrap_or_default();
            return Err(format!(
                "Unable to submit request because function call `{name}` in the {}. content block is missing a `thought_signature`. Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/thought-signatures",
                i + 1
            ));
        }
    }
    Ok(())
}

fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_schema(schema: &Value, at: &str) -> Result<(), String> {
    let s = object(schema, at)?;
    if let Some(m) = unknown_fields(s, SCHEMA_FIELDS, at) {
        return Err(m);
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_schema(v, &format!("{at}.properties[{k}].value"))?;
        }
    }
    if let Some(items) = s.get("items") {
        check_schema(items, &format!("{at}.items"))?;
    }
    Ok(())
}

/// Returns the declared function names.
fn check_tools(tools: Option<&Value>) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    let Some(tools) = tools else { return Ok(names) };
    let tools = tools
        .as_array()
        .ok_or_else(|| "Invalid JSON payload received. Expected an array at 'tools'.".to_owned())?;
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        let t = object(tool, &at)?;
        if let Some(m) = unknown_fields(t, TOOL_FIELDS, &at) {
            return Err(m);
        }
        let decls = t
            .get("functionDeclarations")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (j, decl) in decls.iter().enumerate() {
            let at = format!("{at}.function_declarations[{j}]");
            let d = object(decl, &at)?;
            if let Some(m) = unknown_fields(d, DECLARATION_FIELDS, &at) {
                return Err(m);
            }
            let name = d.get("name").and_then(Value::as_str).unwrap_or_default();
            if !valid_function_name(name) {
                return Err(format!(
                    "* GenerateContentRequest.{at}.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.) or dashes (-), with a maximum length of 64.\n"
                ));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!(
                    "* GenerateContentRequest.{at}.name: Duplicate function declaration name `{name}`.\n"
                ));
            }
            names.push(name.to_owned());
            match (d.get("parameters"), d.get("parametersJsonSchema")) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "* GenerateContentRequest.{at}: `parameters` and `parameters_json_schema` are mutually exclusive.\n"
                    ));
                }
                (Some(schema), None) => check_schema(schema, &format!("{at}.parameters"))?,
                (None, Some(schema)) => {
                    if schema.get("type").and_then(Value::as_str) != Some("object") {
                        return Err(format!(
                            "* GenerateContentRequest.{at}.parameters_json_schema: the schema must describe an object (\"type\": \"object\").\n"
                        ));
                    }
                }
                (None, None) => {}
            }
        }
    }
    Ok(names)
}

fn check_tool_config(config: Option<&Value>, declared: &[String]) -> Result<(), String> {
    let Some(config) = config else { return Ok(()) };
    let c = object(config, "tool_config")?;
    if let Some(m) = unknown_fields(
        c,
        &["functionCallingConfig", "retrievalConfig"],
        "tool_config",
    ) {
        return Err(m);
    }
    let Some(fc) = c.get("functionCallingConfig") else {
        return Ok(());
    };
    let at = "tool_config.function_calling_config";
    let f = object(fc, at)?;
    if let Some(m) = unknown_fields(
        f,
        &[
            "mode",
            "allowedFunctionNames",
            "streamFunctionCallArguments",
        ],
        at,
    ) {
        return Err(m);
    }
    let mode = f
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("MODE_UNSPECIFIED");
    if !["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"].contains(&mode) {
        return Err(format!(
            "Invalid value at '{at}.mode' (type.googleapis.com/google.cloud.aiplatform.v1.FunctionCallingConfig.Mode), \"{mode}\""
        ));
    }
    if let Some(names) = f.get("allowedFunctionNames").and_then(Value::as_array) {
        if mode != "ANY" && mode != "VALIDATED" {
            return Err(format!(
                "* GenerateContentRequest.{at}.allowed_function_names: allowed_function_names can only be set when mode is ANY or VALIDATED.\n"
            ));
        }
        if let Some(unknown) = names
            .iter()
            .filter_map(Value::as_str)
            .find(|n| !declared.iter().any(|d| d == n))
        {
            return Err(format!(
                "* GenerateContentRequest.{at}.allowed_function_names: function `{unknown}` is not declared in tools.\n"
            ));
        }
    }
    Ok(())
}

fn check_generation_config(config: Option<&Value>) -> Result<(), String> {
    let Some(config) = config else { return Ok(()) };
    let at = "generation_config";
    let g = object(config, at)?;
    if let Some(m) = unknown_fields(g, GENERATION_FIELDS, at) {
        return Err(m);
    }
    let mime = g
        .get("responseMimeType")
        .and_then(Value::as_str)
        .unwrap_or("text/plain");
    if !["text/plain", "application/json", "text/x.enum"].contains(&mime) {
        return Err(format!(
            "Unable to submit request because it has a mimeType parameter with value {mime}, which is not supported. Update the mimeType and try again. {LEARN_MORE}"
        ));
    }
    if g.contains_key("responseSchema") && g.contains_key("responseJsonSchema") {
        return Err("* GenerateContentRequest.generation_config: `response_schema` and `response_json_schema` are mutually exclusive.\n".to_owned());
    }
    if (g.contains_key("responseSchema") || g.contains_key("responseJsonSchema"))
        && mime != "application/json"
    {
        return Err("Unable to submit request because setting a response schema requires response_mime_type application/json. Update the mimeType and try again.".to_owned());
    }
    if let Some(schema) = g.get("responseSchema") {
        check_schema(schema, "generation_config.response_schema")?;
    }
    if let Some(seed) = g.get("seed")
        && seed.as_i64().is_none_or(|s| i32::try_from(s).is_err())
    {
        return Err(format!(
            "Invalid value at 'generation_config.seed' (TYPE_INT32), {seed}"
        ));
    }
    if let Some(max) = g.get("maxOutputTokens")
        && max.as_i64().is_none_or(|m| m < 1)
    {
        return Err(format!(
            "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), {max}"
        ));
    }
    if let Some(t) = g.get("temperature").and_then(Value::as_f64)
        && !(0.0..=2.0).contains(&t)
    {
        return Err(format!(
            "Unable to submit request because it has a temperature value of {t} but the supported range is from 0 (inclusive) to 2.0001 (exclusive). Update the value and try again."
        ));
    }
    if let Some(stops) = g.get("stopSequences")
        && stops
            .as_array()
            .is_none_or(|s| s.len() > 5 || s.iter().any(|x| !x.is_string()))
    {
        return Err("Unable to submit request because it has more than 5 stop sequences or a stop sequence that is not a string.".to_owned());
    }
    Ok(())
}

const TASK_TYPES: &[&str] = &[
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
];

pub(super) fn validate_predict(body: &Value, model: &str) -> Option<String> {
    check_predict(body, model).err()
}

fn check_predict(body: &Value, model: &str) -> Result<(), String> {
    let obj = object(body, "")?;
    if let Some(m) = unknown_fields(obj, &["instances", "parameters"], "") {
        return Err(m);
    }
    let instances = match obj.get("instances") {
        Some(Value::Array(i)) if !i.is_empty() => i,
        _ => return Err("Unable to submit request because it has no instances. Add at least one instance and try again.".to_owned()),
    };
    if instances.len() > 250 {
        return Err(format!(
            "Unable to submit request because it has {} instances but the model supports up to 250. Reduce the number of instances and try again.",
            instances.len()
        ));
    }
    if model.starts_with("gemini-embedding") && instances.len() > 1 {
        return Err(format!(
            "Unable to submit request because {model} supports only one instance per request. Send one text per request and try again."
        ));
    }
    for (i, instance) in instances.iter().enumerate() {
        let at = format!("instances[{i}]");
        let inst = object(instance, &at)?;
        if let Some(m) = unknown_fields(inst, &["content", "task_type", "title", "mimeType"], &at) {
            return Err(m);
        }
        if !inst.get("content").is_some_and(Value::is_string) {
            return Err(format!(
                "Unable to submit request because {at} has no content. Add the text to embed and try again."
            ));
        }
        if let Some(task) = inst.get("task_type")
            && !task.as_str().is_some_and(|t| TASK_TYPES.contains(&t))
        {
            return Err(format!(
                "Unable to submit request because {at} has an unsupported task_type {task}."
            ));
        }
    }
    if let Some(params) = obj.get("parameters") {
        let p = object(params, "parameters")?;
        if let Some(m) = unknown_fields(p, &["autoTruncate", "outputDimensionality"], "parameters")
        {
            return Err(m);
        }
        if let Some(d) = p.get("outputDimensionality")
            && d.as_u64().is_none_or(|d| d == 0 || d > 3072)
        {
            return Err(format!(
                "Unable to submit request because outputDimensionality {d} is out of range (1 to 3072)."
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn validation_rejects_what_the_api_rejects() {
        let ok = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        assert_eq!(validate_generate(&ok, "gemini-2.0-flash"), None);
        let snake = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generation_config": {}});
        assert!(
            validate_generate(&snake, "m")
                .unwrap()
                .contains("Unknown name \"generation_config\"")
        );
        let twice = json!({"contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "user", "parts": [{"text": "b"}]}]});
        assert!(
            validate_generate(&twice, "m")
                .unwrap()
                .contains("alternate")
        );
        let id = json!({"contents": [
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}, "id": "x"}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
        ]});
        assert!(
            validate_generate(&id, "m")
                .unwrap()
                .contains("Unknown name \"id\"")
        );
        let missing = json!({"contents": [
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}, {"functionCall": {"name": "g", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
        ]});
        assert!(
            validate_generate(&missing, "m")
                .unwrap()
                .contains("number of function response parts")
        );
        let unsigned = json!({"contents": [
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
        ]});
        assert_eq!(validate_generate(&unsigned, "gemini-2.0-flash"), None);
        assert!(
            validate_generate(&unsigned, "gemini-3-pro-preview")
                .unwrap()
                .contains("thought_signature")
        );
        let schema_in_parameters = json!({
            "contents": [{"role": "user", "parts": [{"text": "a"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "const": 1}}]}],
        });
        assert!(
            validate_generate(&schema_in_parameters, "m")
                .unwrap()
                .contains("Unknown name \"const\"")
        );
    }
}

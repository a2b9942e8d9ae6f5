//! Structured answers: ask for JSON matching a schema (with the provider's structured-output
//! mode where it has one), validate the answer against the schema, and give the model one
//! chance to repair an invalid answer before reporting a clear error.

use atlasai_core::{ChatRequest, ChatResponse, Message, ProviderErrorKind, ResponseFormat};
use serde_json::Value;

use super::budget::truncate;
use super::{AiError, AiSession};

/// A validated JSON answer and the token usage of every call it took.
#[derive(Debug, Clone)]
pub struct JsonAnswer {
    /// The answer, valid against the schema.
    pub value: Value,
    /// Calls made (1, or 2 with a repair).
    pub calls: u32,
    /// Prompt and completion tokens over all calls.
    pub usage: atlasai_core::Usage,
}

/// A check beyond the schema (evidence ids that exist, say); its error is shown to the model
/// in the repair request like a schema violation.
pub type ExtraCheck<'a> = &'a (dyn Fn(&Value) -> Result<(), String> + Send + Sync);

/// Tokens of an invalid answer quoted back in the repair request; the rest is cut.
const REPAIR_ECHO_TOKENS: u32 = 300;

/// Tokens a feature should keep free in its prompt for the repair request (the quoted answer
/// and the instructions), so a repair never exceeds the context window.
pub const REPAIR_RESERVE_TOKENS: u32 = REPAIR_ECHO_TOKENS + 120;

/// Asks for JSON matching `schema` and validates it (and `extra`, when given); one repair
/// attempt on invalid output. The request's `max_tokens` defaults to the session budget's
/// answer reserve.
pub async fn complete_json(
    session: &AiSession,
    mut request: ChatRequest,
    name: &str,
    schema: &Value,
    extra: Option<ExtraCheck<'_>>,
) -> Result<JsonAnswer, AiError> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| session.invalid_output(format!("internal schema {name} is invalid: {e}")))?;
    let budget = session.budget();
    request.max_tokens.get_or_insert(budget.output);
    request.response_format = Some(ResponseFormat::JsonSchema {
        name: name.to_owned(),
        schema: schema.clone(),
        // Strict mode restricts the schema language differently per provider; we validate
        // ourselves instead.
        strict: None,
        description: None,
    });
    let mut usage = atlasai_core::Usage::default();
    let mut calls = 0u32;
    let first = send(session, &mut request, schema, &mut calls, &mut usage).await?;
    let text = first.content.clone().unwrap_or_default();
    let problems = match check(&validator, extra, &text) {
        Ok(value) => {
            return Ok(JsonAnswer {
                value,
                calls,
                usage,
            });
        }
        Err(problems) => problems,
    };
    tracing::info!(
        tenant = %session.tenant(),
        schema = name,
        "model answer did not match the schema; asking once for a repair: {problems}"
    );
    request
        .messages
        .push(Message::assistant(truncate(&text, REPAIR_ECHO_TOKENS)));
    request.messages.push(Message::user(format!(
        "Your answer is not valid: {problems}. Reply again with only the corrected JSON \
         object, matching the schema exactly, and nothing else."
    )));
    if !budget.fits(&request) {
        // The prompt left no room to quote the answer back; the reasons alone must do.
        let at = request.messages.len() - 2;
        request.messages[at] = Message::assistant("[previous answer omitted]");
        if !budget.fits(&request) {
            return Err(session.invalid_output(format!(
                "the answer did not match the {name} schema ({problems}), and the model's context window has no room for a repair request"
            )));
        }
    }
    let second = send(session, &mut request, schema, &mut calls, &mut usage).await?;
    let text = second.content.unwrap_or_default();
    match check(&validator, extra, &text) {
        Ok(value) => Ok(JsonAnswer {
            value,
            calls,
            usage,
        }),
        Err(problems) => Err(session.invalid_output(format!(
            "the answer did not match the {name} schema after one repair attempt: {problems}"
        ))),
    }
}

/// Validates a text answer against `schema` (and `extra`) without calling the model: for
/// answers that were asked for in the prompt and may already be valid.
pub fn validate(
    schema: &Value,
    extra: Option<ExtraCheck<'_>>,
    text: &str,
) -> Result<Value, String> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("internal schema is invalid: {e}"))?;
    check(&validator, extra, text)
}

/// Sends the request; when the provider rejects structured output itself (older vLLM and
/// llama.cpp servers reject `json_schema`), falls back to plain JSON mode with the schema in
/// the prompt, which every compatible server understands.
async fn send(
    session: &AiSession,
    request: &mut ChatRequest,
    schema: &Value,
    calls: &mut u32,
    usage: &mut atlasai_core::Usage,
) -> Result<ChatResponse, AiError> {
    *calls += 1;
    let response = match session.chat_raw(request).await {
        Ok(r) => r,
        Err(e)
            if matches!(
                request.response_format,
                Some(ResponseFormat::JsonSchema { .. })
            ) && rejects_structured_output(&e) =>
        {
            tracing::info!(tenant = %session.tenant(), "provider rejected json_schema output; retrying in JSON mode with the schema in the prompt");
            request.response_format = Some(ResponseFormat::JsonObject);
            request.messages.insert(
                0,
                Message::system(format!(
                    "Answer with a single JSON object that matches this JSON Schema, and nothing else:\n{schema}"
                )),
            );
            *calls += 1;
            session.chat(request).await?
        }
        Err(e) => return Err(session.error(&e)),
    };
    if let Some(u) = response.usage {
        usage.prompt_tokens += u.prompt_tokens;
        usage.completion_tokens += u.completion_tokens;
        usage.total_tokens += u.total_tokens;
    }
    Ok(response)
}

fn rejects_structured_output(e: &atlasai_providers::ProviderError) -> bool {
    let m = e.message.to_ascii_lowercase();
    e.kind == ProviderErrorKind::BadRequest
        && (m.contains("response_format")
            || m.contains("json_schema")
            || m.contains("structured output"))
}

/// Parses and validates an answer; the error lists what is wrong, briefly.
fn check(
    validator: &jsonschema::Validator,
    extra: Option<ExtraCheck<'_>>,
    text: &str,
) -> Result<Value, String> {
    let json = extract_json(text).ok_or_else(|| {
        let shown: String = text.chars().take(120).collect();
        format!("it is not a JSON object (it starts with {shown:?})")
    })?;
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("it is not valid JSON: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    if let Some(extra) = extra {
        extra(&value)?;
    }
    Ok(value)
}

/// The JSON object in an answer: the whole text, or the first `{` to the last `}` (models
/// sometimes wrap JSON in a Markdown fence or a sentence).
fn extract_json(text: &str) -> Option<&str> {
    let t = text.trim();
    if t.starts_with('{') && t.ends_with('}') {
        return Some(t);
    }
    let start = t.find('{')?;
    let end = t.rfind('}')?;
    (end > start).then(|| &t[start..=end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_extracted_and_validated() {
        let schema =
            json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}});
        let v = jsonschema::validator_for(&schema).unwrap();
        assert_eq!(check(&v, None, "{\"a\": 1}").unwrap(), json!({"a": 1}));
        assert_eq!(
            check(&v, None, "```json\n{\"a\": 2}\n```").unwrap(),
            json!({"a": 2})
        );
        let err = check(&v, None, "{\"a\": \"x\"}").unwrap_err();
        assert!(err.contains("/a"), "{err}");
        let err = check(&v, None, "{}").unwrap_err();
        assert!(err.contains("\"a\" is a required property"), "{err}");
        assert!(
            check(&v, None, "I cannot answer that")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(
            check(&v, None, "{not json}")
                .unwrap_err()
                .contains("not valid JSON")
        );
    }
}

//! A fake OpenAI and Azure OpenAI server.
//!
//! Shapes follow OpenAI's OpenAPI specification (`CreateChatCompletionResponse`,
//! `CreateChatCompletionStreamResponse` with `stream_options.include_usage`,
//! `CreateEmbeddingResponse`, `ListModelsResponse`, `ErrorResponse`) and the error bodies the
//! API returns for 401, 404, 429 and 5xx. Azure's deployment routes
//! (`/openai/deployments/{deployment}/…?api-version=`) with the `api-key` header and its own
//! error codes are served when the fake is started with [`Flavor::Azure`].

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::{Value, json};

use crate::script::{FakeReply, RetryAfter, Step, embedding_for};
use crate::server::{Fake, FakeState, Recorded, respond};

/// Which service the fake imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// api.openai.com and OpenAI-compatible servers: `/v1/...`, `Authorization: Bearer`.
    OpenAi,
    /// Azure OpenAI: deployment routes with `api-version` and the `api-key` header, plus the
    /// v1 routes under `/openai/v1`.
    Azure,
}

/// Starts a fake OpenAI. `key` is the accepted bearer token (`None` accepts anything, like a
/// local vLLM without `--api-key`); `model` is the model the fake serves (empty: any).
pub async fn start(key: Option<&str>, model: &str) -> Fake {
    Fake::start(handle_openai, key.map(str::to_owned), model).await
}

/// Starts a fake Azure OpenAI resource with one deployment named `deployment`.
pub async fn start_azure(key: &str, deployment: &str) -> Fake {
    Fake::start(handle_azure, Some(key.to_owned()), deployment).await
}

fn handle_openai(
    state: Arc<FakeState>,
    req: Recorded,
) -> futures_util::future::BoxFuture<'static, Response> {
    handle(state, req, Flavor::OpenAi).boxed()
}

fn handle_azure(
    state: Arc<FakeState>,
    req: Recorded,
) -> futures_util::future::BoxFuture<'static, Response> {
    handle(state, req, Flavor::Azure).boxed()
}

enum Op {
    Chat,
    Embeddings,
    Models,
}

async fn handle(state: Arc<FakeState>, req: Recorded, flavor: Flavor) -> Response {
    let path = req.path.trim_end_matches('/');
    let (op, deployment) = match route(path, flavor) {
        Some(r) => r,
        None => return not_found_route(flavor, path),
    };
    if flavor == Flavor::Azure && deployment.is_some() && !has_api_version(&req) {
        return respond::json(
            404,
            &json!({"error": {"code": "404", "message": "Resource not found"}}),
        );
    }
    if let Some(resp) = check_auth(&state, &req, flavor) {
        return resp;
    }
    if matches!(op, Op::Models) {
        return respond::json(200, &models_body(&state));
    }
    let body = req.json();
    let requested_model = match &deployment {
        Some(d) => d.clone(),
        None => body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    };
    if !state.model.is_empty() && requested_model != state.model {
        return model_not_found(flavor, &requested_model);
    }
    if matches!(op, Op::Chat)
        && let Some(resp) = validate_chat(&body)
    {
        return resp;
    }
    let mut step = state.next_step_for(&body);
    if let Step::Stall(d) = step {
        tokio::time::sleep(d).await;
        step = Step::Reply(state.default_reply());
    }
    match op {
        Op::Chat => chat(&body, &requested_model, step, flavor),
        Op::Embeddings => embeddings(&body, &requested_model, step, flavor),
        Op::Models => respond::json(200, &models_body(&state)),
    }
}

fn route(path: &str, flavor: Flavor) -> Option<(Op, Option<String>)> {
    let op = |tail: &str| match tail {
        "chat/completions" => Some(Op::Chat),
        "embeddings" => Some(Op::Embeddings),
        "models" => Some(Op::Models),
        _ => None,
    };
    if let Some(tail) = path.strip_prefix("/v1/") {
        return op(tail).map(|o| (o, None));
    }
    if flavor == Flavor::Azure {
        if let Some(tail) = path.strip_prefix("/openai/v1/") {
            return op(tail).map(|o| (o, None));
        }
        if path == "/openai/models" {
            return Some((Op::Models, None));
        }
        if let Some(rest) = path.strip_prefix("/openai/deployments/") {
            let (dep, tail) = rest.split_once('/')?;
            let dep = percent_decode(dep);
            return op(tail).map(|o| (o, Some(dep)));
        }
    }
    None
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn has_api_version(req: &Recorded) -> bool {
    req.query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .any(|kv| kv.starts_with("api-version=") && kv.len() > "api-version=".len())
}

fn check_auth(state: &FakeState, req: &Recorded, flavor: Flavor) -> Option<Response> {
    let expected = state.expected_key.as_deref()?;
    let presented = match flavor {
        Flavor::Azure => req.header("api-key").map(str::to_owned),
        Flavor::OpenAi => req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned),
    };
    if presented.as_deref() == Some(expected) {
        return None;
    }
    Some(match flavor {
        Flavor::Azure => respond::json(
            401,
            &json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}),
        ),
        // The real API masks the key it echoes; this fake echoes it whole on purpose, so tests
        // prove that we scrub provider messages before showing or logging them.
        Flavor::OpenAi => {
            let shown = presented.unwrap_or_default();
            if shown.is_empty() {
                respond::json(
                    401,
                    &json!({"error": {"message": "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", "type": "invalid_request_error", "param": null, "code": null}}),
                )
            } else {
                respond::json(
                    401,
                    &json!({"error": {"message": format!("Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys."), "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
                )
            }
        }
    })
}

fn not_found_route(flavor: Flavor, path: &str) -> Response {
    match flavor {
        Flavor::Azure => respond::json(
            404,
            &json!({"error": {"code": "404", "message": "Resource not found"}}),
        ),
        Flavor::OpenAi => respond::json(
            404,
            &json!({"error": {"message": format!("Invalid URL (POST {path})"), "type": "invalid_request_error", "param": null, "code": null}}),
        ),
    }
}

fn model_not_found(flavor: Flavor, model: &str) -> Response {
    match flavor {
        Flavor::Azure => respond::json(
            404,
            &json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}),
        ),
        Flavor::OpenAi => respond::json(
            404,
            &json!({"error": {"message": format!("The model `{model}` does not exist or you do not have access to it."), "type": "invalid_request_error", "param": null, "code": "model_not_found"}}),
        ),
    }
}

/// Rejects requests the real API rejects, so malformed translations fail loudly in tests.
fn validate_chat(body: &Value) -> Option<Response> {
    let bad = |msg: &str, param: &str| {
        Some(respond::json(
            400,
            &json!({"error": {"message": msg, "type": "invalid_request_error", "param": param, "code": null}}),
        ))
    };
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return bad("Missing required parameter: 'messages'.", "messages");
    };
    if messages.is_empty() {
        return bad(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
        );
    }
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if !["system", "developer", "user", "assistant", "tool"].contains(&role) {
            return bad(
                &format!(
                    "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
                ),
                &format!("messages[{i}].role"),
            );
        }
        if role == "tool" && m.get("tool_call_id").and_then(Value::as_str).is_none() {
            return bad(
                "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
                &format!("messages[{i}].tool_call_id"),
            );
        }
    }
    if let Some(format) = body.get("response_format") {
        let kind = format
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind == "json_schema" {
            let js = format.get("json_schema");
            if js
                .and_then(|j| j.get("name"))
                .and_then(Value::as_str)
                .is_none()
            {
                return bad(
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    "response_format.json_schema.name",
                );
            }
        } else if !["text", "json_object"].contains(&kind) {
            return bad(
                &format!(
                    "Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'."
                ),
                "response_format.type",
            );
        }
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        for (i, t) in tools.iter().enumerate() {
            if t.pointer("/function/name")
                .and_then(Value::as_str)
                .is_none()
            {
                return bad(
                    "Missing required parameter: 'tools[0].function.name'.",
                    &format!("tools[{i}].function.name"),
                );
            }
        }
    }
    None
}

fn error_for_status(flavor: Flavor, status: u16, retry_after: Option<RetryAfter>) -> Response {
    let body = match (flavor, status) {
        (Flavor::Azure, 429) => {
            json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second."}})
        }
        (_, 429) => {
            json!({"error": {"message": "Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
        }
        (_, 401) => {
            json!({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
        }
        (_, 500) => {
            json!({"error": {"message": "The server had an error while processing your request. Sorry about that!", "type": "server_error", "param": null, "code": null}})
        }
        (_, 503) => {
            json!({"error": {"message": "The engine is currently overloaded, please try again later.", "type": "server_error", "param": null, "code": null}})
        }
        (_, s) => {
            json!({"error": {"message": format!("fake upstream error {s}"), "type": "server_error", "param": null, "code": null}})
        }
    };
    let mut resp = respond::with_retry_after(respond::json(status, &body), retry_after);
    if status == 429 {
        let h = resp.headers_mut();
        h.insert(
            "x-ratelimit-limit-requests",
            http::HeaderValue::from_static("3"),
        );
        h.insert(
            "x-ratelimit-remaining-requests",
            http::HeaderValue::from_static("0"),
        );
        h.insert(
            "x-ratelimit-reset-requests",
            http::HeaderValue::from_static("20s"),
        );
    }
    resp
}

fn chat(body: &Value, model: &str, step: Step, flavor: Flavor) -> Response {
    let streaming = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match step {
        Step::Reply(reply) if streaming => stream(model, &reply, include_usage, true, false),
        Step::Reply(reply) => respond::json(200, &completion(model, &reply)),
        Step::Fail {
            status,
            retry_after,
        } => error_for_status(flavor, status, retry_after),
        Step::ContextTooLong => respond::json(
            400,
            &json!({"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens. Please reduce the length of the messages.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        ),
        // vLLM's answer when started without --enable-auto-tool-choice.
        Step::ToolsUnsupported => respond::json(
            400,
            &json!({"object": "error", "message": "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set", "type": "BadRequestError", "param": null, "code": 400}),
        ),
        Step::Malformed if streaming => respond::stream(
            200,
            "text/event-stream",
            vec![Bytes::from_static(
                b"data: {\"id\": \"chatcmpl-1\", \"choices\": [{\"delta\": \n\n",
            )],
            false,
        ),
        Step::Malformed => respond::raw(
            200,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        Step::Truncated(reply) if streaming => stream(model, &reply, include_usage, false, false),
        Step::Truncated(reply) => {
            let full = completion(model, &reply).to_string();
            respond::raw(200, "application/json", full[..full.len() / 2].to_owned())
        }
        Step::Reset(reply) => stream(model, &reply, include_usage, false, true),
        Step::Stall(_) => respond::json(200, &completion(model, &FakeReply::text("ok"))),
    }
}

fn completion(model: &str, reply: &FakeReply) -> Value {
    let mut message = json!({"role": "assistant", "content": reply.text, "refusal": null});
    let finish = if reply.tool_calls.is_empty() {
        "stop"
    } else {
        message["tool_calls"] = reply
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments.to_string()}})
            })
            .collect();
        "tool_calls"
    };
    json!({
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": 1_731_000_000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    })
}

fn stream(
    model: &str,
    reply: &FakeReply,
    include_usage: bool,
    done: bool,
    reset: bool,
) -> Response {
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({
            "id": "chatcmpl-fake123",
            "object": "chat.completion.chunk",
            "created": 1_731_000_000,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    )];
    for piece in reply.text_pieces() {
        chunks.push(chunk(json!({"content": piece}), None));
    }
    for (i, call) in reply.tool_calls.iter().enumerate() {
        chunks.push(chunk(
            json!({"tool_calls": [{"index": i, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}]}),
            None,
        ));
        for piece in call.argument_pieces() {
            chunks.push(chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                None,
            ));
        }
    }
    let finish = if reply.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    chunks.push(chunk(json!({}), Some(finish)));
    if include_usage {
        chunks.push(json!({
            "id": "chatcmpl-fake123",
            "object": "chat.completion.chunk",
            "created": 1_731_000_000,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
        }));
    }
    let mut frames: Vec<Bytes> = chunks
        .iter()
        .map(|c| Bytes::from(format!("data: {c}\n\n")))
        .collect();
    if reset {
        frames.truncate(frames.len() / 2);
    } else if done {
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    } else {
        frames.truncate(frames.len().saturating_sub(1).max(1));
    }
    respond::stream(200, "text/event-stream; charset=utf-8", frames, reset)
}

fn embeddings(body: &Value, model: &str, step: Step, flavor: Flavor) -> Response {
    match step {
        Step::Reply(_) => {}
        Step::Fail {
            status,
            retry_after,
        } => return error_for_status(flavor, status, retry_after),
        Step::Malformed => return respond::raw(200, "text/html", "<html>oops</html>"),
        Step::Truncated(_) | Step::Reset(_) => {
            return respond::raw(
                200,
                "application/json",
                "{\"object\": \"list\", \"data\": [",
            );
        }
        Step::ContextTooLong => {
            return respond::json(
                400,
                &json!({"error": {"message": "This model's maximum context length is 8192 tokens, however you requested 9000 tokens (9000 in your prompt; 0 for the completion). Please reduce your prompt; or completion length.", "type": "invalid_request_error", "param": null, "code": null}}),
            );
        }
        Step::ToolsUnsupported | Step::Stall(_) => {}
    }
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => {
            return respond::json(
                400,
                &json!({"error": {"message": "'input' is a required property", "type": "invalid_request_error", "param": null, "code": null}}),
            );
        }
    };
    let dims = body.get("dimensions").and_then(Value::as_u64).unwrap_or(8) as usize;
    let tokens: usize = inputs.iter().map(|s| s.split_whitespace().count()).sum();
    // Reverse order on purpose: clients must sort by `index`.
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, s)| json!({"object": "embedding", "index": i, "embedding": embedding_for(s, dims)}))
        .collect();
    respond::json(
        200,
        &json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

fn models_body(state: &FakeState) -> Value {
    let mut ids = vec![
        "gpt-4o-mini".to_owned(),
        "gpt-4o".to_owned(),
        "text-embedding-3-small".to_owned(),
    ];
    if !state.model.is_empty() && !ids.contains(&state.model) {
        ids.insert(0, state.model.clone());
    }
    json!({
        "object": "list",
        "data": ids.iter().map(|id| json!({"id": id, "object": "model", "created": 1_721_172_741, "owned_by": "system"})).collect::<Vec<_>>(),
    })
}

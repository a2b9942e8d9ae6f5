//! A fake AWS Bedrock: the runtime API (Converse, ConverseStream, InvokeModel with Titan and
//! Cohere embedding models), the control plane's ListFoundationModels, and an ECS
//! container-credentials endpoint, all on one port.
//!
//! Shapes and error codes follow the Bedrock Runtime and Bedrock service models (botocore
//! `bedrock-runtime/2023-09-30/service-2.json`, `bedrock/2023-04-20/service-2.json`) and the
//! embedding model pages of the Bedrock user guide. Error responses carry the code in
//! `x-amzn-ErrorType` (with the Coral `:http://internal.amazon.com/...` suffix real responses
//! have) and `{"message": ...}` in the body.
//!
//! Authentication: every API request must carry a valid SigV4 signature for service
//! `bedrock` in the fake's region, checked by an independent verifier ([`sigv4`]) against the
//! access key, secret and session token given to [`start`].
//!
//! Streams: ConverseStream answers are AWS event-stream frames encoded by hand
//! ([`eventstream`]), each frame sent in two pieces so the client's decoder sees split
//! preludes and bodies. Bedrock's end marker is the `metadata` event after `messageStop`.
//!
//! Routes:
//! - `POST /model/{modelId}/converse`, `POST /model/{modelId}/converse-stream`: the chat model
//!   given to [`start`] (compared after percent-decoding the path segment, so an ARN must
//!   arrive encoded as one segment).
//! - `POST /model/{modelId}/invoke`: any Titan (`amazon.titan-embed-*`) or Cohere
//!   (`cohere.embed-*`) embedding model, also behind an ARN or a geographic inference profile.
//! - `GET /foundation-models`: a short model list.
//! - `GET /ecs-credentials` ([`ECS_CREDENTIALS_PATH`]), unsigned: the accepted keys as the ECS
//!   agent returns them (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`), for
//!   `AWS_CONTAINER_CREDENTIALS_FULL_URI=<base_url>/ecs-credentials` (see
//!   [`ecs_credentials_url`]); [`credential_fetches`] counts the calls. It needs the fake to
//!   have been started with a session token, since ECS credentials always have one.
//!
//! Every model request (chat, stream, each embedding call) takes the next scripted step. In a
//! stream, `Step::Fail { status: 424, .. }` answers 200 and fails the stream at once with a
//! `modelStreamErrorException` event, as Bedrock does when the model fails; other statuses are
//! HTTP errors.

mod eventstream;
mod sigv4;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::response::Response;
use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderValue, Method};
use serde_json::{Value, json};

use crate::script::{FakeReply, RetryAfter, Step, embedding_for};
use crate::server::{Fake, FakeState, Recorded, respond};

/// The path of the ECS container-credentials endpoint.
pub const ECS_CREDENTIALS_PATH: &str = "/ecs-credentials";

/// Starts a fake Bedrock in `region` that accepts requests signed with these credentials and
/// serves `model` for Converse (a model id, inference-profile id or ARN).
pub async fn start(
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    region: &str,
    model: &str,
) -> Fake {
    // The shared server keeps one credential string per fake; this dialect needs four values.
    let config = json!({
        "access_key_id": access_key_id,
        "secret": secret,
        "session_token": session_token,
        "region": region,
    });
    Fake::start(handle_boxed, Some(config.to_string()), model).await
}

/// The URL to put in `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
pub fn ecs_credentials_url(fake: &Fake) -> String {
    format!("{}{ECS_CREDENTIALS_PATH}", fake.base_url)
}

/// How many times the ECS credentials endpoint was called.
pub fn credential_fetches(fake: &Fake) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == Method::GET && r.path == ECS_CREDENTIALS_PATH)
        .count()
}

fn handle_boxed(
    state: Arc<FakeState>,
    req: Recorded,
) -> futures_util::future::BoxFuture<'static, Response> {
    handle(state, req).boxed()
}

struct Config {
    access_key_id: String,
    secret: String,
    session_token: Option<String>,
    region: String,
}

impl Config {
    fn of(state: &FakeState) -> Config {
        let v: Value = state
            .expected_key
            .as_deref()
            .and_then(|k| serde_json::from_str(k).ok())
            .unwrap_or(Value::Null);
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Config {
            access_key_id: field("access_key_id").unwrap_or_default(),
            secret: field("secret").unwrap_or_default(),
            session_token: field("session_token"),
            region: field("region").unwrap_or_default(),
        }
    }
}

enum Op {
    Converse,
    ConverseStream,
    Invoke,
}

async fn handle(state: Arc<FakeState>, req: Recorded) -> Response {
    let config = Config::of(&state);
    if req.method == Method::GET && req.path == ECS_CREDENTIALS_PATH {
        return ecs_credentials(&config);
    }
    let expected = sigv4::Expected {
        access_key_id: &config.access_key_id,
        secret: &config.secret,
        session_token: config.session_token.as_deref(),
        region: &config.region,
    };
    if let Err(r) = sigv4::verify(&expected, &req) {
        return aws_error(r.status, r.code, &r.message);
    }
    let segments: Vec<&str> = req.path.split('/').collect();
    let (op, model) = match (&req.method, segments.as_slice()) {
        (&Method::GET, ["", "foundation-models"]) => {
            return respond_json(200, &models_body(&state.model));
        }
        (&Method::POST, ["", "model", id, op]) => {
            let op = match *op {
                "converse" => Op::Converse,
                "converse-stream" => Op::ConverseStream,
                "invoke" => Op::Invoke,
                _ => return unknown_operation(),
            };
            (op, sigv4::percent_decode(id))
        }
        _ => return unknown_operation(),
    };
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            return aws_error(
                400,
                "SerializationException",
                "Unable to parse the request body as JSON.",
            );
        }
    };
    if let Some(resp) = check_model(&op, &model, &state.model) {
        return resp;
    }
    let family = Embedder::of(&model);
    let rejected = match (&op, family) {
        (Op::Invoke, Some(family)) => validate_embedding(family, &body),
        (Op::Invoke, None) => None,
        (_, _) => validate_converse(&body),
    };
    if let Some(resp) = rejected {
        return resp;
    }
    let mut step = state.next_step_for(&body);
    if let Step::Stall(d) = step {
        tokio::time::sleep(d).await;
        step = Step::Reply(state.default_reply());
    }
    match (op, family) {
        (Op::Converse, _) => converse(step),
        (Op::ConverseStream, _) => converse_stream(step),
        (Op::Invoke, Some(family)) => embeddings(family, &body, step),
        (Op::Invoke, None) => aws_error(
            400,
            "ValidationException",
            "The provided model identifier is invalid.",
        ),
    }
}

/// `us.anthropic.claude-…`, `arn:…:inference-profile/eu.cohere.embed-v4:0` and
/// `arn:…:foundation-model/amazon.titan-…` all name the model after the last `/`, possibly
/// behind a geographic prefix.
fn base_model(id: &str) -> &str {
    let id = id.rsplit('/').next().unwrap_or(id);
    for prefix in [
        "us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.", "global.",
    ] {
        if let Some(rest) = id.strip_prefix(prefix) {
            return rest;
        }
    }
    id
}

fn check_model(op: &Op, model: &str, served: &str) -> Option<Response> {
    let embedder = Embedder::of(model).is_some();
    match op {
        Op::Converse | Op::ConverseStream if model == served => None,
        Op::Converse | Op::ConverseStream if embedder => Some(aws_error(
            400,
            "ValidationException",
            "This action doesn't support the model that you provided. Try again with a supported text or chat model.",
        )),
        Op::Invoke if embedder => None,
        Op::Invoke if model == served => Some(aws_error(
            400,
            "ValidationException",
            "Malformed input request: #: required key [messages] not found, please reformat your input and try again.",
        )),
        _ => Some(aws_error(
            400,
            "ValidationException",
            "The provided model identifier is invalid.",
        )),
    }
}

fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-fa4e-4b3d-9c1a-{n:012x}",
        n.wrapping_mul(2_654_435_761) as u32
    )
}

fn with_request_id(mut resp: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

fn respond_json(status: u16, body: &Value) -> Response {
    with_request_id(respond::json(status, body))
}

/// An AWS error response as Bedrock's front end writes it.
fn aws_error(status: u16, code: &str, message: &str) -> Response {
    let mut resp = respond_json(status, &json!({ "message": message }));
    let value = format!("{code}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert("x-amzn-ErrorType", v);
    }
    resp
}

fn unknown_operation() -> Response {
    aws_error(404, "UnknownOperationException", "Unknown operation")
}

fn error_for_status(status: u16, retry_after: Option<RetryAfter>) -> Response {
    let resp = match status {
        429 => aws_error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        400 => aws_error(400, "ValidationException", "The request failed validation."),
        401 => aws_error(
            401,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        403 => aws_error(
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        404 => aws_error(
            404,
            "ResourceNotFoundException",
            "Could not resolve the foundation model from the provided model identifier.",
        ),
        408 => aws_error(
            408,
            "ModelTimeoutException",
            "Model has timed out in processing the request. Try your request again.",
        ),
        424 => aws_error(
            424,
            "ModelErrorException",
            "The model encountered an error processing your request.",
        ),
        500 => aws_error(
            500,
            "InternalServerException",
            "The system encountered an unexpected error during processing. Try your request again.",
        ),
        503 => aws_error(
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
        // What a load balancer in front of the service answers: no AWS error code.
        s => respond_json(s, &json!({ "message": format!("fake upstream error {s}") })),
    };
    respond::with_retry_after(resp, retry_after)
}

fn ecs_credentials(config: &Config) -> Response {
    let Some(token) = &config.session_token else {
        return respond::json(
            404,
            &json!({"message": "start the fake with a session token to serve ECS credentials"}),
        );
    };
    let expiration = sigv4::format_rfc3339(sigv4::unix_now() + 3600);
    respond::json(
        200,
        &json!({
            "RoleArn": "arn:aws:iam::123456789012:role/atlasai-task-role",
            "AccessKeyId": config.access_key_id,
            "SecretAccessKey": config.secret,
            "Token": token,
            "Expiration": expiration,
        }),
    )
}

fn models_body(served: &str) -> Value {
    let summary = |id: &str, name: &str, provider: &str, output: &str| {
        json!({
            "modelArn": format!("arn:aws:bedrock:us-east-1::foundation-model/{id}"),
            "modelId": id,
            "modelName": name,
            "providerName": provider,
            "inputModalities": ["TEXT"],
            "outputModalities": [output],
            "responseStreamingSupported": output == "TEXT",
            "customizationsSupported": [],
            "inferenceTypesSupported": ["ON_DEMAND"],
            "modelLifecycle": {"status": "ACTIVE"},
        })
    };
    let mut models = vec![
        summary(
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            "Claude 3.5 Haiku",
            "Anthropic",
            "TEXT",
        ),
        summary("amazon.nova-lite-v1:0", "Nova Lite", "Amazon", "TEXT"),
        summary(
            "amazon.titan-embed-text-v2:0",
            "Titan Text Embeddings V2",
            "Amazon",
            "EMBEDDING",
        ),
        summary(
            "cohere.embed-english-v3",
            "Embed English",
            "Cohere",
            "EMBEDDING",
        ),
    ];
    let base = base_model(served);
    if !served.is_empty() && !models.iter().any(|m| m["modelId"] == base) {
        models.insert(0, summary(base, base, "Fake", "TEXT"));
    }
    json!({ "modelSummaries": models })
}

/// Rejects what Bedrock rejects, in its words, so that translation bugs fail loudly.
fn validate_converse(body: &Value) -> Option<Response> {
    let bad = |msg: &str| Some(aws_error(400, "ValidationException", msg));
    let empty = Vec::new();
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    if messages.first().and_then(|m| m.get("role")) != Some(&json!("user")) {
        return bad(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        );
    }
    let has_tool_config = body.get("toolConfig").is_some();
    let mut previous_role = "";
    let mut previous_tool_uses: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if role != "user" && role != "assistant" {
            return bad(&format!(
                "1 validation error detected: Value '{role}' at 'messages.{}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]",
                i + 1
            ));
        }
        if role == previous_role {
            return bad(
                "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.",
            );
        }
        previous_role = role;
        let content = m.get("content").and_then(Value::as_array).unwrap_or(&empty);
        if content.is_empty() {
            return bad(&format!(
                "The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again."
            ));
        }
        let mut tool_uses = Vec::new();
        let mut tool_results = Vec::new();
        for (j, block) in content.iter().enumerate() {
            let Some(obj) = block.as_object().filter(|o| o.len() == 1) else {
                return bad(&format!(
                    "Exactly one member of the ContentBlock union at messages.{i}.content.{j} must be set."
                ));
            };
            if let Some(text) = obj.get("text") {
                if text.as_str().is_none_or(|t| t.trim().is_empty()) {
                    return bad(&format!(
                        "The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the text field, and try again."
                    ));
                }
            } else if let Some(tool_use) = obj.get("toolUse") {
                if !has_tool_config {
                    return bad(
                        "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
                    );
                }
                if role != "assistant" || !tool_use.get("input").is_some_and(Value::is_object) {
                    return bad(&format!(
                        "The toolUse block at messages.{i}.content.{j} is invalid."
                    ));
                }
                match tool_use.get("toolUseId").and_then(Value::as_str) {
                    Some(id) if valid_tool_use_id(id) => tool_uses.push(id.to_owned()),
                    _ => {
                        return bad(&format!(
                            "1 validation error detected: Value at 'messages.{}.member.content.{}.member.toolUse.toolUseId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.:-]+",
                            i + 1,
                            j + 1
                        ));
                    }
                }
            } else if let Some(result) = obj.get("toolResult") {
                if !has_tool_config {
                    return bad(
                        "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
                    );
                }
                let id = result
                    .get("toolUseId")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let parts = result
                    .get("content")
                    .and_then(Value::as_array)
                    .unwrap_or(&empty);
                if role != "user" || parts.is_empty() {
                    return bad(&format!(
                        "The toolResult block at messages.{i}.content.{j} is invalid."
                    ));
                }
                tool_results.push(id.to_owned());
            } else if let Some(image) = obj.get("image") {
                let format_ok = image
                    .get("format")
                    .and_then(Value::as_str)
                    .is_some_and(|f| ["png", "jpeg", "gif", "webp"].contains(&f));
                if !format_ok || image.get("source").is_none() {
                    return bad(&format!(
                        "The image block at messages.{i}.content.{j} is invalid."
                    ));
                }
            }
        }
        // Tool results answer exactly the calls of the turn before (Anthropic models on
        // Bedrock enforce this pairing).
        if role == "user" && !previous_tool_uses.is_empty() {
            let missing: Vec<&String> = previous_tool_uses
                .iter()
                .filter(|id| !tool_results.contains(id))
                .collect();
            if !missing.is_empty() {
                return bad(&format!(
                    "Expected toolResult blocks at messages.{i}.content for the following Ids: {}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if let Some(stray) = tool_results
            .iter()
            .find(|id| !previous_tool_uses.contains(id))
        {
            return bad(&format!(
                "messages.{i}.content: unexpected toolResult block with toolUseId {stray}: each toolResult must answer a toolUse of the previous assistant turn."
            ));
        }
        previous_tool_uses = tool_uses;
    }
    if let Some(system) = body.get("system") {
        let ok = system.as_array().is_some_and(|blocks| {
            blocks.iter().all(|b| {
                b.get("text")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.trim().is_empty())
            })
        });
        if !ok {
            return bad(
                "The text field in the SystemContentBlock object is blank. Add text to the text field, and try again.",
            );
        }
    }
    if let Some(config) = body.get("inferenceConfig") {
        for field in ["temperature", "topP"] {
            if let Some(v) = config.get(field).and_then(Value::as_f64)
                && !(0.0..=1.0).contains(&v)
            {
                return bad(&format!(
                    "1 validation error detected: Value '{v}' at 'inferenceConfig.{field}' failed to satisfy constraint: Member must have value less than or equal to 1"
                ));
            }
        }
        if config.get("maxTokens").and_then(Value::as_u64) == Some(0) {
            return bad(
                "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1",
            );
        }
    }
    if let Some(config) = body.get("toolConfig")
        && let Some(resp) = validate_tool_config(config)
    {
        return Some(resp);
    }
    if let Some(format) = body.pointer("/outputConfig/textFormat") {
        let schema = format.pointer("/structure/jsonSchema/schema");
        if format.get("type") != Some(&json!("json_schema")) {
            return bad(
                "1 validation error detected: Value at 'outputConfig.textFormat.type' failed to satisfy constraint: Member must satisfy enum value set: [json_schema]",
            );
        }
        let parses = schema
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .is_some_and(|v| v.is_object());
        if !parses {
            return bad(
                "The JSON schema in outputConfig.textFormat.structure.jsonSchema.schema must be a string holding a JSON object.",
            );
        }
    }
    None
}

fn validate_tool_config(config: &Value) -> Option<Response> {
    let bad = |msg: &str| Some(aws_error(400, "ValidationException", msg));
    let tools = config.get("tools").and_then(Value::as_array);
    let Some(tools) = tools.filter(|t| !t.is_empty()) else {
        return bad(
            "1 validation error detected: Value '[]' at 'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1",
        );
    };
    let mut names = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let name = tool
            .pointer("/toolSpec/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return bad(&format!(
                "1 validation error detected: Value '{name}' at 'toolConfig.tools.{}.member.toolSpec.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
                i + 1
            ));
        }
        if !tool
            .pointer("/toolSpec/inputSchema/json")
            .is_some_and(Value::is_object)
        {
            return bad(&format!(
                "The inputSchema of tool {name} must be a JSON object (toolSpec.inputSchema.json)."
            ));
        }
        names.push(name);
    }
    if let Some(choice) = config.get("toolChoice") {
        let obj = choice.as_object().filter(|o| o.len() == 1);
        let Some((kind, value)) = obj.and_then(|o| o.iter().next()) else {
            return bad("Exactly one member of the ToolChoice union must be set.");
        };
        match kind.as_str() {
            "auto" | "any" => {}
            "tool" => {
                let name = value
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !names.contains(&name) {
                    return bad(&format!(
                        "The tool {name} in toolConfig.toolChoice is not in toolConfig.tools."
                    ));
                }
            }
            other => return bad(&format!("Unknown member {other} of the ToolChoice union.")),
        }
    }
    None
}

fn valid_tool_use_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn converse_answer(reply: &FakeReply) -> Value {
    let mut content = Vec::new();
    if let Some(text) = &reply.text {
        content.push(json!({ "text": text }));
    }
    for call in &reply.tool_calls {
        content.push(
            json!({"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments}}),
        );
    }
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason(reply),
        "usage": usage(reply),
        "metrics": {"latencyMs": 321},
    })
}

fn stop_reason(reply: &FakeReply) -> &'static str {
    if reply.tool_calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    }
}

fn usage(reply: &FakeReply) -> Value {
    json!({
        "inputTokens": reply.prompt_tokens,
        "outputTokens": reply.completion_tokens,
        "totalTokens": reply.prompt_tokens + reply.completion_tokens,
    })
}

fn converse(step: Step) -> Response {
    match step {
        Step::Reply(reply) => respond_json(200, &converse_answer(&reply)),
        Step::Fail {
            status,
            retry_after,
        } => error_for_status(status, retry_after),
        Step::ContextTooLong => aws_error(
            400,
            "ValidationException",
            "Input is too long for requested model.",
        ),
        Step::ToolsUnsupported => aws_error(
            400,
            "ValidationException",
            "This model doesn't support tool use.",
        ),
        // What AWS's front end sends when a service answer cannot be serialised.
        Step::Malformed => respond_json(
            200,
            &json!({"Output": {"__type": "com.amazon.coral.service#SerializationException"}, "Version": "1.0"}),
        ),
        Step::Truncated(reply) => {
            let full = converse_answer(&reply).to_string();
            with_request_id(respond::raw(
                200,
                "application/json",
                full[..full.len() / 2].to_owned(),
            ))
        }
        // Half the JSON, then the connection drops.
        Step::Reset(reply) => {
            let full = converse_answer(&reply).to_string();
            let half = Bytes::from(full[..full.len() / 2].to_owned());
            with_request_id(respond::stream(200, "application/json", vec![half], true))
        }
        Step::Stall(_) => respond_json(200, &converse_answer(&FakeReply::text("ok"))),
    }
}

fn converse_stream(step: Step) -> Response {
    match step {
        Step::Reply(reply) => converse_stream_of(&reply, Ending::Complete),
        // ModelStreamErrorException (HTTP 424 in the service model) only ever arrives inside
        // a stream that was accepted with 200.
        Step::Fail { status: 424, .. } => {
            let frame = eventstream::exception(
                "modelStreamErrorException",
                "The model encountered an error processing your request. Try your request again.",
            );
            stream_response(vec![Bytes::from(frame)], false)
        }
        Step::Fail {
            status,
            retry_after,
        } => error_for_status(status, retry_after),
        Step::ContextTooLong => aws_error(
            400,
            "ValidationException",
            "Input is too long for requested model.",
        ),
        Step::ToolsUnsupported => aws_error(
            400,
            "ValidationException",
            "This model doesn't support tool use.",
        ),
        Step::Malformed => {
            let mut frame =
                eventstream::event("messageStart", &padded(json!({"role": "assistant"})));
            // A flipped bit in the message checksum.
            if let Some(last) = frame.last_mut() {
                *last ^= 0x01;
            }
            stream_response(vec![Bytes::from(frame)], false)
        }
        Step::Truncated(reply) => converse_stream_of(&reply, Ending::Truncated),
        Step::Reset(reply) => converse_stream_of(&reply, Ending::Reset),
        Step::Stall(_) => converse_stream_of(&FakeReply::text("ok"), Ending::Complete),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Through `metadata`.
    Complete,
    /// A clean end of body before `messageStop`.
    Truncated,
    /// Half the events, then a reset connection.
    Reset,
}

/// Real ConverseStream payloads carry a `p` field of random length that pads them against
/// length side channels; clients must ignore it.
fn padded(mut payload: Value) -> Value {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = (N.fetch_add(7, Ordering::Relaxed) % 23) as usize + 1;
    payload["p"] = json!(&"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"[..n]);
    payload
}

fn converse_stream_of(reply: &FakeReply, ending: Ending) -> Response {
    let mut events = vec![eventstream::event(
        "messageStart",
        &padded(json!({"role": "assistant"})),
    )];
    let mut block = 0u32;
    if reply.text.is_some() {
        for piece in reply.text_pieces() {
            events.push(eventstream::event(
                "contentBlockDelta",
                &padded(json!({"contentBlockIndex": block, "delta": {"text": piece}})),
            ));
        }
        events.push(eventstream::event(
            "contentBlockStop",
            &padded(json!({"contentBlockIndex": block})),
        ));
        block += 1;
    }
    for call in &reply.tool_calls {
        events.push(eventstream::event(
            "contentBlockStart",
            &padded(json!({"contentBlockIndex": block, "start": {"toolUse": {"toolUseId": call.id, "name": call.name}}})),
        ));
        for piece in call.argument_pieces() {
            events.push(eventstream::event(
                "contentBlockDelta",
                &padded(
                    json!({"contentBlockIndex": block, "delta": {"toolUse": {"input": piece}}}),
                ),
            ));
        }
        events.push(eventstream::event(
            "contentBlockStop",
            &padded(json!({"contentBlockIndex": block})),
        ));
        block += 1;
    }
    events.push(eventstream::event(
        "messageStop",
        &padded(json!({"stopReason": stop_reason(reply)})),
    ));
    events.push(eventstream::event(
        "metadata",
        &padded(json!({"usage": usage(reply), "metrics": {"latencyMs": 321}})),
    ));
    match ending {
        Ending::Complete => {}
        Ending::Truncated => events.truncate(events.len() - 2),
        Ending::Reset => events.truncate(events.len() / 2),
    }
    // Each message goes out in two pieces, split inside it.
    let mut chunks = Vec::with_capacity(events.len() * 2);
    for (i, frame) in events.into_iter().enumerate() {
        let cut = (7 + i * 5).min(frame.len() - 1);
        let frame = Bytes::from(frame);
        chunks.push(frame.slice(..cut));
        chunks.push(frame.slice(cut..));
    }
    stream_response(chunks, ending == Ending::Reset)
}

fn stream_response(chunks: Vec<Bytes>, reset: bool) -> Response {
    with_request_id(respond::stream(
        200,
        "application/vnd.amazon.eventstream",
        chunks,
        reset,
    ))
}

/// The embedding model families InvokeModel serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedder {
    TitanV2,
    TitanV1,
    CohereV3,
    CohereV4,
}

impl Embedder {
    fn of(model: &str) -> Option<Embedder> {
        let base = base_model(model);
        if base.starts_with("amazon.titan-embed-text-v2") {
            Some(Embedder::TitanV2)
        } else if base.starts_with("amazon.titan-embed") {
            Some(Embedder::TitanV1)
        } else if base.starts_with("cohere.embed-v4") {
            Some(Embedder::CohereV4)
        } else if base.starts_with("cohere.embed") {
            Some(Embedder::CohereV3)
        } else {
            None
        }
    }

    fn allowed_keys(self) -> &'static [&'static str] {
        match self {
            Embedder::TitanV2 => &["inputText", "dimensions", "normalize", "embeddingTypes"],
            Embedder::TitanV1 => &["inputText"],
            Embedder::CohereV3 => &[
                "texts",
                "images",
                "input_type",
                "truncate",
                "embedding_types",
            ],
            Embedder::CohereV4 => &[
                "texts",
                "images",
                "inputs",
                "input_type",
                "truncate",
                "embedding_types",
                "output_dimension",
                "max_tokens",
            ],
        }
    }
}

fn malformed(detail: &str) -> Option<Response> {
    Some(aws_error(
        400,
        "ValidationException",
        &format!("Malformed input request: {detail}, please reformat your input and try again."),
    ))
}

/// The JSON-schema checks Bedrock runs on InvokeModel bodies, in its wording.
fn validate_embedding(family: Embedder, body: &Value) -> Option<Response> {
    let Some(obj) = body.as_object() else {
        return malformed("#: expected type: JSONObject");
    };
    if let Some(extra) = obj
        .keys()
        .find(|k| !family.allowed_keys().contains(&k.as_str()))
    {
        return malformed(&format!("#: extraneous key [{extra}] is not permitted"));
    }
    match family {
        Embedder::TitanV1 | Embedder::TitanV2 => {
            let Some(text) = obj.get("inputText") else {
                return malformed("#: required key [inputText] not found");
            };
            let Some(text) = text.as_str() else {
                return malformed("#/inputText: expected type: String");
            };
            if text.is_empty() {
                return malformed("#/inputText: expected minLength: 1, actual: 0");
            }
            if let Some(d) = obj.get("dimensions")
                && !matches!(d.as_u64(), Some(256 | 512 | 1024))
            {
                return malformed(&format!("#/dimensions: {d} is not a valid enum value"));
            }
        }
        Embedder::CohereV3 | Embedder::CohereV4 => {
            let Some(texts) = obj.get("texts").and_then(Value::as_array) else {
                return malformed("#: required key [texts] not found");
            };
            if texts.len() > 96 {
                return malformed(&format!(
                    "#/texts: expected maxItems: 96, actual: {}",
                    texts.len()
                ));
            }
            if !texts.iter().all(Value::is_string) {
                return malformed("#/texts: expected type: String");
            }
            let input_type = obj.get("input_type").and_then(Value::as_str);
            match input_type {
                None => return malformed("#: required key [input_type] not found"),
                Some(
                    "search_document" | "search_query" | "classification" | "clustering" | "image",
                ) => {}
                Some(other) => {
                    return malformed(&format!("#/input_type: {other} is not a valid enum value"));
                }
            }
        }
    }
    None
}

fn embeddings(family: Embedder, body: &Value, step: Step) -> Response {
    match step {
        Step::Reply(_) | Step::Stall(_) | Step::ToolsUnsupported => {}
        Step::Fail {
            status,
            retry_after,
        } => return error_for_status(status, retry_after),
        Step::ContextTooLong => {
            return aws_error(
                400,
                "ValidationException",
                "400 Bad Request: Too many input tokens. Max input tokens: 8192, request input token count: 9120 ",
            );
        }
        Step::Malformed => {
            return with_request_id(respond::raw(
                200,
                "text/html",
                "<html><body>oops</body></html>",
            ));
        }
        Step::Truncated(_) | Step::Reset(_) => {
            return with_request_id(respond::raw(
                200,
                "application/json",
                "{\"embedding\": [0.1, 0.2",
            ));
        }
    }
    match family {
        Embedder::TitanV1 | Embedder::TitanV2 => {
            let text = body
                .get("inputText")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let dims = match family {
                Embedder::TitanV1 => 1536,
                _ => body
                    .get("dimensions")
                    .and_then(Value::as_u64)
                    .unwrap_or(1024) as usize,
            };
            let vector = embedding_for(text, dims);
            let mut answer = json!({
                "embedding": vector,
                "inputTextTokenCount": text.split_whitespace().count(),
            });
            if family == Embedder::TitanV2 {
                answer["embeddingsByType"] = json!({ "float": answer["embedding"].clone() });
            }
            respond_json(200, &answer)
        }
        Embedder::CohereV3 | Embedder::CohereV4 => {
            let texts: Vec<&str> = body
                .get("texts")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let dims = match family {
                Embedder::CohereV4 => body
                    .get("output_dimension")
                    .and_then(Value::as_u64)
                    .unwrap_or(1536) as usize,
                _ => 1024,
            };
            let vectors: Vec<Vec<f32>> = texts.iter().map(|t| embedding_for(t, dims)).collect();
            let by_type = body.get("embedding_types").is_some();
            let (embeddings, response_type) = if by_type {
                (json!({ "float": vectors }), "embeddings_by_type")
            } else {
                (json!(vectors), "embeddings_floats")
            };
            respond_json(
                200,
                &json!({"id": request_id(), "texts": texts, "embeddings": embeddings, "response_type": response_type}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_resolve_through_arns_and_profiles() {
        assert_eq!(
            base_model(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
            ),
            "anthropic.claude-3-5-haiku-20241022-v1:0"
        );
        assert_eq!(
            Embedder::of("eu.cohere.embed-v4:0"),
            Some(Embedder::CohereV4)
        );
        assert_eq!(
            Embedder::of("amazon.titan-embed-text-v2:0"),
            Some(Embedder::TitanV2)
        );
        assert_eq!(Embedder::of("anthropic.claude-v2"), None);
    }

    #[test]
    fn converse_validation_catches_what_bedrock_rejects() {
        let ok = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
        assert!(validate_converse(&ok).is_none());
        let cases = [
            json!({"messages": []}),
            json!({"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]}),
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]}),
            json!({"messages": [{"role": "user", "content": [{"text": " "}]}]}),
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}, {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]}]}),
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "inferenceConfig": {"temperature": 1.5}}),
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": {"type": "object"}}}}}}),
        ];
        for case in cases {
            assert!(validate_converse(&case).is_some(), "{case}");
        }
        let unpaired = json!({
            "messages": [
                {"role": "user", "content": [{"text": "a"}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}, {"toolUse": {"toolUseId": "t2", "name": "f", "input": {}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}]},
            ],
            "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]},
        });
        assert!(validate_converse(&unpaired).is_some());
    }
}

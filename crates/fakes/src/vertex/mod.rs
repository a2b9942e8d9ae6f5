//! A fake Google Vertex AI (Gemini) server, with the OAuth token endpoint a service-account key
//! points at served on the same port.
//!
//! - `POST /token` implements the JWT bearer grant (RFC 7523) the way Google's token endpoint
//!   answers it: the assertion's RS256 signature is verified with the test key pair below, and
//!   `iss`, `aud` (this endpoint's own URL), `scope` and `exp - iat <= 3600` are checked; a bad
//!   assertion gets Google's `{"error":"invalid_grant","error_description":…}`.
//! - `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`,
//!   `:streamGenerateContent?alt=sse` and `:predict` need `Authorization: Bearer <a token this
//!   fake issued>` and answer with `google.rpc.Status` errors (`{"error":{code,message,status}}`)
//!   otherwise. Request bodies are checked field by field the way Google's JSON front end does
//!   (`Invalid JSON payload received. Unknown name "x"`), plus Gemini's own rules (roles,
//!   alternation, function response counts), so a translation bug fails loudly.
//!
//! Shapes follow googleapis/googleapis `google/cloud/aiplatform/v1/{prediction_service,content,
//! tool}.proto`. Models whose id starts with `gemini-3` behave like Gemini 3: the first function
//! call of an answer carries a `thoughtSignature`, and a request whose current turn replays a
//! function call without it is rejected.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod token;
mod validate;

use crate::script::{FakeReply, RetryAfter, Step, embedding_for};
use crate::server::{Fake, FakeState, Recorded, respond};

/// The service account the fake knows.
pub const CLIENT_EMAIL: &str = "atlasai-test@atlasai-fake-project.iam.gserviceaccount.com";
/// The id of the test key pair, sent as the JWT `kid`.
pub const PRIVATE_KEY_ID: &str = "3f1c0a9d5b7e2468ace013579bdf2468ace01357";
/// Where the token endpoint is served.
pub const TOKEN_PATH: &str = "/token";
/// The project written into [`service_account_json`] keys.
pub const DEFAULT_PROJECT: &str = "atlasai-fake-project";

// Test material only, never used for anything real: two RSA key pairs generated once with
// `openssl genrsa 2048` and `openssl rsa -pubout`. The first belongs to `CLIENT_EMAIL`; the second
// is a key Google has never seen, for "wrong key" tests.

/// The test account's private key (PKCS#8 PEM, as in Google key files). Test material only.
pub const TEST_PRIVATE_KEY: &str = include_str!("test_key.pem");
/// The public half of [`TEST_PRIVATE_KEY`], with which the token endpoint verifies assertions.
pub const TEST_PUBLIC_KEY: &str = include_str!("test_key.pub.pem");
const UNKNOWN_PRIVATE_KEY: &str = include_str!("other_key.pem");

/// What the fake's own thought signatures start with.
const SIGNATURE_PREFIX: &[u8] = b"fake-thought-signature:";
/// The dummy signature Google tools send for function calls that were never signed (gemini-cli
/// and the .NET SDK use it); Gemini 3 accepts it in place of a real one.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";
const CREATE_TIME: &str = "2026-01-15T10:00:00.000000Z";

/// What one fake serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeConfig {
    /// The project in the URL.
    pub project: String,
    /// The location in the URL (`us-central1`, `global`).
    pub location: String,
    /// The publisher model id in the URL.
    pub model: String,
    /// `expires_in` of issued access tokens; the fake rejects a token after it.
    pub token_lifetime_secs: u64,
}

impl FakeConfig {
    /// A configuration with Google's usual token lifetime.
    pub fn new(project: &str, location: &str, model: &str) -> Self {
        FakeConfig {
            project: project.to_owned(),
            location: location.to_owned(),
            model: model.to_owned(),
            token_lifetime_secs: 3599,
        }
    }
}

/// Starts a fake Vertex AI serving one publisher model in one project and location.
pub async fn start(project: &str, location: &str, model: &str) -> Fake {
    start_with(FakeConfig::new(project, location, model)).await
}

/// Starts a fake with a full configuration.
pub async fn start_with(config: FakeConfig) -> Fake {
    // Each fake signs its access tokens with its own secret, so a token from one fake is
    // worthless at another. The configuration travels in the state's free-form `model` field.
    static FAKES: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let secret = format!(
        "vertex-fake-{}-{nanos}",
        FAKES.fetch_add(1, Ordering::Relaxed)
    );
    let config = serde_json::to_string(&config).unwrap_or_default();
    Fake::start(handle_vertex, Some(secret), &config).await
}

/// A complete service-account key file whose `token_uri` points at the fake, for tests.
pub fn service_account_json(fake: &Fake) -> String {
    key_json(fake, TEST_PRIVATE_KEY)
}

/// A well-formed key for the same account but signed with a key Google does not know: the token
/// exchange fails with `invalid_grant: Invalid JWT Signature.`.
pub fn service_account_json_with_unknown_key(fake: &Fake) -> String {
    key_json(fake, UNKNOWN_PRIVATE_KEY)
}

fn key_json(fake: &Fake, private_key: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": DEFAULT_PROJECT,
        "private_key_id": PRIVATE_KEY_ID,
        "private_key": private_key,
        "client_email": CLIENT_EMAIL,
        "client_id": "104503210987654321012",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": format!("{}{TOKEN_PATH}", fake.base_url),
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/atlasai-test%40atlasai-fake-project.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com",
    })
    .to_string()
}

/// Whether a recorded request was a token exchange.
pub fn is_token_request(req: &Recorded) -> bool {
    req.path == TOKEN_PATH
}

fn handle_vertex(
    state: Arc<FakeState>,
    req: Recorded,
) -> futures_util::future::BoxFuture<'static, Response> {
    handle(state, req).boxed()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

async fn handle(state: Arc<FakeState>, req: Recorded) -> Response {
    let config: FakeConfig = match serde_json::from_str(&state.model) {
        Ok(c) => c,
        Err(_) => FakeConfig::new(DEFAULT_PROJECT, "us-central1", "gemini-2.0-flash"),
    };
    let secret = state.expected_key.clone().unwrap_or_default();
    if req.path == TOKEN_PATH && req.method == http::Method::POST {
        return token::token_endpoint(&config, &secret, &req);
    }
    let Some(route) = Route::parse(&req.path) else {
        return not_found_page(&req);
    };
    if req.method != http::Method::POST {
        return not_found_page(&req);
    }
    let method = match route.method.as_str() {
        "generateContent" => Method::Generate,
        "streamGenerateContent" => Method::Stream {
            sse: query_param(&req, "alt").as_deref() == Some("sse"),
        },
        "predict" => Method::Predict,
        _ => return not_found_page(&req),
    };
    if let Some(resp) = token::check_auth(&secret, &req, method.rpc()) {
        return resp;
    }
    if route.project != config.project {
        return permission_denied(&route);
    }
    if route.location != config.location || route.model != config.model {
        return google_error(
            404,
            "NOT_FOUND",
            &format!(
                "Publisher Model `projects/{}/locations/{}/publishers/google/models/{}` was not found or your project does not have access to it. Please ensure you are using a valid model version. For more information, see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions",
                route.project, route.location, route.model
            ),
            Vec::new(),
        );
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return bad_request(
                "Invalid JSON payload received. Expected an object at the top level of the request body.".to_owned(),
            );
        }
    };
    let check = match method {
        Method::Predict => validate::validate_predict(&body, &config.model),
        _ => validate::validate_generate(&body, &config.model),
    };
    if let Some(message) = check {
        return bad_request(message);
    }
    let mut step = state.next_step_for(&body);
    if let Step::Stall(d) = step {
        tokio::time::sleep(d).await;
        step = Step::Reply(state.default_reply());
    }
    match method {
        Method::Predict => predict(&body, &config, step),
        Method::Generate => generate(&config, step, None),
        Method::Stream { sse } => generate(&config, step, Some(sse)),
    }
}

enum Method {
    Generate,
    Stream { sse: bool },
    Predict,
}

impl Method {
    fn rpc(&self) -> &'static str {
        match self {
            Method::Generate => "GenerateContent",
            Method::Stream { .. } => "StreamGenerateContent",
            Method::Predict => "Predict",
        }
    }
}

struct Route {
    project: String,
    location: String,
    model: String,
    method: String,
}

impl Route {
    /// `/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:{method}`.
    fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/v1/projects/")?;
        let (project, rest) = rest.split_once('/')?;
        let rest = rest.strip_prefix("locations/")?;
        let (location, rest) = rest.split_once('/')?;
        let rest = rest.strip_prefix("publishers/google/models/")?;
        let (model, method) = rest.split_once(':')?;
        (!model.contains('/')).then(|| Route {
            project: project.to_owned(),
            location: location.to_owned(),
            model: model.to_owned(),
            method: method.to_owned(),
        })
    }

    fn resource(&self) -> String {
        format!(
            "projects/{}/locations/{}/publishers/google/models/{}",
            self.project, self.location, self.model
        )
    }
}

fn query_param(req: &Recorded, name: &str) -> Option<String> {
    token::form_pairs(req.query.as_deref().unwrap_or_default())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// A `google.rpc.Status` error body.
fn google_error(code: u16, status: &str, message: &str, details: Vec<Value>) -> Response {
    let mut error = json!({"code": code, "message": message, "status": status});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    respond::raw(
        code,
        "application/json; charset=UTF-8",
        json!({ "error": error }).to_string(),
    )
}

fn bad_request(message: String) -> Response {
    google_error(400, "INVALID_ARGUMENT", &message, Vec::new())
}

fn permission_denied(route: &Route) -> Response {
    google_error(
        403,
        "PERMISSION_DENIED",
        &format!(
            "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/{}' (or it may not exist).",
            route.resource()
        ),
        vec![json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "IAM_PERMISSION_DENIED",
            "domain": "aiplatform.googleapis.com",
            "metadata": {"permission": "aiplatform.endpoints.predict", "resource": route.resource()},
        })],
    )
}

/// Google's front end answers unknown URLs with an HTML page, not JSON.
fn not_found_page(req: &Recorded) -> Response {
    respond::raw(
        404,
        "text/html; charset=UTF-8",
        format!(
            "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n  <p><b>404.</b> <ins>That’s an error.</ins>\n  <p>The requested URL <code>{}</code> was not found on this server.  <ins>That’s all we know.</ins>\n",
            req.path
        ),
    )
}

fn error_for_status(config: &FakeConfig, status: u16, retry_after: Option<RetryAfter>) -> Response {
    let resource = format!(
        "projects/{}/locations/{}/publishers/google/models/{}",
        config.project, config.location, config.model
    );
    let mut details = Vec::new();
    let (rpc, message) = match status {
        400 => ("INVALID_ARGUMENT", "Request contains an invalid argument.".to_owned()),
        401 => (
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.".to_owned(),
        ),
        403 => (
            "PERMISSION_DENIED",
            format!("Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/{resource}' (or it may not exist)."),
        ),
        404 => (
            "NOT_FOUND",
            format!("Publisher Model `{resource}` was not found or your project does not have access to it. Please ensure you are using a valid model version. For more information, see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"),
        ),
        409 => ("ABORTED", "The operation was aborted.".to_owned()),
        429 => {
            if let Some(wait) = retry_after {
                let secs = match wait {
                    RetryAfter::Seconds(s) => format!("{s}s"),
                    RetryAfter::Millis(ms) => format!("{}.{:03}s", ms / 1000, ms % 1000),
                };
                details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": secs}));
            }
            (
                "RESOURCE_EXHAUSTED",
                "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.".to_owned(),
            )
        }
        500 => ("INTERNAL", "Internal error encountered.".to_owned()),
        501 => ("UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled.".to_owned()),
        // A 502 comes from Google's front end, as an HTML page.
        502 => {
            return respond::with_retry_after(
                respond::raw(
                    502,
                    "text/html; charset=UTF-8",
                    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 502 (Server Error)!!1</title>\n  <p><b>502.</b> <ins>That’s an error.</ins>\n  <p>The server encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds.  <ins>That’s all we know.</ins>\n",
                ),
                retry_after,
            );
        }
        503 => ("UNAVAILABLE", "The service is currently unavailable.".to_owned()),
        504 => ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete.".to_owned()),
        other => ("UNKNOWN", format!("fake upstream error {other}")),
    };
    respond::with_retry_after(google_error(status, rpc, &message, details), retry_after)
}

// ---------------------------------------------------------------------------------------------
// Answers.

fn usage(reply: &FakeReply) -> Value {
    json!({
        "promptTokenCount": reply.prompt_tokens,
        "candidatesTokenCount": reply.completion_tokens,
        "totalTokenCount": reply.prompt_tokens + reply.completion_tokens,
        "trafficType": "ON_DEMAND",
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": reply.completion_tokens}],
    })
}

fn response_id() -> String {
    static IDS: AtomicU64 = AtomicU64::new(1);
    format!("fAkE{:08x}Qk9yZmFrZQ", IDS.fetch_add(1, Ordering::Relaxed))
}

/// The parts of an answer: text, then one part per function call. Gemini 3 signs the first
/// call of a step.
fn reply_parts(config: &FakeConfig, reply: &FakeReply) -> Vec<Value> {
    let mut parts = Vec::new();
    if let Some(text) = &reply.text {
        parts.push(json!({"text": text}));
    }
    for (i, call) in reply.tool_calls.iter().enumerate() {
        parts.push(call_part(config, i, &call.name, &call.arguments));
    }
    parts
}

fn call_part(config: &FakeConfig, index: usize, name: &str, args: &Value) -> Value {
    let mut part = json!({"functionCall": {"name": name, "args": args}});
    if index == 0 && config.model.starts_with("gemini-3") {
        let mut sig = SIGNATURE_PREFIX.to_vec();
        sig.extend_from_slice(name.as_bytes());
        part["thoughtSignature"] = Value::from(STANDARD.encode(sig));
    }
    part
}

fn response(
    config: &FakeConfig,
    id: &str,
    parts: Vec<Value>,
    finish: Option<&str>,
    usage: Value,
) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}});
    if let Some(f) = finish {
        candidate["finishReason"] = Value::from(f);
        candidate["avgLogprobs"] = Value::from(-0.125);
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": config.model,
        "createTime": CREATE_TIME,
        "responseId": id,
    })
}

fn complete(config: &FakeConfig, reply: &FakeReply) -> Value {
    let mut parts = reply_parts(config, reply);
    if parts.is_empty() {
        parts.push(json!({"text": ""}));
    }
    response(config, &response_id(), parts, Some("STOP"), usage(reply))
}

/// The chunks of a streamed answer: text in pieces, each function call whole in its own
/// chunk, and a last chunk with `finishReason` and the full usage.
fn chunks(config: &FakeConfig, reply: &FakeReply) -> Vec<Value> {
    let id = response_id();
    let partial = json!({"trafficType": "ON_DEMAND"});
    let mut out: Vec<Value> = reply
        .text_pieces()
        .into_iter()
        .map(|piece| {
            response(
                config,
                &id,
                vec![json!({"text": piece})],
                None,
                partial.clone(),
            )
        })
        .collect();
    for (i, call) in reply.tool_calls.iter().enumerate() {
        out.push(response(
            config,
            &id,
            vec![call_part(config, i, &call.name, &call.arguments)],
            None,
            partial.clone(),
        ));
    }
    // The final chunk repeats the last text piece with the finish reason, as Vertex does; with
    // no text it carries an empty text part.
    let last_parts = match out.last() {
        Some(last) if reply.tool_calls.is_empty() && reply.text.is_some() => {
            let parts = last["candidates"][0]["content"]["parts"].clone();
            out.pop();
            parts
        }
        _ => json!([{"text": ""}]),
    };
    let parts = last_parts.as_array().cloned().unwrap_or_default();
    out.push(response(config, &id, parts, Some("STOP"), usage(reply)));
    out
}

fn sse_frames(chunks: &[Value]) -> Vec<Bytes> {
    chunks
        .iter()
        .map(|c| Bytes::from(format!("data: {c}\r\n\r\n")))
        .collect()
}

/// `streamGenerateContent` without `alt=sse` streams one JSON array.
fn json_array_frames(chunks: &[Value]) -> Vec<Bytes> {
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let lead = if i == 0 { "[" } else { ",\r\n" };
        out.push(Bytes::from(format!("{lead}{c}")));
    }
    out.push(Bytes::from_static(b"]"));
    out
}

/// `stream`: `None` for `generateContent`, `Some(sse)` for `streamGenerateContent`.
fn generate(config: &FakeConfig, step: Step, stream: Option<bool>) -> Response {
    let stream_of = |reply: &FakeReply, keep: fn(usize) -> usize, reset: bool| {
        let all = chunks(config, reply);
        let (mut frames, content_type) = match stream {
            Some(false) => (json_array_frames(&all), "application/json; charset=UTF-8"),
            _ => (sse_frames(&all), "text/event-stream"),
        };
        frames.truncate(keep(frames.len()));
        respond::stream(200, content_type, frames, reset)
    };
    match step {
        Step::Reply(reply) if stream.is_some() => stream_of(&reply, |n| n, false),
        Step::Reply(reply) => respond::raw(200, "application/json; charset=UTF-8", complete(config, &reply).to_string()),
        Step::Fail {
            status,
            retry_after,
        } => error_for_status(config, status, retry_after),
        Step::ContextTooLong => bad_request(
            "The input token count (1048590) exceeds the maximum number of tokens allowed (1048576).".to_owned(),
        ),
        Step::ToolsUnsupported => bad_request("Tool use with function calling is unsupported by the model.".to_owned()),
        Step::Malformed if stream.is_some() => respond::stream(
            200,
            "text/event-stream",
            vec![Bytes::from_static(b"data: {\"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"text\": \r\n\r\n")],
            false,
        ),
        Step::Malformed => respond::raw(
            200,
            "text/html; charset=UTF-8",
            "<!DOCTYPE html><html><head><title>Sign in - Google Accounts</title></head><body></body></html>",
        ),
        // Without the last chunk no candidate carries a finish reason: the stream was cut.
        Step::Truncated(reply) if stream.is_some() => stream_of(&reply, |n| n - 1, false),
        Step::Truncated(reply) => {
            let full = complete(config, &reply).to_string();
            respond::raw(200, "application/json; charset=UTF-8", full[..full.len() / 2].to_owned())
        }
        Step::Reset(reply) if stream.is_some() => stream_of(&reply, |n| (n / 2).max(1), true),
        Step::Reset(reply) => {
            let full = complete(config, &reply).to_string();
            let half = Bytes::from(full[..full.len() / 2].to_owned());
            respond::stream(200, "application/json; charset=UTF-8", vec![half], true)
        }
        Step::Stall(_) => respond::raw(
            200,
            "application/json; charset=UTF-8",
            complete(config, &FakeReply::text("ok")).to_string(),
        ),
    }
}

fn predict(body: &Value, config: &FakeConfig, step: Step) -> Response {
    match step {
        Step::Reply(_) | Step::ToolsUnsupported | Step::Stall(_) => {}
        Step::Fail {
            status,
            retry_after,
        } => return error_for_status(config, status, retry_after),
        Step::Malformed => {
            return respond::raw(
                200,
                "text/html; charset=UTF-8",
                "<!DOCTYPE html><html><body>oops</body></html>",
            );
        }
        Step::Truncated(_) | Step::Reset(_) => {
            return respond::raw(
                200,
                "application/json; charset=UTF-8",
                "{\"predictions\": [{\"embeddings\": {\"statistics\": {\"truncated\": false, \"token_count\": 4}, \"values\": [0.01,",
            );
        }
        Step::ContextTooLong => {
            return bad_request(
                "The input token count (20482) exceeds the maximum number of tokens allowed (20000).".to_owned(),
            );
        }
    }
    let dims = body
        .pointer("/parameters/outputDimensionality")
        .and_then(Value::as_u64)
        .unwrap_or(768) as usize;
    let texts: Vec<&str> = body["instances"]
        .as_array()
        .map(|i| i.iter().filter_map(|x| x["content"].as_str()).collect())
        .unwrap_or_default();
    let predictions: Vec<Value> = texts
        .iter()
        .map(|t| {
            json!({"embeddings": {
                "statistics": {"truncated": false, "token_count": t.split_whitespace().count()},
                "values": embedding_for(t, dims),
            }})
        })
        .collect();
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    respond::raw(
        200,
        "application/json; charset=UTF-8",
        json!({"predictions": predictions, "metadata": {"billableCharacterCount": chars}})
            .to_string(),
    )
}

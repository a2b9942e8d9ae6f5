//! A fake Anthropic Messages API.
//!
//! Shapes follow the official Python SDK's types (`anthropics/anthropic-sdk-python`:
//! `Message`, `RawMessageStreamEvent`, `ModelInfo` with `SyncPage` pagination,
//! `shared/ErrorResponse`), its streaming fixtures, and the error bodies and headers the real
//! API sends (`x-api-key` and `anthropic-version` checks, `request-id`, `retry-after` and
//! `anthropic-ratelimit-*` on 429, 529 `overloaded_error`). Requests are validated the way the
//! API validates them (see [`validate`]), so a translation bug fails loudly in tests.
//!
//! The model list is served two models per page, whatever `limit` asks for, so that clients
//! have to follow `has_more`/`after_id`.

mod validate;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::response::Response;
use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderValue, Method};
use serde_json::{Value, json};

use crate::script::{FakeReply, RetryAfter, Step};
use crate::server::{Fake, FakeState, Recorded, respond};

/// The `anthropic-version` values the fake accepts (the API's published versions).
const API_VERSIONS: [&str; 2] = ["2023-06-01", "2023-01-01"];

/// How many models one page of `GET /v1/models` holds at most.
pub const MODELS_PAGE_SIZE: usize = 2;

/// The `request-id` every response carries, and error bodies repeat as `request_id`.
const REQUEST_ID: &str = "req_011CFakeAnthropic0001";

/// The message id replies carry.
const MESSAGE_ID: &str = "msg_01FakeAnthropicMessage01";

/// Models the fake lists, newest first as the API lists them: (id, display name, created).
const MODELS: [(&str, &str, &str); 5] = [
    (
        "claude-opus-4-1-20250805",
        "Claude Opus 4.1",
        "2025-08-05T00:00:00Z",
    ),
    (
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        "2025-09-29T00:00:00Z",
    ),
    (
        "claude-haiku-4-5-20251001",
        "Claude Haiku 4.5",
        "2025-10-01T00:00:00Z",
    ),
    (
        "claude-sonnet-4-20250514",
        "Claude Sonnet 4",
        "2025-05-14T00:00:00Z",
    ),
    (
        "claude-3-5-haiku-20241022",
        "Claude Haiku 3.5",
        "2024-10-22T00:00:00Z",
    ),
];

/// Starts a fake Anthropic API. `key` is the accepted `x-api-key` (`None` accepts any key, or
/// none, like a gateway that adds the key itself); `model` is the model the fake serves
/// (empty: any).
pub async fn start(key: Option<&str>, model: &str) -> Fake {
    Fake::start(handle_boxed, key.map(str::to_owned), model).await
}

fn handle_boxed(
    state: Arc<FakeState>,
    req: Recorded,
) -> futures_util::future::BoxFuture<'static, Response> {
    handle(state, req).boxed()
}

async fn handle(state: Arc<FakeState>, req: Recorded) -> Response {
    let path = req.path.trim_end_matches('/');
    let route = match (&req.method, path) {
        (&Method::POST, "/v1/messages") => Route::Messages,
        (&Method::GET, "/v1/models") => Route::Models,
        (&Method::GET, p) => match p.strip_prefix("/v1/models/") {
            Some(id) if !id.contains('/') => Route::Model(id.to_owned()),
            _ => return error(404, "not_found_error", "Not Found"),
        },
        _ => return error(404, "not_found_error", "Not Found"),
    };
    if let Some(resp) = check_auth(&state, &req) {
        return resp;
    }
    if let Some(resp) = check_version(&req) {
        return resp;
    }
    match route {
        Route::Models => models_page(&state, req.query.as_deref().unwrap_or_default()),
        Route::Model(id) => match model_list(&state)
            .into_iter()
            .find(|m| m["id"] == id.as_str())
        {
            Some(m) => respond_json(200, &m),
            None => error(404, "not_found_error", &format!("model: {id}")),
        },
        Route::Messages => messages(&state, &req).await,
    }
}

enum Route {
    Messages,
    Models,
    Model(String),
}

/// A JSON response with the `request-id` header every Anthropic response carries.
fn respond_json(status: u16, body: &Value) -> Response {
    with_request_id(respond::json(status, body))
}

fn with_request_id(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("request-id", HeaderValue::from_static(REQUEST_ID));
    resp
}

/// Anthropic's error body: `{"type":"error","error":{"type":…,"message":…},"request_id":…}`.
fn error(status: u16, error_type: &str, message: &str) -> Response {
    respond_json(
        status,
        &json!({
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": REQUEST_ID,
        }),
    )
}

/// The key travels in `x-api-key`; a missing and a wrong key get the API's two messages.
fn check_auth(state: &FakeState, req: &Recorded) -> Option<Response> {
    let expected = state.expected_key.as_deref()?;
    match req.header("x-api-key") {
        Some(k) if k == expected => None,
        None | Some("") => Some(error(
            401,
            "authentication_error",
            "x-api-key header is required",
        )),
        Some(_) => Some(error(401, "authentication_error", "invalid x-api-key")),
    }
}

fn check_version(req: &Recorded) -> Option<Response> {
    match req.header("anthropic-version") {
        Some(v) if API_VERSIONS.contains(&v) => None,
        None => Some(error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        )),
        Some(v) => Some(error(
            400,
            "invalid_request_error",
            &format!("anthropic-version: {v:?} is not a valid version"),
        )),
    }
}

fn model_list(state: &FakeState) -> Vec<Value> {
    let mut models: Vec<Value> = MODELS
        .iter()
        .map(|(id, name, created)| {
            json!({"type": "model", "id": id, "display_name": name, "created_at": created})
        })
        .collect();
    if !state.model.is_empty() && !models.iter().any(|m| m["id"] == state.model.as_str()) {
        models.insert(
            0,
            json!({"type": "model", "id": state.model, "display_name": state.model, "created_at": "2025-11-01T00:00:00Z"}),
        );
    }
    models
}

/// `GET /v1/models?limit=&after_id=&before_id=`, paged like the API (`data`, `has_more`,
/// `first_id`, `last_id`), at most [`MODELS_PAGE_SIZE`] per page.
fn models_page(state: &FakeState, query: &str) -> Response {
    let mut limit = 20usize;
    let mut after_id = None;
    let mut before_id = None;
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match k {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => limit = n,
                Ok(0) => {
                    return error(
                        400,
                        "invalid_request_error",
                        "limit: Input should be greater than or equal to 1",
                    );
                }
                Ok(_) => {
                    return error(
                        400,
                        "invalid_request_error",
                        "limit: Input should be less than or equal to 1000",
                    );
                }
                Err(_) => {
                    return error(
                        400,
                        "invalid_request_error",
                        "limit: Input should be a valid integer, unable to parse string as an integer",
                    );
                }
            },
            "after_id" => after_id = Some(v.to_owned()),
            "before_id" => before_id = Some(v.to_owned()),
            _ => {}
        }
    }
    let all = model_list(state);
    let position = |id: &str| all.iter().position(|m| m["id"] == id);
    let page: Vec<Value> = match (after_id, before_id) {
        (Some(_), Some(_)) => {
            return error(
                400,
                "invalid_request_error",
                "Cannot specify both `after_id` and `before_id`.",
            );
        }
        (Some(after), None) => match position(&after) {
            Some(i) => all
                .iter()
                .skip(i + 1)
                .take(limit.min(MODELS_PAGE_SIZE))
                .cloned()
                .collect(),
            None => Vec::new(),
        },
        (None, Some(before)) => {
            let end = position(&before).unwrap_or(0);
            let start = end.saturating_sub(limit.min(MODELS_PAGE_SIZE));
            all[start..end].to_vec()
        }
        (None, None) => all
            .iter()
            .take(limit.min(MODELS_PAGE_SIZE))
            .cloned()
            .collect(),
    };
    let has_more = page
        .last()
        .and_then(|m| position(m["id"].as_str().unwrap_or_default()))
        .is_some_and(|i| i + 1 < all.len());
    respond_json(
        200,
        &json!({
            "data": page,
            "has_more": has_more,
            "first_id": page.first().map(|m| m["id"].clone()),
            "last_id": page.last().map(|m| m["id"].clone()),
        }),
    )
}

async fn messages(state: &FakeState, req: &Recorded) -> Response {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                400,
                "invalid_request_error",
                &format!("There was an issue with your request: invalid JSON body: {e}"),
            );
        }
    };
    if let Err(message) = validate::messages_request(&body) {
        return error(400, "invalid_request_error", &message);
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    if !state.model.is_empty() && model != state.model {
        return error(404, "not_found_error", &format!("model: {model}"));
    }
    let streaming = body["stream"] == true;
    let mut step = state.next_step_for(&body);
    if let Step::Stall(d) = step {
        tokio::time::sleep(d).await;
        step = Step::Reply(state.default_reply());
    }
    match step {
        Step::Reply(reply) if streaming => stream(&model, &reply, Ending::Complete),
        Step::Reply(reply) => respond_json(200, &message(&model, &reply)),
        Step::Fail {
            status,
            retry_after,
        } => error_for_status(status, retry_after),
        Step::ContextTooLong => error(
            400,
            "invalid_request_error",
            "prompt is too long: 210417 tokens > 200000 maximum",
        ),
        // Every current Claude model supports tools; this is the answer a model without tool
        // support gives, in the API's wording for unsupported features.
        Step::ToolsUnsupported => error(
            400,
            "invalid_request_error",
            &format!("{model} does not support tool use."),
        ),
        Step::Malformed if streaming => {
            let start = sse(
                "message_start",
                &message_start(&model, &FakeReply::text("")),
            );
            let broken = Bytes::from_static(
                b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_del\n\n",
            );
            with_request_id(respond::stream(
                200,
                "text/event-stream; charset=utf-8",
                vec![start, broken],
                false,
            ))
        }
        Step::Malformed => with_request_id(respond::raw(
            200,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )),
        Step::Truncated(reply) if streaming => stream(&model, &reply, Ending::NoMessageStop),
        Step::Truncated(reply) => {
            let full = message(&model, &reply).to_string();
            with_request_id(respond::raw(
                200,
                "application/json",
                full[..full.len() / 2].to_owned(),
            ))
        }
        Step::Reset(reply) if streaming => stream(&model, &reply, Ending::Reset),
        Step::Reset(reply) => {
            let full = message(&model, &reply).to_string();
            let half = Bytes::from(full[..full.len() / 2].to_owned());
            with_request_id(respond::stream(200, "application/json", vec![half], true))
        }
        Step::Stall(_) => respond_json(200, &message(&model, &FakeReply::text("ok"))),
    }
}

/// The API's error for a status, with the headers it sends: `retry-after` when scripted and
/// the `anthropic-ratelimit-*` family on 429.
fn error_for_status(status: u16, retry_after: Option<RetryAfter>) -> Response {
    let (error_type, message) = match status {
        400 => (
            "invalid_request_error",
            "There was an issue with the format or content of your request.",
        ),
        401 => ("authentication_error", "invalid x-api-key"),
        402 => (
            "billing_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
        ),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => ("not_found_error", "Not Found"),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
        429 => (
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.",
        ),
        504 => ("timeout_error", "Request timed out"),
        529 => ("overloaded_error", "Overloaded"),
        _ => ("api_error", "Internal server error"),
    };
    let mut resp = respond::with_retry_after(error(status, error_type, message), retry_after);
    if status == 429 {
        let wait = match retry_after {
            Some(RetryAfter::Seconds(s)) => Duration::from_secs(s),
            Some(RetryAfter::Millis(ms)) => Duration::from_millis(ms),
            None => Duration::from_secs(1),
        };
        let reset = rfc3339(SystemTime::now() + wait);
        let h = resp.headers_mut();
        for (name, value) in [
            ("anthropic-ratelimit-requests-limit", "50".to_owned()),
            ("anthropic-ratelimit-requests-remaining", "0".to_owned()),
            ("anthropic-ratelimit-requests-reset", reset.clone()),
            ("anthropic-ratelimit-tokens-limit", "50000".to_owned()),
            ("anthropic-ratelimit-tokens-remaining", "0".to_owned()),
            ("anthropic-ratelimit-tokens-reset", reset.clone()),
            ("anthropic-ratelimit-input-tokens-limit", "40000".to_owned()),
            ("anthropic-ratelimit-input-tokens-remaining", "0".to_owned()),
            ("anthropic-ratelimit-input-tokens-reset", reset.clone()),
            (
                "anthropic-ratelimit-output-tokens-limit",
                "10000".to_owned(),
            ),
            (
                "anthropic-ratelimit-output-tokens-remaining",
                "0".to_owned(),
            ),
            ("anthropic-ratelimit-output-tokens-reset", reset.clone()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
    }
    resp
}

/// A time as RFC 3339 in UTC (`2025-10-25T12:00:00Z`), the format of the rate-limit reset
/// headers.
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn usage(reply: &FakeReply, output_tokens: u32) -> Value {
    json!({
        "input_tokens": reply.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    })
}

fn stop_reason(reply: &FakeReply) -> &'static str {
    if reply.tool_calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    }
}

/// A whole answer (`Message`).
fn message(model: &str, reply: &FakeReply) -> Value {
    let mut content = Vec::new();
    if let Some(text) = &reply.text {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in &reply.tool_calls {
        content.push(
            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}),
        );
    }
    json!({
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(reply),
        "stop_sequence": null,
        "usage": usage(reply, reply.completion_tokens),
    })
}

fn message_start(model: &str, reply: &FakeReply) -> Value {
    json!({
        "type": "message_start",
        "message": {
            "id": MESSAGE_ID,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage(reply, 1),
        },
    })
}

/// One server-sent event: the event name, then the payload whose `type` repeats it.
fn sse(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// How a streamed answer ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// With `message_stop`.
    Complete,
    /// Everything but `message_stop`: the client saw the stop reason but not the end marker.
    NoMessageStop,
    /// The first half of the events, then a reset connection.
    Reset,
}

/// A streamed answer in the order the API sends it (see the SDK's
/// `tests/lib/streaming/fixtures/tool_use_response.txt`).
fn stream(model: &str, reply: &FakeReply, ending: Ending) -> Response {
    let mut events = vec![sse("message_start", &message_start(model, reply))];
    let mut index = 0;
    if reply.text.is_some() {
        events.push(sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        events.push(sse("ping", &json!({"type": "ping"})));
        for piece in reply.text_pieces() {
            events.push(sse(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        events.push(sse(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    for call in &reply.tool_calls {
        events.push(sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}),
        ));
        let [first, second] = call.argument_pieces();
        for piece in [String::new(), first, second] {
            events.push(sse(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}),
            ));
        }
        events.push(sse(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    events.push(sse(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(reply), "stop_sequence": null}, "usage": {"output_tokens": reply.completion_tokens}}),
    ));
    match ending {
        Ending::Complete => events.push(sse("message_stop", &json!({"type": "message_stop"}))),
        Ending::NoMessageStop => {}
        Ending::Reset => events.truncate(events.len() / 2),
    }
    with_request_id(respond::stream(
        200,
        "text/event-stream; charset=utf-8",
        events,
        ending == Ending::Reset,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_761_393_600)),
            "2025-10-25T12:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_825_599)),
            "2000-02-29T11:59:59Z"
        );
    }
}

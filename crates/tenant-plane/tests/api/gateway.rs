//! The OpenAI-compatible endpoint against the real binary: shapes, authentication, aliases,
//! streaming pass-through and cancellation, error mapping, embeddings, models and metrics.

use std::time::Duration;

use atlasai_fakes::{Fake, FakeReply, FakeToolCall, RetryAfter, Step, openai};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Tp, client, eventually};

pub const KEY_ACME: &str = "sk-tp-acme-0123456789abcdef";
pub const KEY_GLOBEX: &str = "sk-tp-globex-0123456789abcdef";
const UPSTREAM_KEY: &str = "sk-upstream-0123456789";

/// A tenant plane in front of a fake OpenAI serving `gpt-4o-mini` for chat and a second one
/// for embeddings, with keys for two tenants and aliases; `extra` adds or overrides
/// variables (an empty value removes one).
struct Setup {
    fake: Fake,
    embeddings: Fake,
    tp: Tp,
}

async fn start(extra: &[(&str, &str)]) -> Setup {
    let fake = openai::start(Some(UPSTREAM_KEY), "gpt-4o-mini").await;
    let embeddings = openai::start(Some(UPSTREAM_KEY), "").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let embeddings_endpoint = format!("{}/v1", embeddings.base_url);
    let keys = format!("acme:{KEY_ACME},globex:{KEY_GLOBEX}");
    let mut vars: Vec<(&str, &str)> = vec![
        ("BYOC_PROVIDER", "openai"),
        ("BYOC_API_KEY", UPSTREAM_KEY),
        ("BYOC_MODEL", "gpt-4o-mini"),
        ("BYOC_ENDPOINT_URL", &endpoint),
        ("TP_API_KEYS", &keys),
        ("TP_MODEL_ALIASES", "gpt-4o=@chat,ada=@embeddings"),
        ("EMBEDDING_PROVIDER", "openai"),
        ("EMBEDDING_ENDPOINT_URL", &embeddings_endpoint),
        ("EMBEDDING_API_KEY", UPSTREAM_KEY),
        ("EMBEDDING_MODEL", "text-embedding-3-small"),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k, v));
    }
    let vars: Vec<(&str, &str)> = vars.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let tp = Tp::start(&vars, &[]);
    Setup {
        fake,
        embeddings,
        tp,
    }
}

async fn post(tp: &Tp, path: &str, key: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", tp.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn post_json(tp: &Tp, path: &str, body: Value) -> (StatusCode, Value) {
    let r = post(tp, path, KEY_ACME, body).await;
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

/// Asserts OpenAI's error shape: exactly message, type, param and code.
fn assert_error(body: &Value, code: Option<&str>) {
    let e = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {body}"));
    let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "param", "type"], "{body}");
    assert_eq!(body["error"]["code"].as_str(), code, "{body}");
}

/// Reads a server-sent-event body to its end, as the data lines.
async fn sse_frames(mut r: reqwest::Response) -> Vec<String> {
    let mut text = String::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    frames_of(&text)
}

fn frames_of(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| f.strip_prefix("data: ").unwrap_or(f).to_owned())
        .collect()
}

async fn metrics(tp: &Tp) -> String {
    client()
        .get(format!("{}/metrics", tp.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_an_alias_reaches_the_configured_model() {
    let Setup { fake, tp, .. } = start(&[]).await;
    let (status, body) = post_json(
        &tp,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"}],
            "temperature": 0.2, "max_tokens": 20, "user": "alice", "store": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], "chatcmpl-fake123", "the provider's id is kept");
    assert_eq!(body["model"], "gpt-4o-mini", "the model that answered");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["choices"][0]["index"], 0);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "ok");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17})
    );
    let sent = fake.last_request().unwrap().json();
    assert_eq!(sent["model"], "gpt-4o-mini", "the alias is resolved");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["user"], "alice");
    assert!(
        sent.get("store").is_none(),
        "platform-only fields are not forwarded"
    );
    // The configured model's own name works too.
    let (status, _) = post_json(&tp, "/v1/chat/completions", hello("gpt-4o-mini")).await;
    assert_eq!(status, 200);
    // The call is logged for the key's tenant, without the prompt.
    let logs = tp.logs_containing("\"tenant\":\"acme\"").await;
    assert!(logs.contains("\"feature\":\"gateway\"") && logs.contains("\"tenant\":\"acme\""));
    assert!(!logs.contains("Say hello") && !logs.contains(KEY_ACME));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_authenticate_and_bind_the_tenant() {
    let Setup { fake, tp, .. } = start(&[]).await;
    let c = client();
    let url = format!("{}/v1/chat/completions", tp.url);
    let r = c.post(&url).json(&hello("gpt-4o")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_error(&r.json().await.unwrap(), Some("missing_api_key"));
    let r = post(
        &tp,
        "/v1/chat/completions",
        "sk-tp-acme-0123456789abcdeX",
        hello("gpt-4o"),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_error(&r.json().await.unwrap(), Some("invalid_api_key"));
    // The admin token is not an API key.
    let r = c
        .get(format!("{}/v1/models", tp.url))
        .bearer_auth(crate::support::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(&url)
        .bearer_auth(KEY_ACME)
        .header("x-tenant-id", "globex")
        .json(&hello("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_error(&r.json().await.unwrap(), Some("tenant_mismatch"));
    assert!(fake.requests().is_empty(), "nothing reached the provider");
    let r = post(&tp, "/v1/chat/completions", KEY_GLOBEX, hello("gpt-4o")).await;
    assert_eq!(r.status(), 200);
    let text = metrics(&tp).await;
    assert!(
        text.contains("atlasai_model_calls_total{tenant=\"globex\",feature=\"gateway\",provider=\"openai\",model=\"gpt-4o-mini\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(!text.contains("tenant=\"acme\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_the_endpoint_is_closed() {
    let Setup { tp, .. } = start(&[("TP_API_KEYS", "")]).await;
    let r = post(&tp, "/v1/chat/completions", KEY_ACME, hello("gpt-4o")).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_error(&body, Some("api_keys_not_configured"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("TP_API_KEYS")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_and_bad_requests_get_openai_errors() {
    let Setup { fake, tp, .. } = start(&[]).await;
    let (status, body) = post_json(&tp, "/v1/chat/completions", hello("gpt-3.5-turbo")).await;
    assert_eq!(status, 404);
    assert_error(&body, Some("model_not_found"));
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "model");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`gpt-3.5-turbo`") && message.contains("gpt-4o-mini, gpt-4o"),
        "{message}"
    );

    let (status, body) = post_json(&tp, "/v1/chat/completions", hello("ada")).await;
    assert_eq!(status, 400);
    assert_error(&body, Some("model_not_supported"));

    let (status, body) = post_json(
        &tp,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "n": 3}),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, Some("unsupported_value"));
    assert_eq!(body["error"]["param"], "n");

    let r = client()
        .post(format!("{}/v1/chat/completions", tp.url))
        .bearer_auth(KEY_ACME)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no content-type needed, but JSON is");
    assert_error(&r.json().await.unwrap(), None);

    let (status, body) = post_json(&tp, "/v1/chat/completions", json!({"messages": []})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("model"),
        "{body}"
    );

    let big = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(17 * 1024 * 1024)}]});
    let (status, body) = post_json(&tp, "/v1/chat/completions", big).await;
    assert_eq!(status, 413);
    assert_error(&body, Some("request_too_large"));
    // Above the admin API's 1 MiB but within the gateway's 16 MiB: read and parsed (and
    // refused here only for its `n`).
    let two_mib = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(2 * 1024 * 1024)}], "n": 3});
    let (status, body) = post_json(&tp, "/v1/chat/completions", two_mib).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "n");

    let r = client()
        .post(format!("{}/v1/completions", tp.url))
        .bearer_auth(KEY_ACME)
        .json(&json!({"model": "gpt-4o", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_error(&body, None);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/completions")
    );
    assert!(fake.requests().is_empty(), "nothing reached the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_and_json_schema_are_translated_both_ways() {
    let Setup { fake, tp, .. } = start(&[]).await;
    fake.push(Step::Reply(FakeReply::tool_calls(vec![FakeToolCall::new(
        "call_abc",
        "get_pods",
        json!({"namespace": "prod"}),
    )])));
    let tools = json!([{"type": "function", "function": {"name": "get_pods", "description": "List pods",
        "parameters": {"type": "object", "properties": {"namespace": {"type": "string"}}, "required": ["namespace"]}}}]);
    let (status, body) = post_json(
        &tp,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Which pods?"}],
               "tools": tools, "tool_choice": "required", "parallel_tool_calls": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"],
        json!([{"id": "call_abc", "type": "function",
                "function": {"name": "get_pods", "arguments": "{\"namespace\":\"prod\"}"}}])
    );
    let sent = fake.last_request().unwrap().json();
    assert_eq!(sent["tools"], tools);
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["parallel_tool_calls"], false);

    // The tool result goes back, and a schema-constrained answer comes out.
    let schema = json!({"type": "object", "properties": {"healthy": {"type": "boolean"}}, "required": ["healthy"], "additionalProperties": false});
    fake.push(Step::Reply(FakeReply::text("{\"healthy\":true}")));
    let (status, body) = post_json(
        &tp,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [
            {"role": "user", "content": "Which pods?"},
            {"role": "assistant", "content": null, "tool_calls": body["choices"][0]["message"]["tool_calls"]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "[\"api-1\"]"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "health", "schema": schema, "strict": true}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "{\"healthy\":true}"
    );
    let sent = fake.last_request().unwrap().json();
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "health", "schema": schema, "strict": true}})
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "tool_call_id": "call_abc", "content": "[\"api-1\"]"})
    );
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "call_abc");

    fake.push(Step::Reply(FakeReply::text("{}")));
    let (status, _) = post_json(
        &tp,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "json please"}], "response_format": {"type": "json_object"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        fake.last_request().unwrap().json()["response_format"],
        json!({"type": "json_object"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_passes_chunks_through_as_they_arrive() {
    let Setup { fake, tp, .. } = start(&[]).await;
    // The fake waits between its chunks; the first chunk must reach the client while the
    // provider is still sending, which it cannot if anything buffered the answer.
    fake.set_stream_pacing(Duration::from_millis(400));
    fake.set_default_reply(FakeReply::text("Hello there, operator"));
    let mut r = post(
        &tp,
        "/v1/chat/completions",
        KEY_ACME,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
               "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let first = r.chunk().await.unwrap().unwrap();
    assert_eq!(
        fake.streams_completed(),
        0,
        "the provider is still streaming"
    );
    // A stream's request is counted (and logged) when its body ends, so that the bookkeeping
    // does not delay the first chunk.
    let counted = "atlasai_http_requests_total{method=\"POST\",route=\"/v1/chat/completions\",status=\"200\"} 1";
    assert!(!metrics(&tp).await.contains(counted));
    let mut text = String::from_utf8(first.to_vec()).unwrap();
    while let Some(chunk) = r.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let frames = frames_of(&text);
    assert_eq!(
        frames.last().map(String::as_str),
        Some("[DONE]"),
        "{frames:?}"
    );
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], "chatcmpl-fake123");
        assert!(c.as_object().unwrap().contains_key("usage"), "{c}");
    }
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello there, operator");
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["stop"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17})
    );
    eventually("the upstream stream to complete", || async {
        fake.streams_completed() == 1
    })
    .await;
    let text = metrics(&tp).await;
    assert!(
        text.contains("model=\"gpt-4o-mini\",type=\"completion\"} 5"),
        "{text}"
    );
    assert!(text.contains(counted), "{text}");
    assert!(
        text.contains("atlasai_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/chat/completions\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let Setup { fake, tp, .. } = start(&[]).await;
    fake.set_stream_pacing(Duration::from_millis(500));
    fake.set_default_reply(FakeReply::text(
        "a long answer that the client will not wait for",
    ));
    let mut r = post(
        &tp,
        "/v1/chat/completions",
        KEY_ACME,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    assert!(std::str::from_utf8(&first).unwrap().starts_with("data: {"));
    drop(r);
    eventually("the provider to see its stream abandoned", || async {
        fake.streams_abandoned() == 1
    })
    .await;
    assert_eq!(fake.streams_completed(), 0);
    eventually("the cancelled call in the metrics", || async {
        metrics(&tp).await.contains("outcome=\"cancelled\"} 1")
    })
    .await;
    assert!(
        tp.logs_containing("\"outcome\":\"cancelled\"")
            .await
            .contains("\"outcome\":\"cancelled\"")
    );
    // The request itself is still counted and logged once, with the status its head had.
    eventually("the abandoned stream's request in the metrics", || async {
        metrics(&tp).await.contains(
            "atlasai_http_requests_total{method=\"POST\",route=\"/v1/chat/completions\",status=\"200\"} 1",
        )
    })
    .await;
    let route = "\"route\":\"/v1/chat/completions\"";
    let logs = tp.logs_containing(route).await;
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains(route)).collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(lines[0].contains("\"status\":200"), "{}", lines[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_before_the_first_chunk_are_http_errors() {
    let Setup { fake, tp, .. } = start(&[("TP_PROVIDER_MAX_RETRIES", "0")]).await;
    let stream =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    fake.push(Step::Fail {
        status: 429,
        retry_after: Some(RetryAfter::Seconds(7)),
    });
    let r = post(&tp, "/v1/chat/completions", KEY_ACME, stream.clone()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let body: Value = r.json().await.unwrap();
    assert_error(&body, Some("rate_limit_exceeded"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AI provider (openai) error: rate limited"),
        "{body}"
    );

    fake.push(Step::ContextTooLong);
    let r = post(&tp, "/v1/chat/completions", KEY_ACME, stream.clone()).await;
    assert_eq!(r.status(), 400);
    assert_error(&r.json().await.unwrap(), Some("context_length_exceeded"));

    fake.push(Step::Fail {
        status: 401,
        retry_after: None,
    });
    let r = post(&tp, "/v1/chat/completions", KEY_ACME, hello("gpt-4o")).await;
    assert_eq!(
        r.status(),
        502,
        "the provider rejected our credentials, not the client's"
    );
    assert_eq!(r.headers()["x-should-retry"], "false");
    let body: Value = r.json().await.unwrap();
    assert_error(&body, Some("upstream_authentication_failed"));
    assert!(!body.to_string().contains(UPSTREAM_KEY));

    fake.push(Step::Malformed);
    let r = post(&tp, "/v1/chat/completions", KEY_ACME, stream).await;
    assert_eq!(r.status(), 502);
    assert_error(&r.json().await.unwrap(), Some("upstream_invalid_response"));
    let text = metrics(&tp).await;
    assert!(text.contains("outcome=\"rate_limited\"} 1"), "{text}");
    assert!(text.contains("outcome=\"authentication\"} 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_after_the_first_chunk_end_the_stream_with_an_error_event() {
    let Setup { fake, tp, .. } = start(&[("TP_PROVIDER_MAX_RETRIES", "0")]).await;
    fake.push(Step::Reset(FakeReply::text(
        "this answer is cut off in the middle",
    )));
    let r = post(
        &tp,
        "/v1/chat/completions",
        KEY_ACME,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let frames = sse_frames(r).await;
    assert!(frames.len() >= 2, "{frames:?}");
    let first: Value = serde_json::from_str(&frames[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_error(&last, Some("upstream_unavailable"));
    assert!(
        !frames.iter().any(|f| f == "[DONE]"),
        "a failed stream does not end cleanly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_in_float_and_base64_through_an_alias() {
    let Setup {
        embeddings: fake,
        tp,
        ..
    } = start(&[]).await;
    let (status, body) = post_json(
        &tp,
        "/v1/embeddings",
        json!({"model": "ada", "input": ["first text", "second"], "dimensions": 4}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["index"], 0);
    assert_eq!(data[0]["object"], "embedding");
    let v0: Vec<f32> = serde_json::from_value(data[0]["embedding"].clone()).unwrap();
    assert_eq!(
        v0,
        atlasai_fakes::embedding_for("first text", 4),
        "order kept"
    );
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.json()["model"], "text-embedding-3-small");

    let (status, body) = post_json(
        &tp,
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": "second", "encoding_format": "base64", "dimensions": 4}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(v, atlasai_fakes::embedding_for("second", 4));

    let (status, body) = post_json(
        &tp,
        "/v1/embeddings",
        json!({"model": "gpt-4o", "input": "x"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, Some("model_not_supported"));
    let (status, body) = post_json(
        &tp,
        "/v1/embeddings",
        json!({"model": "ada", "input": [[1, 2, 3]]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, Some("unsupported_value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_only_search_has_no_embedding_model() {
    let Setup { tp, .. } = start(&[
        ("EMBEDDING_PROVIDER", "fallback"),
        ("TP_MODEL_ALIASES", "gpt-4o=@chat"),
    ])
    .await;
    let (status, body) = post_json(
        &tp,
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": "x"}),
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&body, Some("model_not_found"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no embedding model is configured")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_the_configured_models_and_aliases() {
    let Setup { tp, .. } = start(&[]).await;
    let c = client();
    let body: Value = c
        .get(format!("{}/v1/models", tp.url))
        .bearer_auth(KEY_ACME)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["gpt-4o-mini", "text-embedding-3-small", "gpt-4o", "ada"]
    );
    for m in body["data"].as_array().unwrap() {
        assert_eq!(m["object"], "model");
        assert_eq!(m["owned_by"], "openai");
        assert!(m["created"].as_u64().unwrap() > 1_700_000_000);
    }
    let r = c
        .get(format!("{}/v1/models/gpt-4o", tp.url))
        .bearer_auth(KEY_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], "gpt-4o");
    let r = c
        .get(format!("{}/v1/models/gpt-5", tp.url))
        .bearer_auth(KEY_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_error(&r.json().await.unwrap(), Some("model_not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_provider_configured_answers_503() {
    let keys = format!("acme:{KEY_ACME}");
    let tp = Tp::start(&[("TP_API_KEYS", &keys)], &[]);
    let r = post(&tp, "/v1/chat/completions", KEY_ACME, hello("anything")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-should-retry"], "false");
    let body: Value = r.json().await.unwrap();
    assert_error(&body, Some("provider_not_configured"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("AI provider not configured")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_http_requests_and_can_require_a_token() {
    let Setup { tp, .. } = start(&[("TP_METRICS_TOKEN", "metrics-token-0123456789")]).await;
    let (status, _) = post_json(&tp, "/v1/chat/completions", hello("gpt-4o")).await;
    assert_eq!(status, 200);
    let (status, _) = post_json(&tp, "/v1/chat/completions", hello("nope")).await;
    assert_eq!(status, 404);
    let c = client();
    let r = c.get(format!("{}/metrics", tp.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{}/metrics", tp.url))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    for line in [
        "atlasai_http_requests_total{method=\"POST\",route=\"/v1/chat/completions\",status=\"200\"} 1",
        "atlasai_http_requests_total{method=\"POST\",route=\"/v1/chat/completions\",status=\"404\"} 1",
        "atlasai_http_request_errors_total{method=\"POST\",route=\"/v1/chat/completions\",status=\"404\"} 1",
        "atlasai_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/chat/completions\"} 2",
        "atlasai_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"401\"} 1",
        "atlasai_model_call_duration_seconds_count{tenant=\"acme\",feature=\"gateway\",provider=\"openai\",model=\"gpt-4o-mini\"} 1",
        "atlasai_model_tokens_total{tenant=\"acme\",feature=\"gateway\",provider=\"openai\",model=\"gpt-4o-mini\",type=\"prompt\"} 12",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_switched_off() {
    let Setup { tp, .. } = start(&[("TP_METRICS_ENABLED", "0")]).await;
    let (status, _) = post_json(&tp, "/v1/chat/completions", hello("gpt-4o")).await;
    assert_eq!(status, 200);
    let r = client()
        .get(format!("{}/metrics", tp.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "metrics_disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_rotate_from_their_file_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-keys");
    std::fs::write(&file, format!("# tenant:key\nacme:{KEY_ACME}\n")).unwrap();
    let Setup { tp, .. } = start(&[
        ("TP_API_KEYS", ""),
        ("TP_API_KEYS_FILE", file.to_str().unwrap()),
    ])
    .await;
    let (status, _) = post_json(&tp, "/v1/chat/completions", hello("gpt-4o")).await;
    assert_eq!(status, 200);
    let rotated = "sk-tp-acme-rotated-0123456789";
    let tmp = dir.path().join("api-keys.tmp");
    std::fs::write(&tmp, format!("acme:{rotated}\n")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    eventually("the rotated key", || async {
        post(&tp, "/v1/chat/completions", rotated, hello("gpt-4o"))
            .await
            .status()
            == 200
    })
    .await;
    let r = post(&tp, "/v1/chat/completions", KEY_ACME, hello("gpt-4o")).await;
    assert_eq!(r.status(), 401, "the old key stops working");
    // A broken key file is rejected and the rotated keys stay in force.
    std::fs::write(&tmp, "acme:short\n").unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let status_url = format!("{}/api/status", tp.url);
    eventually("the rejection", || async {
        crate::support::admin_get(&status_url).await["last_reload"]["ok"] == false
    })
    .await;
    let status = crate::support::admin_get(&status_url).await;
    assert!(
        status["last_reload"]["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("TP_API_KEYS_FILE: line 1: the key has 5 characters"),
        "{status}"
    );
    assert!(!status.to_string().contains("short"), "{status}");
    assert_eq!(
        post(&tp, "/v1/chat/completions", rotated, hello("gpt-4o"))
            .await
            .status(),
        200
    );
}

#[test]
fn bad_gateway_settings_stop_the_start_and_never_echo_keys() {
    let (code, _, stderr) = crate::support::run_cmd(
        &[
            ("BYOC_PROVIDER", "openai"),
            ("BYOC_API_KEY", "sk-x-0123456789"),
            ("BYOC_MODEL", "gpt-4o-mini"),
            (
                "TP_API_KEYS",
                "acme:0123456789abcdef0123,sk-secret-key-without-tenant",
            ),
            ("TP_MODEL_ALIASES", "gpt-4o=llama3"),
            ("TP_METRICS_ENABLED", "maybe"),
            ("TP_METRICS_TOKEN", "short"),
        ],
        &["check-config"],
    );
    assert_eq!(code, 64, "{stderr}");
    for expected in [
        "TP_API_KEYS: entry 2: expected tenant:key",
        "TP_MODEL_ALIASES: gpt-4o=llama3: \"llama3\" is not a configured model",
        "TP_METRICS_ENABLED: \"maybe\" is not a boolean",
        "TP_METRICS_TOKEN: the metrics token must be at least 16 characters",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("sk-secret-key") && !stderr.contains("0123456789abcdef0123"),
        "{stderr}"
    );

    let (code, stdout, stderr) = crate::support::run_cmd(
        &[
            (
                "TP_API_KEYS",
                "acme:0123456789abcdef0123,globex:abcdef0123456789abcdef",
            ),
            ("TP_MODEL_ALIASES", "gpt-4o=@chat"),
        ],
        &["check-config"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("2 keys for tenants acme, globex"),
        "{stdout}"
    );
    assert!(stdout.contains("gpt-4o → chat"), "{stdout}");
    assert!(
        stdout.contains(
            "warning: TP_MODEL_ALIASES: gpt-4o stands for the chat model, but none is configured"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("0123456789abcdef0123"), "{stdout}");
}

//! Redaction end to end against the fake OpenAI: the request that reaches the provider holds
//! placeholders, not the secrets, e-mail or IP addresses of the prompt; the answer (plain,
//! streamed, and tool-call arguments) gets the originals back.

use std::sync::Arc;

use atlasai_core::{ChatRequest, Message, ProviderKind, ProviderSettings, ToolDefinition};
use atlasai_fakes::{FakeReply, FakeToolCall, Step, openai};
use atlasai_providers::redact::Redacting;
use atlasai_providers::{Provider, build_chat_provider, collect_stream};
use serde_json::json;
use url::Url;

use crate::harness::fast_opts;

const PROMPT: &str = "Checkout fails: postgres://app:hunter2-pass@10.0.4.7:5432/orders refused; \
                      on-call is ops@acme.io; key in logs sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX";
const SECRETS: [&str; 4] = [
    "hunter2-pass",
    "10.0.4.7",
    "ops@acme.io",
    "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX",
];

async fn client(fake: &atlasai_fakes::Fake) -> Arc<dyn Provider> {
    let mut s = ProviderSettings::new(ProviderKind::OpenAi, "gpt-4o-mini");
    s.endpoint = Some(Url::parse(&format!("{}/v1", fake.base_url)).unwrap());
    s.api_key = Some("sk-test-redaction-key-0000".into());
    Redacting::wrap(build_chat_provider(&s, &fast_opts()).await.unwrap())
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::system("You are an SRE assistant."),
            Message::user(PROMPT),
        ],
        ..ChatRequest::default()
    }
}

fn assert_nothing_leaked(fake: &atlasai_fakes::Fake) {
    for req in fake.requests() {
        let body = String::from_utf8_lossy(&req.body).into_owned();
        for s in SECRETS {
            assert!(!body.contains(s), "{s} reached the provider: {body}");
        }
        assert!(
            body.contains("[EMAIL_1]") && body.contains("[IP_1]") && body.contains("[SECRET_1]"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn plain_answers_are_restored() {
    let fake = openai::start(Some("sk-test-redaction-key-0000"), "gpt-4o-mini").await;
    fake.push(Step::Reply(FakeReply::text(
        "Page [EMAIL_1]: the database at [IP_1] refused the connection.",
    )));
    let answer = client(&fake).await.chat(&request()).await.unwrap();
    assert_eq!(
        answer.content.as_deref(),
        Some("Page ops@acme.io: the database at 10.0.4.7 refused the connection.")
    );
    assert_nothing_leaked(&fake);
}

#[tokio::test]
async fn streamed_answers_are_restored_even_across_chunk_boundaries() {
    let fake = openai::start(Some("sk-test-redaction-key-0000"), "gpt-4o-mini").await;
    // The fake splits text into three pieces, cutting through the placeholders.
    fake.push(Step::Reply(FakeReply::text(
        "Ask [EMAIL_1] to check [IP_1] now",
    )));
    let stream = client(&fake).await.chat_stream(&request()).await.unwrap();
    let answer = collect_stream(stream, "m").await.unwrap();
    assert_eq!(
        answer.content.as_deref(),
        Some("Ask ops@acme.io to check 10.0.4.7 now")
    );
    assert_nothing_leaked(&fake);
}

#[tokio::test]
async fn tool_call_arguments_are_restored() {
    let fake = openai::start(Some("sk-test-redaction-key-0000"), "gpt-4o-mini").await;
    let call = FakeToolCall::new(
        "call_1",
        "ping_host",
        json!({"host": "[IP_1]", "notify": "[EMAIL_1]"}),
    );
    fake.push(Step::Reply(FakeReply::tool_calls(vec![call.clone()])));
    fake.push(Step::Reply(FakeReply::tool_calls(vec![call])));
    let mut req = request();
    req.tools = vec![ToolDefinition {
        name: "ping_host".into(),
        description: None,
        parameters: json!({"type": "object", "properties": {"host": {"type": "string"}, "notify": {"type": "string"}}}),
        strict: None,
    }];
    let c = client(&fake).await;
    let answer = c.chat(&req).await.unwrap();
    let args: serde_json::Value = serde_json::from_str(&answer.tool_calls[0].arguments).unwrap();
    assert_eq!(args, json!({"host": "10.0.4.7", "notify": "ops@acme.io"}));
    let streamed = collect_stream(c.chat_stream(&req).await.unwrap(), "m")
        .await
        .unwrap();
    let args: serde_json::Value = serde_json::from_str(&streamed.tool_calls[0].arguments).unwrap();
    assert_eq!(args, json!({"host": "10.0.4.7", "notify": "ops@acme.io"}));
    assert_nothing_leaked(&fake);
}

//! Conformance with the official `openai` Python SDK as an independent client: the script in
//! `tests/conformance/openai_sdk.py` drives the real tenant plane in front of fake OpenAI,
//! Anthropic and Bedrock upstreams, for chat, tools, JSON schema, streaming (with usage and a
//! mid-stream failure) and embeddings.
//!
//! The SDK lives in a virtual environment that `cargo xtask ci` creates (`.venv/` at the
//! repository root; `ATLASAI_CONFORMANCE_PYTHON` names another interpreter). Without it the
//! tests say they skipped, except under CI (`CI` set), where a missing SDK is a failure.

use std::path::PathBuf;
use std::time::Duration;

use atlasai_fakes::{Fake, FakeReply, FakeToolCall, Step, anthropic, bedrock, openai};
use serde_json::{Value, json};

use crate::gateway::KEY_ACME;
use crate::support::Tp;

const EXPECT_TEXT: &str = "Hello from the fake provider";
const ALIASES: &str = "gpt-4o=@chat,embed=@embeddings";
const AWS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const BEDROCK_MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upstream {
    OpenAi,
    Anthropic,
    Bedrock,
}

/// The interpreter with the `openai` package, or `None` (outside CI) to skip.
fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ATLASAI_CONFORMANCE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.venv/bin/python"
    ));
    if venv.exists() {
        return Some(venv);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the OpenAI SDK conformance tests need .venv (created by `cargo xtask ci`) or ATLASAI_CONFORMANCE_PYTHON"
    );
    None
}

fn script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/conformance/openai_sdk.py"
    ))
}

struct Running {
    chat: Fake,
    _embeddings: Option<Fake>,
    tp: Tp,
}

/// The tenant plane in front of a fake upstream, with embeddings from the fake OpenAI (for
/// OpenAI and Anthropic, which has no embeddings) or Bedrock's Titan (for Bedrock).
async fn start(upstream: Upstream) -> Running {
    let keys = format!("acme:{KEY_ACME}");
    let (chat, embeddings, vars): (Fake, Option<Fake>, Vec<(String, String)>) = match upstream {
        Upstream::OpenAi => {
            let chat = openai::start(Some("sk-upstream-openai-01"), "gpt-4o-mini").await;
            let emb = openai::start(Some("sk-upstream-openai-01"), "").await;
            let vars = vec![
                ("BYOC_PROVIDER", "openai".to_owned()),
                ("BYOC_API_KEY", "sk-upstream-openai-01".to_owned()),
                ("BYOC_MODEL", "gpt-4o-mini".to_owned()),
                ("BYOC_ENDPOINT_URL", format!("{}/v1", chat.base_url)),
                ("EMBEDDING_PROVIDER", "openai".to_owned()),
                ("EMBEDDING_API_KEY", "sk-upstream-openai-01".to_owned()),
                ("EMBEDDING_ENDPOINT_URL", format!("{}/v1", emb.base_url)),
            ];
            (chat, Some(emb), owned(vars))
        }
        Upstream::Anthropic => {
            let chat = anthropic::start(
                Some("sk-ant-api03-conformance"),
                "claude-sonnet-4-5-20250929",
            )
            .await;
            let emb = openai::start(Some("sk-upstream-openai-01"), "").await;
            let vars = vec![
                ("BYOC_PROVIDER", "anthropic".to_owned()),
                ("BYOC_API_KEY", "sk-ant-api03-conformance".to_owned()),
                ("BYOC_MODEL", "claude-sonnet-4-5-20250929".to_owned()),
                ("BYOC_ENDPOINT_URL", chat.base_url.clone()),
                ("EMBEDDING_PROVIDER", "openai".to_owned()),
                ("EMBEDDING_API_KEY", "sk-upstream-openai-01".to_owned()),
                ("EMBEDDING_ENDPOINT_URL", format!("{}/v1", emb.base_url)),
            ];
            (chat, Some(emb), owned(vars))
        }
        Upstream::Bedrock => {
            let chat =
                bedrock::start(AWS_KEY_ID, AWS_SECRET, None, "us-east-1", BEDROCK_MODEL).await;
            let vars = vec![
                ("BYOC_PROVIDER", "bedrock".to_owned()),
                ("BYOC_REGION", "us-east-1".to_owned()),
                ("BYOC_AWS_ACCESS_KEY_ID", AWS_KEY_ID.to_owned()),
                ("BYOC_AWS_SECRET_ACCESS_KEY", AWS_SECRET.to_owned()),
                ("BYOC_MODEL", BEDROCK_MODEL.to_owned()),
                ("BYOC_ENDPOINT_URL", chat.base_url.clone()),
                ("EMBEDDING_PROVIDER", "bedrock".to_owned()),
                ("EMBEDDING_ENDPOINT_URL", chat.base_url.clone()),
            ];
            (chat, None, owned(vars))
        }
    };
    chat.set_default_reply(FakeReply::text(EXPECT_TEXT));
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.push(("TP_API_KEYS", &keys));
    all.push(("TP_MODEL_ALIASES", ALIASES));
    // One attempt per call, so each scripted step answers exactly one SDK call.
    all.push(("TP_PROVIDER_MAX_RETRIES", "0"));
    let tp = Tp::start(&all, &[]);
    Running {
        chat,
        _embeddings: embeddings,
        tp,
    }
}

fn owned(vars: Vec<(&str, String)>) -> Vec<(String, String)> {
    vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn weather_call() -> Step {
    Step::Reply(FakeReply::tool_calls(vec![FakeToolCall::new(
        "call_weather_1",
        "get_weather",
        json!({"city": "Paris"}),
    )]))
}

fn weather_json() -> Step {
    Step::Reply(FakeReply::text("{\"city\":\"Paris\",\"temperature_c\":21}"))
}

/// The answers each scenario's calls get, in the order the script makes them.
fn steps(scenario: &str) -> Vec<Step> {
    match scenario {
        "tools" => vec![
            weather_call(),
            Step::Reply(FakeReply::text(EXPECT_TEXT)),
            weather_call(),
        ],
        "json_schema" => vec![weather_json(), weather_json()],
        "stream" => vec![Step::Reply(FakeReply::text(EXPECT_TEXT)), weather_call()],
        "stream_error" => vec![Step::Reset(FakeReply::text(
            "an answer the provider cuts off half way through",
        ))],
        _ => Vec::new(),
    }
}

/// The tool names and the JSON schema each dialect's request carried, to check that the SDK's
/// request reached the provider translated.
fn tools_sent(upstream: Upstream, body: &Value) -> Vec<String> {
    let (list, name) = match upstream {
        Upstream::OpenAi => (&body["tools"], "/function/name"),
        Upstream::Anthropic => (&body["tools"], "/name"),
        Upstream::Bedrock => (&body["toolConfig"]["tools"], "/toolSpec/name"),
    };
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer(name).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

#[expect(
    clippy::print_stderr,
    reason = "a skipped test says so, like the PostgreSQL tests"
)]
async fn run(upstream: Upstream, scenario: &str) {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with the openai SDK (run `cargo xtask ci` to create .venv)");
        return;
    };
    let r = start(upstream).await;
    for step in steps(scenario) {
        r.chat.push(step);
    }
    let run = tokio::process::Command::new(&python)
        .arg(script())
        .arg(scenario)
        .env("TP_BASE_URL", format!("{}/v1", r.tp.url))
        .env("TP_API_KEY", KEY_ACME)
        .env("CHAT_MODEL", "gpt-4o")
        .env("EMBED_MODEL", "embed")
        .env("EXPECT_TEXT", EXPECT_TEXT)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the conformance script finished in time")
        .expect("the conformance script started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{upstream:?} {scenario}: {stdout}{stderr}\ntenant plane logs:\n{}",
        r.tp.logs()
    );
    assert!(stdout.contains(&format!("{scenario}: ok")), "{stdout}");
    assert_eq!(r.chat.pending_steps(), 0, "every scripted answer was used");
    let model_calls: Vec<Value> = r
        .chat
        .requests()
        .iter()
        .filter(|q| q.method == "POST")
        .map(|q| q.json())
        .collect();
    match scenario {
        "tools" => {
            assert!(model_calls.len() >= 3, "{model_calls:?}");
            for body in &model_calls {
                assert_eq!(tools_sent(upstream, body), ["get_weather"], "{body}");
            }
        }
        "stream" => {
            let streamed = r
                .chat
                .requests()
                .iter()
                .filter(|q| q.path.contains("stream") || q.json()["stream"] == true)
                .count();
            assert_eq!(streamed, 2, "both calls streamed upstream");
        }
        _ => {}
    }
}

macro_rules! conformance {
    ($module:ident, $upstream:expr) => {
        mod $module {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn chat() {
                run($upstream, "chat").await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tools() {
                run($upstream, "tools").await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn json_schema() {
                run($upstream, "json_schema").await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stream() {
                run($upstream, "stream").await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stream_error() {
                run($upstream, "stream_error").await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embeddings() {
                run($upstream, "embeddings").await
            }
        }
    };
}

conformance!(openai_upstream, Upstream::OpenAi);
conformance!(anthropic_upstream, Upstream::Anthropic);
conformance!(bedrock_upstream, Upstream::Bedrock);

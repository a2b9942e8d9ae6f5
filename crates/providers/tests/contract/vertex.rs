//! Harnesses for the Vertex AI dialect: Gemini 2.0 in a regional location, and a Gemini 3
//! model in the global location (which signs its function calls and wants the signatures
//! back). Plus tests of what only this dialect has: the token exchange and its cache.

use std::sync::Arc;
use std::time::Duration;

use atlasai_core::{ChatRequest, ProviderErrorKind, ProviderKind, ProviderSettings};
use atlasai_fakes::vertex::{self, FakeConfig};
use atlasai_fakes::{Fake, FakeReply, Recorded, Step};
use atlasai_providers::{HttpOptions, Provider, build_chat_provider};
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use crate::harness::{Harness, fast_opts, model_calls};

const PROJECT: &str = "atlasai-contract-7";

fn settings(base: &str, location: &str, model: &str, key: String) -> ProviderSettings {
    let mut s = ProviderSettings::new(ProviderKind::Vertex, model);
    s.endpoint = match Url::parse(base) {
        Ok(url) => Some(url),
        Err(e) => panic!("bad base URL {base:?}: {e}"),
    };
    s.region = Some(location.to_owned());
    s.gcp_project = Some(PROJECT.to_owned());
    s.service_account = Some(SecretString::from(key));
    s
}

async fn build(s: ProviderSettings, opts: HttpOptions) -> Arc<dyn Provider> {
    match build_chat_provider(&s, &opts).await {
        Ok(client) => client,
        Err(e) => panic!("could not build the Vertex client: {e}"),
    }
}

fn contents(req: &Recorded) -> Vec<Value> {
    req.json()["contents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn texts(parts: &Value) -> Vec<String> {
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

/// One Vertex setup: a project, location and model served by a fake.
pub struct VertexHarness<const GEMINI_3: bool>(Fake);

impl<const GEMINI_3: bool> VertexHarness<GEMINI_3> {
    fn location() -> &'static str {
        if GEMINI_3 { "global" } else { "us-central1" }
    }

    fn model() -> &'static str {
        if GEMINI_3 {
            "gemini-3-flash-preview"
        } else {
            "gemini-2.0-flash"
        }
    }
}

impl<const GEMINI_3: bool> Harness for VertexHarness<GEMINI_3> {
    const SUPPORTS_EMBEDDINGS: bool = true;
    const SUPPORTS_LIST_MODELS: bool = false;

    async fn start() -> Self {
        VertexHarness(vertex::start(PROJECT, Self::location(), Self::model()).await)
    }
    fn fake(&self) -> &Fake {
        &self.0
    }
    async fn client(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        self.client_at(&self.0.base_url, opts).await
    }
    async fn client_at(&self, base: &str, opts: HttpOptions) -> Arc<dyn Provider> {
        // The key's token_uri still points at the fake, so only model calls go to `base`.
        let key = vertex::service_account_json(&self.0);
        build(settings(base, Self::location(), Self::model(), key), opts).await
    }
    async fn client_with_bad_credentials(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        let key = vertex::service_account_json_with_unknown_key(&self.0);
        build(
            settings(&self.0.base_url, Self::location(), Self::model(), key),
            opts,
        )
        .await
    }

    fn is_model_call(req: &Recorded) -> bool {
        req.path.ends_with(":generateContent")
            || req.path.ends_with(":streamGenerateContent")
            || req.path.ends_with(":predict")
    }
    fn system_texts(req: &Recorded) -> Vec<String> {
        texts(&req.json()["systemInstruction"]["parts"])
    }
    fn turns(req: &Recorded) -> Vec<(String, String)> {
        contents(req)
            .iter()
            .filter_map(|c| {
                let t = texts(&c["parts"]);
                if t.is_empty() {
                    return None;
                }
                let role = if c["role"] == "model" {
                    "assistant"
                } else {
                    "user"
                };
                Some((role.to_owned(), t.join("\n")))
            })
            .collect()
    }
    fn tools_declared(req: &Recorded) -> Vec<String> {
        req.json()["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| {
                t["functionDeclarations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect()
    }
    fn tool_results(req: &Recorded) -> Vec<(String, String)> {
        contents(req)
            .iter()
            .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| {
                let r = p.get("functionResponse")?;
                Some((r["name"].as_str()?.to_owned(), r["response"].to_string()))
            })
            .collect()
    }
    fn json_schema_sent(req: &Recorded) -> Option<Value> {
        let schema = &req.json()["generationConfig"]["responseJsonSchema"];
        (!schema.is_null()).then(|| schema.clone())
    }
    fn was_streaming(req: &Recorded) -> bool {
        req.path.ends_with(":streamGenerateContent") && req.query.as_deref() == Some("alt=sse")
    }
}

/// Gemini 2.0 Flash in us-central1.
pub type Vertex = VertexHarness<false>;
/// A Gemini 3 model in the global location.
pub type VertexGemini3 = VertexHarness<true>;

fn token_requests(fake: &Fake) -> usize {
    fake.requests()
        .iter()
        .filter(|r| vertex::is_token_request(r))
        .count()
}

#[tokio::test]
async fn the_access_token_is_fetched_once_and_reused() {
    let h = Vertex::start().await;
    let client = h.client(fast_opts()).await;
    client.chat(&ChatRequest::user("one")).await.unwrap();
    client.chat(&ChatRequest::user("two")).await.unwrap();
    let stream = client
        .chat_stream(&ChatRequest::user("three"))
        .await
        .unwrap();
    atlasai_providers::collect_stream(stream, "m")
        .await
        .unwrap();
    assert_eq!(token_requests(&h.0), 1);
    let token =
        h.0.requests()
            .into_iter()
            .find(vertex::is_token_request)
            .unwrap();
    assert_eq!(
        token.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(model_calls(&h).len(), 3);
    assert!(model_calls(&h).iter().all(|r| {
        r.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer ya29."))
    }));
}

#[tokio::test]
async fn a_rejected_cached_token_is_replaced_and_the_call_repeated_once() {
    let h = Vertex::start().await;
    let client = h.client(fast_opts()).await;
    client.chat(&ChatRequest::user("warm up")).await.unwrap();
    h.0.push(Step::Fail {
        status: 401,
        retry_after: None,
    });
    h.0.push(Step::Reply(FakeReply::text("after a new token")));
    let resp = client.chat(&ChatRequest::user("again")).await.unwrap();
    assert_eq!(resp.content.as_deref(), Some("after a new token"));
    assert_eq!(token_requests(&h.0), 2);
    assert_eq!(model_calls(&h).len(), 3);

    // A fresh token that is rejected is not retried: the credentials are wrong, not stale.
    let client = h.client(fast_opts()).await;
    h.0.push(Step::Fail {
        status: 401,
        retry_after: None,
    });
    let err = client.chat(&ChatRequest::user("fresh")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Authentication, "{err}");
    assert_eq!(err.code.as_deref(), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let mut config = FakeConfig::new(PROJECT, "us-central1", "gemini-2.0-flash");
    config.token_lifetime_secs = 2;
    let fake = vertex::start_with(config).await;
    let key = vertex::service_account_json(&fake);
    let client = build(
        settings(&fake.base_url, "us-central1", "gemini-2.0-flash", key),
        fast_opts(),
    )
    .await;
    client.chat(&ChatRequest::user("one")).await.unwrap();
    // Past half the lifetime the token counts as about to expire.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    client.chat(&ChatRequest::user("two")).await.unwrap();
    assert_eq!(token_requests(&fake), 2);
}

#[tokio::test]
async fn a_key_google_does_not_know_names_the_reason() {
    let h = Vertex::start().await;
    let client = h.client_with_bad_credentials(fast_opts()).await;
    let err = client.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Authentication);
    assert!(
        err.message
            .contains("invalid_grant: Invalid JWT Signature."),
        "{err}"
    );
    assert!(err.message.contains(vertex::CLIENT_EMAIL), "{err}");
    assert!(model_calls(&h).is_empty());
}

#[tokio::test]
async fn a_model_the_project_does_not_have_is_not_found() {
    let h = Vertex::start().await;
    let key = vertex::service_account_json(&h.0);
    let client = build(
        settings(&h.0.base_url, "us-central1", "gemini-9-ultra", key),
        fast_opts(),
    )
    .await;
    let err = client.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::NotFound, "{err}");
    assert!(err.message.contains("Publisher Model"), "{err}");
}

#[tokio::test]
async fn gemini_3_signatures_survive_the_round_trip() {
    let h = VertexGemini3::start().await;
    let client = h.client(fast_opts()).await;
    h.0.push(Step::Reply(FakeReply::tool_calls(vec![
        atlasai_fakes::FakeToolCall::new("x", "get_weather", serde_json::json!({"city": "Oslo"})),
    ])));
    let tools = vec![atlasai_core::ToolDefinition {
        name: "get_weather".into(),
        description: None,
        parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        strict: None,
    }];
    let mut req = ChatRequest {
        tools,
        ..ChatRequest::user("Weather in Oslo?")
    };
    let stream = client.chat_stream(&req).await.unwrap();
    let first = atlasai_providers::collect_stream(stream, "m")
        .await
        .unwrap();
    req.messages.push(atlasai_core::Message::Assistant {
        content: None,
        tool_calls: first.tool_calls.clone(),
    });
    req.messages.push(atlasai_core::Message::tool(
        &first.tool_calls[0].id,
        "cloudy",
    ));
    // The fake rejects the second request unless the signature came back.
    client.chat(&req).await.unwrap();
    let sent = &model_calls(&h)[1];
    assert!(sent.json()["contents"][1]["parts"][0]["thoughtSignature"].is_string());
}

contract_suite!(vertex_suite, crate::vertex::Vertex);
contract_suite!(vertex_gemini3_suite, crate::vertex::VertexGemini3);

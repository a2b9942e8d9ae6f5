//! Harnesses for the Bedrock dialect, plus Bedrock-only tests: signing failures, Cohere
//! batching, Titan fan-out, model listing, stream exceptions, and the default credential chain
//! reading ECS container credentials.
//!
//! Bedrock serves chat and embeddings with different models, and the product builds two
//! clients for them (`build_chat_provider` with the chat model, `build_embedding_provider`
//! with the embedding model). The harness client does the same behind one `Provider`, so the
//! shared scenarios reach both through the real construction paths.

// Helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use atlasai_core::{
    AwsAuth, ChatRequest, ChatResponse, ContentPart, EmbeddingRequest, EmbeddingResponse,
    EmbeddingSettings, Message, ModelInfo, ProviderErrorKind, ProviderKind, ProviderSettings,
    ToolChoice, ToolDefinition,
};
use atlasai_fakes::{Fake, FakeReply, FakeToolCall, Recorded, Step, bedrock, embedding_for};
use atlasai_providers::{
    ChatStream, HttpOptions, Provider, ProviderError, ProviderInfo, RetryPolicy,
    build_chat_provider, build_embedding_provider, collect_stream,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use crate::harness::{Harness, fast_opts};

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEFAKE//session+token=";
const REGION: &str = "eu-central-1";
const CHAT_MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const TITAN: &str = "amazon.titan-embed-text-v2:0";
const PROFILE_ARN: &str = "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/eu.anthropic.claude-3-5-haiku-20241022-v1:0";
const COHERE_V4_PROFILE: &str = "eu.cohere.embed-v4:0";

fn keys(secret: &str, token: Option<&str>) -> AwsAuth {
    AwsAuth::StaticKeys {
        access_key_id: AKID.into(),
        secret_access_key: SecretString::from(secret),
        session_token: token.map(SecretString::from),
    }
}

fn chat_settings(base: &str, model: &str, aws: AwsAuth) -> ProviderSettings {
    let mut s = ProviderSettings::new(ProviderKind::Bedrock, model);
    s.region = Some(REGION.into());
    s.endpoint = Some(Url::parse(base).unwrap());
    s.aws = Some(aws);
    s
}

async fn chat_client(
    base: &str,
    model: &str,
    aws: AwsAuth,
    opts: &HttpOptions,
) -> Arc<dyn Provider> {
    build_chat_provider(&chat_settings(base, model, aws), opts)
        .await
        .unwrap()
}

async fn embed_client(
    base: &str,
    model: &str,
    aws: AwsAuth,
    opts: &HttpOptions,
) -> Arc<dyn Provider> {
    let settings = EmbeddingSettings::Bedrock {
        model: model.into(),
        region: REGION.into(),
        endpoint: Some(Url::parse(base).unwrap()),
        aws,
    };
    build_embedding_provider(&settings, opts)
        .await
        .unwrap()
        .unwrap()
}

/// A chat client and an embedding client behind one `Provider`.
#[derive(Debug)]
struct Split {
    chat: Arc<dyn Provider>,
    embed: Arc<dyn Provider>,
}

#[async_trait::async_trait]
impl Provider for Split {
    fn info(&self) -> &ProviderInfo {
        self.chat.info()
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.chat.chat(request).await
    }
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        self.chat.chat_stream(request).await
    }
    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        self.embed.embed(request).await
    }
    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        self.chat.list_models().await
    }
}

async fn split(
    base: &str,
    chat_model: &str,
    embed_model: &str,
    aws: AwsAuth,
    opts: HttpOptions,
) -> Arc<dyn Provider> {
    Arc::new(Split {
        chat: chat_client(base, chat_model, aws.clone(), &opts).await,
        embed: embed_client(base, embed_model, aws, &opts).await,
    })
}

fn messages(req: &Recorded) -> Vec<Value> {
    req.json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn texts(blocks: &Value) -> String {
    blocks
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

macro_rules! bedrock_inspectors {
    () => {
        fn is_model_call(req: &Recorded) -> bool {
            req.method == http::Method::POST && req.path.starts_with("/model/")
        }
        fn system_texts(req: &Recorded) -> Vec<String> {
            req.json()["system"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|b| b["text"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        }
        fn turns(req: &Recorded) -> Vec<(String, String)> {
            messages(req)
                .iter()
                .map(|m| (m["role"].as_str().unwrap().to_owned(), texts(&m["content"])))
                .collect()
        }
        fn tools_declared(req: &Recorded) -> Vec<String> {
            req.json()["toolConfig"]["tools"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|t| t["toolSpec"]["name"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        }
        fn tool_results(req: &Recorded) -> Vec<(String, String)> {
            messages(req)
                .iter()
                .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
                .filter_map(|b| b.get("toolResult").cloned())
                .map(|r| {
                    (
                        r["toolUseId"].as_str().unwrap().to_owned(),
                        texts(&r["content"]),
                    )
                })
                .collect()
        }
        fn json_schema_sent(req: &Recorded) -> Option<Value> {
            let schema =
                req.json()["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"]
                    .clone();
            schema.as_str().map(|s| serde_json::from_str(s).unwrap())
        }
        fn was_streaming(req: &Recorded) -> bool {
            req.path.ends_with("/converse-stream")
        }
    };
}

/// Static keys, a versioned model id, Titan v2 embeddings.
pub struct Bedrock(Fake);

impl Harness for Bedrock {
    const SUPPORTS_EMBEDDINGS: bool = true;
    const SUPPORTS_LIST_MODELS: bool = true;
    async fn start() -> Self {
        Bedrock(bedrock::start(AKID, SECRET, None, REGION, CHAT_MODEL).await)
    }
    fn fake(&self) -> &Fake {
        &self.0
    }
    async fn client(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        self.client_at(&self.0.base_url, opts).await
    }
    async fn client_at(&self, base: &str, opts: HttpOptions) -> Arc<dyn Provider> {
        split(base, CHAT_MODEL, TITAN, keys(SECRET, None), opts).await
    }
    async fn client_with_bad_credentials(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        let wrong = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEY";
        split(&self.0.base_url, CHAT_MODEL, TITAN, keys(wrong, None), opts).await
    }
    bedrock_inspectors!();
}

/// Temporary credentials (session token), an inference-profile ARN as the chat model and a
/// Cohere Embed v4 inference profile for embeddings.
pub struct BedrockProfile(Fake);

impl Harness for BedrockProfile {
    const SUPPORTS_EMBEDDINGS: bool = true;
    const SUPPORTS_LIST_MODELS: bool = true;
    async fn start() -> Self {
        BedrockProfile(bedrock::start(AKID, SECRET, Some(TOKEN), REGION, PROFILE_ARN).await)
    }
    fn fake(&self) -> &Fake {
        &self.0
    }
    async fn client(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        self.client_at(&self.0.base_url, opts).await
    }
    async fn client_at(&self, base: &str, opts: HttpOptions) -> Arc<dyn Provider> {
        split(
            base,
            PROFILE_ARN,
            COHERE_V4_PROFILE,
            keys(SECRET, Some(TOKEN)),
            opts,
        )
        .await
    }
    async fn client_with_bad_credentials(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        // An expired or revoked session token.
        let aws = keys(SECRET, Some("IQoJb3JpZ2luX2VjEXPIRED"));
        split(&self.0.base_url, PROFILE_ARN, COHERE_V4_PROFILE, aws, opts).await
    }
    bedrock_inspectors!();
}

contract_suite!(bedrock_suite, crate::bedrock::Bedrock);
contract_suite!(bedrock_profile_suite, crate::bedrock::BedrockProfile);

async fn start_plain() -> Fake {
    bedrock::start(AKID, SECRET, None, REGION, CHAT_MODEL).await
}

#[tokio::test]
async fn arn_model_ids_travel_as_one_encoded_segment_with_the_session_token() {
    let fake = bedrock::start(AKID, SECRET, Some(TOKEN), REGION, PROFILE_ARN).await;
    let client = chat_client(
        &fake.base_url,
        PROFILE_ARN,
        keys(SECRET, Some(TOKEN)),
        &fast_opts(),
    )
    .await;
    client.chat(&ChatRequest::user("hi")).await.unwrap();
    let sent = fake.last_request().unwrap();
    assert_eq!(
        sent.path,
        "/model/arn%3Aaws%3Abedrock%3Aeu-central-1%3A123456789012%3Ainference-profile%2Feu.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    assert_eq!(sent.header("x-amz-security-token"), Some(TOKEN));
    let auth = sent.header("authorization").unwrap();
    assert!(
        auth.contains(&format!("Credential={AKID}/"))
            && auth.contains("/eu-central-1/bedrock/aws4_request"),
        "{auth}"
    );
}

#[tokio::test]
async fn signing_failures_are_authentication_errors_with_the_aws_reason() {
    let fake = start_plain().await;
    let opts = fast_opts();
    let chat = ChatRequest::user("hi");

    let mut s = chat_settings(&fake.base_url, CHAT_MODEL, keys(SECRET, None));
    s.aws = Some(AwsAuth::StaticKeys {
        access_key_id: "AKIAUNKNOWNKEY000000".into(),
        secret_access_key: SecretString::from(SECRET),
        session_token: None,
    });
    let err = build_chat_provider(&s, &opts)
        .await
        .unwrap()
        .chat(&chat)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Authentication, "{err}");
    assert_eq!(err.code.as_deref(), Some("UnrecognizedClientException"));

    // A session token the service does not know.
    let client = chat_client(
        &fake.base_url,
        CHAT_MODEL,
        keys(SECRET, Some("stale")),
        &opts,
    )
    .await;
    let err = client.chat(&chat).await.unwrap_err();
    assert_eq!(
        err.code.as_deref(),
        Some("UnrecognizedClientException"),
        "{err}"
    );

    // Signed for another region than the endpoint serves.
    let mut s = chat_settings(&fake.base_url, CHAT_MODEL, keys(SECRET, None));
    s.region = Some("us-west-2".into());
    let err = build_chat_provider(&s, &opts)
        .await
        .unwrap()
        .chat(&chat)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Authentication, "{err}");
    assert_eq!(err.code.as_deref(), Some("InvalidSignatureException"));
    assert!(err.message.contains("valid region"), "{err}");

    // A wrong secret: the fake explains with the canonical request it expected.
    let client = chat_client(
        &fake.base_url,
        CHAT_MODEL,
        keys("not-the-secret", None),
        &opts,
    )
    .await;
    let err = client.chat(&chat).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("InvalidSignatureException"));
    assert!(
        err.message
            .contains("signature we calculated does not match"),
        "{err}"
    );
    assert!(
        err.message
            .contains("/model/anthropic.claude-3-5-haiku-20241022-v1%253A0/converse"),
        "{err}"
    );
    assert_eq!(
        model_calls_of(&fake),
        4,
        "authentication failures are not retried"
    );
}

fn model_calls_of(fake: &Fake) -> usize {
    fake.requests()
        .iter()
        .filter(|r| <Bedrock as Harness>::is_model_call(r))
        .count()
}

#[tokio::test]
async fn cohere_embeddings_go_in_batches_of_96_in_order() {
    let fake = start_plain().await;
    let client = embed_client(
        &fake.base_url,
        "cohere.embed-multilingual-v3",
        keys(SECRET, None),
        &fast_opts(),
    )
    .await;
    let inputs: Vec<String> = (0..200)
        .map(|i| format!("log line {i} {}", "x".repeat(i % 7)))
        .collect();
    let resp = client
        .embed(&EmbeddingRequest {
            inputs: inputs.clone(),
            dimensions: None,
        })
        .await
        .unwrap();
    assert_eq!(resp.vectors.len(), 200);
    for (input, vector) in inputs.iter().zip(&resp.vectors) {
        assert_eq!(vector, &embedding_for(input, 1024));
    }
    let sizes: Vec<usize> = fake
        .requests()
        .iter()
        .map(|r| r.json()["texts"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![96, 96, 8]);
    let first = &fake.requests()[0].json();
    assert_eq!(first["input_type"], "search_document");
    assert!(
        first.get("output_dimension").is_none(),
        "v3 has fixed dimensions"
    );
}

#[tokio::test]
async fn titan_embeddings_fan_out_keep_order_and_pass_dimensions() {
    let fake = start_plain().await;
    let client = embed_client(&fake.base_url, TITAN, keys(SECRET, None), &fast_opts()).await;
    let inputs: Vec<String> = (0..10)
        .map(|i| format!("incident {i} {}", "word ".repeat(i)))
        .collect();
    let resp = client
        .embed(&EmbeddingRequest {
            inputs: inputs.clone(),
            dimensions: Some(256),
        })
        .await
        .unwrap();
    for (input, vector) in inputs.iter().zip(&resp.vectors) {
        assert_eq!(vector, &embedding_for(input, 256));
    }
    let words: u32 = inputs
        .iter()
        .map(|s| s.split_whitespace().count() as u32)
        .sum();
    assert_eq!(resp.prompt_tokens, Some(words));
    let sent = fake.requests();
    assert_eq!(sent.len(), 10);
    assert!(
        sent.iter()
            .all(|r| r.json()["dimensions"] == 256 && r.json()["normalize"] == true)
    );

    // A failure of one call fails the request.
    fake.push(Step::Reply(FakeReply::text("")));
    fake.push(Step::ContextTooLong);
    let err = client
        .embed(&EmbeddingRequest {
            inputs: inputs.clone(),
            dimensions: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::ContextTooLong, "{err}");
}

#[tokio::test]
async fn listing_models_reads_foundation_model_summaries() {
    let fake = start_plain().await;
    let client = chat_client(&fake.base_url, CHAT_MODEL, keys(SECRET, None), &fast_opts()).await;
    let models = client.list_models().await.unwrap();
    let titan = models.iter().find(|m| m.id == TITAN).unwrap();
    assert_eq!(
        titan.display_name.as_deref(),
        Some("Titan Text Embeddings V2")
    );
    assert_eq!(titan.owned_by.as_deref(), Some("Amazon"));
    let sent = fake.last_request().unwrap();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("GET", "/foundation-models")
    );
}

#[tokio::test]
async fn a_stream_failing_before_its_first_event_is_retried_and_reported() {
    let fake = start_plain().await;
    fake.push(Step::Fail {
        status: 424,
        retry_after: None,
    });
    fake.push(Step::Reply(FakeReply::text("after a model error")));
    let client = chat_client(&fake.base_url, CHAT_MODEL, keys(SECRET, None), &fast_opts()).await;
    let stream = client.chat_stream(&ChatRequest::user("hi")).await.unwrap();
    let resp = collect_stream(stream, "m").await.unwrap();
    assert_eq!(resp.content.as_deref(), Some("after a model error"));
    assert_eq!(model_calls_of(&fake), 2);

    fake.push(Step::Fail {
        status: 424,
        retry_after: None,
    });
    let opts = HttpOptions {
        retry: RetryPolicy::none(),
        ..fast_opts()
    };
    let client = chat_client(&fake.base_url, CHAT_MODEL, keys(SECRET, None), &opts).await;
    let err = client
        .chat_stream(&ChatRequest::user("hi"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind, ProviderErrorKind::Unavailable, "{err}");
    assert_eq!(err.code.as_deref(), Some("ModelStreamErrorException"));
}

#[tokio::test]
async fn tool_history_without_tools_and_images_are_accepted() {
    let fake = start_plain().await;
    let client = chat_client(&fake.base_url, CHAT_MODEL, keys(SECRET, None), &fast_opts()).await;
    let tools = vec![ToolDefinition {
        name: "get_weather".into(),
        description: None,
        parameters: json!({"type": "object"}),
        strict: None,
    }];
    fake.push(Step::Reply(FakeReply::tool_calls(vec![FakeToolCall::new(
        "tooluse_1",
        "get_weather",
        json!({"city": "Oslo"}),
    )])));
    let mut req = ChatRequest {
        messages: vec![Message::User {
            content: vec![
                ContentPart::Text {
                    text: "weather here?".into(),
                },
                ContentPart::ImageUrl {
                    url: "data:image/jpeg;base64,/9j/4AAQSkZJRg==".into(),
                },
            ],
        }],
        tools: tools.clone(),
        ..ChatRequest::default()
    };
    let first = client.chat(&req).await.unwrap();
    req.messages.push(Message::Assistant {
        content: None,
        tool_calls: first.tool_calls.clone(),
    });
    req.messages
        .push(Message::tool("tooluse_1", "{\"sky\":\"grey\"}"));
    // The final answer without tools: the history is sent as text.
    req.tools.clear();
    client.chat(&req).await.unwrap();
    // With tools but ToolChoice::None, the tools stay declared because the history uses them.
    req.tools = tools;
    req.tool_choice = Some(ToolChoice::None);
    client.chat(&req).await.unwrap();
    let sent = fake.requests();
    assert!(sent[1].json().get("toolConfig").is_none());
    assert!(sent[2].json()["toolConfig"]["tools"].is_array());
}

const CHILD_ENV: &str = "ATLASAI_BEDROCK_ECS_CHILD_ENDPOINT";
const CHILD_EXPECT_ENV: &str = "ATLASAI_BEDROCK_ECS_CHILD_EXPECT";

/// Runs `default_chain_child` in a child process of this test binary, with an environment
/// that offers only ECS container credentials at the fake (a loopback full URI, as the
/// tenant-plane tests use). The chain reads the process environment, which tests must not
/// change, hence the child.
async fn run_default_chain_child(fake: &Fake, expect: &str) {
    let missing = "/nonexistent/atlasai-contract-tests/aws";
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "bedrock::default_chain_child",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &fake.base_url)
        .env(CHILD_EXPECT_ENV, expect)
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            bedrock::ecs_credentials_url(fake),
        )
        .env("AWS_CONFIG_FILE", missing)
        .env("AWS_SHARED_CREDENTIALS_FILE", missing)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ] {
        child.env_remove(var);
    }
    let out = child.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The default chain finds ECS container credentials, signs with their session token, and
/// fetches them once for several requests.
#[tokio::test]
async fn default_chain_reads_ecs_credentials_once() {
    let fake = bedrock::start(AKID, SECRET, Some(TOKEN), REGION, CHAT_MODEL).await;
    run_default_chain_child(&fake, "ok").await;
    assert_eq!(
        bedrock::credential_fetches(&fake),
        1,
        "credentials must be cached"
    );
    let calls: Vec<Recorded> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/model/"))
        .collect();
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|r| r.header("x-amz-security-token") == Some(TOKEN))
    );
}

/// When no provider in the chain has credentials (here the ECS endpoint answers 404), each
/// request fails with an authentication error that names the cause, and nothing is sent.
#[tokio::test]
async fn a_failing_default_chain_is_an_authentication_error() {
    let fake = start_plain().await;
    run_default_chain_child(&fake, "credentials error").await;
    assert!(bedrock::credential_fetches(&fake) >= 1);
    assert_eq!(model_calls_of(&fake), 0);
}

#[tokio::test]
#[ignore = "runs inside the default_chain tests, in a child process with its own environment"]
async fn default_chain_child() {
    let (Ok(base), Ok(expect)) = (std::env::var(CHILD_ENV), std::env::var(CHILD_EXPECT_ENV)) else {
        return;
    };
    let client = chat_client(&base, CHAT_MODEL, AwsAuth::DefaultChain, &fast_opts()).await;
    if expect == "ok" {
        client.chat(&ChatRequest::user("one")).await.unwrap();
        client.chat(&ChatRequest::user("two")).await.unwrap();
        let stream = client
            .chat_stream(&ChatRequest::user("three"))
            .await
            .unwrap();
        collect_stream(stream, "m").await.unwrap();
    } else {
        let err = client.chat(&ChatRequest::user("one")).await.unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::Authentication, "{err}");
        assert_eq!(err.code.as_deref(), Some("credentials"), "{err}");
        assert!(
            err.message.starts_with("could not load AWS credentials"),
            "{err}"
        );
    }
}

/// The fake, like AWS, explains a signature mismatch with the canonical request it expected,
/// which holds the session token; the message must reach the caller without it.
#[tokio::test]
async fn session_tokens_echoed_in_signature_errors_are_scrubbed() {
    let fake = bedrock::start(AKID, SECRET, Some(TOKEN), REGION, CHAT_MODEL).await;
    let aws = keys("not-the-secret", Some(TOKEN));
    let client = chat_client(&fake.base_url, CHAT_MODEL, aws, &fast_opts()).await;
    let err = client.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("InvalidSignatureException"));
    assert!(err.message.contains("x-amz-security-token:"), "{err}");
    assert!(!err.message.contains(TOKEN), "{err}");
}

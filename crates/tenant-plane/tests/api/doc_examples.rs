//! Every configuration example in the customer documentation
//! (`../shared/product-docs/003_*`: "Bring Your Own AI (BYOC)"), run as written against the real
//! binary, with the provider endpoint replaced by a local fake as the docs README prescribes.
//! Each test ends with the documented `POST /api/ai/test` call.

use atlasai_fakes::{FakeReply, Step, openai};
use serde_json::json;

use crate::support::{Tp, ai_test, ai_test_body, assert_ok_shape};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_as_documented() {
    let fake = openai::start(Some("sk-proj-abc123456789"), "gpt-4o-mini").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "openai"),
            ("BYOC_API_KEY", "sk-proj-abc123456789"),
            ("BYOC_MODEL", "gpt-4o-mini"),
            ("BYOC_ENDPOINT_URL", &endpoint),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "openai", "gpt-4o-mini");
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-proj-abc123456789")
    );
    assert_eq!(sent.json()["model"], "gpt-4o-mini");
    assert_eq!(sent.header("openai-organization"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_with_organization() {
    let fake = openai::start(Some("sk-proj-abc123456789"), "gpt-4o-mini").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "openai"),
            ("BYOC_API_KEY", "sk-proj-abc123456789"),
            ("BYOC_MODEL", "gpt-4o-mini"),
            ("BYOC_API_KEY_ORG", "org-abc123"),
            ("BYOC_ENDPOINT_URL", &endpoint),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "openai", "gpt-4o-mini");
    assert_eq!(
        fake.last_request().unwrap().header("openai-organization"),
        Some("org-abc123")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_deployment_name_as_model() {
    let fake = openai::start_azure("your-azure-openai-api-key", "gpt-4o").await;
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "azure"),
            ("BYOC_API_KEY", "your-azure-openai-api-key"),
            ("BYOC_ENDPOINT_URL", &fake.base_url),
            ("BYOC_MODEL", "gpt-4o"),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "azure", "gpt-4o");
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/openai/deployments/gpt-4o/chat/completions");
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(sent.header("api-key"), Some("your-azure-openai-api-key"));
    assert_eq!(
        sent.header("authorization"),
        None,
        "Azure keys go in api-key, not Authorization"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_private_endpoint_with_trailing_slash_and_api_version() {
    let fake = openai::start_azure("k-azure-private", "prod-gpt4o").await;
    let endpoint = format!("{}/", fake.base_url);
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "azure"),
            ("BYOC_API_KEY", "k-azure-private"),
            ("BYOC_ENDPOINT_URL", &endpoint),
            ("BYOC_MODEL", "prod-gpt4o"),
            ("BYOC_API_VERSION", "2024-02-15-preview"),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}");
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/openai/deployments/prod-gpt4o/chat/completions");
    assert_eq!(
        sent.query.as_deref(),
        Some("api-version=2024-02-15-preview")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_via_openai_provider_and_endpoint() {
    // Ollama ignores authentication; "Any non-empty string works".
    let fake = openai::start(None, "llama3.2").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "openai"),
            ("BYOC_API_KEY", "ollama"),
            ("BYOC_ENDPOINT_URL", &endpoint),
            ("BYOC_MODEL", "llama3.2"),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "openai", "llama3.2");
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    // Self-hosted servers get the widely supported max_tokens, not max_completion_tokens.
    assert!(sent.json().get("max_tokens").is_some(), "{}", sent.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_with_no_auth() {
    let fake = openai::start(None, "meta-llama/Llama-3.1-8B-Instruct").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "openai"),
            ("BYOC_API_KEY", "none"),
            ("BYOC_ENDPOINT_URL", &endpoint),
            ("BYOC_MODEL", "meta-llama/Llama-3.1-8B-Instruct"),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "openai", "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(
        fake.last_request().unwrap().header("authorization"),
        None,
        "BYOC_API_KEY=none means no key is sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_with_server_key_and_provider_vllm() {
    let fake = openai::start(Some("your-server-key"), "meta-llama/Llama-3.1-8B-Instruct").await;
    // A bare host:port is completed to the /v1 base every OpenAI-compatible server uses.
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "vllm"),
            ("BYOC_API_KEY", "your-server-key"),
            ("BYOC_ENDPOINT_URL", &fake.base_url),
            ("BYOC_MODEL", "meta-llama/Llama-3.1-8B-Instruct"),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "vllm", "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(fake.last_request().unwrap().path, "/v1/chat/completions");
}

/// The documented Helm `byoc:` block, byte for byte apart from the key and the endpoint.
pub fn helm_values(endpoint: &str, model: &str) -> String {
    format!(
        r#"# values.yaml
byoc:
  provider: openai          # Provider name
  apiKey: "sk-helm-values-key-000"  # API key (stored as Kubernetes Secret)
  model: "{model}"     # Model to use
  endpointUrl: "{endpoint}"  # Custom endpoint (for Azure / Ollama / vLLM)
  region: ""                # AWS region (for Bedrock)
  bedrockUseTaskRole: false # Use IAM task role (AWS ECS/EC2)
  bedrockModelId: ""        # Bedrock model ID
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_byoc_block_via_values_flag_and_env() {
    let fake = openai::start(Some("sk-helm-values-key-000"), "gpt-4o-mini").await;
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        helm_values(&format!("{}/v1", fake.base_url), "gpt-4o-mini"),
    )
    .unwrap();
    let path = values.to_str().unwrap();

    let tp = Tp::start(&[], &["--values", path]);
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "openai", "gpt-4o-mini");
    drop(tp);

    let tp = Tp::start(&[("TP_VALUES_FILE", path)], &[]);
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "openai", "gpt-4o-mini");

    // Environment variables win over the values file.
    drop(tp);
    let tp = Tp::start(&[("TP_VALUES_FILE", path), ("BYOC_MODEL", "gpt-4o")], &[]);
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 503, "the fake only serves gpt-4o-mini: {body}");
    assert_eq!(body["model"], "gpt-4o");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_openai() {
    let fake = openai::start(Some("sk-embeddings-key-01"), "").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let tp = Tp::start(
        &[
            ("EMBEDDING_PROVIDER", "openai"),
            ("OPENAI_API_KEY", "sk-embeddings-key-01"),
            ("EMBEDDING_ENDPOINT_URL", &endpoint),
        ],
        &[],
    );
    let (status, body) = ai_test_body(&tp.url, json!({"test": true, "target": "embeddings"})).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "openai", "text-embedding-3-small");
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.json()["model"], "text-embedding-3-small");
    // With embeddings but no chat provider, the chat test still says how to configure one.
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "AI provider not configured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_fallback_needs_no_model() {
    let tp = Tp::start(&[("EMBEDDING_PROVIDER", "fallback")], &[]);
    let (status, body) = ai_test_body(&tp.url, json!({"test": true, "target": "embeddings"})).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "fallback", "keyword");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failure_is_503_with_the_reason_and_health_stays_up() {
    let fake = openai::start(Some("sk-proj-failing-000001"), "gpt-4o-mini").await;
    // One attempt and one retry (TP_PROVIDER_MAX_RETRIES=1), both refused.
    for _ in 0..2 {
        fake.push(Step::Fail {
            status: 503,
            retry_after: None,
        });
    }
    let endpoint = format!("{}/v1", fake.base_url);
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "openai"),
            ("BYOC_API_KEY", "sk-proj-failing-000001"),
            ("BYOC_MODEL", "gpt-4o-mini"),
            ("BYOC_ENDPOINT_URL", &endpoint),
            ("TP_PROVIDER_MAX_RETRIES", "1"),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["provider"], "openai");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["error"], "AI provider temporarily unavailable");
    assert!(
        body["detail"].as_str().unwrap().contains("overloaded"),
        "{body}"
    );
    assert_eq!(fake.requests().len(), 2, "one attempt and one retry");
    // Non-AI endpoints are unaffected.
    let health = crate::support::client()
        .get(format!("{}/readyz", tp.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Once the provider is back, the next test passes: nothing was cached as broken.
    fake.push(Step::Reply(FakeReply::text("ok")));
    let (status, _) = ai_test(&tp.url).await;
    assert_eq!(status, 200);
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_with_access_keys() {
    let model = "anthropic.claude-3-haiku-20240307-v1:0";
    let fake = atlasai_fakes::bedrock::start(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        None,
        "us-east-1",
        model,
    )
    .await;
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "bedrock"),
            ("BYOC_REGION", "us-east-1"),
            ("BYOC_AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "BYOC_AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            ("BYOC_MODEL", model),
            // The VPC-endpoint override, pointed at the fake.
            ("BYOC_ENDPOINT_URL", &fake.base_url),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}\n{}", tp.logs());
    assert_ok_shape(&body, "bedrock", model);
    let sent = fake.last_request().unwrap();
    // The fake verified the SigV4 signature; the model id travels encoded as one segment.
    assert_eq!(
        sent.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert!(
        sent.header("authorization")
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_with_task_role_from_the_container_credentials_endpoint() {
    let model = "anthropic.claude-3-haiku-20240307-v1:0";
    let fake = atlasai_fakes::bedrock::start(
        "ASIATASKROLEEXAMPLE1",
        "task-role-secret-key-example-0000",
        Some("task-role-session-token"),
        "us-east-1",
        model,
    )
    .await;
    let creds = atlasai_fakes::bedrock::ecs_credentials_url(&fake);
    let tp = Tp::start(
        &[
            // As documented: no provider, no keys.
            ("TP_BEDROCK_USE_TASK_ROLE", "1"),
            ("TP_BEDROCK_MODEL_ID", model),
            // What ECS puts into every task's environment.
            ("AWS_REGION", "us-east-1"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &creds),
            ("BYOC_ENDPOINT_URL", &fake.base_url),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}\n{}", tp.logs());
    assert_ok_shape(&body, "bedrock", model);
    let (status, _) = ai_test(&tp.url).await;
    assert_eq!(status, 200);
    assert_eq!(
        atlasai_fakes::bedrock::credential_fetches(&fake),
        1,
        "credentials are cached, not fetched per request"
    );
    let signed = fake.last_request().unwrap();
    assert_eq!(
        signed.header("x-amz-security-token"),
        Some("task-role-session-token")
    );
    assert!(!tp.logs().contains("task-role-secret-key-example-0000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_task_role_from_helm_values() {
    let model = "anthropic.claude-3-sonnet-20240229-v1:0";
    let fake = atlasai_fakes::bedrock::start(
        "ASIAHELMROLEEXAMPLE",
        "helm-role-secret-key-example-000",
        Some("helm-role-token"),
        "eu-west-1",
        model,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        format!(
            "byoc:\n  provider: bedrock\n  apiKey: \"\"\n  model: \"\"\n  endpointUrl: \"{}\"\n  region: \"eu-west-1\"\n  bedrockUseTaskRole: true\n  bedrockModelId: \"{model}\"\n",
            fake.base_url
        ),
    )
    .unwrap();
    let creds = atlasai_fakes::bedrock::ecs_credentials_url(&fake);
    let tp = Tp::start(
        &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &creds)],
        &["--values", values.to_str().unwrap()],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}\n{}", tp.logs());
    assert_ok_shape(&body, "bedrock", model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_embeddings_with_the_same_role() {
    let fake = atlasai_fakes::bedrock::start(
        "ASIAEMBEDROLEEXAMPLE",
        "embed-role-secret-key-example-00",
        Some("embed-role-token"),
        "us-east-1",
        "unused",
    )
    .await;
    let creds = atlasai_fakes::bedrock::ecs_credentials_url(&fake);
    let tp = Tp::start(
        &[
            ("EMBEDDING_PROVIDER", "bedrock"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &creds),
            ("EMBEDDING_ENDPOINT_URL", &fake.base_url),
        ],
        &[],
    );
    let (status, body) = ai_test_body(&tp.url, json!({"test": true, "target": "embeddings"})).await;
    assert_eq!(status, 200, "{body}\n{}", tp.logs());
    assert_ok_shape(&body, "bedrock", "amazon.titan-embed-text-v2:0");
    assert_eq!(
        fake.last_request().unwrap().path,
        "/model/amazon.titan-embed-text-v2%3A0/invoke"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_direct() {
    let fake = atlasai_fakes::anthropic::start(
        Some("sk-ant-api03-example-key"),
        "claude-3-5-sonnet-20241022",
    )
    .await;
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "anthropic"),
            ("BYOC_API_KEY", "sk-ant-api03-example-key"),
            ("BYOC_MODEL", "claude-3-5-sonnet-20241022"),
            // A customer proxy in front of api.anthropic.com, here the fake.
            ("BYOC_ENDPOINT_URL", &fake.base_url),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}");
    assert_ok_shape(&body, "anthropic", "claude-3-5-sonnet-20241022");
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-api03-example-key"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_with_a_service_account_key_file() {
    let fake = atlasai_fakes::vertex::start("acme-prod", "us-central1", "gemini-2.0-flash").await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sa.json");
    std::fs::write(&key, atlasai_fakes::vertex::service_account_json(&fake)).unwrap();
    let tp = Tp::start(
        &[
            ("BYOC_PROVIDER", "vertex"),
            ("BYOC_GCP_PROJECT", "acme-prod"),
            ("BYOC_REGION", "us-central1"),
            ("BYOC_API_KEY_FILE", key.to_str().unwrap()),
            ("BYOC_MODEL", "gemini-2.0-flash"),
            ("BYOC_ENDPOINT_URL", &fake.base_url),
        ],
        &[],
    );
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 200, "{body}\n{}", tp.logs());
    assert_ok_shape(&body, "vertex", "gemini-2.0-flash");
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.contains(&"/token".to_owned()), "{paths:?}");
    assert!(
        paths.contains(&"/v1/projects/acme-prod/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent".to_owned()),
        "{paths:?}"
    );
    assert!(!tp.logs().contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_command_prints_the_endpoint_answer_and_exits_by_outcome() {
    let fake = openai::start(None, "llama3.2").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let vars: Vec<(String, String)> = [
        ("BYOC_PROVIDER", "ollama"),
        ("BYOC_ENDPOINT_URL", endpoint.as_str()),
        ("BYOC_MODEL", "llama3.2"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let (code, stdout, stderr) =
        crate::support::run_cmd_async(vars, vec!["test-connection".into()]).await;
    assert_eq!(code, 0, "{stderr}");
    let body: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_ok_shape(&body, "ollama", "llama3.2");

    let (code, stdout, _) =
        crate::support::run_cmd_async(Vec::new(), vec!["test-connection".into()]).await;
    assert_eq!(code, 78);
    let body: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(body["error"], "AI provider not configured");

    let (code, stdout, _) = crate::support::run_cmd_async(
        Vec::new(),
        vec!["test-connection".into(), "--embeddings".into()],
    )
    .await;
    assert_eq!(code, 0, "keyword fallback needs no model");
    assert!(stdout.contains("\"provider\":\"fallback\""), "{stdout}");
}

//! Harnesses for the OpenAI dialect: OpenAI itself, Azure deployments, and a compatible
//! server without authentication (vLLM with `BYOC_API_KEY=none`).

use std::sync::Arc;

use atlasai_core::{ProviderKind, ProviderSettings};
use atlasai_fakes::{Fake, Recorded, openai};
use atlasai_providers::{HttpOptions, Provider, build_chat_provider};
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use crate::harness::Harness;

const KEY: &str = "sk-proj-contract-test-key-0001";

fn settings(kind: ProviderKind, base: &str, model: &str, key: Option<&str>) -> ProviderSettings {
    let mut s = ProviderSettings::new(kind, model);
    s.endpoint = Some(Url::parse(base).unwrap());
    s.api_key = key.map(SecretString::from);
    s
}

async fn build(s: ProviderSettings, opts: HttpOptions) -> Arc<dyn Provider> {
    build_chat_provider(&s, &opts).await.unwrap()
}

fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn messages(req: &Recorded) -> Vec<Value> {
    req.json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

macro_rules! openai_inspectors {
    () => {
        fn is_model_call(req: &Recorded) -> bool {
            req.method == http::Method::POST
        }
        fn system_texts(req: &Recorded) -> Vec<String> {
            messages(req)
                .iter()
                .filter(|m| m["role"] == "system")
                .map(|m| content_text(&m["content"]))
                .collect()
        }
        fn turns(req: &Recorded) -> Vec<(String, String)> {
            messages(req)
                .iter()
                .filter(|m| m["role"] == "user" || m["role"] == "assistant")
                .map(|m| {
                    (
                        m["role"].as_str().unwrap().to_owned(),
                        content_text(&m["content"]),
                    )
                })
                .collect()
        }
        fn tools_declared(req: &Recorded) -> Vec<String> {
            req.json()["tools"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        }
        fn tool_results(req: &Recorded) -> Vec<(String, String)> {
            messages(req)
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| {
                    (
                        m["tool_call_id"].as_str().unwrap().to_owned(),
                        content_text(&m["content"]),
                    )
                })
                .collect()
        }
        fn json_schema_sent(req: &Recorded) -> Option<Value> {
            let rf = &req.json()["response_format"];
            (rf["type"] == "json_schema").then(|| rf["json_schema"]["schema"].clone())
        }
        fn was_streaming(req: &Recorded) -> bool {
            req.json()["stream"] == true
        }
    };
}

/// api.openai.com.
pub struct OpenAi(Fake);

impl Harness for OpenAi {
    const SUPPORTS_EMBEDDINGS: bool = true;
    const SUPPORTS_LIST_MODELS: bool = true;
    async fn start() -> Self {
        OpenAi(openai::start(Some(KEY), "gpt-4o-mini").await)
    }
    fn fake(&self) -> &Fake {
        &self.0
    }
    async fn client(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        self.client_at(&self.0.base_url, opts).await
    }
    async fn client_at(&self, base: &str, opts: HttpOptions) -> Arc<dyn Provider> {
        build(
            settings(
                ProviderKind::OpenAi,
                &format!("{base}/v1"),
                "gpt-4o-mini",
                Some(KEY),
            ),
            opts,
        )
        .await
    }
    async fn client_with_bad_credentials(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        let base = format!("{}/v1", self.0.base_url);
        build(
            settings(
                ProviderKind::OpenAi,
                &base,
                "gpt-4o-mini",
                Some("sk-wrong-key-123456"),
            ),
            opts,
        )
        .await
    }
    openai_inspectors!();
}

/// An Azure OpenAI resource with one deployment.
pub struct Azure(Fake);

impl Harness for Azure {
    const SUPPORTS_EMBEDDINGS: bool = true;
    const SUPPORTS_LIST_MODELS: bool = true;
    async fn start() -> Self {
        Azure(openai::start_azure(KEY, "prod-gpt4o").await)
    }
    fn fake(&self) -> &Fake {
        &self.0
    }
    async fn client(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        self.client_at(&self.0.base_url, opts).await
    }
    async fn client_at(&self, base: &str, opts: HttpOptions) -> Arc<dyn Provider> {
        build(
            settings(ProviderKind::Azure, base, "prod-gpt4o", Some(KEY)),
            opts,
        )
        .await
    }
    async fn client_with_bad_credentials(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        build(
            settings(
                ProviderKind::Azure,
                &self.0.base_url,
                "prod-gpt4o",
                Some("wrong-azure-key"),
            ),
            opts,
        )
        .await
    }
    fn is_model_call(req: &Recorded) -> bool {
        req.method == http::Method::POST
            && req
                .query
                .as_deref()
                .unwrap_or_default()
                .contains("api-version=")
    }
    fn system_texts(req: &Recorded) -> Vec<String> {
        <OpenAi as Harness>::system_texts(req)
    }
    fn turns(req: &Recorded) -> Vec<(String, String)> {
        <OpenAi as Harness>::turns(req)
    }
    fn tools_declared(req: &Recorded) -> Vec<String> {
        <OpenAi as Harness>::tools_declared(req)
    }
    fn tool_results(req: &Recorded) -> Vec<(String, String)> {
        <OpenAi as Harness>::tool_results(req)
    }
    fn json_schema_sent(req: &Recorded) -> Option<Value> {
        <OpenAi as Harness>::json_schema_sent(req)
    }
    fn was_streaming(req: &Recorded) -> bool {
        <OpenAi as Harness>::was_streaming(req)
    }
}

/// A self-hosted OpenAI-compatible server (vLLM) with no API key.
pub struct Compatible(Fake);

impl Harness for Compatible {
    const SUPPORTS_EMBEDDINGS: bool = true;
    const SUPPORTS_LIST_MODELS: bool = true;
    async fn start() -> Self {
        // vLLM started with --api-key: the key is "none" for the harness' bad-credential case.
        Compatible(openai::start(Some("vllm-server-key"), "meta-llama/Llama-3.1-8B-Instruct").await)
    }
    fn fake(&self) -> &Fake {
        &self.0
    }
    async fn client(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        self.client_at(&self.0.base_url, opts).await
    }
    async fn client_at(&self, base: &str, opts: HttpOptions) -> Arc<dyn Provider> {
        let s = settings(
            ProviderKind::Vllm,
            &format!("{base}/v1"),
            "meta-llama/Llama-3.1-8B-Instruct",
            Some("vllm-server-key"),
        );
        build(s, opts).await
    }
    async fn client_with_bad_credentials(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        // `none` means "send no key", which a server started with --api-key rejects.
        let base = format!("{}/v1", self.0.base_url);
        build(
            settings(
                ProviderKind::Vllm,
                &base,
                "meta-llama/Llama-3.1-8B-Instruct",
                Some("none"),
            ),
            opts,
        )
        .await
    }
    openai_inspectors!();
}

/// Another harness with every request sent through reqwest: the fakes serve plain HTTP, which
/// the OpenAI dialect otherwise sends through its direct client (`direct.rs`). TLS endpoints,
/// proxies and the control plane's public-only egress take the reqwest path in production.
pub struct ViaReqwest<H>(H);

impl<H: Harness> Harness for ViaReqwest<H> {
    const SUPPORTS_EMBEDDINGS: bool = H::SUPPORTS_EMBEDDINGS;
    const SUPPORTS_LIST_MODELS: bool = H::SUPPORTS_LIST_MODELS;
    async fn start() -> Self {
        ViaReqwest(H::start().await)
    }
    fn fake(&self) -> &Fake {
        self.0.fake()
    }
    async fn client(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        self.0.client(reqwest_only(opts)).await
    }
    async fn client_at(&self, base: &str, opts: HttpOptions) -> Arc<dyn Provider> {
        self.0.client_at(base, reqwest_only(opts)).await
    }
    async fn client_with_bad_credentials(&self, opts: HttpOptions) -> Arc<dyn Provider> {
        self.0.client_with_bad_credentials(reqwest_only(opts)).await
    }
    fn is_model_call(req: &Recorded) -> bool {
        H::is_model_call(req)
    }
    fn system_texts(req: &Recorded) -> Vec<String> {
        H::system_texts(req)
    }
    fn turns(req: &Recorded) -> Vec<(String, String)> {
        H::turns(req)
    }
    fn tools_declared(req: &Recorded) -> Vec<String> {
        H::tools_declared(req)
    }
    fn tool_results(req: &Recorded) -> Vec<(String, String)> {
        H::tool_results(req)
    }
    fn json_schema_sent(req: &Recorded) -> Option<Value> {
        H::json_schema_sent(req)
    }
    fn was_streaming(req: &Recorded) -> bool {
        H::was_streaming(req)
    }
}

fn reqwest_only(opts: HttpOptions) -> HttpOptions {
    HttpOptions {
        direct_http: false,
        ..opts
    }
}

contract_suite!(openai_suite, crate::openai::OpenAi);
contract_suite!(azure_suite, crate::openai::Azure);
contract_suite!(compatible_suite, crate::openai::Compatible);
contract_suite!(
    openai_via_reqwest_suite,
    crate::openai::ViaReqwest<crate::openai::OpenAi>
);
contract_suite!(
    azure_via_reqwest_suite,
    crate::openai::ViaReqwest<crate::openai::Azure>
);

/// Serves one redirect per connection to `location`, answering whatever request comes first.
async fn redirect_server(location: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let location = location.clone();
            tokio::spawn(async move {
                // The request is small; its first read holds the whole head.
                let mut buf = vec![0u8; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 308 Permanent Redirect\r\nlocation: {location}?token=secret\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    base
}

/// Neither transport follows a redirect to another origin: the direct client reports every
/// redirect with its target (without the query), and reqwest's policy refuses a hop elsewhere,
/// where Anthropic's `x-api-key` or Azure's `api-key` would have gone along. Neither retries.
#[tokio::test]
async fn redirects_to_another_origin_are_refused_on_both_transports() {
    use atlasai_core::{ChatRequest, ProviderErrorKind};

    let h = OpenAi::start().await;
    let target = format!("{}/v1/chat/completions", h.0.base_url);
    let redirecting = redirect_server(target.clone()).await;

    let direct = h.client_at(&redirecting, crate::harness::fast_opts()).await;
    let err = direct.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::BadRequest, "{err}");
    assert_eq!(err.code.as_deref(), Some("redirect"), "{err}");
    assert_eq!(err.status, Some(308), "{err}");
    let message = err.to_string();
    assert!(message.contains(&target), "{message}");
    assert!(!message.contains("secret"), "{message}");

    let via_reqwest = h
        .client_at(&redirecting, reqwest_only(crate::harness::fast_opts()))
        .await;
    let err = via_reqwest
        .chat(&ChatRequest::user("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::BadRequest, "{err}");
    assert_eq!(err.code.as_deref(), Some("redirect"), "{err}");
    let message = err.to_string();
    assert!(message.contains(&h.0.base_url), "{message}");
    assert!(!message.contains("secret"), "{message}");
    assert!(h.0.requests().is_empty(), "a redirect was followed");
}

/// Both transports identify themselves alike and carry the key and organisation.
#[tokio::test]
async fn both_transports_send_the_same_identifying_headers() {
    use atlasai_core::ChatRequest;

    let h = OpenAi::start().await;
    for opts in [
        crate::harness::fast_opts(),
        reqwest_only(crate::harness::fast_opts()),
    ] {
        h.0.clear_requests();
        let mut s = settings(
            ProviderKind::OpenAi,
            &format!("{}/v1", h.0.base_url),
            "gpt-4o-mini",
            Some(KEY),
        );
        s.organization = Some("org-contract".to_owned());
        let client = build(s, opts.clone()).await;
        client.chat(&ChatRequest::user("hi")).await.unwrap();
        let sent = h.0.last_request().unwrap();
        let ua = sent.header("user-agent").unwrap_or_default();
        assert!(
            ua.starts_with("atlasai-byoc/"),
            "{ua} (direct_http {})",
            opts.direct_http
        );
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(sent.header("openai-organization"), Some("org-contract"));
        assert_eq!(sent.header("content-type"), Some("application/json"));
    }
}

//! The data endpoints keep working when the AI provider is down, the search index is rebuilt
//! from the store after it is deleted, a bad database URL is refused before start-up, and
//! correlation uses embeddings when a provider is configured.

use std::time::Duration;

use atlasai_fakes::{Step, openai};
use serde_json::json;

use crate::client::{Api, Backend, Server, both_backends};
use crate::support::{Tp, ai_test, base_env, run_cmd};

both_backends!(
    everything_but_ai_works_with_the_provider_down,
    correlation_uses_embeddings_when_configured
);

/// An address where nothing listens: the provider is down.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/v1")
}

async fn everything_but_ai_works_with_the_provider_down(backend: Backend) {
    // A chat provider that answers 503 to everything, and an embedding endpoint that refuses
    // connections.
    let fake = openai::start(Some("sk-test-0123456789"), "gpt-4o-mini").await;
    for _ in 0..200 {
        fake.push(Step::Fail {
            status: 503,
            retry_after: None,
        });
    }
    let chat = format!("{}/v1", fake.base_url);
    let embeddings = closed_port();
    let Some(server) = Server::start(
        backend,
        "everything_but_ai_works_with_the_provider_down",
        &[
            ("BYOC_PROVIDER", "openai"),
            ("BYOC_API_KEY", "sk-test-0123456789"),
            ("BYOC_MODEL", "gpt-4o-mini"),
            ("BYOC_ENDPOINT_URL", &chat),
            ("EMBEDDING_PROVIDER", "openai"),
            ("EMBEDDING_ENDPOINT_URL", &embeddings),
            ("EMBEDDING_API_KEY", "sk-test-0123456789"),
            ("TP_PROVIDER_MAX_RETRIES", "0"),
        ],
    )
    .await
    else {
        return;
    };
    let api = server.as_tenant("acme");
    let (status, body) = ai_test(&server.tp.url).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "AI provider temporarily unavailable");

    let incident = api.incident("Payments latency", "payments-api").await;
    let (status, _) = api
        .post(
            &format!("/api/incidents/{incident}/changes"),
            &json!({"kind": "deploy", "service": "payments-api", "summary": "v3"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = api
        .logs(
            &format!("?incident_id={incident}&service=payments-api"),
            &[json!({"level": "error", "message": "upstream timed out after 30s"})],
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = api
        .post(
            "/api/runbooks",
            &json!({"title": "Latency", "content": "check upstream timeouts"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, corr) = api.post("/api/alerts", &json!({"title": "Payments latency high", "service": "payments-api", "severity": "high"})).await;
    assert_eq!(status, 200, "{corr}");
    assert_eq!(
        corr["correlation"]["method"], "keyword",
        "falls back to keywords: {corr}"
    );
    assert!(
        corr["correlation"]["embedding_error"]
            .as_str()
            .unwrap()
            .contains("embedding"),
        "{corr}"
    );
    let (status, _) = api
        .patch(
            &format!("/api/incidents/{incident}"),
            &json!({"status": "acknowledged"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api.get(&format!("/api/incidents/{incident}")).await;
    assert_eq!(status, 200);
    let (status, _) = api.get("/api/incidents?status=acknowledged").await;
    assert_eq!(status, 200);
    let (status, _) = api.get(&format!("/api/logs?incident_id={incident}")).await;
    assert_eq!(status, 200);
    api.indexed().await;
    let found = api.search("q=upstream%20timed%20out&kind=log").await;
    assert_eq!(found["mode"], "keyword");
    assert!(found["mode_reason"].is_string(), "{found}");
    assert_eq!(found["results"].as_array().unwrap().len(), 1, "{found}");
    // The AI features answer with the connection test's error shape; natural-language search
    // falls back to searching the question as typed.
    for (path, body) in [
        ("/api/ai/rca", json!({"incident_id": incident})),
        ("/api/ai/runbook", json!({"incident_id": incident})),
        (
            "/api/ai/chat",
            json!({"messages": [{"role": "user", "content": "what broke?"}]}),
        ),
    ] {
        let (status, err) = api.post(path, &body).await;
        assert_eq!(status, 503, "{path}: {err}");
        assert_eq!(err["status"], "error", "{path}: {err}");
        assert_eq!(
            err["error"], "AI provider temporarily unavailable",
            "{path}: {err}"
        );
        assert_eq!(err["provider"], "openai", "{path}: {err}");
        assert_eq!(err["model"], "gpt-4o-mini", "{path}: {err}");
    }
    let (status, nl) = api
        .post("/api/ai/search", &json!({"query": "upstream timed out"}))
        .await;
    assert_eq!(status, 200, "{nl}");
    assert_eq!(nl["interpreted_by"], "plain", "{nl}");
    assert!(
        nl["fallback_reason"]
            .as_str()
            .unwrap()
            .contains("AI provider temporarily unavailable"),
        "{nl}"
    );
    assert_eq!(nl["results"]["results"][0]["kind"], "log", "{nl}");
    assert_eq!(
        nl["results"]["results"][0]["snippet"], "upstream timed out after 30s",
        "{nl}"
    );
    let (status, s) = api.get("/api/search/status").await;
    assert_eq!(status, 200);
    assert_eq!(
        s["embeddings"]["vectors"], 0,
        "nothing could be embedded: {s}"
    );
    let logs = server
        .tp
        .logs_containing("embedding failed; keyword search is unaffected")
        .await;
    assert!(
        logs.contains("embedding failed; keyword search is unaffected"),
        "the outage is logged"
    );
}

async fn correlation_uses_embeddings_when_configured(backend: Backend) {
    let fake = openai::start(None, "").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let Some(server) = Server::start(
        backend,
        "correlation_uses_embeddings_when_configured",
        &[
            ("EMBEDDING_PROVIDER", "openai"),
            ("EMBEDDING_ENDPOINT_URL", &endpoint),
            ("EMBEDDING_MODEL", "m1"),
            // The fake's vectors are a hash of the text, dominated by its length: unrelated
            // texts of similar length are close, so only identical text may count as a match.
            ("TP_CORRELATION_EMBEDDING_THRESHOLD", "0.99999"),
        ],
    )
    .await
    else {
        return;
    };
    let api = server.as_tenant("acme");
    let alert = json!({"title": "Queue depth above 10k", "service": "billing", "severity": "high", "description": "orders-queue"});
    let (status, first) = api.post("/api/alerts", &alert).await;
    assert_eq!(status, 201, "{first}");
    // The incident opened from the alert has the same text, so the same vector (the fake's
    // vectors are a hash of the text): cosine 1.
    let (status, second) = api.post("/api/alerts", &alert).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["correlation"]["method"], "embedding");
    assert_eq!(second["correlation"]["threshold"], 0.99999);
    assert!(
        second["correlation"]["score"].as_f64().unwrap() > 0.999,
        "{second}"
    );
    let (status, third) = api.post("/api/alerts", &json!({"title": "Certificate expires in 3 days", "service": "billing", "severity": "low"})).await;
    assert_eq!(status, 201, "{third}");
    assert_eq!(third["correlation"]["method"], "embedding");
    let embed_calls = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/embeddings"))
        .count();
    assert!(embed_calls >= 2, "one call per correlated alert");
    assert!(
        server
            .tp
            .logs_containing("\"feature\":\"correlation\"")
            .await
            .contains("\"feature\":\"correlation\""),
        "correlation calls are recorded"
    );
}

async fn search_hits(api: &Api, q: &str) -> usize {
    api.search(q).await["results"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_index_is_rebuilt_after_its_directory_is_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let env = base_env(tmp.path());
    let tp = tokio::task::block_in_place(|| Tp::start_with_env(env.clone(), &[], None));
    let api = Api {
        url: tp.url.clone(),
        tenant: "acme".into(),
    };
    let incident = api.incident("Cache stampede", "session-cache").await;
    let lines: Vec<serde_json::Value> = (0..300)
        .map(|i| json!({"level": "warn", "message": format!("cache miss storm key user:{i}")}))
        .collect();
    let (status, _) = api
        .logs(
            &format!("?incident_id={incident}&service=session-cache"),
            &lines,
        )
        .await;
    assert_eq!(status, 201);
    api.indexed().await;
    assert_eq!(search_hits(&api, "q=stampede").await, 1);
    assert_eq!(
        search_hits(&api, "q=%22cache%20miss%20storm%22&kind=log&limit=100").await,
        100
    );
    drop(tp);

    std::fs::remove_dir_all(tmp.path().join("index")).unwrap();
    let tp = tokio::task::block_in_place(|| Tp::start_with_env(env, &[], None));
    let api = Api {
        url: tp.url.clone(),
        tenant: "acme".into(),
    };
    api.indexed().await;
    assert_eq!(search_hits(&api, "q=stampede").await, 1);
    assert_eq!(
        search_hits(&api, "q=%22cache%20miss%20storm%22&kind=log&limit=100").await,
        100
    );
    let (_, detail) = api.get(&format!("/api/incidents/{incident}")).await;
    assert_eq!(
        detail["counts"]["log_lines"], 300,
        "the store kept everything"
    );
    assert!(
        tp.logs_containing("Created").await.contains("Created"),
        "the start-up log says the index was created anew"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[test]
fn bad_database_urls_are_refused_before_start() {
    for (url, says) in [
        (
            "mysql://root@db/atlas",
            "TP_DATABASE_URL: unsupported database",
        ),
        (
            "postgres://atlas:hunter2@db.internal:5432",
            "TP_DATABASE_URL: the PostgreSQL URL names no database",
        ),
        (
            "sqlite::memory:",
            "TP_DATABASE_URL: an in-memory SQLite database loses every incident",
        ),
    ] {
        let (code, _, stderr) = run_cmd(&[("TP_DATABASE_URL", url)], &[]);
        assert_eq!(code, 64, "{url}: {stderr}");
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "the password is never echoed: {stderr}"
        );
    }
    let (code, stdout, _) = run_cmd(
        &[(
            "TP_DATABASE_URL",
            "postgres://atlas:hunter2@db.internal:5432/atlasai",
        )],
        &["check-config"],
    );
    assert_eq!(code, 0);
    assert!(
        stdout.contains("postgres://atlas:***@db.internal:5432/atlasai"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"));
}

//! The HTTP contract: authentication, tenant header, body checks, the not-configured answer,
//! status and the OpenAPI document.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN, Tp, admin_get, ai_test, client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_defaults_serve_everything_but_ai() {
    let tp = Tp::start(&[], &[]);
    let c = client();
    for path in ["/healthz", "/readyz"] {
        let r = c.get(format!("{}{path}", tp.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"], "AI provider not configured");
    assert!(
        body["detail"].as_str().unwrap().contains("BYOC_PROVIDER"),
        "{body}"
    );
    let status = admin_get(&format!("{}/api/status", tp.url)).await;
    assert_eq!(status["provider"], Value::Null);
    assert_eq!(status["embeddings_provider"], "fallback");
    assert_eq!(status["config_source"], "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_checked_before_the_tenant_and_the_body() {
    let tp = Tp::start(&[], &[]);
    let c = client();
    let url = format!("{}/api/ai/test", tp.url);
    let r = c
        .post(&url)
        .json(&json!({"test": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = c
        .post(&url)
        .bearer_auth("wrong-token-0123456789")
        .header("x-tenant-id", "acme")
        .json(&json!({"test": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
    let r = c
        .post(&url)
        .bearer_auth(ADMIN)
        .json(&json!({"test": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("x-tenant-id"),
        "{body}"
    );
    let r = c
        .post(&url)
        .bearer_auth(ADMIN)
        .header("x-tenant-id", "bad tenant!")
        .json(&json!({"test": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    for bad in [
        json!({"test": false}),
        json!({"tset": true}),
        json!({"test": true, "target": "images"}),
    ] {
        let r = c
            .post(&url)
            .bearer_auth(ADMIN)
            .header("x-tenant-id", "acme")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "invalid_body", "{bad}: {body}");
    }
    let r = c
        .post(&url)
        .bearer_auth(ADMIN)
        .header("x-tenant-id", "acme")
        .body("not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .get(format!("{}/api/status", tp.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let tp = Tp::start(&[], &[]);
    let big = format!(
        "{{\"test\": true, \"pad\": \"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let r = client()
        .post(format!("{}/api/ai/test", tp.url))
        .bearer_auth(ADMIN)
        .header("x-tenant-id", "acme")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_admin_token_when_none_is_set() {
    let tmp = tempfile::tempdir().unwrap();
    let mut env = crate::support::base_env(tmp.path());
    env.remove("TP_ADMIN_TOKEN");
    let tp = Tp::start_with_env(env, &[], None);
    let path = tp.data_dir.join("admin-token");
    let token = std::fs::read_to_string(&path).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let r = client()
        .get(format!("{}/api/status", tp.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !tp.logs().contains(token),
        "the generated token must not be logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_route() {
    let tp = Tp::start(&[], &[]);
    let doc: Value = client()
        .get(format!("{}/api/openapi.json", tp.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/ai/test", "post"),
        ("/api/status", "get"),
        ("/api/openapi.json", "get"),
        ("/api/incidents", "post"),
        ("/api/incidents", "get"),
        ("/api/incidents/{id}", "get"),
        ("/api/incidents/{id}", "patch"),
        ("/api/incidents/{id}/alerts", "post"),
        ("/api/incidents/{id}/alerts", "get"),
        ("/api/incidents/{id}/changes", "post"),
        ("/api/incidents/{id}/changes", "get"),
        ("/api/alerts", "post"),
        ("/api/logs", "post"),
        ("/api/logs", "get"),
        ("/api/runbooks", "post"),
        ("/api/runbooks", "get"),
        ("/api/runbooks/{id}", "get"),
        ("/api/search", "get"),
        ("/api/search/status", "get"),
        ("/metrics", "get"),
        ("/v1/chat/completions", "post"),
        ("/v1/embeddings", "post"),
        ("/v1/models", "get"),
        ("/v1/models/{model}", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{path} {method} missing"
        );
    }
    // Every documented path is served (nothing documented falls through to 404).
    let c = client();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let req = match method.as_str() {
                "get" => c.get(format!("{}{path}", tp.url)),
                "post" => c.post(format!("{}{path}", tp.url)),
                "patch" => c.patch(format!("{}{path}", tp.url)),
                other => panic!("unexpected method {other}"),
            };
            let r = req.send().await.unwrap();
            assert_ne!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    let test = &paths["/api/ai/test"]["post"];
    assert!(test["responses"].get("503").is_some());
    assert!(doc["components"]["securitySchemes"]["admin_token"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    let unknown = c.get(format!("{}/api/nope", tp.url)).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

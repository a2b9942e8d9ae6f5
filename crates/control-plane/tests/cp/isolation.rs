//! Tenant isolation for every endpoint: a user of one tenant can neither read nor change
//! another tenant's data, and a cluster sees only its own tenant; plus authentication on
//! every endpoint and JWT negative cases through the API.

use atlasai_control_plane::http::ENDPOINTS;
use atlasai_fakes::openai;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::{BOOT, Cp, call};

const KEY: &str = "sk-proj-good-key-0000001234";

fn body_for(method: &str, path: &str, endpoint: &str) -> Option<Value> {
    let settings = json!({"provider": "openai", "model": "gpt-4o-mini", "endpoint_url": endpoint, "api_key": KEY});
    match method {
        "GET" | "DELETE" => None,
        _ if path.ends_with("/ai/settings")
            || path.ends_with("/ai/test")
            || path.ends_with("/ai/models") =>
        {
            Some(settings)
        }
        _ if path.ends_with("/users") => {
            Some(json!({"email": "intruder@acme.example", "role": "owner"}))
        }
        _ if path.ends_with("/tokens") || path.ends_with("/clusters") => {
            Some(json!({"name": "intruder"}))
        }
        _ if path.ends_with("/transfers") => {
            Some(json!({"kind": "grant", "amount": "5", "idempotency_key": "x"}))
        }
        _ => Some(json!({})),
    }
}

async fn snapshot(cp: &Cp, tenant: &str, access: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in ["ai/settings", "credits", "users", "clusters"] {
        let (s, b) = call(
            "GET",
            &cp.at(&format!("/api/v1/tenants/{tenant}/{path}")),
            Some(access),
            None,
        )
        .await;
        assert_eq!(s, 200, "{path}: {b}");
        out.push(b);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_endpoint_serves_another_tenants_data() {
    let cp = Cp::start(&[]).await;
    let a = cp.tenant("acme").await;
    let b = cp.tenant("globex").await;
    let fake = openai::start(Some(KEY), "gpt-4o-mini").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let (b_cluster, _) = cp.enrolled_cluster(&b, "b-prod").await;
    let (a_cluster, _) = cp.enrolled_cluster(&a, "a-prod").await;
    let (s, _) = call("PUT", &cp.at("/api/v1/tenants/globex/ai/settings"), Some(&b.access), Some(json!({"provider": "openai", "model": "b-model", "endpoint_url": endpoint, "api_key": "sk-globex-secret-000000"}))).await;
    assert_eq!(s, 422, "globex keeps a draft (wrong key for the fake)");
    let before = snapshot(&cp, "globex", &b.access).await;

    let tenant_scoped: Vec<&str> = ENDPOINTS
        .iter()
        .copied()
        .filter(|e| e.contains("{tenant}"))
        .collect();
    assert!(
        tenant_scoped.len() >= 17,
        "every tenant endpoint is covered: {tenant_scoped:?}"
    );
    for e in &tenant_scoped {
        let (method, template) = e.split_once(' ').unwrap();
        // Another tenant's path, and (for cluster and user paths) this tenant's path with the
        // other tenant's cluster or user.
        let mut paths = vec![
            template
                .replace("{tenant}", "globex")
                .replace("{cluster}", &b_cluster)
                .replace("{user}", &b.owner),
        ];
        if template.contains("{cluster}") {
            paths.push(
                template
                    .replace("{tenant}", "acme")
                    .replace("{cluster}", &b_cluster),
            );
        }
        if template.contains("{user}") {
            paths.push(
                template
                    .replace("{tenant}", "acme")
                    .replace("{user}", &b.owner),
            );
        }
        for path in paths {
            let (s, body) = call(
                method,
                &cp.at(&path),
                Some(&a.access),
                body_for(method, &path, &endpoint),
            )
            .await;
            let expected = if path.ends_with("/transfers") {
                401
            } else {
                404
            };
            assert_eq!(s, expected, "{method} {path} as acme: {body}");
            let text = body.to_string();
            assert!(
                !text.contains("globex") || text.contains("not found"),
                "{method} {path} leaked: {text}"
            );
        }
    }
    assert_eq!(
        snapshot(&cp, "globex", &b.access).await,
        before,
        "globex is unchanged"
    );
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.header("authorization") != Some(&format!("Bearer {KEY}"))),
        "acme's attempts never called a provider"
    );
    let _ = a_cluster;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_only_see_and_answer_for_their_own_tenant() {
    let cp = Cp::start(&[("CP_ALLOW_PRIVATE_ENDPOINTS", "0")]).await;
    let a = cp.tenant("acme").await;
    let b = cp.tenant("globex").await;
    let (_, a_cred) = cp.enrolled_cluster(&a, "a").await;
    let (_, b_cred) = cp.enrolled_cluster(&b, "b").await;
    let (s, saved) = call("PUT", &cp.at("/api/v1/tenants/globex/ai/settings"), Some(&b.access), Some(json!({"provider": "openai", "model": "m", "endpoint_url": "http://10.1.2.3/v1", "api_key": "sk-globex-secret-000000"}))).await;
    assert_eq!(s, 202);
    let (_, a_view) = call("GET", &cp.at("/api/tp/v1/settings"), Some(&a_cred), None).await;
    assert_eq!(a_view["tenant_id"], "acme");
    assert!(a_view["pending_validations"].as_array().unwrap().is_empty());
    assert!(!a_view.to_string().contains("sk-globex-secret"));
    let id = saved["validation_id"].as_str().unwrap();
    let (s, _) = call(
        "POST",
        &cp.at(&format!("/api/tp/v1/validations/{id}")),
        Some(&a_cred),
        Some(json!({"ok": true, "error": null, "latency_ms": 1})),
    )
    .await;
    assert_eq!(s, 404, "acme's cluster cannot validate globex's settings");
    let (_, b_view) = call("GET", &cp.at("/api/tp/v1/settings"), Some(&b_cred), None).await;
    assert_eq!(b_view["pending_validations"].as_array().unwrap().len(), 1);
    // A cluster credential is not a user token.
    let (s, _) = call(
        "GET",
        &cp.at("/api/v1/tenants/acme/ai/settings"),
        Some(&a_cred),
        None,
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_endpoint_needs_credentials() {
    let cp = Cp::start(&[]).await;
    cp.tenant("acme").await;
    let public = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/auth/token",
        "/api/tp/v1/enroll",
        "/portal",
    ];
    for e in ENDPOINTS {
        let (method, template) = e.split_once(' ').unwrap();
        let path = template
            .replace("{tenant}", "acme")
            .replace("{cluster}", "c")
            .replace("{user}", "u")
            .replace("{id}", "v");
        let (s, b) = call(
            method,
            &cp.at(&path),
            None,
            body_for(method, &path, "http://x/v1"),
        )
        .await;
        if public.iter().any(|p| path.starts_with(p)) {
            assert_ne!(s, 404, "{e} exists");
            continue;
        }
        assert_eq!(s, 401, "{e} without credentials: {b}");
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_forged_expired_and_misaddressed_tokens() {
    let cp = Cp::start(&[]).await;
    let t = cp.tenant("acme").await;
    let url = cp.at("/api/v1/tenants/acme/ai/settings");
    let (s, _) = call("GET", &url, Some(&t.access), None).await;
    assert_eq!(s, 200);
    let now = atlasai_control_plane::jwt::now();
    let claims = |exp: u64, aud: &str, iss: &str| json!({"sub": t.owner, "iss": iss, "aud": aud, "exp": exp, "iat": now, "tenant": "acme", "role": "owner"});
    let keys = &cp.state.keys;
    let cases = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims(now + 600, "atlasai-cp", "atlasai-cp"))
            ),
        ),
        (
            "HS256 with a guessable secret",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims(now + 600, "atlasai-cp", "atlasai-cp"),
                &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
            )
            .unwrap(),
        ),
        (
            "expired",
            keys.sign(&claims(now - 3600, "atlasai-cp", "atlasai-cp"))
                .unwrap(),
        ),
        (
            "tenant-plane audience",
            keys.sign(&claims(now + 600, "atlasai-tp", "atlasai-cp"))
                .unwrap(),
        ),
        (
            "wrong issuer",
            keys.sign(&claims(now + 600, "atlasai-cp", "evil")).unwrap(),
        ),
        ("tampered payload", {
            let good = keys
                .sign(&claims(now + 600, "atlasai-cp", "atlasai-cp"))
                .unwrap();
            let parts: Vec<&str> = good.split('.').collect();
            let evil = json!({"sub": t.owner, "iss": "atlasai-cp", "aud": "atlasai-cp", "exp": now + 600, "iat": now, "tenant": "globex", "role": "owner"});
            format!("{}.{}.{}", parts[0], b64(&evil), parts[2])
        }),
    ];
    for (what, token) in cases {
        let (s, b) = call("GET", &url, Some(&token), None).await;
        assert_eq!(s, 401, "{what}: {b}");
        assert!(
            b["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid access token"),
            "{what}: {b}"
        );
    }
    // A tenant-plane admin token (EdDSA, audience atlasai-tp) is refused by the portal API.
    let (s, c) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/clusters"),
        Some(&t.access),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, tok) = call(
        "POST",
        &cp.at(&format!(
            "/api/v1/tenants/acme/clusters/{}/admin-tokens",
            c["cluster_id"].as_str().unwrap()
        )),
        Some(&t.access),
        None,
    )
    .await;
    assert_eq!(s, 201, "{tok}");
    let (s, _) = call("GET", &url, tok["token"].as_str(), None).await;
    assert_eq!(s, 401);
    let _ = BOOT;
}

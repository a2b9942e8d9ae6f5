//! The portal API end to end against fake providers: validation on save, write-only secrets,
//! Test Connection, the model list, roles, and metrics.

use atlasai_fakes::openai;
use serde_json::json;

use crate::support::{BOOT, Cp, call, call_text};

const KEY: &str = "sk-proj-good-key-0000001234";

fn settings_url(cp: &Cp, tenant: &str) -> String {
    cp.at(&format!("/api/v1/tenants/{tenant}/ai/settings"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_on_save_activates_good_settings_and_keeps_bad_ones_as_drafts() {
    let cp = Cp::start(&[]).await;
    let t = cp.tenant("acme").await;
    let fake = openai::start(Some(KEY), "gpt-4o-mini").await;
    let endpoint = format!("{}/v1", fake.base_url);

    // A good key: checked with a small completion, then active.
    let (s, b) = call(
        "PUT",
        &settings_url(&cp, "acme"),
        Some(&t.access),
        Some(json!({"provider": "openai", "model": "gpt-4o-mini", "endpoint_url": endpoint, "api_key": KEY})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state"], "active");
    let chat = fake.last_request().unwrap();
    assert_eq!(chat.path, "/v1/chat/completions");
    assert_eq!(
        chat.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );

    // A bad key: refused by the provider, kept as a draft with its reason; the active one stays.
    let (s, b) = call(
        "PUT",
        &settings_url(&cp, "acme"),
        Some(&t.access),
        Some(json!({"provider": "openai", "model": "gpt-4o", "endpoint_url": endpoint, "api_key": "sk-proj-bad-key-00000009999"})),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["state"], "draft");
    let reason = b["reason"].as_str().unwrap();
    assert!(
        reason.contains("Incorrect API key"),
        "the provider's reason: {reason}"
    );
    assert!(
        !reason.contains("sk-proj-bad-key-00000009999"),
        "no secret in the reason"
    );

    let (s, text) = call_text("GET", &settings_url(&cp, "acme"), Some(&t.access), None).await;
    assert_eq!(s, 200, "{text}");
    assert!(
        !text.contains(KEY) && !text.contains("sk-proj-bad-key"),
        "secrets are write-only: {text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["tenant"]["active"]["settings"]["model"], "gpt-4o-mini",
        "previous active kept"
    );
    assert_eq!(
        v["tenant"]["active"]["settings"]["secrets"]["api_key"],
        json!({"set": true, "last_four": "1234"})
    );
    assert_eq!(v["tenant"]["candidate"]["state"], "draft");
    assert!(
        v["tenant"]["candidate"]["reason"]
            .as_str()
            .unwrap()
            .contains("Incorrect API key")
    );

    // Secrets are encrypted at rest: the database holds neither key in clear.
    let rows = cp.state.store.list_settings("acme").await.unwrap();
    for r in &rows {
        assert!(!r.settings_json.contains("sk-proj"), "{}", r.settings_json);
        let sealed = r.secrets_sealed.as_deref().unwrap();
        assert!(sealed.starts_with("v1:") && !sealed.contains("sk-proj"));
    }

    // Leaving the key out of a save keeps the stored key (write-only fields).
    let (s, b) = call(
        "PUT",
        &settings_url(&cp, "acme"),
        Some(&t.access),
        Some(json!({"provider": "openai", "model": "gpt-4o-mini", "endpoint_url": endpoint, "fallback_policy": "cloud_fallback"})),
    )
    .await;
    assert_eq!(
        s, 422,
        "the draft's bad key is the base for the next save: {b}"
    );
    let (s, b) = call(
        "PUT",
        &settings_url(&cp, "acme"),
        Some(&t.access),
        Some(json!({"provider": "openai", "model": "gpt-4o-mini", "endpoint_url": endpoint, "api_key": KEY, "fallback_policy": "cloud_fallback", "redaction": "on"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (_, v) = call("GET", &settings_url(&cp, "acme"), Some(&t.access), None).await;
    assert_eq!(
        v["tenant"]["active"]["settings"]["fallback_policy"],
        "cloud_fallback"
    );
    assert_eq!(
        v["tenant"]["active"]["settings"]["redaction"], "on",
        "per-tenant redaction is kept: {v}"
    );
    assert!(
        v["tenant"]["candidate"].is_null(),
        "a successful save clears the draft"
    );

    // Field errors name the field and what is accepted.
    let (s, b) = call(
        "PUT",
        &settings_url(&cp, "acme"),
        Some(&t.access),
        Some(json!({"provider": "azure", "model": ""})),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    let fields: Vec<&str> = b["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["model", "endpoint_url", "api_key"], "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_and_model_list_use_the_form_values_and_stored_keys() {
    let cp = Cp::start(&[]).await;
    let t = cp.tenant("acme").await;
    let fake = openai::start(Some(KEY), "gpt-4o-mini").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let base = json!({"provider": "openai", "model": "gpt-4o-mini", "endpoint_url": endpoint, "api_key": KEY});
    let (s, b) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/ai/test"),
        Some(&t.access),
        Some(base.clone()),
    )
    .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("ok")), "{b}");
    assert!(b["latency_ms"].is_u64());
    let (s, b) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/ai/models"),
        Some(&t.access),
        Some(base.clone()),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-4o-mini"),
        "{b}"
    );
    assert_eq!(fake.last_request().unwrap().path, "/v1/models");
    // Nothing was saved by testing.
    assert!(
        cp.state
            .store
            .list_settings("acme")
            .await
            .unwrap()
            .is_empty()
    );
    let bad = json!({"provider": "openai", "model": "gpt-4o-mini", "endpoint_url": endpoint, "api_key": "sk-wrong-key-123456789"});
    let (s, b) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/ai/test"),
        Some(&t.access),
        Some(bad.clone()),
    )
    .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("error")), "{b}");
    let (s, b) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/ai/models"),
        Some(&t.access),
        Some(bad),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["code"], "provider_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_is_validated_by_listing_models_with_the_key() {
    let cp = Cp::start(&[]).await;
    let t = cp.tenant("acme").await;
    let fake = atlasai_fakes::anthropic::start(
        Some("sk-ant-api03-good-key-0000"),
        "claude-3-5-sonnet-20241022",
    )
    .await;
    let (s, b) = call(
        "PUT",
        &settings_url(&cp, "acme"),
        Some(&t.access),
        Some(json!({"provider": "anthropic", "model": "claude-3-5-sonnet-20241022", "endpoint_url": fake.base_url, "api_key": "sk-ant-api03-good-key-0000"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let reqs = fake.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| r.path == "/v1/models"),
        "only the models list: {:?}",
        reqs.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let (s, b) = call(
        "PUT",
        &settings_url(&cp, "acme"),
        Some(&t.access),
        Some(json!({"provider": "anthropic", "model": "claude-3-5-sonnet-20241022", "endpoint_url": fake.base_url, "api_key": "sk-ant-api03-revoked-000"})),
    )
    .await;
    assert_eq!((s, b["state"].as_str()), (422, Some("draft")), "{b}");
    assert!(
        b["reason"].as_str().unwrap().contains("invalid x-api-key"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_limit_what_users_can_do() {
    let cp = Cp::start(&[]).await;
    let t = cp.tenant("acme").await;
    let (s, viewer) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/users"),
        Some(&t.access),
        Some(json!({"email": "viewer@acme.example", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, 201, "{viewer}");
    let (s, admin) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/users"),
        Some(&t.access),
        Some(json!({"email": "admin@acme.example", "role": "admin"})),
    )
    .await;
    assert_eq!(s, 201);
    let token_for = |user: String| {
        let cp = &cp;
        let access = t.access.clone();
        async move {
            let (s, b) = call(
                "POST",
                &cp.at(&format!("/api/v1/tenants/acme/users/{user}/tokens")),
                Some(&access),
                Some(json!({"name": "t"})),
            )
            .await;
            assert_eq!(s, 201, "{b}");
            cp.login(b["api_token"].as_str().unwrap()).await
        }
    };
    let viewer_access = token_for(viewer["id"].as_str().unwrap().to_owned()).await;
    let admin_access = token_for(admin["id"].as_str().unwrap().to_owned()).await;
    // Viewers read but do not change.
    let (s, _) = call(
        "GET",
        &settings_url(&cp, "acme"),
        Some(&viewer_access),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, b) = call(
        "PUT",
        &settings_url(&cp, "acme"),
        Some(&viewer_access),
        Some(json!({"provider": "openai", "model": "m", "api_key": "k"})),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert!(b["error"].as_str().unwrap().contains("admin role"));
    let (s, _) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/clusters"),
        Some(&viewer_access),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(s, 403);
    // Admins cannot mint owners; owners can.
    let (s, _) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/users"),
        Some(&admin_access),
        Some(json!({"email": "o2@acme.example", "role": "owner"})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/users"),
        Some(&t.access),
        Some(json!({"email": "o2@acme.example", "role": "owner"})),
    )
    .await;
    assert_eq!(s, 201);
    // The operator token is not a user token, and a user token is not the operator token.
    let (s, _) = call("GET", &settings_url(&cp, "acme"), Some(BOOT), None).await;
    assert_eq!(s, 401);
    let (s, _) = call(
        "POST",
        &cp.at("/api/v1/tenants"),
        Some(&t.access),
        Some(json!({"id": "x", "name": "x", "owner_email": "a@b.c"})),
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_validations_and_debits() {
    let cp = Cp::start(&[]).await;
    let t = cp.tenant("acme").await;
    let fake = openai::start(Some(KEY), "gpt-4o-mini").await;
    let endpoint = format!("{}/v1", fake.base_url);
    call("PUT", &settings_url(&cp, "acme"), Some(&t.access), Some(json!({"provider": "openai", "model": "gpt-4o-mini", "endpoint_url": endpoint, "api_key": KEY}))).await;
    call(
        "GET",
        &cp.at("/api/v1/tenants/nobody/ai/settings"),
        Some(&t.access),
        None,
    )
    .await;
    let (s, text) = call_text("GET", &cp.at("/metrics"), None, None).await;
    assert_eq!(s, 200);
    assert!(text.contains(r#"atlasai_cp_http_requests_total{method="PUT",route="/api/v1/tenants/{tenant}/ai/settings",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"atlasai_cp_http_errors_total{route="/api/v1/tenants/{tenant}/ai/settings",class="client"} 1"#), "{text}");
    assert!(
        text.contains(
            r#"atlasai_cp_settings_validations_total{provider="openai",outcome="active"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("atlasai_cp_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text");
}

//! End-to-end: the real control plane and tenant plane with fake providers on 127.0.0.1.
//! Settings saved in the portal API reach the tenant plane without a restart; private
//! endpoints are validated by the tenant plane; the tenant plane keeps working with its last
//! settings when the control plane is gone; local settings win; the managed model and the
//! cloud-fallback policy are metered in credits; control-plane admin tokens work on the
//! tenant plane.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::{Duration, Instant};

use atlasai_e2e::{BOOT, Running, TP_ADMIN, cp_env, start, tp_env};
use atlasai_fakes::{Step, openai};
use serde_json::{Value, json};

const KEY: &str = "sk-proj-e2e-key-00000001234";

fn http() -> reqwest::Client {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn call(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = http().request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn ai_test(tp: &Running, tenant: &str, token: &str) -> (u16, Value) {
    let resp = http()
        .post(format!("{}/api/ai/test", tp.url))
        .bearer_auth(token)
        .header("x-tenant-id", tenant)
        .json(&json!({"test": true}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls until `check` passes; the deadline is a liveness bound, not a speed target.
async fn eventually<F, Fut>(what: &str, logs: impl Fn() -> String, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; logs:\n{}", logs());
}

struct Portal {
    url: String,
    access: String,
}

impl Portal {
    async fn new(cp: &Running, tenant: &str) -> Portal {
        let (s, b) = call("POST", &format!("{}/api/v1/tenants", cp.url), Some(BOOT), Some(json!({"id": tenant, "name": tenant, "owner_email": format!("owner@{tenant}.example")}))).await;
        assert_eq!(s, 201, "{b}");
        let (s, t) = call(
            "POST",
            &format!("{}/api/v1/auth/token", cp.url),
            None,
            Some(json!({"api_token": b["api_token"]})),
        )
        .await;
        assert_eq!(s, 200, "{t}");
        Portal {
            url: format!("{}/api/v1/tenants/{tenant}", cp.url),
            access: t["access_token"].as_str().unwrap().to_owned(),
        }
    }

    async fn cluster(&self, name: &str) -> (String, String) {
        let (s, b) = self
            .call("POST", "/clusters", Some(json!({"name": name})))
            .await;
        assert_eq!(s, 201, "{b}");
        (
            b["cluster_id"].as_str().unwrap().to_owned(),
            b["enroll_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(
            method,
            &format!("{}{path}", self.url),
            Some(&self.access),
            body,
        )
        .await
    }

    async fn cluster_view(&self, id: &str) -> Value {
        let (_, v) = self.call("GET", "/ai/settings", None).await;
        v["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_settings_reach_the_tenant_plane_without_a_restart() {
    // Serves any model name, so the test can switch models.
    let fake = openai::start(Some(KEY), "").await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start(
        "atlasai-cp",
        &cp_env(cp_dir.path(), &[("CP_ALLOW_PRIVATE_ENDPOINTS", "1")]),
        "control plane listening",
    );
    let portal = Portal::new(&cp, "acme").await;
    let (cluster, token) = portal.cluster("prod").await;
    let tp_dir = tempfile::tempdir().unwrap();
    let tp = start(
        "atlasai-tp",
        &tp_env(
            tp_dir.path(),
            &[("TP_CP_URL", &cp.url), ("TP_CP_ENROLL_TOKEN", &token)],
        ),
        "tenant plane listening",
    );
    let logs = || format!("TP:\n{}\nCP:\n{}", tp.logs(), cp.logs());
    eventually("the tenant plane to connect", logs, || async {
        let (_, b) = call(
            "GET",
            &format!("{}/api/status", tp.url),
            Some(TP_ADMIN),
            None,
        )
        .await;
        b["cp_connected"] == true
    })
    .await;
    let (s, b) = ai_test(&tp, "acme", TP_ADMIN).await;
    assert_eq!(s, 503, "nothing configured yet: {b}");
    assert_eq!(b["error"], "AI provider not configured");

    let (s, b) = portal
        .call("PUT", "/ai/settings", Some(json!({"provider": "openai", "model": "llama3.2", "endpoint_url": format!("{}/v1", fake.base_url), "api_key": KEY})))
        .await;
    assert_eq!(s, 200, "{b}");
    eventually(
        "the tenant plane to use the portal settings",
        logs,
        || async { ai_test(&tp, "acme", TP_ADMIN).await.0 == 200 },
    )
    .await;
    let (_, last) = ai_test(&tp, "acme", TP_ADMIN).await;
    assert_eq!(last["status"], "ok", "{last}");
    assert_eq!(last["provider"], "openai");
    assert_eq!(last["model"], "llama3.2");
    assert_eq!(last["cp_connected"], true);
    assert!(last["latency_ms"].is_u64());
    let keys: Vec<&String> = last.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "the documented shape: {last}");
    let (_, status) = call(
        "GET",
        &format!("{}/api/status", tp.url),
        Some(TP_ADMIN),
        None,
    )
    .await;
    assert_eq!(status["provider"], "openai", "{status}");
    assert_eq!(
        status["config_source"], "control plane (portal)",
        "{status}"
    );

    // The portal shows which source is in force and the last connection test, and BYOC usage
    // is reported at zero credits.
    eventually("the cluster's status in the portal", logs, || async {
        let c = portal.cluster_view(&cluster).await;
        c["source_in_force"] == "portal"
            && c["status"]["last_test"]["ok"] == true
            && c["connected"] == true
    })
    .await;
    eventually("usage counts in the portal", logs, || async {
        let (_, c) = portal.call("GET", "/credits", None).await;
        c["usage"].as_array().is_some_and(|u| {
            u.iter()
                .any(|e| e["route"] == "byoc" && e["calls"].as_i64() >= Some(1))
        })
    })
    .await;

    // A later change applies too, still without a restart.
    let (s, _) = portal
        .call("PUT", "/ai/settings", Some(json!({"provider": "openai", "model": "llama3.3", "endpoint_url": format!("{}/v1", fake.base_url)})))
        .await;
    assert_eq!(s, 200);
    eventually("the new model", logs, || async {
        ai_test(&tp, "acme", TP_ADMIN).await.1["model"] == "llama3.3"
    })
    .await;
    // Portal settings apply to the enrolled tenant only.
    let (s, b) = ai_test(&tp, "globex", TP_ADMIN).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (503, Some("AI provider not configured")),
        "{b}"
    );

    // Admin tokens issued by the control plane open the tenant plane's admin endpoints.
    let (s, t) = portal
        .call("POST", &format!("/clusters/{cluster}/admin-tokens"), None)
        .await;
    assert_eq!(s, 201, "{t}");
    let jwt = t["token"].as_str().unwrap();
    let (s, b) = call("GET", &format!("{}/api/status", tp.url), Some(jwt), None).await;
    assert_eq!(s, 200, "{b}");
    let (other, _) = portal.cluster("staging").await;
    let (_, t2) = portal
        .call("POST", &format!("/clusters/{other}/admin-tokens"), None)
        .await;
    let (s, _) = call(
        "GET",
        &format!("{}/api/status", tp.url),
        t2["token"].as_str(),
        None,
    )
    .await;
    assert_eq!(s, 401, "a token for another cluster is refused");
    let mut forged = jwt.to_owned();
    forged.pop();
    forged.push(if jwt.ends_with('A') { 'B' } else { 'A' });
    let (s, _) = call(
        "GET",
        &format!("{}/api/status", tp.url),
        Some(&forged),
        None,
    )
    .await;
    assert_eq!(s, 401);
    assert!(
        !tp.logs().contains(KEY),
        "the provider key never reaches the tenant plane's log"
    );
    assert!(!cp.logs().contains(KEY), "nor the control plane's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_endpoints_are_validated_by_the_tenant_plane_which_keeps_working_offline() {
    let fake = openai::start(Some(KEY), "llama3.2").await;
    let cp_dir = tempfile::tempdir().unwrap();
    let mut cp = start(
        "atlasai-cp",
        &cp_env(cp_dir.path(), &[]),
        "control plane listening",
    );
    let portal = Portal::new(&cp, "acme").await;
    let (_, token) = portal.cluster("onprem").await;
    let tp_dir = tempfile::tempdir().unwrap();
    let env = tp_env(
        tp_dir.path(),
        &[("TP_CP_URL", &cp.url), ("TP_CP_ENROLL_TOKEN", &token)],
    );
    let mut tp = start("atlasai-tp", &env, "tenant plane listening");
    let (s, b) = portal
        .call("PUT", "/ai/settings", Some(json!({"provider": "openai", "model": "llama3.2", "endpoint_url": format!("{}/v1", fake.base_url), "api_key": KEY})))
        .await;
    assert_eq!(s, 202, "the control plane does not call 127.0.0.1: {b}");
    let logs = || format!("TP:\n{}\nCP:\n{}", tp.logs(), cp.logs());
    eventually(
        "the tenant plane's validation to activate the settings",
        logs,
        || async {
            let (_, v) = portal.call("GET", "/ai/settings", None).await;
            v["tenant"]["active"]["state"] == "active"
        },
    )
    .await;
    eventually("the tenant plane to use them", logs, || async {
        ai_test(&tp, "acme", TP_ADMIN).await.0 == 200
    })
    .await;

    // The control plane goes away: the tenant plane keeps its settings and says so.
    cp.stop();
    eventually(
        "cp_connected to turn false",
        || tp.logs(),
        || async {
            let (s, b) = ai_test(&tp, "acme", TP_ADMIN).await;
            s == 200 && b["cp_connected"] == false
        },
    )
    .await;
    // And after a restart without the control plane (and without an enrollment token: the
    // credential and the last settings are in the data directory).
    tp.stop();
    let mut env = env.clone();
    env.remove("TP_CP_ENROLL_TOKEN");
    let tp = start("atlasai-tp", &env, "tenant plane listening");
    let (s, b) = ai_test(&tp, "acme", TP_ADMIN).await;
    assert_eq!(s, 200, "{b}\n{}", tp.logs());
    assert_eq!(
        (b["model"].as_str(), b["cp_connected"].as_bool()),
        (Some("llama3.2"), Some(false))
    );
    for f in ["cp-credential.json", "cp-settings.json"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tp_dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f} is owner-only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_model_and_cloud_fallback_use_credits_and_local_settings_win() {
    let managed = openai::start(Some("sk-managed-000000000000"), "gpt-4o-mini").await;
    let broken = openai::start(Some(KEY), "llama3.2").await;
    for _ in 0..20 {
        broken.push(Step::Fail {
            status: 503,
            retry_after: None,
        });
    }
    let cp_dir = tempfile::tempdir().unwrap();
    let managed_url = format!("{}/v1", managed.base_url);
    let cp = start(
        "atlasai-cp",
        &cp_env(
            cp_dir.path(),
            &[
                ("CP_MANAGED_PROVIDER", "openai"),
                ("CP_MANAGED_MODEL", "gpt-4o-mini"),
                ("CP_MANAGED_API_KEY", "sk-managed-000000000000"),
                ("CP_MANAGED_ENDPOINT_URL", &managed_url),
                ("CP_MANAGED_PRICES", "gpt-4o-mini=1/2"),
                ("CP_INITIAL_CREDITS", "5"),
            ],
        ),
        "control plane listening",
    );
    let portal = Portal::new(&cp, "acme").await;
    let local_byoc = [
        ("BYOC_PROVIDER", "openai"),
        ("BYOC_API_KEY", KEY),
        ("BYOC_MODEL", "llama3.2"),
        ("TP_PROVIDER_MAX_RETRIES", "0"),
        ("TP_API_KEYS", "acme:e2e-gateway-key-0123456789abcdef"),
    ];
    // An AI request through the tenant plane's OpenAI-compatible API (any AI feature takes the
    // same route: the customer's provider, its breaker, then the cloud-fallback policy).
    let gateway_chat = |url: String| async move {
        let resp = reqwest::Client::new()
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth("e2e-gateway-key-0123456789abcdef")
            .json(&serde_json::json!({"model": "llama3.2", "messages": [{"role": "user", "content": "Why is checkout slow?"}]}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (
            status,
            resp.json::<serde_json::Value>().await.unwrap_or_default(),
        )
    };
    let broken_url = format!("{}/v1", broken.base_url);

    // 1. No BYOC provider: the managed model, metered.
    let (_, t1) = portal.cluster("managed").await;
    let d1 = tempfile::tempdir().unwrap();
    let tp1 = start(
        "atlasai-tp",
        &tp_env(
            d1.path(),
            &[("TP_CP_URL", &cp.url), ("TP_CP_ENROLL_TOKEN", &t1)],
        ),
        "tenant plane listening",
    );
    let logs = || format!("TP:\n{}\nCP:\n{}", tp1.logs(), cp.logs());
    eventually("the managed model", logs, || async {
        ai_test(&tp1, "acme", TP_ADMIN).await.0 == 200
    })
    .await;
    let (_, last) = ai_test(&tp1, "acme", TP_ADMIN).await;
    assert_eq!(
        (last["provider"].as_str(), last["model"].as_str()),
        (Some("openai"), Some("gpt-4o-mini")),
        "{last}"
    );
    let (_, credits) = portal.call("GET", "/credits", None).await;
    assert!(
        credits["balance_millicredits"].as_i64().unwrap() < 5_000,
        "charged: {credits}"
    );
    assert_eq!(managed.requests().len(), 2, "one call per connection test");

    // Out of credits: the control plane refuses the managed model (402), and the tenant plane
    // passes that on as 402 with what to do, not as an outage.
    let balance = credits["balance_millicredits"].as_i64().unwrap();
    let (s, b) = call(
        "POST",
        &format!("{}/api/v1/tenants/acme/credits/transfers", cp.url),
        Some(BOOT),
        Some(json!({"kind": "adjustment", "amount": format!("-{}.{:03}", balance / 1000, balance % 1000),
                    "idempotency_key": "drain-for-test", "note": "e2e: no credits left"})),
    )
    .await;
    assert!(s == 200 || s == 201, "{b}");
    let (_, credits) = portal.call("GET", "/credits", None).await;
    assert_eq!(credits["balance_millicredits"], 0, "{credits}");
    for _ in 0..6 {
        let resp = http()
            .post(format!("{}/api/ai/chat", tp1.url))
            .bearer_auth(TP_ADMIN)
            .header("x-tenant-id", "acme")
            .json(&json!({"stream": false, "messages": [{"role": "user", "content": "why is checkout slow?"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 402);
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["error"], "AI credits exhausted", "{b}");
        assert!(b["detail"].as_str().unwrap().contains("BYOC"), "{b}");
    }
    assert_eq!(
        managed.requests().len(),
        2,
        "refused before the managed model was called"
    );
    let (s, b) = call(
        "POST",
        &format!("{}/api/v1/tenants/acme/credits/transfers", cp.url),
        Some(BOOT),
        Some(json!({"kind": "grant", "amount": "5", "idempotency_key": "refill-for-test"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["balance_millicredits"], 5_000, "{b}");

    // 2. Local BYOC wins; its provider is down; AI_CREDITS_FAIL_OPEN=1 allows the managed model.
    let (c2, t2) = portal.cluster("fail-open").await;
    let d2 = tempfile::tempdir().unwrap();
    let mut vars: Vec<(&str, &str)> = local_byoc.to_vec();
    vars.extend([
        ("BYOC_ENDPOINT_URL", broken_url.as_str()),
        ("TP_CP_URL", &cp.url),
        ("TP_CP_ENROLL_TOKEN", &t2),
        ("AI_CREDITS_FAIL_OPEN", "1"),
    ]);
    let tp2 = start(
        "atlasai-tp",
        &tp_env(d2.path(), &vars),
        "tenant plane listening",
    );
    let logs2 = || format!("TP:\n{}\nCP:\n{}", tp2.logs(), cp.logs());
    eventually("the fail-open tenant plane to connect", logs2, || async {
        let (_, b) = call(
            "GET",
            &format!("{}/api/status", tp2.url),
            Some(TP_ADMIN),
            None,
        )
        .await;
        b["cp_connected"] == true
    })
    .await;
    // The connection test reports the customer's own provider, never the fallback: a broken
    // BYOC provider must show as broken even when AI features can fall back.
    let (s, b) = ai_test(&tp2, "acme", TP_ADMIN).await;
    assert_eq!(
        s, 503,
        "the connection test tests the configured provider: {b}"
    );
    assert_eq!(b["provider"], "openai", "{b}");
    assert_eq!(
        managed.requests().len(),
        2,
        "the connection test never falls back"
    );
    // An AI request does fall back, metered, and is logged as having left the network.
    let (s, b) = gateway_chat(tp2.url.clone()).await;
    assert_eq!(
        s,
        200,
        "fell back to the managed model: {b}\n{}",
        tp2.logs()
    );
    assert_eq!(managed.requests().len(), 3, "one managed call");
    assert!(
        tp2.logs_containing("left_customer_network")
            .await
            .contains("left_customer_network"),
        "the egress is logged"
    );
    // And audited: the call's data went to the control plane's managed model.
    let audit_url = format!("{}/api/audit/egress?left_network=true", tp2.url);
    eventually(
        "the fallback call in the egress audit log",
        logs2,
        || async {
            let resp = http()
                .get(&audit_url)
                .bearer_auth(TP_ADMIN)
                .header("x-tenant-id", "acme")
                .send()
                .await
                .unwrap();
            let page: Value = resp.json().await.unwrap_or(Value::Null);
            page["items"].as_array().is_some_and(|items| {
                items.iter().any(|r| {
                    r["feature"] == "gateway"
                        && r["destination"] == "control_plane"
                        && r["left_network"] == true
                        && r["outcome"] == "ok"
                        && r["cloud_fallback_model"] == "gpt-4o-mini"
                })
            })
        },
    )
    .await;
    eventually(
        "the portal to show local settings in force",
        logs2,
        || async { portal.cluster_view(&c2).await["source_in_force"] == "local" },
    )
    .await;

    // 3. Same without AI_CREDITS_FAIL_OPEN: fail closed.
    let (_, t3) = portal.cluster("fail-closed").await;
    let d3 = tempfile::tempdir().unwrap();
    let mut vars: Vec<(&str, &str)> = local_byoc.to_vec();
    vars.extend([
        ("BYOC_ENDPOINT_URL", broken_url.as_str()),
        ("TP_CP_URL", &cp.url),
        ("TP_CP_ENROLL_TOKEN", &t3),
    ]);
    let tp3 = start(
        "atlasai-tp",
        &tp_env(d3.path(), &vars),
        "tenant plane listening",
    );
    let logs3 = || tp3.logs();
    eventually("the fail-closed tenant plane to connect", logs3, || async {
        let (_, b) = call(
            "GET",
            &format!("{}/api/status", tp3.url),
            Some(TP_ADMIN),
            None,
        )
        .await;
        b["cp_connected"] == true
    })
    .await;
    let (s, b) = ai_test(&tp3, "acme", TP_ADMIN).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"], "AI provider temporarily unavailable");
    let (s, b) = gateway_chat(tp3.url.clone()).await;
    assert!(
        s >= 500,
        "fail closed without AI_CREDITS_FAIL_OPEN: {s} {b}"
    );
    assert_eq!(
        managed.requests().len(),
        3,
        "no managed call without AI_CREDITS_FAIL_OPEN"
    );
}

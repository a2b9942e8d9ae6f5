//! The tenant-plane protocol as a tenant plane sees it, plus the private-endpoint guard and
//! the managed model metered in credits.

use std::time::{Duration, Instant};

use atlasai_fakes::{Step, openai};
use serde_json::json;

use crate::support::{BOOT, Cp, call, client};

const KEY: &str = "sk-proj-good-key-0000001234";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_endpoints_are_never_called_and_a_tenant_plane_validates_them() {
    let cp = Cp::start(&[("CP_ALLOW_PRIVATE_ENDPOINTS", "0")]).await;
    let t = cp.tenant("acme").await;
    let (cluster, cred) = cp.enrolled_cluster(&t, "prod").await;
    let fake = openai::start(Some(KEY), "llama3.2").await;
    let url = cp.at("/api/v1/tenants/acme/ai/settings");
    for endpoint in [
        format!("{}/v1", fake.base_url), // loopback literal
        format!("http://localhost:{}/v1", fake.addr.port()), // a name for loopback
        "http://169.254.169.254/latest".to_owned(), // cloud metadata
        "http://[::ffff:10.0.0.1]:8000/v1".to_owned(), // mapped private
        "http://gpu-server.internal.invalid:8000/v1".to_owned(), // only resolvable inside
    ] {
        let body = json!({"provider": "openai", "model": "llama3.2", "endpoint_url": endpoint, "api_key": KEY});
        let (s, b) = call("PUT", &url, Some(&t.access), Some(body.clone())).await;
        assert_eq!(s, 202, "{endpoint}: {b}");
        assert_eq!(b["state"], "pending_validation");
        assert!(
            b["reason"].as_str().unwrap().contains("tenant plane"),
            "{b}"
        );
        let (s, b) = call(
            "POST",
            &cp.at("/api/v1/tenants/acme/ai/test"),
            Some(&t.access),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (s, b["status"].as_str()),
            (200, Some("pending_validation")),
            "{b}"
        );
        let (s, b) = call(
            "POST",
            &cp.at("/api/v1/tenants/acme/ai/models"),
            Some(&t.access),
            Some(body),
        )
        .await;
        assert_eq!(
            (s, b["code"].as_str()),
            (400, Some("private_endpoint")),
            "{b}"
        );
    }
    assert!(
        fake.requests().is_empty(),
        "the control plane never called the private endpoint"
    );

    // The last save is what the tenant plane is asked to check; save the loopback one again.
    let good = json!({"provider": "openai", "model": "llama3.2", "endpoint_url": format!("{}/v1", fake.base_url), "api_key": KEY});
    let (s, saved) = call("PUT", &url, Some(&t.access), Some(good)).await;
    assert_eq!(s, 202);
    let (s, settings) = call("GET", &cp.at("/api/tp/v1/settings"), Some(&cred), None).await;
    assert_eq!(s, 200, "{settings}");
    assert!(settings["ai"].is_null(), "nothing active yet");
    let pending = settings["pending_validations"].as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], saved["validation_id"]);
    assert_eq!(
        pending[0]["settings"]["api_key"], KEY,
        "secrets travel on the authenticated channel"
    );
    let id = pending[0]["id"].as_str().unwrap();
    // The tenant plane reports success: the setting becomes active.
    let (s, b) = call(
        "POST",
        &cp.at(&format!("/api/tp/v1/validations/{id}")),
        Some(&cred),
        Some(json!({"ok": true, "error": null, "latency_ms": 12})),
    )
    .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("active")), "{b}");
    let (s, b) = call(
        "POST",
        &cp.at(&format!("/api/tp/v1/validations/{id}")),
        Some(&cred),
        Some(json!({"ok": false, "error": "late", "latency_ms": 1})),
    )
    .await;
    assert_eq!(s, 404, "answered once: {b}");
    let (_, settings) = call("GET", &cp.at("/api/tp/v1/settings"), Some(&cred), None).await;
    assert_eq!(settings["ai"]["model"], "llama3.2");
    assert_eq!(settings["scope"], "tenant");

    // A cluster override the tenant plane cannot reach stays a draft; the active one stays.
    let bad = json!({"provider": "openai", "model": "other", "endpoint_url": "http://10.9.9.9:8000/v1", "api_key": KEY});
    let (s, _) = call(
        "PUT",
        &cp.at(&format!(
            "/api/v1/tenants/acme/clusters/{cluster}/ai/settings"
        )),
        Some(&t.access),
        Some(bad),
    )
    .await;
    assert_eq!(s, 202);
    let (_, settings) = call("GET", &cp.at("/api/tp/v1/settings"), Some(&cred), None).await;
    let id = settings["pending_validations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, b) = call(
        "POST",
        &cp.at(&format!("/api/tp/v1/validations/{id}")),
        Some(&cred),
        Some(
            json!({"ok": false, "error": "could not connect: connection refused", "latency_ms": 3}),
        ),
    )
    .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("draft")), "{b}");
    let (_, view) = call(
        "GET",
        &cp.at("/api/v1/tenants/acme/ai/settings"),
        Some(&t.access),
        None,
    )
    .await;
    let c = &view["clusters"][0];
    assert_eq!(c["override"]["candidate"]["state"], "draft");
    assert!(
        c["override"]["candidate"]["reason"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    assert!(c["override"]["active"].is_null());
    assert_eq!(view["tenant"]["active"]["settings"]["model"], "llama3.2");
    let (_, settings) = call("GET", &cp.at("/api/tp/v1/settings"), Some(&cred), None).await;
    assert_eq!(
        settings["ai"]["model"], "llama3.2",
        "the tenant's active setting still applies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_polls_answer_304_until_something_changes() {
    let cp = Cp::start(&[]).await;
    let t = cp.tenant("acme").await;
    let (_, cred) = cp.enrolled_cluster(&t, "prod").await;
    let http = client();
    let first = http
        .get(cp.at("/api/tp/v1/settings"))
        .bearer_auth(&cred)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = http
        .get(cp.at("/api/tp/v1/settings"))
        .bearer_auth(&cred)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(
        again.text().await.unwrap().is_empty(),
        "an unchanged configuration costs an empty answer"
    );

    // A long poll returns as soon as the settings change.
    let fake = openai::start(Some(KEY), "gpt-4o-mini").await;
    let access = t.access.clone();
    let url = cp.at("/api/v1/tenants/acme/ai/settings");
    let endpoint = format!("{}/v1", fake.base_url);
    let saver = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        call("PUT", &url, Some(&access), Some(json!({"provider": "openai", "model": "gpt-4o-mini", "endpoint_url": endpoint, "api_key": KEY}))).await
    });
    let started = Instant::now();
    let polled = http
        .get(cp.at("/api/tp/v1/settings?wait=30"))
        .bearer_auth(&cred)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(polled.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "woken by the change, not the timeout"
    );
    let body: serde_json::Value = polled.json().await.unwrap();
    assert_eq!(body["ai"]["model"], "gpt-4o-mini");
    assert_eq!(saver.await.unwrap().0, 200);
    // A long poll with nothing to report ends with 304 after its wait.
    let etag = body["etag"].as_str().unwrap();
    let started = Instant::now();
    let idle = http
        .get(cp.at("/api/tp/v1/settings?wait=1"))
        .bearer_auth(&cred)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(idle.status(), 304);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_tokens_work_once_and_credentials_are_checked() {
    let cp = Cp::start(&[]).await;
    let t = cp.tenant("acme").await;
    let (s, b) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/clusters"),
        Some(&t.access),
        Some(json!({"name": "prod"})),
    )
    .await;
    assert_eq!(s, 201);
    let token = b["enroll_token"].as_str().unwrap();
    let (s, e) = call(
        "POST",
        &cp.at("/api/tp/v1/enroll"),
        None,
        Some(json!({"enroll_token": token, "tp_version": "t"})),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["tenant_id"], "acme");
    assert_eq!(e["admin_tokens"]["algorithm"], "EdDSA");
    let (s, b) = call(
        "POST",
        &cp.at("/api/tp/v1/enroll"),
        None,
        Some(json!({"enroll_token": token, "tp_version": "t"})),
    )
    .await;
    assert_eq!(s, 401, "{b}");
    assert!(b["error"].as_str().unwrap().contains("already used"));
    for bad in [
        None,
        Some("atl_cluster_nope"),
        Some(t.access.as_str()),
        Some(BOOT),
    ] {
        let (s, _) = call("GET", &cp.at("/api/tp/v1/settings"), bad, None).await;
        assert_eq!(s, 401, "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_are_recorded_once_and_only_for_the_clusters_tenant() {
    let cp = Cp::start(&[]).await;
    let t = cp.tenant("acme").await;
    cp.tenant("globex").await;
    let (_, cred) = cp.enrolled_cluster(&t, "prod").await;
    let entry = |tenant: &str| json!({"tenant_id": tenant, "route": "byoc", "provider": "openai", "model": "gpt-4o-mini", "calls": 2, "failed_calls": 0, "prompt_tokens": 40, "completion_tokens": 10});
    let report = json!({"report_id": "r-1", "entries": [entry("acme")]});
    let (s, b) = call(
        "POST",
        &cp.at("/api/tp/v1/usage"),
        Some(&cred),
        Some(report.clone()),
    )
    .await;
    assert_eq!((s, b["recorded"].as_bool()), (200, Some(true)), "{b}");
    let (s, b) = call(
        "POST",
        &cp.at("/api/tp/v1/usage"),
        Some(&cred),
        Some(report),
    )
    .await;
    assert_eq!(
        (s, b["recorded"].as_bool()),
        (200, Some(false)),
        "a retry is not counted twice"
    );
    let (s, b) = call(
        "POST",
        &cp.at("/api/tp/v1/usage"),
        Some(&cred),
        Some(json!({"report_id": "r-2", "entries": [entry("globex")]})),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    let (_, credits) = call(
        "GET",
        &cp.at("/api/v1/tenants/acme/credits"),
        Some(&t.access),
        None,
    )
    .await;
    assert_eq!(credits["usage"][0]["calls"], 2);
    assert_eq!(credits["recent"][0]["kind"], "usage");
    assert_eq!(
        credits["recent"][0]["amount"], 0,
        "BYOC usage costs no credits"
    );
}

fn managed_vars(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CP_MANAGED_PROVIDER", "openai".to_owned()),
        ("CP_MANAGED_MODEL", "gpt-4o-mini".to_owned()),
        ("CP_MANAGED_API_KEY", "sk-managed-key-00000000".to_owned()),
        ("CP_MANAGED_ENDPOINT_URL", endpoint.to_owned()),
        ("CP_MANAGED_PRICES", "gpt-4o-mini=1/2".to_owned()),
        ("CP_MANAGED_MAX_TOKENS", "100".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_managed_model_is_metered_idempotent_and_refuses_without_credits() {
    let fake = openai::start(Some("sk-managed-key-00000000"), "gpt-4o-mini").await;
    let vars = managed_vars(&format!("{}/v1", fake.base_url));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cp = Cp::start(&vars).await;
    let t = cp.tenant("acme").await;
    let (_, cred) = cp.enrolled_cluster(&t, "prod").await;
    let chat = |rid: &str| json!({"request_id": rid, "request": {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]}});
    // No credits yet: 402 with a message that says what to do.
    let (s, b) = call(
        "POST",
        &cp.at("/api/tp/v1/managed/chat"),
        Some(&cred),
        Some(chat("r-0")),
    )
    .await;
    assert_eq!(s, 402, "{b}");
    assert_eq!(b["code"], "insufficient_credits");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("insufficient AI credits"),
        "{b}"
    );
    assert!(
        fake.requests().is_empty(),
        "nothing is called without credits"
    );

    let (s, b) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/credits/transfers"),
        Some(BOOT),
        Some(json!({"kind": "grant", "amount": "10", "idempotency_key": "welcome"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = call(
        "POST",
        &cp.at("/api/v1/tenants/acme/credits/transfers"),
        Some(BOOT),
        Some(json!({"kind": "grant", "amount": "10", "idempotency_key": "welcome"})),
    )
    .await;
    assert_eq!(
        (s, b["applied"].as_bool()),
        (200, Some(false)),
        "a retried grant applies once"
    );

    // The fake reports 12 prompt and 5 completion tokens: 12*1 + 5*2 = 22 thousandths.
    let (s, first) = call(
        "POST",
        &cp.at("/api/tp/v1/managed/chat"),
        Some(&cred),
        Some(chat("r-1")),
    )
    .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["charged_millicredits"], 22);
    assert_eq!(first["balance_millicredits"], 10_000 - 22);
    assert_eq!(first["response"]["content"], "ok");
    let sent = fake.last_request().unwrap().json();
    assert_eq!(
        sent["max_completion_tokens"]
            .as_u64()
            .or(sent["max_tokens"].as_u64()),
        Some(100),
        "capped at CP_MANAGED_MAX_TOKENS: {sent}"
    );
    // A retried request gets the same answer and is not charged again.
    let (s, again) = call(
        "POST",
        &cp.at("/api/tp/v1/managed/chat"),
        Some(&cred),
        Some(chat("r-1")),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(again["response"], first["response"]);
    assert_eq!(again["balance_millicredits"], 10_000 - 22);
    assert_eq!(fake.requests().len(), 1, "the provider was called once");

    // A provider failure releases the hold.
    fake.push(Step::Fail {
        status: 500,
        retry_after: None,
    });
    fake.push(Step::Fail {
        status: 500,
        retry_after: None,
    });
    fake.push(Step::Fail {
        status: 500,
        retry_after: None,
    });
    let (s, b) = call(
        "POST",
        &cp.at("/api/tp/v1/managed/chat"),
        Some(&cred),
        Some(chat("r-2")),
    )
    .await;
    assert_eq!(s, 503, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("AI provider temporarily unavailable")
    );
    assert_eq!(
        cp.state.store.balance("acme").await.unwrap(),
        Some(10_000 - 22)
    );
    assert_eq!(
        cp.state.store.ledger_sum("acme").await.unwrap(),
        10_000 - 22
    );
    let (_, credits) = call(
        "GET",
        &cp.at("/api/v1/tenants/acme/credits"),
        Some(&t.access),
        None,
    )
    .await;
    assert_eq!(credits["balance"], "9.978");
    let (_, metrics) = crate::support::call_text("GET", &cp.at("/metrics"), None, None).await;
    assert!(
        metrics.contains(r#"atlasai_cp_credit_debits_total{kind="refused"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("atlasai_cp_credits_charged_millicredits_total{model=\"gpt-4o-mini\"} 22"),
        "{metrics}"
    );
}

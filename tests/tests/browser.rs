//! The portal's Settings → AI page in headless Chromium: starts the real control plane and a
//! fake provider, prepares a tenant with a cluster, credits and usage, then runs
//! `tests/browser/settings-ai.mjs` (playwright-core driving Debian's `/usr/bin/chromium`),
//! which saves a screenshot to `target/browser/settings-ai.png`.
//!
//! CI installs Chromium and the Node packages (`.ci/run`); elsewhere the test says it skipped
//! when they are missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code"
)]

use std::path::PathBuf;
use std::time::Duration;

use atlasai_e2e::{BOOT, cp_env, start};
use atlasai_fakes::openai;
use serde_json::{Value, json};

const GOOD_KEY: &str = "sk-proj-browser-key-000001234";
const BAD_KEY: &str = "sk-proj-browser-bad-0000009999";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

async fn call(method: &str, url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_ai_page_in_headless_chromium() {
    let browser_dir = root().join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let missing: Vec<&str> = [
        (!PathBuf::from(&chromium).exists()).then_some("chromium (apt-get install chromium)"),
        (!browser_dir.join("node_modules/playwright-core").exists())
            .then_some("node packages (npm ci --prefix tests/browser)"),
        std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_err()
            .then_some("node"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "the browser test must run in CI, but these are missing: {missing:?} (.ci/run installs them)"
        );
        eprintln!("skipped: missing {missing:?}");
        return;
    }

    let fake = openai::start(Some(GOOD_KEY), "llama3.2").await;
    let managed = openai::start(Some("sk-managed-0000000000"), "gpt-4o-mini").await;
    let dir = tempfile::tempdir().unwrap();
    let managed_url = format!("{}/v1", managed.base_url);
    let cp = start(
        "atlasai-cp",
        &cp_env(
            dir.path(),
            &[
                ("CP_ALLOW_PRIVATE_ENDPOINTS", "1"),
                ("CP_INITIAL_CREDITS", "25"),
                ("CP_MANAGED_PROVIDER", "openai"),
                ("CP_MANAGED_MODEL", "gpt-4o-mini"),
                ("CP_MANAGED_API_KEY", "sk-managed-0000000000"),
                ("CP_MANAGED_ENDPOINT_URL", &managed_url),
                ("CP_MANAGED_PRICES", "gpt-4o-mini=0.15/0.6"),
            ],
        ),
        "control plane listening",
    );
    let (s, t) = call(
        "POST",
        &format!("{}/api/v1/tenants", cp.url),
        Some(BOOT),
        json!({"id": "acme", "name": "Acme", "owner_email": "owner@acme.example"}),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let api_token = t["api_token"].as_str().unwrap().to_owned();
    let (_, login) = call(
        "POST",
        &format!("{}/api/v1/auth/token", cp.url),
        None,
        json!({"api_token": api_token}),
    )
    .await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    // A cluster that reports its status and some BYOC usage, as a tenant plane would.
    let (_, c) = call(
        "POST",
        &format!("{}/api/v1/tenants/acme/clusters", cp.url),
        Some(&access),
        json!({"name": "prod-eu"}),
    )
    .await;
    let (_, e) = call(
        "POST",
        &format!("{}/api/tp/v1/enroll", cp.url),
        None,
        json!({"enroll_token": c["enroll_token"], "tp_version": "0.1.0"}),
    )
    .await;
    let cred = e["credential"].as_str().unwrap().to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (s, _) = call("POST", &format!("{}/api/tp/v1/status", cp.url), Some(&cred), json!({"tp_version": "0.1.0", "provider": "openai", "model": "llama3.2", "config_source": "portal", "last_test": {"ok": true, "latency_ms": 412, "at_unix": now, "error": null}})).await;
    assert_eq!(s, 204);
    let (s, _) = call("POST", &format!("{}/api/tp/v1/usage", cp.url), Some(&cred), json!({"report_id": "r1", "entries": [{"tenant_id": "acme", "route": "byoc", "provider": "openai", "model": "llama3.2", "calls": 42, "failed_calls": 1, "prompt_tokens": 18230, "completion_tokens": 2310}]})).await;
    assert_eq!(s, 200);

    let screenshot = root().join("target/browser/settings-ai.png");
    let _ = std::fs::remove_file(&screenshot);
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("node")
            .arg(browser_dir.join("settings-ai.mjs"))
            .current_dir(&browser_dir)
            .env("CP_URL", &cp.url)
            .env("API_TOKEN", &api_token)
            .env("ENDPOINT", format!("{}/v1", fake.base_url))
            .env("GOOD_KEY", GOOD_KEY)
            .env("BAD_KEY", BAD_KEY)
            .env("SCREENSHOT", &screenshot)
            .env("CHROMIUM", &chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser test finishes within 3 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}\ncontrol plane:\n{}",
        cp.logs()
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
    assert!(
        !cp.logs().contains(GOOD_KEY) && !cp.logs().contains(BAD_KEY),
        "no key in the control plane's log"
    );
}

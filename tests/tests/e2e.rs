//! End-to-end: both real binaries side by side, as an operator would run them. The tenant
//! plane must work alone (air-gapped: no control plane configured), answer its connection
//! test through a provider, and report `cp_connected: false`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The binaries `cargo build --workspace --bins` puts next to this test's `deps/` directory.
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace --bins` first (cargo xtask ci does)",
        path.display()
    );
    path
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(name: &str, env: &[(&str, &str)], marker: &'static str) -> (Running, String) {
    let mut child = Command::new(bin(name))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(marker) {
                let v: Value = serde_json::from_str(&line).unwrap_or_default();
                let _ = tx.send(
                    v["fields"]["address"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    });
    let running = Running(child);
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("binary did not start");
    (running, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_planes_run_and_the_tenant_plane_works_without_the_control_plane() {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let fake = atlasai_fakes::openai::start(None, "llama3.2").await;
    let data = tempfile::tempdir().unwrap();
    let endpoint = format!("{}/v1", fake.base_url);
    let cp_data = tempfile::tempdir().unwrap();
    let cp_db = format!("sqlite://{}", cp_data.path().join("cp.db").display());
    let (_cp, cp_url) = start(
        "atlasai-cp",
        &[
            ("CP_BIND_ADDR", "127.0.0.1:0"),
            ("CP_LOG_FORMAT", "json"),
            ("CP_SECRET_KEY", atlasai_e2e::CP_KEY),
            ("CP_DATABASE_URL", &cp_db),
        ],
        "control plane listening",
    );
    let (_tp, tp_url) = start(
        "atlasai-tp",
        &[
            ("TP_BIND_ADDR", "127.0.0.1:0"),
            ("TP_LOG_FORMAT", "json"),
            ("TP_DATA_DIR", data.path().to_str().unwrap()),
            ("TP_ADMIN_TOKEN", "e2e-admin-token-0123456789"),
            ("BYOC_PROVIDER", "openai"),
            ("BYOC_API_KEY", "ollama"),
            ("BYOC_ENDPOINT_URL", &endpoint),
            ("BYOC_MODEL", "llama3.2"),
        ],
        "tenant plane listening",
    );
    let http = reqwest::Client::new();
    for url in [
        format!("{cp_url}/healthz"),
        format!("{tp_url}/healthz"),
        format!("{tp_url}/readyz"),
    ] {
        assert_eq!(http.get(&url).send().await.unwrap().status(), 200, "{url}");
    }
    let resp = http
        .post(format!("{tp_url}/api/ai/test"))
        .bearer_auth("e2e-admin-token-0123456789")
        .header("x-tenant-id", "your-tenant")
        .json(&serde_json::json!({"test": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["provider"], "openai");
    assert_eq!(body["model"], "llama3.2");
    assert_eq!(body["cp_connected"], false);
}

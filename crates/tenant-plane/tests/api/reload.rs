//! Reload without restart: values-file edits, kubelet's `..data` symlink swap, secret-file
//! rotation and SIGHUP; an invalid change keeps the last good configuration.

use std::path::Path;

use atlasai_fakes::openai;
use serde_json::Value;

use crate::doc_examples::helm_values;
use crate::support::{Tp, admin_get, ai_test, eventually};

async fn model_served(url: &str) -> Option<String> {
    let (status, body) = ai_test(url).await;
    (status == 200).then(|| body["model"].as_str().unwrap_or_default().to_owned())
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_file_change_applies_without_restart_and_bad_change_is_rejected() {
    let fake = openai::start(Some("sk-helm-values-key-000"), "").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, helm_values(&endpoint, "gpt-4o-mini")).unwrap();
    let tp = Tp::start(&[], &["--values", values.to_str().unwrap()]);
    let pid = tp.pid();
    assert_eq!(model_served(&tp.url).await.as_deref(), Some("gpt-4o-mini"));

    // An in-place edit, as an editor or `kubectl cp` does it.
    std::fs::write(&values, helm_values(&endpoint, "gpt-4o")).unwrap();
    eventually("the new model", || async {
        model_served(&tp.url).await.as_deref() == Some("gpt-4o")
    })
    .await;
    assert_eq!(tp.pid(), pid, "same process");

    // A change that does not validate is rejected; the last good configuration stays.
    write_atomically(&values, "byoc:\n  provider: openia\n  model: broken\n");
    let status_url = format!("{}/api/status", tp.url);
    eventually("the rejection in status", || async {
        admin_get(&status_url).await["last_reload"]["ok"] == false
    })
    .await;
    let status = admin_get(&status_url).await;
    let errors = status["last_reload"]["errors"].to_string();
    assert!(
        errors.contains("unknown provider \\\"openia\\\""),
        "{status}"
    );
    assert_eq!(status["model"], "gpt-4o");
    assert_eq!(model_served(&tp.url).await.as_deref(), Some("gpt-4o"));
    assert!(
        tp.logs().contains("configuration change rejected"),
        "{}",
        tp.logs()
    );

    // Fixing the file is picked up again.
    write_atomically(&values, &helm_values(&endpoint, "gpt-4.1-mini"));
    eventually("the fixed model", || async {
        model_served(&tp.url).await.as_deref() == Some("gpt-4.1-mini")
    })
    .await;
    let status = admin_get(&status_url).await;
    assert_eq!(status["last_reload"]["ok"], true);
    assert!(
        status["config_generation"].as_u64().unwrap() >= 3,
        "{status}"
    );
}

#[cfg(unix)]
fn kubelet_publish(volume: &Path, generation: u32, files: &[(&str, &str)]) {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_bytes())).collect();
    atlasai_fakes::kubelet::publish(volume, generation, &files).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_symlink_swap_of_configmap_and_secret() {
    let fake = openai::start(Some("sk-rotated-key-0002"), "").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let root = tempfile::tempdir().unwrap();
    let config_vol = root.path().join("config");
    let secret_vol = root.path().join("secret");
    std::fs::create_dir_all(&config_vol).unwrap();
    std::fs::create_dir_all(&secret_vol).unwrap();
    let values = |model: &str| {
        format!("byoc:\n  provider: openai\n  model: {model}\n  endpointUrl: {endpoint}\n")
    };
    kubelet_publish(&config_vol, 1, &[("values.yaml", &values("gpt-4o-mini"))]);
    kubelet_publish(&secret_vol, 1, &[("apiKey", "sk-old-key-0001\n")]);
    let tp = Tp::start(
        &[
            (
                "TP_VALUES_FILE",
                config_vol.join("values.yaml").to_str().unwrap(),
            ),
            (
                "BYOC_API_KEY_FILE",
                secret_vol.join("apiKey").to_str().unwrap(),
            ),
        ],
        &[],
    );
    // The old key is rejected by the provider.
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 503, "{body}");

    // Rotate the Secret: the next test uses the new key.
    kubelet_publish(&secret_vol, 2, &[("apiKey", "sk-rotated-key-0002\n")]);
    eventually("the rotated key", || async {
        model_served(&tp.url).await.as_deref() == Some("gpt-4o-mini")
    })
    .await;

    // Update the ConfigMap: the new model is served.
    kubelet_publish(&config_vol, 2, &[("values.yaml", &values("gpt-4o"))]);
    eventually("the new model", || async {
        model_served(&tp.url).await.as_deref() == Some("gpt-4o")
    })
    .await;
    assert!(!tp.logs().contains("sk-rotated-key-0002"));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads() {
    let tp = Tp::start(&[], &[]);
    let status_url = format!("{}/api/status", tp.url);
    let before: Value = admin_get(&status_url).await;
    assert_eq!(before["last_reload"]["trigger"], "startup");
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &tp.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    eventually("a SIGHUP reload", || async {
        admin_get(&status_url).await["last_reload"]["trigger"] == "SIGHUP"
    })
    .await;
    let after = admin_get(&status_url).await;
    assert_eq!(after["last_reload"]["ok"], true);
    assert!(after["config_generation"].as_u64() > before["config_generation"].as_u64());
}

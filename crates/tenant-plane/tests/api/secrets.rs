//! A secret never appears in logs, `check-config` output or any response. The fake OpenAI
//! echoes a rejected key in full (the real API masks it), so this test also proves that
//! provider messages are scrubbed.

use crate::support::{ADMIN, Tp, admin_get, ai_test, client, run_cmd_async};

const SECRET: &str = "sk-proj-SECRET-never-show-me-4242";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_leak() {
    let fake =
        atlasai_fakes::openai::start(Some("sk-proj-the-key-the-fake-wants"), "gpt-4o-mini").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let vars = [
        ("BYOC_PROVIDER", "openai"),
        ("BYOC_API_KEY", SECRET),
        ("BYOC_MODEL", "gpt-4o-mini"),
        ("BYOC_ENDPOINT_URL", endpoint.as_str()),
    ];
    let tp = Tp::start(&vars, &[]);
    let (status, body) = ai_test(&tp.url).await;
    assert_eq!(status, 503, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("authentication failed (HTTP 401)"),
        "{detail}"
    );
    assert!(
        detail.contains("[REDACTED]"),
        "the fake echoed the key, so it must be scrubbed: {detail}"
    );
    let mut seen = vec![body.to_string()];
    seen.push(
        admin_get(&format!("{}/api/status", tp.url))
            .await
            .to_string(),
    );
    seen.push(
        client()
            .get(format!("{}/api/openapi.json", tp.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );

    let owned: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let (code, stdout, stderr) = run_cmd_async(owned.clone(), vec!["check-config".into()]).await;
    assert_eq!(code, 0, "{stderr}");
    seen.push(stdout);
    seen.push(stderr);
    let (code, stdout, stderr) = run_cmd_async(owned, vec!["test-connection".into()]).await;
    assert_eq!(code, 69, "{stdout} {stderr}");
    seen.push(stdout);
    seen.push(stderr);
    seen.push(tp.logs_containing("connection test failed").await);

    assert!(
        tp.logs().contains("connection test failed"),
        "the failure is logged:\n{}",
        tp.logs()
    );
    for text in &seen {
        assert!(!text.contains(SECRET), "secret leaked in:\n{text}");
        assert!(!text.contains(ADMIN), "admin token leaked in:\n{text}");
        // Not even most of it.
        assert!(
            !text.contains(&SECRET[..20]),
            "secret prefix leaked in:\n{text}"
        );
    }
}

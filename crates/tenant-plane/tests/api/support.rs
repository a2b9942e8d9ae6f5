//! Starting the real binary, and talking to it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The admin token every test server uses.
pub const ADMIN: &str = "test-admin-token-0123456789abcdef";

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_atlasai-tp")
}

/// A running `atlasai-tp serve`, killed on drop.
pub struct Tp {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    logs: Arc<Mutex<Vec<String>>>,
    /// The data directory (a temp dir the test owns).
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// Environment for a test process: nothing inherited except PATH, so the developer's own
/// AWS or OpenAI settings can never leak into a test.
pub fn base_env(data_dir: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    env.insert("HOME".into(), data_dir.display().to_string());
    env.insert("TP_BIND_ADDR".into(), "127.0.0.1:0".into());
    env.insert("TP_DATA_DIR".into(), data_dir.display().to_string());
    env.insert("TP_ADMIN_TOKEN".into(), ADMIN.into());
    env.insert("TP_LOG_FORMAT".into(), "json".into());
    env.insert(
        "RUST_LOG".into(),
        "debug,hyper=info,h2=info,rustls=info,reqwest=info".into(),
    );
    // Keep the AWS SDK away from the (absent) instance metadata service.
    env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
    // Fast, bounded provider calls in tests.
    env.insert("TP_PROVIDER_TIMEOUT".into(), "10s".into());
    env
}

impl Tp {
    /// Starts the server with these extra variables and arguments, waiting until it listens.
    pub fn start(vars: &[(&str, &str)], args: &[&str]) -> Tp {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().to_owned();
        let mut env = base_env(&data_dir);
        for (k, v) in vars {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        Self::start_with_env(env, args, Some(tmp))
    }

    /// Starts the server with exactly this environment.
    pub fn start_with_env(
        env: BTreeMap<String, String>,
        args: &[&str],
        tmp: Option<tempfile::TempDir>,
    ) -> Tp {
        let data_dir = PathBuf::from(&env["TP_DATA_DIR"]);
        let mut child = Command::new(binary())
            .args(args)
            .env_clear()
            .envs(&env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("tenant plane listening") {
                    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    let _ = tx.send(
                        v["fields"]["address"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "atlasai-tp did not start; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Tp {
            child,
            url: format!("http://{addr}"),
            logs,
            data_dir,
            _tmp: tmp,
        }
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Everything logged so far, once a line containing `needle` has been written (see
    /// [`atlasai_fakes::logs::when_logged`]).
    pub async fn logs_containing(&self, needle: &str) -> String {
        atlasai_fakes::logs::when_logged(|| self.logs(), needle).await
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Tp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for tests.
pub fn client() -> reqwest::Client {
    atlasai_providers::http::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `POST /api/ai/test` as the documentation shows it; returns status and body.
pub async fn ai_test(url: &str) -> (u16, Value) {
    ai_test_body(url, serde_json::json!({"test": true})).await
}

/// `POST /api/ai/test` with a body.
pub async fn ai_test_body(url: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{url}/api/ai/test"))
        .bearer_auth(ADMIN)
        .header("x-tenant-id", "acme")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `GET` with the admin token.
pub async fn admin_get(url: &str) -> Value {
    client()
        .get(url)
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Asserts the documented success shape exactly: these five keys and no others.
pub fn assert_ok_shape(body: &Value, provider: &str, model: &str) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["cp_connected", "latency_ms", "model", "provider", "status"],
        "{body}"
    );
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["provider"], provider, "{body}");
    assert_eq!(body["model"], model, "{body}");
    assert!(body["latency_ms"].is_u64(), "{body}");
    assert_eq!(body["cp_connected"], false, "{body}");
}

/// Polls until `check` passes or the deadline (a liveness bound, not a speed target) passes.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Runs a one-shot subcommand (`check-config`, `test-connection`) and returns its exit code,
/// stdout and stderr.
pub fn run_cmd(vars: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut env = base_env(tmp.path());
    for (k, v) in vars {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let out = Command::new(binary())
        .args(args)
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a one-shot subcommand on a blocking thread, so fakes on this runtime keep serving.
pub async fn run_cmd_async(
    vars: Vec<(String, String)>,
    args: Vec<String>,
) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cmd(&vars, &args)
    })
    .await
    .unwrap()
}

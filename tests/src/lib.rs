//! Helpers for the end-to-end tests in `tests/`: the real binaries, started with a clean
//! environment and stopped on drop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A secret key for test control planes.
pub const CP_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// The operator token of test control planes.
pub const BOOT: &str = "e2e-operator-token-0123456789";
/// The admin token of test tenant planes.
pub const TP_ADMIN: &str = "e2e-admin-token-0123456789";

/// The binaries `cargo build --workspace --bins` puts next to the test's `deps/` directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace --bins` first (cargo xtask ci does)",
        path.display()
    );
    path
}

/// A running binary, killed on drop; its log lines are kept.
#[derive(Debug)]
pub struct Running {
    child: Child,
    /// `http://<address>`.
    pub url: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    /// Everything logged so far, once a line containing `needle` has been written (see
    /// [`atlasai_fakes::logs::when_logged`]).
    pub async fn logs_containing(&self, needle: &str) -> String {
        atlasai_fakes::logs::when_logged(|| self.logs(), needle).await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory in KiB (Linux), for checks that memory stays bounded.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Stops it now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a binary with exactly `env` (plus PATH), waiting for the log line `marker` that
/// carries its listening address.
pub fn start(name: &str, env: &BTreeMap<String, String>, marker: &'static str) -> Running {
    let mut child = Command::new(bin(name))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stderr = child.stderr.take();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(stderr) = stderr else { return };
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(marker) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                let _ = tx.send(
                    v["fields"]["address"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "{name} did not start; logs:\n{}",
                logs.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .join("\n")
            );
        }
    };
    Running {
        child,
        url: format!("http://{addr}"),
        logs,
    }
}

/// The environment of a test control plane on a SQLite file in `dir`.
pub fn cp_env(dir: &std::path::Path, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("CP_BIND_ADDR", "127.0.0.1:0"),
        ("CP_LOG_FORMAT", "json"),
        ("CP_SECRET_KEY", CP_KEY),
        ("CP_BOOTSTRAP_TOKEN", BOOT),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.insert(
        "CP_DATABASE_URL".into(),
        format!("sqlite://{}", dir.join("cp.db").display()),
    );
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// The environment of a test tenant plane with its data in `dir`.
pub fn tp_env(dir: &std::path::Path, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("TP_BIND_ADDR", "127.0.0.1:0"),
        ("TP_LOG_FORMAT", "json"),
        ("TP_ADMIN_TOKEN", TP_ADMIN),
        ("TP_PROVIDER_TIMEOUT", "10s"),
        ("TP_CP_REPORT_INTERVAL", "200ms"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.insert("TP_DATA_DIR".into(), dir.display().to_string());
    env.insert("HOME".into(), dir.display().to_string());
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

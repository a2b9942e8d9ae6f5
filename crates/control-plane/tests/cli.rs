//! The control-plane binary validates its configuration before binding and answers health
//! checks.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn cp() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlasai-cp"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

#[test]
fn invalid_configuration_exits_64_with_every_problem() {
    let out = cp()
        .args(["check-config"])
        .env("CP_BIND_ADDR", "not-an-address")
        .env("CP_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CP_BIND_ADDR: \"not-an-address\" is not a socket address"),
        "{stderr}"
    );
    assert!(stderr.contains("CP_LOG_FORMAT"), "{stderr}");
    assert!(
        stderr.contains("CP_SECRET_KEY (or CP_SECRET_KEY_FILE) is required"),
        "{stderr}"
    );
    assert!(stderr.contains("(3 problems)"), "{stderr}");
}

#[test]
fn check_config_accepts_defaults_with_a_secret_key_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let out = cp()
        .args(["check-config"])
        .env("CP_SECRET_KEY_FILE", &key_file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0.0.0.0:8090"), "{stdout}");
    assert!(!stdout.contains(KEY), "the key is never printed");
}

#[test]
fn serves_health() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = cp()
        .env("CP_SECRET_KEY", KEY)
        .env(
            "CP_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("cp.db").display()),
        )
        .env("CP_BIND_ADDR", "127.0.0.1:0")
        .env("CP_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("control plane listening") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                let _ = tx.send(
                    v["fields"]["address"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    });
    let addr = rx.recv_timeout(std::time::Duration::from_secs(30));
    let Ok(addr) = addr else {
        let _ = child.kill();
        panic!("atlasai-cp did not report its address");
    };
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    stream.read_to_string(&mut resp).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains(r#"{"status":"ok"}"#), "{resp}");
}

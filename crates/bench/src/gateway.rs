//! `atlasai-bench gateway`: the gateway comparison. In one run it measures the fake upstream
//! called directly (the baseline), the tenant plane in front of it (metrics on, and metrics off
//! to show what recording costs), and, when installed, LiteLLM proxy and Portkey gateway in
//! front of the same upstream. For each: latency at every concurrency, maximum throughput,
//! time to first byte of a stream, and peak memory of the gateway's processes.
//!
//! Placement is the same for every gateway: this process (the load generator) runs on CPU 0
//! (`cargo xtask bench` starts it under `taskset -c 0`), the upstream and the gateway under test
//! share CPU 1 (`taskset -c 1`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::load::{self, Measured, Target};
use crate::say;

const UPSTREAM_KEY: &str = "sk-bench-upstream-0000";
const TP_KEY: &str = "sk-tp-bench-0123456789abcdef";
const LITELLM_KEY: &str = "sk-litellm-master-bench";

/// The chat request every gateway gets: a small, realistic incident question.
const CHAT_BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You are an SRE assistant. Answer in one sentence."},{"role":"user","content":"Why did pod api-7f9c restart at 02:14? Events: Liveness probe failed: HTTP probe failed with statuscode: 503; Back-off restarting failed container."}],"max_tokens":64,"temperature":0}"#;
const STREAM_BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You are an SRE assistant. Answer in one sentence."},{"role":"user","content":"Why did pod api-7f9c restart at 02:14? Events: Liveness probe failed: HTTP probe failed with statuscode: 503; Back-off restarting failed container."}],"max_tokens":64,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"#;

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// The release `atlasai-tp` binary.
    pub tenant_plane: PathBuf,
    /// The `litellm` executable in its virtual environment, when installed.
    pub litellm: Option<PathBuf>,
    /// Portkey's `build/start-server.js`, when installed.
    pub portkey: Option<PathBuf>,
    /// Where results go (`gateway.json`, `gateway.md`).
    pub out: PathBuf,
    /// Where the processes' logs and scratch files go.
    pub work: PathBuf,
    /// Load before each measurement.
    pub warmup: Duration,
    /// Each measurement.
    pub window: Duration,
    /// Concurrency levels.
    pub concurrency: Vec<usize>,
    /// The upstream's pause between stream chunks.
    pub stream_gap: Duration,
    /// Only these targets (by short name), when given.
    pub only: Vec<String>,
    /// Targets that could not be installed, with why (`name=reason`).
    pub unavailable: Vec<(String, String)>,
}

/// One load level's numbers, in milliseconds and requests per second.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Level {
    /// Workers (connections) in the closed loop.
    pub concurrency: usize,
    /// Completed 200 answers in the window.
    pub requests: u64,
    /// Failed requests in the window.
    pub errors: u64,
    /// The first error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Completed requests per second.
    pub throughput_rps: f64,
    /// Latency percentiles.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// CPU time (user + system) the target's own processes spent per completed request,
    /// microseconds: robust to other load on the machine, unlike throughput.
    pub cpu_us_per_request: f64,
}

/// The stream measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamLevel {
    /// Workers.
    pub concurrency: usize,
    /// Completed streams.
    pub requests: u64,
    /// Failed streams.
    pub errors: u64,
    /// The first error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Time to the first body byte.
    pub ttfb_p50_ms: f64,
    /// Time to the first body byte, 99th percentile.
    pub ttfb_p99_ms: f64,
    /// Time to the end of the stream.
    pub total_p50_ms: f64,
    /// The upstream's own time to first byte, p50, measured in rounds alternating with this
    /// target's (absent for the upstream itself, and in runs from before 2026-12-03).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ttfb_p50_ms: Option<f64>,
}

/// Latency a gateway adds over the upstream at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Added {
    /// Workers.
    pub concurrency: usize,
    /// Gateway p50 minus upstream p50.
    pub p50_ms: f64,
    /// Gateway p99 minus upstream p99.
    pub p99_ms: f64,
}

/// Everything measured for one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetResult {
    /// Short name (`upstream`, `tenant-plane`, ...).
    pub name: String,
    /// What it is, with its version.
    pub description: String,
    /// Non-streaming chat at each concurrency.
    pub chat: Vec<Level>,
    /// Streaming chat.
    pub stream: Option<StreamLevel>,
    /// The best throughput over the levels.
    pub max_throughput_rps: f64,
    /// Peak resident memory of the target's processes (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Latency added over the upstream (absent for the upstream itself).
    pub added: Vec<Added>,
    /// Time to first byte added over the upstream's, ms: over the upstream's rounds that
    /// alternated with this target's when there were such, else over the upstream's own row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_ttfb_p50_ms: Option<f64>,
    /// The machine's 1-minute load average before and after this target (other work on the
    /// machine competes with the CPU the gateway is pinned to).
    pub load_average: [f64; 2],
}

/// Why a target was not measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    /// Short name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// When (seconds since the Unix epoch).
    pub at_unix: u64,
    /// The machine.
    pub machine: Machine,
    /// How it was measured.
    pub settings: Settings,
    /// The cost of recording metrics, measured in-process.
    pub metrics_cost: crate::micro::MetricsCost,
    /// Per target.
    pub targets: Vec<TargetResult>,
    /// Targets that could not be measured.
    pub skipped: Vec<Skipped>,
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// `/proc/cpuinfo` model name.
    pub cpu: String,
    /// Online CPUs.
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// The load generator's allowed CPUs.
    pub load_generator_cpus: String,
}

/// How the numbers were taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Warm-up per level, seconds.
    pub warmup_s: f64,
    /// Measurement per level, seconds.
    pub window_s: f64,
    /// Concurrency levels.
    pub concurrency: Vec<usize>,
    /// The upstream's pause between stream chunks, ms.
    pub stream_gap_ms: f64,
    /// Where each part ran.
    pub placement: String,
    /// The load generator.
    pub load_generator: String,
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn level(concurrency: usize, m: &Measured, cpu: Duration) -> Level {
    Level {
        concurrency,
        requests: m.ok,
        errors: m.errors,
        first_error: m.first_error.clone(),
        throughput_rps: m.throughput(),
        p50_ms: ms(m.latency.value_at_quantile(0.50)),
        p90_ms: ms(m.latency.value_at_quantile(0.90)),
        p99_ms: ms(m.latency.value_at_quantile(0.99)),
        max_ms: ms(m.latency.max()),
        cpu_us_per_request: if m.ok == 0 {
            0.0
        } else {
            cpu.as_secs_f64() * 1e6 / m.ok as f64
        },
    }
}

/// A free port on 127.0.0.1 (bound and released; the race with other processes is harmless
/// on a benchmark machine).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A process under test, pinned to CPU 1 and killed (with its children) on drop.
struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    fn start(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        logs: &Path,
    ) -> anyhow::Result<Proc> {
        let log = std::fs::File::create(logs.join(format!("{name}.log")))
            .with_context(|| format!("creating the log for {name}"))?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg("1").arg(program).args(args);
        cmd.env_clear();
        for var in ["PATH", "HOME", "LANG", "TMPDIR"] {
            if let Ok(v) = std::env::var(var) {
                cmd.env(var, v);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        Ok(Proc {
            child,
            name: name.to_owned(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the process and its descendants, MiB.
    fn peak_rss_mib(&self) -> f64 {
        tree(self.pid())
            .into_iter()
            .map(|pid| status_kib(pid, "VmHWM:"))
            .sum::<u64>() as f64
            / 1024.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let descendants: Vec<u32> = tree(self.pid()).into_iter().skip(1).collect();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in descendants {
            // Only processes this benchmark started (children of the gateway it launched).
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        say(&format!("stopped {}", self.name));
    }
}

/// CPU time (user + system) of a process and its descendants so far.
pub fn tree_cpu(root: u32) -> Duration {
    tree(root).into_iter().map(cpu_time).sum()
}

/// The process and all its descendants, found through `/proc/*/stat`.
fn tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The command name may hold spaces; the fields after its closing parenthesis are
            // plain: state, then the parent pid.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// User plus system time of a process, from `/proc/<pid>/stat` (in clock ticks of 1/100 s,
/// Linux's fixed USER_HZ).
fn cpu_time(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(')')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // After the command: state is field 3, utime 14 and stime 15 (1-based).
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The 1-minute load average, to show how busy the machine was.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn header(name: &'static str, value: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    Ok((HeaderName::from_static(name), HeaderValue::from_str(value)?))
}

/// How to reach one target, and how to start it.
struct Plan {
    name: &'static str,
    description: String,
    addr: SocketAddr,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    start: Option<Box<dyn FnOnce() -> anyhow::Result<Proc>>>,
}

impl Plan {
    fn target(&self, body: &'static str) -> Target {
        Target {
            addr: self.addr,
            path: self.path.clone(),
            headers: self.headers.clone(),
            body: Bytes::from_static(body.as_bytes()),
            pause: Duration::ZERO,
        }
    }
}

async fn wait_until_ready(target: &Target, name: &str, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if load::answers(target).await {
            say(&format!(
                "{name} is ready after {:.1}s",
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{name} did not answer a chat request within {limit:?}; see its log")
}

fn version_of(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown version".to_owned())
}

fn tenant_plane_plan(o: &Options, upstream: SocketAddr, metrics: bool) -> anyhow::Result<Plan> {
    let port = free_port()?;
    let name = if metrics {
        "tenant-plane"
    } else {
        "tenant-plane-no-metrics"
    };
    let data = o.work.join(format!("{name}-data"));
    std::fs::create_dir_all(&data)?;
    let env: Vec<(String, String)> = [
        ("TP_BIND_ADDR", format!("127.0.0.1:{port}")),
        ("TP_DATA_DIR", data.display().to_string()),
        ("TP_ADMIN_TOKEN", "bench-admin-token-0123456789".to_owned()),
        ("BYOC_PROVIDER", "openai".to_owned()),
        ("BYOC_ENDPOINT_URL", format!("http://{upstream}/v1")),
        ("BYOC_MODEL", "bench-model".to_owned()),
        ("BYOC_API_KEY", UPSTREAM_KEY.to_owned()),
        ("TP_API_KEYS", format!("bench:{TP_KEY}")),
        ("TP_MODEL_ALIASES", "gpt-4o=@chat".to_owned()),
        (
            "TP_METRICS_ENABLED",
            if metrics { "1" } else { "0" }.to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let program = o.tenant_plane.clone();
    let work = o.work.clone();
    let version = version_of(&program, &["--version"]);
    Ok(Plan {
        name,
        description: format!(
            "{version} (release build; default logging: one request line and one model-call line per request){}",
            if metrics {
                ""
            } else {
                ", TP_METRICS_ENABLED=0"
            }
        ),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        path: "/v1/chat/completions".to_owned(),
        headers: vec![header("authorization", &format!("Bearer {TP_KEY}"))?],
        start: Some(Box::new(move || {
            Proc::start(name, &program, &["serve".to_owned()], &env, &work)
        })),
    })
}

fn litellm_plan(o: &Options, litellm: &Path, upstream: SocketAddr) -> anyhow::Result<Plan> {
    let port = free_port()?;
    let config = o.work.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/bench-model\n      api_base: http://{upstream}/v1\n      api_key: {UPSTREAM_KEY}\ngeneral_settings:\n  master_key: {LITELLM_KEY}\nlitellm_settings:\n  telemetry: false\n"
        ),
    )?;
    let python = litellm.with_file_name("python");
    let version = version_of(
        &python,
        &[
            "-c",
            "import importlib.metadata as m; print('LiteLLM proxy ' + m.version('litellm'))",
        ],
    );
    let env: Vec<(String, String)> = vec![
        ("LITELLM_LOCAL_MODEL_COST_MAP".to_owned(), "True".to_owned()),
        ("LITELLM_TELEMETRY".to_owned(), "False".to_owned()),
    ];
    let args: Vec<String> = vec![
        "--config".into(),
        config.display().to_string(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--num_workers".into(),
        "1".into(),
    ];
    let program = litellm.to_owned();
    let work = o.work.clone();
    Ok(Plan {
        name: "litellm",
        description: format!(
            "{version} (one worker, LITELLM_LOCAL_MODEL_COST_MAP=True, no database)"
        ),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        path: "/v1/chat/completions".to_owned(),
        headers: vec![header("authorization", &format!("Bearer {LITELLM_KEY}"))?],
        start: Some(Box::new(move || {
            Proc::start("litellm", &program, &args, &env, &work)
        })),
    })
}

fn portkey_plan(o: &Options, server_js: &Path, upstream: SocketAddr) -> anyhow::Result<Plan> {
    let port = free_port()?;
    let version = server_js
        .parent()
        .and_then(Path::parent)
        .and_then(|p| std::fs::read_to_string(p.join("package.json")).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown version".to_owned());
    let args: Vec<String> = vec![
        server_js.display().to_string(),
        format!("--port={port}"),
        "--headless".into(),
    ];
    let env = vec![("NODE_ENV".to_owned(), "production".to_owned())];
    let work = o.work.clone();
    Ok(Plan {
        name: "portkey",
        description: format!(
            "Portkey gateway {version} (Node.js {})",
            version_of(Path::new("node"), &["--version"])
        ),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        path: "/v1/chat/completions".to_owned(),
        headers: vec![
            (
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {UPSTREAM_KEY}"))?,
            ),
            header("x-portkey-provider", "openai")?,
            header("x-portkey-custom-host", &format!("http://{upstream}/v1"))?,
        ],
        start: Some(Box::new(move || {
            Proc::start("portkey", Path::new("node"), &args, &env, &work)
        })),
    })
}

/// A target for `atlasai-bench load`: the standard chat body (streamed or not) sent to a URL.
pub fn target_for_url(url: &str, headers: &[String], stream: bool) -> anyhow::Result<Target> {
    let u = url::Url::parse(url).with_context(|| format!("--url {url:?}"))?;
    let host = u
        .host_str()
        .context("--url needs a host")?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip: std::net::IpAddr = host
        .parse()
        .with_context(|| format!("--url: {host:?} must be an IP address"))?;
    let addr = SocketAddr::new(ip, u.port_or_known_default().unwrap_or(80));
    let headers = headers
        .iter()
        .map(|h| {
            let (k, v) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?}: use `name: value`"))?;
            Ok((
                HeaderName::from_bytes(k.trim().as_bytes())?,
                HeaderValue::from_str(v.trim())?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Target {
        addr,
        path: u.path().to_owned(),
        headers,
        body: Bytes::from_static(if stream { STREAM_BODY } else { CHAT_BODY }.as_bytes()),
        pause: Duration::ZERO,
    })
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let load_generator_cpus = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .map(|l| l.trim_start_matches("Cpus_allowed_list:").trim().to_owned())
        .unwrap_or_default();
    Machine {
        cpu,
        cpus,
        kernel,
        load_generator_cpus,
    }
}

/// Rounds of the stream measurement; see [`stream_rounds`].
const STREAM_ROUNDS: u32 = 5;

/// Streams at c=1 through `target` and, when given, at the upstream directly, in alternating
/// rounds that split the window. A stream's first byte differs by a tenth of a millisecond,
/// while this machine's own speed drifts by more than that over the minutes between the
/// upstream's row and a gateway's: rounds side by side compare like with like.
async fn stream_rounds(
    target: &Target,
    upstream: Option<&Target>,
    o: &Options,
) -> anyhow::Result<(Measured, Option<Measured>)> {
    let Some(upstream) = upstream else {
        return Ok((load::run(target, 1, o.warmup, o.window, None).await?, None));
    };
    let window = o.window / STREAM_ROUNDS;
    let mut through: Option<Measured> = None;
    let mut direct: Option<Measured> = None;
    for round in 0..STREAM_ROUNDS {
        // Each round opens new connections: warm them up again, briefly after the first.
        let warmup = if round == 0 {
            o.warmup
        } else {
            o.warmup.min(Duration::from_millis(250))
        };
        for (t, acc) in [(target, &mut through), (upstream, &mut direct)] {
            let m = load::run(t, 1, warmup, window, None).await?;
            match acc {
                Some(a) => a.absorb(m)?,
                None => *acc = Some(m),
            }
        }
    }
    let through = through.context("no stream round ran")?;
    Ok((through, direct))
}

/// The first byte a target's stream adds: over the upstream's rounds beside it when there
/// were such, else over the upstream's own row. None when no stream of the target completed.
fn added_first_byte(stream: &StreamLevel, upstream_row: Option<&StreamLevel>) -> Option<f64> {
    if stream.requests == 0 {
        return None;
    }
    let upstream = stream
        .upstream_ttfb_p50_ms
        .or_else(|| upstream_row.map(|u| u.ttfb_p50_ms))?;
    Some(stream.ttfb_p50_ms - upstream)
}

async fn measure(
    mut plan: Plan,
    o: &Options,
    upstream: Option<&TargetResult>,
    upstream_stream: Option<&Target>,
    upstream_proc: &Proc,
) -> anyhow::Result<TargetResult> {
    say(&format!("== {}: {}", plan.name, plan.description));
    let load_before = load_average();
    let started = match plan.start.take() {
        Some(start) => Some(start()?),
        None => None,
    };
    let measured = started.as_ref().unwrap_or(upstream_proc);
    let chat = plan.target(CHAT_BODY);
    wait_until_ready(&chat, plan.name, Duration::from_secs(120)).await?;
    let mut levels = Vec::new();
    for &c in &o.concurrency {
        let m = load::run(&chat, c, o.warmup, o.window, Some(measured.pid())).await?;
        let l = level(c, &m, m.cpu);
        say(&format!(
            "{name} c={c}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {:.1} µs CPU/request, {} errors",
            l.throughput_rps,
            l.p50_ms,
            l.p99_ms,
            l.cpu_us_per_request,
            l.errors,
            name = plan.name
        ));
        levels.push(l);
    }
    let (s, direct) = stream_rounds(&plan.target(STREAM_BODY), upstream_stream, o).await?;
    let stream = StreamLevel {
        concurrency: 1,
        requests: s.ok,
        errors: s.errors,
        first_error: s.first_error.clone(),
        ttfb_p50_ms: ms(s.first_byte.value_at_quantile(0.50)),
        ttfb_p99_ms: ms(s.first_byte.value_at_quantile(0.99)),
        total_p50_ms: ms(s.latency.value_at_quantile(0.50)),
        upstream_ttfb_p50_ms: direct
            .filter(|d| d.ok > 0)
            .map(|d| ms(d.first_byte.value_at_quantile(0.50))),
    };
    say(&format!(
        "{} stream c=1: first byte p50 {:.3} ms p99 {:.3} ms, whole stream p50 {:.3} ms{}",
        plan.name,
        stream.ttfb_p50_ms,
        stream.ttfb_p99_ms,
        stream.total_p50_ms,
        stream
            .upstream_ttfb_p50_ms
            .map(|u| format!("; the upstream directly, rounds alternating: {u:.3} ms"))
            .unwrap_or_default()
    ));
    let peak_rss_mib = match &started {
        Some(p) => p.peak_rss_mib(),
        None => upstream_proc.peak_rss_mib(),
    };
    drop(started);
    let max_throughput_rps = levels.iter().map(|l| l.throughput_rps).fold(0.0, f64::max);
    let added = match upstream {
        Some(u) => levels
            .iter()
            .filter_map(|l| {
                let b = u.chat.iter().find(|b| b.concurrency == l.concurrency)?;
                Some(Added {
                    concurrency: l.concurrency,
                    p50_ms: l.p50_ms - b.p50_ms,
                    p99_ms: l.p99_ms - b.p99_ms,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let added_ttfb_p50_ms = added_first_byte(&stream, upstream.and_then(|u| u.stream.as_ref()));
    Ok(TargetResult {
        name: plan.name.to_owned(),
        description: plan.description.clone(),
        chat: levels,
        stream: Some(stream),
        max_throughput_rps,
        peak_rss_mib,
        added,
        added_ttfb_p50_ms,
        load_average: [load_before, load_average()],
    })
}

/// Runs the comparison and writes `gateway.json` and `gateway.md` into `o.out`.
pub async fn run(o: Options, self_exe: PathBuf) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&o.out)?;
    std::fs::create_dir_all(&o.work)?;
    let machine = machine();
    if machine.load_generator_cpus != "0" {
        say(&format!(
            "warning: the load generator may run on CPUs {}; `cargo xtask bench gateway` pins it to CPU 0",
            machine.load_generator_cpus
        ));
    }
    say("measuring the cost of recording metrics");
    let metrics_cost = crate::micro::metrics_cost(2_000_000)?;
    say(&format!(
        "metrics: {:.0} ns per HTTP request, {:.0} ns per model call",
        metrics_cost.http_request_ns, metrics_cost.model_call_ns
    ));

    let up_port = free_port()?;
    let upstream_addr = SocketAddr::from(([127, 0, 0, 1], up_port));
    let upstream = Proc::start(
        "upstream",
        &self_exe,
        &[
            "upstream".into(),
            "--listen".into(),
            upstream_addr.to_string(),
            "--stream-gap-us".into(),
            o.stream_gap.as_micros().to_string(),
        ],
        &[],
        &o.work,
    )?;
    let wanted = |name: &str| o.only.is_empty() || o.only.iter().any(|n| n == name);
    let mut skipped: Vec<Skipped> = o
        .unavailable
        .iter()
        .map(|(name, reason)| Skipped {
            name: name.clone(),
            reason: reason.clone(),
        })
        .collect();
    let direct = Plan {
        name: "upstream",
        description: "the fake upstream called directly (hyper, one thread): the baseline"
            .to_owned(),
        addr: upstream_addr,
        path: "/v1/chat/completions".to_owned(),
        headers: vec![header("authorization", &format!("Bearer {UPSTREAM_KEY}"))?],
        start: None,
    };
    let upstream_stream = direct.target(STREAM_BODY);
    let mut plans: Vec<Plan> = vec![direct];
    if wanted("tenant-plane") {
        plans.push(tenant_plane_plan(&o, upstream_addr, true)?);
    }
    if wanted("tenant-plane-no-metrics") {
        plans.push(tenant_plane_plan(&o, upstream_addr, false)?);
    }
    if wanted("litellm") {
        match &o.litellm {
            Some(l) => plans.push(litellm_plan(&o, l, upstream_addr)?),
            None if skipped.iter().any(|s| s.name == "litellm") => {}
            None => skipped.push(Skipped {
                name: "litellm".into(),
                reason: "not installed (no --litellm given)".into(),
            }),
        }
    }
    if wanted("portkey") {
        match &o.portkey {
            Some(p) => plans.push(portkey_plan(&o, p, upstream_addr)?),
            None if skipped.iter().any(|s| s.name == "portkey") => {}
            None => skipped.push(Skipped {
                name: "portkey".into(),
                reason: "not installed (no --portkey given)".into(),
            }),
        }
    }

    let mut targets: Vec<TargetResult> = Vec::new();
    for plan in plans {
        let name = plan.name;
        let baseline = targets.first().filter(|t| t.name == "upstream").cloned();
        let paired = (name != "upstream").then_some(&upstream_stream);
        match measure(plan, &o, baseline.as_ref(), paired, &upstream).await {
            Ok(r) => targets.push(r),
            Err(e) if name == "upstream" => return Err(e.context("the upstream failed")),
            Err(e) => {
                say(&format!("{name}: not measured: {e:#}"));
                skipped.push(Skipped {
                    name: name.to_owned(),
                    reason: format!("{e:#}"),
                });
            }
        }
    }
    drop(upstream);

    let report = Report {
        at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        machine,
        settings: Settings {
            warmup_s: o.warmup.as_secs_f64(),
            window_s: o.window.as_secs_f64(),
            concurrency: o.concurrency.clone(),
            stream_gap_ms: o.stream_gap.as_secs_f64() * 1000.0,
            placement: "load generator on CPU 0; the upstream and the gateway under test share CPU 1 (taskset)".into(),
            load_generator: "atlasai-bench: closed loop, one keep-alive HTTP/1.1 connection per worker, HDR histograms (ns)".into(),
        },
        metrics_cost,
        targets,
        skipped,
    };
    std::fs::write(
        o.out.join("gateway.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(o.out.join("gateway.md"), crate::report::markdown(&report))?;
    say(&format!(
        "wrote {}/gateway.json and gateway.md",
        o.out.display()
    ));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(warmup: Duration, window: Duration) -> Options {
        Options {
            tenant_plane: PathBuf::new(),
            litellm: None,
            portkey: None,
            out: PathBuf::new(),
            work: PathBuf::new(),
            warmup,
            window,
            concurrency: vec![1],
            stream_gap: Duration::ZERO,
            only: Vec::new(),
            unavailable: Vec::new(),
        }
    }

    fn stream(requests: u64, ttfb: f64, upstream: Option<f64>) -> StreamLevel {
        StreamLevel {
            concurrency: 1,
            requests,
            errors: 0,
            first_error: None,
            ttfb_p50_ms: ttfb,
            ttfb_p99_ms: ttfb,
            total_p50_ms: 15.0,
            upstream_ttfb_p50_ms: upstream,
        }
    }

    #[test]
    fn the_added_first_byte_prefers_the_rounds_beside_and_needs_a_measured_stream() {
        let row = stream(300, 0.20, None);
        let added = |s: &StreamLevel, r| added_first_byte(s, r).map(|a| (a * 1000.0).round());
        assert_eq!(
            added(&stream(300, 0.25, Some(0.15)), Some(&row)),
            Some(100.0)
        );
        assert_eq!(added(&stream(300, 0.25, None), Some(&row)), Some(50.0));
        assert_eq!(added(&stream(300, 0.25, None), None), None);
        // Every stream failed (Portkey's, here): no first byte, so nothing added.
        assert_eq!(added(&stream(0, 0.0, Some(0.15)), Some(&row)), None);
    }

    #[tokio::test]
    async fn stream_rounds_measure_the_target_and_the_upstream_in_turn() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::upstream::serve_on(
            listener,
            Duration::from_micros(200),
        ));
        let target = Target {
            addr,
            path: "/v1/chat/completions".to_owned(),
            headers: Vec::new(),
            body: Bytes::from_static(STREAM_BODY.as_bytes()),
            pause: Duration::ZERO,
        };
        let started = Instant::now();
        while !load::answers(&target).await {
            assert!(started.elapsed() < Duration::from_secs(10), "no upstream");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let o = options(Duration::from_millis(20), Duration::from_millis(250));

        let (alone, none) = stream_rounds(&target, None, &o).await.unwrap();
        assert!(none.is_none());
        assert_eq!(alone.window, o.window);

        let (through, direct) = stream_rounds(&target, Some(&target), &o).await.unwrap();
        let direct = direct.expect("the upstream's rounds");
        for m in [&through, &direct] {
            // Five rounds of 50 ms each add up to the window, and every completed stream
            // has its first byte recorded.
            assert_eq!(m.window, o.window);
            assert!(m.ok > 0, "no stream completed");
            assert_eq!(m.errors, 0, "{:?}", m.first_error);
            assert_eq!(m.first_byte.len(), m.ok);
            assert_eq!(m.latency.len(), m.ok);
        }
    }
}

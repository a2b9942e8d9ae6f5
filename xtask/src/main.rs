//! Project automation, in plain Rust so it cannot rot like shell scripts do.
//!
//! - `cargo xtask ci`: exactly what CI runs (`.ci/run` calls it): formatting, lints, the
//!   workspace lint-inheritance check, the Python environment (Helm's engine, the OpenAI SDK
//!   for the conformance tests), the full test suite (which includes the portal's
//!   headless-Chromium test, `tests/tests/browser.rs`; `.ci/run` installs Chromium and the
//!   Node packages it needs), and a short fuzz run.
//! - `cargo xtask bench search|credits|gateway`: benchmarks (not in CI, which only compiles
//!   them); numbers are reported, never asserted.

#![allow(
    clippy::print_stderr,
    reason = "xtask is a command-line tool that reports progress on stderr"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod http;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("ci") => ci(),
        Some("fuzz") => {
            let seconds = match (args.next().as_deref(), args.next()) {
                (Some("--seconds"), Some(n)) => n.parse().context("--seconds takes a number")?,
                (None, _) => 60,
                _ => bail!("usage: cargo xtask fuzz [--seconds N]"),
            };
            fuzz(seconds).map(|_| ())
        }
        Some("bench") => bench(&args.collect::<Vec<_>>()),
        Some("help") | Some("--help") | None => {
            usage();
            Ok(())
        }
        Some(other) => {
            usage();
            bail!("unknown task {other:?}")
        }
    }
}

fn usage() {
    eprintln!(
        "usage: cargo xtask <task>\n\ntasks:\n  ci                               formatting, clippy -D warnings, lint inheritance, every test, and a short fuzz run (what CI runs)\n  fuzz [--seconds N]               run every cargo-fuzz target for N seconds (default 60)\n  bench search [--lines N] [--skip-hybrid] [--postgres]\n                                   search recall@10 (keyword, hybrid), latency at 1M log lines, ingest throughput\n  bench credits [sqlite|postgres]  credit debits under concurrency and the cost of an unchanged settings poll (release build)\n  bench gateway [--skip-install] [-- <atlasai-bench gateway options>]\n                                   the gateway against the upstream alone, LiteLLM and Portkey"
    );
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.current_dir(root());
    c
}

fn run(step: &str, mut cmd: Command) -> Result<()> {
    eprintln!("\n==> {step}");
    let started = std::time::Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("could not start: {step}"))?;
    eprintln!(
        "==> {step}: {} in {:.0}s",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

fn ci() -> Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", fmt)?;

    check_lint_inheritance()?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy -D warnings", clippy)?;

    let python = ensure_python_venv()?;

    // The end-to-end tests start the real binaries of both planes.
    let mut build = cargo();
    build.args(["build", "--workspace", "--bins"]);
    run("cargo build --bins", build)?;

    if has_nextest() {
        let mut tests = cargo();
        tests.args([
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
            "--profile",
            "ci",
        ]);
        tests.env("ATLASAI_CONFORMANCE_PYTHON", &python);
        run("cargo nextest run", tests)?;
        // nextest does not run doctests.
        let mut doc = cargo();
        doc.args(["test", "--workspace", "--doc"]);
        run("cargo test --doc", doc)?;
    } else {
        let mut tests = cargo();
        tests.args(["test", "--workspace", "--no-fail-fast"]);
        tests.env("ATLASAI_CONFORMANCE_PYTHON", &python);
        run("cargo test", tests)?;
    }
    // Each fuzz target for a bounded time: long enough to catch shallow panics in parsers of
    // untrusted input on every change; longer runs are `cargo xtask fuzz --seconds N`.
    fuzz(20)?;

    eprintln!("\nci: all checks passed");
    Ok(())
}

/// Python requirements of the test suite, one file per tool, installed into `.venv`.
const PYTHON_REQUIREMENTS: &[&str] = &[
    "deploy/helm/tests/requirements.txt",
    "tests/conformance/requirements.txt",
];

/// Creates `.venv` and installs the test suite's Python requirements (Helm's engine, the
/// pinned OpenAI SDK), unless a stamp file shows the installed set already matches the
/// requirement files. Returns the interpreter.
fn ensure_python_venv() -> Result<PathBuf> {
    eprintln!("\n==> python test environment (.venv)");
    let venv = root().join(".venv");
    let mut wanted = String::new();
    for file in PYTHON_REQUIREMENTS {
        wanted.push_str(
            &std::fs::read_to_string(root().join(file))
                .with_context(|| format!("reading {file}"))?,
        );
    }
    let stamp = venv.join(".atlasai-requirements");
    let python = venv.join("bin/python");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        eprintln!("==> python test environment: up to date");
        return Ok(python);
    }
    if !venv.join("bin/python").exists() {
        let mut create = Command::new("python3");
        create.args(["-m", "venv"]).arg(&venv);
        run("python3 -m venv .venv", create)?;
    }
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "--quiet", "--disable-pip-version-check"]);
    for file in PYTHON_REQUIREMENTS {
        pip.arg("-r").arg(root().join(file));
    }
    run("pip install test requirements", pip)?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

/// The fuzz targets in `fuzz/`, each with seed inputs in `fuzz/seeds/<target>/`.
const FUZZ_TARGETS: &[&str] = &[
    "log_ingest",
    "values_file",
    "config_env",
    "provider_response",
    "provider_stream",
];

/// Runs every fuzz target for `seconds` with libFuzzer (nightly toolchain, `cargo fuzz`),
/// and reports the executions each made. Any crash fails the run and leaves the input in
/// `fuzz/artifacts/`.
fn fuzz(seconds: u64) -> Result<Vec<(String, u64)>> {
    eprintln!("\n==> cargo fuzz ({seconds}s per target)");
    let has_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_fuzz {
        let mut install = Command::new("cargo");
        install.args(["install", "cargo-fuzz", "--locked"]);
        run("cargo install cargo-fuzz", install)?;
    }
    // The fuzz build (nightly, instrumented) shares nothing with the normal target directory;
    // keeping it outside the checkout lets later runs on this machine build incrementally.
    let target_dir = std::env::var_os("ATLASAI_FUZZ_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            home.join(".cache/atlasai/fuzz-target")
        });
    let mut results = Vec::new();
    for target in FUZZ_TARGETS {
        let corpus = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let seeds = root().join("fuzz/seeds").join(target);
        let mut cmd = Command::new("cargo");
        cmd.current_dir(root().join("fuzz"))
            .args([
                "+nightly",
                "fuzz",
                "run",
                "--sanitizer",
                "none",
                "--target-dir",
            ])
            .arg(&target_dir)
            .arg(target)
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args([
                "-print_final_stats=1",
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-max_len=65536",
            ]);
        eprintln!("==> fuzz {target}");
        let out = cmd
            .output()
            .with_context(|| format!("could not start cargo fuzz for {target}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            eprintln!("{stderr}");
            bail!("fuzz target {target} failed: see the crash input in fuzz/artifacts/{target}/");
        }
        let runs = stderr
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        eprintln!("==> fuzz {target}: {runs} executions, no crash");
        results.push(((*target).to_owned(), runs));
    }
    Ok(results)
}

/// Benchmarks report numbers; they are never asserted in tests.
fn bench(args: &[String]) -> Result<()> {
    let arg = args.get(1).cloned();
    match args.first().map(String::as_str) {
        Some("search") => bench::run(args),
        Some("gateway") => bench_gateway(args[1..].to_vec()),
        Some("credits") => {
            let mut cmd = cargo();
            cmd.args([
                "run",
                "--release",
                "-p",
                "atlasai-control-plane",
                "--example",
                "bench_credits",
                "--",
                arg.as_deref().unwrap_or("sqlite"),
            ]);
            run("bench credits", cmd)
        }
        other => {
            usage();
            bail!(
                "unknown benchmark {other:?}; try `cargo xtask bench search` or `cargo xtask bench credits`"
            )
        }
    }
}

/// LiteLLM and matplotlib, pinned, for the benchmark only.
const BENCH_REQUIREMENTS: &str = "bench/requirements.txt";
/// Portkey's gateway, pinned.
const PORTKEY: &str = "@portkey-ai/gateway@1.15.2";

/// Builds the release binaries, installs the gateways to compare with (when it can; a failure
/// is reported and that gateway is skipped), runs the benchmark pinned to CPU 0, and draws the
/// chart.
fn bench_gateway(args: Vec<String>) -> Result<()> {
    let skip_install = args.iter().any(|a| a == "--skip-install");
    let passthrough: Vec<String> = match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => Vec::new(),
    };
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "atlasai-tenant-plane",
        "-p",
        "atlasai-bench",
    ]);
    run("cargo build --release (tenant plane, benchmark)", build)?;

    let mut unavailable: Vec<String> = Vec::new();
    let venv = root().join(".venv-bench");
    let python = venv.join("bin/python");
    let litellm = venv.join("bin/litellm");
    if !skip_install && let Err(e) = bench_venv(&venv) {
        eprintln!("warning: LiteLLM and matplotlib could not be installed: {e:#}");
    }
    if !litellm.exists() {
        unavailable.push(
            "litellm=litellm[proxy] is not installed in .venv-bench (pip failed or --skip-install)"
                .to_owned(),
        );
    }
    let node_dir = root().join("target/bench-node");
    let portkey = node_dir.join("node_modules/@portkey-ai/gateway/build/start-server.js");
    if !skip_install && !portkey.exists() {
        std::fs::create_dir_all(&node_dir)?;
        let mut npm = Command::new("npm");
        npm.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            PORTKEY,
        ])
        .current_dir(&node_dir);
        if let Err(e) = run(&format!("npm install {PORTKEY}"), npm) {
            eprintln!("warning: Portkey could not be installed: {e:#}");
        }
    }
    if !portkey.exists() {
        unavailable.push(format!(
            "portkey={PORTKEY} is not installed in target/bench-node (npm failed or --skip-install)"
        ));
    }

    // `-- --out DIR` (or `--work DIR`, or `--out=DIR`) replaces the default; clap refuses an
    // option given twice.
    let given = |name: &str| {
        let with_value = format!("{name}=");
        passthrough
            .iter()
            .enumerate()
            .find_map(|(i, a)| match a.strip_prefix(&with_value) {
                Some(v) => Some(v),
                None if a == name => passthrough.get(i + 1).map(String::as_str),
                None => None,
            })
            .map(|v| root().join(v))
    };
    let out = given("--out").unwrap_or_else(|| root().join("bench/results"));
    let mut bench = Command::new("taskset");
    bench
        .args(["-c", "0"])
        .arg(root().join("target/release/atlasai-bench"))
        .arg("gateway")
        .arg("--tenant-plane")
        .arg(root().join("target/release/atlasai-tp"))
        .current_dir(root());
    if given("--out").is_none() {
        bench.arg("--out").arg(&out);
    }
    if given("--work").is_none() {
        bench.arg("--work").arg(root().join("target/bench"));
    }
    if litellm.exists() {
        bench.arg("--litellm").arg(&litellm);
    }
    if portkey.exists() {
        bench.arg("--portkey").arg(&portkey);
    }
    for u in &unavailable {
        bench.arg("--unavailable").arg(u);
    }
    bench.args(&passthrough);
    run(
        "atlasai-bench gateway (load generator pinned to CPU 0)",
        bench,
    )?;

    let chart = out.join("gateway.png");
    let mut plot = Command::new(&python);
    plot.arg(root().join("bench/plot_gateway.py"))
        .arg(out.join("gateway.json"))
        .arg(&chart);
    match run("chart (matplotlib)", plot) {
        Ok(()) => eprintln!("chart: {}", chart.display()),
        Err(e) => eprintln!("warning: no chart: {e:#} (matplotlib lives in .venv-bench)"),
    }
    eprintln!("results: {}", out.join("gateway.md").display());
    Ok(())
}

/// `.venv-bench/` with `bench/requirements.txt`, skipped when a stamp says it is current.
fn bench_venv(venv: &Path) -> Result<()> {
    let requirements = root().join(BENCH_REQUIREMENTS);
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv.join(".atlasai-requirements");
    let python = venv.join("bin/python");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    if !python.exists() {
        let mut create = Command::new("python3");
        create.args(["-m", "venv"]).arg(venv);
        run("python3 -m venv .venv-bench", create)?;
    }
    let mut install = Command::new(&python);
    install
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements);
    run("pip install -r bench/requirements.txt", install)?;
    std::fs::write(&stamp, wanted)?;
    Ok(())
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every member crate must inherit the workspace lints (omicron checks the same).
fn check_lint_inheritance() -> Result<()> {
    eprintln!("\n==> workspace lint inheritance");
    let mut missing = Vec::new();
    let mut manifests = vec![
        root().join("xtask/Cargo.toml"),
        root().join("tests/Cargo.toml"),
    ];
    for entry in std::fs::read_dir(root().join("crates"))? {
        manifests.push(entry?.path().join("Cargo.toml"));
    }
    for manifest in manifests {
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        if !text.contains("[lints]\nworkspace = true") {
            missing.push(manifest.display().to_string());
        }
    }
    if !missing.is_empty() {
        bail!(
            "these crates do not set `[lints] workspace = true`: {}",
            missing.join(", ")
        );
    }
    eprintln!("==> workspace lint inheritance: ok");
    Ok(())
}

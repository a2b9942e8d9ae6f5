//! Project automation, in plain Rust so it cannot rot like shell scripts do.
//!
//! - `cargo xtask ci`: exactly what CI runs (`.ci/run` calls it): formatting, lints, the
//!   workspace lint-inheritance check, the Python environment for the OpenAI SDK conformance
//!   tests, and the full test suite.
//! - `cargo xtask bench gateway`: the gateway benchmark (release builds; installs LiteLLM and
//!   Portkey when it can; results in `bench/results/`). Not run by CI, which only compiles it.

#![allow(
    clippy::print_stderr,
    reason = "xtask is a command-line tool that reports progress on stderr"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("ci") => ci(),
        Some("bench") => match args.next().as_deref() {
            Some("gateway") => bench_gateway(args.collect()),
            _ => {
                usage();
                bail!("cargo xtask bench: the only benchmark is `gateway`")
            }
        },
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
        "usage: cargo xtask <task>\n\ntasks:\n  ci              formatting, clippy -D warnings, lint inheritance, and every test (what CI runs)\n  bench gateway   the gateway benchmark against LiteLLM and Portkey [--skip-install] [-- <atlasai-bench gateway options>]"
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

    let python = conformance_venv()?;

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
    eprintln!("\nci: all checks passed");
    Ok(())
}

/// Creates `.venv/` with the pinned OpenAI SDK for the conformance tests, unless it already
/// holds exactly `tests/conformance/requirements.txt` (a stamp file records what was installed,
/// so a warm machine skips this in milliseconds). Returns the interpreter.
fn conformance_venv() -> Result<PathBuf> {
    eprintln!("\n==> python environment for the OpenAI SDK conformance tests");
    let venv = root().join(".venv");
    let python = venv.join("bin/python");
    let requirements = root().join("tests/conformance/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv.join(".atlasai-requirements");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        eprintln!("==> python environment: up to date ({})", venv.display());
        return Ok(python);
    }
    if !python.exists() {
        let mut create = Command::new("python3");
        create.args(["-m", "venv"]).arg(&venv).current_dir(root());
        run("python3 -m venv .venv", create)?;
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
    run("pip install -r tests/conformance/requirements.txt", install)?;
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
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

    let mut bench = Command::new("taskset");
    bench
        .args(["-c", "0"])
        .arg(root().join("target/release/atlasai-bench"))
        .arg("gateway")
        .arg("--tenant-plane")
        .arg(root().join("target/release/atlasai-tp"))
        .arg("--out")
        .arg(root().join("bench/results"))
        .arg("--work")
        .arg(root().join("target/bench"))
        .current_dir(root());
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

    let chart = root().join("bench/results/gateway.png");
    let mut plot = Command::new(&python);
    plot.arg(root().join("bench/plot_gateway.py"))
        .arg(root().join("bench/results/gateway.json"))
        .arg(&chart);
    match run("chart (matplotlib)", plot) {
        Ok(()) => eprintln!("chart: {}", chart.display()),
        Err(e) => eprintln!("warning: no chart: {e:#} (matplotlib lives in .venv-bench)"),
    }
    eprintln!(
        "results: {}",
        root().join("bench/results/gateway.md").display()
    );
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

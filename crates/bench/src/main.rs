//! `atlasai-bench`: the benchmarks behind `cargo xtask bench`.
//!
//! - `atlasai-bench upstream --listen ADDR`: the fast fake OpenAI upstream.
//! - `atlasai-bench gateway ...`: the gateway comparison (see [`gateway`]); `cargo xtask bench
//!   gateway` builds everything in release mode, installs LiteLLM and Portkey when it can, and
//!   runs this pinned to CPU 0.
//! - `atlasai-bench metrics`: only the cost of recording metrics.
//! - `atlasai-bench load --url URL ...`: the load generator alone, for profiling a gateway.
//! - `atlasai-bench report --json gateway.json`: the markdown page again, from saved results.
//! - `atlasai-bench floor --upstream URL`: a bare forwarding proxy, the floor under any gateway
//!   on our HTTP stack (see [`floor`]).

mod floor;
mod gateway;
mod load;
mod micro;
mod report;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "atlasai-bench", about = "AtlasAI benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve the fake upstream.
    Upstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Pause between stream chunks, microseconds.
        #[arg(long, default_value_t = 1000)]
        stream_gap_us: u64,
    },
    /// Compare the tenant plane with LiteLLM and Portkey in front of the fake upstream.
    Gateway {
        /// The release atlasai-tp binary.
        #[arg(long)]
        tenant_plane: PathBuf,
        /// The litellm executable (in its virtual environment).
        #[arg(long)]
        litellm: Option<PathBuf>,
        /// Portkey's build/start-server.js.
        #[arg(long)]
        portkey: Option<PathBuf>,
        /// Where gateway.json and gateway.md go.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
        /// Where logs and scratch files go.
        #[arg(long, default_value = "target/bench")]
        work: PathBuf,
        /// Seconds of warm-up before each measurement.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Seconds measured per level.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Concurrency levels.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        concurrency: Vec<usize>,
        /// Pause between the upstream's stream chunks, microseconds.
        #[arg(long, default_value_t = 1000)]
        stream_gap_us: u64,
        /// Only these targets: tenant-plane, tenant-plane-no-metrics, litellm, portkey (the
        /// upstream baseline always runs).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// A target that could not be installed, as `name=reason` (repeatable).
        #[arg(long)]
        unavailable: Vec<String>,
    },
    /// Measure only the cost of recording metrics.
    Metrics,
    /// Serve a bare forwarding proxy (no JSON, audit, metrics or logs) in front of an upstream.
    Floor {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// The upstream's base URL, e.g. http://127.0.0.1:18001.
        #[arg(long)]
        upstream: String,
        /// The pooled client that forwards.
        #[arg(long, value_enum, default_value = "reqwest")]
        client: floor::ClientKind,
    },
    /// Render gateway.md again from a saved gateway.json (next to it).
    Report {
        /// The saved results.
        #[arg(long, default_value = "bench/results/gateway.json")]
        json: PathBuf,
    },
    /// Run the load generator alone against a URL (for profiling) and print the numbers.
    Load {
        /// An http:// URL on an IP address, e.g. http://127.0.0.1:8080/v1/chat/completions.
        #[arg(long)]
        url: String,
        /// Extra headers, `name: value`.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Workers.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds of warm-up.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Seconds measured.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Ask for a streamed answer.
        #[arg(long)]
        stream: bool,
        /// Each worker's pause after an answer before its next request, microseconds; lets
        /// the server go idle between requests.
        #[arg(long, default_value_t = 0)]
        pause_us: u64,
    },
}

/// Progress goes to stderr; results go to files.
pub(crate) fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Floor {
        listen,
        upstream,
        client,
    } = cli.command
    {
        // Its own multi-threaded runtime, like the tenant plane's.
        return match floor::serve(listen, upstream, client) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                say(&format!("atlasai-bench: {e:#}"));
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            say(&format!("atlasai-bench: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Cmd::Upstream {
                listen,
                stream_gap_us,
            } => upstream::serve(listen, Duration::from_micros(stream_gap_us)).await,
            Cmd::Gateway {
                tenant_plane,
                litellm,
                portkey,
                out,
                work,
                warmup,
                duration,
                concurrency,
                stream_gap_us,
                only,
                unavailable,
            } => {
                let self_exe = std::env::current_exe()?;
                let options = gateway::Options {
                    tenant_plane,
                    litellm,
                    portkey,
                    out,
                    work,
                    warmup: Duration::from_secs_f64(warmup),
                    window: Duration::from_secs_f64(duration),
                    concurrency,
                    stream_gap: Duration::from_micros(stream_gap_us),
                    only,
                    unavailable: unavailable
                        .iter()
                        .map(|u| match u.split_once('=') {
                            Some((n, r)) => (n.to_owned(), r.to_owned()),
                            None => (u.clone(), "not available".to_owned()),
                        })
                        .collect(),
                };
                gateway::run(options, self_exe).await.map(|_| ())
            }
            Cmd::Load {
                url,
                headers,
                concurrency,
                warmup,
                duration,
                stream,
                pause_us,
            } => {
                let mut target = gateway::target_for_url(&url, &headers, stream)?;
                target.pause = Duration::from_micros(pause_us);
                let m = load::run(
                    &target,
                    concurrency,
                    Duration::from_secs_f64(warmup),
                    Duration::from_secs_f64(duration),
                    None,
                )
                .await?;
                say(&format!(
                    "c={concurrency}: {:.0} req/s, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, first byte p50 {:.3} ms, {} errors{}",
                    m.throughput(),
                    m.latency.value_at_quantile(0.5) as f64 / 1e6,
                    m.latency.value_at_quantile(0.9) as f64 / 1e6,
                    m.latency.value_at_quantile(0.99) as f64 / 1e6,
                    m.first_byte.value_at_quantile(0.5) as f64 / 1e6,
                    m.errors,
                    m.first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
                ));
                Ok(())
            }
            Cmd::Report { json } => {
                let text = std::fs::read_to_string(&json)?;
                let report: gateway::Report = serde_json::from_str(&text)?;
                std::fs::write(json.with_extension("md"), report::markdown(&report))?;
                Ok(())
            }
            Cmd::Metrics => {
                let cost = micro::metrics_cost(5_000_000)?;
                say(&serde_json::to_string_pretty(&cost)?);
                Ok(())
            }
            Cmd::Floor { .. } => unreachable!("served above, on its own runtime"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("atlasai-bench: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

//! The command line: `atlasai-tp [--values FILE] [serve | check-config | test-connection]`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use atlasai_core::TenantId;
use clap::{Parser, Subcommand};

use crate::config::{self, ConfigInputs, EXIT_CONFIG, Env, TenantPlaneConfig};
use crate::connection_test::{self, Outcome, Target};
use crate::state::AppState;

/// `EX_UNAVAILABLE`: the provider failed the connection test.
pub const EXIT_UNAVAILABLE: u8 = 69;
/// `EX_CONFIG`: no provider is configured, so there is nothing to test.
pub const EXIT_NOT_CONFIGURED: u8 = 78;

/// AtlasAI tenant plane: BYOC AI inside your network.
#[derive(Debug, Parser)]
#[command(name = "atlasai-tp", version, about)]
struct Cli {
    /// A Helm values file (the chart's values.yaml shape; the byoc: and embeddings: sections
    /// are read). Overrides TP_VALUES_FILE; environment variables override its values.
    #[arg(long, global = true, value_name = "FILE")]
    values: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Validate the configuration, print it with secrets masked and each value's source, and
    /// exit 0 (valid) or 64 (invalid).
    CheckConfig,
    /// Make a small real request through the configured provider and print the result as
    /// POST /api/ai/test would; exit 0 (ok), 69 (provider failed), 78 (not configured) or 64.
    TestConnection {
        /// Test the embedding model instead of the chat model.
        #[arg(long)]
        embeddings: bool,
        /// The tenant to test for.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

/// Entry point for `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    // Held to the end of `main`, so queued log lines are written before the process exits.
    let _log_writer = match init_logging(&env) {
        Ok(guard) => guard,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "atlasai-tp: cannot start the log writer thread: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    let inputs = ConfigInputs {
        env,
        values_flag: cli.values,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(inputs).await,
            Command::CheckConfig => check_config(&inputs),
            Command::TestConnection { embeddings, tenant } => {
                test_connection(inputs, embeddings, &tenant).await
            }
        }
    })
}

fn init_logging(env: &Env) -> std::io::Result<crate::logwriter::LogGuard> {
    let filter = tracing_subscriber::EnvFilter::try_new(env.get("RUST_LOG").unwrap_or("info"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Lines go to stderr from a background thread that writes what gathered every few
    // milliseconds: a request never waits for a write(2) to a slow log sink (a full pipe to a
    // stalled collector would otherwise stall every request), nor wakes a thread per line.
    // Lines are never dropped; past a MiB of unwritten lines a request waits, as every request
    // would writing to stderr itself.
    let (writer, guard) = crate::logwriter::LogBuffer::start(std::io::stderr())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colour codes only help a person at a terminal; in files and pipes they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if env.get("TP_LOG_FORMAT") == Some("json") {
        builder.json().init();
    } else {
        // The default text format, with fields written without `fmt` where that is possible.
        builder.fmt_fields(crate::logfields::LineFields).init();
    }
    Ok(guard)
}

fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn load(inputs: &ConfigInputs) -> Result<TenantPlaneConfig, ExitCode> {
    config::load(inputs).map_err(|errors| {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "atlasai-tp: {errors}");
        ExitCode::from(EXIT_CONFIG as u8)
    })
}

fn check_config(inputs: &ConfigInputs) -> ExitCode {
    match load(inputs) {
        Ok(config) => {
            out(&format!(
                "atlasai-tp: configuration is valid\n{}",
                config.render_report()
            ));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

async fn test_connection(inputs: ConfigInputs, embeddings: bool, tenant: &str) -> ExitCode {
    let config = match load(&inputs) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let tenant = match TenantId::parse(tenant) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "atlasai-tp: --tenant: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let state = AppState::new(config, inputs, None);
    let target = if embeddings {
        Target::Embeddings
    } else {
        Target::Chat
    };
    let (json, code) = match connection_test::run(&state, &tenant, target).await {
        Outcome::Ok(ok) => (serde_json::to_string(&ok), ExitCode::SUCCESS),
        Outcome::Failed(f) => (serde_json::to_string(&f), ExitCode::from(EXIT_UNAVAILABLE)),
        Outcome::NotConfigured(f) => (
            serde_json::to_string(&f),
            ExitCode::from(EXIT_NOT_CONFIGURED),
        ),
    };
    out(&format!("{}\n", json.unwrap_or_default()));
    code
}

async fn serve(inputs: ConfigInputs) -> ExitCode {
    let config = match load(&inputs) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for w in &config.warnings {
        tracing::warn!("configuration: {w}");
    }
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        let _ = writeln!(
            std::io::stderr(),
            "atlasai-tp: TP_DATA_DIR: cannot create {}: {e}",
            config.data_dir.display()
        );
        return ExitCode::from(EXIT_CONFIG as u8);
    }
    let generated = if config.admin_token.is_none() {
        match crate::admin_token::load_or_create(&config.data_dir) {
            Ok((token, path, created)) => {
                tracing::info!(
                    "TP_ADMIN_TOKEN is not set; admin token {} {}",
                    if created {
                        "generated into"
                    } else {
                        "read from"
                    },
                    path.display()
                );
                Some(token)
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "atlasai-tp: TP_DATA_DIR: {e}");
                return ExitCode::from(EXIT_CONFIG as u8);
            }
        }
    } else {
        None
    };
    // The store and the search index open (and migrate, or rebuild) before the port is bound,
    // so a tenant plane that answers is one that can serve its data.
    let data = match crate::data::Data::open(&config).await {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "atlasai-tp: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.bind_addr).await {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "atlasai-tp: TP_BIND_ADDR: cannot listen on {}: {e}",
                config.bind_addr
            );
            return ExitCode::FAILURE;
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let summary = match &config.provider {
        Some(p) => format!(
            "provider {} model {} ({})",
            p.kind,
            p.model,
            config.provider_source()
        ),
        None => "no AI provider configured: AI features answer \"AI provider not configured\""
            .to_owned(),
    };
    let embeddings = config.embeddings.provider_name();
    let state = AppState::new(config, inputs, generated);
    state.attach_data(data.clone());
    data.start(&state);
    crate::jobs::spawn_workers(state.clone());
    crate::audit::start(&state, data.clone());
    crate::reload::spawn(state.clone());
    crate::cp::spawn(state.clone());
    tracing::info!(address = %local, "tenant plane listening; {summary}; embeddings {embeddings}");
    let app = crate::http::app(state.clone());
    // Streamed answers are many small writes; with Nagle's algorithm each would wait for the
    // client's delayed ACK (up to 40 ms on Linux) before leaving.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // `into_make_service`: each connection gets the router itself (an `Arc`). Served as a
    // plain `Router`, axum rebuilds its route table for every new connection (a clone of every
    // route and a fresh map, ~14 KiB each, held for the connection's lifetime).
    let result = axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown_signal(state))
        .await;
    data.shutdown().await;
    match result {
        Ok(()) => {
            tracing::info!("tenant plane stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal(state: Arc<AppState>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    state.shutting_down.store(true, Ordering::Relaxed);
    tracing::info!("shutting down: finishing in-flight requests");
}

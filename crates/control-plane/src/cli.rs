//! The command line: `atlasai-cp [serve | check-config]`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, ControlPlaneConfig, EXIT_CONFIG};

/// AtlasAI control plane.
#[derive(Debug, Parser)]
#[command(name = "atlasai-cp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Validate the configuration and exit 0 (valid) or 64 (invalid).
    CheckConfig,
}

/// Entry point for `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let filter = tracing_subscriber::EnvFilter::try_new(
        env.get("RUST_LOG").map(String::as_str).unwrap_or("info"),
    )
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in files and pipes they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if env.get("CP_LOG_FORMAT").map(String::as_str) == Some("json") {
        builder.json().init();
    } else {
        builder.init();
    }
    let config = match config::load(&env) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "atlasai-cp: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for w in &config.warnings {
        tracing::warn!("configuration: {w}");
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            let _ = writeln!(
                std::io::stdout(),
                "atlasai-cp: configuration is valid\n  bind address             {}\n  database                 {}\n  bootstrap token          {}\n  private endpoints        {}\n  managed model            {}",
                config.bind_addr,
                if secrecy::ExposeSecret::expose_secret(&config.database_url).starts_with("sqlite:")
                {
                    "sqlite"
                } else {
                    "postgres"
                },
                if config.bootstrap_token.is_some() {
                    "set"
                } else {
                    "not set (operator endpoints disabled)"
                },
                if config.allow_private_endpoints {
                    "called directly (CP_ALLOW_PRIVATE_ENDPOINTS=1)"
                } else {
                    "validated by tenant planes"
                },
                config
                    .managed
                    .as_ref()
                    .map(|m| format!("{} {}", m.settings.kind, m.settings.model))
                    .unwrap_or_else(|| "not configured".to_owned()),
            );
            ExitCode::SUCCESS
        }
        Command::Serve => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(serve(config)),
            Err(e) => {
                tracing::error!("cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(config: ControlPlaneConfig) -> ExitCode {
    atlasai_providers::http::install_crypto_provider();
    let bind_addr = config.bind_addr;
    let state = match crate::state::AppState::new(config).await {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "atlasai-cp: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(database = state.store.kind(), "database ready");
    let listener = match tokio::net::TcpListener::bind(bind_addr).await {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "atlasai-cp: CP_BIND_ADDR: cannot listen on {bind_addr}: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%address, "control plane listening");
    let shutdown = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
    };
    // `into_make_service`: connections share the router instead of each rebuilding its route
    // table (see the tenant plane's `serve`).
    match axum::serve(
        listener,
        crate::http::app(state.clone()).into_make_service(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

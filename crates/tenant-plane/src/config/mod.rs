//! The tenant plane's configuration: one typed value, built from layered sources and
//! validated as a whole before any port is bound. Every problem is collected and reported
//! together, each naming the variable or key and what it accepts.

pub mod cp;
pub mod data;
mod resolve;
pub mod sources;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use atlasai_core::{EmbeddingSettings, ProviderSettings};
use atlasai_providers::HttpOptions;
use secrecy::SecretString;

pub use self::data::{CorrelationSettings, DataSettings, DatabaseKind, DatabaseUrl};
pub use self::resolve::KNOWN_VARS;
pub use self::sources::{Env, Source, Sourced, VALUES_KEYS, ValuesDoc};

/// Exit status for an invalid configuration (BSD `EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;

/// Everything the tenant plane runs with.
#[derive(Debug, Clone)]
pub struct TenantPlaneConfig {
    /// Where the HTTP server listens (`TP_BIND_ADDR`).
    pub bind_addr: SocketAddr,
    /// Where state lives (`TP_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The bearer token for admin endpoints (`TP_ADMIN_TOKEN`); when unset one is generated
    /// into the data directory at start-up.
    pub admin_token: Option<SecretString>,
    /// How long resolved provider routes are cached (`TP_ROUTING_CACHE_TTL`).
    pub routing_cache_ttl: Duration,
    /// Timeouts and retries for provider calls.
    pub http: HttpOptions,
    /// The model's context window (`TP_CONTEXT_TOKENS`); `None` uses the model's known
    /// window or a safe default.
    pub context_tokens: Option<u32>,
    /// `TP_AIR_GAPPED=1`: every endpoint was checked to be private, and nothing falls back to
    /// the cloud.
    pub air_gapped: bool,
    /// Prompt redaction before requests leave (`TP_REDACTION`).
    pub redaction: Redaction,
    /// The fallback policy and the queue of `queue_and_retry`.
    pub queue: QueueSettings,
    /// How long egress audit records are kept (`TP_AUDIT_RETENTION`).
    pub audit_retention: Duration,
    /// The chat provider, or `None` when AI is not configured.
    pub provider: Option<ProviderSettings>,
    /// The embedding backend.
    pub embeddings: EmbeddingSettings,
    /// The control plane, when `TP_CP_URL` is set.
    pub cp: Option<cp::CpSettings>,
    /// The store, log ingest, search index and alert correlation settings.
    pub data: DataSettings,
    /// The OpenAI-compatible endpoint: API keys and model aliases.
    pub gateway: crate::gateway::GatewayConfig,
    /// Prometheus metrics.
    pub metrics: crate::metrics::MetricsConfig,
    /// The values file, if one was given.
    pub values_file: Option<PathBuf>,
    /// Files whose change triggers a reload: the values file and every `*_FILE` secret.
    pub watched_files: Vec<PathBuf>,
    /// What `check-config` prints: each setting, its (masked) value and its source.
    pub report: Vec<ReportRow>,
    /// Things worth knowing that do not stop the tenant plane.
    pub warnings: Vec<String>,
}

/// The fallback policy set locally, and how queued AI requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// `TP_FALLBACK_POLICY`; `None` leaves it to the portal (default fail closed).
    pub policy: Option<atlasai_core::FallbackPolicy>,
    /// How long a queued request is retried before it expires (`TP_QUEUE_DEADLINE`).
    pub deadline: Duration,
    /// The delay before the first retry; each later one doubles, up to 5 minutes
    /// (`TP_QUEUE_BACKOFF`).
    pub backoff: Duration,
    /// Concurrent workers per replica (`TP_QUEUE_WORKERS`).
    pub workers: usize,
}

/// When prompts are redacted before they leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Redaction {
    /// For endpoints outside private address space (the default).
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// One line of the effective-configuration report.
#[derive(Debug, Clone)]
pub struct ReportRow {
    /// The setting, e.g. `provider`.
    pub setting: &'static str,
    /// The value as shown: secrets are masked.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration is invalid ({} problem{}):\n  - {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

/// What a configuration is read from.
#[derive(Debug, Clone, Default)]
pub struct ConfigInputs {
    /// The environment snapshot.
    pub env: Env,
    /// `--values FILE`, which wins over `TP_VALUES_FILE`.
    pub values_flag: Option<PathBuf>,
}

impl ConfigInputs {
    /// The values file in force: the flag, else `TP_VALUES_FILE`.
    pub fn values_file(&self) -> Option<PathBuf> {
        self.values_flag
            .clone()
            .or_else(|| self.env.get("TP_VALUES_FILE").map(PathBuf::from))
    }
}

/// Reads and validates the configuration from its sources.
pub fn load(inputs: &ConfigInputs) -> Result<TenantPlaneConfig, ConfigErrors> {
    let values_path = inputs.values_file();
    let values = match &values_path {
        Some(path) => Some(ValuesDoc::read(path).map_err(ConfigErrors)?),
        None => None,
    };
    resolve::resolve(&inputs.env, values.as_ref(), values_path)
}

impl TenantPlaneConfig {
    /// The effective configuration as text, secrets masked, with each value's source.
    pub fn render_report(&self) -> String {
        let width = self
            .report
            .iter()
            .map(|r| r.setting.len())
            .max()
            .unwrap_or(0);
        let vwidth = self
            .report
            .iter()
            .map(|r| r.value.chars().count())
            .max()
            .unwrap_or(0)
            .min(48);
        let mut out = String::new();
        for row in &self.report {
            let _ = writeln!(
                out,
                "  {:width$}  {:vwidth$}  {}",
                row.setting, row.value, row.source
            );
        }
        for w in &self.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
        out
    }

    /// Where the AI provider settings came from, summarised for status: `environment`,
    /// `values file`, `secret file` or `none` (mixed sources list each kind).
    pub fn provider_source(&self) -> String {
        let mut kinds: Vec<&'static str> = self
            .report
            .iter()
            .filter(|r| r.setting == "provider" || r.setting == "model")
            .map(|r| r.source.kind())
            .filter(|k| *k != "default" && *k != "implied")
            .collect();
        kinds.dedup();
        kinds.sort_unstable();
        kinds.dedup();
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(" + ")
        }
    }
}

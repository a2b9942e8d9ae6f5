//! Turns layered raw values into the typed configuration, checking every rule and collecting
//! every problem.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use atlasai_core::secret::describe;
use atlasai_core::{
    AwsAuth, DEFAULT_AZURE_API_VERSION, DEFAULT_BEDROCK_EMBEDDING_MODEL,
    DEFAULT_OPENAI_EMBEDDING_MODEL, EmbeddingSettings, OPENAI_BASE_URL, ProviderKind,
    ProviderSettings,
};
use atlasai_providers::{HttpOptions, RetryPolicy};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::sources::{Env, Layers, Source, Sourced, VALUES_KEYS, ValuesDoc, closest};
use super::{ConfigErrors, ReportRow, TenantPlaneConfig};

/// Every environment variable the tenant plane reads, for typo detection and the docs check.
pub const KNOWN_VARS: &[&str] = &[
    "BYOC_PROVIDER",
    "BYOC_API_KEY",
    "BYOC_API_KEY_FILE",
    "BYOC_API_KEY_ORG",
    "BYOC_MODEL",
    "BYOC_ENDPOINT_URL",
    "BYOC_API_VERSION",
    "BYOC_REGION",
    "BYOC_AWS_ACCESS_KEY_ID",
    "BYOC_AWS_ACCESS_KEY_ID_FILE",
    "BYOC_AWS_SECRET_ACCESS_KEY",
    "BYOC_AWS_SECRET_ACCESS_KEY_FILE",
    "BYOC_AWS_SESSION_TOKEN",
    "BYOC_AWS_SESSION_TOKEN_FILE",
    "BYOC_GCP_PROJECT",
    "TP_BEDROCK_USE_TASK_ROLE",
    "TP_BEDROCK_MODEL_ID",
    "TP_BIND_ADDR",
    "TP_DATA_DIR",
    "TP_ADMIN_TOKEN",
    "TP_ADMIN_TOKEN_FILE",
    "TP_ROUTING_CACHE_TTL",
    "TP_VALUES_FILE",
    "TP_PROVIDER_TIMEOUT",
    "TP_PROVIDER_MAX_RETRIES",
    "TP_LOG_FORMAT",
    "TP_CONTEXT_TOKENS",
    "TP_AIR_GAPPED",
    "TP_REDACTION",
    "TP_FALLBACK_POLICY",
    "TP_QUEUE_DEADLINE",
    "TP_QUEUE_WORKERS",
    "TP_QUEUE_BACKOFF",
    "TP_AUDIT_RETENTION",
    "TP_API_KEYS",
    "TP_API_KEYS_FILE",
    "TP_MODEL_ALIASES",
    "TP_METRICS_ENABLED",
    "TP_METRICS_TOKEN",
    "TP_METRICS_TOKEN_FILE",
    "EMBEDDING_PROVIDER",
    "EMBEDDING_MODEL",
    "EMBEDDING_ENDPOINT_URL",
    "EMBEDDING_API_KEY",
    "EMBEDDING_API_KEY_FILE",
    "TP_CP_URL",
    "TP_CP_ENROLL_TOKEN",
    "TP_CP_ENROLL_TOKEN_FILE",
    "TP_CP_REPORT_INTERVAL",
    "AI_CREDITS_FAIL_OPEN",
    "TP_DATABASE_URL",
    "TP_DATABASE_URL_FILE",
    "TP_DATABASE_MAX_CONNECTIONS",
    "TP_INGEST_MAX_BODY",
    "TP_INDEX_REFRESH",
    "TP_SEARCH_EMBEDDING_TIMEOUT",
    "TP_CORRELATION_WINDOW",
    "TP_CORRELATION_EMBEDDING_THRESHOLD",
    "TP_CORRELATION_KEYWORD_THRESHOLD",
];

const DEFAULT_BIND: &str = "0.0.0.0:8080";
const DEFAULT_DATA_DIR: &str = "./data";
const DEFAULT_ROUTING_TTL: Duration = Duration::from_secs(300);
const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_MAX_RETRIES: u32 = 2;
const MIN_ADMIN_TOKEN_CHARS: usize = 16;

pub(super) fn resolve(
    env: &Env,
    values: Option<&ValuesDoc>,
    values_path: Option<PathBuf>,
) -> Result<TenantPlaneConfig, ConfigErrors> {
    let mut l = Layers::new(env, values);
    let mut report = Vec::new();
    let mut warnings = unknown_variable_warnings(env);

    let bind_addr = server_bind(&mut l, &mut report);
    let data_dir = l
        .get("TP_DATA_DIR", None)
        .map(|s| (PathBuf::from(&s.value), s.source))
        .unwrap_or_else(|| (PathBuf::from(DEFAULT_DATA_DIR), Source::Default));
    report.push(row(
        "data directory",
        data_dir.0.display().to_string(),
        data_dir.1,
    ));
    let data = super::data::resolve(&mut l, &data_dir.0, &mut report);
    let admin_token = admin_token(&mut l, &mut report);
    let routing_cache_ttl = duration(
        &mut l,
        "TP_ROUTING_CACHE_TTL",
        DEFAULT_ROUTING_TTL,
        "routing cache ttl",
        &mut report,
    );
    let timeout = duration(
        &mut l,
        "TP_PROVIDER_TIMEOUT",
        DEFAULT_PROVIDER_TIMEOUT,
        "provider timeout",
        &mut report,
    );
    let max_retries = max_retries(&mut l, &mut report);
    if let Some(path) = &values_path {
        let source = if env.get("TP_VALUES_FILE").is_some() {
            Source::Env("TP_VALUES_FILE")
        } else {
            Source::Implied("--values".to_owned())
        };
        report.push(row("values file", path.display().to_string(), source));
    }

    let provider = provider(&mut l, &mut report, &mut warnings);
    let context_tokens = context_tokens(&mut l, &mut report);
    let redaction = redaction(&mut l, &mut report);
    let queue = queue(&mut l, &mut report);
    let audit_retention = duration(
        &mut l,
        "TP_AUDIT_RETENTION",
        Duration::from_secs(90 * 24 * 3600),
        "egress audit retention",
        &mut report,
    );
    let embeddings = embeddings(&mut l, &mut report, provider.as_ref());
    let cp = super::cp::resolve(&mut l, &mut report, &mut warnings);
    let air_gapped = air_gapped(
        &mut l,
        &mut report,
        provider.as_ref(),
        &embeddings,
        cp.as_ref(),
    );
    let gateway = crate::gateway::config::resolve(
        &mut l,
        &mut report,
        &mut warnings,
        provider.as_ref(),
        &embeddings,
    );
    let metrics = crate::metrics::resolve(&mut l, &mut report);

    if !l.errors.is_empty() {
        return Err(ConfigErrors(l.errors));
    }
    let Some(bind_addr) = bind_addr else {
        return Err(ConfigErrors(vec!["TP_BIND_ADDR is invalid".to_owned()]));
    };
    Ok(TenantPlaneConfig {
        bind_addr,
        data_dir: data_dir.0,
        admin_token,
        routing_cache_ttl,
        http: HttpOptions {
            timeout,
            retry: RetryPolicy {
                max_retries,
                ..RetryPolicy::default()
            },
            ..HttpOptions::default()
        },
        context_tokens,
        air_gapped,
        redaction,
        queue,
        audit_retention,
        provider,
        embeddings,
        cp,
        data,
        gateway,
        metrics,
        values_file: values_path,
        watched_files: l.files,
        report,
        warnings,
    })
}

fn row(setting: &'static str, value: String, source: Source) -> ReportRow {
    ReportRow {
        setting,
        value,
        source,
    }
}

fn secret_row(setting: &'static str, s: &Sourced<SecretString>) -> ReportRow {
    row(setting, describe(&s.value), s.source.clone())
}

fn unknown_variable_warnings(env: &Env) -> Vec<String> {
    env.names()
        .filter(|n| n.starts_with("BYOC_") || n.starts_with("TP_") || n.starts_with("EMBEDDING_"))
        .filter(|n| !KNOWN_VARS.contains(n))
        // Kubernetes injects <SERVICE>_SERVICE_HOST and <SERVICE>_PORT_* for every Service,
        // so a Service named "tp" produces variables we must not complain about.
        .filter(|n| !n.contains("_SERVICE_") && !n.contains("_PORT"))
        .map(|n| match closest(n, KNOWN_VARS) {
            Some(s) => format!("{n} is not a setting the tenant plane reads; did you mean {s}?"),
            None => format!("{n} is not a setting the tenant plane reads"),
        })
        .collect()
}

fn server_bind(l: &mut Layers<'_>, report: &mut Vec<ReportRow>) -> Option<SocketAddr> {
    let (text, source) = l
        .get("TP_BIND_ADDR", None)
        .map(|s| (s.value, s.source))
        .unwrap_or_else(|| (DEFAULT_BIND.to_owned(), Source::Default));
    match text.parse::<SocketAddr>() {
        Ok(addr) => {
            report.push(row("bind address", addr.to_string(), source));
            Some(addr)
        }
        Err(_) => {
            l.error(format!(
                "TP_BIND_ADDR: {text:?} is not a socket address; use host:port, for example 0.0.0.0:8080 or 127.0.0.1:8080"
            ));
            None
        }
    }
}

fn admin_token(l: &mut Layers<'_>, report: &mut Vec<ReportRow>) -> Option<SecretString> {
    let token = l.secret("TP_ADMIN_TOKEN", None)?;
    let chars = token.value.expose_secret().chars().count();
    if chars < MIN_ADMIN_TOKEN_CHARS {
        l.error(format!(
            "{}: the admin token must be at least {MIN_ADMIN_TOKEN_CHARS} characters (it has {chars}); generate one with `openssl rand -hex 32`",
            token.source.setting_name()
        ));
        return None;
    }
    report.push(secret_row("admin token", &token));
    Some(token.value)
}

/// Parses `300`, `300s`, `5m`, `1h` or `1500ms`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, "s"),
    };
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "sec" | "secs" => n,
        "m" | "min" | "mins" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    // Beyond `Duration`'s range (about 585 billion years) is no duration either.
    Duration::try_from_secs_f64(secs).ok()
}

fn duration(
    l: &mut Layers<'_>,
    var: &'static str,
    default: Duration,
    setting: &'static str,
    report: &mut Vec<ReportRow>,
) -> Duration {
    let Some(s) = l.get(var, None) else {
        report.push(row(setting, humantime(default), Source::Default));
        return default;
    };
    match parse_duration(&s.value) {
        Some(d) if !d.is_zero() => {
            report.push(row(setting, humantime(d), s.source));
            d
        }
        _ => {
            l.error(format!(
                "{var}: {:?} is not a duration; use seconds (300) or a number with a unit (300s, 5m, 1h)",
                s.value
            ));
            default
        }
    }
}

fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn max_retries(l: &mut Layers<'_>, report: &mut Vec<ReportRow>) -> u32 {
    let Some(s) = l.get("TP_PROVIDER_MAX_RETRIES", None) else {
        report.push(row(
            "provider max retries",
            DEFAULT_MAX_RETRIES.to_string(),
            Source::Default,
        ));
        return DEFAULT_MAX_RETRIES;
    };
    match s.value.parse::<u32>() {
        Ok(n) if n <= 10 => {
            report.push(row("provider max retries", n.to_string(), s.source));
            n
        }
        _ => {
            l.error(format!(
                "TP_PROVIDER_MAX_RETRIES: {:?} is not a number from 0 to 10",
                s.value
            ));
            DEFAULT_MAX_RETRIES
        }
    }
}

/// `TP_AIR_GAPPED=1`: every endpoint the tenant plane would call must be in private address
/// space, and nothing may fall back to the cloud. Host names are resolved now (at start-up and
/// on every reload), and every address they resolve to must be internal.
fn air_gapped(
    l: &mut Layers<'_>,
    report: &mut Vec<ReportRow>,
    provider: Option<&ProviderSettings>,
    embeddings: &EmbeddingSettings,
    cp: Option<&super::cp::CpSettings>,
) -> bool {
    let Some(flag) = l.flag("TP_AIR_GAPPED", None) else {
        return false;
    };
    if !flag.value {
        return false;
    }
    report.push(row(
        "air gapped",
        "yes: only private endpoints, no cloud fallback".to_owned(),
        flag.source,
    ));
    // (what, URL, the setting that changes it, whether the URL is a provider's public default)
    let mut endpoints: Vec<(String, Url, &'static str, bool)> = Vec::new();
    let mut add = |what: String,
                   given: Option<&Url>,
                   default: Option<String>,
                   var: &'static str| match (given, default) {
        (Some(u), _) => endpoints.push((what, u.clone(), var, false)),
        (None, Some(d)) => {
            if let Ok(u) = Url::parse(&d) {
                endpoints.push((what, u, var, true));
            }
        }
        (None, None) => {}
    };
    if let Some(p) = provider {
        let default = match p.kind {
            ProviderKind::OpenAi => Some(OPENAI_BASE_URL.to_owned()),
            ProviderKind::Anthropic => Some(atlasai_core::ANTHROPIC_BASE_URL.to_owned()),
            ProviderKind::Bedrock => Some(format!(
                "https://bedrock-runtime.{}.amazonaws.com",
                p.region.as_deref().unwrap_or("us-east-1")
            )),
            ProviderKind::Vertex => Some(format!(
                "https://{}-aiplatform.googleapis.com",
                p.region.as_deref().unwrap_or("us-central1")
            )),
            _ => None,
        };
        add(
            format!("provider {}", p.kind),
            p.endpoint.as_ref(),
            default,
            "BYOC_ENDPOINT_URL",
        );
    }
    match embeddings {
        EmbeddingSettings::Fallback => {}
        EmbeddingSettings::OpenAi { endpoint, .. } => {
            let is_default = endpoint.as_str().trim_end_matches('/') == OPENAI_BASE_URL;
            if is_default {
                add(
                    "embeddings".to_owned(),
                    None,
                    Some(OPENAI_BASE_URL.to_owned()),
                    "EMBEDDING_ENDPOINT_URL",
                );
            } else {
                add(
                    "embeddings".to_owned(),
                    Some(endpoint),
                    None,
                    "EMBEDDING_ENDPOINT_URL",
                );
            }
        }
        EmbeddingSettings::Bedrock {
            endpoint, region, ..
        } => add(
            "embeddings".to_owned(),
            endpoint.as_ref(),
            Some(format!("https://bedrock-runtime.{region}.amazonaws.com")),
            "EMBEDDING_ENDPOINT_URL",
        ),
    }
    if let Some(cp) = cp {
        add(
            "the control plane".to_owned(),
            Some(&cp.url),
            None,
            "TP_CP_URL",
        );
    }
    for (what, url, var, public_default) in endpoints {
        let host = url.host_str().unwrap_or_default().to_owned();
        let problem = if public_default {
            Some("a public endpoint".to_owned())
        } else {
            check_internal(&url).err()
        };
        if let Some(why) = problem {
            l.error(format!(
                "TP_AIR_GAPPED=1: {what} would call {host}, {why}; point {var} at an endpoint inside your network (a private endpoint, VPC endpoint or self-hosted server)"
            ));
        }
    }
    // Refused even without a control plane: the setting asks for data to leave the network.
    let fail_open = cp.is_some_and(|c| c.fail_open)
        || l.env()
            .get("AI_CREDITS_FAIL_OPEN")
            .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"));
    if fail_open {
        l.error("TP_AIR_GAPPED=1 and AI_CREDITS_FAIL_OPEN=1 contradict each other: falling back to the cloud model sends data outside your network; unset AI_CREDITS_FAIL_OPEN".to_owned());
    }
    true
}

/// Whether every address a URL's host resolves to is internal.
fn check_internal(url: &Url) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<std::net::IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![ip.into()],
        Some(url::Host::Ipv6(ip)) => vec![ip.into()],
        Some(url::Host::Domain(name)) => match (name, port).to_socket_addrs() {
            Ok(a) => a.map(|a| a.ip()).collect(),
            Err(e) => {
                return Err(format!(
                    "whose address cannot be resolved ({e}), so it cannot be checked to be private"
                ));
            }
        },
        None => return Err("which has no host".to_owned()),
    };
    match addrs
        .iter()
        .find(|ip| !atlasai_core::net::scope(**ip).is_internal())
    {
        Some(ip) => Err(format!(
            "which resolves to {ip}, outside private address space"
        )),
        None if addrs.is_empty() => Err("whose name resolves to no address".to_owned()),
        None => Ok(()),
    }
}

fn queue(l: &mut Layers<'_>, report: &mut Vec<ReportRow>) -> super::QueueSettings {
    use atlasai_core::FallbackPolicy;
    let policy = match l.get("TP_FALLBACK_POLICY", Some("byoc.fallbackPolicy")) {
        None => None,
        Some(s) => {
            let p = match s.value.to_ascii_lowercase().replace('-', "_").as_str() {
                "fail_closed" => Some(FallbackPolicy::FailClosed),
                "queue_and_retry" => Some(FallbackPolicy::QueueAndRetry),
                "cloud_fallback" => Some(FallbackPolicy::CloudFallback),
                other => {
                    l.error(format!(
                        "{}: {other:?} is not a fallback policy; use fail_closed (AI features answer \"AI provider temporarily unavailable\"), queue_and_retry (accept the request and retry it until TP_QUEUE_DEADLINE) or cloud_fallback (the managed model; needs AI_CREDITS_FAIL_OPEN=1 and a control plane)",
                        s.source.setting_name()
                    ));
                    None
                }
            };
            if p.is_some() {
                report.push(row(
                    "fallback policy",
                    s.value.to_ascii_lowercase(),
                    s.source,
                ));
            }
            p
        }
    };
    let deadline = duration(
        l,
        "TP_QUEUE_DEADLINE",
        Duration::from_secs(3600),
        "queue deadline",
        report,
    );
    let backoff = duration(
        l,
        "TP_QUEUE_BACKOFF",
        Duration::from_secs(5),
        "queue first retry",
        report,
    );
    let workers = match l.get("TP_QUEUE_WORKERS", None) {
        None => 2,
        Some(s) => match s.value.parse::<usize>() {
            Ok(n) if (1..=16).contains(&n) => {
                report.push(row("queue workers", n.to_string(), s.source));
                n
            }
            _ => {
                l.error(format!(
                    "TP_QUEUE_WORKERS: {:?} is not a number from 1 to 16",
                    s.value
                ));
                2
            }
        },
    };
    super::QueueSettings {
        policy,
        deadline,
        backoff,
        workers,
    }
}

fn redaction(l: &mut Layers<'_>, report: &mut Vec<ReportRow>) -> super::Redaction {
    use super::Redaction;
    let Some(s) = l.get("TP_REDACTION", Some("byoc.redaction")) else {
        report.push(row(
            "redaction",
            "auto (public endpoints only)".to_owned(),
            Source::Default,
        ));
        return Redaction::Auto;
    };
    let mode = match s.value.to_ascii_lowercase().as_str() {
        "auto" => Redaction::Auto,
        "on" | "1" | "true" | "always" => Redaction::On,
        "off" | "0" | "false" | "never" => Redaction::Off,
        other => {
            l.error(format!(
                "{}: {other:?} is not a redaction mode; use auto (redact prompts for public endpoints), on or off",
                s.source.setting_name()
            ));
            return Redaction::Auto;
        }
    };
    report.push(row("redaction", s.value.to_ascii_lowercase(), s.source));
    mode
}

fn context_tokens(l: &mut Layers<'_>, report: &mut Vec<ReportRow>) -> Option<u32> {
    let s = l.get("TP_CONTEXT_TOKENS", Some("byoc.contextTokens"))?;
    match s.value.parse::<u32>() {
        Ok(n) if (1_024..=2_000_000).contains(&n) => {
            report.push(row("context tokens", n.to_string(), s.source));
            Some(n)
        }
        _ => {
            l.error(format!(
                "{}: {:?} is not a context size; use the model's context window in tokens, from 1024 to 2000000 (for example 8192 or 128000)",
                s.source.setting_name(),
                s.value
            ));
            None
        }
    }
}

/// How a missing setting is named: the variable and the values key that could supply it.
fn both_names(var: &str) -> String {
    match VALUES_KEYS.iter().find(|(_, v)| *v == var) {
        Some((key, _)) => format!("{var} (or {key} in the values file)"),
        None => var.to_owned(),
    }
}

fn provider(
    l: &mut Layers<'_>,
    report: &mut Vec<ReportRow>,
    warnings: &mut Vec<String>,
) -> Option<ProviderSettings> {
    let name = l.get("BYOC_PROVIDER", Some("byoc.provider"));
    let task_role = l.flag("TP_BEDROCK_USE_TASK_ROLE", Some("byoc.bedrockUseTaskRole"));
    let use_task_role = task_role.as_ref().is_some_and(|t| t.value);

    let (kind, kind_source) = match &name {
        Some(n) => match n.value.parse::<ProviderKind>() {
            Ok(kind) => (kind, n.source.clone()),
            Err(e) => {
                l.error(format!("{}: {e}", n.source.setting_name()));
                return None;
            }
        },
        None if use_task_role => (
            ProviderKind::Bedrock,
            Source::Implied("TP_BEDROCK_USE_TASK_ROLE".to_owned()),
        ),
        None => {
            // Provider settings without a provider are a mistake worth stopping for: the
            // customer clearly meant to configure one.
            let stray: Vec<String> = [
                ("BYOC_API_KEY", Some("byoc.apiKey")),
                ("BYOC_MODEL", Some("byoc.model")),
                ("BYOC_ENDPOINT_URL", Some("byoc.endpointUrl")),
                ("BYOC_REGION", Some("byoc.region")),
                ("BYOC_AWS_ACCESS_KEY_ID", Some("byoc.awsAccessKeyId")),
                ("TP_BEDROCK_MODEL_ID", Some("byoc.bedrockModelId")),
                ("BYOC_GCP_PROJECT", Some("byoc.gcpProject")),
            ]
            .into_iter()
            .filter_map(|(var, key)| {
                let direct = l.get(var, key).map(|s| s.source.setting_name());
                direct.or_else(|| {
                    l.env()
                        .get(&format!("{var}_FILE"))
                        .map(|_| format!("{var}_FILE"))
                })
            })
            .collect();
            if !stray.is_empty() {
                l.error(format!(
                    "BYOC_PROVIDER (or byoc.provider in the values file) is not set, but {} {} set; set BYOC_PROVIDER to one of {}",
                    stray.join(", "),
                    if stray.len() == 1 { "is" } else { "are" },
                    ProviderKind::valid_names()
                ));
            }
            report.push(row(
                "provider",
                "(not configured)".to_owned(),
                Source::Default,
            ));
            return None;
        }
    };
    report.push(row("provider", kind.to_string(), kind_source));

    if use_task_role && kind != ProviderKind::Bedrock {
        warnings.push(format!(
            "TP_BEDROCK_USE_TASK_ROLE is set but the provider is {kind}; it only applies to bedrock"
        ));
    }

    let mut settings = ProviderSettings::new(kind, String::new());
    let model = model(l, kind);
    if let Some(m) = &model {
        report.push(row("model", m.value.clone(), m.source.clone()));
        settings.model = m.value.clone();
    }

    let endpoint = l.get("BYOC_ENDPOINT_URL", Some("byoc.endpointUrl"));
    if let Some(e) = &endpoint {
        settings.endpoint = endpoint_url(l, kind, e);
        if let Some(u) = &settings.endpoint {
            report.push(row("endpoint", u.to_string(), e.source.clone()));
        }
    }
    // `openai` with an endpoint is how our documentation configures Ollama and vLLM.
    let self_hosted = kind.is_self_hosted() || (kind == ProviderKind::OpenAi && endpoint.is_some());

    let api_key = l.secret("BYOC_API_KEY", Some("byoc.apiKey"));
    if let Some(k) = &api_key {
        let setting = if kind == ProviderKind::Vertex {
            "service account key"
        } else {
            "api key"
        };
        report.push(secret_row(setting, k));
    }
    if let Some(org) = l.get("BYOC_API_KEY_ORG", Some("byoc.organization")) {
        if kind != ProviderKind::OpenAi {
            warnings.push(format!(
                "{} only applies to openai; ignored for {kind}",
                org.source.setting_name()
            ));
        } else {
            report.push(row("organization", org.value.clone(), org.source));
            settings.organization = Some(org.value);
        }
    }
    let region = l.get("BYOC_REGION", Some("byoc.region"));

    match kind {
        ProviderKind::OpenAi
        | ProviderKind::Ollama
        | ProviderKind::Vllm
        | ProviderKind::OpenAiCompatible => {
            if self_hosted {
                if endpoint.is_none() {
                    l.error(format!(
                        "{} is required for provider {kind}: the server's OpenAI-compatible base URL, for example http://ollama-server:11434/v1 or http://vllm-server:8000/v1",
                        both_names("BYOC_ENDPOINT_URL")
                    ));
                }
            } else if api_key.is_none() {
                l.error(format!(
                    "{} is required for provider openai (or set BYOC_ENDPOINT_URL to use an OpenAI-compatible server such as Ollama or vLLM)",
                    both_names("BYOC_API_KEY")
                ));
            }
            settings.api_key = api_key.map(|k| k.value);
        }
        ProviderKind::Azure => {
            if endpoint.is_none() {
                l.error(format!(
                    "{} is required for provider azure: your resource endpoint, for example https://your-resource-name.openai.azure.com",
                    both_names("BYOC_ENDPOINT_URL")
                ));
            }
            if api_key.is_none() {
                l.error(format!(
                    "{} is required for provider azure",
                    both_names("BYOC_API_KEY")
                ));
            }
            settings.api_key = api_key.map(|k| k.value);
            let version = l.get("BYOC_API_VERSION", Some("byoc.apiVersion"));
            let (v, source) = match version {
                Some(v) => (v.value, v.source),
                None => (DEFAULT_AZURE_API_VERSION.to_owned(), Source::Default),
            };
            if !valid_api_version(&v) {
                l.error(format!(
                    "{}: {v:?} is not an Azure OpenAI API version; use a date such as {DEFAULT_AZURE_API_VERSION} or 2025-04-01-preview",
                    source.setting_name()
                ));
            }
            report.push(row("api version", v.clone(), source));
            settings.api_version = Some(v);
        }
        ProviderKind::Anthropic => {
            if api_key.is_none() {
                l.error(format!(
                    "{} is required for provider anthropic",
                    both_names("BYOC_API_KEY")
                ));
            }
            settings.api_key = api_key.map(|k| k.value);
        }
        ProviderKind::Bedrock => bedrock(l, report, &mut settings, region, use_task_role, api_key),
        ProviderKind::Vertex => vertex(l, report, &mut settings, region, api_key),
    }
    if kind != ProviderKind::Azure
        && let Some(v) = l.get("BYOC_API_VERSION", Some("byoc.apiVersion"))
    {
        warnings.push(format!(
            "{} only applies to azure; ignored for {kind}",
            v.source.setting_name()
        ));
    }
    Some(settings)
}

fn model(l: &mut Layers<'_>, kind: ProviderKind) -> Option<Sourced<String>> {
    let model = l.get("BYOC_MODEL", Some("byoc.model"));
    if kind == ProviderKind::Bedrock {
        let model_id = l.get("TP_BEDROCK_MODEL_ID", Some("byoc.bedrockModelId"));
        return match (model, model_id) {
            (Some(a), Some(b)) if a.value != b.value => {
                l.error(format!(
                    "{} ({:?}) and {} ({:?}) name different Bedrock models; set only one",
                    a.source.setting_name(),
                    a.value,
                    b.source.setting_name(),
                    b.value
                ));
                None
            }
            (_, Some(m)) | (Some(m), None) => Some(m),
            (None, None) => {
                l.error(
                    "BYOC_MODEL or TP_BEDROCK_MODEL_ID (or byoc.bedrockModelId in the values file) is required for provider bedrock, for example anthropic.claude-3-haiku-20240307-v1:0".to_owned(),
                );
                None
            }
        };
    }
    if model.is_none() {
        let example = match kind {
            ProviderKind::OpenAi => "gpt-4o-mini",
            ProviderKind::Azure => "your deployment name",
            ProviderKind::Anthropic => "claude-3-5-sonnet-20241022",
            ProviderKind::Vertex => "gemini-2.0-flash",
            ProviderKind::Ollama => "llama3.2",
            _ => "meta-llama/Llama-3.1-8B-Instruct",
        };
        let what = if kind == ProviderKind::Azure {
            " (the Azure deployment name)"
        } else {
            ""
        };
        l.error(format!(
            "{} is required for provider {kind}{what}, for example {example}",
            both_names("BYOC_MODEL")
        ));
    }
    model
}

fn valid_api_version(v: &str) -> bool {
    let b = v.as_bytes();
    let date = b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    (date && (b.len() == 10 || &v[10..] == "-preview")) || v == "preview" || v == "latest"
}

/// Parses and normalises an endpoint URL for a provider, recording problems.
fn endpoint_url(l: &mut Layers<'_>, kind: ProviderKind, e: &Sourced<String>) -> Option<Url> {
    let name = e.source.setting_name();
    let mut url = match Url::parse(&e.value) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => u,
        Ok(_) | Err(_) => {
            l.error(format!(
                "{name}: {:?} is not an http(s) URL; use for example https://your-resource-name.openai.azure.com or http://ollama-server:11434/v1",
                e.value
            ));
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        l.error(format!(
            "{name}: the URL must not contain credentials; put the key in BYOC_API_KEY (URLs end up in logs)"
        ));
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() {
        l.error(format!(
            "{name}: the URL must not have a query string or fragment{}",
            if kind == ProviderKind::Azure {
                "; set the API version with BYOC_API_VERSION"
            } else {
                ""
            }
        ));
        return None;
    }
    let path = url.path().trim_end_matches('/').to_owned();
    match kind {
        ProviderKind::Azure => {
            if path.contains("/openai/deployments") {
                l.error(format!(
                    "{name}: use the resource endpoint (https://your-resource-name.openai.azure.com), not a deployment URL; put the deployment name in BYOC_MODEL"
                ));
                return None;
            }
            if !(path.is_empty() || path.ends_with("/openai/v1")) {
                l.error(format!(
                    "{name}: unexpected path {path:?}; use the resource endpoint (https://your-resource-name.openai.azure.com) or the v1 API (…/openai/v1)"
                ));
                return None;
            }
        }
        ProviderKind::OpenAi
        | ProviderKind::Ollama
        | ProviderKind::Vllm
        | ProviderKind::OpenAiCompatible => {
            // Accept a full chat URL by mistake, and a bare host:port, by normalising both to
            // the base URL every OpenAI-compatible server serves under.
            let base = path.trim_end_matches("/chat/completions");
            let base = if base.is_empty() { "/v1" } else { base };
            url.set_path(base);
        }
        _ => {}
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(if trimmed.is_empty() { "/" } else { &trimmed });
    Some(url)
}

fn valid_region(r: &str) -> bool {
    r == "global"
        || (!r.is_empty()
            && r.len() <= 32
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && r.bytes().any(|b| b.is_ascii_digit()))
}

/// The AWS region for Bedrock: `BYOC_REGION`/`byoc.region`, else `AWS_REGION`, else
/// `AWS_DEFAULT_REGION` (what ECS and EKS set for tasks and pods).
fn aws_region(l: &Layers<'_>, byoc_region: Option<Sourced<String>>) -> Option<Sourced<String>> {
    byoc_region
        .or_else(|| l.get("AWS_REGION", None))
        .or_else(|| l.get("AWS_DEFAULT_REGION", None))
}

fn aws_keys(l: &mut Layers<'_>, report: &mut Vec<ReportRow>) -> Option<AwsAuth> {
    let id = l.secret("BYOC_AWS_ACCESS_KEY_ID", Some("byoc.awsAccessKeyId"));
    let secret = l.secret(
        "BYOC_AWS_SECRET_ACCESS_KEY",
        Some("byoc.awsSecretAccessKey"),
    );
    let token = l.secret("BYOC_AWS_SESSION_TOKEN", Some("byoc.awsSessionToken"));
    match (id, secret) {
        (Some(id), Some(secret)) => {
            report.push(row(
                "aws access key id",
                mask_key_id(id.value.expose_secret()),
                id.source.clone(),
            ));
            report.push(secret_row("aws secret access key", &secret));
            if let Some(t) = &token {
                report.push(secret_row("aws session token", t));
            }
            Some(AwsAuth::StaticKeys {
                access_key_id: id.value.expose_secret().to_owned(),
                secret_access_key: secret.value,
                session_token: token.map(|t| t.value),
            })
        }
        (Some(_), None) => {
            l.error("BYOC_AWS_ACCESS_KEY_ID is set but BYOC_AWS_SECRET_ACCESS_KEY is not; set both, or neither to use TP_BEDROCK_USE_TASK_ROLE=1".to_owned());
            None
        }
        (None, Some(_)) => {
            l.error(
                "BYOC_AWS_SECRET_ACCESS_KEY is set but BYOC_AWS_ACCESS_KEY_ID is not; set both"
                    .to_owned(),
            );
            None
        }
        (None, None) => {
            if token.is_some() {
                l.error("BYOC_AWS_SESSION_TOKEN is set without BYOC_AWS_ACCESS_KEY_ID and BYOC_AWS_SECRET_ACCESS_KEY".to_owned());
            }
            None
        }
    }
}

/// Access key ids are not secret on their own, but showing only the prefix and the last four
/// is enough to tell keys apart.
fn mask_key_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() >= 12 {
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}…{tail}")
    } else {
        "set".to_owned()
    }
}

fn bedrock(
    l: &mut Layers<'_>,
    report: &mut Vec<ReportRow>,
    settings: &mut ProviderSettings,
    region: Option<Sourced<String>>,
    use_task_role: bool,
    api_key: Option<Sourced<SecretString>>,
) {
    if let Some(k) = api_key {
        l.error(format!(
            "{} is not used by bedrock; set BYOC_AWS_ACCESS_KEY_ID and BYOC_AWS_SECRET_ACCESS_KEY, or TP_BEDROCK_USE_TASK_ROLE=1",
            k.source.setting_name()
        ));
    }
    match aws_region(l, region) {
        Some(r) if valid_region(&r.value) => {
            report.push(row("region", r.value.clone(), r.source));
            settings.region = Some(r.value);
        }
        Some(r) => l.error(format!("{}: {:?} is not an AWS region, for example us-east-1", r.source.setting_name(), r.value)),
        None => l.error(
            "BYOC_REGION (or byoc.region in the values file, or AWS_REGION) is required for provider bedrock, for example us-east-1".to_owned(),
        ),
    }
    let keys = aws_keys(l, report);
    settings.aws = match (keys, use_task_role) {
        (Some(_), true) => {
            l.error("Bedrock credentials are given twice: BYOC_AWS_ACCESS_KEY_ID/BYOC_AWS_SECRET_ACCESS_KEY and TP_BEDROCK_USE_TASK_ROLE=1; use one".to_owned());
            None
        }
        (Some(keys), false) => Some(keys),
        (None, true) => {
            report.push(row(
                "aws credentials",
                "AWS credential chain (task role, instance profile, IRSA)".to_owned(),
                Source::Implied("TP_BEDROCK_USE_TASK_ROLE".to_owned()),
            ));
            Some(AwsAuth::DefaultChain)
        }
        (None, false) => {
            l.error("Bedrock needs credentials: set BYOC_AWS_ACCESS_KEY_ID and BYOC_AWS_SECRET_ACCESS_KEY, or TP_BEDROCK_USE_TASK_ROLE=1 (byoc.bedrockUseTaskRole: true) to use the task role, instance profile or IRSA".to_owned());
            None
        }
    };
}

fn vertex(
    l: &mut Layers<'_>,
    report: &mut Vec<ReportRow>,
    settings: &mut ProviderSettings,
    region: Option<Sourced<String>>,
    key: Option<Sourced<SecretString>>,
) {
    match l.get("BYOC_GCP_PROJECT", Some("byoc.gcpProject")) {
        Some(p) => {
            report.push(row("gcp project", p.value.clone(), p.source));
            settings.gcp_project = Some(p.value);
        }
        None => l.error(format!(
            "{} is required for provider vertex",
            both_names("BYOC_GCP_PROJECT")
        )),
    }
    match region {
        Some(r) if valid_region(&r.value) => {
            report.push(row("region", r.value.clone(), r.source));
            settings.region = Some(r.value);
        }
        Some(r) => l.error(format!(
            "{}: {:?} is not a Google Cloud location, for example us-central1",
            r.source.setting_name(),
            r.value
        )),
        None => l.error(format!(
            "{} is required for provider vertex (the Vertex AI location, for example us-central1)",
            both_names("BYOC_REGION")
        )),
    }
    let Some(key) = key else {
        l.error("BYOC_API_KEY_FILE is required for provider vertex: the path of the service-account JSON key file".to_owned());
        return;
    };
    match check_service_account(key.value.expose_secret()) {
        Ok(()) => settings.service_account = Some(key.value),
        Err(problem) => l.error(format!("{}: {problem}", key.source.setting_name())),
    }
}

/// Checks a service-account key file's shape without echoing any of it.
fn check_service_account(text: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        "not a JSON service-account key file (download one from IAM → Service accounts → Keys)"
            .to_owned()
    })?;
    if v.get("type").and_then(|t| t.as_str()) != Some("service_account") {
        return Err("the key file's \"type\" must be \"service_account\"".to_owned());
    }
    let missing: Vec<&str> = ["client_email", "private_key", "token_uri"]
        .into_iter()
        .filter(|f| v.get(*f).and_then(|x| x.as_str()).is_none_or(str::is_empty))
        .collect();
    if !missing.is_empty() {
        return Err(format!("the key file has no {}", missing.join(", ")));
    }
    Ok(())
}

fn embeddings(
    l: &mut Layers<'_>,
    report: &mut Vec<ReportRow>,
    chat: Option<&ProviderSettings>,
) -> EmbeddingSettings {
    let Some(p) = l.get("EMBEDDING_PROVIDER", Some("embeddings.provider")) else {
        report.push(row(
            "embeddings provider",
            "fallback (keyword search only)".to_owned(),
            Source::Default,
        ));
        return EmbeddingSettings::Fallback;
    };
    let model = l.get("EMBEDDING_MODEL", Some("embeddings.model"));
    let endpoint = l.get("EMBEDDING_ENDPOINT_URL", Some("embeddings.endpointUrl"));
    match p.value.to_ascii_lowercase().as_str() {
        "fallback" => {
            report.push(row(
                "embeddings provider",
                "fallback (keyword search only)".to_owned(),
                p.source,
            ));
            EmbeddingSettings::Fallback
        }
        "openai" => {
            report.push(row(
                "embeddings provider",
                "openai".to_owned(),
                p.source.clone(),
            ));
            let (model, msource) = model
                .map(|m| (m.value, m.source))
                .unwrap_or_else(|| (DEFAULT_OPENAI_EMBEDDING_MODEL.to_owned(), Source::Default));
            report.push(row("embeddings model", model.clone(), msource));
            let (url, custom) = match &endpoint {
                Some(e) => (embedding_endpoint(l, e), true),
                None => (Url::parse(OPENAI_BASE_URL).ok(), false),
            };
            let Some(url) = url else {
                return EmbeddingSettings::Fallback;
            };
            report.push(row(
                "embeddings endpoint",
                url.to_string(),
                endpoint.map(|e| e.source).unwrap_or(Source::Default),
            ));
            let key = l
                .secret("EMBEDDING_API_KEY", Some("embeddings.apiKey"))
                .or_else(|| l.secret("OPENAI_API_KEY", None));
            if let Some(k) = &key {
                report.push(secret_row("embeddings api key", k));
            } else if !custom {
                l.error("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY or EMBEDDING_API_KEY (or EMBEDDING_ENDPOINT_URL for a self-hosted OpenAI-compatible server)".to_owned());
            }
            let azure = is_azure_host(&url);
            let azure_api_version = azure.then(|| {
                chat.and_then(|c| c.api_version.clone())
                    .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned())
            });
            EmbeddingSettings::OpenAi {
                model,
                endpoint: url,
                api_key: key.map(|k| k.value),
                azure_api_version,
            }
        }
        "bedrock" => {
            report.push(row(
                "embeddings provider",
                "bedrock".to_owned(),
                p.source.clone(),
            ));
            let (model, msource) = model
                .map(|m| (m.value, m.source))
                .unwrap_or_else(|| (DEFAULT_BEDROCK_EMBEDDING_MODEL.to_owned(), Source::Default));
            if !(model.contains("titan-embed") || model.contains("cohere.embed")) {
                l.error(format!(
                    "{}: {model:?} is not a Bedrock embedding model we support; use Amazon Titan Text Embeddings ({DEFAULT_BEDROCK_EMBEDDING_MODEL}) or Cohere Embed (cohere.embed-english-v3, cohere.embed-multilingual-v3)",
                    msource.setting_name()
                ));
            }
            report.push(row("embeddings model", model.clone(), msource));
            // The documentation sets AWS_REGION for Bedrock embeddings.
            let region = l
                .get("AWS_REGION", None)
                .or_else(|| l.get("AWS_DEFAULT_REGION", None))
                .or_else(|| l.get("BYOC_REGION", Some("byoc.region")));
            let region = match region {
                Some(r) if valid_region(&r.value) => {
                    report.push(row("embeddings region", r.value.clone(), r.source));
                    r.value
                }
                Some(r) => {
                    l.error(format!(
                        "{}: {:?} is not an AWS region",
                        r.source.setting_name(),
                        r.value
                    ));
                    String::new()
                }
                None => {
                    l.error("EMBEDDING_PROVIDER=bedrock needs AWS_REGION (or BYOC_REGION), for example us-east-1".to_owned());
                    String::new()
                }
            };
            let endpoint = endpoint.and_then(|e| {
                let u = endpoint_url(l, ProviderKind::Bedrock, &e);
                if let Some(u) = &u {
                    report.push(row("embeddings endpoint", u.to_string(), e.source.clone()));
                }
                u
            });
            // "Uses the same IAM role as Bedrock inference": keys when the chat provider has
            // them, the credential chain otherwise.
            let aws = match chat.and_then(|c| c.aws.clone()) {
                Some(keys @ AwsAuth::StaticKeys { .. }) => keys,
                _ => {
                    report.push(row(
                        "embeddings aws credentials",
                        "AWS credential chain".to_owned(),
                        Source::Implied("EMBEDDING_PROVIDER=bedrock".to_owned()),
                    ));
                    AwsAuth::DefaultChain
                }
            };
            EmbeddingSettings::Bedrock {
                model,
                region,
                endpoint,
                aws,
            }
        }
        other => {
            l.error(format!(
                "{}: unknown embedding provider {other:?}; valid embedding providers are openai, bedrock, fallback",
                p.source.setting_name()
            ));
            EmbeddingSettings::Fallback
        }
    }
}

fn is_azure_host(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    (host.ends_with(".openai.azure.com") || host.ends_with(".cognitiveservices.azure.com"))
        && !url.path().trim_end_matches('/').ends_with("/openai/v1")
}

fn embedding_endpoint(l: &mut Layers<'_>, e: &Sourced<String>) -> Option<Url> {
    let is_azure = Url::parse(&e.value)
        .map(|u| is_azure_host(&u))
        .unwrap_or(false);
    let kind = if is_azure {
        ProviderKind::Azure
    } else {
        ProviderKind::OpenAiCompatible
    };
    endpoint_url(l, kind, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_plain_seconds_and_units() {
        assert_eq!(parse_duration("300"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("five"), None);
        assert_eq!(parse_duration("5 days"), None);
        // Too large for a Duration (the fuzzer found this one panicking).
        assert_eq!(
            parse_duration("533333333333333333333333333333333333m"),
            None
        );
        assert_eq!(parse_duration("1e300s"), None);
    }

    #[test]
    fn azure_api_versions() {
        for ok in ["2024-10-21", "2024-02-15-preview", "preview", "latest"] {
            assert!(valid_api_version(ok), "{ok}");
        }
        for bad in ["2024-1-21", "v1", "2024-10-21-beta", ""] {
            assert!(!valid_api_version(bad), "{bad}");
        }
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "us-central1",
            "global",
        ] {
            assert!(valid_region(ok), "{ok}");
        }
        for bad in ["US-EAST-1", "us east 1", "", "virginia"] {
            assert!(!valid_region(bad), "{bad}");
        }
    }
}

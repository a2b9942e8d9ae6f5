//! The control plane's configuration, validated as a whole before any port is bound: every
//! problem is reported together and the process exits with status 64.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use atlasai_core::portal::{AiSettings, WireSecret};
use atlasai_core::{ProviderKind, ProviderSettings};
use atlasai_providers::HttpOptions;
use secrecy::{ExposeSecret, SecretString};

/// Exit status for an invalid configuration (BSD `EX_USAGE`).
pub const EXIT_CONFIG: u8 = 64;
const DEFAULT_BIND: &str = "0.0.0.0:8090";
const DEFAULT_DATABASE_URL: &str = "sqlite://atlasai-cp.db";
const MIN_TOKEN_CHARS: usize = 16;

/// Every variable the control plane reads (the docs test checks each is documented).
pub const KNOWN_VARS: &[&str] = &[
    "CP_BIND_ADDR",
    "CP_LOG_FORMAT",
    "CP_DATABASE_URL",
    "CP_DATABASE_URL_FILE",
    "CP_SECRET_KEY",
    "CP_SECRET_KEY_FILE",
    "CP_BOOTSTRAP_TOKEN",
    "CP_BOOTSTRAP_TOKEN_FILE",
    "CP_JWT_SIGNING_KEY",
    "CP_JWT_SIGNING_KEY_FILE",
    "CP_JWT_ISSUER",
    "CP_ACCESS_TOKEN_TTL",
    "CP_TP_ADMIN_TOKEN_TTL",
    "CP_ALLOW_PRIVATE_ENDPOINTS",
    "CP_VALIDATION_TIMEOUT",
    "CP_INITIAL_CREDITS",
    "CP_MANAGED_PROVIDER",
    "CP_MANAGED_MODEL",
    "CP_MANAGED_API_KEY",
    "CP_MANAGED_API_KEY_FILE",
    "CP_MANAGED_ENDPOINT_URL",
    "CP_MANAGED_API_VERSION",
    "CP_MANAGED_REGION",
    "CP_MANAGED_AWS_ACCESS_KEY_ID",
    "CP_MANAGED_AWS_SECRET_ACCESS_KEY",
    "CP_MANAGED_AWS_SECRET_ACCESS_KEY_FILE",
    "CP_MANAGED_USE_TASK_ROLE",
    "CP_MANAGED_PRICES",
    "CP_MANAGED_MAX_TOKENS",
];

/// Everything the control plane runs with.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// Where the HTTP server listens (`CP_BIND_ADDR`, default `0.0.0.0:8090`).
    pub bind_addr: SocketAddr,
    /// The database (`CP_DATABASE_URL`): `sqlite://...` or `postgres://...`.
    pub database_url: SecretString,
    /// The AEAD key secrets are encrypted with at rest (`CP_SECRET_KEY`).
    pub secret_key: SecretKey,
    /// The operator token that creates tenants (`CP_BOOTSTRAP_TOKEN`).
    pub bootstrap_token: Option<SecretString>,
    /// The Ed25519 signing key seed for JWTs (`CP_JWT_SIGNING_KEY`, else derived from the
    /// secret key).
    pub jwt_seed: SecretSeed,
    /// The `iss` of every JWT (`CP_JWT_ISSUER`).
    pub jwt_issuer: String,
    /// Lifetime of portal access tokens (`CP_ACCESS_TOKEN_TTL`).
    pub access_token_ttl: Duration,
    /// Lifetime of tenant-plane admin tokens (`CP_TP_ADMIN_TOKEN_TTL`).
    pub tp_admin_token_ttl: Duration,
    /// Whether tenant endpoints on private networks may be called (`CP_ALLOW_PRIVATE_ENDPOINTS`).
    pub allow_private_endpoints: bool,
    /// Timeout for validation calls (`CP_VALIDATION_TIMEOUT`).
    pub validation_timeout: Duration,
    /// Credits granted to a new tenant (`CP_INITIAL_CREDITS`), in thousandths.
    pub initial_millicredits: i64,
    /// The managed default model, if configured.
    pub managed: Option<ManagedConfig>,
    /// Settings worth knowing about that do not stop the control plane.
    pub warnings: Vec<String>,
}

/// The managed model and its price table.
#[derive(Debug, Clone)]
pub struct ManagedConfig {
    /// The client settings.
    pub settings: ProviderSettings,
    /// Timeouts and retries.
    pub http: HttpOptions,
    /// Credits per 1000 tokens, by model.
    pub prices: HashMap<String, Price>,
    /// The largest completion the managed model may produce per request.
    pub max_tokens: u32,
}

/// The price of one model, in thousandths of a credit per 1000 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    /// Per 1000 prompt tokens.
    pub input_millicredits: i64,
    /// Per 1000 completion tokens.
    pub output_millicredits: i64,
}

/// The 256-bit AEAD key.
#[derive(Clone)]
pub struct SecretKey(pub [u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

/// The 32-byte Ed25519 seed.
#[derive(Clone)]
pub struct SecretSeed(pub [u8; 32]);

impl std::fmt::Debug for SecretSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSeed([REDACTED])")
    }
}

/// Every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration is invalid ({} problem{}):\n  - {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

struct Reader<'a> {
    env: &'a BTreeMap<String, String>,
    errors: Vec<String>,
}

impl Reader<'_> {
    fn get(&self, k: &str) -> Option<String> {
        self.env
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// A secret from `VAR` or the file named by `VAR_FILE` (not both).
    fn secret(&mut self, k: &str) -> Option<(SecretString, String)> {
        let file_var = format!("{k}_FILE");
        match (self.get(k), self.get(&file_var)) {
            (Some(_), Some(_)) => {
                self.errors
                    .push(format!("{k} and {file_var} are both set; set one"));
                None
            }
            (Some(v), None) => Some((SecretString::from(v), k.to_owned())),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) if !text.trim().is_empty() => {
                    Some((SecretString::from(text.trim().to_owned()), file_var))
                }
                Ok(_) => {
                    self.errors.push(format!("{file_var}: {path} is empty"));
                    None
                }
                Err(e) => {
                    self.errors
                        .push(format!("{file_var}: cannot read {path}: {e}"));
                    None
                }
            },
            (None, None) => None,
        }
    }

    fn flag(&mut self, k: &str) -> bool {
        match self.get(k).as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => {
                self.errors
                    .push(format!("{k}: {other:?} is not a flag; use 1 or 0"));
                false
            }
        }
    }

    fn duration(&mut self, k: &str, default: Duration) -> Duration {
        match self.get(k) {
            None => default,
            Some(text) => match parse_duration(&text) {
                Some(d) if !d.is_zero() => d,
                _ => {
                    self.errors.push(format!(
                        "{k}: {text:?} is not a duration; use seconds (300) or 500ms, 30s, 5m, 1h"
                    ));
                    default
                }
            },
        }
    }
}

/// Parses `300`, `300s`, `5m`, `1h` or `1500ms`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

/// Parses a credit amount with up to three decimals into thousandths (`1.5` → 1500).
pub fn parse_credits(text: &str) -> Option<i64> {
    let t = text.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() || frac.len() > 3 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<3}").parse().ok()?;
    whole.checked_mul(1000)?.checked_add(frac)
}

fn parse_key(text: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .ok()?
    };
    bytes.try_into().ok()
}

/// Reads the configuration from environment variables (empty values count as unset).
pub fn load(env: &BTreeMap<String, String>) -> Result<ControlPlaneConfig, ConfigErrors> {
    let mut r = Reader {
        env,
        errors: Vec::new(),
    };
    let bind_text = r
        .get("CP_BIND_ADDR")
        .unwrap_or_else(|| DEFAULT_BIND.to_owned());
    let bind_addr = match bind_text.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            r.errors.push(format!(
                "CP_BIND_ADDR: {bind_text:?} is not a socket address; use host:port, for example {DEFAULT_BIND}"
            ));
            None
        }
    };
    if let Some(f) = r.get("CP_LOG_FORMAT")
        && f != "json"
        && f != "text"
    {
        r.errors.push(format!(
            "CP_LOG_FORMAT: {f:?} is not a log format; use text or json"
        ));
    }
    let database_url = match r.secret("CP_DATABASE_URL") {
        Some((url, var)) => {
            let text = url.expose_secret();
            if !(text.starts_with("sqlite:")
                || text.starts_with("postgres://")
                || text.starts_with("postgresql://"))
            {
                r.errors.push(format!(
                    "{var}: not a database URL; use sqlite://path/to/file.db or postgres://user@host/db"
                ));
            }
            url
        }
        None => SecretString::from(DEFAULT_DATABASE_URL.to_owned()),
    };
    let secret_key = match r.secret("CP_SECRET_KEY") {
        Some((k, var)) => match parse_key(k.expose_secret()) {
            Some(bytes) => Some(SecretKey(bytes)),
            None => {
                r.errors.push(format!(
                    "{var}: must be 32 random bytes as base64 or 64 hex digits; generate one with `openssl rand -base64 32`"
                ));
                None
            }
        },
        None => {
            r.errors.push("CP_SECRET_KEY (or CP_SECRET_KEY_FILE) is required: the key tenant secrets are encrypted with at rest, 32 random bytes as base64 or 64 hex digits; generate one with `openssl rand -base64 32` and keep it safe (losing it loses every stored provider key)".to_owned());
            None
        }
    };
    let bootstrap_token = match r.secret("CP_BOOTSTRAP_TOKEN") {
        Some((t, var)) if t.expose_secret().chars().count() < MIN_TOKEN_CHARS => {
            r.errors.push(format!(
                "{var}: must be at least {MIN_TOKEN_CHARS} characters; generate one with `openssl rand -hex 32`"
            ));
            None
        }
        Some((t, _)) => Some(t),
        None => None,
    };
    let jwt_seed = match r.secret("CP_JWT_SIGNING_KEY") {
        Some((pem, var)) => match crate::jwt::seed_from_pem(pem.expose_secret()) {
            Some(seed) => Some(SecretSeed(seed)),
            None => {
                r.errors.push(format!("{var}: not an Ed25519 private key in PKCS#8 PEM; generate one with `openssl genpkey -algorithm ed25519`"));
                None
            }
        },
        None => secret_key
            .as_ref()
            .map(|k| SecretSeed(crate::jwt::derive_seed(&k.0))),
    };
    let jwt_issuer = r
        .get("CP_JWT_ISSUER")
        .unwrap_or_else(|| "atlasai-cp".to_owned());
    let access_token_ttl = r.duration("CP_ACCESS_TOKEN_TTL", Duration::from_secs(3600));
    let tp_admin_token_ttl = r.duration("CP_TP_ADMIN_TOKEN_TTL", Duration::from_secs(3600));
    let allow_private_endpoints = r.flag("CP_ALLOW_PRIVATE_ENDPOINTS");
    let validation_timeout = r.duration("CP_VALIDATION_TIMEOUT", Duration::from_secs(30));
    let initial_millicredits = match r.get("CP_INITIAL_CREDITS") {
        None => 0,
        Some(t) => parse_credits(&t).unwrap_or_else(|| {
            r.errors.push(format!(
                "CP_INITIAL_CREDITS: {t:?} is not a credit amount; use a number such as 100 or 12.5"
            ));
            0
        }),
    };
    let managed = managed(&mut r);
    let warnings = env
        .keys()
        .filter(|k| k.starts_with("CP_") && !KNOWN_VARS.contains(&k.as_str()))
        .filter(|k| !k.contains("_SERVICE_") && !k.contains("_PORT"))
        .map(|k| format!("{k} is not a setting this version of the control plane reads"))
        .collect();
    match (bind_addr, secret_key, jwt_seed) {
        (Some(bind_addr), Some(secret_key), Some(jwt_seed)) if r.errors.is_empty() => {
            Ok(ControlPlaneConfig {
                bind_addr,
                database_url,
                secret_key,
                bootstrap_token,
                jwt_seed,
                jwt_issuer,
                access_token_ttl,
                tp_admin_token_ttl,
                allow_private_endpoints,
                validation_timeout,
                initial_millicredits,
                managed,
                warnings,
            })
        }
        _ => Err(ConfigErrors(r.errors)),
    }
}

/// The `CP_MANAGED_*` variables, validated with the same rules as portal settings.
fn managed(r: &mut Reader<'_>) -> Option<ManagedConfig> {
    let provider = r.get("CP_MANAGED_PROVIDER");
    let Some(provider) = provider else {
        for k in [
            "CP_MANAGED_MODEL",
            "CP_MANAGED_PRICES",
            "CP_MANAGED_API_KEY",
        ] {
            if r.get(k).is_some() {
                r.errors.push(format!(
                    "{k} is set but CP_MANAGED_PROVIDER is not; set CP_MANAGED_PROVIDER to one of {}",
                    ProviderKind::valid_names()
                ));
            }
        }
        return None;
    };
    let api_key = r.secret("CP_MANAGED_API_KEY").map(|(k, _)| k);
    let aws_secret = r.secret("CP_MANAGED_AWS_SECRET_ACCESS_KEY").map(|(k, _)| k);
    let task_role = r.flag("CP_MANAGED_USE_TASK_ROLE");
    let model = r.get("CP_MANAGED_MODEL").unwrap_or_default();
    let input = AiSettings {
        provider,
        model: model.clone(),
        endpoint_url: r.get("CP_MANAGED_ENDPOINT_URL"),
        api_key: api_key.map(WireSecret),
        api_version: r.get("CP_MANAGED_API_VERSION"),
        region: r.get("CP_MANAGED_REGION"),
        aws_access_key_id: r.get("CP_MANAGED_AWS_ACCESS_KEY_ID"),
        aws_secret_access_key: aws_secret.map(WireSecret),
        bedrock_use_task_role: task_role,
        ..AiSettings::default()
    };
    let settings = match input.validate() {
        Ok(v) => Some(v.chat),
        Err(errors) => {
            for e in errors {
                let var = match e.field.as_str() {
                    "bedrock_use_task_role" => "CP_MANAGED_USE_TASK_ROLE".to_owned(),
                    f => format!("CP_MANAGED_{}", f.to_ascii_uppercase()),
                };
                r.errors.push(format!("{var}: {}", e.message));
            }
            None
        }
    };
    let prices = match r.get("CP_MANAGED_PRICES") {
        None => {
            r.errors.push(format!("CP_MANAGED_PRICES is required with CP_MANAGED_PROVIDER: credits per 1000 input/output tokens per model, for example {model}=0.15/0.6"));
            HashMap::new()
        }
        Some(text) => match parse_prices(&text) {
            Ok(p) => p,
            Err(e) => {
                r.errors.push(format!("CP_MANAGED_PRICES: {e}"));
                HashMap::new()
            }
        },
    };
    if !model.is_empty() && !prices.is_empty() && !prices.contains_key(&model) {
        r.errors.push(format!(
            "CP_MANAGED_PRICES has no price for the managed model {model:?}; add {model}=<input>/<output>"
        ));
    }
    let max_tokens = match r.get("CP_MANAGED_MAX_TOKENS") {
        None => 1024,
        Some(t) => match t.parse::<u32>() {
            Ok(n) if (1..=100_000).contains(&n) => n,
            _ => {
                r.errors.push(format!(
                    "CP_MANAGED_MAX_TOKENS: {t:?} is not a number from 1 to 100000"
                ));
                1024
            }
        },
    };
    Some(ManagedConfig {
        settings: settings?,
        http: HttpOptions::default(),
        prices,
        max_tokens,
    })
}

/// Parses `model=in/out,model2=in/out` (credits per 1000 tokens, up to 3 decimals).
pub fn parse_prices(text: &str) -> Result<HashMap<String, Price>, String> {
    let mut out = HashMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || {
            format!(
                "{item:?} is not model=input/output, for example gpt-4o-mini=0.15/0.6 (credits per 1000 tokens)"
            )
        };
        let (model, price) = item.rsplit_once('=').ok_or_else(bad)?;
        let (i, o) = price.split_once('/').ok_or_else(bad)?;
        let (Some(i), Some(o)) = (parse_credits(i), parse_credits(o)) else {
            return Err(bad());
        };
        out.insert(
            model.trim().to_owned(),
            Price {
                input_millicredits: i,
                output_millicredits: o,
            },
        );
    }
    if out.is_empty() {
        return Err("no prices given".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn defaults_and_every_error_at_once() {
        let c = load(&env(&[("CP_SECRET_KEY", KEY)])).unwrap();
        assert_eq!(c.bind_addr.to_string(), "0.0.0.0:8090");
        assert!(c.managed.is_none());
        let err = load(&env(&[
            ("CP_BIND_ADDR", "x"),
            ("CP_LOG_FORMAT", "xml"),
            ("CP_BOOTSTRAP_TOKEN", "short"),
            ("CP_ALLOW_PRIVATE_ENDPOINTS", "yes"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 5, "{text}");
        for var in [
            "CP_BIND_ADDR",
            "CP_LOG_FORMAT",
            "CP_SECRET_KEY",
            "CP_BOOTSTRAP_TOKEN",
            "CP_ALLOW_PRIVATE_ENDPOINTS",
        ] {
            assert!(text.contains(var), "{var} missing from {text}");
        }
    }

    #[test]
    fn managed_model_is_validated_like_portal_settings_and_needs_a_price() {
        let err = load(&env(&[
            ("CP_SECRET_KEY", KEY),
            ("CP_MANAGED_PROVIDER", "azure"),
            ("CP_MANAGED_MODEL", "gpt-4o"),
            ("CP_MANAGED_PRICES", "other=1/2"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("CP_MANAGED_ENDPOINT_URL: is required"),
            "{err}"
        );
        assert!(err.contains("CP_MANAGED_API_KEY: is required"), "{err}");
        assert!(
            err.contains("no price for the managed model \"gpt-4o\""),
            "{err}"
        );
        let ok = load(&env(&[
            ("CP_SECRET_KEY", KEY),
            ("CP_MANAGED_PROVIDER", "openai"),
            ("CP_MANAGED_MODEL", "gpt-4o-mini"),
            ("CP_MANAGED_API_KEY", "sk-test"),
            ("CP_MANAGED_PRICES", "gpt-4o-mini=0.15/0.6"),
        ]))
        .unwrap();
        let m = ok.managed.unwrap();
        assert_eq!(
            m.prices["gpt-4o-mini"],
            Price {
                input_millicredits: 150,
                output_millicredits: 600
            }
        );
    }

    #[test]
    fn credits_parse_to_thousandths() {
        assert_eq!(parse_credits("1.5"), Some(1500));
        assert_eq!(parse_credits("0.001"), Some(1));
        assert_eq!(parse_credits("12"), Some(12000));
        assert_eq!(parse_credits("1.2345"), None);
        assert_eq!(parse_credits("-1"), None);
        assert_eq!(parse_credits("abc"), None);
    }
}

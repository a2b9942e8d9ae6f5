//! The control plane's configuration, validated as a whole before any port is bound: every
//! problem is reported together and the process exits with status 64.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Exit status for an invalid configuration (BSD `EX_USAGE`).
pub const EXIT_CONFIG: u8 = 64;
const DEFAULT_BIND: &str = "0.0.0.0:8090";
const KNOWN_VARS: &[&str] = &["CP_BIND_ADDR", "CP_LOG_FORMAT"];

/// Everything the control plane runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    /// Where the HTTP server listens (`CP_BIND_ADDR`, default `0.0.0.0:8090`).
    pub bind_addr: SocketAddr,
    /// Settings worth knowing about that do not stop the control plane.
    pub warnings: Vec<String>,
}

/// Every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration is invalid ({} problem{}):\n  - {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

/// Reads the configuration from environment variables (empty values count as unset).
pub fn load(env: &BTreeMap<String, String>) -> Result<ControlPlaneConfig, ConfigErrors> {
    let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut errors = Vec::new();
    let bind_text = get("CP_BIND_ADDR").unwrap_or(DEFAULT_BIND);
    let bind_addr = match bind_text.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.push(format!(
                "CP_BIND_ADDR: {bind_text:?} is not a socket address; use host:port, for example {DEFAULT_BIND}"
            ));
            None
        }
    };
    if let Some(f) = get("CP_LOG_FORMAT")
        && f != "json"
        && f != "text"
    {
        errors.push(format!(
            "CP_LOG_FORMAT: {f:?} is not a log format; use text or json"
        ));
    }
    let warnings = env
        .keys()
        .filter(|k| k.starts_with("CP_") && !KNOWN_VARS.contains(&k.as_str()))
        .filter(|k| !k.contains("_SERVICE_") && !k.contains("_PORT"))
        .map(|k| format!("{k} is not a setting this version of the control plane reads"))
        .collect();
    match bind_addr {
        Some(bind_addr) if errors.is_empty() => Ok(ControlPlaneConfig {
            bind_addr,
            warnings,
        }),
        _ => Err(ConfigErrors(errors)),
    }
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

    #[test]
    fn defaults_and_every_error_at_once() {
        assert_eq!(
            load(&env(&[])).unwrap().bind_addr.to_string(),
            "0.0.0.0:8090"
        );
        let err = load(&env(&[("CP_BIND_ADDR", "x"), ("CP_LOG_FORMAT", "xml")])).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.to_string().contains("CP_BIND_ADDR"));
        assert!(err.to_string().contains("CP_LOG_FORMAT"));
    }
}

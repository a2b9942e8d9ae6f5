//! The control-plane connection settings: `TP_CP_URL`, `TP_CP_ENROLL_TOKEN` and
//! `AI_CREDITS_FAIL_OPEN`. Without `TP_CP_URL` the tenant plane runs alone (air-gapped).

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::ReportRow;
use super::sources::{Layers, Source};

/// How the tenant plane talks to its control plane.
#[derive(Debug, Clone)]
pub struct CpSettings {
    /// The control plane's base URL (`TP_CP_URL`).
    pub url: Url,
    /// The one-time enrollment token (`TP_CP_ENROLL_TOKEN`); only needed until the tenant
    /// plane has enrolled and stored its credential in the data directory.
    pub enroll_token: Option<SecretString>,
    /// `AI_CREDITS_FAIL_OPEN=1`: allow the managed model as a fallback when the tenant's own
    /// provider is down (data leaves the network; uses AI credits).
    pub fail_open: bool,
    /// How often status and usage are reported (`TP_CP_REPORT_INTERVAL`).
    pub report_interval: Duration,
}

/// Reads the control-plane settings, recording problems in `l`.
pub(super) fn resolve(
    l: &mut Layers<'_>,
    report: &mut Vec<ReportRow>,
    warnings: &mut Vec<String>,
) -> Option<CpSettings> {
    let fail_open = l
        .flag("AI_CREDITS_FAIL_OPEN", None)
        .is_some_and(|f| f.value);
    let token = l.secret("TP_CP_ENROLL_TOKEN", None);
    let interval = match l.get("TP_CP_REPORT_INTERVAL", None) {
        None => Duration::from_secs(30),
        Some(s) => match super::resolve::parse_duration(&s.value) {
            Some(d) if d >= Duration::from_millis(100) => d,
            _ => {
                l.error(format!(
                    "TP_CP_REPORT_INTERVAL: {:?} is not a duration of at least 100ms; use for example 30s",
                    s.value
                ));
                Duration::from_secs(30)
            }
        },
    };
    let Some(url_text) = l.get("TP_CP_URL", None) else {
        if token.is_some() {
            l.error("TP_CP_ENROLL_TOKEN is set but TP_CP_URL is not; set TP_CP_URL to the control plane's address, for example https://cp.atlasai.example".to_owned());
        }
        if fail_open {
            warnings.push(
                "AI_CREDITS_FAIL_OPEN=1 has no effect without a control plane (TP_CP_URL)"
                    .to_owned(),
            );
        }
        report.push(ReportRow {
            setting: "control plane",
            value: "(none: runs alone)".to_owned(),
            source: Source::Default,
        });
        return None;
    };
    let url = match Url::parse(&url_text.value) {
        Ok(u)
            if (u.scheme() == "https" || u.scheme() == "http")
                && u.host().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none() =>
        {
            u
        }
        _ => {
            l.error(format!(
                "TP_CP_URL: {:?} is not an http(s) URL without credentials or query, for example https://cp.atlasai.example",
                url_text.value
            ));
            return None;
        }
    };
    if url.scheme() == "http"
        && !matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
    {
        warnings.push(format!(
            "TP_CP_URL uses plain http ({url}); provider keys from the portal travel over this connection, so use https"
        ));
    }
    report.push(ReportRow {
        setting: "control plane",
        value: url.to_string(),
        source: url_text.source,
    });
    if let Some(t) = &token {
        report.push(ReportRow {
            setting: "cp enroll token",
            value: atlasai_core::secret::describe(&t.value),
            source: t.source.clone(),
        });
    }
    report.push(ReportRow {
        setting: "cloud fallback",
        value: if fail_open {
            "allowed (AI_CREDITS_FAIL_OPEN=1)".to_owned()
        } else {
            "off".to_owned()
        },
        source: if fail_open {
            Source::Env("AI_CREDITS_FAIL_OPEN")
        } else {
            Source::Default
        },
    });
    Some(CpSettings {
        url,
        enroll_token: token.map(|t| t.value),
        fail_open,
        report_interval: interval,
    })
}

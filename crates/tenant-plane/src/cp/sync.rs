//! The background tasks: enroll (once), long-poll the settings and apply them without a
//! restart, check settings the control plane asked this tenant plane to validate, and report
//! status and usage counts. Every failure is logged and retried with backoff; the tenant
//! plane keeps serving with the last settings it has.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlasai_core::protocol::{
    ConfigSource, PendingValidation, StatusReport, UsageReport, ValidationResult,
};
use atlasai_core::secret::Redactor;
use secrecy::SecretString;

use super::Snapshot;
use super::client::{self, CpError, CpLink, Poll};
use super::persist::{self, Credential};
use crate::config::cp::CpSettings;
use crate::state::AppState;

/// How long one settings poll waits for a change.
const POLL_WAIT: Duration = Duration::from_secs(25);
/// The longest pause between attempts to reach an unreachable control plane.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the control-plane tasks, if `TP_CP_URL` is set. The last settings stored in the
/// data directory are applied at once, before the control plane is reached.
pub fn spawn(state: Arc<AppState>) {
    let published = state.current();
    let Some(cfg) = published.config.cp.clone() else {
        return;
    };
    let data_dir = published.config.data_dir.clone();
    let cp = state.routes.cp().clone();
    cp.set_fail_open(cfg.fail_open);
    if let Some(cred) = persist::load_credential(&data_dir).filter(|c| c.cp_url == cfg.url.as_str())
        && let Some(saved) =
            persist::load_settings(&data_dir).filter(|s| s.cluster_id == cred.cluster_id)
    {
        tracing::info!(tenant = %saved.tenant_id, "applying the last settings received from the control plane until it answers");
        cp.publish(Snapshot::from_response(saved));
    }
    tokio::spawn(poll_loop(state.clone(), cfg.clone(), data_dir));
    tokio::spawn(report_loop(state, cfg));
}

async fn connect(
    http: &reqwest::Client,
    cfg: &CpSettings,
    data_dir: &Path,
) -> Result<CpLink, String> {
    if let Some(c) = persist::load_credential(data_dir).filter(|c| c.cp_url == cfg.url.as_str()) {
        return Ok(CpLink::new(
            http.clone(),
            cfg.url.clone(),
            c.credential.0,
            c.cluster_id,
            c.tenant_id,
        ));
    }
    let Some(token) = &cfg.enroll_token else {
        return Err(format!(
            "not enrolled with {} yet: set TP_CP_ENROLL_TOKEN to the enrollment token the portal showed when the cluster was created",
            cfg.url
        ));
    };
    let e = client::enroll(http, &cfg.url, token)
        .await
        .map_err(|e| e.to_string())?;
    let cred = Credential {
        cp_url: cfg.url.to_string(),
        tenant_id: e.tenant_id.to_string(),
        cluster_id: e.cluster_id.clone(),
        credential: e.credential.clone(),
        admin_tokens: e.admin_tokens.clone(),
    };
    persist::save_credential(data_dir, &cred).map_err(|e| format!("TP_DATA_DIR: {e}"))?;
    tracing::info!(tenant = %e.tenant_id, cluster = %e.cluster_id, "enrolled with the control plane; credential stored in the data directory");
    Ok(CpLink::new(
        http.clone(),
        cfg.url.clone(),
        e.credential.0,
        e.cluster_id,
        e.tenant_id.to_string(),
    ))
}

async fn poll_loop(state: Arc<AppState>, cfg: CpSettings, data_dir: std::path::PathBuf) {
    let cp = state.routes.cp().clone();
    let http = match client::http_client() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot talk to the control plane");
            return;
        }
    };
    let mut backoff = Duration::from_secs(1);
    let mut validated: HashSet<String> = HashSet::new();
    loop {
        let link = match cp.link() {
            Some(l) => l,
            None => match connect(&http, &cfg, &data_dir).await {
                Ok(l) => {
                    cp.set_link(l);
                    continue;
                }
                Err(e) => {
                    cp.set_connected(false);
                    tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "cannot connect to the control plane; AI keeps working with the settings in force");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let etag = cp
            .snapshot()
            .filter(|s| s.cluster_id == link.cluster_id)
            .map(|s| s.raw.etag.clone());
        match link.poll(etag.as_deref(), POLL_WAIT).await {
            Ok(Poll::NotModified) => {
                cp.set_connected(true);
                backoff = Duration::from_secs(1);
            }
            Ok(Poll::Changed(resp)) => {
                cp.set_connected(true);
                backoff = Duration::from_secs(1);
                if let Err(e) = persist::save_settings(&data_dir, &resp) {
                    tracing::warn!(error = %e, "cannot keep the settings for restarts");
                }
                let pending = resp.pending_validations.clone();
                let snapshot = Snapshot::from_response(*resp);
                if let Some(e) = &snapshot.ai_error {
                    tracing::error!(error = %e, "the portal's AI settings are not valid for this tenant plane; ignoring them");
                }
                tracing::info!(
                    tenant = %snapshot.tenant,
                    portal_provider = snapshot.ai.as_ref().map(|a| a.chat.kind.as_str()).unwrap_or("none"),
                    portal_model = snapshot.ai.as_ref().map(|a| a.chat.model.as_str()).unwrap_or(""),
                    pending_validations = pending.len(),
                    "settings received from the control plane"
                );
                cp.publish(snapshot);
                for pv in pending {
                    if validated.insert(pv.id.clone()) {
                        tokio::spawn(validate(state.clone(), link.clone(), pv));
                    }
                }
            }
            Err(e) => {
                cp.set_connected(false);
                if e.status() == Some(401) {
                    tracing::error!(error = %e, "the control plane no longer accepts this cluster's credential; enroll again with a new TP_CP_ENROLL_TOKEN after removing {} from the data directory", persist::CREDENTIAL_FILE);
                    tokio::time::sleep(MAX_BACKOFF).await;
                } else {
                    tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "control plane unreachable; AI keeps working with the settings in force");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Checks settings from inside the customer's network, as the control plane asked.
async fn validate(state: Arc<AppState>, link: Arc<CpLink>, pv: PendingValidation) {
    let started = Instant::now();
    let secrets: Vec<SecretString> = pv.settings.secrets();
    let redactor = Redactor::new(secrets.iter());
    let outcome = match pv.settings.validate() {
        Err(errs) => Err(errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")),
        Ok(v) => {
            let opts = state.current().config.http.clone();
            atlasai_providers::check::check_settings(&v.chat, &v.embeddings, &opts).await
        }
    };
    let result = ValidationResult {
        ok: outcome.is_ok(),
        error: outcome.err().map(|e| redactor.scrub(&e)),
        latency_ms: started.elapsed().as_millis() as u64,
    };
    tracing::info!(validation = %pv.id, ok = result.ok, error = result.error.as_deref().unwrap_or(""), "checked portal settings for the control plane");
    for attempt in 0..5u32 {
        match link.validation(&pv.id, &result).await {
            Ok(()) => return,
            Err(e @ CpError::Refused { .. }) => {
                tracing::info!(validation = %pv.id, error = %e, "the control plane no longer needs this validation");
                return;
            }
            Err(e) => {
                tracing::warn!(validation = %pv.id, error = %e, "cannot report a validation; retrying");
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            }
        }
    }
}

/// What this tenant plane serves its enrolled tenant with, and from where.
pub fn in_force(state: &AppState) -> (Option<String>, Option<String>, ConfigSource) {
    let published = state.current();
    let cp = state.routes.cp();
    if let Some(p) = &published.config.provider {
        return (
            Some(p.kind.to_string()),
            Some(p.model.clone()),
            ConfigSource::Local,
        );
    }
    let Some(s) = cp.snapshot() else {
        return (None, None, ConfigSource::None);
    };
    if let Some(ai) = &s.ai {
        return (
            Some(ai.chat.kind.to_string()),
            Some(ai.chat.model.clone()),
            ConfigSource::Portal,
        );
    }
    if let Some(m) = &s.managed {
        return (
            Some(m.provider.clone()),
            Some(m.model.clone()),
            ConfigSource::Managed,
        );
    }
    (None, None, ConfigSource::None)
}

async fn report_loop(state: Arc<AppState>, cfg: CpSettings) {
    let cp = state.routes.cp().clone();
    let mut tick = tokio::time::interval(cfg.report_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A report that failed is sent again with the same id, so the control plane counts it once.
    let mut unsent: Option<UsageReport> = None;
    loop {
        tick.tick().await;
        let Some(link) = cp.link() else { continue };
        let (provider, model, config_source) = in_force(&state);
        let report = StatusReport {
            tp_version: env!("CARGO_PKG_VERSION").to_owned(),
            provider,
            model,
            config_source,
            last_test: cp.last_test(),
        };
        match link.status(&report).await {
            Ok(()) => cp.set_connected(true),
            Err(e) => {
                tracing::debug!(error = %e, "status report failed");
                if matches!(e, CpError::Unreachable { .. }) {
                    cp.set_connected(false);
                }
                continue;
            }
        }
        if unsent.is_none() {
            let entries = state.calls.usage.take_all_for(&link.tenant_id);
            if !entries.is_empty() {
                unsent = Some(UsageReport {
                    report_id: uuid::Uuid::now_v7().to_string(),
                    entries,
                });
            }
        }
        if let Some(r) = &unsent {
            match link.usage(r).await {
                Ok(_) => unsent = None,
                Err(e @ CpError::Refused { .. }) => {
                    tracing::warn!(error = %e, "usage report refused; dropping it");
                    unsent = None;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "usage report failed; will retry with the same id")
                }
            }
        }
    }
}

//! The tenant-plane side of the protocol (`atlasai_core::protocol`): enrollment, effective
//! settings with ETag and long poll, status and usage reports, and validation results.

use std::time::Duration;

use atlasai_core::TenantId;
use atlasai_core::portal::WireSecret;
use atlasai_core::protocol::{
    EnrollRequest, EnrollResponse, MAX_WAIT_SECONDS, PROTOCOL_VERSION, PendingValidation,
    SettingsResponse, StatusReport, UsageAck, UsageReport, ValidationResult,
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::ai_settings::{managed_info, unseal};
use crate::error::Error;
use crate::identity::{hash_token, random_token};
use crate::state::AppState;
use crate::store::{EnrolledCluster, FinishOutcome};

/// The most usage entries one report may carry.
const MAX_USAGE_ENTRIES: usize = 1_000;
/// How often a waiting long poll re-reads the settings version, to see changes made on other
/// control-plane replicas (changes on this replica wake it at once).
const RECHECK: Duration = Duration::from_secs(2);

/// Enrolls a tenant plane with its one-time token.
pub async fn enroll(state: &AppState, req: &EnrollRequest) -> Result<EnrollResponse, Error> {
    let credential = random_token("atl_cluster_")?;
    let cluster = state
        .store
        .enroll(
            &hash_token(req.enroll_token.expose().trim()),
            &hash_token(credential.expose_secret()),
        )
        .await?
        .ok_or_else(|| {
            Error::Unauthorized(
                "unknown or already used enrollment token: create a new cluster in the portal and use its token".to_owned(),
            )
        })?;
    tracing::info!(tenant = %cluster.tenant_id, cluster = %cluster.id, tp_version = %req.tp_version, "tenant plane enrolled");
    let tenant_id = TenantId::parse(&cluster.tenant_id)
        .map_err(|e| Error::internal("reading the cluster's tenant", e))?;
    state.changed.notify_waiters();
    Ok(EnrollResponse {
        protocol_version: PROTOCOL_VERSION,
        tenant_id,
        cluster_id: cluster.id,
        credential: WireSecret(credential),
        admin_tokens: state.keys.admin_token_key(),
    })
}

/// The ETag for a tenant's settings version as this control plane serves them: the version
/// plus a fingerprint of what this process adds (managed model, signing key), so replicas with
/// the same configuration agree and a configuration change is noticed.
fn etag(state: &AppState, version: i64, cluster: &str) -> String {
    let mut h = Sha256::new();
    h.update(cluster.as_bytes());
    h.update(state.keys.admin_token_key().public_key.as_bytes());
    if let Some(m) = managed_info(state) {
        h.update(m.provider.as_bytes());
        h.update(m.model.as_bytes());
    }
    let fp = hex::encode(&h.finalize()[..6]);
    format!("\"{version}-{fp}\"")
}

/// The effective settings for a cluster, or `None` when `if_none_match` is still current
/// after waiting up to `wait` for a change (answered as 304).
pub async fn settings(
    state: &AppState,
    cluster: &EnrolledCluster,
    if_none_match: Option<&str>,
    wait: Duration,
) -> Result<Option<SettingsResponse>, Error> {
    let wait = wait.min(Duration::from_secs(MAX_WAIT_SECONDS));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Register for the wake-up before reading, so a change in between is not missed.
        let notified = state.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let version = state.store.settings_version(&cluster.tenant_id).await?;
        let tag = etag(state, version, &cluster.id);
        if if_none_match != Some(tag.as_str()) {
            state.store.touch_cluster(&cluster.id, None).await?;
            return build(state, cluster, tag).await.map(Some);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let nap = (deadline - now).min(RECHECK);
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(nap) => {}
        }
    }
}

async fn build(
    state: &AppState,
    cluster: &EnrolledCluster,
    etag: String,
) -> Result<SettingsResponse, Error> {
    let rows = state.store.list_settings(&cluster.tenant_id).await?;
    let active = |level: &str| {
        rows.iter()
            .find(|r| r.slot == "active" && r.cluster_id == level)
    };
    let (row, scope) = match active(&cluster.id) {
        Some(r) => (Some(r), Some("cluster")),
        None => (active(""), active("").map(|_| "tenant")),
    };
    let ai = match row {
        Some(r) => Some(unseal(
            state,
            &r.tenant_id,
            &r.cluster_id,
            &r.settings_json,
            r.secrets_sealed.as_deref(),
        )?),
        None => None,
    };
    let mut pending = Vec::new();
    for v in state
        .store
        .pending_validations(&cluster.tenant_id, &cluster.id)
        .await?
    {
        pending.push(PendingValidation {
            settings: unseal(
                state,
                &cluster.tenant_id,
                &v.scope_cluster_id,
                &v.settings_json,
                v.secrets_sealed.as_deref(),
            )?,
            id: v.id,
        });
    }
    Ok(SettingsResponse {
        protocol_version: PROTOCOL_VERSION,
        etag,
        tenant_id: TenantId::parse(&cluster.tenant_id)
            .map_err(|e| Error::internal("reading the cluster's tenant", e))?,
        cluster_id: cluster.id.clone(),
        fallback_policy: ai.as_ref().map(|a| a.fallback_policy).unwrap_or_default(),
        ai,
        scope: scope.map(str::to_owned),
        managed: managed_info(state),
        pending_validations: pending,
        admin_tokens: state.keys.admin_token_key(),
    })
}

/// Records a status report.
pub async fn status(
    state: &AppState,
    cluster: &EnrolledCluster,
    report: &StatusReport,
) -> Result<(), Error> {
    let json =
        serde_json::to_string(report).map_err(|e| Error::internal("storing a status report", e))?;
    state.store.touch_cluster(&cluster.id, Some(&json)).await?;
    Ok(())
}

/// Records a usage report once per report id. A cluster reports only for its own tenant.
pub async fn usage(
    state: &AppState,
    cluster: &EnrolledCluster,
    report: &UsageReport,
) -> Result<UsageAck, Error> {
    if report.report_id.is_empty() || report.report_id.len() > 128 {
        return Err(Error::bad(
            "invalid_body",
            "report_id: use 1 to 128 characters",
        ));
    }
    if report.entries.len() > MAX_USAGE_ENTRIES {
        return Err(Error::bad(
            "invalid_body",
            format!("entries: at most {MAX_USAGE_ENTRIES} per report"),
        ));
    }
    if let Some(e) = report
        .entries
        .iter()
        .find(|e| e.tenant_id != cluster.tenant_id)
    {
        return Err(Error::Forbidden(format!(
            "entries: tenant {:?} is not this cluster's tenant; a cluster reports only its own tenant's usage",
            e.tenant_id
        )));
    }
    let recorded = state
        .store
        .record_usage(
            &cluster.tenant_id,
            &cluster.id,
            &report.report_id,
            &report.entries,
        )
        .await?;
    Ok(UsageAck { recorded })
}

/// Records a tenant plane's verdict on a pending validation.
pub async fn validation_result(
    state: &AppState,
    cluster: &EnrolledCluster,
    id: &str,
    result: &ValidationResult,
) -> Result<&'static str, Error> {
    let reason = result.error.as_deref().map(|e| {
        let e: String = e.chars().take(2_000).collect();
        format!("validated by tenant plane {}: {e}", cluster.id)
    });
    let outcome = state
        .store
        .finish_validation(
            id,
            &cluster.tenant_id,
            &cluster.id,
            result.ok,
            reason.as_deref(),
        )
        .await?;
    let state_name = match outcome {
        FinishOutcome::Activated => "active",
        FinishOutcome::KeptAsDraft => "draft",
        FinishOutcome::NotPending => return Err(Error::NotFound("pending validation")),
    };
    state.metrics.validation("tenant_plane", state_name);
    tracing::info!(tenant = %cluster.tenant_id, cluster = %cluster.id, validation = id, outcome = state_name, "tenant plane validated AI settings");
    state.changed.notify_waiters();
    Ok(state_name)
}

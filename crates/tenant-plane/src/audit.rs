//! The egress audit log: every model call, and whether its data left the customer's network
//! (a public endpoint, or the control plane for the managed model and the cloud fallback).
//! [`crate::calls::CallRecorder`] hands each record to a bounded channel; one writer task per
//! replica stores them in batches (so model calls never wait on the database) and prunes
//! records older than `TP_AUDIT_RETENTION`. `GET /api/audit/egress` reads them per tenant.

use std::sync::Arc;
use std::time::Duration;

use atlasai_core::TenantId;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::calls::{AUDIT_QUEUE, AuditRecord};
use crate::data::{Data, ServiceError};
use crate::state::AppState;
use crate::store::Page;
use crate::store::audit::AuditFilter;

/// Records written per transaction at most.
const BATCH: usize = 5_000;
/// How long the writer gathers records before writing them: one transaction per interval
/// instead of one per call keeps the cost per call to a few microseconds under load.
const GATHER: Duration = Duration::from_millis(250);
/// How often old records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the writer: from now on every model call is audited. Runs until the process ends;
/// what is still queued when it is killed is lost (the log line of each call remains).
pub fn start(state: &Arc<AppState>, data: Arc<Data>) {
    let (tx, mut rx) = mpsc::channel::<AuditRecord>(AUDIT_QUEUE);
    state.calls.audit_to(tx);
    let state = state.clone();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if rx.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
            tokio::time::sleep(GATHER).await;
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            // Keep what failed and retry with the next batch: the database may be restarting.
            // Beyond the channel's size new records are dropped (and counted) instead.
            let mut delay = Duration::from_millis(200);
            while let Err(e) = data.store.insert_audit(&batch).await {
                tracing::warn!(
                    records = batch.len(),
                    "egress audit log: cannot write, retrying: {e}"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            batch.clear();
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                let retention = state.current().config.audit_retention;
                let before = crate::store::Timestamp::now().minus(retention);
                match data.store.prune_audit(before).await {
                    Ok(n) if n > 0 => tracing::info!(
                        records = n,
                        "egress audit log: pruned records older than TP_AUDIT_RETENTION"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("egress audit log: pruning failed: {e}"),
                }
            }
        }
    });
}

/// `GET /api/audit/egress` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// At or after (RFC 3339).
    pub since: Option<String>,
    /// Before (RFC 3339).
    pub until: Option<String>,
    /// Only this feature (`rca`, `runbook`, `chat`, `search`, `correlation`, `embeddings`,
    /// `gateway`, `connection_test`).
    pub feature: Option<String>,
    /// `true`: only calls whose data left the customer's network; `false`: only those that
    /// stayed.
    pub left_network: Option<bool>,
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

const FEATURES: [&str; 8] = [
    "connection_test",
    "rca",
    "runbook",
    "chat",
    "search",
    "correlation",
    "embeddings",
    "gateway",
];

/// A tenant's audit records, newest first.
pub async fn list(
    data: &Data,
    tenant: &TenantId,
    p: AuditParams,
) -> Result<Page<AuditRecord>, ServiceError> {
    let since = crate::incidents::time_param("since", p.since.as_deref())?;
    let until = crate::incidents::time_param("until", p.until.as_deref())?;
    let feature = match p.feature.as_deref() {
        None | Some("") => None,
        Some(f) if FEATURES.contains(&f) => Some(f.to_owned()),
        Some(f) => {
            return Err(ServiceError::invalid(format!(
                "feature {f:?} is not one of {}",
                FEATURES.join(", ")
            )));
        }
    };
    let limit = match p.limit {
        None => 100,
        Some(n) if (1..=500).contains(&n) => n,
        Some(n) => {
            return Err(ServiceError::invalid(format!(
                "limit: {n} is not from 1 to 500"
            )));
        }
    };
    let cursor = crate::incidents::cursor_param(p.cursor)?;
    Ok(data
        .store
        .list_audit(
            tenant,
            &AuditFilter {
                since,
                until,
                feature,
                left_network: p.left_network,
                limit,
                cursor,
            },
        )
        .await?)
}

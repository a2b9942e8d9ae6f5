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

/// Records written per transaction at most; a batch this full is written without waiting out
/// [`GATHER`], so the records held in memory stay bounded however fast calls come (about
/// 0.5 MB at 20,000 calls/s; 5,000 per batch held over 2 MB).
const BATCH: usize = 1_000;
/// How long the writer gathers records before writing them: one transaction per interval
/// instead of one per call keeps the cost per call to a few microseconds under load.
const GATHER: Duration = Duration::from_millis(250);
/// How often a gathering writer looks whether its batch is full.
const LOOK_EVERY: Duration = Duration::from_millis(25);
/// How often old records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the writer: from now on every model call is audited. Runs until the process ends;
/// what is still queued when it is killed is lost (the log line of each call remains).
pub fn start(state: &Arc<AppState>, data: Arc<Data>) {
    let (tx, mut rx) = mpsc::channel::<AuditRecord>(AUDIT_QUEUE);
    state.calls.audit_to(tx);
    let state = state.clone();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if !gather(&mut rx, &mut batch).await {
                return;
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

/// Waits for the next record, then gathers more for up to [`GATHER`] or until [`BATCH`] are
/// in `batch`. False once the channel is closed and drained.
async fn gather(rx: &mut mpsc::Receiver<AuditRecord>, batch: &mut Vec<AuditRecord>) -> bool {
    if rx.recv_many(batch, BATCH).await == 0 {
        return false;
    }
    let until = tokio::time::Instant::now() + GATHER;
    while batch.len() < BATCH {
        let now = tokio::time::Instant::now();
        if now >= until {
            break;
        }
        tokio::time::sleep((until - now).min(LOOK_EVERY)).await;
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Destination;
    use crate::store::Timestamp;

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            id: i.to_string(),
            tenant: "acme".into(),
            ts: Timestamp(0),
            feature: "gateway".into(),
            provider: "openai".into(),
            model: "m".into(),
            endpoint_host: "h".into(),
            prompt_tokens: 1,
            completion_tokens: 2,
            latency_ms: 3,
            outcome: "ok".into(),
            destination: Destination::Private,
            left_network: false,
            cloud_fallback_model: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn full_batches_go_at_once_and_the_rest_after_the_gathering_time() {
        let (tx, mut rx) = mpsc::channel(AUDIT_QUEUE);
        for i in 0..2 * BATCH + 10 {
            tx.send(record(i)).await.unwrap();
        }
        let mut batch = Vec::new();
        let mut seen = Vec::new();
        for expected in [BATCH, BATCH] {
            let started = tokio::time::Instant::now();
            assert!(gather(&mut rx, &mut batch).await);
            assert_eq!(batch.len(), expected);
            assert!(
                started.elapsed() < GATHER,
                "a full batch waited out the gathering time"
            );
            seen.extend(batch.drain(..).map(|r| r.id));
        }
        let started = tokio::time::Instant::now();
        assert!(gather(&mut rx, &mut batch).await);
        assert_eq!(batch.len(), 10);
        assert!(
            started.elapsed() >= GATHER,
            "a small batch is written per interval"
        );
        seen.extend(batch.drain(..).map(|r| r.id));
        let ids: Vec<String> = (0..2 * BATCH + 10).map(|i| i.to_string()).collect();
        assert_eq!(seen, ids, "every record once, in order");

        // Records sent while the writer gathers join the batch; a closed channel ends it.
        tx.send(record(1)).await.unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(GATHER / 2).await;
            late.send(record(2)).await.unwrap();
        });
        assert!(gather(&mut rx, &mut batch).await);
        assert_eq!(batch.len(), 2);
        batch.clear();
        drop(tx);
        assert!(!gather(&mut rx, &mut batch).await);
        assert!(batch.is_empty());
    }
}

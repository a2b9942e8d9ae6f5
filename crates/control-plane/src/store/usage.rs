//! Usage counts reported by tenant planes: recorded once per report id, added to daily
//! counters, and written to the ledger at zero credits so the portal shows BYOC usage beside
//! managed usage.

use atlasai_core::protocol::{UsageEntry, UsageRoute};

use super::{BeginWrite, Store, StoreError, new_id, now, q, with_db};

/// Daily counts for the portal.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct UsageCountRow {
    /// The cluster.
    pub cluster_id: String,
    /// The day (Unix seconds at midnight UTC).
    pub day: i64,
    /// `byoc` or `managed`.
    pub route: String,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Calls.
    pub calls: i64,
    /// Failed calls.
    pub failed_calls: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
}

fn route_name(r: UsageRoute) -> &'static str {
    match r {
        UsageRoute::Byoc => "byoc",
        UsageRoute::Managed => "managed",
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Records one usage report from a cluster. Returns false when this report id was
    /// recorded before (a retried report), in which case nothing changes.
    pub async fn record_usage(
        &self,
        tenant: &str,
        cluster: &str,
        report_id: &str,
        entries: &[UsageEntry],
    ) -> Result<bool, StoreError> {
        let t = now();
        let day = t - t.rem_euclid(86_400);
        with_db!(self.db, |p| {
            let mut tx = p.begin_write().await.map_err(q("starting a transaction"))?;
            let fresh = sqlx::query("INSERT INTO usage_reports (cluster_id, report_id, tenant_id, received_at) VALUES ($1, $2, $3, $4) ON CONFLICT (cluster_id, report_id) DO NOTHING")
                .bind(cluster).bind(report_id).bind(tenant).bind(t)
                .execute(&mut *tx).await.map_err(q("recording a usage report"))?
                .rows_affected();
            if fresh == 0 {
                tx.rollback().await.map_err(q("rolling back"))?;
                return Ok(false);
            }
            let balance = sqlx::query_scalar::<_, i64>(
                "SELECT balance FROM credit_accounts WHERE tenant_id = $1",
            )
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q("reading a balance"))?
            .unwrap_or_default();
            for (i, e) in entries.iter().enumerate() {
                sqlx::query("INSERT INTO usage_counts (tenant_id, cluster_id, day, route, provider, model, calls, failed_calls, prompt_tokens, completion_tokens) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, cluster_id, day, route, provider, model) DO UPDATE SET calls = usage_counts.calls + excluded.calls, failed_calls = usage_counts.failed_calls + excluded.failed_calls, prompt_tokens = usage_counts.prompt_tokens + excluded.prompt_tokens, completion_tokens = usage_counts.completion_tokens + excluded.completion_tokens")
                    .bind(tenant).bind(cluster).bind(day).bind(route_name(e.route))
                    .bind(&e.provider).bind(&e.model)
                    .bind(clamp(e.calls)).bind(clamp(e.failed_calls))
                    .bind(clamp(e.prompt_tokens)).bind(clamp(e.completion_tokens))
                    .execute(&mut *tx).await.map_err(q("adding usage counts"))?;
                // Managed calls were metered when the control plane served them; only BYOC
                // usage needs a (zero-credit) ledger row for visibility.
                if e.route == UsageRoute::Byoc {
                    sqlx::query("INSERT INTO credit_ledger (id, tenant_id, kind, amount, balance_after, idempotency_key, model, prompt_tokens, completion_tokens, note, created_at) VALUES ($1, $2, 'usage', 0, $3, $4, $5, $6, $7, $8, $9)")
                        .bind(new_id()).bind(tenant).bind(balance)
                        .bind(format!("usage:{cluster}:{report_id}:{i}"))
                        .bind(&e.model)
                        .bind(clamp(e.prompt_tokens)).bind(clamp(e.completion_tokens))
                        .bind(format!("{} BYOC call(s) on {} ({} failed); no credits", e.calls, e.provider, e.failed_calls))
                        .bind(t)
                        .execute(&mut *tx).await.map_err(q("recording BYOC usage"))?;
                }
            }
            tx.commit().await.map_err(q("committing a usage report"))?;
            Ok(true)
        })
    }

    /// Usage counts of a tenant, newest day first.
    pub async fn usage_counts(&self, tenant: &str) -> Result<Vec<UsageCountRow>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, UsageCountRow>(
            "SELECT cluster_id, day, route, provider, model, calls, failed_calls, prompt_tokens, completion_tokens FROM usage_counts WHERE tenant_id = $1 ORDER BY day DESC, cluster_id, route, provider, model LIMIT 200"
        )
        .bind(tenant)
        .fetch_all(p)
        .await)
        .map_err(q("reading usage"))
    }
}

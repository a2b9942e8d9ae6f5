//! The egress audit log: one row per model call (who, which feature, which provider and
//! host, tokens, time, outcome) and where its data went. Written in batches by the audit
//! writer ([`crate::audit`]), read newest first per tenant, pruned by age.

use atlasai_core::TenantId;

use super::{
    Context, Page, Store, StoreError, Timestamp, corrupt, decode_cursor, encode_cursor, with_pool,
};
use crate::calls::{AuditRecord, Destination};

/// Rows per INSERT statement (far below both engines' bind-parameter limits).
const ROWS_PER_INSERT: usize = 500;

/// Filters for reading the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Only this feature.
    pub feature: Option<String>,
    /// Only calls whose data left (or stayed in) the customer's network.
    pub left_network: Option<bool>,
    /// Page size.
    pub limit: u32,
    /// From a previous page.
    pub cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    tenant: String,
    ts: i64,
    feature: String,
    provider: String,
    model: String,
    endpoint_host: String,
    prompt_tokens: i64,
    completion_tokens: i64,
    latency_ms: i64,
    outcome: String,
    destination: String,
    left_network: bool,
    cloud_fallback_model: Option<String>,
}

impl TryFrom<Row> for AuditRecord {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<AuditRecord, StoreError> {
        let destination = match r.destination.as_str() {
            "private" => Destination::Private,
            "public" => Destination::Public,
            "control_plane" => Destination::ControlPlane,
            other => return Err(corrupt("audit destination", other)),
        };
        Ok(AuditRecord {
            id: r.id,
            tenant: r.tenant,
            ts: Timestamp(r.ts),
            feature: r.feature,
            provider: r.provider,
            model: r.model,
            endpoint_host: r.endpoint_host,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            latency_ms: r.latency_ms,
            outcome: r.outcome,
            destination,
            left_network: r.left_network,
            cloud_fallback_model: r.cloud_fallback_model,
        })
    }
}

impl Store {
    /// Appends audit records, all or none.
    pub async fn insert_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        with_pool!(self, |pool| {
            let mut tx = pool
                .begin_with(self.begin_write())
                .await
                .ctx("starting a transaction")?;
            for chunk in records.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO egress_audit (id, tenant, ts, feature, provider, model, endpoint_host, \
                     prompt_tokens, completion_tokens, latency_ms, outcome, destination, left_network, cloud_fallback_model) ",
                );
                q.push_values(chunk, |mut row, r| {
                    row.push_bind(r.id.clone())
                        .push_bind(r.tenant.clone())
                        .push_bind(r.ts.0)
                        .push_bind(r.feature.clone())
                        .push_bind(r.provider.clone())
                        .push_bind(r.model.clone())
                        .push_bind(r.endpoint_host.clone())
                        .push_bind(r.prompt_tokens)
                        .push_bind(r.completion_tokens)
                        .push_bind(r.latency_ms)
                        .push_bind(r.outcome.clone())
                        .push_bind(r.destination.as_str())
                        .push_bind(r.left_network)
                        .push_bind(r.cloud_fallback_model.clone());
                });
                q.push(" ON CONFLICT (id) DO NOTHING");
                // Every batch size is a different statement: caching them would keep up to
                // a hundred large prepared statements per connection alive.
                q.build()
                    .persistent(false)
                    .execute(&mut *tx)
                    .await
                    .ctx("writing the egress audit log")?;
            }
            tx.commit().await.ctx("committing audit records")?;
        });
        Ok(())
    }

    /// A tenant's audit records matching the filter, newest first, one page.
    pub async fn list_audit(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
    ) -> Result<Page<AuditRecord>, StoreError> {
        let cursor = match &filter.cursor {
            Some(c) => Some(decode_cursor(c).ok_or_else(|| corrupt("cursor", "not a cursor"))?),
            None => None,
        };
        let limit = i64::from(filter.limit.max(1));
        let rows: Vec<Row> = with_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT id, tenant, ts, feature, provider, model, endpoint_host, prompt_tokens, completion_tokens, \
                 latency_ms, outcome, destination, left_network, cloud_fallback_model FROM egress_audit WHERE tenant = ",
            );
            q.push_bind(tenant.as_str());
            if let Some(t) = filter.since {
                q.push(" AND ts >= ").push_bind(t.0);
            }
            if let Some(t) = filter.until {
                q.push(" AND ts < ").push_bind(t.0);
            }
            if let Some(f) = &filter.feature {
                q.push(" AND feature = ").push_bind(f.clone());
            }
            if let Some(l) = filter.left_network {
                q.push(" AND left_network = ").push_bind(l);
            }
            if let Some((key, id)) = &cursor {
                q.push(" AND (ts, id) < (")
                    .push_bind(*key)
                    .push(", ")
                    .push_bind(id.clone())
                    .push(")");
            }
            q.push(" ORDER BY ts DESC, id DESC LIMIT ")
                .push_bind(limit + 1);
            q.build_query_as()
                .fetch_all(pool)
                .await
                .ctx("reading the egress audit log")?
        });
        let mut items = rows
            .into_iter()
            .map(AuditRecord::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|r| encode_cursor(r.ts.0, &r.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Deletes audit records older than `before`; returns how many.
    pub async fn prune_audit(&self, before: Timestamp) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            Ok(sqlx::query("DELETE FROM egress_audit WHERE ts < $1")
                .bind(before.0)
                .execute(pool)
                .await
                .ctx("pruning the egress audit log")?
                .rows_affected())
        })
    }
}

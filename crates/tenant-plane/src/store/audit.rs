//! The egress audit log: one row per model call (who, which feature, which provider and
//! host, tokens, time, outcome) and where its data went. Written in batches by the audit
//! writer ([`crate::audit`]), read newest first per tenant, pruned by age.

use atlasai_core::TenantId;

use super::{
    Context, Page, Store, StoreError, Timestamp, corrupt, decode_cursor, encode_cursor, with_pool,
};
use crate::calls::{AuditRecord, Destination};
use crate::config::DatabaseKind;

/// Rows per INSERT statement at most. A batch is written in statements of 32, 16, 8, 4, 2 and
/// 1 rows, so every connection prepares these six statements once and reuses them: parsing a
/// new multi-row statement for every batch cost SQLite more than storing the rows did.
const MAX_ROWS_PER_INSERT: usize = 32;
const COLUMNS: usize = 14;

/// The INSERT statement for `rows` rows (a power of two up to [`MAX_ROWS_PER_INSERT`]),
/// built once per engine. SQLite gets anonymous `?` placeholders: sqlx looks up the name of
/// every numbered one, and SQLite finds a name by walking the statement's whole list, so `$n`
/// cost more per batch than storing the rows.
fn insert_sql(kind: DatabaseKind, rows: usize) -> &'static str {
    static SQLITE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    static POSTGRES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let build = |numbered: bool| {
        let mut out = Vec::new();
        let mut n = 1;
        while n <= MAX_ROWS_PER_INSERT {
            let mut sql = String::from(
                "INSERT INTO egress_audit (id, tenant, ts, feature, provider, model, endpoint_host, \
                 prompt_tokens, completion_tokens, latency_ms, outcome, destination, left_network, \
                 cloud_fallback_model) VALUES ",
            );
            for row in 0..n {
                sql.push_str(if row == 0 { "(" } else { ", (" });
                for col in 0..COLUMNS {
                    if col > 0 {
                        sql.push_str(", ");
                    }
                    if numbered {
                        sql.push('$');
                        sql.push_str(&(row * COLUMNS + col + 1).to_string());
                    } else {
                        sql.push('?');
                    }
                }
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT (id) DO NOTHING");
            out.push(sql);
            n *= 2;
        }
        out
    };
    let all = match kind {
        DatabaseKind::Sqlite => SQLITE.get_or_init(|| build(false)),
        DatabaseKind::Postgres => POSTGRES.get_or_init(|| build(true)),
    };
    debug_assert!(rows.is_power_of_two() && rows <= MAX_ROWS_PER_INSERT);
    &all[rows.trailing_zeros() as usize]
}

/// Splits `records` into runs of 32, 16, 8, 4, 2 and 1 rows.
fn insert_chunks(mut records: &[AuditRecord]) -> impl Iterator<Item = &[AuditRecord]> {
    std::iter::from_fn(move || {
        if records.is_empty() {
            return None;
        }
        let n = records.len().min(MAX_ROWS_PER_INSERT);
        // The largest power of two not above n.
        let n = 1 << (usize::BITS - 1 - n.leading_zeros());
        let (chunk, rest) = records.split_at(n);
        records = rest;
        Some(chunk)
    })
}

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
            for chunk in insert_chunks(records) {
                let mut q = sqlx::query(insert_sql(self.kind(), chunk.len()));
                for r in chunk {
                    q = q
                        .bind(&r.id)
                        .bind(&r.tenant)
                        .bind(r.ts.0)
                        .bind(&r.feature)
                        .bind(&r.provider)
                        .bind(&r.model)
                        .bind(&r.endpoint_host)
                        .bind(r.prompt_tokens)
                        .bind(r.completion_tokens)
                        .bind(r.latency_ms)
                        .bind(&r.outcome)
                        .bind(r.destination.as_str())
                        .bind(r.left_network)
                        .bind(r.cloud_fallback_model.as_deref());
                }
                q.execute(&mut *tx)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<AuditRecord> {
        (0..n)
            .map(|i| AuditRecord {
                id: i.to_string(),
                tenant: "t".into(),
                ts: Timestamp(0),
                feature: "gateway".into(),
                provider: "openai".into(),
                model: "m".into(),
                endpoint_host: "h".into(),
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms: 0,
                outcome: "ok".into(),
                destination: Destination::Private,
                left_network: false,
                cloud_fallback_model: None,
            })
            .collect()
    }

    #[test]
    fn batches_split_into_the_six_statement_sizes_in_order() {
        let sizes = |n: usize| -> Vec<usize> {
            let r = records(n);
            let chunks: Vec<&[AuditRecord]> = insert_chunks(&r).collect();
            // Every record once, in order.
            let ids: Vec<&str> = chunks
                .iter()
                .flat_map(|c| c.iter().map(|r| &*r.id))
                .collect();
            assert_eq!(ids, r.iter().map(|r| &*r.id).collect::<Vec<_>>());
            chunks.iter().map(|c| c.len()).collect()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(31), [16, 8, 4, 2, 1]);
        assert_eq!(sizes(32), [32]);
        assert_eq!(sizes(100), [32, 32, 32, 4]);
        assert!(sizes(5_000).iter().all(|n| n.is_power_of_two() && *n <= 32));
    }

    #[test]
    fn each_statement_has_one_placeholder_per_value() {
        for rows in [1, 2, 4, 8, 16, 32] {
            let pg = insert_sql(DatabaseKind::Postgres, rows);
            assert_eq!(pg.matches('$').count(), rows * COLUMNS, "{rows} rows");
            assert!(pg.contains(&format!("${})", rows * COLUMNS)));
            assert!(!pg.contains(&format!("${}", rows * COLUMNS + 1)));
            let sqlite = insert_sql(DatabaseKind::Sqlite, rows);
            assert_eq!(sqlite.matches('?').count(), rows * COLUMNS, "{rows} rows");
            assert!(!sqlite.contains('$'));
            for sql in [pg, sqlite] {
                assert!(sql.ends_with("ON CONFLICT (id) DO NOTHING"));
            }
        }
    }
}

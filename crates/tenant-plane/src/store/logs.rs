//! Log lines: bulk ingest in one transaction, listing, and recurring-message summaries.

use atlasai_core::TenantId;

use super::{
    Context, LogLevel, LogLine, LogPattern, NEXT_SEQ, Page, Store, StoreError, Timestamp, corrupt,
    decode_cursor, encode_cursor, json_or_corrupt, new_id, parse_vocab, with_pool,
};

/// Rows per INSERT statement: 10 columns each stays far below SQLite's 32766 and
/// PostgreSQL's 65535 bind parameters.
const ROWS_PER_INSERT: usize = 1000;

/// A validated log line ready to store.
#[derive(Debug, Clone)]
pub struct NewLogLine {
    /// The incident, if the line was ingested for one.
    pub incident_id: Option<String>,
    /// The service.
    pub service: String,
    /// When it was logged.
    pub ts: Timestamp,
    /// Level.
    pub level: LogLevel,
    /// The message.
    pub message: String,
    /// Structured fields as JSON text.
    pub attrs: Option<String>,
    /// The message's shape (see `ingest::template`).
    pub template: i64,
}

/// What an ingest stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSummary {
    /// Lines stored.
    pub accepted: usize,
    /// The batch number they were written under.
    pub seq: i64,
    /// The first line's id.
    pub first_id: Option<String>,
    /// The last line's id.
    pub last_id: Option<String>,
}

/// Filters for listing log lines, oldest first.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Lines ingested for this incident.
    pub incident_id: Option<String>,
    /// Lines of this service.
    pub service: Option<String>,
    /// Only these levels (empty: all).
    pub levels: Vec<LogLevel>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Page size.
    pub limit: u32,
    /// From a previous page.
    pub cursor: Option<String>,
}

/// Which lines a pattern summary covers.
#[derive(Debug, Clone)]
pub enum LogScope {
    /// Lines ingested for an incident.
    Incident(String),
    /// Lines of a service.
    Service(String),
}

macro_rules! log_columns {
    () => {
        "id, incident_id, service, ts, level, message, attrs"
    };
}

#[derive(sqlx::FromRow)]
struct LogRow {
    id: String,
    incident_id: Option<String>,
    service: String,
    ts: i64,
    level: String,
    message: String,
    attrs: Option<String>,
}

impl TryFrom<LogRow> for LogLine {
    type Error = StoreError;
    fn try_from(r: LogRow) -> Result<LogLine, StoreError> {
        Ok(LogLine {
            id: r.id,
            incident_id: r.incident_id,
            service: r.service,
            ts: Timestamp(r.ts),
            level: parse_vocab("log level", &r.level)?,
            message: r.message,
            attrs: r
                .attrs
                .as_deref()
                .map(|a| json_or_corrupt("log attributes", a))
                .transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct FeedLogRow {
    id: String,
    incident_id: Option<String>,
    service: String,
    ts: i64,
    level: String,
    message: String,
    template: i64,
    seq: i64,
}

/// A log line as the search index and the embedder see it.
#[derive(Debug, Clone)]
pub struct FeedLogLine {
    /// Id.
    pub id: String,
    /// Incident.
    pub incident_id: Option<String>,
    /// Service.
    pub service: String,
    /// Time.
    pub ts: Timestamp,
    /// Level.
    pub level: LogLevel,
    /// Message.
    pub message: String,
    /// Shape.
    pub template: i64,
    /// Batch.
    pub seq: i64,
}

/// A distinct message shape, for the embedder.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRow {
    /// The shape's id.
    pub template: i64,
    /// The first line seen with it.
    pub example: String,
    /// Its service.
    pub service: String,
    /// Its level.
    pub level: String,
    /// The batch that introduced it.
    pub seq: i64,
}

impl Store {
    /// Stores a batch of log lines atomically: all of them under one batch number, or none.
    pub async fn ingest_logs(
        &self,
        tenant: &TenantId,
        lines: &[NewLogLine],
    ) -> Result<IngestSummary, StoreError> {
        let ids: Vec<String> = lines.iter().map(|_| new_id()).collect();
        // One example per new shape, first seen wins (the database keeps the first too).
        let mut templates: Vec<&NewLogLine> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for l in lines {
            if seen.insert(l.template) {
                templates.push(l);
            }
        }
        let seq = with_pool!(self, |pool| {
            let mut tx = pool
                .begin_with(self.begin_write())
                .await
                .ctx("starting a transaction")?;
            let seq: i64 = sqlx::query_scalar(NEXT_SEQ)
                .bind(tenant.as_str())
                .fetch_one(&mut *tx)
                .await
                .ctx("numbering the write")?;
            for (chunk, chunk_ids) in lines
                .chunks(ROWS_PER_INSERT)
                .zip(ids.chunks(ROWS_PER_INSERT))
            {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO log_lines (tenant, id, incident_id, service, ts, level, message, attrs, template, seq) ",
                );
                q.push_values(chunk.iter().zip(chunk_ids), |mut row, (l, id)| {
                    row.push_bind(tenant.as_str())
                        .push_bind(id.clone())
                        .push_bind(l.incident_id.clone())
                        .push_bind(l.service.clone())
                        .push_bind(l.ts.0)
                        .push_bind(l.level.as_str())
                        .push_bind(l.message.clone())
                        .push_bind(l.attrs.clone())
                        .push_bind(l.template)
                        .push_bind(seq);
                });
                // Batch sizes vary, and each size is a different statement: not worth caching.
                q.build()
                    .persistent(false)
                    .execute(&mut *tx)
                    .await
                    .ctx("inserting log lines")?;
            }
            for chunk in templates.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO log_templates (tenant, template, example, service, level, seq) ",
                );
                q.push_values(chunk, |mut row, l| {
                    row.push_bind(tenant.as_str())
                        .push_bind(l.template)
                        .push_bind(l.message.clone())
                        .push_bind(l.service.clone())
                        .push_bind(l.level.as_str())
                        .push_bind(seq);
                });
                q.push(" ON CONFLICT (tenant, template) DO NOTHING");
                q.build()
                    .persistent(false)
                    .execute(&mut *tx)
                    .await
                    .ctx("recording log message shapes")?;
            }
            tx.commit().await.ctx("committing log lines")?;
            seq
        });
        Ok(IngestSummary {
            accepted: lines.len(),
            seq,
            first_id: ids.first().cloned(),
            last_id: ids.last().cloned(),
        })
    }

    /// Log lines matching the filter, oldest first, one page.
    pub async fn list_logs(
        &self,
        tenant: &TenantId,
        filter: &LogFilter,
    ) -> Result<Page<LogLine>, StoreError> {
        let cursor = match &filter.cursor {
            Some(c) => Some(decode_cursor(c).ok_or_else(|| corrupt("cursor", "not a cursor"))?),
            None => None,
        };
        let limit = i64::from(filter.limit.max(1));
        let rows: Vec<LogRow> = with_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                log_columns!(),
                " FROM log_lines WHERE tenant = "
            ));
            q.push_bind(tenant.as_str());
            if let Some(i) = &filter.incident_id {
                q.push(" AND incident_id = ").push_bind(i.clone());
            }
            if let Some(s) = &filter.service {
                q.push(" AND service = ").push_bind(s.clone());
            }
            if !filter.levels.is_empty() {
                q.push(" AND level IN (");
                let mut list = q.separated(", ");
                for l in &filter.levels {
                    list.push_bind(l.as_str());
                }
                q.push(")");
            }
            if let Some(t) = filter.since {
                q.push(" AND ts >= ").push_bind(t.0);
            }
            if let Some(t) = filter.until {
                q.push(" AND ts < ").push_bind(t.0);
            }
            if let Some((key, id)) = &cursor {
                q.push(" AND (ts, id) > (")
                    .push_bind(*key)
                    .push(", ")
                    .push_bind(id.clone())
                    .push(")");
            }
            q.push(" ORDER BY ts, id LIMIT ").push_bind(limit + 1);
            q.build_query_as()
                .fetch_all(pool)
                .await
                .ctx("listing log lines")?
        });
        let mut items = rows
            .into_iter()
            .map(LogLine::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|l| encode_cursor(l.ts.0, &l.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Log lines by id (missing ids are skipped), in the order asked.
    pub async fn get_log_lines(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<LogLine>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: Vec<LogLine> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let rows: Vec<LogRow> = with_pool!(self, |pool| {
                let mut q = sqlx::QueryBuilder::new(concat!(
                    "SELECT ",
                    log_columns!(),
                    " FROM log_lines WHERE tenant = "
                ));
                q.push_bind(tenant.as_str()).push(" AND id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id.clone());
                }
                q.push(")");
                q.build_query_as()
                    .fetch_all(pool)
                    .await
                    .ctx("reading log lines")?
            });
            for r in rows {
                found.push(LogLine::try_from(r)?);
            }
        }
        let position: std::collections::HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        found.sort_by_key(|l| position.get(l.id.as_str()).copied().unwrap_or(usize::MAX));
        Ok(found)
    }

    /// The most frequent message shapes among lines of an incident or service at these levels
    /// (all levels when empty), with a count, first and last time, and the latest example.
    /// This is how a person reads thousands of log lines: "this error, 5,312 times since
    /// 14:02".
    pub async fn log_patterns(
        &self,
        tenant: &TenantId,
        scope: &LogScope,
        levels: &[LogLevel],
        limit: u32,
    ) -> Result<Vec<LogPattern>, StoreError> {
        let groups: Vec<(i64, i64, i64, i64, String)> = with_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT template, COUNT(*) AS n, MIN(ts), MAX(ts), MAX(id) FROM log_lines WHERE tenant = ",
            );
            q.push_bind(tenant.as_str());
            match scope {
                LogScope::Incident(id) => q.push(" AND incident_id = ").push_bind(id.clone()),
                LogScope::Service(s) => q.push(" AND service = ").push_bind(s.clone()),
            };
            if !levels.is_empty() {
                q.push(" AND level IN (");
                let mut list = q.separated(", ");
                for l in levels {
                    list.push_bind(l.as_str());
                }
                q.push(")");
            }
            q.push(" GROUP BY template ORDER BY n DESC, template LIMIT ")
                .push_bind(i64::from(limit.max(1)));
            q.build_query_as()
                .fetch_all(pool)
                .await
                .ctx("summarising log patterns")?
        });
        let ids: Vec<String> = groups.iter().map(|g| g.4.clone()).collect();
        let examples = self.get_log_lines(tenant, &ids).await?;
        let by_id: std::collections::HashMap<&str, &LogLine> =
            examples.iter().map(|l| (l.id.as_str(), l)).collect();
        Ok(groups
            .iter()
            .filter_map(|(template, count, first, last, id)| {
                by_id.get(id.as_str()).map(|example| LogPattern {
                    template: *template,
                    example: (*example).clone(),
                    count: *count,
                    first_ts: Timestamp(*first),
                    last_ts: Timestamp(*last),
                })
            })
            .collect())
    }

    /// The most recent lines with a given shape that match the filter's incident, service,
    /// levels and time range (cursor and limit ignored): how a vector hit on a message shape
    /// becomes log lines.
    pub async fn latest_lines_with_template(
        &self,
        tenant: &TenantId,
        template: i64,
        filter: &LogFilter,
        limit: u32,
    ) -> Result<Vec<LogLine>, StoreError> {
        let rows: Vec<LogRow> = with_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                log_columns!(),
                " FROM log_lines WHERE tenant = "
            ));
            q.push_bind(tenant.as_str())
                .push(" AND template = ")
                .push_bind(template);
            if let Some(i) = &filter.incident_id {
                q.push(" AND incident_id = ").push_bind(i.clone());
            }
            if let Some(s) = &filter.service {
                q.push(" AND service = ").push_bind(s.clone());
            }
            if !filter.levels.is_empty() {
                q.push(" AND level IN (");
                let mut list = q.separated(", ");
                for l in &filter.levels {
                    list.push_bind(l.as_str());
                }
                q.push(")");
            }
            if let Some(t) = filter.since {
                q.push(" AND ts >= ").push_bind(t.0);
            }
            if let Some(t) = filter.until {
                q.push(" AND ts < ").push_bind(t.0);
            }
            q.push(" ORDER BY ts DESC, id DESC LIMIT ")
                .push_bind(i64::from(limit.max(1)));
            q.build_query_as()
                .fetch_all(pool)
                .await
                .ctx("reading lines of a message shape")?
        });
        rows.into_iter().map(LogLine::try_from).collect()
    }

    /// Log lines written after a position up to batch `upto`, in (batch, id) order, one page:
    /// what the search index tails. The position is a whole batch (`after_id` `None`: every
    /// line of batch `after_seq` is already seen) or a line within one (the last line seen).
    pub async fn log_lines_after(
        &self,
        tenant: &TenantId,
        after_seq: i64,
        after_id: Option<&str>,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<FeedLogLine>, StoreError> {
        let rows: Vec<FeedLogRow> = with_pool!(self, |pool| {
            match after_id {
                None => sqlx::query_as(
                    "SELECT id, incident_id, service, ts, level, message, template, seq FROM log_lines \
                     WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq, id LIMIT $4",
                )
                .bind(tenant.as_str())
                .bind(after_seq)
                .bind(upto)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await,
                Some(id) => sqlx::query_as(
                    "SELECT id, incident_id, service, ts, level, message, template, seq FROM log_lines \
                     WHERE tenant = $1 AND (seq, id) > ($2, $3) AND seq <= $4 ORDER BY seq, id LIMIT $5",
                )
                .bind(tenant.as_str())
                .bind(after_seq)
                .bind(id)
                .bind(upto)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await,
            }
            .ctx("reading new log lines")?
        });
        rows.into_iter()
            .map(|r| {
                Ok(FeedLogLine {
                    level: parse_vocab("log level", &r.level)?,
                    id: r.id,
                    incident_id: r.incident_id,
                    service: r.service,
                    ts: Timestamp(r.ts),
                    message: r.message,
                    template: r.template,
                    seq: r.seq,
                })
            })
            .collect()
    }

    /// How many log lines were written in batches `(after, upto]` (for progress logs).
    pub async fn count_log_lines_between(
        &self,
        tenant: &TenantId,
        after: i64,
        upto: i64,
    ) -> Result<i64, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM log_lines WHERE tenant = $1 AND seq > $2 AND seq <= $3",
            )
            .bind(tenant.as_str())
            .bind(after)
            .bind(upto)
            .fetch_one(pool)
            .await
            .ctx("counting log lines")
        })
    }

    /// Message shapes first seen after `(after_seq, after_template)` up to batch `upto`
    /// (`after_template` `i64::MAX` skips the whole batch `after_seq`).
    pub async fn templates_after(
        &self,
        tenant: &TenantId,
        after_seq: i64,
        after_template: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<TemplateRow>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT template, example, service, level, seq FROM log_templates \
                 WHERE tenant = $1 AND (seq, template) > ($2, $3) AND seq <= $4 \
                 ORDER BY seq, template LIMIT $5",
            )
            .bind(tenant.as_str())
            .bind(after_seq)
            .bind(after_template)
            .bind(upto)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .ctx("reading new message shapes")
        })
    }
}

//! Runbooks: markdown documents that retrieval draws on.

use atlasai_core::TenantId;

use super::{
    Context, NEXT_SEQ, Page, Runbook, RunbookSummary, Store, StoreError, Timestamp, corrupt,
    decode_cursor, encode_cursor, json_or_corrupt, new_id, with_pool,
};

/// A validated new runbook.
#[derive(Debug, Clone)]
pub struct NewRunbook {
    /// Title.
    pub title: String,
    /// Markdown.
    pub content: String,
    /// Services it applies to.
    pub services: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct RunbookRow {
    id: String,
    title: String,
    content: String,
    services: String,
    tags: String,
    created_at: i64,
    updated_at: i64,
    seq: i64,
}

impl RunbookRow {
    fn into_runbook(self) -> Result<(Runbook, i64), StoreError> {
        Ok((
            Runbook {
                id: self.id,
                title: self.title,
                content: self.content,
                services: json_or_corrupt("runbook services", &self.services)?,
                tags: json_or_corrupt("runbook tags", &self.tags)?,
                created_at: Timestamp(self.created_at),
                updated_at: Timestamp(self.updated_at),
            },
            self.seq,
        ))
    }
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: String,
    title: String,
    services: String,
    tags: String,
    content_chars: i64,
    created_at: i64,
    updated_at: i64,
}

/// A LIKE pattern matching a JSON array (as stored) that contains `service`. Service names
/// are JSON-encoded first (as they are stored), then LIKE's wildcards are escaped.
fn contains_pattern(service: &str) -> String {
    let json = serde_json::to_string(service).unwrap_or_default();
    let mut escaped = String::with_capacity(json.len() + 2);
    escaped.push('%');
    for c in json.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

impl Store {
    /// Stores a runbook.
    pub async fn create_runbook(
        &self,
        tenant: &TenantId,
        new: NewRunbook,
    ) -> Result<Runbook, StoreError> {
        let now = Timestamp::now();
        let runbook = Runbook {
            id: new_id(),
            title: new.title,
            content: new.content,
            services: new.services,
            tags: new.tags,
            created_at: now,
            updated_at: now,
        };
        let services = serde_json::to_string(&runbook.services).unwrap_or_else(|_| "[]".into());
        let tags = serde_json::to_string(&runbook.tags).unwrap_or_else(|_| "[]".into());
        with_pool!(self, |pool| {
            let mut tx = pool
                .begin_with(self.begin_write())
                .await
                .ctx("starting a transaction")?;
            let seq: i64 = sqlx::query_scalar(NEXT_SEQ)
                .bind(tenant.as_str())
                .fetch_one(&mut *tx)
                .await
                .ctx("numbering the write")?;
            sqlx::query(
                "INSERT INTO runbooks (tenant, id, title, content, services, tags, created_at, updated_at, seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(tenant.as_str())
            .bind(&runbook.id)
            .bind(&runbook.title)
            .bind(&runbook.content)
            .bind(&services)
            .bind(&tags)
            .bind(now.0)
            .bind(now.0)
            .bind(seq)
            .execute(&mut *tx)
            .await
            .ctx("inserting a runbook")?;
            tx.commit().await.ctx("committing a runbook")?;
        });
        Ok(runbook)
    }

    /// One runbook.
    pub async fn get_runbook(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Runbook>, StoreError> {
        let row: Option<RunbookRow> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, title, content, services, tags, created_at, updated_at, seq \
                 FROM runbooks WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await
            .ctx("reading a runbook")?
        });
        row.map(|r| r.into_runbook().map(|(r, _)| r)).transpose()
    }

    /// Runbooks, newest first, optionally only those for a service, one page.
    pub async fn list_runbooks(
        &self,
        tenant: &TenantId,
        service: Option<&str>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<RunbookSummary>, StoreError> {
        let cursor = cursor
            .map(|c| decode_cursor(c).ok_or_else(|| corrupt("cursor", "not a cursor")))
            .transpose()?;
        let limit = i64::from(limit.max(1));
        let rows: Vec<SummaryRow> = with_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT id, title, services, tags, CAST(LENGTH(content) AS BIGINT) AS content_chars, created_at, updated_at \
                 FROM runbooks WHERE tenant = ",
            );
            q.push_bind(tenant.as_str());
            if let Some(s) = service {
                q.push(" AND services LIKE ")
                    .push_bind(contains_pattern(s))
                    .push(" ESCAPE '\\'");
            }
            if let Some((key, id)) = &cursor {
                q.push(" AND (created_at, id) < (")
                    .push_bind(*key)
                    .push(", ")
                    .push_bind(id.clone())
                    .push(")");
            }
            q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                .push_bind(limit + 1);
            q.build_query_as()
                .fetch_all(pool)
                .await
                .ctx("listing runbooks")?
        });
        let mut items = rows
            .into_iter()
            .map(|r| {
                Ok(RunbookSummary {
                    id: r.id,
                    title: r.title,
                    services: json_or_corrupt("runbook services", &r.services)?,
                    tags: json_or_corrupt("runbook tags", &r.tags)?,
                    content_chars: r.content_chars,
                    created_at: Timestamp(r.created_at),
                    updated_at: Timestamp(r.updated_at),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|r| encode_cursor(r.created_at.0, &r.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Runbooks written in batches `(after, upto]`, for the search index and the embedder.
    pub async fn runbooks_between(
        &self,
        tenant: &TenantId,
        after: i64,
        upto: i64,
    ) -> Result<Vec<(Runbook, i64)>, StoreError> {
        let rows: Vec<RunbookRow> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, title, content, services, tags, created_at, updated_at, seq \
                 FROM runbooks WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq, id",
            )
            .bind(tenant.as_str())
            .bind(after)
            .bind(upto)
            .fetch_all(pool)
            .await
            .ctx("reading changed runbooks")?
        });
        rows.into_iter().map(RunbookRow::into_runbook).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("payments"), "%\"payments\"%");
        assert_eq!(contains_pattern("a_b%c"), "%\"a\\_b\\%c\"%");
    }
}

//! The runbook service: markdown documents that search and the AI features draw on.

use atlasai_core::TenantId;
use serde::Deserialize;

use crate::data::{Data, ServiceError};
use crate::incidents::{cursor_param, page_size};
use crate::store::runbooks::NewRunbook;
use crate::store::{Page, Runbook, RunbookSummary};
use crate::validate;

/// The largest runbook, in bytes of markdown.
pub const MAX_CONTENT: usize = 1024 * 1024;
/// Most services or tags on one runbook.
const MAX_NAMES: usize = 32;

/// `POST /api/runbooks`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRunbook {
    /// Its title.
    pub title: String,
    /// The runbook, in markdown.
    pub content: String,
    /// Services it applies to (none: any).
    #[serde(default)]
    pub services: Vec<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `GET /api/runbooks` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListRunbooks {
    /// Only runbooks that name this service.
    pub service: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn names(field: &str, values: &[String]) -> Result<Vec<String>, ServiceError> {
    if values.len() > MAX_NAMES {
        return Err(ServiceError::invalid(format!(
            "{field}: {} entries; the limit is {MAX_NAMES}",
            values.len()
        )));
    }
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let n = validate::name(&format!("{field}[{i}]"), v).map_err(ServiceError::Invalid)?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Stores a runbook.
pub async fn create(
    data: &Data,
    tenant: &TenantId,
    req: CreateRunbook,
) -> Result<Runbook, ServiceError> {
    let new = NewRunbook {
        title: validate::text("title", &req.title, true, crate::incidents::MAX_TITLE)
            .map_err(ServiceError::Invalid)?,
        content: validate::text("content", &req.content, true, MAX_CONTENT)
            .map_err(ServiceError::Invalid)?,
        services: names("services", &req.services)?,
        tags: names("tags", &req.tags)?,
    };
    let runbook = data.store.create_runbook(tenant, new).await?;
    data.notify_written();
    Ok(runbook)
}

/// One runbook.
pub async fn get(data: &Data, tenant: &TenantId, id: &str) -> Result<Runbook, ServiceError> {
    let id = validate::id("runbook id", id).map_err(ServiceError::Invalid)?;
    data.store
        .get_runbook(tenant, &id)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "runbook",
            id,
        })
}

/// Runbooks, newest first.
pub async fn list(
    data: &Data,
    tenant: &TenantId,
    q: ListRunbooks,
) -> Result<Page<RunbookSummary>, ServiceError> {
    let service = q
        .service
        .as_deref()
        .map(|s| validate::name("service", s).map_err(ServiceError::Invalid))
        .transpose()?;
    let cursor = cursor_param(q.cursor)?;
    Ok(data
        .store
        .list_runbooks(
            tenant,
            service.as_deref(),
            page_size(q.limit)?,
            cursor.as_deref(),
        )
        .await?)
}

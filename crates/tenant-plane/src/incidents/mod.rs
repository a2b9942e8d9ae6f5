//! The incident service: validates requests and calls the store for incidents and what is
//! attached to them (alerts, change records). Alert correlation lives in [`correlation`].

pub mod correlation;

use atlasai_core::TenantId;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::data::{Data, ServiceError};
use crate::store::incidents::{IncidentFilter, NewAlert, NewChange, NewIncident};
use crate::store::{
    Alert, Change, ChangeKind, Incident, IncidentDetail, IncidentStatus, Page, Severity, Timestamp,
};
use crate::validate;

/// The longest title or summary, in bytes.
pub const MAX_TITLE: usize = 512;
/// The longest description or change details, in bytes.
pub const MAX_TEXT: usize = 256 * 1024;
/// Most labels on one alert.
const MAX_LABELS: usize = 64;
/// Default and largest page sizes.
pub const DEFAULT_PAGE: u32 = 50;
/// See [`DEFAULT_PAGE`].
pub const MAX_PAGE: u32 = 500;

/// `POST /api/incidents`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIncident {
    /// One line.
    pub title: String,
    /// What is known so far.
    #[serde(default)]
    pub description: String,
    /// The affected service.
    pub service: String,
    /// `critical`, `high`, `medium`, `low` or `info`.
    pub severity: Severity,
    /// Initial status; `open` when absent.
    #[serde(default)]
    pub status: Option<IncidentStatus>,
    /// When it started; now when absent.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// An id in another system (PagerDuty, Jira).
    #[serde(default)]
    pub external_id: Option<String>,
}

/// `PATCH /api/incidents/{id}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIncident {
    /// The new status.
    pub status: IncidentStatus,
}

/// An alert, for `POST /api/incidents/{id}/alerts` and `POST /api/alerts`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAlert {
    /// The alert's name or summary (`HighErrorRate`, "p99 latency above 2s").
    pub title: String,
    /// Details.
    #[serde(default)]
    pub description: String,
    /// The service it fired for.
    pub service: String,
    /// `critical`, `high`, `medium` (or `warning`), `low`, `info`.
    pub severity: Severity,
    /// What sent it (`prometheus`, `datadog`, ...).
    #[serde(default)]
    pub source: Option<String>,
    /// The sender's deduplication key (Alertmanager's fingerprint).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Labels.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub labels: Map<String, Value>,
    /// When it fired; now when absent.
    #[serde(default)]
    pub fired_at: Option<Timestamp>,
}

/// `POST /api/incidents/{id}/changes`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChange {
    /// `deploy`, `config`, `feature_flag`, `infrastructure`, `rollback` or `other`.
    pub kind: ChangeKind,
    /// The service changed.
    pub service: String,
    /// One line ("payments-api v2.14.0 rolled out").
    pub summary: String,
    /// The diff, release notes or new values.
    #[serde(default)]
    pub details: String,
    /// Who made it.
    #[serde(default)]
    pub author: Option<String>,
    /// A version, commit, pull request or ticket.
    #[serde(default)]
    pub reference: Option<String>,
    /// When it happened; now when absent.
    #[serde(default)]
    pub occurred_at: Option<Timestamp>,
}

fn invalid(e: String) -> ServiceError {
    ServiceError::Invalid(e)
}

fn optional_text(
    field: &str,
    v: Option<String>,
    max: usize,
) -> Result<Option<String>, ServiceError> {
    match v {
        None => Ok(None),
        Some(s) => {
            let t = validate::text(field, &s, false, max).map_err(invalid)?;
            Ok((!t.is_empty()).then_some(t))
        }
    }
}

/// Checks an incident id from a path.
pub fn incident_id(id: &str) -> Result<String, ServiceError> {
    validate::id("incident id", id).map_err(invalid)
}

pub(crate) fn new_alert(a: CreateAlert) -> Result<NewAlert, ServiceError> {
    if a.labels.len() > MAX_LABELS {
        return Err(invalid(format!(
            "labels: {} labels; the limit is {MAX_LABELS}",
            a.labels.len()
        )));
    }
    Ok(NewAlert {
        title: validate::text("title", &a.title, true, MAX_TITLE).map_err(invalid)?,
        description: validate::text("description", &a.description, false, MAX_TEXT)
            .map_err(invalid)?,
        service: validate::name("service", &a.service).map_err(invalid)?,
        severity: a.severity,
        source: optional_text("source", a.source, 128)?,
        fingerprint: optional_text("fingerprint", a.fingerprint, 256)?,
        labels: a.labels,
        fired_at: a.fired_at,
    })
}

/// Records a new incident.
pub async fn create(
    data: &Data,
    tenant: &TenantId,
    req: CreateIncident,
) -> Result<Incident, ServiceError> {
    let new = NewIncident {
        external_id: optional_text("external_id", req.external_id, 256)?,
        title: validate::text("title", &req.title, true, MAX_TITLE).map_err(invalid)?,
        description: validate::text("description", &req.description, false, MAX_TEXT)
            .map_err(invalid)?,
        service: validate::name("service", &req.service).map_err(invalid)?,
        severity: req.severity,
        status: req.status.unwrap_or(IncidentStatus::Open),
        started_at: req.started_at,
    };
    let incident = data.store.create_incident(tenant, new).await?;
    data.notify_written();
    Ok(incident)
}

/// One incident with its evidence counts.
pub async fn get(data: &Data, tenant: &TenantId, id: &str) -> Result<IncidentDetail, ServiceError> {
    let id = incident_id(id)?;
    data.store
        .incident_detail(tenant, &id)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "incident",
            id,
        })
}

/// The raw filters of `GET /api/incidents`, as given in the query string.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListIncidents {
    /// `open`, `acknowledged`, `resolved` or `closed`.
    pub status: Option<String>,
    /// Only this service.
    pub service: Option<String>,
    /// Only this severity.
    pub severity: Option<String>,
    /// Started at or after (RFC 3339).
    pub since: Option<String>,
    /// Started before (RFC 3339).
    pub until: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Parses an optional RFC 3339 query parameter.
pub fn time_param(field: &str, v: Option<&str>) -> Result<Option<Timestamp>, ServiceError> {
    v.map(|t| Timestamp::parse(t).map_err(|e| invalid(format!("{field}: {e}"))))
        .transpose()
}

/// Checks a page size.
pub fn page_size(limit: Option<u32>) -> Result<u32, ServiceError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(invalid(format!("limit: {n} is not from 1 to {MAX_PAGE}"))),
    }
}

/// Checks a cursor parameter's shape (its meaning is the store's).
pub fn cursor_param(c: Option<String>) -> Result<Option<String>, ServiceError> {
    match c {
        Some(c) if crate::store::decode_cursor_ok(&c) => Ok(Some(c)),
        Some(_) => Err(ServiceError::invalid(
            "cursor: not a cursor; pass next_cursor from the previous page unchanged",
        )),
        None => Ok(None),
    }
}

/// Incidents, newest first.
pub async fn list(
    data: &Data,
    tenant: &TenantId,
    q: ListIncidents,
) -> Result<Page<Incident>, ServiceError> {
    let filter = IncidentFilter {
        status: q
            .status
            .as_deref()
            .map(|s| s.parse().map_err(|e| invalid(format!("status: {e}"))))
            .transpose()?,
        service: q
            .service
            .as_deref()
            .map(|s| validate::name("service", s).map_err(invalid))
            .transpose()?,
        severity: q
            .severity
            .as_deref()
            .map(|s| s.parse().map_err(|e| invalid(format!("severity: {e}"))))
            .transpose()?,
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        limit: page_size(q.limit)?,
        cursor: cursor_param(q.cursor)?,
    };
    Ok(data.store.list_incidents(tenant, &filter).await?)
}

/// Changes an incident's status.
pub async fn update(
    data: &Data,
    tenant: &TenantId,
    id: &str,
    req: UpdateIncident,
) -> Result<Incident, ServiceError> {
    let id = incident_id(id)?;
    let incident = data
        .store
        .update_incident_status(tenant, &id, req.status)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "incident",
            id,
        })?;
    data.notify_written();
    Ok(incident)
}

/// Attaches an alert to a given incident (no correlation).
pub async fn add_alert(
    data: &Data,
    tenant: &TenantId,
    id: &str,
    req: CreateAlert,
) -> Result<Alert, ServiceError> {
    let id = incident_id(id)?;
    let alert = data
        .store
        .add_alert(tenant, &id, new_alert(req)?, None)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "incident",
            id,
        })?;
    data.notify_written();
    Ok(alert)
}

async fn require_incident(
    data: &Data,
    tenant: &TenantId,
    id: &str,
) -> Result<String, ServiceError> {
    let id = incident_id(id)?;
    match data.store.get_incident(tenant, &id).await? {
        Some(_) => Ok(id),
        None => Err(ServiceError::NotFound {
            what: "incident",
            id,
        }),
    }
}

/// Page parameters of attached-record lists.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An incident's alerts, oldest first.
pub async fn list_alerts(
    data: &Data,
    tenant: &TenantId,
    id: &str,
    p: PageParams,
) -> Result<Page<Alert>, ServiceError> {
    let id = require_incident(data, tenant, id).await?;
    let cursor = cursor_param(p.cursor)?;
    Ok(data
        .store
        .list_alerts(tenant, &id, page_size(p.limit)?, cursor.as_deref())
        .await?)
}

/// Attaches a change record.
pub async fn add_change(
    data: &Data,
    tenant: &TenantId,
    id: &str,
    req: CreateChange,
) -> Result<Change, ServiceError> {
    let id = incident_id(id)?;
    let new = NewChange {
        kind: req.kind,
        service: validate::name("service", &req.service).map_err(invalid)?,
        summary: validate::text("summary", &req.summary, true, MAX_TITLE).map_err(invalid)?,
        details: validate::text("details", &req.details, false, MAX_TEXT).map_err(invalid)?,
        author: optional_text("author", req.author, 256)?,
        reference: optional_text("reference", req.reference, 512)?,
        occurred_at: req.occurred_at,
    };
    let change = data
        .store
        .add_change(tenant, &id, new)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "incident",
            id,
        })?;
    data.notify_written();
    Ok(change)
}

/// An incident's changes, oldest first.
pub async fn list_changes(
    data: &Data,
    tenant: &TenantId,
    id: &str,
    p: PageParams,
) -> Result<Page<Change>, ServiceError> {
    let id = require_incident(data, tenant, id).await?;
    let cursor = cursor_param(p.cursor)?;
    Ok(data
        .store
        .list_changes(tenant, &id, page_size(p.limit)?, cursor.as_deref())
        .await?)
}

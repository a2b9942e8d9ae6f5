//! Incidents and what is attached to them: alerts and change records.

use atlasai_core::TenantId;
use serde_json::{Map, Value};

use super::{Alert, Change, ChangeKind, EvidenceCounts, Incident, IncidentDetail, Page, Severity};
use super::{
    Context, IncidentStatus, NEXT_SEQ, Store, StoreError, Timestamp, corrupt, decode_cursor,
    encode_cursor, json_or_corrupt, new_id, parse_vocab, with_pool,
};

/// A validated new incident.
#[derive(Debug, Clone)]
pub struct NewIncident {
    /// An id from another system.
    pub external_id: Option<String>,
    /// One line.
    pub title: String,
    /// Details.
    pub description: String,
    /// The affected service.
    pub service: String,
    /// How bad.
    pub severity: Severity,
    /// Initial status (usually open).
    pub status: IncidentStatus,
    /// When it started; now when absent.
    pub started_at: Option<Timestamp>,
}

/// A validated new alert.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// Name or summary.
    pub title: String,
    /// Details.
    pub description: String,
    /// The service.
    pub service: String,
    /// How bad.
    pub severity: Severity,
    /// The sender.
    pub source: Option<String>,
    /// The sender's deduplication key.
    pub fingerprint: Option<String>,
    /// Labels.
    pub labels: Map<String, Value>,
    /// When it fired; now when absent.
    pub fired_at: Option<Timestamp>,
}

/// A validated new change record.
#[derive(Debug, Clone)]
pub struct NewChange {
    /// What kind.
    pub kind: ChangeKind,
    /// The service changed.
    pub service: String,
    /// One line.
    pub summary: String,
    /// Diff or notes.
    pub details: String,
    /// Who.
    pub author: Option<String>,
    /// Version, commit, PR.
    pub reference: Option<String>,
    /// When; now when absent.
    pub occurred_at: Option<Timestamp>,
}

/// Filters for listing incidents. Newest first (by `started_at`).
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// Only this status.
    pub status: Option<IncidentStatus>,
    /// Only this service.
    pub service: Option<String>,
    /// Only this severity.
    pub severity: Option<Severity>,
    /// Started at or after.
    pub since: Option<Timestamp>,
    /// Started before.
    pub until: Option<Timestamp>,
    /// Page size.
    pub limit: u32,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// An incident with the text of what is attached to it, as the search index stores it.
#[derive(Debug, Clone)]
pub struct IncidentDoc {
    /// The incident.
    pub incident: Incident,
    /// Titles of its alerts (most recent first, at most 50).
    pub alert_titles: Vec<String>,
    /// Summaries of its changes (most recent first, at most 50).
    pub change_summaries: Vec<String>,
    /// The batch that last touched it.
    pub seq: i64,
}

macro_rules! incident_columns {
    () => {
        "id, external_id, title, description, service, severity, status, started_at, created_at, updated_at, resolved_at, last_alert_at, seq"
    };
}

#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: String,
    external_id: Option<String>,
    title: String,
    description: String,
    service: String,
    severity: String,
    status: String,
    started_at: i64,
    created_at: i64,
    updated_at: i64,
    resolved_at: Option<i64>,
    last_alert_at: Option<i64>,
    seq: i64,
}

impl IncidentRow {
    fn into_incident(self) -> Result<(Incident, i64), StoreError> {
        Ok((
            Incident {
                id: self.id,
                external_id: self.external_id,
                title: self.title,
                description: self.description,
                service: self.service,
                severity: parse_vocab("incident severity", &self.severity)?,
                status: parse_vocab("incident status", &self.status)?,
                started_at: Timestamp(self.started_at),
                created_at: Timestamp(self.created_at),
                updated_at: Timestamp(self.updated_at),
                resolved_at: self.resolved_at.map(Timestamp),
                last_alert_at: self.last_alert_at.map(Timestamp),
            },
            self.seq,
        ))
    }
}

macro_rules! alert_columns {
    () => {
        "id, incident_id, title, description, service, severity, source, fingerprint, labels, fired_at, created_at, correlation"
    };
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    incident_id: String,
    title: String,
    description: String,
    service: String,
    severity: String,
    source: Option<String>,
    fingerprint: Option<String>,
    labels: String,
    fired_at: i64,
    created_at: i64,
    correlation: Option<String>,
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;
    fn try_from(r: AlertRow) -> Result<Alert, StoreError> {
        Ok(Alert {
            id: r.id,
            incident_id: r.incident_id,
            title: r.title,
            description: r.description,
            service: r.service,
            severity: parse_vocab("alert severity", &r.severity)?,
            source: r.source,
            fingerprint: r.fingerprint,
            labels: json_or_corrupt("alert labels", &r.labels)?,
            fired_at: Timestamp(r.fired_at),
            created_at: Timestamp(r.created_at),
            correlation: r
                .correlation
                .as_deref()
                .map(|c| json_or_corrupt("alert correlation", c))
                .transpose()?,
        })
    }
}

macro_rules! change_columns {
    () => {
        "id, incident_id, kind, service, summary, details, author, reference, occurred_at, created_at"
    };
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    id: String,
    incident_id: String,
    kind: String,
    service: String,
    summary: String,
    details: String,
    author: Option<String>,
    reference: Option<String>,
    occurred_at: i64,
    created_at: i64,
}

impl TryFrom<ChangeRow> for Change {
    type Error = StoreError;
    fn try_from(r: ChangeRow) -> Result<Change, StoreError> {
        Ok(Change {
            id: r.id,
            incident_id: r.incident_id,
            kind: parse_vocab("change kind", &r.kind)?,
            service: r.service,
            summary: r.summary,
            details: r.details,
            author: r.author,
            reference: r.reference,
            occurred_at: Timestamp(r.occurred_at),
            created_at: Timestamp(r.created_at),
        })
    }
}

fn incident_from_new(new: NewIncident, now: Timestamp) -> Incident {
    Incident {
        id: new_id(),
        external_id: new.external_id,
        title: new.title,
        description: new.description,
        service: new.service,
        severity: new.severity,
        status: new.status,
        started_at: new.started_at.unwrap_or(now),
        created_at: now,
        updated_at: now,
        resolved_at: (!new.status.is_open()).then_some(now),
        last_alert_at: None,
    }
}

fn alert_from_new(
    new: NewAlert,
    incident_id: &str,
    correlation: Option<Value>,
    now: Timestamp,
) -> Alert {
    Alert {
        id: new_id(),
        incident_id: incident_id.to_owned(),
        title: new.title,
        description: new.description,
        service: new.service,
        severity: new.severity,
        source: new.source,
        fingerprint: new.fingerprint,
        labels: new.labels,
        fired_at: new.fired_at.unwrap_or(now),
        created_at: now,
        correlation,
    }
}

/// Inserts an incident inside an open transaction.
macro_rules! insert_incident {
    ($tx:expr, $tenant:expr, $i:expr, $seq:expr) => {
        sqlx::query(concat!(
            "INSERT INTO incidents (tenant, ",
            incident_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind($tenant)
        .bind(&$i.id)
        .bind(&$i.external_id)
        .bind(&$i.title)
        .bind(&$i.description)
        .bind(&$i.service)
        .bind($i.severity.as_str())
        .bind($i.status.as_str())
        .bind($i.started_at.0)
        .bind($i.created_at.0)
        .bind($i.updated_at.0)
        .bind($i.resolved_at.map(|t| t.0))
        .bind($i.last_alert_at.map(|t| t.0))
        .bind($seq)
        .execute(&mut *$tx)
        .await
        .ctx("inserting an incident")
    };
}

/// Inserts an alert and moves its incident's `last_alert_at`, inside an open transaction.
macro_rules! insert_alert {
    ($tx:expr, $tenant:expr, $a:expr, $seq:expr) => {{
        let labels = serde_json::to_string(&$a.labels).unwrap_or_else(|_| "{}".to_owned());
        let correlation = $a.correlation.as_ref().map(|c| c.to_string());
        sqlx::query(concat!(
            "INSERT INTO alerts (tenant, ",
            alert_columns!(),
            ", seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind($tenant)
        .bind(&$a.id)
        .bind(&$a.incident_id)
        .bind(&$a.title)
        .bind(&$a.description)
        .bind(&$a.service)
        .bind($a.severity.as_str())
        .bind(&$a.source)
        .bind(&$a.fingerprint)
        .bind(labels)
        .bind($a.fired_at.0)
        .bind($a.created_at.0)
        .bind(correlation)
        .bind($seq)
        .execute(&mut *$tx)
        .await
        .ctx("inserting an alert")?;
        sqlx::query(
            "UPDATE incidents SET \
               last_alert_at = CASE WHEN last_alert_at IS NULL OR last_alert_at < $3 THEN $3 ELSE last_alert_at END, \
               updated_at = $4, seq = $5 \
             WHERE tenant = $1 AND id = $2",
        )
        .bind($tenant)
        .bind(&$a.incident_id)
        .bind($a.fired_at.0)
        .bind($a.created_at.0)
        .bind($seq)
        .execute(&mut *$tx)
        .await
        .ctx("updating the incident's last alert time")
    }};
}

impl Store {
    /// Records a new incident.
    pub async fn create_incident(
        &self,
        tenant: &TenantId,
        new: NewIncident,
    ) -> Result<Incident, StoreError> {
        let incident = incident_from_new(new, Timestamp::now());
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
            insert_incident!(tx, tenant.as_str(), incident, seq)?;
            tx.commit().await.ctx("committing an incident")?;
        });
        Ok(incident)
    }

    /// One incident.
    pub async fn get_incident(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Incident>, StoreError> {
        let row: Option<IncidentRow> = with_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                incident_columns!(),
                " FROM incidents WHERE tenant = $1 AND id = $2"
            ))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await
            .ctx("reading an incident")?
        });
        row.map(|r| r.into_incident().map(|(i, _)| i)).transpose()
    }

    /// One incident with the number of alerts, changes and log lines attached to it.
    pub async fn incident_detail(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<IncidentDetail>, StoreError> {
        let Some(incident) = self.get_incident(tenant, id).await? else {
            return Ok(None);
        };
        let counts = with_pool!(self, |pool| {
            let alerts: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM alerts WHERE tenant = $1 AND incident_id = $2",
            )
            .bind(tenant.as_str())
            .bind(id)
            .fetch_one(pool)
            .await
            .ctx("counting alerts")?;
            let changes: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM changes WHERE tenant = $1 AND incident_id = $2",
            )
            .bind(tenant.as_str())
            .bind(id)
            .fetch_one(pool)
            .await
            .ctx("counting changes")?;
            let log_lines: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM log_lines WHERE tenant = $1 AND incident_id = $2",
            )
            .bind(tenant.as_str())
            .bind(id)
            .fetch_one(pool)
            .await
            .ctx("counting log lines")?;
            EvidenceCounts {
                alerts,
                changes,
                log_lines,
            }
        });
        Ok(Some(IncidentDetail { incident, counts }))
    }

    /// Incidents matching the filter, newest first, one page.
    pub async fn list_incidents(
        &self,
        tenant: &TenantId,
        filter: &IncidentFilter,
    ) -> Result<Page<Incident>, StoreError> {
        let cursor = match &filter.cursor {
            Some(c) => Some(decode_cursor(c).ok_or_else(|| corrupt("cursor", "not a cursor"))?),
            None => None,
        };
        let limit = i64::from(filter.limit.max(1));
        let rows: Vec<IncidentRow> = with_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                incident_columns!(),
                " FROM incidents WHERE tenant = "
            ));
            q.push_bind(tenant.as_str());
            if let Some(s) = filter.status {
                q.push(" AND status = ").push_bind(s.as_str());
            }
            if let Some(s) = &filter.service {
                q.push(" AND service = ").push_bind(s.clone());
            }
            if let Some(s) = filter.severity {
                q.push(" AND severity = ").push_bind(s.as_str());
            }
            if let Some(t) = filter.since {
                q.push(" AND started_at >= ").push_bind(t.0);
            }
            if let Some(t) = filter.until {
                q.push(" AND started_at < ").push_bind(t.0);
            }
            if let Some((key, id)) = &cursor {
                q.push(" AND (started_at, id) < (")
                    .push_bind(*key)
                    .push(", ")
                    .push_bind(id.clone())
                    .push(")");
            }
            q.push(" ORDER BY started_at DESC, id DESC LIMIT ")
                .push_bind(limit + 1);
            q.build_query_as()
                .fetch_all(pool)
                .await
                .ctx("listing incidents")?
        });
        let mut items = rows
            .into_iter()
            .map(|r| r.into_incident().map(|(i, _)| i))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|i| encode_cursor(i.started_at.0, &i.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Changes an incident's status; `None` when there is no such incident.
    pub async fn update_incident_status(
        &self,
        tenant: &TenantId,
        id: &str,
        status: IncidentStatus,
    ) -> Result<Option<Incident>, StoreError> {
        let now = Timestamp::now();
        let updated = with_pool!(self, |pool| {
            let mut tx = pool
                .begin_with(self.begin_write())
                .await
                .ctx("starting a transaction")?;
            let seq: i64 = sqlx::query_scalar(NEXT_SEQ)
                .bind(tenant.as_str())
                .fetch_one(&mut *tx)
                .await
                .ctx("numbering the write")?;
            // Resolving stamps resolved_at once; reopening clears it.
            let n = sqlx::query(
                "UPDATE incidents SET status = $3, updated_at = $4, seq = $5, \
                   resolved_at = CASE WHEN $6 THEN NULL ELSE COALESCE(resolved_at, $4) END \
                 WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(id)
            .bind(status.as_str())
            .bind(now.0)
            .bind(seq)
            .bind(status.is_open())
            .execute(&mut *tx)
            .await
            .ctx("updating an incident's status")?
            .rows_affected();
            if n == 0 {
                // Nothing changed: leave no empty batch behind.
                tx.rollback().await.ctx("rolling back")?;
            } else {
                tx.commit().await.ctx("committing a status change")?;
            }
            n
        });
        if updated == 0 {
            return Ok(None);
        }
        self.get_incident(tenant, id).await
    }

    /// Attaches an alert to an incident; `None` when there is no such incident.
    pub async fn add_alert(
        &self,
        tenant: &TenantId,
        incident_id: &str,
        new: NewAlert,
        correlation: Option<Value>,
    ) -> Result<Option<Alert>, StoreError> {
        let alert = alert_from_new(new, incident_id, correlation, Timestamp::now());
        let found = with_pool!(self, |pool| {
            let mut tx = pool
                .begin_with(self.begin_write())
                .await
                .ctx("starting a transaction")?;
            let seq: i64 = sqlx::query_scalar(NEXT_SEQ)
                .bind(tenant.as_str())
                .fetch_one(&mut *tx)
                .await
                .ctx("numbering the write")?;
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM incidents WHERE tenant = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(incident_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .ctx("checking the incident exists")?;
            if exists.is_some() {
                insert_alert!(tx, tenant.as_str(), alert, seq)?;
                tx.commit().await.ctx("committing an alert")?;
                true
            } else {
                tx.rollback().await.ctx("rolling back")?;
                false
            }
        });
        Ok(found.then_some(alert))
    }

    /// Opens a new incident for an alert, both in one transaction.
    pub async fn create_incident_with_alert(
        &self,
        tenant: &TenantId,
        new_incident: NewIncident,
        new_alert: NewAlert,
        correlation: Option<Value>,
    ) -> Result<(Incident, Alert), StoreError> {
        let now = Timestamp::now();
        let mut incident = incident_from_new(new_incident, now);
        let alert = alert_from_new(new_alert, &incident.id, correlation, now);
        incident.last_alert_at = Some(alert.fired_at);
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
            insert_incident!(tx, tenant.as_str(), incident, seq)?;
            insert_alert!(tx, tenant.as_str(), alert, seq)?;
            tx.commit()
                .await
                .ctx("committing an incident and its alert")?;
        });
        Ok((incident, alert))
    }

    /// An incident's alerts, oldest first.
    pub async fn list_alerts(
        &self,
        tenant: &TenantId,
        incident_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Alert>, StoreError> {
        let cursor = cursor
            .map(|c| decode_cursor(c).ok_or_else(|| corrupt("cursor", "not a cursor")))
            .transpose()?;
        let (after_key, after_id) = cursor.unwrap_or((i64::MIN, String::new()));
        let limit = i64::from(limit.max(1));
        let rows: Vec<AlertRow> = with_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                alert_columns!(),
                " FROM alerts WHERE tenant = $1 AND incident_id = $2 AND (fired_at, id) > ($3, $4) \
                 ORDER BY fired_at, id LIMIT $5"
            ))
            .bind(tenant.as_str())
            .bind(incident_id)
            .bind(after_key)
            .bind(after_id)
            .bind(limit + 1)
            .fetch_all(pool)
            .await
            .ctx("listing alerts")?
        });
        let mut items = rows
            .into_iter()
            .map(Alert::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|a| encode_cursor(a.fired_at.0, &a.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Attaches a change record to an incident; `None` when there is no such incident.
    pub async fn add_change(
        &self,
        tenant: &TenantId,
        incident_id: &str,
        new: NewChange,
    ) -> Result<Option<Change>, StoreError> {
        let now = Timestamp::now();
        let change = Change {
            id: new_id(),
            incident_id: incident_id.to_owned(),
            kind: new.kind,
            service: new.service,
            summary: new.summary,
            details: new.details,
            author: new.author,
            reference: new.reference,
            occurred_at: new.occurred_at.unwrap_or(now),
            created_at: now,
        };
        let found = with_pool!(self, |pool| {
            let mut tx = pool
                .begin_with(self.begin_write())
                .await
                .ctx("starting a transaction")?;
            let seq: i64 = sqlx::query_scalar(NEXT_SEQ)
                .bind(tenant.as_str())
                .fetch_one(&mut *tx)
                .await
                .ctx("numbering the write")?;
            // Touching the incident re-indexes it, so its document includes the change.
            let touched = sqlx::query(
                "UPDATE incidents SET updated_at = $3, seq = $4 WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(incident_id)
            .bind(now.0)
            .bind(seq)
            .execute(&mut *tx)
            .await
            .ctx("touching the incident")?
            .rows_affected();
            if touched == 0 {
                tx.rollback().await.ctx("rolling back")?;
                false
            } else {
                sqlx::query(concat!(
                    "INSERT INTO changes (tenant, ",
                    change_columns!(),
                    ", seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ))
                .bind(tenant.as_str())
                .bind(&change.id)
                .bind(&change.incident_id)
                .bind(change.kind.as_str())
                .bind(&change.service)
                .bind(&change.summary)
                .bind(&change.details)
                .bind(&change.author)
                .bind(&change.reference)
                .bind(change.occurred_at.0)
                .bind(change.created_at.0)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .ctx("inserting a change")?;
                tx.commit().await.ctx("committing a change")?;
                true
            }
        });
        Ok(found.then_some(change))
    }

    /// An incident's changes, oldest first.
    pub async fn list_changes(
        &self,
        tenant: &TenantId,
        incident_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Change>, StoreError> {
        let cursor = cursor
            .map(|c| decode_cursor(c).ok_or_else(|| corrupt("cursor", "not a cursor")))
            .transpose()?;
        let (after_key, after_id) = cursor.unwrap_or((i64::MIN, String::new()));
        let limit = i64::from(limit.max(1));
        let rows: Vec<ChangeRow> = with_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                change_columns!(),
                " FROM changes WHERE tenant = $1 AND incident_id = $2 AND (occurred_at, id) > ($3, $4) \
                 ORDER BY occurred_at, id LIMIT $5"
            ))
            .bind(tenant.as_str())
            .bind(incident_id)
            .bind(after_key)
            .bind(after_id)
            .bind(limit + 1)
            .fetch_all(pool)
            .await
            .ctx("listing changes")?
        });
        let mut items = rows
            .into_iter()
            .map(Change::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|c| encode_cursor(c.occurred_at.0, &c.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Open (or acknowledged) incidents of a service that were active (started, created or
    /// alerted) between `from` and `to`, most recently active first: the candidates a new
    /// alert may join.
    pub async fn correlation_candidates(
        &self,
        tenant: &TenantId,
        service: &str,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        let rows: Vec<IncidentRow> = with_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                incident_columns!(),
                " FROM incidents WHERE tenant = $1 AND service = $2 \
                   AND status IN ('open', 'acknowledged') \
                   AND (COALESCE(last_alert_at, started_at) BETWEEN $3 AND $4 \
                        OR created_at BETWEEN $3 AND $4) \
                 ORDER BY COALESCE(last_alert_at, started_at) DESC, id DESC LIMIT $5"
            ))
            .bind(tenant.as_str())
            .bind(service)
            .bind(from.0)
            .bind(to.0)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .ctx("finding open incidents")?
        });
        rows.into_iter()
            .map(|r| r.into_incident().map(|(i, _)| i))
            .collect()
    }

    /// The open incident that most recently received an alert with this fingerprint.
    pub async fn open_incident_with_fingerprint(
        &self,
        tenant: &TenantId,
        fingerprint: &str,
    ) -> Result<Option<Incident>, StoreError> {
        let row: Option<IncidentRow> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT i.id, i.external_id, i.title, i.description, i.service, i.severity, i.status, \
                        i.started_at, i.created_at, i.updated_at, i.resolved_at, i.last_alert_at, i.seq \
                 FROM alerts a JOIN incidents i ON i.tenant = a.tenant AND i.id = a.incident_id \
                 WHERE a.tenant = $1 AND a.fingerprint = $2 AND i.status IN ('open', 'acknowledged') \
                 ORDER BY a.fired_at DESC LIMIT 1",
            )
            .bind(tenant.as_str())
            .bind(fingerprint)
            .fetch_optional(pool)
            .await
            .ctx("finding an incident by alert fingerprint")?
        });
        row.map(|r| r.into_incident().map(|(i, _)| i)).transpose()
    }

    /// The titles of the most recent alerts of each incident (at most `per_incident` each).
    pub async fn recent_alert_titles(
        &self,
        tenant: &TenantId,
        incident_ids: &[String],
        per_incident: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if incident_ids.is_empty() {
            return Ok(Vec::new());
        }
        with_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT incident_id, title FROM (SELECT incident_id, title, \
                   ROW_NUMBER() OVER (PARTITION BY incident_id ORDER BY fired_at DESC, id DESC) AS n \
                 FROM alerts WHERE tenant = ",
            );
            q.push_bind(tenant.as_str());
            q.push(" AND incident_id IN (");
            let mut list = q.separated(", ");
            for id in incident_ids {
                list.push_bind(id.clone());
            }
            q.push(")) ranked WHERE n <= ")
                .push_bind(i64::from(per_incident));
            q.build_query_as::<(String, String)>()
                .fetch_all(pool)
                .await
                .ctx("reading recent alert titles")
        })
    }

    /// Incidents written in batches `(after, upto]`, with their alert titles and change
    /// summaries, for the search index.
    pub async fn incident_docs_between(
        &self,
        tenant: &TenantId,
        after: i64,
        upto: i64,
    ) -> Result<Vec<IncidentDoc>, StoreError> {
        let rows: Vec<IncidentRow> = with_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                incident_columns!(),
                " FROM incidents WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq, id"
            ))
            .bind(tenant.as_str())
            .bind(after)
            .bind(upto)
            .fetch_all(pool)
            .await
            .ctx("reading changed incidents")?
        });
        let mut docs = Vec::with_capacity(rows.len());
        for row in rows {
            let (incident, seq) = row.into_incident()?;
            let (alert_titles, change_summaries) = with_pool!(self, |pool| {
                let alerts: Vec<String> = sqlx::query_scalar(
                    "SELECT title FROM alerts WHERE tenant = $1 AND incident_id = $2 \
                     ORDER BY fired_at DESC LIMIT 50",
                )
                .bind(tenant.as_str())
                .bind(&incident.id)
                .fetch_all(pool)
                .await
                .ctx("reading alert titles")?;
                let changes: Vec<String> = sqlx::query_scalar(
                    "SELECT summary FROM changes WHERE tenant = $1 AND incident_id = $2 \
                     ORDER BY occurred_at DESC LIMIT 50",
                )
                .bind(tenant.as_str())
                .bind(&incident.id)
                .fetch_all(pool)
                .await
                .ctx("reading change summaries")?;
                (alerts, changes)
            });
            docs.push(IncidentDoc {
                incident,
                alert_titles,
                change_summaries,
                seq,
            });
        }
        Ok(docs)
    }
}

//! The read-only tools the AI features offer a model: look at an incident, search its logs,
//! search runbook knowledge, find similar past incidents. Every tool reads this tenant's data
//! only, answers with compact JSON (long texts clipped), and reports a bad argument as a
//! result the model can act on rather than as a failure of the request.

use std::sync::Arc;

use atlasai_core::{TenantId, ToolDefinition};
use serde::Deserialize;
use serde_json::{Value, json};

use super::tools::ToolBox;
use crate::data::{Data, ServiceError};
use crate::search::index::{DocKind, Filters};
use crate::search::{self, ModeRequest, SearchRequest, check_severity};
use crate::state::AppState;
use crate::store::logs::LogScope;
use crate::store::{Incident, IncidentDetail, LogLevel, Timestamp};
use crate::validate;

/// The tool names, as the model sees them.
pub const GET_INCIDENT: &str = "get_incident";
/// See [`GET_INCIDENT`].
pub const SEARCH_LOGS: &str = "search_logs";
/// See [`GET_INCIDENT`].
pub const SEARCH_RUNBOOKS: &str = "search_runbooks";
/// See [`GET_INCIDENT`].
pub const FIND_SIMILAR_INCIDENTS: &str = "find_similar_incidents";

/// Characters of one log message, alert or change text a tool shows.
const CLIP: usize = 400;
/// Characters of a runbook's markdown a tool shows.
const RUNBOOK_CLIP: usize = 2_000;

/// Cuts text to `max` characters, marking the cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}

/// The incident as a short block of text for prompts.
pub fn incident_header(detail: &IncidentDetail) -> String {
    let i = &detail.incident;
    let mut out = format!(
        "Incident {id}: {title}\nService: {service}\nSeverity: {severity}\nStatus: {status}\nStarted: {started}\n",
        id = i.id,
        title = i.title,
        service = i.service,
        severity = i.severity.as_str(),
        status = i.status.as_str(),
        started = i.started_at.to_rfc3339(),
    );
    if let Some(r) = i.resolved_at {
        out.push_str(&format!("Resolved: {}\n", r.to_rfc3339()));
    }
    out.push_str(&format!(
        "Attached: {} alerts, {} changes, {} log lines\n",
        detail.counts.alerts, detail.counts.changes, detail.counts.log_lines
    ));
    if !i.description.trim().is_empty() {
        out.push_str(&format!(
            "Description: {}\n",
            clip(i.description.trim(), 1_500)
        ));
    }
    out
}

/// The read-only tools, bound to one tenant and optionally to the incident under discussion
/// (the default for tools that take an incident).
#[derive(Debug, Clone)]
pub struct IncidentTools {
    state: Arc<AppState>,
    data: Arc<Data>,
    tenant: TenantId,
    incident: Option<String>,
}

impl IncidentTools {
    /// Tools for this tenant, about `incident` when given.
    pub fn new(
        state: Arc<AppState>,
        data: Arc<Data>,
        tenant: TenantId,
        incident: Option<String>,
    ) -> Self {
        IncidentTools {
            state,
            data,
            tenant,
            incident,
        }
    }

    fn incident_arg(&self, given: Option<&str>) -> Result<String, String> {
        match given.map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => validate::id("incident_id", id),
            None => self.incident.clone().ok_or_else(|| {
                "incident_id is required: no incident is under discussion".to_owned()
            }),
        }
    }

    async fn get_incident(&self, args: Value) -> Result<Value, String> {
        #[derive(Deserialize)]
        struct Args {
            incident_id: Option<String>,
        }
        let a: Args = parse(args)?;
        let id = self.incident_arg(a.incident_id.as_deref())?;
        let store = &self.data.store;
        let detail = store
            .incident_detail(&self.tenant, &id)
            .await
            .map_err(internal)?
            .ok_or_else(|| format!("incident {id} not found"))?;
        let alerts = store
            .list_alerts(&self.tenant, &id, 20, None)
            .await
            .map_err(internal)?;
        let changes = store
            .list_changes(&self.tenant, &id, 20, None)
            .await
            .map_err(internal)?;
        let patterns = store
            .log_patterns(
                &self.tenant,
                &LogScope::Incident(id.clone()),
                &[LogLevel::Fatal, LogLevel::Error, LogLevel::Warn],
                10,
            )
            .await
            .map_err(internal)?;
        Ok(json!({
            "incident": incident_json(&detail.incident),
            "counts": detail.counts,
            "alerts": alerts.items.iter().map(|a| json!({
                "id": a.id, "title": a.title, "service": a.service,
                "severity": a.severity.as_str(), "fired_at": a.fired_at.to_rfc3339(),
                "description": clip(&a.description, CLIP),
            })).collect::<Vec<_>>(),
            "changes": changes.items.iter().map(|c| json!({
                "id": c.id, "kind": c.kind.as_str(), "service": c.service,
                "summary": c.summary, "occurred_at": c.occurred_at.to_rfc3339(),
                "details": clip(&c.details, CLIP),
            })).collect::<Vec<_>>(),
            "top_error_patterns": patterns.iter().map(|p| json!({
                "count": p.count, "level": p.example.level.as_str(),
                "service": p.example.service, "first": p.first_ts.to_rfc3339(),
                "last": p.last_ts.to_rfc3339(), "example": clip(&p.example.message, CLIP),
            })).collect::<Vec<_>>(),
        }))
    }

    async fn search_logs(&self, args: Value) -> Result<Value, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Args {
            query: String,
            incident_id: Option<String>,
            service: Option<String>,
            level: Option<String>,
            since: Option<String>,
            limit: Option<usize>,
        }
        let a: Args = parse(args)?;
        // The incident under discussion by default; "all" searches every log line.
        let incident_id = match a.incident_id.as_deref().map(str::trim) {
            Some("all") => None,
            Some(id) if !id.is_empty() => Some(validate::id("incident_id", id)?),
            _ => self.incident.clone(),
        };
        let services = match a.service.as_deref() {
            Some(s) if !s.trim().is_empty() => vec![validate::name("service", s)?],
            _ => Vec::new(),
        };
        let severities = match a.level.as_deref() {
            Some(l) if !l.trim().is_empty() => vec![check_severity(l)?],
            _ => Vec::new(),
        };
        let since = match a.since.as_deref() {
            Some(t) if !t.trim().is_empty() => Some(Timestamp::parse(t.trim())?),
            _ => None,
        };
        let found = search::search(
            &self.state,
            &self.data,
            &self.tenant,
            &SearchRequest {
                q: search::plain_query(&a.query),
                filters: Filters {
                    kind: Some(DocKind::Log),
                    services,
                    severities,
                    since,
                    until: None,
                    incident_id,
                },
                limit: a.limit.unwrap_or(15).clamp(1, 30),
                mode: ModeRequest::Auto,
            },
        )
        .await
        .map_err(service_err)?;
        Ok(json!({
            "lines": found.results.iter().map(|r| json!({
                "id": r.id, "ts": r.ts.to_rfc3339(), "service": r.service,
                "level": r.severity, "message": clip(&r.snippet, CLIP),
            })).collect::<Vec<_>>(),
            "mode": found.mode,
        }))
    }

    async fn search_runbooks(&self, args: Value) -> Result<Value, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Args {
            query: String,
            service: Option<String>,
        }
        let a: Args = parse(args)?;
        let service = match a.service.as_deref() {
            Some(s) if !s.trim().is_empty() => Some(validate::name("service", s)?),
            _ => None,
        };
        let found = search::search_runbooks(
            &self.state,
            &self.data,
            &self.tenant,
            &a.query,
            service.as_deref(),
            3,
        )
        .await
        .map_err(service_err)?;
        let mut out = Vec::new();
        for r in &found.results {
            if let Some(rb) = self
                .data
                .store
                .get_runbook(&self.tenant, &r.id)
                .await
                .map_err(internal)?
            {
                out.push(json!({
                    "id": rb.id, "title": rb.title, "services": rb.services,
                    "content": clip(&rb.content, RUNBOOK_CLIP),
                }));
            }
        }
        Ok(json!({ "runbooks": out }))
    }

    async fn find_similar_incidents(&self, args: Value) -> Result<Value, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Args {
            incident_id: Option<String>,
        }
        let a: Args = parse(args)?;
        let id = self.incident_arg(a.incident_id.as_deref())?;
        let found = search::similar_incidents(&self.state, &self.data, &self.tenant, &id, 5)
            .await
            .map_err(service_err)?;
        let mut out = Vec::new();
        for r in &found.results {
            if let Some(i) = self
                .data
                .store
                .get_incident(&self.tenant, &r.id)
                .await
                .map_err(internal)?
            {
                out.push(incident_json(&i));
            }
        }
        Ok(json!({ "incidents": out }))
    }
}

fn incident_json(i: &Incident) -> Value {
    json!({
        "id": i.id, "title": i.title, "service": i.service,
        "severity": i.severity.as_str(), "status": i.status.as_str(),
        "started_at": i.started_at.to_rfc3339(),
        "resolved_at": i.resolved_at.map(Timestamp::to_rfc3339),
        "description": clip(&i.description, CLIP * 2),
    })
}

fn parse<T: serde::de::DeserializeOwned>(args: Value) -> Result<T, String> {
    serde_json::from_value(args).map_err(|e| format!("invalid arguments: {e}"))
}

fn internal(e: crate::store::StoreError) -> String {
    tracing::warn!(error = %e, "a tool could not read the store");
    "the data store could not be read; try again".to_owned()
}

fn service_err(e: ServiceError) -> String {
    match e {
        ServiceError::Invalid(m) => m,
        ServiceError::NotFound { what, id } => format!("{what} {id} not found"),
        other => {
            tracing::warn!(error = %other, "a tool failed");
            "the search failed; try again".to_owned()
        }
    }
}

#[async_trait::async_trait]
impl ToolBox for IncidentTools {
    fn definitions(&self) -> Vec<ToolDefinition> {
        let incident_note = if self.incident.is_some() {
            " Defaults to the incident under discussion."
        } else {
            ""
        };
        vec![
            ToolDefinition {
                name: GET_INCIDENT.to_owned(),
                description: Some(format!(
                    "Get an incident: its details, alerts, changes (deploys, configuration) and its most frequent error log patterns.{incident_note}"
                )),
                parameters: json!({
                    "type": "object",
                    "properties": {"incident_id": {"type": "string", "description": "the incident id (a UUID)"}},
                }),
                strict: None,
            },
            ToolDefinition {
                name: SEARCH_LOGS.to_owned(),
                description: Some(format!(
                    "Search log lines by keywords, best matches first.{incident_note} Use incident_id \"all\" to search every service's logs."
                )),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "keywords, such as an error message"},
                        "incident_id": {"type": "string"},
                        "service": {"type": "string"},
                        "level": {"type": "string", "enum": ["trace", "debug", "info", "warn", "error", "fatal"]},
                        "since": {"type": "string", "description": "RFC 3339 time"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 30},
                    },
                    "required": ["query"],
                }),
                strict: None,
            },
            ToolDefinition {
                name: SEARCH_RUNBOOKS.to_owned(),
                description: Some(
                    "Search the team's runbook knowledge (markdown procedures), best matches first."
                        .to_owned(),
                ),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "query": {"type": "string"},
                        "service": {"type": "string"},
                    },
                    "required": ["query"],
                }),
                strict: None,
            },
            ToolDefinition {
                name: FIND_SIMILAR_INCIDENTS.to_owned(),
                description: Some(format!(
                    "Find past incidents similar to an incident, with how they were resolved.{incident_note}"
                )),
                parameters: json!({
                    "type": "object",
                    "properties": {"incident_id": {"type": "string"}},
                }),
                strict: None,
            },
        ]
    }

    async fn call(&self, name: &str, arguments: Value) -> Result<Value, String> {
        match name {
            GET_INCIDENT => self.get_incident(arguments).await,
            SEARCH_LOGS => self.search_logs(arguments).await,
            SEARCH_RUNBOOKS => self.search_runbooks(arguments).await,
            FIND_SIMILAR_INCIDENTS => self.find_similar_incidents(arguments).await,
            other => Err(format!(
                "no tool named {other:?}; the tools are {GET_INCIDENT}, {SEARCH_LOGS}, {SEARCH_RUNBOOKS}, {FIND_SIMILAR_INCIDENTS}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_marks_the_cut() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc…");
    }
}

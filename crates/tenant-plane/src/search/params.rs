//! The query parameters of `GET /api/search`, checked into a [`SearchRequest`].

use serde::Deserialize;

use super::index::{DocKind, Filters};
use super::{DEFAULT_LIMIT, MAX_LIMIT, ModeRequest, SearchRequest, check_severity};
use crate::data::ServiceError;
use crate::incidents::time_param;
use crate::validate;

/// `GET /api/search` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// The query: words, `"exact phrases"`, `+required`, `-excluded`. Empty or absent lists
    /// the newest matching documents.
    pub q: Option<String>,
    /// `incident`, `log` or `runbook` (default: all three).
    pub kind: Option<String>,
    /// Results, 1 to 100 (default 10).
    pub limit: Option<u32>,
    /// Only this service.
    pub service: Option<String>,
    /// Only these incident severities or log levels, comma-separated (`error,fatal`).
    pub severity: Option<String>,
    /// At or after (RFC 3339): incident start, log time, runbook creation.
    pub since: Option<String>,
    /// Before (RFC 3339).
    pub until: Option<String>,
    /// Only log lines of this incident (and the incident itself).
    pub incident_id: Option<String>,
    /// `auto` (hybrid when embeddings are available, the default) or `keyword`.
    pub mode: Option<String>,
}

/// The longest query accepted, in bytes.
const MAX_QUERY: usize = 2048;

impl SearchParams {
    /// Checks every parameter, naming the first that is wrong.
    pub fn into_request(self) -> Result<SearchRequest, ServiceError> {
        let q = self.q.unwrap_or_default();
        if q.len() > MAX_QUERY {
            return Err(ServiceError::invalid(format!(
                "q is {} bytes; the limit is {MAX_QUERY}",
                q.len()
            )));
        }
        let kind = match self.kind.as_deref().map(str::trim) {
            None | Some("") | Some("all") => None,
            Some("incident") | Some("incidents") => Some(DocKind::Incident),
            Some("log") | Some("logs") => Some(DocKind::Log),
            Some("runbook") | Some("runbooks") => Some(DocKind::Runbook),
            Some(other) => {
                return Err(ServiceError::invalid(format!(
                    "kind {other:?} is not one of incident, log, runbook"
                )));
            }
        };
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT as u32).contains(&n) => n as usize,
            Some(n) => {
                return Err(ServiceError::invalid(format!(
                    "limit: {n} is not from 1 to {MAX_LIMIT}"
                )));
            }
        };
        let services = match self.service.as_deref() {
            None => Vec::new(),
            Some(s) => vec![validate::name("service", s).map_err(ServiceError::Invalid)?],
        };
        let severities = match self.severity.as_deref() {
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| check_severity(s).map_err(ServiceError::Invalid))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let since = time_param("since", self.since.as_deref())?;
        let until = time_param("until", self.until.as_deref())?;
        if let (Some(a), Some(b)) = (since, until)
            && a >= b
        {
            return Err(ServiceError::invalid("since must be before until"));
        }
        let incident_id = self
            .incident_id
            .as_deref()
            .map(|i| validate::id("incident_id", i).map_err(ServiceError::Invalid))
            .transpose()?;
        let mode = match self.mode.as_deref() {
            None | Some("auto") | Some("hybrid") => ModeRequest::Auto,
            Some("keyword") => ModeRequest::Keyword,
            Some(other) => {
                return Err(ServiceError::invalid(format!(
                    "mode {other:?} is not auto or keyword"
                )));
            }
        };
        Ok(SearchRequest {
            q,
            filters: Filters {
                kind,
                services,
                severities,
                since,
                until,
                incident_id,
            },
            limit,
            mode,
        })
    }
}

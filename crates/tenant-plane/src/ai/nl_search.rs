//! Natural-language search (`POST /api/ai/search`): the model turns a question ("database
//! errors in checkout since yesterday") into keywords plus filters (kind, services,
//! severities, time range), and the hybrid search answers it. When the model is not
//! configured, unavailable or answers nonsense, the question is searched as it is: the
//! endpoint always answers, and says how.

use std::sync::Arc;

use atlasai_core::{ChatRequest, Message, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::structured::complete_json;
use super::{AiMeta, AiSession};
use crate::calls::Feature;
use crate::data::{Data, ServiceError};
use crate::search::index::{DocKind, Filters};
use crate::search::{self, DEFAULT_LIMIT, MAX_LIMIT, ModeRequest, SearchRequest, SearchResults};
use crate::state::AppState;
use crate::store::Timestamp;
use crate::validate;

/// The longest question accepted, in bytes.
const MAX_QUERY: usize = 2_048;

/// `POST /api/ai/search`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NlSearchRequest {
    /// The question, in plain language.
    pub query: String,
    /// Results, 1 to 100 (default 10).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// What the model made of the question.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Interpretation {
    /// The keywords searched.
    pub q: String,
    /// `incident`, `log` or `runbook`, when the question asks for one kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Services named.
    pub services: Vec<String>,
    /// Incident severities or log levels named.
    pub severities: Vec<String>,
    /// At or after (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Before (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Parts of the model's answer that were not valid filters and were left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NlSearchAnswer {
    /// The question as asked.
    pub query: String,
    /// How the question was searched: `ai` (the model's interpretation) or `plain` (as
    /// typed, because the model could not help).
    pub interpreted_by: String,
    /// The model's interpretation, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpretation: Option<Interpretation>,
    /// Why the question was searched as typed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Whether the filters found nothing and were dropped (the keywords alone were searched).
    pub relaxed: bool,
    /// The results.
    pub results: SearchResults,
    /// Provider, model, tokens and time, when the model was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ai: Option<AiMeta>,
}

/// The schema of the model's interpretation.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["keywords", "kind", "services", "severities", "since", "until"],
        "properties": {
            "keywords": {"type": "string", "description": "the words to search for, without filler words or time expressions"},
            "kind": {"type": "string", "enum": ["incident", "log", "runbook", "any"]},
            "services": {"type": "array", "items": {"type": "string"}, "description": "service names mentioned, exactly as written"},
            "severities": {"type": "array", "items": {"type": "string", "enum": ["critical", "high", "medium", "low", "info", "trace", "debug", "warn", "error", "fatal"]}},
            "since": {"type": "string", "description": "RFC 3339 start time, or an empty string"},
            "until": {"type": "string", "description": "RFC 3339 end time, or an empty string"}
        }
    })
}

const SYSTEM: &str = "You turn an engineer's question about production incidents, logs and \
runbooks into a search: keywords and filters. Keep the keywords that describe the problem \
(error messages, components, symptoms); leave out filler and time expressions. Use filters only \
for what the question states: a kind (incident, log line or runbook), service names, incident \
severities (critical, high, medium, low, info) or log levels (trace, debug, info, warn, error, \
fatal), and a time range converted to RFC 3339 using the current time given. Use \"any\", empty \
lists and empty strings for what it does not state. Answer with one JSON object that matches \
the schema.";

/// Answers a question.
pub async fn search(
    state: &Arc<AppState>,
    data: &Arc<Data>,
    tenant: &TenantId,
    req: &NlSearchRequest,
) -> Result<NlSearchAnswer, ServiceError> {
    let query = req.query.trim().to_owned();
    if query.is_empty() {
        return Err(ServiceError::invalid("query must not be empty"));
    }
    if query.len() > MAX_QUERY {
        return Err(ServiceError::invalid(format!(
            "query is {} bytes; the limit is {MAX_QUERY}",
            query.len()
        )));
    }
    let limit = match req.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(n) => {
            return Err(ServiceError::invalid(format!(
                "limit: {n} is not from 1 to {MAX_LIMIT}"
            )));
        }
    };
    let plain = || SearchRequest {
        q: search::plain_query(&query),
        filters: Filters::default(),
        limit,
        mode: ModeRequest::Auto,
    };
    let (interpretation, ai, fallback_reason) = match interpret(state, tenant, &query).await {
        Ok((i, meta)) => (Some(i), Some(meta), None),
        Err((reason, meta)) => {
            tracing::info!(%tenant, "natural-language search without the model: {reason}");
            (None, meta, Some(reason))
        }
    };
    let mut relaxed = false;
    let results = match &interpretation {
        Some(i) => {
            let request = to_request(i, limit);
            let found = search::search(state, data, tenant, &request).await?;
            if found.results.is_empty() && has_filters(&request.filters) {
                relaxed = true;
                search::search(
                    state,
                    data,
                    tenant,
                    &SearchRequest {
                        filters: Filters::default(),
                        ..request
                    },
                )
                .await?
            } else {
                found
            }
        }
        None => search::search(state, data, tenant, &plain()).await?,
    };
    Ok(NlSearchAnswer {
        query,
        interpreted_by: if interpretation.is_some() {
            "ai"
        } else {
            "plain"
        }
        .to_owned(),
        interpretation,
        fallback_reason,
        relaxed,
        results,
        ai,
    })
}

fn has_filters(f: &Filters) -> bool {
    f.kind.is_some()
        || !f.services.is_empty()
        || !f.severities.is_empty()
        || f.since.is_some()
        || f.until.is_some()
}

fn to_request(i: &Interpretation, limit: usize) -> SearchRequest {
    SearchRequest {
        q: search::plain_query(&i.q),
        filters: Filters {
            kind: match i.kind.as_deref() {
                Some("incident") => Some(DocKind::Incident),
                Some("log") => Some(DocKind::Log),
                Some("runbook") => Some(DocKind::Runbook),
                _ => None,
            },
            services: i.services.clone(),
            severities: i.severities.clone(),
            since: i.since.as_deref().and_then(|t| Timestamp::parse(t).ok()),
            until: i.until.as_deref().and_then(|t| Timestamp::parse(t).ok()),
            incident_id: None,
        },
        limit,
        mode: ModeRequest::Auto,
    }
}

/// Asks the model; on failure, why (and what the attempt cost, if it reached the model).
async fn interpret(
    state: &Arc<AppState>,
    tenant: &TenantId,
    query: &str,
) -> Result<(Interpretation, AiMeta), (String, Option<AiMeta>)> {
    let session = AiSession::open(state.clone(), tenant.clone(), Feature::Search)
        .await
        .map_err(|e| (e.to_string(), None))?;
    let now = Timestamp::now().to_rfc3339();
    let request = ChatRequest {
        messages: vec![
            Message::system(SYSTEM),
            Message::user(format!("Current time: {now}\nQuestion: {query}")),
        ],
        temperature: Some(0.0),
        max_tokens: Some(400),
        ..ChatRequest::default()
    };
    let answer = complete_json(&session, request, "search_filters", &schema(), None)
        .await
        .map_err(|e| (e.to_string(), Some(session.meta())))?;
    Ok((check(&answer.value, query), session.meta()))
}

/// Keeps the filters that are valid; notes the rest.
fn check(v: &Value, query: &str) -> Interpretation {
    let mut i = Interpretation::default();
    let keywords = v["keywords"].as_str().unwrap_or_default().trim();
    // A model that drops every word would search for nothing; the question is better.
    i.q = if search::plain_query(keywords).is_empty() {
        query.to_owned()
    } else {
        keywords.to_owned()
    };
    i.kind = v["kind"]
        .as_str()
        .filter(|k| matches!(*k, "incident" | "log" | "runbook"))
        .map(str::to_owned);
    for s in v["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        match validate::name("service", s) {
            Ok(s) if !i.services.contains(&s) => i.services.push(s),
            Ok(_) => {}
            Err(e) => i.ignored.push(e),
        }
    }
    for s in v["severities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        match search::check_severity(s) {
            Ok(s) if !i.severities.contains(&s) => i.severities.push(s),
            Ok(_) => {}
            Err(e) => i.ignored.push(e),
        }
    }
    let mut time = |field: &str| -> Option<String> {
        let t = v[field].as_str().map(str::trim).filter(|t| !t.is_empty())?;
        match Timestamp::parse(t) {
            Ok(ts) => Some(ts.to_rfc3339()),
            Err(e) => {
                i.ignored.push(format!("{field}: {e}"));
                None
            }
        }
    };
    let since = time("since");
    let until = time("until");
    match (since, until) {
        (Some(a), Some(b)) if Timestamp::parse(&a).ok() >= Timestamp::parse(&b).ok() => {
            i.ignored.push(format!("since {a} is not before until {b}"));
        }
        (a, b) => {
            i.since = a;
            i.until = b;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_filters_are_left_out_and_named() {
        let v = json!({"keywords": "connection refused", "kind": "log", "services": ["payments-api", "bad service"],
            "severities": ["error", "loud"], "since": "2026-11-02T10:00:00Z", "until": "yesterday"});
        let i = check(&v, "q");
        assert_eq!(i.q, "connection refused");
        assert_eq!(i.kind.as_deref(), Some("log"));
        assert_eq!(i.services, vec!["payments-api"]);
        assert_eq!(i.severities, vec!["error"]);
        assert_eq!(i.since.as_deref(), Some("2026-11-02T10:00:00Z"));
        assert_eq!(i.until, None);
        assert_eq!(i.ignored.len(), 3, "{:?}", i.ignored);
        let r = to_request(&i, 5);
        assert_eq!(r.filters.kind, Some(DocKind::Log));
        assert!(r.filters.since.is_some());
    }

    #[test]
    fn empty_keywords_fall_back_to_the_question() {
        let v = json!({"keywords": " ", "kind": "any", "services": [], "severities": [], "since": "", "until": ""});
        let i = check(&v, "why is checkout slow");
        assert_eq!(i.q, "why is checkout slow");
        assert_eq!(i.kind, None);
        assert!(!has_filters(&to_request(&i, 5).filters));
    }
}

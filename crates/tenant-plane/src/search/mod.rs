//! Search over a tenant's incidents, log lines and runbooks: BM25 keyword search through
//! tantivy, made hybrid with vector search (fused by reciprocal rank fusion) when an embedding
//! provider is configured and has caught up.
//!
//! The services here are what the API and the AI features call:
//! - [`search`]: `GET /api/search`.
//! - [`relevant_logs`]: the log evidence for an incident: recurring error patterns and the
//!   lines that best match a query, never the whole log.
//! - [`similar_incidents`]: past incidents like this one.
//! - [`search_runbooks`]: runbook knowledge for a question.
//!
//! Every one of them works without an embedding provider, and when the provider is down:
//! search then answers keyword-only and says why (`mode_reason`).

pub mod embedder;
pub mod index;
pub mod indexer;
pub mod params;
pub mod text;
pub mod vectors;

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use atlasai_core::TenantId;
use serde::{Deserialize, Serialize};

use self::embedder::{EmbedError, embed_texts, model_key};
use self::index::{DocKind, Filters, Highlighted, IndexedDoc};
use self::text::fuse_ranked;
use crate::calls::Feature;
use crate::data::{Data, ServiceError, blocking};
use crate::state::AppState;
use crate::store::logs::{LogFilter, LogScope};
use crate::store::vectors::kind as vkind;
use crate::store::{LogLevel, LogLine, LogPattern, Severity, Timestamp};

/// The most results one search returns.
pub const MAX_LIMIT: usize = 100;
/// Results when no limit is given.
pub const DEFAULT_LIMIT: usize = 10;
/// After a query embedding fails, searches skip the model for this long.
const EMBEDDING_COOL_DOWN: Duration = Duration::from_secs(30);
/// Vector candidates considered per search.
const VECTOR_CANDIDATES: usize = 100;
/// Log message shapes expanded into lines per search, and lines per shape.
const TEMPLATES_EXPANDED: usize = 10;
const LINES_PER_TEMPLATE: u32 = 3;

/// How to search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModeRequest {
    /// Hybrid when embeddings are configured and available, keyword otherwise.
    #[default]
    Auto,
    /// Keyword (BM25) only.
    Keyword,
}

/// How a search was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// BM25 only.
    Keyword,
    /// BM25 and vector results fused by reciprocal rank fusion.
    Hybrid,
}

/// A search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// The query: words, `"phrases"`, `+required`, `-excluded`. Empty lists the newest
    /// matching documents.
    pub q: String,
    /// Filters.
    pub filters: Filters,
    /// At most this many results.
    pub limit: usize,
    /// Keyword only, or automatic.
    pub mode: ModeRequest,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResult {
    /// `incident`, `log` or `runbook`.
    pub kind: DocKind,
    /// The record's id (`GET /api/incidents/{id}`, `/api/runbooks/{id}`; log lines via
    /// `/api/logs`).
    pub id: String,
    /// Rank score: BM25 in keyword mode, fused reciprocal-rank score in hybrid mode.
    pub score: f32,
    /// Incident or runbook title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The service (the first, for runbooks that list several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Incident severity or log level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Incident status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The incident a log line belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// Incident start, log time or runbook creation.
    pub ts: Timestamp,
    /// A fragment of the text around the best match.
    pub snippet: String,
    /// Byte ranges of `snippet` that match the query, as `[start, end)`.
    pub highlights: Vec<[usize; 2]>,
    /// `snippet` as HTML-escaped text with matches in `<mark>`.
    pub snippet_html: String,
    /// Which searches found it: `keyword`, `vector`.
    pub matched_by: Vec<String>,
}

/// A search's answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// The query as given.
    pub query: String,
    /// How it was answered.
    pub mode: Mode,
    /// Why it is keyword-only, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
    /// The results, best first.
    pub results: Vec<SearchResult>,
    /// Time spent, in milliseconds (fractional).
    pub took_ms: f64,
}

fn elapsed_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// Whether a query uses exact-match syntax (`"phrases"`, `+required`, `-excluded`,
/// `field:value`): the user asked for literal matches, which vectors cannot honour, so such
/// queries are answered by keyword search alone.
pub fn is_exact_syntax(q: &str) -> bool {
    q.contains('"')
        || q.split_whitespace().any(|w| {
            w.starts_with('+')
                || (w.starts_with('-') && w.len() > 1)
                || w.split_once(':').is_some_and(|(f, v)| {
                    !f.is_empty()
                        && !v.is_empty()
                        && !v.starts_with('/')
                        && f.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
                })
        })
}

/// Renders a highlighted fragment as HTML: text escaped, matches in `<mark>`.
pub fn to_html(h: &Highlighted) -> String {
    let mut out = String::with_capacity(h.text.len() + 16);
    let mut pos = 0;
    let escape = |s: &str, out: &mut String| {
        for c in s.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
    };
    for &(start, end) in &h.ranges {
        if start < pos
            || end > h.text.len()
            || !h.text.is_char_boundary(start)
            || !h.text.is_char_boundary(end)
        {
            continue;
        }
        escape(&h.text[pos..start], &mut out);
        out.push_str("<mark>");
        escape(&h.text[start..end], &mut out);
        out.push_str("</mark>");
        pos = end;
    }
    escape(&h.text[pos..], &mut out);
    out
}

fn result_from(
    doc: &IndexedDoc,
    score: f32,
    h: &Highlighted,
    matched_by: Vec<String>,
) -> SearchResult {
    SearchResult {
        kind: doc.kind,
        id: doc.id.clone(),
        score,
        title: doc.title.clone(),
        service: doc.services.first().cloned(),
        severity: doc.severity.clone(),
        status: doc.status.clone(),
        incident_id: if doc.kind == DocKind::Log {
            doc.incident_id.clone()
        } else {
            None
        },
        ts: doc.ts,
        snippet: h.text.clone(),
        highlights: h.ranges.iter().map(|&(s, e)| [s, e]).collect(),
        snippet_html: to_html(h),
        matched_by,
    }
}

fn log_as_doc(l: &LogLine, template: i64) -> IndexedDoc {
    IndexedDoc {
        kind: DocKind::Log,
        id: l.id.clone(),
        score: 0.0,
        title: None,
        body: l.message.clone(),
        services: vec![l.service.clone()],
        severity: Some(l.level.as_str().to_owned()),
        status: None,
        incident_id: l.incident_id.clone(),
        ts: l.ts,
        template: Some(template),
    }
}

fn passes(doc: &IndexedDoc, f: &Filters) -> bool {
    if f.kind.is_some_and(|k| k != doc.kind) {
        return false;
    }
    if !f.services.is_empty() && !doc.services.iter().any(|s| f.services.contains(s)) {
        return false;
    }
    if !f.severities.is_empty()
        && !doc
            .severity
            .as_ref()
            .is_some_and(|s| f.severities.contains(s))
    {
        return false;
    }
    if f.since.is_some_and(|t| doc.ts < t) || f.until.is_some_and(|t| doc.ts >= t) {
        return false;
    }
    if let Some(i) = &f.incident_id
        && doc.incident_id.as_ref() != Some(i)
    {
        return false;
    }
    true
}

/// Checks a `severity` filter value: an incident severity or a log level, canonical names.
pub fn check_severity(value: &str) -> Result<String, String> {
    let v = value.trim().to_ascii_lowercase();
    let ok = Severity::ALL.iter().any(|s| s.as_str() == v)
        || LogLevel::ALL.iter().any(|l| l.as_str() == v);
    if ok {
        Ok(v)
    } else {
        Err(format!(
            "severity {value:?} is neither an incident severity ({}) nor a log level ({})",
            Severity::valid_names(),
            LogLevel::valid_names()
        ))
    }
}

/// Turns free text (an incident description, a question) into a query of plain words, so
/// characters that mean something in the query syntax (`:`, `"`, `+`, `-`) are not read as
/// syntax.
pub fn plain_query(text: &str) -> String {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(64)
        .map(str::to_lowercase)
        .collect();
    words.join(" ")
}

/// Why hybrid search is not possible right now, or the query's vector.
async fn query_vector(
    state: &AppState,
    data: &Data,
    tenant: &TenantId,
    q: &str,
) -> Result<Vec<f32>, String> {
    let published = state.current();
    let Some(model) = model_key(&published.config.embeddings) else {
        return Err("EMBEDDING_PROVIDER is fallback (keyword search only)".to_owned());
    };
    let Some(set) = data.vectors.get(tenant) else {
        return Err(format!("no vectors yet for model {model}"));
    };
    {
        let s = set.read().unwrap_or_else(PoisonError::into_inner);
        if s.model() != model {
            return Err(format!("vectors for model {model} are not loaded yet"));
        }
        if !s.complete {
            return Err(format!(
                "embedding backfill for model {model} is in progress; search is keyword-only until it completes"
            ));
        }
    }
    if let Some(at) = data
        .query_embedding_failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(tenant.as_str())
        && at.elapsed() < EMBEDDING_COOL_DOWN
    {
        return Err(format!(
            "the embedding provider failed {}s ago; retrying after {}s",
            at.elapsed().as_secs(),
            EMBEDDING_COOL_DOWN.as_secs()
        ));
    }
    let client = match state.routes.embeddings(tenant, &published).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err("no embedding provider".to_owned()),
        Err(e) => return Err(format!("embedding provider unavailable: {e}")),
    };
    let timeout = data.settings.search_embedding_timeout;
    let result = tokio::time::timeout(
        timeout,
        embed_texts(
            state,
            tenant,
            &client,
            vec![q.to_owned()],
            Feature::Embeddings,
        ),
    )
    .await;
    let failure = match result {
        Ok(Ok(mut v)) => return v.pop().ok_or_else(|| "no vector returned".to_owned()),
        Ok(Err(EmbedError::Provider(e))) => format!("embedding provider unavailable: {e}"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!(
            "embedding provider did not answer within {}ms (TP_SEARCH_EMBEDDING_TIMEOUT)",
            timeout.as_millis()
        ),
    };
    data.query_embedding_failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(tenant.to_string(), Instant::now());
    Err(failure)
}

/// Searches a tenant's data. Never fails because of the embedding provider: without it, the
/// answer is keyword-only with a `mode_reason`.
pub async fn search(
    state: &AppState,
    data: &Data,
    tenant: &TenantId,
    req: &SearchRequest,
) -> Result<SearchResults, ServiceError> {
    let started = Instant::now();
    let limit = req.limit.clamp(1, MAX_LIMIT);
    let q = req.q.trim().to_owned();

    let vector = if q.is_empty() {
        Err("an empty query lists the newest documents".to_owned())
    } else if req.mode == ModeRequest::Keyword {
        Err("keyword mode was requested".to_owned())
    } else if is_exact_syntax(&q) && model_key(&state.current().config.embeddings).is_some() {
        Err("the query uses exact-match syntax (quotes, +, -, field:)".to_owned())
    } else {
        query_vector(state, data, tenant, &q).await
    };

    // Hybrid fusion needs a deeper keyword list than the page shown.
    let keyword_depth = if vector.is_ok() {
        (limit * 3).max(30)
    } else {
        limit
    };
    // Unless the caller asked for log lines, one line per message shape is enough.
    let collapse = req.filters.kind != Some(DocKind::Log);
    let keyword = {
        let index = data.index.clone();
        let (t, q, f) = (tenant.to_string(), q.clone(), req.filters.clone());
        blocking(move || index.search(&t, &q, &f, keyword_depth, collapse)).await?
    };

    let qvec = match vector {
        Ok(v) => v,
        Err(reason) => {
            let results = keyword
                .iter()
                .take(limit)
                .map(|(doc, h)| result_from(doc, doc.score, h, vec!["keyword".to_owned()]))
                .collect();
            return Ok(SearchResults {
                query: req.q.clone(),
                mode: Mode::Keyword,
                mode_reason: Some(reason),
                results,
                took_ms: elapsed_ms(started),
            });
        }
    };

    let vector_hits = vector_candidates(data, tenant, &req.filters, &qvec).await?;

    let mut details: HashMap<(DocKind, String), (IndexedDoc, Option<Highlighted>)> = HashMap::new();
    let mut by_template: HashMap<i64, Vec<(DocKind, String)>> = HashMap::new();
    let keyword_list: Vec<((DocKind, String), usize)> = keyword
        .iter()
        .enumerate()
        .map(|(i, (d, h))| {
            let key = (d.kind, d.id.clone());
            details.insert(key.clone(), (d.clone(), Some(h.clone())));
            if let Some(t) = d.template {
                by_template.entry(t).or_default().push(key.clone());
            }
            (key, i + 1)
        })
        .collect();
    // A vector hit on a message shape ranks the keyword hits of that shape, and otherwise
    // brings in the shape's most recent matching lines.
    let per_template = if collapse { 1 } else { LINES_PER_TEMPLATE };
    let mut vector_list: Vec<((DocKind, String), usize)> = Vec::new();
    let mut expanded = 0;
    for (i, hit) in vector_hits.into_iter().enumerate() {
        let rank = i + 1;
        match hit {
            VectorHitDoc::Doc(d) => {
                let key = (d.kind, d.id.clone());
                details.entry(key.clone()).or_insert((d, None));
                vector_list.push((key, rank));
            }
            VectorHitDoc::Template(t) => {
                if let Some(keys) = by_template.get(&t) {
                    vector_list.extend(keys.iter().map(|k| (k.clone(), rank)));
                } else if expanded < TEMPLATES_EXPANDED {
                    expanded += 1;
                    for line in data
                        .store
                        .latest_lines_with_template(
                            tenant,
                            t,
                            &log_filter(&req.filters),
                            per_template,
                        )
                        .await?
                    {
                        let d = log_as_doc(&line, t);
                        let key = (d.kind, d.id.clone());
                        details.entry(key.clone()).or_insert((d, None));
                        vector_list.push((key, rank));
                    }
                }
            }
        }
    }
    let in_keyword: std::collections::HashSet<&(DocKind, String)> =
        keyword_list.iter().map(|(k, _)| k).collect();
    let in_vector: std::collections::HashSet<&(DocKind, String)> =
        vector_list.iter().map(|(k, _)| k).collect();
    let fused = fuse_ranked(&[keyword_list.clone(), vector_list.clone()]);

    let mut results = Vec::with_capacity(limit);
    let mut shapes = std::collections::HashSet::new();
    for (key, score) in fused {
        if results.len() == limit {
            break;
        }
        let Some((doc, highlight)) = details.get(&key) else {
            continue;
        };
        if collapse
            && let Some(t) = doc.template
            && !shapes.insert(t)
        {
            continue;
        }
        let h = match highlight {
            Some(h) => h.clone(),
            None => data.index.highlight(&doc.body, &q),
        };
        let mut by = Vec::new();
        if in_keyword.contains(&key) {
            by.push("keyword".to_owned());
        }
        if in_vector.contains(&key) {
            by.push("vector".to_owned());
        }
        results.push(result_from(doc, score, &h, by));
    }
    Ok(SearchResults {
        query: req.q.clone(),
        mode: Mode::Hybrid,
        mode_reason: None,
        results,
        took_ms: elapsed_ms(started),
    })
}

/// One vector match: a document that passes the filters (incidents and runbooks, from the
/// index), or a log message shape (turned into lines by the caller).
enum VectorHitDoc {
    Doc(IndexedDoc),
    Template(i64),
}

fn log_levels(filters: &Filters) -> Vec<LogLevel> {
    filters
        .severities
        .iter()
        .filter_map(|s| LogLevel::ALL.iter().copied().find(|l| l.as_str() == s))
        .collect()
}

fn log_filter(filters: &Filters) -> LogFilter {
    LogFilter {
        incident_id: filters.incident_id.clone(),
        service: filters.services.first().cloned(),
        levels: log_levels(filters),
        since: filters.since,
        until: filters.until,
        limit: LINES_PER_TEMPLATE,
        cursor: None,
    }
}

/// Vector matches, best first, that can pass the filters.
async fn vector_candidates(
    data: &Data,
    tenant: &TenantId,
    filters: &Filters,
    qvec: &[f32],
) -> Result<Vec<VectorHitDoc>, ServiceError> {
    let kinds: Vec<&str> = match filters.kind {
        Some(DocKind::Incident) => vec![vkind::INCIDENT],
        Some(DocKind::Runbook) => vec![vkind::RUNBOOK],
        Some(DocKind::Log) => vec![vkind::LOG_TEMPLATE],
        None => vec![],
    };
    let hits = match data.vectors.get(tenant) {
        Some(set) => set.read().unwrap_or_else(PoisonError::into_inner).search(
            qvec,
            &kinds,
            VECTOR_CANDIDATES,
        ),
        None => Vec::new(),
    };
    let doc_ids: Vec<String> = hits
        .iter()
        .filter(|h| h.kind != vkind::LOG_TEMPLATE)
        .map(|h| h.doc_id.clone())
        .collect();
    let found = {
        let index = data.index.clone();
        let t = tenant.to_string();
        blocking(move || index.lookup(&t, &doc_ids)).await?
    };
    let logs_possible = filters.severities.is_empty() || !log_levels(filters).is_empty();
    let mut out = Vec::new();
    for hit in hits {
        if hit.kind == vkind::LOG_TEMPLATE {
            if let (true, Ok(t)) = (logs_possible, hit.doc_id.parse::<i64>()) {
                out.push(VectorHitDoc::Template(t));
            }
        } else if let Some(doc) = found.get(&hit.doc_id)
            && passes(doc, filters)
        {
            out.push(VectorHitDoc::Doc(doc.clone()));
        }
    }
    Ok(out)
}

/// The log evidence for an incident: its most frequent error and warning patterns (each with
/// a count, first and last time and an example), and the lines that best match `query`
/// (hybrid when available), never the whole log.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RelevantLogs {
    /// Recurring fatal, error and warning messages, most frequent first.
    pub patterns: Vec<LogPattern>,
    /// Lines matching the query, best first.
    pub matches: Vec<SearchResult>,
    /// How `matches` was searched.
    pub mode: Mode,
}

/// See [`RelevantLogs`]. `query` is free text (an alert title, a hypothesis); it is reduced
/// to plain words.
pub async fn relevant_logs(
    state: &AppState,
    data: &Data,
    tenant: &TenantId,
    incident_id: &str,
    query: &str,
    patterns: u32,
    lines: usize,
) -> Result<RelevantLogs, ServiceError> {
    let patterns = data
        .store
        .log_patterns(
            tenant,
            &LogScope::Incident(incident_id.to_owned()),
            &[LogLevel::Fatal, LogLevel::Error, LogLevel::Warn],
            patterns,
        )
        .await?;
    let found = search(
        state,
        data,
        tenant,
        &SearchRequest {
            q: plain_query(query),
            filters: Filters {
                kind: Some(DocKind::Log),
                incident_id: Some(incident_id.to_owned()),
                ..Filters::default()
            },
            limit: lines,
            mode: ModeRequest::Auto,
        },
    )
    .await?;
    Ok(RelevantLogs {
        patterns,
        matches: found.results,
        mode: found.mode,
    })
}

/// Incidents like this one (by title and description), excluding itself, best first.
pub async fn similar_incidents(
    state: &AppState,
    data: &Data,
    tenant: &TenantId,
    incident_id: &str,
    limit: usize,
) -> Result<SearchResults, ServiceError> {
    let Some(incident) = data.store.get_incident(tenant, incident_id).await? else {
        return Err(ServiceError::NotFound {
            what: "incident",
            id: incident_id.to_owned(),
        });
    };
    let text = format!("{} {}", incident.title, incident.description);
    let mut found = search(
        state,
        data,
        tenant,
        &SearchRequest {
            q: plain_query(&text),
            filters: Filters {
                kind: Some(DocKind::Incident),
                ..Filters::default()
            },
            limit: limit + 1,
            mode: ModeRequest::Auto,
        },
    )
    .await?;
    found.results.retain(|r| r.id != incident.id);
    found.results.truncate(limit);
    Ok(found)
}

/// Runbook knowledge for a question, best first; a service, when given, ranks runbooks that
/// name it higher.
pub async fn search_runbooks(
    state: &AppState,
    data: &Data,
    tenant: &TenantId,
    query: &str,
    service: Option<&str>,
    limit: usize,
) -> Result<SearchResults, ServiceError> {
    // Runbooks for no service in particular apply everywhere, so the service ranks rather
    // than filters.
    let q = match service {
        Some(s) => format!("{query} {s}"),
        None => query.to_owned(),
    };
    search(
        state,
        data,
        tenant,
        &SearchRequest {
            q: plain_query(&q),
            filters: Filters {
                kind: Some(DocKind::Runbook),
                ..Filters::default()
            },
            limit,
            mode: ModeRequest::Auto,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_snippets_escape_and_mark() {
        let h = Highlighted {
            text: "a <b> & error here".to_owned(),
            ranges: vec![(8, 13)],
        };
        assert_eq!(to_html(&h), "a &lt;b&gt; &amp; <mark>error</mark> here");
    }

    #[test]
    fn exact_syntax_is_recognised() {
        for q in [
            "\"connection refused\"",
            "+redis timeout",
            "timeout -redis",
            "title:db",
        ] {
            assert!(is_exact_syntax(q), "{q}");
        }
        for q in [
            "connection refused",
            "error: refused by db-1:5432",
            "p99 - latency",
            "http://x",
        ] {
            assert!(!is_exact_syntax(q), "{q}");
        }
    }

    #[test]
    fn plain_queries_drop_syntax() {
        assert_eq!(
            plain_query("title:\"DB\" +down -x (p99)"),
            "title db down x p99"
        );
    }
}

/// How far a tenant's search data has caught up with its store (`GET /api/search/status`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchStatus {
    /// The tenant's latest write batch in the store.
    pub store_batch: i64,
    /// The latest batch this replica's keyword index holds.
    pub indexed_batch: i64,
    /// Batches written but not yet searchable here (0 when caught up).
    pub index_lag_batches: i64,
    /// The embedding side.
    pub embeddings: EmbeddingStatus,
}

/// The embedding side of [`SearchStatus`].
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmbeddingStatus {
    /// `openai`, `bedrock` or `fallback`.
    pub provider: String,
    /// The model vectors are made with (`keyword` for the fallback).
    pub model: String,
    /// The batch embedded up to.
    pub embedded_batch: i64,
    /// Whether the model has caught up with the data at least once (hybrid search needs it).
    pub complete: bool,
    /// Vectors stored for this model.
    pub vectors: i64,
    /// Vectors loaded on this replica.
    pub vectors_loaded: usize,
}

/// See [`SearchStatus`].
pub async fn status(
    state: &AppState,
    data: &Data,
    tenant: &TenantId,
) -> Result<SearchStatus, ServiceError> {
    let head = data.store.feed_head(tenant).await?;
    let indexed = data.index.watermark(tenant.as_str());
    let published = state.current();
    let settings = &published.config.embeddings;
    let mut embeddings = EmbeddingStatus {
        provider: settings.provider_name().to_owned(),
        model: settings.model().to_owned(),
        embedded_batch: 0,
        complete: false,
        vectors: 0,
        vectors_loaded: 0,
    };
    if let Some(model) = model_key(settings) {
        if let Some(job) = data.store.embedding_job(tenant, &model).await? {
            embeddings.embedded_batch = job.done_seq;
            embeddings.complete = job.complete;
        }
        embeddings.vectors = data.store.vector_count(tenant, &model).await?;
        if let Some(set) = data.vectors.get(tenant) {
            let s = set.read().unwrap_or_else(PoisonError::into_inner);
            if s.model() == model {
                embeddings.vectors_loaded = s.len();
            }
        }
    }
    Ok(SearchStatus {
        store_batch: head.seq,
        indexed_batch: indexed,
        index_lag_batches: (head.seq - indexed).max(0),
        embeddings,
    })
}

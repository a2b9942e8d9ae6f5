//! Root cause analysis (`POST /api/ai/rca`).
//!
//! 1. Gather the evidence: the incident, its alerts, its changes and configuration records,
//!    its most frequent error and warning log patterns (counted, never the whole log), the log
//!    lines that best match the incident and its alerts, and similar past incidents. Each
//!    item gets a short id (`alert-1`, `change-2`, `pattern-3`, `log-4`, `incident-5`) that
//!    the model cites.
//! 2. Fit it into the model's context: when everything fits, one call; otherwise map-reduce:
//!    the evidence is packed into batches that each fit, each batch is summarised into
//!    findings that keep their evidence ids, and the findings (condensed again if needed) go
//!    into the final call. No request exceeds the budget ([`super::budget`]).
//! 3. Ask for structured JSON (the provider's structured-output mode), validate it against
//!    the schema and check that every cited id exists; one repair attempt, else a clear
//!    error.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use atlasai_core::{ChatRequest, Message, TenantId};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::budget::{Budget, estimate_request, estimate_text, pack};
use super::structured::{REPAIR_RESERVE_TOKENS, complete_json};
use super::toolbox::{clip, incident_header};
use super::{AiError, AiMeta, AiSession, FeatureError};
use crate::calls::Feature;
use crate::data::Data;
use crate::search;
use crate::state::AppState;
use crate::store::IncidentDetail;

/// Alerts, changes, log patterns, matching log lines and similar incidents considered.
const MAX_ALERTS: u32 = 50;
const MAX_CHANGES: u32 = 30;
const MAX_PATTERNS: u32 = 30;
const MAX_LINES: usize = 50;
const MAX_SIMILAR: usize = 3;
/// Characters of one evidence item's text.
const ITEM_CHARS: usize = 600;
/// Map calls in flight at once.
const MAP_CONCURRENCY: usize = 3;
/// Rounds of condensing findings before the final call.
const MAX_REDUCE_ROUNDS: u32 = 4;

const SYSTEM: &str = "You are an expert site reliability engineer performing a root cause \
analysis of a production incident. Use only the evidence given. Every evidence item starts \
with its id in square brackets, such as [alert-1] or [log-3]; cite those ids (without the \
brackets) in each hypothesis's evidence list, and never invent ids. Rank hypotheses from most \
to least likely, each with a confidence between 0 and 1. Next steps are concrete actions an \
on-call engineer can take now. Answer with one JSON object that matches the schema.";

const MAP_SYSTEM: &str = "You are an expert site reliability engineer. You see one batch of \
the evidence about a production incident; other batches are analysed separately. List the \
findings in this batch that could explain the incident or rule a cause out: recurring errors, \
suspicious changes, timing, affected services. Each finding cites the ids of the evidence \
items it rests on (the ids in square brackets, without the brackets). Answer with one JSON \
object that matches the schema.";

/// `POST /api/ai/rca`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RcaRequest {
    /// The incident to analyse.
    pub incident_id: String,
    /// Something to focus on ("why did the deploy at 14:05 matter?"), optional.
    #[serde(default)]
    pub question: Option<String>,
}

/// One piece of evidence the analysis cites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvidenceRef {
    /// The short id the model cited (`alert-1`, `log-4`).
    #[serde(rename = "ref")]
    pub reference: String,
    /// `alert`, `change`, `log_pattern`, `log`, `incident`.
    pub kind: String,
    /// The record's id (for a log pattern, its most recent line).
    pub id: String,
    /// What the model saw, clipped.
    pub text: String,
}

/// A possible root cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hypothesis {
    /// 1 is the most likely.
    pub rank: u32,
    /// One line.
    pub title: String,
    /// Why, in a few sentences.
    pub explanation: String,
    /// From 0 to 1.
    pub confidence: f64,
    /// The ids of the evidence it rests on: short ids (see `evidence`).
    pub evidence: Vec<String>,
    /// The record ids of that evidence.
    pub evidence_ids: Vec<String>,
}

/// How much evidence went into the analysis, and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Considered {
    /// Alerts.
    pub alerts: usize,
    /// Change and configuration records.
    pub changes: usize,
    /// Recurring error and warning log patterns.
    pub log_patterns: usize,
    /// Individual log lines matching the incident.
    pub log_lines: usize,
    /// Similar past incidents.
    pub similar_incidents: usize,
    /// The incident's log lines in all (most are represented by their patterns).
    pub incident_log_lines: i64,
    /// Estimated tokens of all the evidence.
    pub evidence_tokens: u32,
    /// The model's context window assumed, in tokens.
    pub context_tokens: u32,
    /// Batches summarised separately because the evidence did not fit one request (0: it
    /// fit).
    pub map_batches: usize,
}

/// The analysis.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RcaAnswer {
    /// The incident analysed.
    pub incident_id: String,
    /// What happened and the most likely cause.
    pub summary: String,
    /// Possible causes, most likely first.
    pub hypotheses: Vec<Hypothesis>,
    /// Services involved.
    pub affected_services: Vec<String>,
    /// What to do now.
    pub next_steps: Vec<String>,
    /// The evidence the hypotheses cite.
    pub evidence: Vec<EvidenceRef>,
    /// What went in.
    pub considered: Considered,
    /// Provider, model, tokens and time.
    pub ai: AiMeta,
}

/// The answer's schema, sent to the model. It keeps to what every provider's structured
/// output accepts (no numeric or length bounds); the bounds are checked after parsing.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["summary", "hypotheses", "affected_services", "next_steps"],
        "properties": {
            "summary": {"type": "string", "description": "two or three sentences: what happened and the most likely cause"},
            "hypotheses": {
                "type": "array",
                "minItems": 1,
                "description": "possible root causes, most likely first (at most 5)",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["title", "explanation", "confidence", "evidence"],
                    "properties": {
                        "title": {"type": "string"},
                        "explanation": {"type": "string"},
                        "confidence": {"type": "number", "description": "from 0 to 1"},
                        "evidence": {"type": "array", "items": {"type": "string"}, "description": "evidence ids such as alert-1 or log-3"}
                    }
                }
            },
            "affected_services": {"type": "array", "items": {"type": "string"}},
            "next_steps": {"type": "array", "minItems": 1, "items": {"type": "string"}}
        }
    })
}

fn map_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["batch_findings"],
        "properties": {
            "batch_findings": {
                "type": "array",
                "description": "at most 8 findings, most important first",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["finding", "evidence"],
                    "properties": {
                        "finding": {"type": "string"},
                        "evidence": {"type": "array", "items": {"type": "string"}}
                    }
                }
            }
        }
    })
}

/// One evidence item as the model sees it.
#[derive(Debug, Clone)]
struct Item {
    reference: String,
    kind: &'static str,
    id: String,
    text: String,
}

impl Item {
    fn line(&self) -> String {
        format!("[{}] {}", self.reference, self.text)
    }
}

struct Evidence {
    detail: IncidentDetail,
    items: Vec<Item>,
    considered: Considered,
}

/// Runs the analysis.
pub async fn analyse(
    state: &Arc<AppState>,
    data: &Arc<Data>,
    tenant: &TenantId,
    request: &RcaRequest,
) -> Result<RcaAnswer, FeatureError> {
    let question = super::optional_text("question", request.question.as_deref())?;
    // The evidence first: an unknown incident is a 404 whether or not a model is configured.
    let (incident_id, detail) = super::incident(data, tenant, &request.incident_id).await?;
    let mut evidence = gather(state, data, tenant, detail, question.as_deref()).await?;
    let session = AiSession::open(state.clone(), tenant.clone(), Feature::Rca).await?;
    let budget = session.budget();
    evidence.considered.context_tokens = budget.context;

    let header = incident_header(&evidence.detail);
    let known: HashMap<String, Item> = evidence
        .items
        .iter()
        .map(|i| (i.reference.clone(), i.clone()))
        .collect();
    let refs: BTreeSet<String> = known.keys().cloned().collect();

    let lines: Vec<String> = evidence.items.iter().map(Item::line).collect();
    let focus = question
        .as_deref()
        .map(|q| format!("\nFocus on this question: {q}\n"))
        .unwrap_or_default();
    let final_request = |evidence_text: &str, intro: &str| ChatRequest {
        messages: vec![
            Message::system(SYSTEM),
            Message::user(format!(
                "{header}{focus}\n{intro}\n{evidence_text}\n\nAnalyse the root cause."
            )),
        ],
        temperature: Some(0.1),
        ..ChatRequest::default()
    };
    let schema = schema();
    let fixed = with_schema(final_request("", EVIDENCE_INTRO), &schema);
    let room = room(&budget, estimate_request(&fixed));
    if room < 200 {
        return Err(session
            .context_too_small(format!(
                "the model's context window of {} tokens leaves no room for evidence after the instructions; root cause analysis needs at least {} tokens (set TP_CONTEXT_TOKENS to the model's real window)",
                budget.context,
                budget.context - room + 200 + budget.output
            ))
            .into());
    }
    let all = lines.join("\n");
    let request = if estimate_text(&all) + lines.len() as u32 <= room {
        final_request(&all, EVIDENCE_INTRO)
    } else {
        let findings = map_reduce(
            &session,
            &budget,
            &header,
            &lines,
            &refs,
            &mut evidence.considered,
            room,
        )
        .await?;
        final_request(&findings.join("\n"), FINDINGS_INTRO)
    };

    let check = |v: &Value| check_answer(v, &refs);
    let answer = complete_json(
        &session,
        request,
        "root_cause_analysis",
        &schema,
        Some(&check),
    )
    .await?;
    Ok(assemble(
        incident_id,
        answer.value,
        &known,
        evidence.considered,
        session.meta(),
    ))
}

const EVIDENCE_INTRO: &str = "Evidence:";
const FINDINGS_INTRO: &str = "The evidence was too large for one request, so it was analysed in batches. Findings from the batches, each with the evidence ids it rests on:";

fn with_schema(mut r: ChatRequest, schema: &Value) -> ChatRequest {
    r.response_format = Some(atlasai_core::ResponseFormat::JsonSchema {
        name: "schema".to_owned(),
        schema: schema.clone(),
        strict: None,
        description: None,
    });
    r
}

/// Tokens left for evidence in a request whose fixed part costs `fixed`, keeping room for a
/// repair.
fn room(budget: &Budget, fixed: u32) -> u32 {
    budget
        .prompt()
        .saturating_sub(fixed)
        .saturating_sub(REPAIR_RESERVE_TOKENS)
}

async fn gather(
    state: &Arc<AppState>,
    data: &Arc<Data>,
    tenant: &TenantId,
    detail: IncidentDetail,
    question: Option<&str>,
) -> Result<Evidence, FeatureError> {
    let store = &data.store;
    let incident_id = detail.incident.id.clone();
    let incident_id = incident_id.as_str();
    let alerts = store
        .list_alerts(tenant, incident_id, MAX_ALERTS, None)
        .await?
        .items;
    let changes = store
        .list_changes(tenant, incident_id, MAX_CHANGES, None)
        .await?
        .items;
    // The lines that best match what the incident is about: its title, its alerts' titles and
    // the question.
    let mut query = detail.incident.title.clone();
    for a in alerts.iter().take(10) {
        query.push(' ');
        query.push_str(&a.title);
    }
    if let Some(q) = question {
        query.push(' ');
        query.push_str(q);
    }
    let relevant = search::relevant_logs(
        state,
        data,
        tenant,
        incident_id,
        &query,
        MAX_PATTERNS,
        MAX_LINES,
    )
    .await?;
    let patterns = &relevant.patterns;
    let similar = search::similar_incidents(state, data, tenant, incident_id, MAX_SIMILAR).await?;

    let mut items = Vec::new();
    let mut n = 0usize;
    let mut push = |kind: &'static str, prefix: &str, id: String, text: String| {
        n += 1;
        items.push(Item {
            reference: format!("{prefix}-{n}"),
            kind,
            id,
            text: clip(&text, ITEM_CHARS),
        });
    };
    for a in &alerts {
        let labels = if a.labels.is_empty() {
            String::new()
        } else {
            format!(" labels={}", Value::Object(a.labels.clone()))
        };
        push(
            "alert",
            "alert",
            a.id.clone(),
            format!(
                "alert {} {} {} [{}]: {}{labels}",
                a.fired_at.to_rfc3339(),
                a.severity.as_str(),
                a.service,
                a.title,
                a.description.trim()
            ),
        );
    }
    for c in &changes {
        push(
            "change",
            "change",
            c.id.clone(),
            format!(
                "{} {} {} by {} ({}): {} {}",
                c.kind.as_str(),
                c.occurred_at.to_rfc3339(),
                c.service,
                c.author.as_deref().unwrap_or("unknown"),
                c.reference.as_deref().unwrap_or("-"),
                c.summary,
                c.details.trim()
            ),
        );
    }
    for p in patterns {
        push(
            "log_pattern",
            "pattern",
            p.example.id.clone(),
            format!(
                "{}x {} {} from {} to {}: {}",
                p.count,
                p.example.level.as_str(),
                p.example.service,
                p.first_ts.to_rfc3339(),
                p.last_ts.to_rfc3339(),
                p.example.message
            ),
        );
    }
    let pattern_examples: BTreeSet<&str> = patterns.iter().map(|p| p.example.id.as_str()).collect();
    let mut lines = 0;
    for r in &relevant.matches {
        if pattern_examples.contains(r.id.as_str()) {
            continue;
        }
        lines += 1;
        push(
            "log",
            "log",
            r.id.clone(),
            format!(
                "log {} {} {}: {}",
                r.ts.to_rfc3339(),
                r.severity.as_deref().unwrap_or("-"),
                r.service.as_deref().unwrap_or("-"),
                r.snippet
            ),
        );
    }
    for s in &similar.results {
        push(
            "incident",
            "incident",
            s.id.clone(),
            format!(
                "similar past incident ({}) {}: {} {}",
                s.status.as_deref().unwrap_or("-"),
                s.ts.to_rfc3339(),
                s.title.as_deref().unwrap_or_default(),
                s.snippet
            ),
        );
    }
    let evidence_tokens = items.iter().map(|i| estimate_text(&i.line()) + 1).sum();
    let considered = Considered {
        alerts: alerts.len(),
        changes: changes.len(),
        log_patterns: patterns.len(),
        log_lines: lines,
        similar_incidents: similar.results.len(),
        incident_log_lines: detail.counts.log_lines,
        evidence_tokens,
        context_tokens: 0,
        map_batches: 0,
    };
    Ok(Evidence {
        detail,
        items,
        considered,
    })
}

/// Summarises evidence that does not fit one request into findings that do: batches that
/// each fit are mapped to findings (in parallel, a few at a time), and findings are condensed
/// again until they fit `room`.
async fn map_reduce(
    session: &AiSession,
    budget: &Budget,
    header: &str,
    lines: &[String],
    refs: &BTreeSet<String>,
    considered: &mut Considered,
    room: u32,
) -> Result<Vec<String>, AiError> {
    let map_schema = map_schema();
    let map_request = |batch: &str| ChatRequest {
        messages: vec![
            Message::system(MAP_SYSTEM),
            Message::user(format!("{header}\nEvidence batch:\n{batch}")),
        ],
        temperature: Some(0.1),
        ..ChatRequest::default()
    };
    let fixed = estimate_request(&with_schema(map_request(""), &map_schema));
    let batch_room = self::room(budget, fixed);
    if batch_room < 200 {
        return Err(session.context_too_small(format!(
            "the model's context window of {} tokens is too small to analyse evidence in batches; root cause analysis needs at least {} tokens",
            budget.context,
            budget.context - batch_room + 200 + budget.output
        )));
    }
    let mut items: Vec<String> = lines.to_vec();
    for round in 0..MAX_REDUCE_ROUNDS {
        let batches = pack(&items, batch_room);
        if round == 0 {
            considered.map_batches = batches.len();
        }
        tracing::info!(
            tenant = %session.tenant(),
            round,
            batches = batches.len(),
            "root cause analysis: evidence exceeds the context window; summarising it in batches"
        );
        let check = |v: &Value| check_findings(v, refs);
        let results: Vec<Value> = futures_util::stream::iter(batches.into_iter().map(|b| {
            let request = map_request(&b.join("\n"));
            let schema = &map_schema;
            let check = &check;
            async move {
                complete_json(session, request, "evidence_findings", schema, Some(check))
                    .await
                    .map(|a| a.value)
            }
        }))
        .buffered(MAP_CONCURRENCY)
        .try_collect()
        .await?;
        items = results
            .iter()
            .flat_map(|v| {
                v["batch_findings"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .take(8)
            })
            .map(|f| {
                let cited: Vec<&str> = f["evidence"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                format!(
                    "- {} [evidence: {}]",
                    f["finding"].as_str().unwrap_or_default().trim(),
                    if cited.is_empty() {
                        "none".to_owned()
                    } else {
                        cited.join(", ")
                    }
                )
            })
            .collect();
        let size: u32 = items.iter().map(|i| estimate_text(i) + 1).sum();
        if size <= room {
            return Ok(items);
        }
    }
    // Still too large after several rounds: keep the findings that fit, in order (batches
    // list their most important findings first).
    let mut used = 0u32;
    items.retain(|i| {
        let cost = estimate_text(i) + 1;
        used += cost;
        used <= room
    });
    Ok(items)
}

fn cited(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(normalise_ref)
                .collect()
        })
        .unwrap_or_default()
}

/// Models sometimes keep the brackets or change the case.
fn normalise_ref(r: &str) -> String {
    r.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim()
        .to_ascii_lowercase()
}

fn unknown_refs<'a>(
    cited: impl Iterator<Item = &'a String>,
    refs: &BTreeSet<String>,
) -> Vec<String> {
    let mut unknown: Vec<String> = cited.filter(|r| !refs.contains(*r)).cloned().collect();
    unknown.sort();
    unknown.dedup();
    unknown
}

fn check_findings(v: &Value, refs: &BTreeSet<String>) -> Result<(), String> {
    let all: Vec<String> = v["batch_findings"]
        .as_array()
        .map(|a| a.iter().flat_map(|f| cited(&f["evidence"])).collect())
        .unwrap_or_default();
    let unknown = unknown_refs(all.iter(), refs);
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "these evidence ids do not exist: {}; cite only ids shown in square brackets",
            unknown.join(", ")
        ))
    }
}

fn check_answer(v: &Value, refs: &BTreeSet<String>) -> Result<(), String> {
    let mut problems = Vec::new();
    if v["summary"].as_str().is_none_or(|s| s.trim().is_empty()) {
        problems.push("summary must not be empty".to_owned());
    }
    let hypotheses = v["hypotheses"].as_array().cloned().unwrap_or_default();
    let mut all = Vec::new();
    for (i, h) in hypotheses.iter().enumerate() {
        if h["title"].as_str().is_none_or(|s| s.trim().is_empty()) {
            problems.push(format!("/hypotheses/{i}/title must not be empty"));
        }
        match h["confidence"].as_f64() {
            Some(c) if (0.0..=1.0).contains(&c) => {}
            _ => problems.push(format!("/hypotheses/{i}/confidence must be from 0 to 1")),
        }
        all.extend(cited(&h["evidence"]));
    }
    let unknown = unknown_refs(all.iter(), refs);
    if !unknown.is_empty() {
        problems.push(format!(
            "these evidence ids do not exist: {}; cite only ids shown in square brackets (or in the findings' evidence lists)",
            unknown.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    out.retain(|s| seen.insert(s.clone()));
    out
}

fn assemble(
    incident_id: String,
    v: Value,
    known: &HashMap<String, Item>,
    considered: Considered,
    ai: AiMeta,
) -> RcaAnswer {
    let mut hypotheses: Vec<Hypothesis> = v["hypotheses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .take(5)
        .map(|h| {
            let mut evidence = cited(&h["evidence"]);
            let mut seen = BTreeSet::new();
            evidence.retain(|r| seen.insert(r.clone()));
            Hypothesis {
                rank: 0,
                title: h["title"].as_str().unwrap_or_default().trim().to_owned(),
                explanation: h["explanation"]
                    .as_str()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                confidence: h["confidence"].as_f64().unwrap_or_default(),
                evidence_ids: evidence
                    .iter()
                    .filter_map(|r| known.get(r).map(|i| i.id.clone()))
                    .collect(),
                evidence,
            }
        })
        .collect();
    // Most likely first; the model's order breaks ties.
    hypotheses.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    for (i, h) in hypotheses.iter_mut().enumerate() {
        h.rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    let mut cited_refs: Vec<&String> = hypotheses.iter().flat_map(|h| h.evidence.iter()).collect();
    let mut seen = BTreeSet::new();
    cited_refs.retain(|r| seen.insert(*r));
    let evidence = cited_refs
        .into_iter()
        .filter_map(|r| known.get(r))
        .map(|i| EvidenceRef {
            reference: i.reference.clone(),
            kind: i.kind.to_owned(),
            id: i.id.clone(),
            text: i.text.clone(),
        })
        .collect();
    RcaAnswer {
        incident_id,
        summary: v["summary"].as_str().unwrap_or_default().trim().to_owned(),
        hypotheses,
        affected_services: strings(&v["affected_services"]),
        next_steps: strings(&v["next_steps"]),
        evidence,
        considered,
        ai,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_citing_unknown_evidence_are_refused() {
        let refs: BTreeSet<String> = ["alert-1", "log-2"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let good = json!({"summary": "s", "hypotheses": [{"title": "t", "explanation": "e", "confidence": 0.7, "evidence": ["[Alert-1]", "log-2"]}], "affected_services": [], "next_steps": ["x"]});
        assert_eq!(check_answer(&good, &refs), Ok(()));
        let bad = json!({"summary": " ", "hypotheses": [{"title": "t", "explanation": "e", "confidence": 7, "evidence": ["log-9"]}], "affected_services": [], "next_steps": ["x"]});
        let err = check_answer(&bad, &refs).unwrap_err();
        assert!(err.contains("summary must not be empty"), "{err}");
        assert!(err.contains("confidence must be from 0 to 1"), "{err}");
        assert!(err.contains("log-9"), "{err}");
    }

    #[test]
    fn hypotheses_are_ranked_by_confidence() {
        let mut known = HashMap::new();
        known.insert(
            "alert-1".to_owned(),
            Item {
                reference: "alert-1".into(),
                kind: "alert",
                id: "A".into(),
                text: "x".into(),
            },
        );
        let v = json!({"summary": "s", "affected_services": ["a", "a", "b"], "next_steps": ["n"], "hypotheses": [
            {"title": "low", "explanation": "", "confidence": 0.2, "evidence": []},
            {"title": "high", "explanation": "", "confidence": 0.9, "evidence": ["alert-1", "alert-1"]}]});
        let meta = AiMeta::sample();
        let a = assemble("i".into(), v, &known, Considered::default(), meta);
        assert_eq!(a.hypotheses[0].title, "high");
        assert_eq!(a.hypotheses[0].rank, 1);
        assert_eq!(a.hypotheses[0].evidence, vec!["alert-1"]);
        assert_eq!(a.hypotheses[0].evidence_ids, vec!["A"]);
        assert_eq!(a.hypotheses[1].rank, 2);
        assert_eq!(a.affected_services, vec!["a", "b"]);
        assert_eq!(a.evidence.len(), 1);
    }
}

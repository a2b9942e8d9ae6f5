//! Runbook generation (`POST /api/ai/runbook`).
//!
//! The model investigates with the read-only tools ([`super::toolbox`]) for at most
//! `max_steps` turns, then writes the runbook: steps, each with an action, an optional
//! command, a risk level, a rollback and a verification. When its last answer is already a
//! valid runbook (it is asked for one), that is the answer; otherwise one more call turns the
//! investigation into the runbook with the provider's structured output (and one repair).
//! A model that cannot call tools gets "model does not support tool use".

use std::sync::Arc;

use atlasai_core::{ChatRequest, Message, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::budget::{estimate_request, truncate};
use super::structured::{REPAIR_RESERVE_TOKENS, complete_json, validate};
use super::toolbox::{IncidentTools, incident_header};
use super::tools::{self, ToolTrace};
use super::{AiMeta, AiSession, FeatureError};
use crate::calls::Feature;
use crate::data::Data;
use crate::state::AppState;

/// Tool-calling turns when the request does not say.
pub const DEFAULT_MAX_STEPS: u32 = 8;
/// The most a request may ask for.
pub const MAX_STEPS: u32 = 20;

/// `POST /api/ai/runbook`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookRequest {
    /// The incident to write a runbook for.
    pub incident_id: String,
    /// Tool-calling turns allowed, 1 to 20 (default 8).
    #[serde(default)]
    pub max_steps: Option<u32>,
    /// Extra instructions ("we cannot restart the database during business hours").
    #[serde(default)]
    pub instructions: Option<String>,
}

/// How risky a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Read-only or trivially reversible.
    Low,
    /// Changes something, reversibly.
    Medium,
    /// Could make things worse or is hard to undo.
    High,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunbookStep {
    /// 1, 2, 3...
    pub number: u32,
    /// What to do.
    pub action: String,
    /// A command to run, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// How risky it is.
    pub risk: Risk,
    /// How to undo it.
    pub rollback: String,
    /// How to tell that it worked.
    pub verification: String,
}

/// The runbook.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunbookAnswer {
    /// The incident it is for.
    pub incident_id: String,
    /// Its title.
    pub title: String,
    /// When to use it and what it does.
    pub summary: String,
    /// The steps, in order.
    pub steps: Vec<RunbookStep>,
    /// Every tool call the model made while investigating.
    pub tool_calls: Vec<ToolTrace>,
    /// Whether the step limit ended the investigation.
    pub hit_step_limit: bool,
    /// Provider, model, tokens and time.
    pub ai: AiMeta,
}

const SYSTEM: &str = "You are an expert site reliability engineer writing a remediation \
runbook for a production incident. First investigate with the tools: they are read-only; look \
at the incident, search its logs, look for the team's runbooks and for similar past incidents. \
Then write the runbook: ordered steps, each with an action, a shell command when one applies, \
a risk level (low, medium or high), how to roll the step back, and how to verify it worked. \
Prefer low-risk diagnostic steps first. Your final answer must be only a JSON object matching \
this JSON Schema:\n";

const FORMAT_SYSTEM: &str = "You are an expert site reliability engineer. Turn the \
investigation below into a remediation runbook: ordered steps, each with an action, a shell \
command when one applies, a risk level (low, medium or high), a rollback and a verification. \
Answer with one JSON object that matches the schema.";

/// The answer's schema, sent to the model.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["title", "summary", "steps"],
        "properties": {
            "title": {"type": "string"},
            "summary": {"type": "string"},
            "steps": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["action", "risk", "rollback", "verification"],
                    "properties": {
                        "action": {"type": "string"},
                        "command": {"type": "string", "description": "a shell command, or omit"},
                        "risk": {"type": "string", "enum": ["low", "medium", "high"]},
                        "rollback": {"type": "string"},
                        "verification": {"type": "string"}
                    }
                }
            }
        }
    })
}

fn check(v: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    if v["title"].as_str().is_none_or(|s| s.trim().is_empty()) {
        problems.push("title must not be empty".to_owned());
    }
    for (i, step) in v["steps"].as_array().into_iter().flatten().enumerate() {
        for field in ["action", "rollback", "verification"] {
            if step[field].as_str().is_none_or(|s| s.trim().is_empty()) {
                problems.push(format!("/steps/{i}/{field} must not be empty"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Writes the runbook.
pub async fn generate(
    state: &Arc<AppState>,
    data: &Arc<Data>,
    tenant: &TenantId,
    request: &RunbookRequest,
) -> Result<RunbookAnswer, FeatureError> {
    let max_steps = super::steps_param(request.max_steps, DEFAULT_MAX_STEPS, MAX_STEPS)?;
    let instructions = super::optional_text("instructions", request.instructions.as_deref())?
        .map(|i| format!("\nInstructions from the team: {i}\n"))
        .unwrap_or_default();
    let (incident_id, detail) = super::incident(data, tenant, &request.incident_id).await?;
    let session = AiSession::open(state.clone(), tenant.clone(), Feature::Runbook).await?;
    let header = incident_header(&detail);
    let schema = schema();
    let toolbox = IncidentTools::new(
        state.clone(),
        data.clone(),
        tenant.clone(),
        Some(incident_id.clone()),
    );
    let investigate = ChatRequest {
        messages: vec![
            Message::system(format!("{SYSTEM}{schema}")),
            Message::user(format!(
                "{header}{instructions}\nInvestigate with the tools, then write the runbook."
            )),
        ],
        temperature: Some(0.2),
        ..ChatRequest::default()
    };
    let outcome = tools::run(&session, investigate, &toolbox, max_steps).await?;
    let draft = outcome.answer.content.clone().unwrap_or_default();
    let value = match validate(&schema, Some(&check), &draft) {
        Ok(v) => v,
        Err(problems) => {
            tracing::info!(
                tenant = %session.tenant(),
                "the investigation's last answer is not a valid runbook ({problems}); asking for it in structured form"
            );
            let budget = session.budget();
            let mut format = ChatRequest {
                messages: vec![
                    Message::system(FORMAT_SYSTEM),
                    Message::user(format!("{header}{instructions}")),
                ],
                temperature: Some(0.1),
                ..ChatRequest::default()
            };
            // The investigation as text, cut to what fits next to the instructions, the
            // draft and a repair.
            let fixed =
                estimate_request(&format) + super::budget::estimate_text(&schema.to_string());
            let room = budget
                .prompt()
                .saturating_sub(fixed)
                .saturating_sub(REPAIR_RESERVE_TOKENS)
                .saturating_sub(40);
            let draft_part = truncate(&draft, room / 3);
            let notes = truncate(
                &tools::transcript(&outcome.messages, (room / 8).max(100)),
                room.saturating_sub(super::budget::estimate_text(&draft_part)),
            );
            format.messages.push(Message::user(format!(
                "Investigation:\n{notes}\nDraft answer:\n{draft_part}\n\nWrite the runbook."
            )));
            complete_json(&session, format, "runbook", &schema, Some(&check))
                .await?
                .value
        }
    };
    Ok(assemble(
        incident_id,
        &value,
        outcome.trace,
        outcome.hit_step_limit,
        session.meta(),
    ))
}

fn assemble(
    incident_id: String,
    v: &Value,
    tool_calls: Vec<ToolTrace>,
    hit_step_limit: bool,
    ai: AiMeta,
) -> RunbookAnswer {
    let steps = v["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, s)| RunbookStep {
            number: u32::try_from(i + 1).unwrap_or(u32::MAX),
            action: text(&s["action"]),
            command: s["command"]
                .as_str()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            risk: serde_json::from_value(s["risk"].clone()).unwrap_or(Risk::High),
            rollback: text(&s["rollback"]),
            verification: text(&s["verification"]),
        })
        .collect();
    RunbookAnswer {
        incident_id,
        title: text(&v["title"]),
        summary: text(&v["summary"]),
        steps,
        tool_calls,
        hit_step_limit,
        ai,
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_numbered_and_checked() {
        let v = json!({"title": "Restart", "summary": "s", "steps": [
            {"action": "look", "risk": "low", "rollback": "none needed", "verification": "v"},
            {"action": "restart", "command": "kubectl rollout restart deploy/api", "risk": "medium", "rollback": "r", "verification": "v"}]});
        assert_eq!(check(&v), Ok(()));
        assert_eq!(
            validate(&schema(), Some(&check), &v.to_string()).unwrap(),
            v
        );
        let meta = AiMeta::sample();
        let a = assemble("i".into(), &v, Vec::new(), false, meta);
        assert_eq!(a.steps[1].number, 2);
        assert_eq!(a.steps[1].risk, Risk::Medium);
        assert_eq!(a.steps[0].command, None);
        let bad = json!({"title": "t", "summary": "s", "steps": [{"action": "x", "risk": "extreme", "rollback": "", "verification": "v"}]});
        let err = validate(&schema(), Some(&check), &bad.to_string()).unwrap_err();
        assert!(err.contains("extreme"), "{err}");
        let err = check(&bad).unwrap_err();
        assert!(err.contains("/steps/0/rollback"), "{err}");
    }
}

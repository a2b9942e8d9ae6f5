//! Copilot chat (`POST /api/ai/chat`): a multi-turn conversation, optionally about one
//! incident, with the same read-only tools as runbook generation, streamed to the client as
//! server-sent events.
//!
//! The client sends the conversation so far (the tenant plane keeps no chat state). The oldest
//! turns are dropped when the history does not fit the model's context. The first model call
//! is made before the response starts, so a provider that is down is an HTTP error in the
//! documented shape; later failures arrive as an `error` event. A client that goes away stops
//! the conversation: the provider stream is dropped and the call recorded as cancelled.
//!
//! Events, each `event: <name>` with one JSON `data:` line:
//! - `meta` `{provider, model, truncated_history}`: first.
//! - `delta` `{text}`: a piece of the answer.
//! - `tool_call` `{name, arguments}` and `tool_result` `{name, ok, ms}`: the model looked
//!   something up.
//! - `done` `{content, tool_calls, hit_step_limit, ai}`: the whole answer, last.
//! - `error`: the connection test's error shape, last.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use atlasai_core::{ChatRequest, Message, StreamAccumulator, StreamEvent, TenantId, ToolChoice};
use atlasai_providers::ChatStream;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::budget::{estimate_request, truncate};
use super::toolbox::{IncidentTools, incident_header};
use super::tools::{self, ToolBox, ToolTrace};
use super::{AiError, AiMeta, AiSession, FeatureError};
use crate::calls::{CallOutcome, Feature};
use crate::data::{Data, ServiceError};
use crate::state::AppState;

/// Turns of history accepted.
pub const MAX_MESSAGES: usize = 50;
/// Bytes of one message accepted.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Tool-calling turns per answer when the request does not say.
pub const DEFAULT_MAX_STEPS: u32 = 5;
/// The most a request may ask for.
pub const MAX_STEPS: u32 = 10;

const SYSTEM: &str = "You are AtlasAI Copilot, an assistant for on-call engineers handling \
production incidents. Answer concisely and concretely. Use the tools to look things up in the \
team's incidents, logs and runbooks instead of guessing; they are read-only. When you refer to \
an incident, log line or runbook, give its id. If the data does not answer the question, say so.";

/// Who said something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The engineer.
    User,
    /// The copilot (earlier answers).
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatTurn {
    /// `user` or `assistant`.
    pub role: Role,
    /// The text.
    pub content: String,
}

/// `POST /api/ai/chat`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatApiRequest {
    /// The conversation so far, oldest first, ending with the user's new message.
    pub messages: Vec<ChatTurn>,
    /// The incident the conversation is about, if any.
    #[serde(default)]
    pub incident_id: Option<String>,
    /// Server-sent events (default) or one JSON answer.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Tool-calling turns allowed, 1 to 10 (default 5).
    #[serde(default)]
    pub max_steps: Option<u32>,
}

/// The whole answer (`stream: false`, and the `done` event).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatAnswer {
    /// The copilot's answer.
    pub content: String,
    /// Tool calls made for it.
    pub tool_calls: Vec<ToolTrace>,
    /// Whether the step limit cut the lookups short.
    pub hit_step_limit: bool,
    /// Whether the oldest turns were left out to fit the model's context.
    pub truncated_history: bool,
    /// Provider, model, tokens and time.
    pub ai: AiMeta,
}

/// A conversation ready to send.
#[derive(Debug)]
pub struct Prepared {
    session: AiSession,
    request: ChatRequest,
    toolbox: IncidentTools,
    max_steps: u32,
    truncated_history: bool,
}

/// Checks the request, opens the tenant's model and fits the conversation into its context.
pub async fn prepare(
    state: &Arc<AppState>,
    data: &Arc<Data>,
    tenant: &TenantId,
    req: &ChatApiRequest,
) -> Result<Prepared, FeatureError> {
    if req.messages.is_empty() || req.messages.len() > MAX_MESSAGES {
        return Err(ServiceError::invalid(format!(
            "messages: send from 1 to {MAX_MESSAGES} turns, oldest first, ending with the user's message"
        ))
        .into());
    }
    for (i, m) in req.messages.iter().enumerate() {
        if m.content.trim().is_empty() {
            return Err(
                ServiceError::invalid(format!("messages[{i}].content must not be empty")).into(),
            );
        }
        if m.content.len() > MAX_MESSAGE_BYTES {
            return Err(ServiceError::invalid(format!(
                "messages[{i}].content is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                m.content.len()
            ))
            .into());
        }
    }
    if req.messages.last().map(|m| m.role) != Some(Role::User) {
        return Err(ServiceError::invalid(
            "messages: the last turn must be the user's (role \"user\")",
        )
        .into());
    }
    let max_steps = super::steps_param(req.max_steps, DEFAULT_MAX_STEPS, MAX_STEPS)?;
    let incident = match req.incident_id.as_deref() {
        Some(id) => Some(super::incident(data, tenant, id).await?),
        None => None,
    };
    let session = AiSession::open(state.clone(), tenant.clone(), Feature::Chat).await?;
    let mut system = SYSTEM.to_owned();
    if let Some((_, detail)) = &incident {
        system.push_str("\n\nThe conversation is about this incident:\n");
        system.push_str(&incident_header(detail));
    }
    let toolbox = IncidentTools::new(
        state.clone(),
        data.clone(),
        tenant.clone(),
        incident.map(|(id, _)| id),
    );
    let mut request = ChatRequest {
        messages: std::iter::once(Message::system(system))
            .chain(req.messages.iter().map(|m| match m.role {
                Role::User => Message::user(m.content.clone()),
                Role::Assistant => Message::assistant(m.content.clone()),
            }))
            .collect(),
        tools: toolbox.definitions(),
        temperature: Some(0.2),
        ..ChatRequest::default()
    };
    let budget = session.budget();
    request.max_tokens = Some(budget.output);
    // The history may use three quarters of the prompt budget; the rest is for tool results.
    let history_budget = budget.prompt() / 4 * 3;
    let mut truncated_history = false;
    while estimate_request(&request) > history_budget && request.messages.len() > 2 {
        request.messages.remove(1);
        truncated_history = true;
    }
    // A history that starts with the copilot's turn reads oddly to some models and is refused
    // by others (Bedrock wants the user first).
    while request.messages.len() > 2 && matches!(request.messages[1], Message::Assistant { .. }) {
        request.messages.remove(1);
        truncated_history = true;
    }
    if estimate_request(&request) > history_budget
        && let Some(Message::User { content }) = request.messages.last()
    {
        // Only the user's message is left besides the instructions, and it is too long.
        let text = atlasai_core::joined_text(content);
        let own = estimate_request(&ChatRequest {
            messages: vec![Message::user(text.clone())],
            ..ChatRequest::default()
        });
        let fixed = estimate_request(&request).saturating_sub(own);
        let last = request.messages.len() - 1;
        request.messages[last] = Message::user(truncate(
            &text,
            history_budget.saturating_sub(fixed).max(64),
        ));
        truncated_history = true;
    }
    Ok(Prepared {
        session,
        request,
        toolbox,
        max_steps,
        truncated_history,
    })
}

/// The whole answer at once (`stream: false`).
pub async fn answer(p: Prepared) -> Result<ChatAnswer, AiError> {
    let outcome = tools::run(&p.session, p.request, &p.toolbox, p.max_steps).await?;
    Ok(ChatAnswer {
        content: outcome.answer.content.unwrap_or_default(),
        tool_calls: outcome.trace,
        hit_step_limit: outcome.hit_step_limit,
        truncated_history: p.truncated_history,
        ai: p.session.meta(),
    })
}

/// Starts a streamed answer: the first model call is made here, so its failure is the
/// caller's HTTP error. The events follow in the returned body stream.
pub async fn stream(
    p: Prepared,
) -> Result<impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static, AiError> {
    let started = Instant::now();
    let first = p.session.stream(&p.request).await?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(converse(p, first, started, tx));
    Ok(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok))
}

/// One server-sent event: its name and one line of JSON (JSON text has no raw line breaks).
pub(crate) fn frame(event: &str, data: &impl serde::Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_default();
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The client went away.
struct Gone;

async fn send(tx: &mpsc::Sender<Bytes>, event: &str, data: Value) -> Result<(), Gone> {
    tx.send(frame(event, &data)).await.map_err(|_| Gone)
}

async fn converse(p: Prepared, first: ChatStream, started: Instant, tx: mpsc::Sender<Bytes>) {
    let Prepared {
        session,
        mut request,
        toolbox,
        max_steps,
        truncated_history,
    } = p;
    let meta = json!({"provider": session.provider(), "model": session.model(), "truncated_history": truncated_history});
    if send(&tx, "meta", meta).await.is_err() {
        session.record_stream(None, started, CallOutcome::Cancelled);
        return;
    }
    let budget = session.budget();
    let per_result = (budget.prompt() / 5).max(256);
    let mut trace = Vec::new();
    let mut content = String::new();
    let mut steps = 0u32;
    let mut hit_step_limit = false;
    let mut stream = first;
    let mut started = started;
    loop {
        steps += 1;
        let mut acc = StreamAccumulator::default();
        let mut failed = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    if let StreamEvent::TextDelta { text } = &event
                        && !text.is_empty()
                    {
                        content.push_str(text);
                        if send(&tx, "delta", json!({"text": text})).await.is_err() {
                            session.record_stream(None, started, CallOutcome::Cancelled);
                            return;
                        }
                    }
                    acc.push(&event);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(stream);
        if let Some(e) = failed {
            session.record_stream(None, started, CallOutcome::Error(e.kind));
            let (_, body) = session.error(&e).body();
            let _ = send(&tx, "error", json!(body)).await;
            return;
        }
        let response = acc.finish(&session.model());
        session.record_stream(response.usage, started, CallOutcome::Ok);
        if response.tool_calls.is_empty() || hit_step_limit {
            break;
        }
        request.messages.push(Message::Assistant {
            content: response.content.clone(),
            tool_calls: response.tool_calls.clone(),
        });
        for call in &response.tool_calls {
            let args: Value = serde_json::from_str(&call.arguments)
                .unwrap_or(Value::String(call.arguments.clone()));
            if send(
                &tx,
                "tool_call",
                json!({"name": call.name, "arguments": args}),
            )
            .await
            .is_err()
            {
                return;
            }
            let result = tools::run_tool(&toolbox, call, &mut trace).await;
            let last = trace.last().cloned();
            if let Some(t) = last
                && send(
                    &tx,
                    "tool_result",
                    json!({"name": t.name, "ok": t.ok, "ms": t.ms}),
                )
                .await
                .is_err()
            {
                return;
            }
            request
                .messages
                .push(Message::tool(&call.id, truncate(&result, per_result)));
        }
        if steps >= max_steps {
            // Out of lookups: the next answer must come from what was found.
            hit_step_limit = true;
            request.tool_choice = Some(ToolChoice::None);
            request.messages.push(Message::user(
                "You have used all tool calls available. Answer now from the information gathered so far.",
            ));
        }
        tools::fit(&mut request, &budget);
        started = Instant::now();
        stream = match session.stream(&request).await {
            Ok(s) => s,
            Err(e) => {
                let (_, body) = e.body();
                let _ = send(&tx, "error", json!(body)).await;
                return;
            }
        };
    }
    let done = ChatAnswer {
        content,
        tool_calls: trace,
        hit_step_limit,
        truncated_history,
        ai: session.meta(),
    };
    let _ = send(&tx, "done", json!(done)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_event_and_one_data_line() {
        let f = frame("delta", &json!({"text": "a\nb"}));
        assert_eq!(&f[..], b"event: delta\ndata: {\"text\":\"a\\nb\"}\n\n");
    }
}

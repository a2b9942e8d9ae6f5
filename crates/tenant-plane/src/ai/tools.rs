//! The tool-calling loop: the model asks for read-only tools, we run them and send the
//! results back, until it answers or the step limit is reached. Tool results are capped so the
//! conversation stays within the context budget, and the oldest results are shortened first
//! when it would not.

use std::time::Instant;

use atlasai_core::{ChatRequest, ChatResponse, Message, ToolCall, ToolChoice, ToolDefinition};
use serde::Serialize;
use serde_json::Value;

use super::budget::{Budget, truncate};
use super::{AiError, AiSession};

/// The read-only tools a feature offers the model.
#[async_trait::async_trait]
pub trait ToolBox: Send + Sync {
    /// The tools, as the model sees them.
    fn definitions(&self) -> Vec<ToolDefinition>;
    /// Runs one tool. An error is sent to the model as the tool's result (so it can try
    /// something else), not raised.
    async fn call(&self, name: &str, arguments: Value) -> Result<Value, String>;
}

/// One tool call the loop made, for the answer's trace.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ToolTrace {
    /// The tool.
    pub name: String,
    /// Its arguments.
    pub arguments: Value,
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it took.
    pub ms: u64,
}

/// How the loop ended.
#[derive(Debug, Clone)]
pub struct LoopOutcome {
    /// The model's final answer.
    pub answer: ChatResponse,
    /// The whole conversation, for a follow-up formatting call.
    pub messages: Vec<Message>,
    /// Every tool call made.
    pub trace: Vec<ToolTrace>,
    /// Model calls made.
    pub steps: u32,
    /// Whether the step limit cut the loop short.
    pub hit_step_limit: bool,
    /// Tokens over all calls.
    pub usage: atlasai_core::Usage,
}

/// Runs the loop. `request` holds the system prompt and the question; the tools are added.
pub async fn run(
    session: &AiSession,
    mut request: ChatRequest,
    toolbox: &dyn ToolBox,
    max_steps: u32,
) -> Result<LoopOutcome, AiError> {
    request.tools = toolbox.definitions();
    let budget = session.budget();
    request.max_tokens.get_or_insert(budget.output);
    // One tool result may use at most a fifth of the prompt budget (HolmesGPT's lesson:
    // uncapped log fetches overflow the context).
    let per_result = (budget.prompt() / 5).max(256);
    let mut trace = Vec::new();
    let mut usage = atlasai_core::Usage::default();
    let mut steps = 0u32;
    loop {
        fit(&mut request, &budget);
        steps += 1;
        let answer = session.chat(&request).await?;
        add_usage(&mut usage, &answer);
        if answer.tool_calls.is_empty() {
            return Ok(LoopOutcome {
                answer,
                messages: request.messages,
                trace,
                steps,
                hit_step_limit: false,
                usage,
            });
        }
        request.messages.push(Message::Assistant {
            content: answer.content.clone(),
            tool_calls: answer.tool_calls.clone(),
        });
        for call in &answer.tool_calls {
            let result = run_tool(toolbox, call, &mut trace).await;
            request
                .messages
                .push(Message::tool(&call.id, truncate(&result, per_result)));
        }
        if steps >= max_steps {
            // Out of steps: ask for the answer from what was gathered. The tools stay declared
            // (Anthropic and Bedrock refuse tool blocks in a history without them); the choice
            // forbids calling them.
            request.tool_choice = Some(ToolChoice::None);
            request.messages.push(Message::user(
                "You have used all tool calls available. Answer now from the information gathered so far.",
            ));
            fit(&mut request, &budget);
            let answer = session.chat(&request).await?;
            add_usage(&mut usage, &answer);
            return Ok(LoopOutcome {
                answer,
                messages: request.messages,
                trace,
                steps: steps + 1,
                hit_step_limit: true,
                usage,
            });
        }
    }
}

pub(crate) async fn run_tool(
    toolbox: &dyn ToolBox,
    call: &ToolCall,
    trace: &mut Vec<ToolTrace>,
) -> String {
    let started = Instant::now();
    let args: Result<Value, String> = if call.arguments.trim().is_empty() {
        Ok(Value::Object(Default::default()))
    } else {
        serde_json::from_str(&call.arguments)
            .map_err(|e| format!("arguments are not valid JSON: {e}"))
    };
    let (result, ok, arguments) = match args {
        Ok(args) => match toolbox.call(&call.name, args.clone()).await {
            Ok(v) => (v.to_string(), true, args),
            Err(e) => (serde_json::json!({"error": e}).to_string(), false, args),
        },
        Err(e) => (
            serde_json::json!({"error": e}).to_string(),
            false,
            Value::String(call.arguments.clone()),
        ),
    };
    trace.push(ToolTrace {
        name: call.name.clone(),
        arguments,
        ok,
        ms: started.elapsed().as_millis() as u64,
    });
    result
}

fn add_usage(total: &mut atlasai_core::Usage, answer: &ChatResponse) {
    if let Some(u) = answer.usage {
        total.prompt_tokens += u.prompt_tokens;
        total.completion_tokens += u.completion_tokens;
        total.total_tokens += u.total_tokens;
    }
}

/// Shortens the oldest tool results until the request fits the budget; the system prompt, the
/// question and the newest results are kept.
pub fn fit(request: &mut ChatRequest, budget: &Budget) {
    let mut index = 0;
    while !budget.fits(request) {
        let Some(i) = request.messages[index..]
            .iter()
            .position(|m| matches!(m, Message::Tool { content, .. } if content.len() > 40))
            .map(|p| p + index)
        else {
            break;
        };
        if let Message::Tool { content, .. } = &mut request.messages[i] {
            *content = "[result removed to stay within the model's context window]".to_owned();
        }
        index = i + 1;
    }
}

/// The tool-calling part of a conversation as plain text (calls, results and the model's
/// notes, oldest first), for a follow-up request that should not carry tool blocks. Each
/// result is cut to `per_result` tokens.
pub fn transcript(messages: &[Message], per_result: u32) -> String {
    let mut out = String::new();
    for m in messages {
        match m {
            Message::Assistant {
                content,
                tool_calls,
            } => {
                if let Some(c) = content.as_deref().filter(|c| !c.trim().is_empty()) {
                    out.push_str(&format!("Notes: {}\n", c.trim()));
                }
                for call in tool_calls {
                    out.push_str(&format!("Called {}({})\n", call.name, call.arguments));
                }
            }
            Message::Tool { content, .. } => {
                out.push_str(&format!("Result: {}\n", truncate(content, per_result)));
            }
            Message::System { .. } | Message::User { .. } => {}
        }
    }
    out
}

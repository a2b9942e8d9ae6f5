//! Provider-neutral chat and embedding types.
//!
//! They follow the OpenAI chat format (roles, content parts, `tools`, `tool_choice`,
//! `response_format`) because most clients and most providers speak it; every other dialect
//! translates to and from these types, and provider quirks stay in the translation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One chat request, independent of the provider that will serve it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far, oldest first. System messages may appear anywhere; dialects
    /// that take a single system prompt join them in order.
    pub messages: Vec<Message>,
    /// Functions the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// How the model should choose among `tools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn; `None` leaves the provider default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Plain text, any JSON object, or JSON matching a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Upper bound on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Penalises tokens by how often they already appear (OpenAI's -2.0 to 2.0). Only the
    /// OpenAI dialect sends it; dialects whose APIs have no such knob leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// Penalises tokens that already appear at all (OpenAI's -2.0 to 2.0). Only the OpenAI
    /// dialect sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// Sequences that end generation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Seed for providers that support reproducible sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// An opaque end-user id for providers that use it for abuse monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl ChatRequest {
    /// A request with one user message.
    pub fn user(text: impl Into<String>) -> Self {
        ChatRequest {
            messages: vec![Message::user(text)],
            ..ChatRequest::default()
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// Instructions for the model.
    System {
        /// The instructions.
        content: String,
    },
    /// What the user said: text and possibly images.
    User {
        /// The parts, in order.
        content: Vec<ContentPart>,
    },
    /// What the model said earlier: text, tool calls, or both.
    Assistant {
        /// The text, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        /// Tool calls the model made, in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, sent back to the model.
    Tool {
        /// The id of the call this answers.
        tool_call_id: String,
        /// The result, usually JSON text.
        content: String,
    },
}

impl Message {
    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Message::System {
            content: text.into(),
        }
    }

    /// A user message of plain text.
    pub fn user(text: impl Into<String>) -> Self {
        Message::User {
            content: vec![ContentPart::Text { text: text.into() }],
        }
    }

    /// An assistant message of plain text.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::Assistant {
            content: Some(text.into()),
            tool_calls: Vec::new(),
        }
    }

    /// A tool result.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Message::Tool {
            tool_call_id: tool_call_id.into(),
            content: content.into(),
        }
    }
}

/// A part of a user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image by URL (`https:` or a `data:` URL).
    ImageUrl {
        /// Where the image is.
        url: String,
    },
}

impl ContentPart {
    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ContentPart::Text { text } => Some(text),
            ContentPart::ImageUrl { .. } => None,
        }
    }
}

/// Joins the text parts of a user message with newlines; images are skipped.
pub fn joined_text(parts: &[ContentPart]) -> String {
    parts
        .iter()
        .filter_map(ContentPart::as_text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema for the arguments object.
    pub parameters: Value,
    /// Ask for strict schema adherence where the provider supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// One tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call; results refer to it.
    pub id: String,
    /// The function called.
    pub name: String,
    /// The arguments as JSON text, exactly as the model produced them.
    pub arguments: String,
}

/// How the model chooses tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this function.
    Function(String),
}

/// The shape of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// A name for the schema (some providers require one).
        name: String,
        /// The JSON Schema.
        schema: Value,
        /// Ask for strict adherence where supported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
        /// What the schema is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token limit.
    Length,
    /// The model called tools and waits for their results.
    ToolCalls,
    /// A content filter or guardrail intervened.
    ContentFilter,
    /// Anything else, with the provider's own word.
    Other(String),
}

impl FinishReason {
    /// The OpenAI spelling (`stop`, `length`, `tool_calls`, `content_filter`).
    pub fn as_openai(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other(s) => s,
        }
    }
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Their sum, as the provider reported it.
    pub total_tokens: u32,
}

impl Usage {
    /// Usage with the total computed.
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}

/// A complete answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The provider's id for the response, when it gives one.
    pub id: Option<String>,
    /// The model that answered, as the provider reported it.
    pub model: String,
    /// The text, if any.
    pub content: Option<String>,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Token counts, when the provider reported them.
    pub usage: Option<Usage>,
}

/// One event of a streamed answer. Every dialect's framing is parsed into these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The stream began; carries the response id and model when known.
    Start {
        /// The provider's response id.
        id: Option<String>,
        /// The model that answers.
        model: Option<String>,
    },
    /// A piece of text.
    TextDelta {
        /// The text.
        text: String,
    },
    /// A piece of a tool call. The first piece for an `index` carries `id` and `name`; later
    /// pieces carry more of `arguments`.
    ToolCallDelta {
        /// Which call, counting from 0 within this answer.
        index: u32,
        /// The call id, on the first piece.
        id: Option<String>,
        /// The function name, on the first piece.
        name: Option<String>,
        /// More argument text.
        arguments: String,
    },
    /// Token counts.
    Usage {
        /// The counts.
        usage: Usage,
    },
    /// Generation ended.
    Finish {
        /// Why.
        reason: FinishReason,
    },
}

/// Folds stream events into a complete answer; the same result a non-streaming call gives.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    id: Option<String>,
    model: Option<String>,
    text: String,
    saw_text: bool,
    calls: Vec<ToolCall>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl StreamAccumulator {
    /// Adds one event.
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::Start { id, model } => {
                if id.is_some() {
                    self.id.clone_from(id);
                }
                if model.is_some() {
                    self.model.clone_from(model);
                }
            }
            StreamEvent::TextDelta { text } => {
                self.saw_text = true;
                self.text.push_str(text);
            }
            StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => {
                let index = *index as usize;
                while self.calls.len() <= index {
                    self.calls.push(ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                let call = &mut self.calls[index];
                if let Some(id) = id {
                    call.id.clone_from(id);
                }
                if let Some(name) = name {
                    call.name.push_str(name);
                }
                call.arguments.push_str(arguments);
            }
            StreamEvent::Usage { usage } => self.usage = Some(*usage),
            StreamEvent::Finish { reason } => self.finish = Some(reason.clone()),
        }
    }

    /// Whether a `Finish` event arrived.
    pub fn finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The answer so far; `fallback_model` fills in a model the stream did not name.
    pub fn finish(self, fallback_model: &str) -> ChatResponse {
        let finish_reason = self.finish.unwrap_or(if self.calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        });
        ChatResponse {
            id: self.id,
            model: self.model.unwrap_or_else(|| fallback_model.to_owned()),
            content: self.saw_text.then_some(self.text),
            tool_calls: self.calls,
            finish_reason,
            usage: self.usage,
        }
    }
}

/// Texts to embed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// The inputs, embedded in order.
    pub inputs: Vec<String>,
    /// Requested vector size, for models that support shortening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
}

/// Vectors for an [`EmbeddingRequest`], one per input, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// The model that embedded.
    pub model: String,
    /// One vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// Prompt tokens consumed, when reported.
    pub prompt_tokens: Option<u32>,
}

/// A model a key can use, for model pickers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The id to put in configuration.
    pub id: String,
    /// A human-readable name, when the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Who owns or publishes it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulator_joins_text_and_tool_call_pieces_by_index() {
        let mut acc = StreamAccumulator::default();
        let events = [
            StreamEvent::Start {
                id: Some("r1".into()),
                model: Some("m".into()),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                id: Some("b".into()),
                name: Some("second".into()),
                arguments: "{\"x\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("a".into()),
                name: Some("first".into()),
                arguments: "{}".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                id: None,
                name: None,
                arguments: "1}".into(),
            },
            StreamEvent::Usage {
                usage: Usage::new(3, 4),
            },
        ];
        for e in &events {
            acc.push(e);
        }
        assert!(!acc.finished());
        let resp = acc.finish("fallback");
        assert_eq!(resp.id.as_deref(), Some("r1"));
        assert_eq!(resp.model, "m");
        assert_eq!(resp.content, None);
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
        assert_eq!(resp.tool_calls[0].name, "first");
        assert_eq!(resp.tool_calls[1].id, "b");
        assert_eq!(resp.tool_calls[1].arguments, "{\"x\":1}");
        assert_eq!(resp.usage.map(|u| u.total_tokens), Some(7));
    }

    #[test]
    fn messages_serialize_in_the_openai_shape() {
        let m = Message::tool("call_1", "{}");
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"role": "tool", "tool_call_id": "call_1", "content": "{}"})
        );
    }
}

//! Anthropic's response shapes: `Message` (a whole answer), its `usage`, stop reasons, and
//! `GET /v1/models` pages.

use atlasai_core::{ChatResponse, FinishReason, ToolCall, Usage};
use serde::Deserialize;
use serde_json::Value;

/// A whole answer (`Message` in the SDK).
#[derive(Debug, Deserialize)]
pub(super) struct WireMessage {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    content: Vec<WireBlock>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

/// A content block. Only `text` and `tool_use` matter to us; thinking, server-tool and
/// citation blocks are skipped.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// Token counts (`Usage`, and `MessageDeltaUsage` in streams, where every field is cumulative).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct WireUsage {
    pub(super) input_tokens: Option<u32>,
    pub(super) cache_creation_input_tokens: Option<u32>,
    pub(super) cache_read_input_tokens: Option<u32>,
    pub(super) output_tokens: Option<u32>,
}

impl WireUsage {
    /// All prompt tokens: Anthropic counts cache writes and cache reads apart from
    /// `input_tokens`, and documents the total input as their sum. OpenAI's `prompt_tokens`
    /// includes cached tokens, so the neutral count does too.
    pub(super) fn prompt_tokens(&self) -> Option<u32> {
        let parts = [
            self.input_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        ];
        if parts.iter().all(Option::is_none) {
            return None;
        }
        Some(
            parts
                .iter()
                .flatten()
                .fold(0u32, |a, b| a.saturating_add(*b)),
        )
    }
}

/// Maps `stop_reason` (`StopReason` in the SDK) to the neutral reason.
pub(super) fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        // The window filling up ends generation just as the token limit does.
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        // Anthropic's classifiers declined to continue.
        "refusal" => FinishReason::ContentFilter,
        // `pause_turn` (a long server-tool turn to resume) and anything newer keep their name.
        other => FinishReason::Other(other.to_owned()),
    }
}

/// The neutral tool-call arguments for a `tool_use` input object.
pub(super) fn arguments_text(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

impl WireMessage {
    pub(super) fn into_neutral(self, configured_model: &str) -> ChatResponse {
        let mut text: Option<String> = None;
        let mut tool_calls = Vec::new();
        for block in self.content {
            match block {
                // Citations split one answer into several text blocks; they read as one.
                WireBlock::Text { text: t } => text.get_or_insert_with(String::new).push_str(&t),
                WireBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments: arguments_text(&input),
                }),
                WireBlock::Other => {}
            }
        }
        let finish_reason = match self.stop_reason.as_deref() {
            Some(r) => finish_reason(r),
            None if !tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        let usage = self
            .usage
            .map(|u| Usage::new(u.prompt_tokens().unwrap_or(0), u.output_tokens.unwrap_or(0)));
        ChatResponse {
            id: self.id,
            model: self.model.unwrap_or_else(|| configured_model.to_owned()),
            content: text,
            tool_calls,
            finish_reason,
            usage,
        }
    }
}

/// One page of `GET /v1/models`.
#[derive(Debug, Deserialize)]
pub(super) struct WireModelPage {
    #[serde(default)]
    pub(super) data: Vec<WireModel>,
    #[serde(default)]
    has_more: bool,
    last_id: Option<String>,
}

impl WireModelPage {
    /// The `after_id` for the next page, or `None` on the last page.
    pub(super) fn next_cursor(&self) -> Option<String> {
        if !self.has_more || self.data.is_empty() {
            return None;
        }
        self.last_id
            .clone()
            .or_else(|| self.data.last().map(|m| m.id.clone()))
    }
}

/// One model (`ModelInfo` in the SDK).
#[derive(Debug, Deserialize)]
pub(super) struct WireModel {
    pub(super) id: String,
    pub(super) display_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_with_text_and_tool_use_blocks() {
        let wire: WireMessage = serde_json::from_str(
            r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5",
                "content":[{"type":"thinking","thinking":"hmm","signature":"x"},
                           {"type":"text","text":"Let me check. "},
                           {"type":"text","text":"One moment.","citations":null},
                           {"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}}],
                "stop_reason":"tool_use","stop_sequence":null,
                "usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":100,"output_tokens":7}}"#,
        )
        .unwrap();
        let r = wire.into_neutral("fallback");
        assert_eq!(r.model, "claude-sonnet-4-5");
        assert_eq!(r.content.as_deref(), Some("Let me check. One moment."));
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.usage, Some(Usage::new(115, 7)));
    }

    #[test]
    fn stop_reasons() {
        assert_eq!(finish_reason("end_turn"), FinishReason::Stop);
        assert_eq!(finish_reason("stop_sequence"), FinishReason::Stop);
        assert_eq!(finish_reason("max_tokens"), FinishReason::Length);
        assert_eq!(
            finish_reason("model_context_window_exceeded"),
            FinishReason::Length
        );
        assert_eq!(finish_reason("tool_use"), FinishReason::ToolCalls);
        assert_eq!(finish_reason("refusal"), FinishReason::ContentFilter);
        assert_eq!(
            finish_reason("pause_turn"),
            FinishReason::Other("pause_turn".into())
        );
    }

    #[test]
    fn model_pages_give_the_next_cursor_until_the_last() {
        let page: WireModelPage = serde_json::from_str(
            r#"{"data":[{"id":"a","type":"model","display_name":"A","created_at":"2025-01-01T00:00:00Z"},
                        {"id":"b","type":"model","display_name":"B","created_at":"2025-01-01T00:00:00Z"}],
                "has_more":true,"first_id":"a","last_id":"b"}"#,
        )
        .unwrap();
        assert_eq!(page.next_cursor().as_deref(), Some("b"));
        let last: WireModelPage = serde_json::from_str(
            r#"{"data":[{"id":"c","type":"model"}],"has_more":false,"first_id":"c","last_id":"c"}"#,
        )
        .unwrap();
        assert_eq!(last.next_cursor(), None);
    }
}

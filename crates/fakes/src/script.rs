//! What a fake answers: scripted steps, consumed one per model request.

use std::time::Duration;

use serde_json::Value;

/// One scripted answer or fault. Each model request (chat, stream, embeddings) takes the next
/// step; when the script is empty the fake answers with its default reply.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer normally (streamed when the request asked for a stream).
    Reply(FakeReply),
    /// Fail with this HTTP status and the provider's error body for it.
    Fail {
        /// The HTTP status (429, 500, 503, 529, 401, ...).
        status: u16,
        /// A `retry-after` to send, if any.
        retry_after: Option<RetryAfter>,
    },
    /// Reject the prompt as longer than the context window, in the provider's words.
    ContextTooLong,
    /// Reject the request because the model does not support tools, in the provider's words.
    ToolsUnsupported,
    /// Wait this long before answering (with the default reply).
    Stall(Duration),
    /// Answer 200 with a body that is not valid for the dialect.
    Malformed,
    /// Answer 200 but end the body early: a stream without its end marker, or half a JSON
    /// document.
    Truncated(FakeReply),
    /// Answer 200, send part of the body, then reset the connection.
    Reset(FakeReply),
}

/// How a fake says how long to wait.
#[derive(Debug, Clone, Copy)]
pub enum RetryAfter {
    /// `retry-after: <seconds>`.
    Seconds(u64),
    /// `retry-after-ms: <millis>` (OpenAI) alongside a rounded-up `retry-after`.
    Millis(u64),
}

/// A normal answer, rendered into each dialect's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeReply {
    /// The text, if any.
    pub text: Option<String>,
    /// Tool calls, in order.
    pub tool_calls: Vec<FakeToolCall>,
    /// Reported prompt tokens.
    pub prompt_tokens: u32,
    /// Reported completion tokens.
    pub completion_tokens: u32,
}

impl FakeReply {
    /// A text answer with small token counts.
    pub fn text(text: impl Into<String>) -> Self {
        FakeReply {
            text: Some(text.into()),
            tool_calls: Vec::new(),
            prompt_tokens: 12,
            completion_tokens: 5,
        }
    }

    /// An answer that calls these tools.
    pub fn tool_calls(calls: Vec<FakeToolCall>) -> Self {
        FakeReply {
            text: None,
            tool_calls: calls,
            prompt_tokens: 30,
            completion_tokens: 20,
        }
    }

    /// The text split into a few pieces, as a stream would deliver it.
    pub fn text_pieces(&self) -> Vec<String> {
        let Some(text) = &self.text else {
            return Vec::new();
        };
        let chars: Vec<char> = text.chars().collect();
        let size = chars.len().div_ceil(3).max(1);
        chars.chunks(size).map(|c| c.iter().collect()).collect()
    }
}

/// One tool call in a fake answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeToolCall {
    /// The call id (dialects without ids ignore it).
    pub id: String,
    /// The function name.
    pub name: String,
    /// The arguments object.
    pub arguments: Value,
}

impl FakeToolCall {
    /// A call.
    pub fn new(id: &str, name: &str, arguments: Value) -> Self {
        FakeToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments,
        }
    }

    /// The arguments as JSON text split in two, as streams deliver them.
    pub fn argument_pieces(&self) -> [String; 2] {
        let text = self.arguments.to_string();
        let mid = text.len() / 2;
        let mid = (0..=mid)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        [text[..mid].to_owned(), text[mid..].to_owned()]
    }
}

/// The deterministic vector a fake returns for a text: the same text always gives the same
/// vector, different texts almost surely differ, and the first component is the text's length
/// so tests can check order.
pub fn embedding_for(text: &str, dims: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(dims);
    out.push(text.len() as f32);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    for i in 1..dims {
        h ^= i as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        out.push(((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0);
    }
    out
}

//! Token budgeting without a tokenizer: conservative estimates that keep every request within
//! the model's context window, and the helpers that cut evidence to fit.
//!
//! No tokenizer ships for every provider's models, so we bound instead of count: real
//! tokenizers produce about one token per 4 characters of English and about one per 2.5-3 of
//! logs full of numbers and punctuation; we assume one per [`CHARS_PER_TOKEN`] characters,
//! which over-estimates in almost every case, so the estimate is an upper bound in practice.

use atlasai_core::{ChatRequest, ContentPart, Message, ProviderKind};

/// Characters assumed per token (deliberately pessimistic; see the module docs).
pub const CHARS_PER_TOKEN: usize = 3;
/// Tokens a message costs beyond its text (role, separators).
const PER_MESSAGE_OVERHEAD: u32 = 6;

/// An upper estimate of the tokens in a text.
pub fn estimate_text(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(CHARS_PER_TOKEN)).unwrap_or(u32::MAX)
}

/// An upper estimate of the tokens a message costs.
pub fn estimate_message(message: &Message) -> u32 {
    let text_tokens = match message {
        Message::System { content } => estimate_text(content),
        Message::User { content } => content
            .iter()
            .map(|p| match p {
                ContentPart::Text { text } => estimate_text(text),
                // Providers charge images by size; a tile-sized image is well under this.
                ContentPart::ImageUrl { .. } => 1_000,
            })
            .sum(),
        Message::Assistant {
            content,
            tool_calls,
        } => {
            content.as_deref().map(estimate_text).unwrap_or(0)
                + tool_calls
                    .iter()
                    .map(|c| estimate_text(&c.name) + estimate_text(&c.arguments) + 8)
                    .sum::<u32>()
        }
        Message::Tool {
            tool_call_id,
            content,
        } => estimate_text(tool_call_id) + estimate_text(content),
    };
    text_tokens + PER_MESSAGE_OVERHEAD
}

/// An upper estimate of the prompt tokens of a whole request: messages, tool definitions and
/// the response schema (providers put both into the prompt).
pub fn estimate_request(request: &ChatRequest) -> u32 {
    let messages: u32 = request.messages.iter().map(estimate_message).sum();
    let tools: u32 = request
        .tools
        .iter()
        .map(|t| {
            estimate_text(&t.name)
                + t.description.as_deref().map(estimate_text).unwrap_or(0)
                + estimate_text(&t.parameters.to_string())
                + 10
        })
        .sum();
    let schema = match &request.response_format {
        Some(atlasai_core::ResponseFormat::JsonSchema { schema, .. }) => {
            estimate_text(&schema.to_string())
        }
        _ => 0,
    };
    messages + tools + schema + 3
}

/// How much of the context window a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The model's whole context window, in tokens.
    pub context: u32,
    /// Tokens kept free for the answer.
    pub output: u32,
}

impl Budget {
    /// A budget that keeps `output` tokens (at most a quarter of the window) for the answer.
    pub fn new(context: u32, output: u32) -> Self {
        Budget {
            context,
            output: output.min(context / 4),
        }
    }

    /// Tokens the prompt may use.
    pub fn prompt(&self) -> u32 {
        self.context.saturating_sub(self.output)
    }

    /// Whether a request fits.
    pub fn fits(&self, request: &ChatRequest) -> bool {
        estimate_request(request) <= self.prompt()
    }
}

/// The context window to assume for a model when none is configured (`TP_CONTEXT_TOKENS`).
/// Known families get their documented windows; anything unknown gets a small, safe default,
/// because sending too much fails while sending too little only summarises more.
pub fn default_context_tokens(kind: ProviderKind, model: &str) -> u32 {
    let m = model.to_ascii_lowercase();
    let has = |p: &str| m.contains(p);
    if has("claude") {
        200_000
    } else if has("gemini") {
        1_000_000
    } else if has("gpt-4o")
        || has("gpt-4.1")
        || has("gpt-4-turbo")
        || has("gpt-5")
        || m.starts_with('o') && (has("o1") || has("o3") || has("o4"))
    {
        128_000
    } else if has("gpt-3.5") {
        16_385
    } else if has("gpt-4") {
        8_192
    } else if has("llama3-8b") || has("llama3-70b") || has("titan-text") {
        8_000
    } else if has("llama3-1")
        || has("llama3-2")
        || has("llama3.1")
        || has("llama-3.1")
        || has("llama3.2")
        || has("llama-3.2")
        || has("llama3-3")
        || has("llama3.3")
    {
        // Ollama serves these with a much smaller default window than the model allows,
        // and its OpenAI-compatible API cannot raise it per request.
        if kind == ProviderKind::Ollama {
            4_096
        } else {
            128_000
        }
    } else if has("mistral") || has("mixtral") {
        32_000
    } else if kind == ProviderKind::Ollama {
        4_096
    } else {
        8_192
    }
}

/// Cuts a text to at most `tokens` (estimated), keeping the start and marking the cut.
pub fn truncate(text: &str, tokens: u32) -> String {
    let max_chars = tokens as usize * CHARS_PER_TOKEN;
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let marker = " …[truncated]";
    let keep = max_chars.saturating_sub(marker.len());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(marker);
    out
}

/// Packs items, in order, into groups whose estimated size stays within `tokens` each; an
/// item larger than `tokens` on its own is truncated to fit. Used to map evidence over
/// several calls when it does not fit into one.
pub fn pack(items: &[String], tokens: u32) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut used = 0u32;
    for item in items {
        let item = if estimate_text(item) + 1 > tokens {
            truncate(item, tokens.saturating_sub(1))
        } else {
            item.clone()
        };
        let cost = estimate_text(&item) + 1;
        if used + cost > tokens && !current.is_empty() {
            groups.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost;
        current.push(item);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_upper_bounds_of_characters_over_three() {
        assert_eq!(estimate_text(""), 0);
        assert_eq!(estimate_text("abc"), 1);
        assert_eq!(estimate_text("abcd"), 2);
        let req = ChatRequest::user("x".repeat(300));
        assert!(estimate_request(&req) >= 100);
    }

    #[test]
    fn pack_keeps_order_and_bounds() {
        let items: Vec<String> = (0..50)
            .map(|i| format!("line {i} {}", "x".repeat(30)))
            .collect();
        let groups = pack(&items, 60);
        assert!(groups.len() > 1);
        let flat: Vec<&String> = groups.iter().flatten().collect();
        assert_eq!(flat.len(), 50);
        assert_eq!(flat[0], &items[0]);
        for g in &groups {
            let size: u32 = g.iter().map(|i| estimate_text(i) + 1).sum();
            assert!(size <= 60, "{size}");
        }
        let huge = vec!["y".repeat(10_000)];
        let groups = pack(&huge, 100);
        assert!(estimate_text(&groups[0][0]) < 100);
    }

    #[test]
    fn budget_reserves_output_but_never_most_of_the_window() {
        let b = Budget::new(4096, 4000);
        assert_eq!(b.output, 1024);
        assert_eq!(b.prompt(), 3072);
    }

    #[test]
    fn known_models_get_their_windows_and_unknown_ones_a_safe_default() {
        assert_eq!(
            default_context_tokens(ProviderKind::OpenAi, "gpt-4o-mini"),
            128_000
        );
        assert_eq!(
            default_context_tokens(
                ProviderKind::Bedrock,
                "anthropic.claude-3-haiku-20240307-v1:0"
            ),
            200_000
        );
        assert_eq!(
            default_context_tokens(ProviderKind::Ollama, "llama3.2"),
            4_096
        );
        assert_eq!(
            default_context_tokens(ProviderKind::Vllm, "meta-llama/Llama-3.1-8B-Instruct"),
            128_000
        );
        assert_eq!(
            default_context_tokens(ProviderKind::OpenAiCompatible, "my-model"),
            8_192
        );
    }
}

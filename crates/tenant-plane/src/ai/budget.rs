//! Token budgeting without a tokenizer: conservative estimates that keep every request within
//! the model's context window, and the helpers that cut evidence to fit.
//!
//! No tokenizer ships for every provider's models, so we bound instead of count. The estimate
//! follows how byte-pair tokenizers split text: a run of letters costs one token per three
//! letters (common words are one token, so English is over-estimated by about a third), every
//! three digits cost a token (GPT and Llama 3 tokenizers group at most three digits), every
//! punctuation mark and symbol costs one, a line break costs one, and any other character
//! (CJK, emoji) costs two. Text full of ids, hashes and numbers (logs) is where a flat
//! "characters / 4" estimate undercounts by half; this one stays above the real count there
//! too (a test compares it with OpenAI's o200k tokenizer on log lines).

use atlasai_core::{ChatRequest, ContentPart, Message, ProviderKind};

/// Characters per token assumed when cutting text to a token budget before measuring it.
const CHARS_PER_TOKEN: usize = 3;
/// Tokens a message costs beyond its text (role, separators).
const PER_MESSAGE_OVERHEAD: u32 = 6;

/// An upper estimate of the tokens in a text (see the module docs).
pub fn estimate_text(text: &str) -> u32 {
    let mut tokens: u64 = 0;
    let mut letters: u64 = 0;
    let mut digits: u64 = 0;
    let flush = |run: &mut u64, tokens: &mut u64| {
        *tokens += run.div_ceil(3);
        *run = 0;
    };
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            flush(&mut digits, &mut tokens);
            letters += 1;
            continue;
        }
        flush(&mut letters, &mut tokens);
        if c.is_ascii_digit() {
            digits += 1;
            continue;
        }
        flush(&mut digits, &mut tokens);
        tokens += match c {
            // A single space joins the next word's token.
            ' ' => 0,
            c if c.is_ascii() => 1,
            _ => 2,
        };
    }
    flush(&mut letters, &mut tokens);
    flush(&mut digits, &mut tokens);
    u32::try_from(tokens).unwrap_or(u32::MAX)
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
    if estimate_text(text) <= tokens {
        return text.to_owned();
    }
    let marker = " …[truncated]";
    let budget = tokens.saturating_sub(estimate_text(marker));
    // Start from the character count the budget allows at best, and shorten until the
    // estimate fits (a few rounds at most: each keeps 80%).
    let mut keep = (budget as usize * CHARS_PER_TOKEN).min(text.chars().count());
    loop {
        let head: String = text.chars().take(keep).collect();
        if keep == 0 || estimate_text(&head) <= budget {
            let mut out = head;
            out.push_str(marker);
            return out;
        }
        keep = keep * 4 / 5;
    }
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
    fn estimates_follow_the_shape_of_the_text() {
        assert_eq!(estimate_text(""), 0);
        assert_eq!(estimate_text("abc"), 1);
        assert_eq!(estimate_text("abcd"), 2);
        assert_eq!(estimate_text("the cat"), 2);
        // Digits in threes, punctuation one each, a line break one.
        assert_eq!(estimate_text("1234567"), 3);
        assert_eq!(estimate_text("a=1,b=2\n"), 8);
        // Ids and hashes cost far more than a quarter of their length.
        let id = "0193a5c2-7d4e-7f00-8a1b-3c2d1e0f9a8b";
        assert!(estimate_text(id) > 24, "{}", estimate_text(id));
        assert_eq!(estimate_text("日本"), 4);
        let req = ChatRequest::user("x".repeat(300));
        assert!(estimate_request(&req) >= 100);
    }

    #[test]
    fn truncation_fits_the_estimate() {
        let text = "id=0193a5c2-7d4e-7f00 status=503 ".repeat(200);
        for tokens in [10, 50, 333] {
            let cut = truncate(&text, tokens);
            assert!(
                estimate_text(&cut) <= tokens,
                "{tokens}: {}",
                estimate_text(&cut)
            );
            assert!(cut.ends_with("[truncated]"));
        }
        assert_eq!(truncate("short", 10), "short");
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

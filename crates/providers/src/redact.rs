//! Redaction of prompts bound for public endpoints: secrets (API keys, tokens, passwords in
//! URLs and `key=value` pairs, private keys), e-mail addresses and IP addresses are replaced
//! by stable placeholders (`[EMAIL_1]`: the same value gets the same placeholder throughout a
//! request) before the request leaves, and restored in the answer wherever the model repeats a
//! placeholder, including in streamed text and tool-call arguments.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use atlasai_core::{
    ChatRequest, ChatResponse, ContentPart, EmbeddingRequest, EmbeddingResponse, Message,
    ModelInfo, StreamEvent,
};
use futures_util::StreamExt;
use regex::Regex;

use crate::{ChatStream, Provider, ProviderError, ProviderInfo};

/// What a finding is, which names its placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Secret,
    Email,
    Ip,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Secret => "SECRET",
            Kind::Email => "EMAIL",
            Kind::Ip => "IP",
        }
    }
}

/// A pattern, the capture group holding the sensitive part (0: all of it), and its kind.
struct Pattern {
    regex: Regex,
    group: usize,
    kind: Kind,
}

#[expect(
    clippy::expect_used,
    reason = "the patterns are constants, checked by the tests"
)]
static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |re: &str, group: usize, kind: Kind| Pattern {
        regex: Regex::new(re).expect("redaction pattern compiles"),
        group,
        kind,
    };
    vec![
        // Private keys, whole blocks.
        p(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
            0,
            Kind::Secret,
        ),
        // Passwords in URLs: scheme://user:PASSWORD@host
        p(
            r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]+:([^\s@/]+)@",
            1,
            Kind::Secret,
        ),
        // Bearer tokens.
        p(
            r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)",
            1,
            Kind::Secret,
        ),
        // JSON Web Tokens.
        p(
            r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}",
            0,
            Kind::Secret,
        ),
        // Keys with well-known prefixes: OpenAI, Anthropic, AWS, GitHub, Slack, Google, GitLab.
        p(
            r"\b(?:sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|glpat-[A-Za-z0-9_\-]{20,})",
            0,
            Kind::Secret,
        ),
        // password=..., "api_key": "...", token: ... (the value only).
        p(
            r#"(?i)\b(?:password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|api[_\-]?key|access[_\-]?key|secret[_\-]?key|auth)["']?\s*[=:]\s*["']?([^\s"',;&}]{6,})"#,
            1,
            Kind::Secret,
        ),
        p(
            r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b",
            0,
            Kind::Email,
        ),
        p(
            r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
            0,
            Kind::Ip,
        ),
        // IPv6 candidates, confirmed by parsing below.
        p(r"(?i)\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b", 0, Kind::Ip),
    ]
});

#[expect(
    clippy::expect_used,
    reason = "a constant pattern, checked by the tests"
)]
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[(?:SECRET|EMAIL|IP)_[0-9]+\]").expect("placeholder pattern compiles")
});

/// The redactions of one request: which placeholder stands for which value.
#[derive(Debug, Default, Clone)]
pub struct Redactions {
    by_value: HashMap<String, String>,
    by_placeholder: HashMap<String, String>,
    counts: HashMap<&'static str, u32>,
}

impl Redactions {
    /// A fresh set.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct values were replaced.
    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    /// Whether nothing was replaced.
    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }

    fn placeholder(&mut self, kind: Kind, value: &str) -> String {
        if let Some(p) = self.by_value.get(value) {
            return p.clone();
        }
        let n = self.counts.entry(kind.label()).or_insert(0);
        *n += 1;
        let p = format!("[{}_{}]", kind.label(), n);
        self.by_value.insert(value.to_owned(), p.clone());
        self.by_placeholder.insert(p.clone(), value.to_owned());
        p
    }

    /// The text with every finding replaced by its placeholder.
    pub fn redact(&mut self, text: &str) -> String {
        let mut text = text.to_owned();
        for pattern in PATTERNS.iter() {
            let mut out = String::with_capacity(text.len());
            let mut last = 0;
            for caps in pattern.regex.captures_iter(&text) {
                let Some(m) = caps.get(pattern.group) else {
                    continue;
                };
                let value = m.as_str();
                if PLACEHOLDER.is_match(value) {
                    continue;
                }
                if pattern.kind == Kind::Ip
                    && value.contains(':')
                    && value.parse::<Ipv6Addr>().is_err()
                {
                    continue;
                }
                out.push_str(&text[last..m.start()]);
                let p = self.placeholder(pattern.kind, value);
                out.push_str(&p);
                last = m.end();
            }
            out.push_str(&text[last..]);
            text = out;
        }
        text
    }

    /// The text with every known placeholder replaced by its value.
    pub fn restore(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        PLACEHOLDER
            .replace_all(text, |c: &regex::Captures<'_>| {
                self.by_placeholder
                    .get(&c[0])
                    .cloned()
                    .unwrap_or_else(|| c[0].to_owned())
            })
            .into_owned()
    }

    /// Like [`Redactions::restore`], for text inside a JSON string (tool-call arguments): the
    /// values are JSON-escaped.
    pub fn restore_json(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        PLACEHOLDER
            .replace_all(text, |c: &regex::Captures<'_>| {
                match self.by_placeholder.get(&c[0]) {
                    Some(v) => {
                        let quoted = serde_json::to_string(v).unwrap_or_default();
                        quoted[1..quoted.len().saturating_sub(1)].to_owned()
                    }
                    None => c[0].to_owned(),
                }
            })
            .into_owned()
    }

    /// Redacts every text of a request.
    pub fn redact_request(&mut self, request: &ChatRequest) -> ChatRequest {
        let mut out = request.clone();
        for m in &mut out.messages {
            match m {
                Message::System { content } => *content = self.redact(content),
                Message::User { content } => {
                    for part in content.iter_mut() {
                        if let ContentPart::Text { text } = part {
                            *text = self.redact(text);
                        }
                    }
                }
                Message::Assistant {
                    content,
                    tool_calls,
                } => {
                    if let Some(c) = content {
                        *c = self.redact(c);
                    }
                    for call in tool_calls {
                        call.arguments = self.redact(&call.arguments);
                    }
                }
                Message::Tool { content, .. } => *content = self.redact(content),
            }
        }
        out
    }
}

/// Restores placeholders in streamed text, holding back a tail that may be the start of a
/// placeholder split across chunks.
#[derive(Debug)]
pub struct StreamRestorer {
    redactions: Arc<Redactions>,
    pending: String,
    json: bool,
}

impl StreamRestorer {
    /// A restorer; `json` escapes restored values (for tool-call argument text).
    pub fn new(redactions: Arc<Redactions>, json: bool) -> Self {
        StreamRestorer {
            redactions,
            pending: String::new(),
            json,
        }
    }

    /// Adds text; returns what can be emitted now.
    pub fn push(&mut self, text: &str) -> String {
        self.pending.push_str(text);
        // Keep back from the last '[' if what follows could still grow into a placeholder.
        let hold = match self.pending.rfind('[') {
            Some(i) if could_be_placeholder(&self.pending[i..]) => i,
            _ => self.pending.len(),
        };
        let ready: String = self.pending.drain(..hold).collect();
        self.apply(&ready)
    }

    /// Emits whatever is held back.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.apply(&rest)
    }

    fn apply(&self, text: &str) -> String {
        if self.json {
            self.redactions.restore_json(text)
        } else {
            self.redactions.restore(text)
        }
    }
}

/// Whether `tail` (starting with '[') is a prefix of some placeholder.
fn could_be_placeholder(tail: &str) -> bool {
    let inner = &tail[1..];
    if inner.contains(']') || inner.len() > 16 {
        return false;
    }
    let (word, digits) = match inner.find('_') {
        Some(i) => (&inner[..i], Some(&inner[i + 1..])),
        None => (inner, None),
    };
    let word_ok = ["SECRET", "EMAIL", "IP"]
        .iter()
        .any(|w| w.starts_with(word));
    let full_word = ["SECRET", "EMAIL", "IP"].contains(&word);
    match digits {
        None => word_ok,
        Some(d) => full_word && d.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// A client whose requests are redacted and whose answers are restored.
#[derive(Debug)]
pub struct Redacting {
    inner: Arc<dyn Provider>,
}

impl Redacting {
    /// Wraps a client.
    pub fn wrap(inner: Arc<dyn Provider>) -> Arc<dyn Provider> {
        Arc::new(Redacting { inner })
    }
}

#[async_trait::async_trait]
impl Provider for Redacting {
    fn info(&self) -> &ProviderInfo {
        self.inner.info()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let mut r = Redactions::new();
        let sent = r.redact_request(request);
        let mut answer = self.inner.chat(&sent).await?;
        answer.content = answer.content.map(|c| r.restore(&c));
        for call in &mut answer.tool_calls {
            call.arguments = r.restore_json(&call.arguments);
        }
        Ok(answer)
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let mut r = Redactions::new();
        let sent = r.redact_request(request);
        let stream = self.inner.chat_stream(&sent).await?;
        let r = Arc::new(r);
        let text = Mutex::new(StreamRestorer::new(r.clone(), false));
        let args: Mutex<HashMap<u32, StreamRestorer>> = Mutex::new(HashMap::new());
        let stream = stream.flat_map(move |item| {
            let lock = |m: &Mutex<StreamRestorer>| -> String {
                m.lock().unwrap_or_else(PoisonError::into_inner).finish()
            };
            let events: Vec<Result<StreamEvent, ProviderError>> = match item {
                Ok(StreamEvent::TextDelta { text: t }) => {
                    let out = text.lock().unwrap_or_else(PoisonError::into_inner).push(&t);
                    if out.is_empty() {
                        Vec::new()
                    } else {
                        vec![Ok(StreamEvent::TextDelta { text: out })]
                    }
                }
                Ok(StreamEvent::ToolCallDelta {
                    index,
                    id,
                    name,
                    arguments,
                }) => {
                    let mut args = args.lock().unwrap_or_else(PoisonError::into_inner);
                    let restorer = args
                        .entry(index)
                        .or_insert_with(|| StreamRestorer::new(r.clone(), true));
                    let out = restorer.push(&arguments);
                    vec![Ok(StreamEvent::ToolCallDelta {
                        index,
                        id,
                        name,
                        arguments: out,
                    })]
                }
                Ok(StreamEvent::Finish { reason }) => {
                    // Flush held-back text and arguments before the stream ends.
                    let mut out = Vec::new();
                    let rest = lock(&text);
                    if !rest.is_empty() {
                        out.push(Ok(StreamEvent::TextDelta { text: rest }));
                    }
                    let mut args = args.lock().unwrap_or_else(PoisonError::into_inner);
                    for (index, restorer) in args.iter_mut() {
                        let rest = restorer.finish();
                        if !rest.is_empty() {
                            out.push(Ok(StreamEvent::ToolCallDelta {
                                index: *index,
                                id: None,
                                name: None,
                                arguments: rest,
                            }));
                        }
                    }
                    out.push(Ok(StreamEvent::Finish { reason }));
                    out
                }
                other => vec![other],
            };
            futures_util::stream::iter(events)
        });
        Ok(Box::pin(stream))
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let mut r = Redactions::new();
        let sent = EmbeddingRequest {
            inputs: request.inputs.iter().map(|t| r.redact(t)).collect(),
            dimensions: request.dimensions,
        };
        self.inner.embed(&sent).await
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        self.inner.list_models().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_secrets_emails_and_addresses_with_stable_placeholders() {
        let mut r = Redactions::new();
        let text = "db at postgres://app:hunter2pass@10.0.4.7:5432/prod failed for ops@acme.io; \
                    key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX, aws AKIAIOSFODNN7EXAMPLE, \
                    Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456, password=s3cr3t!x, \
                    retry from 10.0.4.7 and fe80::1ff:fe23:4567:890a, mail ops@acme.io again";
        let out = r.redact(text);
        for leaked in [
            "hunter2pass",
            "ops@acme.io",
            "10.0.4.7",
            "sk-proj-ABCD",
            "AKIAIOSFODNN7EXAMPLE",
            "abcdefghijklmnopqrstuvwxyz123456",
            "s3cr3t!x",
            "fe80::1ff",
        ] {
            assert!(!out.contains(leaked), "{leaked} leaked: {out}");
        }
        assert_eq!(
            out.matches("[EMAIL_1]").count(),
            2,
            "same value, same placeholder: {out}"
        );
        assert_eq!(out.matches("[IP_1]").count(), 2, "{out}");
        assert!(out.contains("[IP_2]"), "{out}");
        assert!(
            out.contains("postgres://app:[SECRET_1]@[IP_1]:5432/prod"),
            "{out}"
        );
        assert_eq!(r.restore(&out), text);
    }

    #[test]
    fn private_keys_and_jwts_are_removed_whole() {
        let mut r = Redactions::new();
        let text = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY----- and eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let out = r.redact(text);
        assert_eq!(out, "[SECRET_1] and [SECRET_2]");
        assert_eq!(r.restore(&out), text);
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let mut r = Redactions::new();
        let text =
            "p99 latency rose from 120ms to 2.5s at 14:30:05 after deploy v1.2.3 of checkout";
        assert_eq!(r.redact(text), text);
        assert!(r.is_empty());
    }

    #[test]
    fn streamed_placeholders_split_across_chunks_are_restored() {
        let mut r = Redactions::new();
        r.redact("mail ops@acme.io");
        let mut s = StreamRestorer::new(Arc::new(r), false);
        let mut out = String::new();
        for piece in ["Contact [EM", "AIL", "_1] now [not a placeholder] [", "IP"] {
            out.push_str(&s.push(piece));
        }
        out.push_str(&s.finish());
        assert_eq!(out, "Contact ops@acme.io now [not a placeholder] [IP");
    }

    #[test]
    fn tool_arguments_get_json_escaped_values() {
        let mut r = Redactions::new();
        // A value with a backslash must be escaped when it goes back into JSON text.
        let red = r.redact(r"password=pa\ss1234");
        assert_eq!(red, "password=[SECRET_1]");
        let args = r#"{"login": "[SECRET_1]"}"#;
        let restored = r.restore_json(args);
        let v: serde_json::Value = serde_json::from_str(&restored).unwrap();
        assert_eq!(v["login"], r"pa\ss1234", "{restored}");
    }
}

//! Vertex AI `GenerateContentResponse` into neutral answers, whole or streamed.
//!
//! Wire format: `GenerateContentResponse` (`candidates`, `promptFeedback`, `usageMetadata`,
//! `modelVersion`, `responseId`) in `google/cloud/aiplatform/v1/prediction_service.proto` and
//! `Candidate.FinishReason` in `content.proto`. `:streamGenerateContent?alt=sse` sends one such
//! response per `data:` line, with no event names and no terminator: the body simply ends, and
//! the last chunk's candidate carries `finishReason`.

use atlasai_core::{ChatResponse, FinishReason, StreamEvent, ToolCall, Usage};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::map_error;
use super::request::{Content, call_id};
use crate::error::ProviderError;
use crate::sse::FrameParser;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
    response_id: Option<String>,
    /// Set instead of the above when a stream fails after it started.
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u32,
    #[serde(default)]
    candidates_token_count: u32,
    #[serde(default)]
    thoughts_token_count: u32,
    total_token_count: Option<u32>,
}

impl From<UsageMetadata> for Usage {
    fn from(u: UsageMetadata) -> Usage {
        // Thinking tokens are generated and billed as output, but Gemini counts them apart
        // from `candidatesTokenCount`; completion tokens include them so budgets hold.
        let mut usage = Usage::new(
            u.prompt_token_count,
            u.candidates_token_count
                .saturating_add(u.thoughts_token_count),
        );
        if let Some(total) = u.total_token_count {
            usage.total_tokens = total;
        }
        usage
    }
}

/// Maps `Candidate.FinishReason`.
fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "MODEL_ARMOR"
        | "IMAGE_SAFETY" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_ascii_lowercase()),
    }
}

/// A model that called functions waits for their results, whatever the finish reason says
/// (Gemini reports `STOP`).
fn with_calls(reason: FinishReason, has_calls: bool) -> FinishReason {
    match reason {
        FinishReason::Stop if has_calls => FinishReason::ToolCalls,
        other => other,
    }
}

/// Reads `{"error": {...}}` found inside a 200 response.
fn embedded_error(error: Value) -> ProviderError {
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(500);
    let body = serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default();
    let mut err = map_error(status, &HeaderMap::new(), &body);
    err.status = Some(status);
    err
}

/// The text (thoughts left out) and function calls of a candidate's parts, numbering calls
/// from `first_call`.
fn read_parts(content: Option<Content>, first_call: u32) -> (Vec<String>, Vec<ToolCall>) {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for part in content.map(|c| c.parts).unwrap_or_default() {
        if part.thought == Some(true) {
            continue;
        }
        if let Some(text) = part.text.filter(|t| !t.is_empty()) {
            texts.push(text);
        }
        if let Some(call) = part.function_call {
            let index = first_call + calls.len() as u32;
            calls.push(ToolCall {
                id: call_id(index, call.id.as_deref(), part.thought_signature.as_deref()),
                name: call.name,
                arguments: match call.args {
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(args) => args.to_string(),
                },
            });
        }
    }
    (texts, calls)
}

impl GenerateContentResponse {
    /// The complete answer of `:generateContent`.
    pub(super) fn into_neutral(
        self,
        configured_model: &str,
    ) -> Result<ChatResponse, ProviderError> {
        if let Some(error) = self.error {
            return Err(embedded_error(error));
        }
        let usage = self.usage_metadata.map(Usage::from);
        let model = self
            .model_version
            .unwrap_or_else(|| configured_model.to_owned());
        let Some(candidate) = self.candidates.into_iter().next() else {
            // A blocked prompt gets no candidate at all, only the reason.
            return match self.prompt_feedback.and_then(|f| f.block_reason) {
                Some(_) => Ok(ChatResponse {
                    id: self.response_id,
                    model,
                    content: None,
                    tool_calls: Vec::new(),
                    finish_reason: FinishReason::ContentFilter,
                    usage,
                }),
                None => Err(ProviderError::invalid_response(
                    "generateContent response has no candidates",
                )),
            };
        };
        let (texts, tool_calls) = read_parts(candidate.content, 0);
        let finish = candidate
            .finish_reason
            .as_deref()
            .map_or(FinishReason::Stop, finish_reason);
        Ok(ChatResponse {
            id: self.response_id,
            model,
            content: (!texts.is_empty()).then(|| texts.concat()),
            finish_reason: with_calls(finish, !tool_calls.is_empty()),
            tool_calls,
            usage,
        })
    }
}

/// Parses `streamGenerateContent?alt=sse` chunks. The end marker is the first candidate with a
/// `finishReason` (or a blocked prompt); a body that ends before it was cut off.
#[derive(Debug, Default)]
pub(super) struct StreamParser {
    started: bool,
    finished: bool,
    calls: u32,
    usage: Option<Usage>,
}

impl FrameParser<eventsource_stream::Event> for StreamParser {
    fn on_frame(
        &mut self,
        event: eventsource_stream::Event,
    ) -> Result<Vec<StreamEvent>, ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let chunk: GenerateContentResponse = serde_json::from_str(data).map_err(|e| {
            ProviderError::invalid_response(format!("could not parse stream chunk: {e}"))
        })?;
        if let Some(error) = chunk.error {
            return Err(embedded_error(error));
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.response_id,
                model: chunk.model_version,
            });
        }
        // Usage may come with every chunk, growing; the last one seen is the total.
        if let Some(usage) = chunk.usage_metadata {
            self.usage = Some(usage.into());
        }
        let mut finish = None;
        match chunk.candidates.into_iter().next() {
            Some(candidate) => {
                let (texts, calls) = read_parts(candidate.content, self.calls);
                out.extend(
                    texts
                        .into_iter()
                        .map(|text| StreamEvent::TextDelta { text }),
                );
                for call in calls {
                    out.push(StreamEvent::ToolCallDelta {
                        index: self.calls,
                        id: Some(call.id),
                        name: Some(call.name),
                        arguments: call.arguments,
                    });
                    self.calls += 1;
                }
                finish = candidate
                    .finish_reason
                    .filter(|r| !r.is_empty() && r != "FINISH_REASON_UNSPECIFIED")
                    .map(|r| with_calls(finish_reason(&r), self.calls > 0));
            }
            None => {
                if chunk.prompt_feedback.and_then(|f| f.block_reason).is_some() {
                    finish = Some(FinishReason::ContentFilter);
                }
            }
        }
        if let Some(reason) = finish {
            self.finished = true;
            out.push(StreamEvent::Finish { reason });
            if let Some(usage) = self.usage {
                out.push(StreamEvent::Usage { usage });
            }
        }
        Ok(out)
    }

    fn is_done(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use atlasai_core::{ProviderErrorKind, StreamAccumulator};
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> GenerateContentResponse {
        serde_json::from_value(v).unwrap()
    }

    fn frame(v: Value) -> eventsource_stream::Event {
        eventsource_stream::Event {
            data: v.to_string(),
            ..eventsource_stream::Event::default()
        }
    }

    #[test]
    fn text_thoughts_and_usage_map_to_the_neutral_answer() {
        let resp = parse(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "planning…", "thought": true},
                {"text": "Hello "},
                {"text": "world"},
            ]}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 6, "totalTokenCount": 20},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "abc",
        }))
        .into_neutral("configured")
        .unwrap();
        assert_eq!(resp.content.as_deref(), Some("Hello world"));
        assert_eq!(resp.finish_reason, FinishReason::Length);
        assert_eq!(resp.model, "gemini-2.5-flash");
        assert_eq!(resp.id.as_deref(), Some("abc"));
        assert_eq!(
            resp.usage,
            Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 10,
                total_tokens: 20
            })
        );
    }

    #[test]
    fn function_calls_get_stable_ids_and_the_tool_calls_finish() {
        let resp = parse(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "AAEC"},
                {"functionCall": {"name": "b"}},
                {"functionCall": {"name": "c", "args": {}, "id": "fc-7"}},
            ]}, "finishReason": "STOP"}],
        }))
        .into_neutral("m")
        .unwrap();
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
        assert_eq!(resp.content, None);
        let ids: Vec<&str> = resp.tool_calls.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["call_0__ts_AAEC", "call_1", "fc-7"]);
        assert_eq!(resp.tool_calls[0].arguments, r#"{"x":1}"#);
        assert_eq!(resp.tool_calls[1].arguments, "{}");
        assert_eq!(resp.model, "m");
    }

    #[test]
    fn blocked_prompts_and_safety_stops_are_content_filtered() {
        let resp = parse(json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}))
            .into_neutral("m")
            .unwrap();
        assert_eq!(resp.finish_reason, FinishReason::ContentFilter);
        assert_eq!(finish_reason("RECITATION"), FinishReason::ContentFilter);
        assert_eq!(
            finish_reason("MALFORMED_FUNCTION_CALL"),
            FinishReason::Other("malformed_function_call".into())
        );
        let err = parse(json!({"usageMetadata": {}}))
            .into_neutral("m")
            .unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::InvalidResponse);
    }

    #[test]
    fn stream_counts_calls_across_chunks_and_ends_at_the_finish_reason() {
        let mut p = StreamParser::default();
        let mut acc = StreamAccumulator::default();
        let chunks = [
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me check. "}]}}], "usageMetadata": {"trafficType": "ON_DEMAND"}, "responseId": "r1", "modelVersion": "gemini-2.0-flash"}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {"x": 1}}}]}}]}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "b", "args": {}}}, {"text": ""}]}, "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 20, "totalTokenCount": 50}}),
        ];
        for c in chunks {
            assert!(!p.is_done());
            for e in p.on_frame(frame(c)).unwrap() {
                acc.push(&e);
            }
        }
        assert!(p.is_done());
        let resp = acc.finish("x");
        assert_eq!(resp.id.as_deref(), Some("r1"));
        assert_eq!(resp.content.as_deref(), Some("Let me check. "));
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            resp.tool_calls
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
            ["call_0", "call_1"]
        );
        assert_eq!(resp.usage, Some(Usage::new(30, 20)));
    }

    #[test]
    fn stream_errors_and_cut_streams_are_errors() {
        let mut p = StreamParser::default();
        let err = p
            .on_frame(frame(json!({"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}})))
            .unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::Unavailable);
        assert_eq!(err.status, Some(503));

        let mut p = StreamParser::default();
        p.on_frame(frame(
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}]}),
        ))
        .unwrap();
        let err = p.on_end().unwrap_err();
        assert_eq!(err.code.as_deref(), Some("truncated_stream"));
    }
}

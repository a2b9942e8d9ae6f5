//! ConverseStream: the binary `application/vnd.amazon.eventstream` body decoded into messages
//! with aws-smithy-eventstream, and the messages parsed into neutral stream events.
//!
//! Each message carries `:message-type` (`event`, `exception`, or the protocol-level `error`)
//! and `:event-type` (`messageStart`, `contentBlockStart`, `contentBlockDelta`,
//! `contentBlockStop`, `messageStop`, `metadata`) or `:exception-type`, with a JSON payload
//! (service model: `ConverseStreamOutput`).
//!
//! End of stream: `metadata` (usage and latency) is the last event Bedrock sends, after
//! `messageStop`, so it is the end marker and nothing after it is read. A body that ends
//! cleanly after `messageStop` but before `metadata` still holds the whole answer and is
//! accepted without usage; a body that ends before `messageStop` was cut off.

use std::collections::HashMap;
use std::time::Duration;

use atlasai_core::StreamEvent;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::BytesMut;
use futures_util::{Stream, StreamExt};
use reqwest::Response;
use serde::Deserialize;
use serde_json::Value;

use super::errors::map_exception;
use super::wire::{TokenUsage, finish_reason};
use crate::error::ProviderError;
use crate::http::{transport_error, with_idle_timeout};
use crate::sse::FrameParser;

/// Event-stream messages are at most 16 MiB (the format's limit); a buffer larger than this
/// without a complete message means the body is not an event stream.
const MAX_BUFFERED: usize = 17 * 1024 * 1024;

/// The decoded messages of a response body, with the idle timeout applied to the bytes.
pub(crate) fn messages(
    resp: Response,
    idle: Duration,
) -> impl Stream<Item = Result<Message, ProviderError>> + Send + 'static {
    let bytes = resp
        .bytes_stream()
        .map(|chunk| chunk.map_err(|e| transport_error(&e)));
    decode(with_idle_timeout(bytes, idle))
}

struct DecodeState<S> {
    bytes: std::pin::Pin<Box<S>>,
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    /// Bytes received since the last complete message; the decoder may already have taken a
    /// message's prelude out of `buf`, so `buf` alone cannot tell whether a message is open.
    pending: usize,
    /// Bytes received in all, against [`crate::sse::MAX_STREAM_BYTES`].
    total: usize,
}

/// Decodes a byte stream into event-stream messages (CRCs checked by the decoder).
pub(crate) fn decode<S>(
    bytes: S,
) -> impl Stream<Item = Result<Message, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<bytes::Bytes, ProviderError>> + Send + 'static,
{
    let state = DecodeState {
        bytes: Box::pin(bytes),
        buf: BytesMut::new(),
        decoder: MessageFrameDecoder::new(),
        pending: 0,
        total: 0,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        loop {
            match st.decoder.decode_frame(&mut st.buf) {
                Ok(DecodedFrame::Complete(message)) => {
                    st.pending = st.buf.len();
                    return Some((Ok(message), Some(st)));
                }
                Ok(DecodedFrame::Incomplete) => {}
                Err(e) => {
                    let err = ProviderError::invalid_response(format!(
                        "malformed event stream message: {e}"
                    ))
                    .with_code("malformed_stream");
                    return Some((Err(err), None));
                }
            }
            match st.bytes.next().await {
                Some(Ok(chunk)) => {
                    st.pending += chunk.len();
                    st.total += chunk.len();
                    if st.total > crate::sse::MAX_STREAM_BYTES {
                        let err = ProviderError::invalid_response(format!(
                            "the stream exceeds {} MiB",
                            crate::sse::MAX_STREAM_BYTES / (1024 * 1024)
                        ))
                        .with_code("response_too_large");
                        return Some((Err(err), None));
                    }
                    st.buf.extend_from_slice(&chunk);
                    if st.buf.len() > MAX_BUFFERED {
                        let err = ProviderError::invalid_response(
                            "response is not an event stream: no complete message in 17 MiB",
                        )
                        .with_code("malformed_stream");
                        return Some((Err(err), None));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None if st.pending > 0 => {
                    let err = ProviderError::invalid_response(
                        "stream ended in the middle of an event-stream message (connection cut?)",
                    )
                    .with_code("truncated_stream");
                    return Some((Err(err), None));
                }
                None => return None,
            }
        }
    })
}

/// A string header of a message.
fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

/// The error an exception or error message stands for; `None` for ordinary events.
pub(crate) fn exception_error(message: &Message) -> Option<ProviderError> {
    match header(message, ":message-type") {
        Some("exception") => {
            let kind = header(message, ":exception-type").unwrap_or("unknownException");
            Some(map_exception(kind, message.payload()))
        }
        // Protocol-level errors carry their code and text in headers, not in the payload.
        Some("error") => {
            let code = header(message, ":error-code").unwrap_or("unknownError");
            let text = header(message, ":error-message").unwrap_or_default();
            let body = serde_json::json!({ "message": text }).to_string();
            Some(map_exception(code, body.as_bytes()))
        }
        _ => None,
    }
}

/// Folds ConverseStream events into neutral ones.
#[derive(Debug)]
pub(crate) struct StreamParser {
    model: String,
    request_id: Option<String>,
    started: bool,
    /// Tool calls by `contentBlockIndex`: their number (counting from 0) and whether any
    /// argument text has arrived.
    tools: HashMap<u64, (u32, bool)>,
    stopped: bool,
    done: bool,
}

impl StreamParser {
    pub(crate) fn new(model: &str, request_id: Option<String>) -> Self {
        StreamParser {
            model: model.to_owned(),
            request_id,
            started: false,
            tools: HashMap::new(),
            stopped: false,
            done: false,
        }
    }

    /// The call number of a tool block, assigned on first sight.
    fn tool_index(&mut self, block: u64, with_arguments: bool) -> u32 {
        let next = self.tools.len() as u32;
        let entry = self.tools.entry(block).or_insert((next, false));
        entry.1 |= with_arguments;
        entry.0
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    #[serde(default)]
    content_block_index: u64,
    #[serde(default)]
    start: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    #[serde(default)]
    content_block_index: u64,
    #[serde(default)]
    delta: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    stop_reason: String,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    usage: Option<TokenUsage>,
}

fn payload<'a, T: Deserialize<'a>>(message: &'a Message, event: &str) -> Result<T, ProviderError> {
    serde_json::from_slice(message.payload()).map_err(|e| {
        ProviderError::invalid_response(format!("could not parse the {event} event: {e}"))
    })
}

impl FrameParser<Message> for StreamParser {
    fn on_frame(&mut self, message: Message) -> Result<Vec<StreamEvent>, ProviderError> {
        if let Some(err) = exception_error(&message) {
            return Err(err);
        }
        match header(&message, ":message-type") {
            Some("event") => {}
            other => {
                return Err(ProviderError::invalid_response(format!(
                    "unexpected event-stream message type {other:?}"
                )));
            }
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: self.request_id.clone(),
                model: Some(self.model.clone()),
            });
        }
        match header(&message, ":event-type").unwrap_or_default() {
            "contentBlockStart" => {
                let start: BlockStart = payload(&message, "contentBlockStart")?;
                if let Some(tool) = start.start.get("toolUse") {
                    let index = self.tool_index(start.content_block_index, false);
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        id: tool
                            .get("toolUseId")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        name: tool.get("name").and_then(Value::as_str).map(str::to_owned),
                        arguments: String::new(),
                    });
                }
            }
            "contentBlockDelta" => {
                let delta: BlockDelta = payload(&message, "contentBlockDelta")?;
                if let Some(text) = delta.delta.get("text").and_then(Value::as_str) {
                    if !text.is_empty() {
                        out.push(StreamEvent::TextDelta {
                            text: text.to_owned(),
                        });
                    }
                } else if let Some(input) = delta
                    .delta
                    .get("toolUse")
                    .and_then(|t| t.get("input"))
                    .and_then(Value::as_str)
                {
                    // A delta for a block that never started still gets its own call number.
                    let index = self.tool_index(delta.content_block_index, !input.is_empty());
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        id: None,
                        name: None,
                        arguments: input.to_owned(),
                    });
                }
                // Reasoning and citation deltas have no neutral counterpart.
            }
            "messageStop" => {
                let stop: MessageStop = payload(&message, "messageStop")?;
                self.stopped = true;
                out.push(StreamEvent::Finish {
                    reason: finish_reason(&stop.stop_reason),
                });
            }
            "metadata" => {
                let meta: Metadata = payload(&message, "metadata")?;
                self.done = true;
                if let Some(usage) = meta.usage {
                    out.push(StreamEvent::Usage {
                        usage: usage.into(),
                    });
                }
            }
            "contentBlockStop" => {
                let stop: BlockDelta = payload(&message, "contentBlockStop")?;
                // A tool without parameters may stream no input at all; its arguments are
                // then the empty object, as in a non-streamed answer, not an empty string.
                if let Some((index, false)) = self.tools.get(&stop.content_block_index).copied() {
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        id: None,
                        name: None,
                        arguments: "{}".to_owned(),
                    });
                }
            }
            // messageStart only opens the stream (handled above); unknown events are skipped
            // so that new ones do not break old clients.
            _ => {}
        }
        Ok(out)
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn on_end(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        if self.stopped {
            tracing::warn!("bedrock stream ended after messageStop without metadata; no usage");
            return Ok(Vec::new());
        }
        Err(
            ProviderError::invalid_response("stream ended before messageStop (connection cut?)")
                .with_code("truncated_stream"),
        )
    }
}

#[cfg(test)]
mod tests {
    use atlasai_core::{FinishReason, ProviderErrorKind, StreamAccumulator, Usage};
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::sse::parse_frames;

    fn event(kind: &'static str, payload: Value) -> Message {
        Message::new(payload.to_string().into_bytes())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(":event-type", HeaderValue::String(kind.into())))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
    }

    fn exception(kind: &'static str, payload: Value) -> Message {
        Message::new(payload.to_string().into_bytes())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("exception".into()),
            ))
            .add_header(Header::new(
                ":exception-type",
                HeaderValue::String(kind.into()),
            ))
    }

    fn encode(messages: &[Message]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            write_message_to(m, &mut out).unwrap();
        }
        out
    }

    fn tool_answer() -> Vec<Message> {
        vec![
            event("messageStart", json!({"role": "assistant"})),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Checking"}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 0})),
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "a"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"x\":"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 1})),
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t2", "name": "b"}}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 2})),
            event("messageStop", json!({"stopReason": "tool_use"})),
            event(
                "metadata",
                json!({"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}, "metrics": {"latencyMs": 9}}),
            ),
        ]
    }

    async fn run(bytes: Vec<Vec<u8>>) -> Result<atlasai_core::ChatResponse, ProviderError> {
        let chunks = futures_util::stream::iter(bytes.into_iter().map(|b| Ok(Bytes::from(b))));
        let stream = parse_frames(decode(chunks), StreamParser::new("m", Some("rid".into())));
        crate::collect_stream(stream, "m").await
    }

    #[tokio::test]
    async fn tool_calls_count_from_zero_across_byte_boundaries() {
        let bytes = encode(&tool_answer());
        // One byte at a time: every prelude and body is split.
        let resp = run(bytes.iter().map(|b| vec![*b]).collect()).await.unwrap();
        assert_eq!(resp.id.as_deref(), Some("rid"));
        assert_eq!(resp.content.as_deref(), Some("Checking"));
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
        assert_eq!(resp.tool_calls.len(), 2);
        assert_eq!(resp.tool_calls[0].id, "t1");
        assert_eq!(resp.tool_calls[0].arguments, "{\"x\":1}");
        assert_eq!(resp.tool_calls[1].name, "b");
        assert_eq!(
            resp.tool_calls[1].arguments, "{}",
            "a tool streamed without input"
        );
        assert_eq!(resp.usage, Some(Usage::new(3, 4)));
    }

    #[tokio::test]
    async fn indexes_in_events_are_tool_numbers_not_block_numbers() {
        let chunks = futures_util::stream::iter([Ok(Bytes::from(encode(&tool_answer())))]);
        let events: Vec<StreamEvent> = parse_frames(decode(chunks), StreamParser::new("m", None))
            .map(|e| e.unwrap())
            .collect()
            .await;
        let indexes: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallDelta { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(indexes, vec![0, 0, 0, 1, 1]);
        let mut acc = StreamAccumulator::default();
        events.iter().for_each(|e| acc.push(e));
        assert!(acc.finished());
    }

    #[tokio::test]
    async fn cut_streams_and_exceptions_are_errors() {
        let mut answer = tool_answer();
        answer.truncate(6);
        let err = run(vec![encode(&answer)]).await.unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::InvalidResponse);
        assert_eq!(err.code.as_deref(), Some("truncated_stream"));

        let mut bytes = encode(&tool_answer());
        bytes.truncate(bytes.len() - 5);
        let err = run(vec![bytes]).await.unwrap_err();
        assert_eq!(err.code.as_deref(), Some("truncated_stream"), "{err}");

        let mut bytes = encode(&tool_answer()[..2]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let err = run(vec![bytes]).await.unwrap_err();
        assert_eq!(err.code.as_deref(), Some("malformed_stream"), "{err}");

        let messages = [
            event("messageStart", json!({"role": "assistant"})),
            exception(
                "throttlingException",
                json!({"message": "Too many tokens, please wait before trying again."}),
            ),
        ];
        let err = run(vec![encode(&messages)]).await.unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::RateLimited);
        assert_eq!(
            err.message,
            "Too many tokens, please wait before trying again."
        );
    }

    #[tokio::test]
    async fn a_clean_end_after_message_stop_keeps_the_answer() {
        let mut answer = tool_answer();
        answer.pop();
        let resp = run(vec![encode(&answer)]).await.unwrap();
        assert_eq!(resp.tool_calls.len(), 2);
        assert_eq!(resp.usage, None);
    }
}

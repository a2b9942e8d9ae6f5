//! Parses Anthropic's streamed answer: server-sent events named `message_start`,
//! `content_block_start`, `content_block_delta`, `content_block_stop`, `message_delta`,
//! `message_stop` (the end marker), `ping`, and `error` (a failure after the 200).
//!
//! Content-block indexes count every block (text, thinking, tool use); neutral tool-call
//! indexes count tool calls only, from 0, so they are re-mapped here.

use std::collections::HashMap;

use atlasai_core::{StreamEvent, Usage};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::response::{WireUsage, arguments_text, finish_reason};
use super::{map_error, status_for_error_type};
use crate::error::ProviderError;
use crate::sse::FrameParser;

/// What an open content block is.
#[derive(Debug)]
enum Block {
    Text,
    Tool {
        /// The neutral tool-call index.
        call: u32,
        /// The `input` the start event carried; sent at the block's end when no
        /// `input_json_delta` arrived (a tool without arguments).
        start_input: Value,
        streamed: bool,
    },
    /// Thinking, server tools and anything newer: not part of the neutral answer.
    Other,
}

/// The parser state for one stream.
#[derive(Debug, Default)]
pub(super) struct StreamParser {
    blocks: HashMap<u64, Block>,
    next_call: u32,
    prompt_tokens: Option<u32>,
    output_tokens: u32,
    done: bool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        #[serde(default)]
        usage: WireUsage,
    },
    MessageStop,
    Ping,
    Error {
        error: Value,
    },
    /// Anthropic's versioning policy allows new event types; they are skipped.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
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

/// A `content_block_delta` payload (`RawContentBlockDelta`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum BlockDelta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
    /// Thinking, signature and citation deltas.
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDelta {
    stop_reason: Option<String>,
}

impl StreamParser {
    fn usage(&self) -> Usage {
        Usage::new(self.prompt_tokens.unwrap_or(0), self.output_tokens)
    }

    fn on_event(&mut self, event: WireEvent) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        match event {
            WireEvent::MessageStart { message } => {
                self.prompt_tokens = message.usage.prompt_tokens();
                self.output_tokens = message.usage.output_tokens.unwrap_or(0);
                out.push(StreamEvent::Start {
                    id: message.id,
                    model: message.model,
                });
            }
            WireEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                let block = match content_block {
                    StartBlock::Text { text } => {
                        if !text.is_empty() {
                            out.push(StreamEvent::TextDelta { text });
                        }
                        Block::Text
                    }
                    StartBlock::ToolUse { id, name, input } => {
                        let call = self.next_call;
                        self.next_call += 1;
                        out.push(StreamEvent::ToolCallDelta {
                            index: call,
                            id: Some(id),
                            name: Some(name),
                            arguments: String::new(),
                        });
                        Block::Tool {
                            call,
                            start_input: input,
                            streamed: false,
                        }
                    }
                    StartBlock::Other => Block::Other,
                };
                self.blocks.insert(index, block);
            }
            WireEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::Text { text } => {
                    if !text.is_empty() {
                        out.push(StreamEvent::TextDelta { text });
                    }
                }
                BlockDelta::InputJson { partial_json } => match self.blocks.get_mut(&index) {
                    Some(Block::Tool { call, streamed, .. }) => {
                        if !partial_json.is_empty() {
                            *streamed = true;
                            out.push(StreamEvent::ToolCallDelta {
                                index: *call,
                                id: None,
                                name: None,
                                arguments: partial_json,
                            });
                        }
                    }
                    _ => {
                        return Err(ProviderError::invalid_response(format!(
                            "stream sent tool input for content block {index}, which is not an open tool_use block"
                        )));
                    }
                },
                BlockDelta::Other => {}
            },
            WireEvent::ContentBlockStop { index } => {
                if let Some(Block::Tool {
                    call,
                    start_input,
                    streamed: false,
                }) = self.blocks.remove(&index)
                {
                    let arguments = match start_input {
                        Value::Object(map) if map.is_empty() => "{}".to_owned(),
                        other => arguments_text(&other),
                    };
                    out.push(StreamEvent::ToolCallDelta {
                        index: call,
                        id: None,
                        name: None,
                        arguments,
                    });
                }
            }
            WireEvent::MessageDelta { delta, usage } => {
                // `message_delta` usage is cumulative; it may restate the input counts.
                if let Some(prompt) = usage.prompt_tokens() {
                    self.prompt_tokens = Some(prompt);
                }
                if let Some(output) = usage.output_tokens {
                    self.output_tokens = output;
                }
                if let Some(reason) = delta.stop_reason {
                    out.push(StreamEvent::Finish {
                        reason: finish_reason(&reason),
                    });
                }
                // Input tokens came with `message_start`, output tokens come here: one event
                // carries both.
                out.push(StreamEvent::Usage {
                    usage: self.usage(),
                });
            }
            WireEvent::MessageStop => self.done = true,
            WireEvent::Ping | WireEvent::Unknown => {}
            WireEvent::Error { error } => {
                let error_type = error
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                let status = status_for_error_type(error_type);
                let body =
                    serde_json::to_vec(&serde_json::json!({"type": "error", "error": error}))
                        .unwrap_or_default();
                return Err(map_error(status, &HeaderMap::new(), &body));
            }
        }
        Ok(out)
    }
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
        // The event name repeats the payload's `type`; the payload decides, so a gateway that
        // drops event names still works.
        let wire: WireEvent = serde_json::from_str(data).map_err(|e| {
            ProviderError::invalid_response(format!(
                "could not parse stream event {:?}: {e}",
                event.event
            ))
        })?;
        self.on_event(wire)
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlasai_core::{FinishReason, ProviderErrorKind, StreamAccumulator};

    fn frame(name: &str, data: &str) -> eventsource_stream::Event {
        eventsource_stream::Event {
            event: name.to_owned(),
            data: data.to_owned(),
            id: String::new(),
            retry: None,
        }
    }

    fn run(frames: &[(&str, &str)]) -> (StreamParser, Result<Vec<StreamEvent>, ProviderError>) {
        let mut parser = StreamParser::default();
        let mut events = Vec::new();
        for (name, data) in frames {
            match parser.on_frame(frame(name, data)) {
                Ok(e) => events.extend(e),
                Err(e) => return (parser, Err(e)),
            }
        }
        (parser, Ok(events))
    }

    /// The SDK's own fixture (`tests/lib/streaming/fixtures/tool_use_response.txt`), shortened,
    /// with a second tool call and one without arguments.
    #[test]
    fn text_then_tool_calls_count_tool_indexes_from_zero() {
        let (parser, events) = run(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_019Q1hrJbZG26Fb9BQhrkHEr","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":377,"cache_creation_input_tokens":0,"cache_read_input_tokens":3,"output_tokens":1,"service_tier":"standard"}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I'll check."}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","caller":{"type":"direct"},"input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"locati"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"on\": \"Paris\"}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":2}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":65}}"#,
            ),
            ("future_event", r#"{"type":"future_event","x":1}"#),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        assert!(parser.is_done());
        let events = events.unwrap();
        let calls: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallDelta { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(calls, vec![0, 0, 0, 1, 1]);
        let mut acc = StreamAccumulator::default();
        for e in &events {
            acc.push(e);
        }
        let r = acc.finish("m");
        assert_eq!(r.id.as_deref(), Some("msg_019Q1hrJbZG26Fb9BQhrkHEr"));
        assert_eq!(r.content.as_deref(), Some("I'll check."));
        assert_eq!(r.tool_calls[0].name, "get_weather");
        assert_eq!(r.tool_calls[0].arguments, r#"{"location": "Paris"}"#);
        assert_eq!(r.tool_calls[1].id, "toolu_02");
        assert_eq!(r.tool_calls[1].arguments, "{}");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.usage, Some(Usage::new(380, 65)));
        let usage_events = events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Usage { .. }))
            .count();
        assert_eq!(usage_events, 1, "one combined usage event");
    }

    #[test]
    fn an_error_event_mid_stream_becomes_a_provider_error() {
        let (_, result) = run(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"usage":{"input_tokens":3,"output_tokens":1}}}"#,
            ),
            (
                "error",
                r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
            ),
        ]);
        let err = result.unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::Unavailable);
        assert_eq!(err.code.as_deref(), Some("overloaded_error"));
        assert_eq!(err.message, "Overloaded");
        assert_eq!(
            err.status, None,
            "the HTTP status was 200; 529 is only implied"
        );
    }

    #[test]
    fn garbage_and_stray_tool_input_are_invalid_responses() {
        let (_, result) = run(&[(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":"#,
        )]);
        assert_eq!(result.unwrap_err().kind, ProviderErrorKind::InvalidResponse);
        let (_, result) = run(&[(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
        )]);
        assert_eq!(result.unwrap_err().kind, ProviderErrorKind::InvalidResponse);
    }

    #[test]
    fn a_stream_without_message_stop_is_truncated() {
        let (mut parser, result) = run(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":3,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
        ]);
        assert!(result.is_ok());
        let err = parser.on_end().unwrap_err();
        assert_eq!(err.code.as_deref(), Some("truncated_stream"));
    }
}

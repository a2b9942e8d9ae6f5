//! Entry points for the fuzz targets (`fuzz/`): raw bytes through each dialect's real
//! response, error and stream parsers, with no IO and no async runtime. Compiled only with the
//! `fuzzing` feature.

use std::convert::Infallible;

use atlasai_core::{ChatResponse, StreamEvent};
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{FutureExt, StreamExt};
use http::HeaderMap;

use crate::error::ProviderError;
use crate::sse::parse_frames;

/// The dialect to fuzz.
#[derive(Debug, Clone, Copy)]
pub enum Dialect {
    /// OpenAI chat completions.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Bedrock Converse.
    Bedrock,
    /// Vertex Gemini.
    Vertex,
}

impl Dialect {
    /// Picks a dialect from a byte.
    pub fn from_byte(b: u8) -> Dialect {
        match b % 4 {
            0 => Dialect::OpenAi,
            1 => Dialect::Anthropic,
            2 => Dialect::Bedrock,
            _ => Dialect::Vertex,
        }
    }
}

/// Parses a non-streaming response body, and maps it as an error body too.
pub fn parse_response(dialect: Dialect, body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let headers = HeaderMap::new();
    for status in [400u16, 429, 500, 529] {
        let _ = match dialect {
            Dialect::OpenAi => crate::openai::map_error(status, &headers, body),
            Dialect::Anthropic => crate::anthropic::map_error(status, &headers, body),
            Dialect::Bedrock => crate::bedrock::errors::map_error(status, &headers, body),
            Dialect::Vertex => crate::vertex::map_error(status, &headers, body),
        };
    }
    match dialect {
        Dialect::OpenAi => crate::openai::fuzz_response(body),
        Dialect::Anthropic => crate::anthropic::fuzz_response(body),
        Dialect::Bedrock => crate::bedrock::fuzz_response(body),
        Dialect::Vertex => crate::vertex::fuzz_response(body),
    }
}

/// Feeds a body, split into `chunks`, through the dialect's stream framing and parser, and
/// returns every event or error it produced.
pub fn parse_stream(
    dialect: Dialect,
    chunks: Vec<Vec<u8>>,
) -> Vec<Result<StreamEvent, ProviderError>> {
    let bytes = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<Bytes, Infallible>(Bytes::from(c))),
    );
    let stream = match dialect {
        Dialect::Bedrock => {
            let bytes = bytes.map(|r| r.map_err(|never| match never {}));
            let frames = crate::bedrock::stream::decode(bytes);
            parse_frames(
                frames,
                crate::bedrock::stream::StreamParser::new("fuzz-model", None),
            )
        }
        sse => {
            let events = bytes.eventsource().map(|e| {
                e.map_err(|e| {
                    ProviderError::invalid_response(format!("malformed event stream: {e}"))
                })
            });
            match sse {
                Dialect::OpenAi => parse_frames(events, crate::openai::fuzz_stream_parser()),
                Dialect::Anthropic => parse_frames(events, crate::anthropic::fuzz_stream_parser()),
                _ => parse_frames(events, crate::vertex::fuzz_stream_parser()),
            }
        }
    };
    // Every input is already in memory, so the stream never waits: poll it to the end.
    let mut stream = stream;
    let mut out = Vec::new();
    while let Some(Some(item)) = stream.next().now_or_never() {
        out.push(item);
    }
    out
}

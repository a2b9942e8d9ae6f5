//! Server-sent events over a response body, with an idle timeout and a clear error when the
//! connection drops mid-stream.

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::{FutureExt, Stream, StreamExt};
use reqwest::Response;

use crate::error::ProviderError;
use crate::http::{transport_error, with_idle_timeout};

/// The longest SSE line we accept. A real event is a JSON chunk of a few KiB; a longer line
/// means a broken or hostile server, and buffering it would grow memory without bound.
pub(crate) const MAX_LINE_BYTES: usize = 1024 * 1024;
/// The most a single stream may deliver; far beyond any real answer.
pub(crate) const MAX_STREAM_BYTES: usize = 32 * 1024 * 1024;

/// The SSE events of a response. Each item is one event or a transport error.
pub(crate) fn events(
    resp: Response,
    idle: Duration,
) -> impl Stream<Item = Result<Event, ProviderError>> + Send + 'static {
    let bytes = bounded(resp.bytes_stream(), MAX_LINE_BYTES, MAX_STREAM_BYTES);
    let events = bytes.eventsource().map(|item| {
        item.map_err(|e| match e {
            eventsource_stream::EventStreamError::Transport(BoundedError::Transport(e)) => {
                transport_error(&e)
            }
            eventsource_stream::EventStreamError::Transport(e) => {
                ProviderError::invalid_response(e.to_string()).with_code("response_too_large")
            }
            other => ProviderError::invalid_response(format!("malformed event stream: {other}")),
        })
    });
    with_idle_timeout(events, idle)
}

/// Passes bytes through while no line grows past `max_line` and the total stays within
/// `max_total`; past either limit the stream ends with an error, so a malformed or hostile
/// server cannot make us buffer without bound.
pub(crate) fn bounded<S>(
    bytes: S,
    max_line: usize,
    max_total: usize,
) -> impl Stream<Item = Result<bytes::Bytes, BoundedError>> + Send + 'static
where
    S: Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send + 'static,
{
    let mut since_newline = 0usize;
    let mut total = 0usize;
    let mut failed = false;
    bytes.map(move |chunk| {
        if failed {
            return Err(BoundedError::Ended);
        }
        let chunk = chunk.map_err(BoundedError::Transport)?;
        total += chunk.len();
        since_newline = match chunk.iter().rposition(|b| *b == b'\n') {
            Some(i) => chunk.len() - i - 1,
            None => since_newline + chunk.len(),
        };
        if since_newline > max_line || total > max_total {
            failed = true;
            return Err(BoundedError::TooLarge(if total > max_total {
                format!("the stream exceeds {} MiB", max_total / (1024 * 1024))
            } else {
                format!("a stream line exceeds {} MiB", max_line / (1024 * 1024))
            }));
        }
        Ok(chunk)
    })
}

/// Why a bounded byte stream failed.
#[derive(Debug)]
pub(crate) enum BoundedError {
    /// The connection failed.
    Transport(reqwest::Error),
    /// A limit was passed.
    TooLarge(String),
    /// The stream already failed.
    Ended,
}

impl std::fmt::Display for BoundedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundedError::Transport(e) => write!(f, "{e}"),
            BoundedError::TooLarge(m) => f.write_str(m),
            BoundedError::Ended => f.write_str("stream ended after an error"),
        }
    }
}

impl std::error::Error for BoundedError {}

/// Turns a dialect's frames into neutral events. One parser per stream holds its state
/// (open tool calls, whether the end marker arrived).
pub(crate) trait FrameParser<F>: Send + 'static {
    /// Handles one frame; may yield several events.
    fn on_frame(&mut self, frame: F) -> Result<Vec<atlasai_core::StreamEvent>, ProviderError>;

    /// Whether the dialect's end marker has arrived; nothing after it is read.
    fn is_done(&self) -> bool;

    /// Called when the body ends. A stream that ends before its end marker was cut off.
    fn on_end(&mut self) -> Result<Vec<atlasai_core::StreamEvent>, ProviderError> {
        if self.is_done() {
            Ok(Vec::new())
        } else {
            Err(ProviderError::invalid_response(
                "stream ended before the provider's end-of-stream marker (connection cut?)",
            )
            .with_code("truncated_stream"))
        }
    }
}

/// How long a finished stream's leftovers may take to arrive before its connection is given up.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Reads what follows a stream's end marker (the empty chunk that ends a chunked body, a
/// trailing event), so the connection goes back to the pool: a body dropped before its end
/// closes its connection, and the next request would pay for a new one (a TLS handshake for
/// real providers). What has already arrived is read at once, so the connection is back before
/// the caller sends its next request; anything later is read in the background, and the caller
/// never waits.
fn drain_in_background<S: Stream + Send + 'static>(mut rest: std::pin::Pin<Box<S>>) {
    for _ in 0..8 {
        match rest.next().now_or_never() {
            Some(None) => return,
            Some(Some(_)) => {}
            None => break,
        }
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ =
                tokio::time::timeout(DRAIN_LIMIT, async { while rest.next().await.is_some() {} })
                    .await;
        });
    }
}

/// Drives a parser over a stream of frames, producing the neutral [`crate::ChatStream`].
pub(crate) fn parse_frames<F, S, P>(frames: S, parser: P) -> crate::ChatStream
where
    F: Send + 'static,
    S: Stream<Item = Result<F, ProviderError>> + Send + 'static,
    P: FrameParser<F>,
{
    let state = Some((Box::pin(frames), parser));
    let batches = futures_util::stream::unfold(state, |state| async move {
        let (mut frames, mut parser) = state?;
        let (batch, keep_going) = match frames.next().await {
            Some(Ok(frame)) => match parser.on_frame(frame) {
                Ok(events) => {
                    let done = parser.is_done();
                    (events.into_iter().map(Ok).collect::<Vec<_>>(), !done)
                }
                Err(e) => (vec![Err(e)], false),
            },
            Some(Err(e)) => (vec![Err(e)], false),
            None => match parser.on_end() {
                Ok(events) => (events.into_iter().map(Ok).collect(), false),
                Err(e) => (vec![Err(e)], false),
            },
        };
        if keep_going {
            return Some((futures_util::stream::iter(batch), Some((frames, parser))));
        }
        if parser.is_done() {
            drain_in_background(frames);
        }
        Some((futures_util::stream::iter(batch), None))
    });
    // The state becomes `None` after the last batch, which ends the stream on the next poll.
    Box::pin(batches.flatten())
}

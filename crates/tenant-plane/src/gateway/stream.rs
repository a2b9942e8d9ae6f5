//! The body of a streamed answer: provider events turned into OpenAI `chat.completion.chunk`
//! server-sent events as they arrive. Nothing is buffered beyond what the provider has already
//! delivered: each poll encodes the events that are ready and hands them to the server at once.
//!
//! When the client goes away the server drops this body, which drops the provider stream and
//! with it the upstream connection, so the provider stops generating; the call is recorded as
//! cancelled.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use atlasai_core::StreamEvent;
use atlasai_providers::ChatStream;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::CallGuard;
use super::error::GatewayError;
use super::wire::ChunkEncoder;
use crate::calls::CallOutcome;

/// A streamed answer, ready to be an HTTP body.
pub struct SseBody {
    first: Option<StreamEvent>,
    upstream: Option<ChatStream>,
    encoder: ChunkEncoder,
    call: CallGuard,
    provider: &'static str,
}

impl std::fmt::Debug for SseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseBody")
            .field("encoder", &self.encoder)
            .field("open", &self.upstream.is_some())
            .finish_non_exhaustive()
    }
}

impl SseBody {
    pub(super) fn new(
        first: StreamEvent,
        upstream: ChatStream,
        encoder: ChunkEncoder,
        call: CallGuard,
        provider: &'static str,
    ) -> Self {
        SseBody {
            first: Some(first),
            upstream: Some(upstream),
            encoder,
            call,
            provider,
        }
    }
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut out = Vec::new();
        if let Some(first) = this.first.take() {
            this.encoder.event(&first, &mut out);
        }
        loop {
            let Some(upstream) = this.upstream.as_mut() else {
                return Poll::Ready((!out.is_empty()).then(|| Ok(Bytes::from(out))));
            };
            match upstream.poll_next_unpin(cx) {
                // Send what is ready now; waiting for more would delay the client.
                Poll::Pending if out.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Some(Ok(Bytes::from(out)))),
                Poll::Ready(Some(Ok(event))) => this.encoder.event(&event, &mut out),
                Poll::Ready(Some(Err(error))) => {
                    this.upstream = None;
                    this.call.finish(CallOutcome::Error(error.kind), None);
                    let reply = GatewayError::Provider {
                        provider: this.provider,
                        error,
                    }
                    .reply();
                    // The error event OpenAI's SDKs raise on, then the end of the stream
                    // without `[DONE]`, so clients that ignore the event still see a cut
                    // stream rather than a clean end.
                    out.extend_from_slice(b"data: ");
                    let _ = serde_json::to_writer(&mut out, &reply.body);
                    out.extend_from_slice(b"\n\n");
                }
                Poll::Ready(None) => {
                    this.upstream = None;
                    this.encoder.end(&mut out);
                    this.call.finish(CallOutcome::Ok, this.encoder.usage());
                }
            }
        }
    }
}

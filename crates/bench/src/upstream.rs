//! A fast fake OpenAI upstream for benchmarks: plain hyper on one thread, answering every
//! `POST …/chat/completions` with the same small completion, or, when the request asks for a
//! stream, the same short `chat.completion.chunk` stream (the first chunk at once, the rest
//! `gap` apart). `GET …/models` answers a one-model list, which gateways use as a health check.
//!
//! It does as little as a correct server can (read the body, look for `"stream"`), so that the
//! measured difference between calling it directly and through a gateway is the gateway's.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

/// The completion every non-streaming request gets (shaped like OpenAI's).
pub const COMPLETION: &str = r#"{"id":"chatcmpl-bench0001","object":"chat.completion","created":1731000000,"model":"bench-model","system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"The pod restarted because its liveness probe failed after the last deploy.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":17,"total_tokens":59}}"#;

const MODELS: &str = r#"{"object":"list","data":[{"id":"bench-model","object":"model","created":1731000000,"owned_by":"bench"}]}"#;

const STREAM_PIECES: [&str; 4] = [
    "The pod restarted ",
    "because its liveness probe ",
    "failed after ",
    "the last deploy.",
];

fn chunk(delta: &str, finish: Option<&str>, usage_null: bool) -> Bytes {
    let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
    let usage = if usage_null { ",\"usage\":null" } else { "" };
    Bytes::from(format!(
        "data: {{\"id\":\"chatcmpl-bench0001\",\"object\":\"chat.completion.chunk\",\"created\":1731000000,\"model\":\"bench-model\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]{usage}}}\n\n"
    ))
}

/// The frames of the fixed stream: role, four pieces of text, finish, usage (when asked), done.
pub fn stream_frames(include_usage: bool) -> Vec<Bytes> {
    let mut frames = vec![chunk(
        r#"{"role":"assistant","content":""}"#,
        None,
        include_usage,
    )];
    for p in STREAM_PIECES {
        frames.push(chunk(
            &format!("{{\"content\":\"{p}\"}}"),
            None,
            include_usage,
        ));
    }
    frames.push(chunk("{}", Some("stop"), include_usage));
    if include_usage {
        frames.push(Bytes::from_static(b"data: {\"id\":\"chatcmpl-bench0001\",\"object\":\"chat.completion.chunk\",\"created\":1731000000,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":42,\"completion_tokens\":17,\"total_tokens\":59}}\n\n"));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

#[derive(Deserialize, Default)]
struct StreamFlags {
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

async fn handle(req: Request<Incoming>, gap: Duration) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path.ends_with("/models") {
        return Ok(full(StatusCode::OK, "application/json", MODELS));
    }
    if !path.ends_with("/chat/completions") {
        return Ok(full(
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}"#,
        ));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let flags: StreamFlags = serde_json::from_slice(&body).unwrap_or_default();
    if !flags.stream {
        return Ok(full(StatusCode::OK, "application/json", COMPLETION));
    }
    let include_usage = flags.stream_options.is_some_and(|o| o.include_usage);
    let frames = stream_frames(include_usage);
    let paced = futures_util::stream::unfold(
        (frames.into_iter(), true),
        move |(mut it, first)| async move {
            let frame = it.next()?;
            if !first && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(frame)), (it, false)))
        },
    );
    let mut resp = Response::new(StreamBody::new(paced).boxed());
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    Ok(resp)
}

/// Serves until the process ends. Prints `listening <addr>` on stderr once bound.
pub async fn serve(addr: SocketAddr, gap: Duration) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    crate::say(&format!("listening {}", listener.local_addr()?));
    serve_on(listener, gap).await
}

/// Serves on a bound listener until the process ends.
pub async fn serve_on(listener: tokio::net::TcpListener, gap: Duration) -> anyhow::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of file descriptors and the like: keep serving the connections we have.
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, gap));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_answers_are_valid_openai_json() {
        let v: serde_json::Value = serde_json::from_str(COMPLETION).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let frames = stream_frames(true);
        assert_eq!(frames.len(), 8);
        for f in &frames[..frames.len() - 1] {
            let text = std::str::from_utf8(f).unwrap();
            let data = text.strip_prefix("data: ").unwrap().trim_end();
            let chunk: serde_json::Value = serde_json::from_str(data).unwrap();
            assert_eq!(chunk["object"], "chat.completion.chunk");
        }
        assert_eq!(&frames[7][..], b"data: [DONE]\n\n");
    }
}

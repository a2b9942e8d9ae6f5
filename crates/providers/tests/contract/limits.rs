//! Responses larger than any sane limit end with a clear error instead of growing memory:
//! an endless SSE line, an endless stream, and huge non-streaming bodies with and without a
//! content length. The server is a raw socket so it can misbehave in ways no fake would.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use atlasai_core::{ChatRequest, ProviderErrorKind, ProviderKind, ProviderSettings};
use atlasai_providers::{HttpOptions, RetryPolicy, build_chat_provider, collect_stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

/// Serves every connection with `head` then `chunk` repeated `times` times (chunked
/// encoding), counting the bytes it managed to write.
async fn server(head: &'static str, chunk: Vec<u8>, times: usize) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let chunk = chunk.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let frame = [
                    format!("{:x}\r\n", chunk.len()).into_bytes(),
                    chunk,
                    b"\r\n".to_vec(),
                ]
                .concat();
                for _ in 0..times {
                    if sock.write_all(&frame).await.is_err() {
                        return;
                    }
                    counter.fetch_add(frame.len(), Ordering::Relaxed);
                }
                let _ = sock.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    (format!("http://{addr}/v1"), written)
}

async fn client(base: &str) -> Arc<dyn atlasai_providers::Provider> {
    let mut s = ProviderSettings::new(ProviderKind::Vllm, "m");
    s.endpoint = Some(Url::parse(base).unwrap());
    let opts = HttpOptions {
        timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy::none(),
        ..HttpOptions::default()
    };
    build_chat_provider(&s, &opts).await.unwrap()
}

const SSE: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
const JSON: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";

#[tokio::test]
async fn an_endless_sse_line_is_cut_off() {
    // 1 GiB of one line, if the client kept reading.
    let (base, written) = server(
        SSE,
        [b"data: ".to_vec(), vec![b'x'; 65_536]].concat(),
        16_384,
    )
    .await;
    let stream = client(&base)
        .await
        .chat_stream(&ChatRequest::user("hi"))
        .await
        .unwrap();
    let err = collect_stream(stream, "m").await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidResponse, "{err}");
    assert_eq!(err.code.as_deref(), Some("response_too_large"), "{err}");
    assert!(err.message.contains("line exceeds 1 MiB"), "{err}");
    // The client stopped reading soon after the limit (socket buffers allow some slack).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        written.load(Ordering::Relaxed) < 64 * 1024 * 1024,
        "{}",
        written.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn an_endless_stream_of_small_events_is_cut_off() {
    // Valid events of 64 KiB each, forever: no single line is too long, the total is.
    let content = "x".repeat(64 * 1024);
    let event = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{content}\"}}}}]}}\n\n")
        .into_bytes();
    let (base, _) = server(SSE, event, 1_000_000).await;
    let stream = client(&base)
        .await
        .chat_stream(&ChatRequest::user("hi"))
        .await
        .unwrap();
    let err = collect_stream(stream, "m").await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("response_too_large"), "{err}");
    assert!(err.message.contains("stream exceeds 32 MiB"), "{err}");
}

#[tokio::test]
async fn a_huge_body_without_content_length_is_refused() {
    let (base, _) = server(JSON, vec![b' '; 1024 * 1024], 64).await;
    let err = client(&base)
        .await
        .chat(&ChatRequest::user("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidResponse, "{err}");
    assert!(err.message.contains("exceeds the 32 MiB limit"), "{err}");
}

#[tokio::test]
async fn a_huge_declared_content_length_is_refused_before_reading() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let _ = sock
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10737418240\r\n\r\n{")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let err = client(&format!("http://{addr}/v1"))
        .await
        .chat(&ChatRequest::user("hi"))
        .await
        .unwrap_err();
    assert!(err.message.contains("exceeds the 32 MiB limit"), "{err}");
}

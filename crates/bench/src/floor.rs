//! The floor under any gateway built on our stack: a forwarding proxy that does nothing but
//! accept an HTTP/1.1 request with hyper, send the same body to the upstream with a pooled
//! client, and return the upstream's bytes. No JSON, no authentication, no audit, no metrics,
//! no logs. Measured in the gateway benchmark's arrangement, it shows how much of the tenant
//! plane's cost is the HTTP stack itself (tokio, hyper, the kernel's loopback TCP) and how much
//! is ours; `--client` compares reqwest with hyper-util's pooled client underneath it.
//! A streamed answer (`text/event-stream`) is passed on chunk by chunk as it arrives, so the
//! time to its first byte can be compared with the tenant plane's; other answers are read
//! whole and sent with their length, as the tenant plane does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Which pooled client forwards the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    /// reqwest (what the providers crate uses).
    Reqwest,
    /// hyper-util's legacy pooled client, which reqwest wraps.
    Hyper,
}

enum Forward {
    Reqwest(reqwest::Client),
    Hyper(Box<HyperClient<HttpConnector, Full<Bytes>>>),
}

struct Proxy {
    upstream: String,
    client: Forward,
}

type BodyError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BodyError>;

fn reply(
    status: StatusCode,
    content_type: Option<hyper::header::HeaderValue>,
    body: Bytes,
) -> Response<ProxyBody> {
    passed_on(
        status,
        content_type,
        Full::new(body).map_err(|never| match never {}).boxed(),
    )
}

fn passed_on(
    status: StatusCode,
    content_type: Option<hyper::header::HeaderValue>,
    body: ProxyBody,
) -> Response<ProxyBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    resp
}

async fn forward(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let url = format!("{}{}", proxy.upstream, req.uri().path());
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, None, Bytes::new())),
    };
    let bad_gateway = || reply(StatusCode::BAD_GATEWAY, None, Bytes::new());
    let resp = match &proxy.client {
        Forward::Reqwest(c) => {
            let sent = c
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let Ok(r) = sent else {
                return Ok(bad_gateway());
            };
            let status = r.status();
            let ct = r.headers().get(hyper::header::CONTENT_TYPE).cloned();
            if is_stream(ct.as_ref()) {
                let chunks = r
                    .bytes_stream()
                    .map_ok(Frame::data)
                    .map_err(BodyError::from);
                return Ok(passed_on(status, ct, StreamBody::new(chunks).boxed()));
            }
            match r.bytes().await {
                Ok(b) => reply(status, ct, b),
                Err(_) => bad_gateway(),
            }
        }
        Forward::Hyper(c) => {
            let Ok(request) = Request::post(url)
                .header("content-type", "application/json")
                .body(Full::new(body))
            else {
                return Ok(bad_gateway());
            };
            let Ok(r) = c.request(request).await else {
                return Ok(bad_gateway());
            };
            let status = r.status();
            let ct = r.headers().get(hyper::header::CONTENT_TYPE).cloned();
            if is_stream(ct.as_ref()) {
                let body = r.into_body().map_err(BodyError::from).boxed();
                return Ok(passed_on(status, ct, body));
            }
            match r.into_body().collect().await {
                Ok(b) => reply(status, ct, b.to_bytes()),
                Err(_) => bad_gateway(),
            }
        }
    };
    Ok(resp)
}

/// Whether the upstream answered with server-sent events.
fn is_stream(content_type: Option<&hyper::header::HeaderValue>) -> bool {
    content_type.is_some_and(|ct| ct.as_bytes().starts_with(b"text/event-stream"))
}

/// Serves until the process ends, on a multi-threaded runtime like the tenant plane's.
/// Prints `listening <addr>` on stderr once bound.
pub fn serve(addr: SocketAddr, upstream: String, kind: ClientKind) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    atlasai_providers::http::install_crypto_provider();
    runtime.block_on(async move {
        let client = match kind {
            ClientKind::Reqwest => Forward::Reqwest(
                reqwest::Client::builder()
                    .tcp_nodelay(true)
                    .build()
                    .context("building the reqwest client")?,
            ),
            ClientKind::Hyper => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                Forward::Hyper(Box::new(
                    HyperClient::builder(TokioExecutor::new()).build(connector),
                ))
            }
        };
        let proxy = Arc::new(Proxy {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
        });
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        crate::say(&format!("listening {}", listener.local_addr()?));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| forward(proxy.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

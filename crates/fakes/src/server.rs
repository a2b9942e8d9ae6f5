//! The shared server: binds 127.0.0.1:0, records every request, and hands each dialect the
//! next scripted step.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, Method};
use serde_json::Value;

use crate::script::{FakeReply, Step};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// HTTP method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// All headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
}

impl Recorded {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// State shared by a fake's handlers and the test that drives it.
#[derive(Debug)]
pub struct FakeState {
    steps: Mutex<VecDeque<Step>>,
    requests: Mutex<Vec<Recorded>>,
    default_reply: Mutex<FakeReply>,
    /// The credential the fake accepts (dialects decide how it is presented).
    pub expected_key: Option<String>,
    /// Anything else a dialect needs (a model name to report, a region).
    pub model: String,
    /// Extra wait between two pieces of a streamed body.
    pacing: Mutex<Duration>,
    /// Streamed bodies sent to the end.
    streams_completed: AtomicUsize,
    /// Streamed bodies the client stopped reading (it closed the connection) before the end.
    streams_abandoned: AtomicUsize,
    /// Chooses the answer from the request when the script is empty.
    responder: ResponderSlot,
}

#[derive(Default)]
struct ResponderSlot(Mutex<Option<Responder>>);

impl std::fmt::Debug for ResponderSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if lock(&self.0).is_some() {
            "Some(responder)"
        } else {
            "None"
        })
    }
}

/// Chooses a step from a model request's JSON body (`None`: the default reply). Lets a test
/// answer by what was asked, for calls whose order or number it cannot know in advance
/// (concurrent map calls of a map-reduce, say).
pub type Responder = Arc<dyn Fn(&Value) -> Option<Step> + Send + Sync>;

impl FakeState {
    /// The next scripted step, or the default reply.
    pub fn next_step(&self) -> Step {
        lock(&self.steps)
            .pop_front()
            .unwrap_or_else(|| Step::Reply(lock(&self.default_reply).clone()))
    }

    /// The next scripted step; when the script is empty, the responder's choice for this
    /// request body, else the default reply.
    pub fn next_step_for(&self, body: &Value) -> Step {
        if let Some(step) = lock(&self.steps).pop_front() {
            return step;
        }
        let responder = lock(&self.responder.0).clone();
        responder
            .and_then(|r| r(body))
            .unwrap_or_else(|| Step::Reply(lock(&self.default_reply).clone()))
    }

    /// The default reply.
    pub fn default_reply(&self) -> FakeReply {
        lock(&self.default_reply).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake provider. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Fake {
    /// `http://127.0.0.1:<port>`, without a trailing slash or path.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    state: Arc<FakeState>,
}

/// A dialect's request handler: the state and the recorded request in, a response out.
pub type Handler =
    fn(Arc<FakeState>, Recorded) -> futures_util::future::BoxFuture<'static, Response>;

impl Fake {
    /// Starts a fake on 127.0.0.1 with an ephemeral port, served on the current Tokio runtime
    /// until the runtime shuts down.
    pub async fn start(handler: Handler, expected_key: Option<String>, model: &str) -> Fake {
        let state = Arc::new(FakeState {
            steps: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            default_reply: Mutex::new(FakeReply::text("ok")),
            expected_key,
            model: model.to_owned(),
            pacing: Mutex::new(Duration::ZERO),
            streams_completed: AtomicUsize::new(0),
            streams_abandoned: AtomicUsize::new(0),
            responder: ResponderSlot::default(),
        });
        let app = Router::new()
            .fallback(
                move |State(state): State<Arc<FakeState>>, req: Request| async move {
                    let (parts, body) = req.into_parts();
                    let body = axum::body::to_bytes(body, usize::MAX)
                        .await
                        .unwrap_or_default();
                    let recorded = Recorded {
                        method: parts.method,
                        path: parts.uri.path().to_owned(),
                        query: parts.uri.query().map(str::to_owned),
                        headers: parts.headers,
                        body,
                    };
                    lock(&state.requests).push(recorded.clone());
                    let resp = handler(state.clone(), recorded).await;
                    watch_stream(resp, state)
                },
            )
            .with_state(state.clone());
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("fake provider could not bind 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("fake provider has no local address: {e}"),
        };
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake {
            base_url: format!("http://{addr}"),
            addr,
            state,
        }
    }

    /// Appends a step to the script.
    pub fn push(&self, step: Step) -> &Self {
        lock(&self.state.steps).push_back(step);
        self
    }

    /// Sets the answer used when the script is empty.
    pub fn set_default_reply(&self, reply: FakeReply) {
        *lock(&self.state.default_reply) = reply;
    }

    /// Answers by request when the script is empty (see [`Responder`]).
    pub fn set_responder(
        &self,
        responder: impl Fn(&Value) -> Option<Step> + Send + Sync + 'static,
    ) {
        *lock(&self.state.responder.0) = Some(Arc::new(responder));
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<Recorded> {
        lock(&self.state.requests).last().cloned()
    }

    /// Forgets recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }

    /// Steps not yet consumed.
    pub fn pending_steps(&self) -> usize {
        lock(&self.state.steps).len()
    }

    /// Waits this long between two pieces of every streamed body, so a test can act while a
    /// stream is still in flight (read its first chunk, or go away).
    pub fn set_stream_pacing(&self, pause: Duration) {
        *lock(&self.state.pacing) = pause;
    }

    /// How many streamed bodies were sent to their end.
    pub fn streams_completed(&self) -> usize {
        self.state.streams_completed.load(Ordering::SeqCst)
    }

    /// How many streamed bodies the client abandoned before their end by closing the
    /// connection: what a client disconnect must cause upstream.
    pub fn streams_abandoned(&self) -> usize {
        self.state.streams_abandoned.load(Ordering::SeqCst)
    }
}

/// Counts a streamed body as completed or abandoned when the server drops it.
struct StreamWatch {
    state: Arc<FakeState>,
    ended: bool,
}

impl Drop for StreamWatch {
    fn drop(&mut self) {
        if !self.ended {
            self.state.streams_abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Wraps streamed bodies (those without a known length) to pace them and to notice whether
/// the client read them to the end. Bodies of known length pass untouched.
fn watch_stream(resp: Response, state: Arc<FakeState>) -> Response {
    if resp.body().size_hint().exact().is_some() {
        return resp;
    }
    let pacing = *lock(&state.pacing);
    let (parts, body) = resp.into_parts();
    let watch = StreamWatch {
        state,
        ended: false,
    };
    let pieces = futures_util::stream::unfold(
        (body.into_data_stream(), watch, true),
        move |(mut body, mut watch, first)| async move {
            use futures_util::StreamExt;
            match body.next().await {
                Some(Ok(piece)) => {
                    // Pause before every piece but the first; the end is not delayed, so a
                    // client that stops reading at the last piece still counts as complete.
                    if !first && !pacing.is_zero() {
                        tokio::time::sleep(pacing).await;
                    }
                    Some((Ok(piece), (body, watch, false)))
                }
                // A scripted reset: neither completed nor abandoned by the client.
                Some(Err(e)) => {
                    watch.ended = true;
                    Some((Err(e), (body, watch, false)))
                }
                None => {
                    watch.ended = true;
                    watch.state.streams_completed.fetch_add(1, Ordering::SeqCst);
                    None
                }
            }
        },
    );
    Response::from_parts(parts, Body::from_stream(pieces))
}

/// Helpers the dialect modules share.
pub(crate) mod respond {
    use std::time::Duration;

    use axum::body::Body;
    use axum::response::Response;
    use bytes::Bytes;
    use futures_util::StreamExt;
    use http::{HeaderValue, StatusCode};
    use serde_json::Value;

    use crate::script::RetryAfter;

    /// A JSON response.
    pub(crate) fn json(status: u16, body: &Value) -> Response {
        raw(status, "application/json", body.to_string())
    }

    /// A response with any body.
    pub(crate) fn raw(status: u16, content_type: &str, body: impl Into<Body>) -> Response {
        let mut resp = Response::new(body.into());
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Ok(v) = HeaderValue::from_str(content_type) {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        resp
    }

    /// Adds `retry-after` (and `retry-after-ms` for millisecond waits).
    pub(crate) fn with_retry_after(
        mut resp: Response,
        retry_after: Option<RetryAfter>,
    ) -> Response {
        let h = resp.headers_mut();
        match retry_after {
            Some(RetryAfter::Seconds(s)) => {
                h.insert("retry-after", HeaderValue::from(s));
            }
            Some(RetryAfter::Millis(ms)) => {
                h.insert("retry-after-ms", HeaderValue::from(ms));
                h.insert("retry-after", HeaderValue::from(ms.div_ceil(1000)));
            }
            None => {}
        }
        resp
    }

    /// A streamed body of these chunks, each flushed separately with a short pause so the
    /// client really sees them arrive one by one. With `reset`, the connection is cut after
    /// the chunks instead of ending cleanly.
    pub(crate) fn stream(
        status: u16,
        content_type: &str,
        chunks: Vec<Bytes>,
        reset: bool,
    ) -> Response {
        let items = futures_util::stream::iter(chunks).then(|c| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok::<Bytes, std::io::Error>(c)
        });
        let tail = futures_util::stream::iter(reset.then(|| {
            Err::<Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fake provider cut the connection",
            ))
        }));
        raw(status, content_type, Body::from_stream(items.chain(tail)))
    }
}

//! The HTTP layer every dialect shares: one pooled client, per-attempt timeouts, retries with
//! exponential backoff and jitter that honour `retry-after`, bounded body reads, and stream
//! idle timeouts.

use std::sync::Once;
use std::time::{Duration, SystemTime};

use atlasai_core::ProviderErrorKind;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::HeaderMap;
use reqwest::{RequestBuilder, Response};

use crate::error::ProviderError;

/// The largest non-streaming response body we accept; anything bigger is refused rather than
/// buffered. Real chat and embedding responses are far smaller.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// The largest error body we read to find the provider's reason.
pub(crate) const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// The `user-agent` of every provider request.
pub(crate) const USER_AGENT: &str = concat!("atlasai-byoc/", env!("CARGO_PKG_VERSION"));

/// Timeouts and retry policy for one provider client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Per attempt: the time to the complete response, or for streams to the response headers
    /// and then between two chunks.
    pub timeout: Duration,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Retries on 429, 5xx, 529 and connection errors.
    pub retry: RetryPolicy,
    /// Which addresses the client may connect to.
    pub egress: crate::egress::Egress,
    /// Whether plain-`http://` endpoints reached without a proxy use the direct client (see
    /// `direct.rs`) instead of reqwest. On by default; off sends every request through
    /// reqwest (the contract tests run the OpenAI dialect both ways).
    pub direct_http: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            egress: crate::egress::Egress::Any,
            direct_http: true,
        }
    }
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff.
    pub initial_backoff: Duration,
    /// The largest backoff.
    pub max_backoff: Duration,
    /// The longest `retry-after` we wait out; a provider asking for more gets its error
    /// returned at once, with the wait it asked for.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `attempt` (0-based): half of the exponential step fixed,
    /// half random, so waits grow and concurrent clients spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let half = exp / 2;
        let jitter_ms = fastrand::u64(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

static CRYPTO: Once = Once::new();

/// Installs rustls' ring provider as the process default, once. reqwest is built without a
/// provider of its own so that we do not also compile aws-lc.
pub fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        // Another part of the process may have installed one first; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds the pooled HTTP client for one provider route. Build it once and reuse it.
pub fn build_client(opts: &HttpOptions) -> Result<reqwest::Client, ProviderError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(USER_AGENT);
    if opts.egress == crate::egress::Egress::PublicOnly {
        builder = builder
            .dns_resolver(std::sync::Arc::new(crate::egress::PublicOnlyResolver))
            .redirect(crate::egress::redirect_policy())
            .no_proxy();
    } else {
        builder = builder.redirect(crate::egress::same_origin_redirects());
    }
    builder
        .build()
        .map_err(|e| ProviderError::unavailable(format!("could not build the HTTP client: {e}")))
}

/// Turns a non-success response into the dialect's error: the dialect reads the body.
pub(crate) type ErrorMapper = fn(u16, &HeaderMap, &[u8]) -> ProviderError;

/// Sends a request, retrying per policy. `build` makes a fresh request for each attempt (each
/// may need a new signature). `streaming` limits the timeout to the response headers.
pub(crate) async fn send_with_retry<F, Fut>(
    opts: &HttpOptions,
    streaming: bool,
    map_error: ErrorMapper,
    mut build: F,
) -> Result<Response, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<RequestBuilder, ProviderError>>,
{
    with_retries(opts, || {
        let request = build();
        async move {
            let request = request.await.map_err(Failed::Finally)?;
            let request = if streaming {
                request
            } else {
                request.timeout(opts.timeout)
            };
            match tokio::time::timeout(opts.timeout, request.send()).await {
                Err(_) => Err(Failed::Attempt(timeout_error(opts.timeout))),
                Ok(Err(e)) => Err(Failed::Attempt(transport_error(&e))),
                Ok(Ok(resp)) if resp.status().is_success() => Ok(resp),
                Ok(Ok(resp)) => Err(Failed::Attempt(read_error(resp, map_error).await)),
            }
        }
    })
    .await
}

/// Why an attempt produced no response.
pub(crate) enum Failed {
    /// The attempt failed; another may succeed if the error is retryable.
    Attempt(ProviderError),
    /// No attempt can succeed (the request could not even be built).
    Finally(ProviderError),
}

/// Runs `attempt` until it answers, or fails for good, or the policy's retries are spent.
pub(crate) async fn with_retries<F, Fut>(
    opts: &HttpOptions,
    mut attempt: F,
) -> Result<Response, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response, Failed>>,
{
    let mut n = 0u32;
    loop {
        let err = match attempt().await {
            Ok(resp) => return Ok(resp),
            Err(Failed::Finally(err)) => return Err(err),
            Err(Failed::Attempt(err)) => err,
        };
        let wait = match retry_wait(opts, n, &err) {
            Some(wait) => wait,
            None => return Err(err),
        };
        tracing::debug!(attempt = n, wait_ms = wait.as_millis() as u64, error = %err, "retrying provider request");
        tokio::time::sleep(wait).await;
        n += 1;
    }
}

/// How long to wait before the next attempt, or `None` to give up with this error.
fn retry_wait(opts: &HttpOptions, attempt: u32, err: &ProviderError) -> Option<Duration> {
    if !err.is_retryable() || attempt >= opts.retry.max_retries {
        return None;
    }
    match err.retry_after {
        Some(wait) if wait > opts.retry.max_retry_after => None,
        Some(wait) => Some(wait),
        None => Some(opts.retry.backoff(attempt)),
    }
}

async fn read_error(resp: Response, map_error: ErrorMapper) -> ProviderError {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = read_limited(resp, MAX_ERROR_BODY_BYTES)
        .await
        .unwrap_or_default();
    error_from(status, &headers, &body, map_error)
}

/// The dialect's error for a non-success answer, with the status and the provider's advice on
/// retrying (`retry-after`, `x-should-retry`) applied.
pub(crate) fn error_from(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    map_error: ErrorMapper,
) -> ProviderError {
    let mut err = map_error(status, headers, body);
    err.status = Some(status);
    if err.retry_after.is_none() {
        err.retry_after = retry_after(headers);
    }
    // OpenAI's `x-should-retry` overrides the status-based decision in both directions.
    match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") if !err.is_retryable() => err.kind = ProviderErrorKind::Unavailable,
        Some("false") if err.is_retryable() && err.kind == ProviderErrorKind::Unavailable => {
            err.kind = ProviderErrorKind::BadRequest;
        }
        _ => {}
    }
    err
}

/// Reads a body up to `limit` bytes; a larger body is an error rather than a truncation.
pub(crate) async fn read_limited(resp: Response, limit: usize) -> Result<Bytes, ProviderError> {
    if let Some(len) = resp.content_length()
        && len as usize > limit
    {
        return Err(too_large(limit));
    }
    let mut buf = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport_error(&e))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads a successful response body, bounded, and parses it as JSON of type `T`.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    resp: Response,
    what: &str,
) -> Result<T, ProviderError> {
    let body = read_limited(resp, MAX_RESPONSE_BYTES).await?;
    parse_json(&body, what)
}

/// Parses JSON of type `T`, with an error that says what we were reading.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ProviderError> {
    serde_json::from_slice(body)
        .map_err(|e| ProviderError::invalid_response(format!("could not parse {what}: {e}")))
}

pub(crate) fn too_large(limit: usize) -> ProviderError {
    ProviderError::invalid_response(format!(
        "response body exceeds the {} MiB limit",
        limit / (1024 * 1024)
    ))
}

pub(crate) fn timeout_error(timeout: Duration) -> ProviderError {
    ProviderError::unavailable(format!(
        "no response within {:.1}s (request timeout)",
        timeout.as_secs_f64()
    ))
    .with_code("timeout")
}

/// Maps a transport failure (connect, reset, timeout, body error) to `Unavailable`.
pub(crate) fn transport_error(e: &reqwest::Error) -> ProviderError {
    if e.is_redirect() {
        // The redirect policy refused to follow: retrying would meet the same redirect.
        let msg = with_causes(
            "redirect not followed".to_owned(),
            std::error::Error::source(e),
        );
        return ProviderError::new(ProviderErrorKind::BadRequest, msg).with_code("redirect");
    }
    let what = if e.is_timeout() {
        "request timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection failed while reading the response"
    } else {
        "request failed"
    };
    // reqwest's Display includes the URL, which never carries secrets in our dialects
    // (keys travel in headers), and the underlying cause, which is what operators need.
    let msg = with_causes(format!("{what}: {e}"), std::error::Error::source(e));
    let code = if e.is_timeout() {
        "timeout"
    } else {
        "connection"
    };
    ProviderError::unavailable(msg).with_code(code)
}

/// `head`, then `first` and every error it was caused by, each after ": " (the underlying
/// cause is what operators need).
pub(crate) fn with_causes(
    mut head: String,
    first: Option<&(dyn std::error::Error + 'static)>,
) -> String {
    for cause in std::iter::successors(first, |e| e.source()) {
        head.push_str(": ");
        head.push_str(&cause.to_string());
    }
    head
}

/// Reads `retry-after-ms`, then `retry-after` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) =
        header_str(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms as u64));
    }
    let value = header_str(headers, "retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        // A wait beyond `Duration`'s range is simply longer than we ever wait.
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Wraps a stream so that a gap longer than `idle` between two items ends it with an error.
pub(crate) fn with_idle_timeout<S, T>(
    stream: S,
    idle: Duration,
) -> impl Stream<Item = Result<T, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<T, ProviderError>> + Send + 'static,
    T: Send + 'static,
{
    let stream = Box::pin(stream);
    futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(item)) => Some((item, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((
                Err(ProviderError::unavailable(format!(
                    "stream stalled: no data for {:.1}s",
                    idle.as_secs_f64()
                ))
                .with_code("timeout")),
                None,
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn retry_after_reads_ms_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        h.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("1e300"));
        assert_eq!(retry_after(&h), Some(Duration::MAX));
    }

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(30),
        };
        for attempt in 0..10 {
            let step = (Duration::from_millis(100) * 2u32.pow(attempt)).min(Duration::from_secs(2));
            for _ in 0..50 {
                let d = p.backoff(attempt);
                assert!(
                    d >= step / 2 && d <= step,
                    "attempt {attempt}: {d:?} vs {step:?}"
                );
            }
        }
    }

    #[test]
    fn long_retry_after_is_not_waited_out() {
        let opts = HttpOptions::default();
        let mut err = ProviderError::new(ProviderErrorKind::RateLimited, "slow down");
        err.retry_after = Some(Duration::from_secs(600));
        assert_eq!(retry_wait(&opts, 0, &err), None);
        err.retry_after = Some(Duration::from_secs(2));
        assert_eq!(retry_wait(&opts, 0, &err), Some(Duration::from_secs(2)));
        assert_eq!(retry_wait(&opts, 2, &err), None, "retries exhausted");
    }
}

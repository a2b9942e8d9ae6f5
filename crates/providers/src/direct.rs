//! A direct HTTP/1.1 client for plain `http://` upstreams reached without a proxy: the model
//! servers that run beside the tenant plane (vLLM, TGI, Ollama, an in-cluster gateway).
//!
//! reqwest costs measurable time on every request (callgrind, gateway benchmark: its redirect
//! and retry tower layers, its proxy check, and a parse of every response's URL back into a
//! `Url`). On this path none of that is needed: hyper's pooled client with the same timeouts
//! does the job. Everything else (TLS, proxies from `HTTP_PROXY`/`NO_PROXY`, the public-only
//! egress policy of the control plane) stays on reqwest; see [`Direct::applies_to`].
//!
//! Differences a user can see: a redirect is not followed but reported with its target (an
//! API endpoint that redirects is misconfigured, and reqwest would have turned the POST into a
//! GET on a 301 or 302; docs/configuration.md, Server), and transport errors name the endpoint
//! as `host:port/path`, without user-info or query, where reqwest's show the whole URL.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use crate::error::ProviderError;
use crate::http::{
    ErrorMapper, HttpOptions, MAX_ERROR_BODY_BYTES, MAX_RESPONSE_BYTES, USER_AGENT, error_from,
    timeout_error, too_large, with_causes,
};

/// One operation's address, parsed both ways once: hyper sends to the `Uri`, and answers
/// carry the `Url` (`reqwest::Response::url`).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    uri: Uri,
    url: Url,
}

impl Endpoint {
    pub(crate) fn new(url: &Url) -> Option<Endpoint> {
        Some(Endpoint {
            uri: url.as_str().parse().ok()?,
            url: url.clone(),
        })
    }

    /// The address as a `Url`.
    #[cfg(test)]
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }
}

/// The pooled plain-HTTP client of one provider route, with the headers every request carries.
#[derive(Debug, Clone)]
pub(crate) struct Direct {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `user-agent`, `accept` and the route's credentials, built once.
    headers: HeaderMap,
}

impl Direct {
    /// Whether `url` is served directly: plain `http`, any egress allowed (the public-only
    /// policy resolves names through its own checks in reqwest), and no proxy configured for
    /// it by `HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY`, read the way reqwest reads them.
    pub(crate) fn applies_to(url: &Url, opts: &HttpOptions) -> bool {
        Self::applies_with(url, opts, &Matcher::from_system())
    }

    fn applies_with(url: &Url, opts: &HttpOptions, proxies: &Matcher) -> bool {
        if !opts.direct_http || url.scheme() != "http" || opts.egress != crate::egress::Egress::Any
        {
            return false;
        }
        let Ok(uri) = url.as_str().parse::<Uri>() else {
            return false;
        };
        proxies.intercept(&uri).is_none()
    }

    /// A client whose requests carry `headers` (credentials marked sensitive by the caller).
    pub(crate) fn new(opts: &HttpOptions, mut headers: HeaderMap) -> Direct {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(opts.connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(connector);
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        Direct { client, headers }
    }

    /// One attempt: sends the request and, for anything but a successful stream, reads the
    /// whole body within `opts.timeout` (bounded as reqwest's path bounds it). A non-success
    /// status becomes the dialect's error. The answer is a `reqwest::Response`, so everything
    /// downstream reads both transports alike.
    pub(crate) async fn send(
        &self,
        opts: &HttpOptions,
        streaming: bool,
        map_error: ErrorMapper,
        method: Method,
        endpoint: &Endpoint,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, ProviderError> {
        let uri = &endpoint.uri;
        let has_body = body.is_some();
        let mut request = Request::new(Full::new(body.unwrap_or_default()));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        let h = request.headers_mut();
        h.clone_from(&self.headers);
        if has_body {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let exchange = async {
            let resp = self
                .client
                .request(request)
                .await
                .map_err(|e| transport_error(uri, "request failed", &e))?;
            let (parts, incoming) = resp.into_parts();
            let status = parts.status;
            if status.is_redirection() {
                return Err(redirect_error(uri, status, &parts.headers));
            }
            if status.is_success() && streaming {
                let body = reqwest::Body::wrap(incoming);
                return Ok(answer(parts, body, &endpoint.url));
            }
            if !status.is_success() {
                let body = read_limited(uri, incoming, &parts.headers, MAX_ERROR_BODY_BYTES)
                    .await
                    .unwrap_or_default();
                return Err(error_from(
                    status.as_u16(),
                    &parts.headers,
                    &body,
                    map_error,
                ));
            }
            let body = read_limited(uri, incoming, &parts.headers, MAX_RESPONSE_BYTES).await?;
            Ok(answer(parts, body, &endpoint.url))
        };
        match tokio::time::timeout(opts.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(timeout_error(opts.timeout)),
        }
    }
}

/// The answer as reqwest's response type, with its URL (without one, reqwest parses a
/// placeholder URL for every response).
fn answer(
    parts: http::response::Parts,
    body: impl Into<reqwest::Body>,
    url: &Url,
) -> reqwest::Response {
    use reqwest::ResponseBuilderExt as _;
    let http::response::Parts {
        status,
        version,
        headers,
        ..
    } = parts;
    let mut resp = http::Response::builder()
        .url(url.clone())
        .body(body.into())
        .unwrap_or_default();
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = headers;
    reqwest::Response::from(resp)
}

/// Reads a body up to `limit` bytes; a larger body is an error rather than a truncation.
async fn read_limited(
    uri: &Uri,
    mut body: hyper::body::Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, ProviderError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |len| len as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            transport_error(uri, "connection failed while reading the response", &e)
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// The endpoint as errors show it: host, port and path, never user-info or the query.
fn shown(uri: &Uri) -> String {
    format!(
        "{}:{}{}",
        uri.host().unwrap_or(""),
        uri.port_u16().unwrap_or(80),
        uri.path()
    )
}

/// Maps a transport failure (connect, reset, timeout, malformed answer) to `Unavailable`,
/// with the same wording and codes as the reqwest path.
fn transport_error(uri: &Uri, what: &str, e: &(dyn std::error::Error + 'static)) -> ProviderError {
    let chain = || std::iter::successors(Some(e), |err| err.source());
    let connect = chain().any(|err| {
        err.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
    });
    let timed_out = chain().any(|err| {
        err.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    let what = if timed_out {
        "request timed out"
    } else if connect {
        "could not connect"
    } else {
        what
    };
    let code = if timed_out { "timeout" } else { "connection" };
    let msg = with_causes(format!("{what} ({}): {e}", shown(uri)), e.source());
    ProviderError::unavailable(msg).with_code(code)
}

/// A redirect is reported, not followed: the endpoint URL should name the API itself.
fn redirect_error(uri: &Uri, status: http::StatusCode, headers: &HeaderMap) -> ProviderError {
    let target = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| l.split(['?', '#']).next().unwrap_or("").chars().take(200))
        .map(String::from_iter)
        .unwrap_or_else(|| "no Location header".to_owned());
    let mut err = ProviderError::new(
        atlasai_core::ProviderErrorKind::BadRequest,
        format!(
            "the endpoint answered {status} ({}) and redirects to {target}: set the endpoint URL to the address the API is served at (redirects are not followed)",
            shown(uri)
        ),
    )
    .with_code("redirect");
    err.status = Some(status.as_u16());
    err
}

/// A header for [`Direct::new`], marked sensitive so that no debug output shows it.
pub(crate) fn secret_header(name: HeaderName, value: &str) -> Option<(HeaderName, HeaderValue)> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::Egress;

    #[test]
    fn only_plain_http_without_a_proxy_goes_direct() {
        let opts = HttpOptions::default();
        let none = Matcher::builder().build();
        let url = |u: &str| Url::parse(u).unwrap();
        let vllm = url("http://vllm.models.svc:8000/v1/chat/completions");
        assert!(Direct::applies_with(&vllm, &opts, &none));
        assert!(!Direct::applies_with(
            &url("https://api.openai.com/v1/chat/completions"),
            &opts,
            &none
        ));
        let public_only = HttpOptions {
            egress: Egress::PublicOnly,
            ..HttpOptions::default()
        };
        assert!(!Direct::applies_with(&vllm, &public_only, &none));
        let off = HttpOptions {
            direct_http: false,
            ..HttpOptions::default()
        };
        assert!(!Direct::applies_with(&vllm, &off, &none));

        // HTTP_PROXY applies unless NO_PROXY exempts the host; HTTPS_PROXY does not apply.
        let proxied = Matcher::builder().http("http://proxy.corp:3128").build();
        assert!(!Direct::applies_with(&vllm, &opts, &proxied));
        let exempt = Matcher::builder()
            .http("http://proxy.corp:3128")
            .no(".svc,10.0.0.0/8")
            .build();
        assert!(Direct::applies_with(&vllm, &opts, &exempt));
        assert!(Direct::applies_with(
            &url("http://10.1.2.3:11434/v1/chat/completions"),
            &opts,
            &exempt
        ));
        let https_only = Matcher::builder().https("http://proxy.corp:3128").build();
        assert!(Direct::applies_with(&vllm, &opts, &https_only));
        let all = Matcher::builder().all("socks5://proxy.corp:1080").build();
        assert!(!Direct::applies_with(&vllm, &opts, &all));
    }

    #[test]
    fn transport_errors_name_the_endpoint_without_user_info_or_query() {
        let uri: Uri = "http://user:pw@10.0.0.5:8000/v1/chat/completions?key=abc"
            .parse()
            .unwrap();
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline has elapsed");
        let err = transport_error(&uri, "request failed", &io);
        assert_eq!(err.code.as_deref(), Some("timeout"), "{err}");
        assert!(
            err.message.contains("10.0.0.5:8000/v1/chat/completions"),
            "{err}"
        );
        assert!(
            !err.message.contains("pw") && !err.message.contains("abc"),
            "{err}"
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = transport_error(&uri, "request failed", &refused);
        assert_eq!(err.code.as_deref(), Some("connection"), "{err}");
        assert!(err.message.starts_with("request failed"), "{err}");
    }
}

//! Fault injection between the real tenant plane and a fake provider: a small proxy on
//! 127.0.0.1 under test control cuts, stalls or corrupts the provider's answers at the
//! transport level, and the fake's script supplies the HTTP-level faults (429 with and without
//! retry-after, 500/502/503/529, malformed JSON, a body cut short). For each fault the tenant
//! plane must give the documented answer ("AI provider temporarily unavailable" with the
//! reason, or success after a retry), answer at all (no hung request), not panic, stay alive
//! and ready, keep memory bounded, and recover once the provider is healthy again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atlasai_e2e::{Running, TP_ADMIN, start, tp_env};
use atlasai_fakes::{Fake, FakeReply, RetryAfter, Step, openai};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the next connections.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Forward both ways.
    Pass,
    /// Forward this many bytes of the answer, then reset the connection.
    ResetAfter(usize),
    /// Forward the request, then hold the answer back this long.
    Stall(Duration),
    /// Answer with bytes that are not HTTP at all.
    Garbage,
    /// Answer 200 with a body that never ends (until the client hangs up), counting bytes.
    Endless,
}

struct Proxy {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    sent: Arc<Mutex<usize>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let sent = Arc::new(Mutex::new(0usize));
        let (f, s) = (fault.clone(), sent.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream, f.clone(), s.clone()));
            }
        });
        Proxy { addr, fault, sent }
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

/// One client connection. The fault in force is read again for every request the client
/// sends, because the tenant plane keeps connections alive across requests.
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    faults: Arc<Mutex<Fault>>,
    sent: Arc<Mutex<usize>>,
) {
    let mut up: Option<TcpStream> = None;
    let mut cbuf = vec![0u8; 64 * 1024];
    let mut ubuf = vec![0u8; 16 * 1024];
    let mut fault = Fault::Pass;
    let mut forwarded = 0usize;
    let mut stalled = false;
    loop {
        let up_read = async {
            match up.as_mut() {
                Some(u) => u.read(&mut ubuf).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = client.read(&mut cbuf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                // A new request (or more of one): take the fault in force now.
                fault = *faults.lock().unwrap();
                forwarded = 0;
                stalled = false;
                match fault {
                    Fault::Garbage => {
                        let _ = client.write_all(b"\x00\x17\x03garbage that is not HTTP\r\n\r\n").await;
                        return;
                    }
                    Fault::Endless => {
                        let _ = client
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                            .await;
                        let chunk = [b"10000\r\n".to_vec(), vec![b' '; 0x10000], b"\r\n".to_vec()].concat();
                        while client.write_all(&chunk).await.is_ok() {
                            *sent.lock().unwrap() += chunk.len();
                        }
                        return;
                    }
                    _ => {}
                }
                if up.is_none() {
                    match TcpStream::connect(upstream).await {
                        Ok(u) => up = Some(u),
                        Err(_) => return,
                    }
                }
                if let Some(u) = up.as_mut()
                    && u.write_all(&cbuf[..n]).await.is_err()
                {
                    return;
                }
            }
            r = up_read => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                if let Fault::Stall(d) = fault && !stalled {
                    stalled = true;
                    tokio::time::sleep(d).await;
                }
                if let Fault::ResetAfter(limit) = fault && forwarded + n >= limit {
                    let _ = client.write_all(&ubuf[..limit.saturating_sub(forwarded)]).await;
                    // Reset rather than close: the client sees the connection die mid-answer.
                    // A zero linger sends RST at once and never blocks.
                    #[allow(deprecated)]
                    let _ = client.set_linger(Some(Duration::ZERO));
                    return;
                }
                if client.write_all(&ubuf[..n]).await.is_err() {
                    return;
                }
                forwarded += n;
            }
        }
    }
}

struct Setup {
    fake: Fake,
    proxy: Proxy,
    tp: Running,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let fake = openai::start(Some("sk-proj-faults-0000000000"), "gpt-4o-mini").await;
    let proxy = Proxy::start(fake.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}/v1", proxy.addr);
    let tp = start(
        "atlasai-tp",
        &tp_env(
            dir.path(),
            &[
                ("BYOC_PROVIDER", "openai"),
                ("BYOC_API_KEY", "sk-proj-faults-0000000000"),
                ("BYOC_MODEL", "gpt-4o-mini"),
                ("BYOC_ENDPOINT_URL", &endpoint),
                ("TP_PROVIDER_TIMEOUT", "2s"),
                ("TP_PROVIDER_MAX_RETRIES", "1"),
            ],
        ),
        "tenant plane listening",
    );
    Setup {
        fake,
        proxy,
        tp,
        _dir: dir,
    }
}

/// Calls the connection test; returns status, body and how long it took.
async fn ai_test(s: &Setup) -> (u16, Value, Duration) {
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/ai/test", s.tp.url))
        .bearer_auth(TP_ADMIN)
        .header("x-tenant-id", "acme")
        .json(&json!({"test": true}))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("the tenant plane answered (no hung request)");
    let status = resp.status().as_u16();
    (
        status,
        resp.json().await.unwrap_or_default(),
        started.elapsed(),
    )
}

/// Checks the documented failure, then health, then recovery once the provider is healthy.
async fn expect_unavailable(s: &mut Setup, fault: &str, detail_has: &str) {
    let (status, body, took) = ai_test(s).await;
    assert_eq!(status, 503, "{fault}: {body}");
    assert_eq!(
        body["error"], "AI provider temporarily unavailable",
        "{fault}: {body}"
    );
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(detail_has),
        "{fault}: expected {detail_has:?} in {detail:?}"
    );
    eprintln!("{fault}: 503 in {} ms: {detail}", took.as_millis());
    after(s, fault).await;
}

async fn after(s: &mut Setup, fault: &str) {
    assert!(s.tp.alive(), "{fault}: the tenant plane died");
    assert!(
        !s.tp.logs().contains("panicked"),
        "{fault}: panic in the logs:\n{}",
        s.tp.logs()
    );
    let ready = reqwest::get(format!("{}/readyz", s.tp.url)).await.unwrap();
    assert_eq!(ready.status(), 200, "{fault}: not ready afterwards");
    s.proxy.set(Fault::Pass);
    let (status, body, _) = ai_test(s).await;
    assert_eq!(
        status, 200,
        "{fault}: no recovery once the provider is healthy: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_faults() {
    let mut s = setup().await;
    let (status, _, _) = ai_test(&s).await;
    assert_eq!(status, 200, "baseline");

    s.proxy.set(Fault::ResetAfter(40));
    expect_unavailable(&mut s, "reset mid-response", "connection").await;

    s.proxy.set(Fault::Stall(Duration::from_secs(20)));
    let (status, body, took) = ai_test(&s).await;
    assert_eq!(status, 503, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("timed out") || detail.contains("no response within 2.0s"),
        "{body}"
    );
    assert!(
        took < Duration::from_secs(15),
        "the stall was not cut off by the timeout: {took:?}"
    );
    after(&mut s, "stall past the timeout").await;

    s.proxy.set(Fault::Garbage);
    expect_unavailable(&mut s, "garbage instead of HTTP", "request failed").await;

    let rss_before = s.tp.rss_kib().unwrap_or(0);
    s.proxy.set(Fault::Endless);
    expect_unavailable(
        &mut s,
        "response larger than any sane limit",
        "exceeds the 32 MiB limit",
    )
    .await;
    let rss_after = s.tp.rss_kib().unwrap_or(0);
    let streamed = *s.proxy.sent.lock().unwrap();
    assert!(
        streamed < 512 * 1024 * 1024,
        "the tenant plane kept reading: {streamed} bytes"
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 200 * 1024,
        "memory grew by {} MiB for an endless answer",
        rss_after.saturating_sub(rss_before) / 1024
    );
    eprintln!(
        "endless answer: read {} MiB before giving up; RSS {} -> {} MiB",
        streamed / (1024 * 1024),
        rss_before / 1024,
        rss_after / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors() {
    let mut s = setup().await;

    // 429 with a short retry-after is waited out and retried.
    s.fake.push(Step::Fail {
        status: 429,
        retry_after: Some(RetryAfter::Seconds(1)),
    });
    let (status, body, took) = ai_test(&s).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        took >= Duration::from_millis(900),
        "retry-after was not honoured: {took:?}"
    );

    // 429 without retry-after, twice (attempt + retry): rate limited.
    for _ in 0..2 {
        s.fake.push(Step::Fail {
            status: 429,
            retry_after: None,
        });
    }
    expect_unavailable(&mut s, "429 without retry-after", "rate limited (HTTP 429)").await;

    // 429 asking for longer than we wait: answered at once, not waited.
    s.fake.push(Step::Fail {
        status: 429,
        retry_after: Some(RetryAfter::Seconds(300)),
    });
    let (status, body, took) = ai_test(&s).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        took < Duration::from_secs(10),
        "a 300 s retry-after was waited: {took:?}"
    );
    after(&mut s, "429 with a long retry-after").await;

    for code in [500u16, 502, 503, 529] {
        for _ in 0..2 {
            s.fake.push(Step::Fail {
                status: code,
                retry_after: None,
            });
        }
        expect_unavailable(&mut s, &format!("{code} twice"), &format!("HTTP {code}")).await;
        // A single failure is absorbed by the retry.
        s.fake.push(Step::Fail {
            status: code,
            retry_after: None,
        });
        let (status, body, _) = ai_test(&s).await;
        assert_eq!(status, 200, "{code} once then ok: {body}");
    }

    s.fake.push(Step::Malformed);
    expect_unavailable(&mut s, "malformed JSON", "invalid response").await;

    s.fake
        .push(Step::Truncated(FakeReply::text("an answer cut in half")));
    expect_unavailable(&mut s, "a body cut short", "invalid response").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused() {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{dead}/v1");
    let mut tp = start(
        "atlasai-tp",
        &tp_env(
            dir.path(),
            &[
                ("BYOC_PROVIDER", "vllm"),
                ("BYOC_MODEL", "m"),
                ("BYOC_ENDPOINT_URL", &endpoint),
                ("TP_PROVIDER_MAX_RETRIES", "1"),
            ],
        ),
        "tenant plane listening",
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/api/ai/test", tp.url))
        .bearer_auth(TP_ADMIN)
        .header("x-tenant-id", "acme")
        .json(&json!({"test": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{body}"
    );
    assert!(tp.alive());
    assert!(!tp.logs().contains("panicked"));
}

//! A closed-loop load generator: a fixed number of workers, each with its own keep-alive
//! HTTP/1.1 connection, sending the next request as soon as the previous answer has been read
//! to its end. Latencies go into HDR histograms (nanoseconds, three significant digits); only
//! requests that start after the warm-up and end before the deadline are recorded.
//!
//! It runs on one thread (the benchmark pins it to its own CPU) and uses hyper's connection API
//! directly, so that its own cost per request stays small next to what it measures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;

/// The request every worker repeats.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The request path.
    pub path: String,
    /// Extra headers (authentication, gateway routing).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The JSON body.
    pub body: Bytes,
    /// How long each worker waits after an answer before its next request (zero: at once).
    /// A pause lets the server go idle between requests, as it does under real traffic.
    pub pause: Duration,
}

/// What one load level measured.
#[derive(Debug)]
pub struct Measured {
    /// Time to the end of each answer.
    pub latency: Histogram<u64>,
    /// Time to the first byte of each answer's body.
    pub first_byte: Histogram<u64>,
    /// Answers with status 200 completed inside the measurement window.
    pub ok: u64,
    /// Non-200 answers, transport errors and timeouts inside the window.
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// The measurement window.
    pub window: Duration,
    /// CPU time the watched process tree spent during the window.
    pub cpu: Duration,
}

impl Measured {
    /// Adds another window's numbers to these (the windows add up).
    pub fn absorb(&mut self, other: Measured) -> anyhow::Result<()> {
        self.latency
            .add(&other.latency)
            .context("merging histograms")?;
        self.first_byte
            .add(&other.first_byte)
            .context("merging histograms")?;
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.window += other.window;
        self.cpu += other.cpu;
        Ok(())
    }

    /// An error; counted when it happened inside the window, and kept when it is the first.
    fn error(&mut self, counted: bool, e: String) {
        if counted {
            self.errors += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    fn empty(window: Duration) -> anyhow::Result<Measured> {
        Ok(Measured {
            latency: histogram()?,
            first_byte: histogram()?,
            ok: 0,
            errors: 0,
            first_error: None,
            window,
            cpu: Duration::ZERO,
        })
    }

    /// Completed requests per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 ns to 5 minutes at three significant digits.
    Histogram::new_with_bounds(1, 300_000_000_000, 3).context("creating a histogram")
}

/// A request must finish within this, or it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn connect(target: &Target) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("connecting to {}", target.addr))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(target: &Target) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
    let mut b = hyper::Request::post(target.path.as_str())
        .header(hyper::header::HOST, target.addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json, text/event-stream");
    for (k, v) in &target.headers {
        b = b.header(k, v);
    }
    Ok(b.body(Full::new(target.body.clone()))?)
}

/// One worker's requests (its window is zero: the run's is counted once).
async fn worker(target: Arc<Target>, from: Instant, until: Instant) -> anyhow::Result<Measured> {
    let mut w = Measured::empty(Duration::ZERO)?;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < until {
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(&target).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    w.error(Instant::now() >= from, format!("{e:#}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let req = request(&target)?;
        let started = Instant::now();
        let exchange = async {
            s.ready().await?;
            let resp = s.send_request(req).await?;
            let status = resp.status();
            let mut body = resp.into_body();
            let mut first = None;
            while let Some(frame) = body.frame().await {
                if frame?.is_data() && first.is_none() {
                    first = Some(Instant::now());
                }
            }
            Ok::<_, hyper::Error>((status, first))
        };
        let result = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await;
        let ended = Instant::now();
        let counted = started >= from && ended <= until;
        match result {
            Ok(Ok((status, first))) if status == hyper::StatusCode::OK => {
                if counted {
                    w.ok += 1;
                    let _ = w.latency.record(nanos(ended - started));
                    if let Some(f) = first {
                        let _ = w.first_byte.record(nanos(f - started));
                    }
                }
            }
            Ok(Ok((status, _))) => w.error(counted, format!("HTTP {status}")),
            Ok(Err(e)) => {
                w.error(counted, format!("{e}"));
                sender = None;
            }
            Err(_) => {
                w.error(counted, format!("no answer within {REQUEST_TIMEOUT:?}"));
                sender = None;
            }
        }
        if !target.pause.is_zero() {
            tokio::time::sleep(target.pause).await;
        }
    }
    Ok(w)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Runs `concurrency` workers for `warmup` plus `window`, measuring only the window, and the
/// CPU time the process tree `cpu_of` spends in it.
pub async fn run(
    target: &Target,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
    cpu_of: Option<u32>,
) -> anyhow::Result<Measured> {
    let target = Arc::new(target.clone());
    let from = Instant::now() + warmup;
    let until = from + window;
    let cpu = tokio::spawn(async move {
        let pid = cpu_of?;
        tokio::time::sleep_until(from.into()).await;
        let start = crate::gateway::tree_cpu(pid);
        tokio::time::sleep_until(until.into()).await;
        Some(crate::gateway::tree_cpu(pid).saturating_sub(start))
    });
    let workers: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(worker(target.clone(), from, until)))
        .collect();
    let mut m = Measured::empty(window)?;
    m.cpu = cpu.await.ok().flatten().unwrap_or_default();
    for w in workers {
        m.absorb(w.await.context("a load worker panicked")??)?;
    }
    Ok(m)
}

/// Whether something answers HTTP at this address with the target's request (any status
/// below 500 counts: a gateway that is up but rejects the request is still up).
pub async fn answers(target: &Target) -> bool {
    let attempt = async {
        let mut s = connect(target).await.ok()?;
        s.ready().await.ok()?;
        let resp = s.send_request(request(target).ok()?).await.ok()?;
        let ok = resp.status().is_success();
        let _ = resp.into_body().collect().await;
        Some(ok)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), attempt).await,
        Ok(Some(true))
    )
}

//! A circuit breaker per provider endpoint: after several consecutive failures it stops
//! calling the provider for a cool-down, answering at once with "unavailable" instead of
//! piling timeouts onto a provider that is down; then it lets one request through as a probe,
//! and closes again when the probe succeeds.
//!
//! Only failures that say the provider is down count (`Unavailable`: 5xx, 529, connection
//! errors, timeouts). Rate limits, bad requests and authentication errors mean the provider is
//! up and answering.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use atlasai_core::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo, ProviderErrorKind,
};

use crate::{ChatStream, Provider, ProviderError, ProviderInfo};

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// The breaker's state, for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow.
    Closed,
    /// Requests are refused until the cool-down ends.
    Open,
    /// One probe request is allowed through.
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// One endpoint's breaker, shared by every client built for it.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Arc<Self> {
        Arc::new(Breaker {
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
        })
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        match *self.lock() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if Instant::now() >= until => CircuitState::HalfOpen,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks to make a call: `Ok(probe)` (whether this call is the half-open probe), or the
    /// error to return instead of calling.
    fn admit(&self) -> Result<bool, ProviderError> {
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            State::Closed { .. } => Ok(false),
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { probing: true };
                Ok(true)
            }
            State::Open { until } => Err(open_error(until - now, self.config)),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(true)
            }
            State::HalfOpen { probing: true } => {
                Err(open_error(Duration::from_secs(1), self.config))
            }
        }
    }

    /// Records a call made around the breaker (a connection test, which must reach the
    /// provider even while the circuit is open): it counts as a probe, so a success closes
    /// the circuit.
    pub fn observe(&self, outcome: Result<(), ProviderErrorKind>) {
        self.record(outcome, true);
    }

    /// Records how a call went.
    fn record(&self, outcome: Result<(), ProviderErrorKind>, probe: bool) {
        let down = matches!(outcome, Err(ProviderErrorKind::Unavailable));
        let mut state = self.lock();
        let next = match (&*state, down) {
            (_, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true) if failures + 1 < self.config.failures => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::HalfOpen { .. }, true) if !probe => State::HalfOpen { probing: true },
            (_, true) => {
                tracing::warn!(
                    open_for_s = self.config.open_for.as_secs(),
                    "provider circuit opened after consecutive failures"
                );
                State::Open {
                    until: Instant::now() + self.config.open_for,
                }
            }
        };
        *state = next;
    }
}

fn open_error(wait: Duration, config: BreakerConfig) -> ProviderError {
    let mut e = ProviderError::unavailable(format!(
        "circuit open: the provider failed {} times in a row; calls resume with a probe in {:.0}s",
        config.failures,
        wait.as_secs_f64().ceil()
    ))
    .with_code("circuit_open");
    e.retry_after = Some(wait);
    e
}

/// A client guarded by a breaker.
#[derive(Debug)]
pub struct Guarded {
    inner: Arc<dyn Provider>,
    breaker: Arc<Breaker>,
}

impl Guarded {
    /// Wraps a client.
    pub fn wrap(inner: Arc<dyn Provider>, breaker: Arc<Breaker>) -> Arc<dyn Provider> {
        Arc::new(Guarded { inner, breaker })
    }
}

fn kind<T>(r: &Result<T, ProviderError>) -> Result<(), ProviderErrorKind> {
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(e.kind),
    }
}

#[async_trait::async_trait]
impl Provider for Guarded {
    fn info(&self) -> &ProviderInfo {
        self.inner.info()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let probe = self.breaker.admit()?;
        let result = self.inner.chat(request).await;
        self.breaker.record(kind(&result), probe);
        result
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        // A stream counts as a success once it starts; failures after the first event are the
        // stream's own and are not retried elsewhere either.
        let probe = self.breaker.admit()?;
        let result = self.inner.chat_stream(request).await;
        self.breaker.record(kind(&result), probe);
        result
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let probe = self.breaker.admit()?;
        let result = self.inner.embed(request).await;
        self.breaker.record(kind(&result), probe);
        result
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        // A configuration aid, not traffic: it neither trips nor waits for the breaker.
        self.inner.list_models().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_ms: u64) -> Arc<Breaker> {
        Breaker::new(BreakerConfig {
            failures: 3,
            open_for: Duration::from_millis(open_ms),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_closes_after_a_good_probe() {
        let b = breaker(50);
        for _ in 0..2 {
            let probe = b.admit().unwrap();
            b.record(Err(ProviderErrorKind::Unavailable), probe);
        }
        assert_eq!(b.state(), CircuitState::Closed);
        let probe = b.admit().unwrap();
        b.record(Err(ProviderErrorKind::Unavailable), probe);
        assert_eq!(b.state(), CircuitState::Open);
        let err = b.admit().unwrap_err();
        assert_eq!(err.code.as_deref(), Some("circuit_open"));
        assert!(err.retry_after.is_some());

        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(
            b.admit().unwrap(),
            "the first call after the cool-down is the probe"
        );
        assert!(b.admit().is_err(), "only one probe at a time");
        b.record(Ok(()), true);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_and_other_errors_do_not_count() {
        let b = breaker(50);
        for kind in [
            ProviderErrorKind::RateLimited,
            ProviderErrorKind::BadRequest,
            ProviderErrorKind::Authentication,
        ] {
            for _ in 0..10 {
                b.record(Err(kind), false);
            }
        }
        assert_eq!(
            b.state(),
            CircuitState::Closed,
            "the provider is up when it answers errors"
        );
        for _ in 0..3 {
            b.record(Err(ProviderErrorKind::Unavailable), false);
        }
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.admit().unwrap();
        b.record(Err(ProviderErrorKind::Unavailable), probe);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = breaker(50);
        for _ in 0..2 {
            b.record(Err(ProviderErrorKind::Unavailable), false);
        }
        b.record(Ok(()), false);
        for _ in 0..2 {
            b.record(Err(ProviderErrorKind::Unavailable), false);
        }
        assert_eq!(b.state(), CircuitState::Closed);
    }
}

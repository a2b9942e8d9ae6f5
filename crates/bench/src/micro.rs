//! A microbenchmark of what metrics cost one gateway request: one HTTP request observation plus
//! one model-call observation (counter, token counters, histogram), on series that already
//! exist, as in a steady-state gateway.

use std::hint::black_box;
use std::time::{Duration, Instant};

use atlasai_core::{ProviderKind, TenantId, Usage};
use atlasai_providers::ProviderInfo;
use atlasai_tenant_plane::calls::{CallOutcome, Feature, ModelCall};
use atlasai_tenant_plane::metrics::Metrics;
use serde::Serialize;

/// Nanoseconds per operation.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MetricsCost {
    /// Recording one HTTP request (counter and latency histogram).
    pub http_request_ns: f64,
    /// Recording one model call (call counter, two token counters, latency histogram).
    pub model_call_ns: f64,
    /// Both: what one gateway request pays.
    pub per_gateway_request_ns: f64,
    /// Iterations measured.
    pub iterations: u64,
}

/// Measures the cost of recording.
pub fn metrics_cost(iterations: u64) -> anyhow::Result<MetricsCost> {
    let metrics = Metrics::new();
    let info = ProviderInfo {
        kind: ProviderKind::OpenAi,
        model: "bench-model".to_owned(),
        endpoint: url::Url::parse("http://127.0.0.1:9/v1")?,
    };
    let tenant = TenantId::parse("bench")?;
    let call = ModelCall {
        tenant: &tenant,
        feature: Feature::Gateway,
        provider: &info,
        usage: Some(Usage::new(42, 17)),
        latency: Duration::from_micros(250),
        outcome: CallOutcome::Ok,
        cloud_fallback: None,
    };
    let method = hyper::Method::POST;
    let time = |f: &dyn Fn()| {
        for _ in 0..iterations / 10 {
            f();
        }
        let started = Instant::now();
        for _ in 0..iterations {
            f();
        }
        started.elapsed().as_nanos() as f64 / iterations as f64
    };
    let http_request_ns = time(&|| {
        metrics.http_request(
            black_box(&method),
            black_box(Some("/v1/chat/completions")),
            black_box(200),
            black_box(Duration::from_micros(80)),
        );
    });
    let model_call_ns = time(&|| metrics.model_call(black_box(&call)));
    Ok(MetricsCost {
        http_request_ns,
        model_call_ns,
        per_gateway_request_ns: http_request_ns + model_call_ns,
        iterations,
    })
}

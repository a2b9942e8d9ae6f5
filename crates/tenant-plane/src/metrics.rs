//! Prometheus metrics of the tenant plane, served at `GET /metrics` in the OpenMetrics text
//! format (`prometheus-client`).
//!
//! - HTTP: requests, errors and latency by method and route (the route template, never the
//!   raw path), recorded by a middleware.
//! - Model calls: count by tenant, feature, provider, model and outcome; tokens by type;
//!   latency. Fed by [`crate::calls::CallRecorder`], so every feature's calls are counted the
//!   same way.
//!
//! Label cardinality is bounded: methods and statuses are small fixed sets, routes come from
//! the router's templates, and tenants and models pass through [`Interner`]s that admit a fixed
//! number of distinct values and fold the rest into `_other` (an admin caller can name any
//! tenant in `x-tenant-id`; without the bound each new name would be a new series forever).
//!
//! Recording is a few uncontended read locks and atomic adds; label values are interned
//! `Arc<str>`, so recording allocates nothing once a series exists.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use secrecy::{ExposeSecret, SecretString};

use crate::calls::ModelCall;
use crate::config::ReportRow;
use crate::config::sources::{Layers, Source};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Distinct tenants tracked per metric before the rest are folded into `_other`.
pub const MAX_TENANTS: usize = 200;
/// Distinct models tracked before the rest are folded into `_other`.
pub const MAX_MODELS: usize = 50;
/// Distinct routes tracked (the router has fewer; this only guards against surprises).
const MAX_ROUTES: usize = 100;
const MIN_TOKEN_CHARS: usize = 16;

/// Bucket bounds (seconds) for HTTP latency: the gateway adds well under a millisecond, so the
/// low end is fine-grained; model answers can take minutes.
const HTTP_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Bucket bounds (seconds) for model calls, retries included.
const CALL_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// Metrics settings (`TP_METRICS_ENABLED`, `TP_METRICS_TOKEN`).
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Whether metrics are recorded and served (default true). Read at start-up.
    pub enabled: bool,
    /// When set, `GET /metrics` requires `Authorization: Bearer <token>`.
    pub token: Option<SecretString>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            token: None,
        }
    }
}

/// Reads the metrics settings, recording problems in the layers.
pub(crate) fn resolve(l: &mut Layers<'_>, report: &mut Vec<ReportRow>) -> MetricsConfig {
    let enabled = l.flag("TP_METRICS_ENABLED", None);
    let (enabled, source) = match enabled {
        Some(e) => (e.value, e.source),
        None => (true, Source::Default),
    };
    report.push(ReportRow {
        setting: "metrics",
        value: if enabled { "on (GET /metrics)" } else { "off" }.to_owned(),
        source,
    });
    let token = l.secret("TP_METRICS_TOKEN", None).and_then(|t| {
        let chars = t.value.expose_secret().chars().count();
        if chars < MIN_TOKEN_CHARS {
            l.error(format!(
                "{}: the metrics token must be at least {MIN_TOKEN_CHARS} characters (it has {chars}); generate one with `openssl rand -hex 32`",
                t.source.setting_name()
            ));
            return None;
        }
        report.push(ReportRow {
            setting: "metrics token",
            value: atlasai_core::secret::describe(&t.value),
            source: t.source,
        });
        Some(t.value)
    });
    MetricsConfig { enabled, token }
}

/// Admits up to a fixed number of distinct label values; later ones become `_other`.
#[derive(Debug)]
pub struct Interner {
    max: usize,
    values: RwLock<HashMap<Box<str>, Arc<str>>>,
    other: Arc<str>,
}

impl Interner {
    /// An interner for at most `max` values.
    pub fn new(max: usize) -> Self {
        Interner {
            max,
            values: RwLock::new(HashMap::new()),
            other: Arc::from("_other"),
        }
    }

    /// The shared label value for `value`, or `_other` once the bound is reached.
    pub fn get(&self, value: &str) -> Arc<str> {
        if let Some(v) = self
            .values
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(value)
        {
            return v.clone();
        }
        let mut values = self
            .values
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = values.get(value) {
            return v.clone();
        }
        if values.len() >= self.max {
            return self.other.clone();
        }
        let v: Arc<str> = Arc::from(value);
        values.insert(value.into(), v.clone());
        v
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: Arc<str>,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tenant: Arc<str>,
    feature: &'static str,
    provider: &'static str,
    model: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    tenant: Arc<str>,
    feature: &'static str,
    provider: &'static str,
    model: Arc<str>,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    tenant: Arc<str>,
    feature: &'static str,
    provider: &'static str,
    model: Arc<str>,
    r#type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    state: &'static str,
}

/// Every metric of the tenant plane.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_errors: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    calls: Family<OutcomeLabels, Counter>,
    call_duration: HistogramFamily<CallLabels>,
    tokens: Family<TokenLabels, Counter>,
    queue_jobs: Family<QueueLabels, Gauge>,
    queue_oldest: Gauge<f64, std::sync::atomic::AtomicU64>,
    routes: Interner,
    tenants: Interner,
    models: Interner,
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

fn call_histogram() -> Histogram {
    Histogram::new(CALL_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_errors = Family::<HttpLabels, Counter>::default();
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(http_histogram);
        let calls = Family::<OutcomeLabels, Counter>::default();
        let call_duration: HistogramFamily<CallLabels> =
            Family::new_with_constructor(call_histogram);
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "atlasai_http_requests",
            "HTTP requests by method, route template and status",
            http_requests.clone(),
        );
        registry.register(
            "atlasai_http_request_errors",
            "HTTP requests answered with a 4xx or 5xx status, by method, route template and status",
            http_errors.clone(),
        );
        registry.register_with_unit(
            "atlasai_http_request_duration",
            "Time from request to response head (for streams: to the first chunk), by method and route template",
            Unit::Seconds,
            http_duration.clone(),
        );
        registry.register(
            "atlasai_model_calls",
            "Model calls by tenant, feature, provider, model and outcome (ok, cancelled, or the error kind)",
            calls.clone(),
        );
        registry.register_with_unit(
            "atlasai_model_call_duration",
            "Model call time, retries included, to the last byte of the answer",
            Unit::Seconds,
            call_duration.clone(),
        );
        registry.register(
            "atlasai_model_tokens",
            "Tokens reported by the provider, by tenant, feature, provider, model and type (prompt or completion)",
            tokens.clone(),
        );
        let queue_jobs = Family::<QueueLabels, Gauge>::default();
        let queue_oldest = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "atlasai_ai_queue_jobs",
            "AI requests queued under queue_and_retry, by state (queued, running), all tenants",
            queue_jobs.clone(),
        );
        registry.register_with_unit(
            "atlasai_ai_queue_oldest_job_age",
            "Age of the oldest unfinished queued AI request (0 when none)",
            Unit::Seconds,
            queue_oldest.clone(),
        );
        registry.register(
            "atlasai_tenant_plane_build",
            "The running version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Metrics {
            registry,
            http_requests,
            http_errors,
            http_duration,
            calls,
            call_duration,
            tokens,
            queue_jobs,
            queue_oldest,
            routes: Interner::new(MAX_ROUTES),
            tenants: Interner::new(MAX_TENANTS),
            models: Interner::new(MAX_MODELS),
        }
    }

    /// Records one HTTP request. `route` is the router's template (`None`: no route matched).
    pub fn http_request(
        &self,
        method: &axum::http::Method,
        route: Option<&str>,
        status: u16,
        elapsed: Duration,
    ) {
        let route = match route {
            Some(r) => self.routes.get(r),
            None => self.routes.get("(unmatched)"),
        };
        let method = method_label(method);
        let labels = HttpLabels {
            method,
            route,
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        if status >= 400 {
            self.http_errors.get_or_create(&labels).inc();
        }
        self.http_duration
            .get_or_create(&RouteLabels {
                method,
                route: labels.route,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one model call.
    pub fn model_call(&self, call: &ModelCall<'_>) {
        let tenant = self.tenants.get(call.tenant.as_str());
        let model = self.models.get(&call.provider.model);
        let feature = call.feature.as_str();
        let provider = call.provider.kind.as_str();
        self.calls
            .get_or_create(&OutcomeLabels {
                tenant: tenant.clone(),
                feature,
                provider,
                model: model.clone(),
                outcome: call.outcome.as_str(),
            })
            .inc();
        if let Some(usage) = call.usage {
            for (kind, n) in [
                ("prompt", usage.prompt_tokens),
                ("completion", usage.completion_tokens),
            ] {
                if n > 0 {
                    self.tokens
                        .get_or_create(&TokenLabels {
                            tenant: tenant.clone(),
                            feature,
                            provider,
                            model: model.clone(),
                            r#type: kind,
                        })
                        .inc_by(u64::from(n));
                }
            }
        }
        self.call_duration
            .get_or_create(&CallLabels {
                tenant,
                feature,
                provider,
                model,
            })
            .observe(call.latency.as_secs_f64());
    }

    /// Sets the queue gauges (read from the store at each scrape).
    pub fn queue(&self, queued: i64, running: i64, oldest_age_seconds: f64) {
        self.queue_jobs
            .get_or_create(&QueueLabels { state: "queued" })
            .set(queued);
        self.queue_jobs
            .get_or_create(&QueueLabels { state: "running" })
            .set(running);
        self.queue_oldest.set(oldest_age_seconds);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The method as a fixed label value; anything unusual is `other`, so a client cannot create
/// series by inventing methods.
fn method_label(m: &axum::http::Method) -> &'static str {
    match *m {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::{CallOutcome, Feature};
    use atlasai_core::{ProviderKind, TenantId, Usage};
    use atlasai_providers::ProviderInfo;

    #[test]
    fn interner_folds_values_past_its_bound() {
        let i = Interner::new(2);
        let a = i.get("a");
        assert!(Arc::ptr_eq(&a, &i.get("a")));
        assert_eq!(&*i.get("b"), "b");
        assert_eq!(&*i.get("c"), "_other");
        assert_eq!(&*i.get("a"), "a", "admitted values stay");
    }

    #[test]
    fn exposition_shows_requests_errors_and_model_calls() {
        let m = Metrics::new();
        m.http_request(
            &axum::http::Method::POST,
            Some("/v1/chat/completions"),
            200,
            Duration::from_micros(300),
        );
        m.http_request(
            &axum::http::Method::from_bytes(b"BREW").unwrap(),
            None,
            404,
            Duration::ZERO,
        );
        let info = ProviderInfo {
            kind: ProviderKind::Anthropic,
            model: "claude".into(),
            endpoint: url::Url::parse("https://api.anthropic.com").unwrap(),
        };
        let tenant = TenantId::parse("acme").unwrap();
        m.model_call(&ModelCall {
            tenant: &tenant,
            feature: Feature::Gateway,
            provider: &info,
            usage: Some(Usage::new(12, 5)),
            latency: Duration::from_millis(40),
            outcome: CallOutcome::Ok,
            cloud_fallback: None,
        });
        let text = m.render();
        for line in [
            "atlasai_http_requests_total{method=\"POST\",route=\"/v1/chat/completions\",status=\"200\"} 1",
            "atlasai_http_request_errors_total{method=\"other\",route=\"(unmatched)\",status=\"404\"} 1",
            "atlasai_http_request_duration_seconds_bucket{le=\"0.0005\",method=\"POST\",route=\"/v1/chat/completions\"} 1",
            "atlasai_model_calls_total{tenant=\"acme\",feature=\"gateway\",provider=\"anthropic\",model=\"claude\",outcome=\"ok\"} 1",
            "atlasai_model_tokens_total{tenant=\"acme\",feature=\"gateway\",provider=\"anthropic\",model=\"claude\",type=\"prompt\"} 12",
            "atlasai_model_tokens_total{tenant=\"acme\",feature=\"gateway\",provider=\"anthropic\",model=\"claude\",type=\"completion\"} 5",
            "atlasai_model_call_duration_seconds_count{tenant=\"acme\",feature=\"gateway\",provider=\"anthropic\",model=\"claude\"} 1",
            "atlasai_tenant_plane_build_info{version=",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        assert!(!text.contains("atlasai_http_request_errors_total{method=\"POST\""));
        assert!(text.ends_with("# EOF\n"));
    }
}

//! Prometheus metrics for `GET /metrics` (text exposition): HTTP requests, latency and errors
//! by route; settings validations by provider and outcome; credit debits.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric the control plane exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
    validations: Family<Labels, Counter>,
    debits: Family<Labels, Counter>,
    debited: Family<Labels, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("atlasai_cp");
        let requests = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let latency = Family::<Labels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let validations = Family::<Labels, Counter>::default();
        let debits = Family::<Labels, Counter>::default();
        let debited = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_errors",
            "HTTP responses with a 4xx (client) or 5xx (server) status, by route",
            errors.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        registry.register(
            "settings_validations",
            "AI settings validations by provider and outcome (active, draft, pending_validation)",
            validations.clone(),
        );
        registry.register(
            "credit_debits",
            "Credit operations by kind (reserve, settle, release, refused)",
            debits.clone(),
        );
        registry.register(
            "credits_charged_millicredits",
            "Credits charged for managed-model usage by model, in thousandths of a credit",
            debited.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            errors,
            latency,
            validations,
            debits,
            debited,
        }
    }

    /// Records one HTTP request.
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("route", route.to_owned()),
            ])
            .observe(elapsed.as_secs_f64());
        if status >= 400 {
            let class = if status >= 500 { "server" } else { "client" };
            self.errors
                .get_or_create(&vec![
                    ("route", route.to_owned()),
                    ("class", class.to_owned()),
                ])
                .inc();
        }
    }

    /// Records a settings validation outcome.
    pub fn validation(&self, provider: &str, outcome: &str) {
        self.validations
            .get_or_create(&vec![
                ("provider", provider.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// Records a credit operation, and the amount charged for settlements, by model.
    pub fn debit(&self, kind: &str, model: &str, charged_millicredits: i64) {
        self.debits
            .get_or_create(&vec![("kind", kind.to_owned())])
            .inc();
        if charged_millicredits > 0 {
            self.debited
                .get_or_create(&vec![("model", model.to_owned())])
                .inc_by(charged_millicredits as u64);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

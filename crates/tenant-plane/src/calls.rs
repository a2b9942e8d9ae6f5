//! Every model call the tenant plane makes is recorded through [`CallRecorder`]: one place
//! that logs it, counts it in the metrics, and writes it to the egress audit log (where its
//! data went: a private endpoint, a public one, or the control plane). Features never log
//! model calls themselves.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use atlasai_core::{ProviderErrorKind, TenantId, Usage};
use atlasai_providers::ProviderInfo;
use serde::Serialize;

use crate::metrics::Metrics;

/// Which feature made a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// `POST /api/ai/test` and `atlasai-tp test-connection`.
    ConnectionTest,
    /// Root cause analysis.
    Rca,
    /// Runbook generation.
    Runbook,
    /// Copilot chat.
    Chat,
    /// Natural-language search.
    Search,
    /// Alert correlation.
    Correlation,
    /// Embedding chunks for vector search.
    Embeddings,
    /// The OpenAI-compatible gateway (`/v1/...`).
    Gateway,
}

impl Feature {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::ConnectionTest => "connection_test",
            Feature::Rca => "rca",
            Feature::Runbook => "runbook",
            Feature::Chat => "chat",
            Feature::Search => "search",
            Feature::Correlation => "correlation",
            Feature::Embeddings => "embeddings",
            Feature::Gateway => "gateway",
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The provider answered.
    Ok,
    /// The provider failed with this kind of error.
    Error(ProviderErrorKind),
    /// The caller went away before the answer was complete.
    Cancelled,
}

impl CallOutcome {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Error(kind) => kind.as_str(),
            CallOutcome::Cancelled => "cancelled",
        }
    }
}

/// One finished model call.
#[derive(Debug, Clone)]
pub struct ModelCall<'a> {
    /// For whom.
    pub tenant: &'a TenantId,
    /// Which feature.
    pub feature: Feature,
    /// The client that made it (kind, model, endpoint).
    pub provider: &'a ProviderInfo,
    /// Token counts, when the provider reported them.
    pub usage: Option<Usage>,
    /// Wall-clock time, retries included.
    pub latency: Duration,
    /// How it ended.
    pub outcome: CallOutcome,
    /// The managed model that answered instead, when the tenant's provider was down and the
    /// cloud fallback stood in (the request left the customer's network).
    pub cloud_fallback: Option<&'a str>,
}

/// Where a model call's data went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// An endpoint in private address space: the data stayed in the customer's network.
    Private,
    /// An endpoint outside private address space (a public API).
    Public,
    /// The control plane (the managed model, or the cloud fallback).
    ControlPlane,
}

impl Destination {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::Private => "private",
            Destination::Public => "public",
            Destination::ControlPlane => "control_plane",
        }
    }

    /// Whether the request's data left the customer's network.
    pub fn left_network(self) -> bool {
        self != Destination::Private
    }
}

/// Where each endpoint in use sends data, as the routes found when they built its client
/// (the host resolved once, not per call). Unknown endpoints count as public.
#[derive(Debug, Default)]
pub struct Destinations(RwLock<HashMap<String, Destination>>);

impl Destinations {
    /// Remembers an endpoint's destination.
    pub fn set(&self, endpoint: &url::Url, destination: Destination) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if map.get(endpoint.as_str()) != Some(&destination) {
            map.insert(endpoint.as_str().to_owned(), destination);
        }
    }

    /// An endpoint's destination.
    pub fn get(&self, endpoint: &url::Url) -> Destination {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint.as_str())
            .copied()
            .unwrap_or(Destination::Public)
    }
}

tokio::task_local! {
    static CLOUD_FALLBACK: RefCell<Option<String>>;
}

/// Runs a provider call and reports whether the cloud fallback answered it (the managed
/// model's name), as noted by [`note_cloud_fallback`] anywhere inside.
pub async fn watch_fallback<F: Future>(call: F) -> (F::Output, Option<String>) {
    CLOUD_FALLBACK
        .scope(RefCell::new(None), async {
            let out = call.await;
            let fell_back = CLOUD_FALLBACK.with(|c| c.borrow_mut().take());
            (out, fell_back)
        })
        .await
}

/// Notes, for the call being watched, that the managed model stood in for the tenant's
/// provider.
pub fn note_cloud_fallback(managed_model: &str) {
    let _ = CLOUD_FALLBACK.try_with(|c| *c.borrow_mut() = Some(managed_model.to_owned()));
}

/// One model call as the egress audit log stores it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// UUIDv7.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// When the call ended.
    pub ts: crate::store::Timestamp,
    /// `rca`, `runbook`, `chat`, `search`, `correlation`, `embeddings`, `gateway`,
    /// `connection_test`.
    pub feature: String,
    /// The provider kind of the tenant's route.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The host the request went to (never a full URL).
    pub endpoint_host: String,
    /// Prompt tokens, as the provider reported them (0 when it did not).
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Wall-clock time, retries included.
    pub latency_ms: i64,
    /// `ok`, `cancelled`, or the error kind.
    pub outcome: String,
    /// Where the data went.
    pub destination: Destination,
    /// Whether the data left the customer's network (a public endpoint or the control plane).
    pub left_network: bool,
    /// The managed model that answered instead of the tenant's provider (cloud fallback).
    pub cloud_fallback_model: Option<String>,
}

/// Audit records waiting to be written; beyond this, records are dropped (and counted) rather
/// than slowing model calls down or growing memory without bound.
pub const AUDIT_QUEUE: usize = 50_000;

/// Records model calls. Shared by every feature through the application state.
#[derive(Debug, Default)]
pub struct CallRecorder {
    /// Counts reported to the control plane (when one is configured).
    pub usage: crate::cp::usage::UsageCounter,
    metrics: Option<Arc<Metrics>>,
    /// Where endpoints send data (filled by the routes).
    pub destinations: Arc<Destinations>,
    audit: OnceLock<tokio::sync::mpsc::Sender<AuditRecord>>,
    /// Audit records dropped because the writer fell behind.
    pub audit_dropped: AtomicU64,
}

impl CallRecorder {
    /// A recorder that only logs.
    pub fn new() -> Self {
        CallRecorder::default()
    }

    /// A recorder that also counts every call in these metrics.
    pub fn with_metrics(metrics: Arc<Metrics>) -> Self {
        CallRecorder {
            metrics: Some(metrics),
            ..CallRecorder::default()
        }
    }

    /// Uses the routes' map of endpoint destinations.
    pub fn with_destinations(mut self, destinations: Arc<Destinations>) -> Self {
        self.destinations = destinations;
        self
    }

    /// Starts writing every call to the egress audit log through this channel (the writer
    /// task holds the other end; see [`crate::audit`]).
    pub fn audit_to(&self, sender: tokio::sync::mpsc::Sender<AuditRecord>) {
        let _ = self.audit.set(sender);
    }

    /// Records one call. Never logs prompts, answers or secrets: only who, what, how much and
    /// how it went.
    pub fn record(&self, call: &ModelCall<'_>) {
        self.usage.add(call);
        let usage = call.usage.unwrap_or_default();
        let destination = if call.cloud_fallback.is_some() {
            Destination::ControlPlane
        } else {
            self.destinations.get(&call.provider.endpoint)
        };
        tracing::info!(
            target: "atlasai::model_call",
            tenant = %call.tenant,
            feature = call.feature.as_str(),
            provider = %call.provider.kind,
            model = %call.provider.model,
            endpoint_host = %call.provider.endpoint_host(),
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            latency_ms = call.latency.as_millis() as u64,
            outcome = call.outcome.as_str(),
            destination = destination.as_str(),
            left_customer_network = destination.left_network(),
            cloud_fallback_model = call.cloud_fallback.unwrap_or(""),
            "model call"
        );
        if let Some(metrics) = &self.metrics {
            metrics.model_call(call);
        }
        if let Some(audit) = self.audit.get() {
            let record = AuditRecord {
                id: uuid::Uuid::now_v7().to_string(),
                tenant: call.tenant.as_str().to_owned(),
                ts: crate::store::Timestamp::now(),
                feature: call.feature.as_str().to_owned(),
                provider: call.provider.kind.to_string(),
                model: call.provider.model.clone(),
                endpoint_host: call.provider.endpoint_host(),
                prompt_tokens: i64::from(usage.prompt_tokens),
                completion_tokens: i64::from(usage.completion_tokens),
                latency_ms: i64::try_from(call.latency.as_millis()).unwrap_or(i64::MAX),
                outcome: call.outcome.as_str().to_owned(),
                destination,
                left_network: destination.left_network(),
                cloud_fallback_model: call.cloud_fallback.map(str::to_owned),
            };
            if audit.try_send(record).is_err() {
                let n = self.audit_dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::error!(
                        dropped = n + 1,
                        "egress audit log: the writer is behind or stopped; records are being dropped"
                    );
                }
            }
        }
    }
}

//! Every model call the tenant plane makes is recorded through [`CallRecorder`]: one place
//! that logs it and counts it in the metrics, and that the egress audit builds on. Features
//! never log model calls themselves.

use std::sync::Arc;
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
}

/// Records model calls. Shared by every feature through the application state.
#[derive(Debug, Default)]
pub struct CallRecorder {
    /// Counts reported to the control plane (when one is configured).
    pub usage: crate::cp::usage::UsageCounter,
    metrics: Option<Arc<Metrics>>,
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

    /// Records one call. Never logs prompts, answers or secrets: only who, what, how much and
    /// how it went.
    pub fn record(&self, call: &ModelCall<'_>) {
        self.usage.add(call);
        let usage = call.usage.unwrap_or_default();
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
            "model call"
        );
        if let Some(metrics) = &self.metrics {
            metrics.model_call(call);
        }
    }
}

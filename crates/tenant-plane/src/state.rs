//! Shared state: the configuration in force (swapped atomically on reload), the route cache
//! and the last reload's outcome.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use secrecy::SecretString;
use serde::Serialize;

use crate::calls::CallRecorder;
use crate::config::{ConfigInputs, TenantPlaneConfig};
use crate::metrics::Metrics;
use crate::routing::Routes;

/// A configuration and the generation number it was published under.
#[derive(Debug)]
pub struct Published {
    /// Increases by one with every successful reload.
    pub generation: u64,
    /// The configuration.
    pub config: TenantPlaneConfig,
}

/// The outcome of the most recent reload attempt, shown in status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadStatus {
    /// Whether the last attempt was accepted.
    pub ok: bool,
    /// When it happened (seconds since the Unix epoch).
    pub at_unix: u64,
    /// What triggered it: `startup`, `file change`, `SIGHUP`.
    pub trigger: String,
    /// Why it was rejected; the previous configuration stays in force.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Everything handlers and background tasks share.
#[derive(Debug)]
pub struct AppState {
    published: ArcSwap<Published>,
    generations: AtomicU64,
    /// How the configuration is re-read on reload.
    pub inputs: ConfigInputs,
    /// The admin token used when `TP_ADMIN_TOKEN` is not set.
    pub generated_admin_token: Option<SecretString>,
    /// Built provider clients per tenant.
    pub routes: Routes,
    /// Where every model call is recorded.
    pub calls: CallRecorder,
    /// The queue of AI requests accepted under `queue_and_retry`.
    pub jobs: crate::jobs::Jobs,
    /// Prometheus metrics, or `None` when `TP_METRICS_ENABLED=0` (read at start-up).
    pub metrics: Option<Arc<Metrics>>,
    last_reload: Mutex<ReloadStatus>,
    /// Set by tests and tools that want to force `cp_connected`; the live state is the control
    /// plane link's (see [`AppState::cp_connected`]).
    pub cp_connected: AtomicBool,
    /// Set when shutdown begins, so readiness fails and load balancers drain us.
    pub shutting_down: AtomicBool,
    /// The store, search index and background indexing, once opened (`serve` opens them
    /// before binding the port; commands that do not need them never do).
    data: OnceLock<Arc<crate::data::Data>>,
}

impl AppState {
    /// State for a validated configuration.
    pub fn new(
        config: TenantPlaneConfig,
        inputs: ConfigInputs,
        generated_admin_token: Option<SecretString>,
    ) -> Arc<Self> {
        let routes = Routes::new(config.routing_cache_ttl);
        let metrics = config.metrics.enabled.then(|| Arc::new(Metrics::new()));
        let calls = match &metrics {
            Some(m) => CallRecorder::with_metrics(m.clone()),
            None => CallRecorder::new(),
        }
        .with_destinations(routes.destinations());
        Arc::new(AppState {
            published: ArcSwap::from_pointee(Published {
                generation: 1,
                config,
            }),
            generations: AtomicU64::new(1),
            inputs,
            generated_admin_token,
            routes,
            calls,
            jobs: crate::jobs::Jobs::default(),
            metrics,
            last_reload: Mutex::new(ReloadStatus {
                ok: true,
                at_unix: unix_now(),
                trigger: "startup".to_owned(),
                errors: Vec::new(),
            }),
            cp_connected: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            data: OnceLock::new(),
        })
    }

    /// The configuration in force. Cheap and lock-free; hold the `Arc` for the duration of a
    /// request so one request sees one configuration.
    pub fn current(&self) -> Arc<Published> {
        self.published.load_full()
    }

    /// Publishes a new, already validated configuration.
    pub fn publish(&self, config: TenantPlaneConfig) -> u64 {
        let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        self.routes.set_ttl(config.routing_cache_ttl);
        self.published
            .store(Arc::new(Published { generation, config }));
        generation
    }

    /// Records a reload outcome.
    pub fn record_reload(&self, status: ReloadStatus) {
        *self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// The last reload outcome.
    pub fn last_reload(&self) -> ReloadStatus {
        self.last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the tenant plane is connected to a control plane now (its last exchange with it
    /// succeeded). Always false without `TP_CP_URL`.
    pub fn cp_connected(&self) -> bool {
        self.cp_connected.load(Ordering::Relaxed) || self.routes.cp().connected()
    }

    /// Attaches the opened data services (once; later calls are ignored).
    pub fn attach_data(&self, data: Arc<crate::data::Data>) {
        let _ = self.data.set(data);
    }

    /// The data services, if opened.
    pub fn data(&self) -> Option<&Arc<crate::data::Data>> {
        self.data.get()
    }

    /// The admin token in force: the configured one, else the generated one.
    pub fn admin_token(&self) -> Option<SecretString> {
        self.current()
            .config
            .admin_token
            .clone()
            .or_else(|| self.generated_admin_token.clone())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

//! What handlers and services share: configuration, store, keys, metrics, the managed
//! provider and the change signal long polls wait on.

use std::sync::Arc;

use atlasai_providers::Provider;
use tokio::sync::Notify;

use crate::config::ControlPlaneConfig;
use crate::crypto::SecretBox;
use crate::jwt::Keys;
use crate::metrics::Metrics;
use crate::store::Store;

/// Shared state.
#[derive(Debug)]
pub struct AppState {
    /// The configuration.
    pub config: ControlPlaneConfig,
    /// The database.
    pub store: Store,
    /// Encrypts stored secrets.
    pub secrets: SecretBox,
    /// Signs and verifies JWTs.
    pub keys: Keys,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The managed model's client, built once.
    pub managed: Option<Arc<dyn Provider>>,
    /// Woken whenever settings change on this replica, so long polls answer at once. Other
    /// replicas' changes are seen by the long poll's periodic version check.
    pub changed: Notify,
}

impl AppState {
    /// Builds the state: opens the store and the managed client.
    pub async fn new(config: ControlPlaneConfig) -> Result<Arc<Self>, String> {
        let store = Store::open(&config.database_url)
            .await
            .map_err(|e| format!("CP_DATABASE_URL: {e}"))?;
        let managed = match &config.managed {
            Some(m) => Some(
                atlasai_providers::build_chat_provider(&m.settings, &m.http)
                    .await
                    .map_err(|e| format!("CP_MANAGED_PROVIDER: cannot build the client: {e}"))?,
            ),
            None => None,
        };
        Ok(Arc::new(AppState {
            secrets: SecretBox::new(&config.secret_key),
            keys: Keys::new(&config.jwt_seed, &config.jwt_issuer),
            metrics: Metrics::new(),
            store,
            managed,
            changed: Notify::new(),
            config,
        }))
    }
}

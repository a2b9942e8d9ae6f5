//! The tenant plane's data services, bundled: the store, the keyword index, the in-memory
//! vector sets, and the background tasks that keep the index and the vectors up to date.
//! Opened once at start-up ([`Data::open`]) and attached to the application state; the API
//! handlers and the AI features reach everything through it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use crate::config::{DataSettings, TenantPlaneConfig};
use crate::search::index::{IndexError, Opened, SearchIndex};
use crate::search::vectors::VectorSets;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// Why the data services could not start.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The search index.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// A request the services refused or could not serve. The HTTP layer maps these to status
/// codes in one place.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller's mistake; the message names the field and what is accepted.
    #[error("{0}")]
    Invalid(String),
    /// No such record for this tenant.
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked for (`incident`, `runbook`).
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The search index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A blocking task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl ServiceError {
    /// A caller's mistake about a field.
    pub fn invalid(message: impl Into<String>) -> ServiceError {
        ServiceError::Invalid(message.into())
    }
}

/// Everything about the tenant plane's data.
#[derive(Debug)]
pub struct Data {
    /// The database.
    pub store: Store,
    /// The keyword index.
    pub index: Arc<SearchIndex>,
    /// This replica's copy of the stored vectors.
    pub vectors: VectorSets,
    /// Settings read at start-up (changing them needs a restart).
    pub settings: DataSettings,
    /// Where the index lives.
    pub index_dir: PathBuf,
    /// How the index was found at start-up.
    pub index_opened: Opened,
    /// This process's id, for embedding leases.
    pub replica_id: String,
    pub(crate) index_wakeup: Notify,
    pub(crate) embed_wakeup: Notify,
    /// Per tenant: when a query embedding last failed (searches skip the model for a while
    /// after a failure instead of waiting on a provider that is down).
    pub(crate) query_embedding_failures: Mutex<HashMap<String, Instant>>,
    /// Serialises alert correlation on this replica, so two alerts for the same new problem
    /// arriving together do not open two incidents.
    pub(crate) correlation_lock: tokio::sync::Mutex<()>,
}

impl Data {
    /// Opens the store (migrating it) and the search index (rebuilding it when unusable).
    pub async fn open(config: &TenantPlaneConfig) -> Result<Arc<Data>, DataError> {
        let store = Store::open(&config.data).await?;
        let index_dir = config.data_dir.join("index");
        let store_id = store.store_id().to_owned();
        let dir = index_dir.clone();
        let (index, opened) =
            tokio::task::spawn_blocking(move || SearchIndex::open(&dir, &store_id))
                .await
                .map_err(|e| IndexError::Dir {
                    path: index_dir.clone(),
                    source: std::io::Error::other(e.to_string()),
                })??;
        tracing::info!(
            database = %config.data.database.display,
            index = %index_dir.display(),
            index_state = ?opened,
            "data store ready"
        );
        Ok(Arc::new(Data {
            store,
            index: Arc::new(index),
            vectors: VectorSets::default(),
            settings: config.data.clone(),
            index_dir,
            index_opened: opened,
            replica_id: uuid::Uuid::now_v7().to_string(),
            index_wakeup: Notify::new(),
            embed_wakeup: Notify::new(),
            query_embedding_failures: Mutex::new(HashMap::new()),
            correlation_lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// Starts the background tasks: the indexer (keyword index and vector sets) and the
    /// embedder. They run until the process ends.
    pub fn start(self: &Arc<Self>, state: &Arc<AppState>) {
        tokio::spawn(crate::search::indexer::run(self.clone(), state.clone()));
        tokio::spawn(crate::search::embedder::run(self.clone(), state.clone()));
    }

    /// Closes the index writer (releasing its lock) and the database connections. Uncommitted
    /// index work is redone from the store at the next start.
    pub async fn shutdown(&self) {
        let index = self.index.clone();
        if let Err(e) = blocking(move || index.close()).await {
            tracing::warn!(error = %e, "closing the search index");
        }
        self.store.close().await;
    }

    /// Tells the background tasks that new data was committed, so it becomes searchable
    /// without waiting for the next refresh.
    pub fn notify_written(&self) {
        self.index_wakeup.notify_one();
        self.embed_wakeup.notify_one();
    }
}

/// Runs blocking index work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))?
        .map_err(ServiceError::Index)
}

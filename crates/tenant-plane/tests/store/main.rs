//! Store and search tests through the library, each run on SQLite and on PostgreSQL with the
//! same body (`both_backends!` generates one test per backend; the PostgreSQL ones report that
//! they skipped when `ATLASAI_TEST_POSTGRES_URL` is not set). Every test gets its own database
//! and data directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test helpers outside #[test] functions fail loudly by design"
)]

#[path = "../common/pg.rs"]
mod pg;

mod audit_cases;
mod fixture_cases;
mod job_cases;
mod search_cases;
mod store_cases;

use std::sync::Arc;

use atlasai_core::TenantId;
use atlasai_tenant_plane::config::{ConfigInputs, Env, load};
use atlasai_tenant_plane::data::Data;
use atlasai_tenant_plane::state::AppState;
use atlasai_tenant_plane::store::Store;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A tenant plane's data services on a fresh database and data directory, without background
/// tasks: tests drive the indexer and the embedder themselves, deterministically.
#[derive(Debug)]
pub struct TestEnv {
    pub data: Arc<Data>,
    pub state: Arc<AppState>,
    pub backend: Backend,
    pub vars: Vec<(String, String)>,
    pub tmp: tempfile::TempDir,
    pub pg: Option<pg::PgDb>,
}

impl TestEnv {
    /// A fresh environment, or `None` when the backend is unavailable (PostgreSQL not set).
    pub async fn new(backend: Backend, test: &str) -> Option<TestEnv> {
        Self::with_vars(backend, test, &[]).await
    }

    /// Same, with extra configuration variables.
    pub async fn with_vars(
        backend: Backend,
        test: &str,
        extra: &[(&str, &str)],
    ) -> Option<TestEnv> {
        let tmp = tempfile::tempdir().unwrap();
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(pg::PgDb::create(test).await?),
        };
        let mut vars: Vec<(String, String)> =
            vec![("TP_DATA_DIR".into(), tmp.path().display().to_string())];
        if let Some(db) = &pg {
            vars.push(("TP_DATABASE_URL".into(), db.url.clone()));
        }
        for (k, v) in extra {
            vars.push(((*k).into(), (*v).into()));
        }
        let (data, state) = open(&vars).await;
        Some(TestEnv {
            data,
            state,
            backend,
            vars,
            tmp,
            pg,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.data.store
    }

    /// Opens the same database and data directory again (a restart), with changed variables.
    pub async fn reopen(&mut self, changes: &[(&str, &str)]) {
        self.data.shutdown().await;
        for (k, v) in changes {
            self.vars.retain(|(name, _)| name != k);
            self.vars.push(((*k).into(), (*v).into()));
        }
        let (data, state) = open(&self.vars).await;
        self.data = data;
        self.state = state;
    }

    /// Runs indexer cycles until the index holds everything stored.
    pub async fn index(&self) {
        atlasai_tenant_plane::search::indexer::cycle(&self.data, &self.state)
            .await
            .unwrap();
    }
}

async fn open(vars: &[(String, String)]) -> (Arc<Data>, Arc<AppState>) {
    let inputs = ConfigInputs {
        env: Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        values_flag: None,
    };
    let config = load(&inputs).unwrap();
    let data = Data::open(&config).await.unwrap();
    let state = AppState::new(config, inputs, None);
    state.attach_data(data.clone());
    (data, state)
}

/// A tenant id.
pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// Generates `sqlite::<case>` and `postgres::<case>` for each case of a module.
macro_rules! both_backends {
    ($module:ident: $($case:ident),+ $(,)?) => {
        mod $module {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        if let Some(env) = crate::TestEnv::new(crate::Backend::Sqlite, stringify!($case)).await {
                            crate::$module::$case(env).await;
                        }
                    }
                )+
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        if let Some(env) = crate::TestEnv::new(crate::Backend::Postgres, stringify!($case)).await {
                            crate::$module::$case(env).await;
                        }
                    }
                )+
            }
        }
    };
}

mod generated {
    both_backends!(store_cases:
        incidents_lifecycle,
        incident_listing_filters_and_pages,
        alerts_and_changes_attach_and_count,
        correlation_candidates_respect_service_status_and_window,
        log_ingest_is_one_batch_and_lists_by_scope,
        log_patterns_group_recurring_messages,
        tenants_are_isolated_in_the_store,
        write_feed_orders_concurrent_writers,
        vectors_leases_and_model_switch,
        runbooks_store_and_filter_by_service,
    );
    both_backends!(search_cases:
        phrase_queries_filters_and_highlights,
        search_never_crosses_tenants,
        index_rebuilds_from_the_store_when_deleted_or_corrupt,
        index_catches_up_with_updates_and_restarts,
        hybrid_search_fuses_vectors_and_switches_models,
        provider_down_search_stays_keyword,
    );
    both_backends!(fixture_cases: fixture_queries_find_what_responders_need);
    both_backends!(audit_cases: audit_records_page_filter_and_prune);
    both_backends!(job_cases:
        jobs_are_claimed_once_and_finished_by_their_holder,
        a_lease_that_runs_out_passes_the_job_on,
        deadlines_expire_waiting_jobs,
        concurrent_workers_take_each_job_once,
    );
}

//! The tenant plane's store: incidents, alerts, changes, log lines, runbooks and embedding
//! vectors, through sqlx on SQLite (the embedded default, one WAL-mode file in the data
//! directory) or PostgreSQL (for several replicas).
//!
//! The SQL is the same on both engines wherever it can be: `$1` placeholders (SQLite accepts
//! them too), `INSERT ... ON CONFLICT`, `RETURNING`, row-value comparisons, times as BIGINT
//! microseconds. Where the engines differ (DDL types, how a write transaction begins) both
//! versions sit side by side. Each method runs the same statement on whichever pool is
//! configured through [`with_pool!`], which expands its body once per engine so the compiler
//! checks both.
//!
//! Every method takes the tenant and every statement filters by it: there is no way to read
//! another tenant's rows through this API.
//!
//! Write transactions begin by bumping the tenant's batch number in `tenant_feed`
//! ([`feed`]), which serialises a tenant's writers and lets the search index and the embedder
//! tail changes in commit order on any replica.

pub mod audit;
pub mod feed;
pub mod incidents;
pub mod jobs;
pub mod logs;
pub mod model;
pub mod runbooks;
pub mod vectors;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config::{DataSettings, DatabaseKind};

pub use self::model::*;

/// The migrations, embedded. Each engine has its own DDL; versions must match one to one.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "store",
        include_str!("../../migrations/sqlite/0001_store.sql"),
    ),
    (
        3,
        "jobs",
        include_str!("../../migrations/sqlite/0003_jobs.sql"),
    ),
    (
        4,
        "job attempts bigint",
        include_str!("../../migrations/sqlite/0004_job_attempts_bigint.sql"),
    ),
    (
        5,
        "egress audit",
        include_str!("../../migrations/sqlite/0005_egress_audit.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "store",
        include_str!("../../migrations/postgres/0001_store.sql"),
    ),
    (
        3,
        "jobs",
        include_str!("../../migrations/postgres/0003_jobs.sql"),
    ),
    (
        4,
        "job attempts bigint",
        include_str!("../../migrations/postgres/0004_job_attempts_bigint.sql"),
    ),
    (
        5,
        "egress audit",
        include_str!("../../migrations/postgres/0005_egress_audit.sql"),
    ),
];

/// The migration files, for the test that checks every file on disk is embedded above.
pub const MIGRATION_FILES: &[&str] = &[
    "0001_store.sql",
    "0003_jobs.sql",
    "0004_job_attempts_bigint.sql",
    "0005_egress_audit.sql",
];

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open the {kind} database {url}: {source}")]
    Open {
        /// The engine.
        kind: DatabaseKind,
        /// The URL, password masked.
        url: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("cannot bring the {kind} database schema up to date: {source}")]
    Migrate {
        /// The engine.
        kind: DatabaseKind,
        /// Why.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed.
    #[error("database error while {action}: {source}")]
    Query {
        /// What the store was doing.
        action: &'static str,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A stored value could not be read back (a bug, or a database edited by hand).
    #[error("stored {what} is invalid: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

impl StoreError {
    /// Whether the failure is the database being unreachable or overloaded (worth a 503 and a
    /// retry) rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Open { .. } => true,
            StoreError::Query { source, .. } => matches!(
                source,
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            ),
            _ => false,
        }
    }
}

/// Adds what the store was doing to a sqlx error.
pub(crate) trait Context<T> {
    fn ctx(self, action: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn ctx(self, action: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { action, source })
    }
}

pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.into(),
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the configured pool. The body is expanded once per
/// engine, so the same query text is compiled against both drivers.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Bumps the tenant's batch number; the first statement of every write transaction.
pub(crate) const NEXT_SEQ: &str = "INSERT INTO tenant_feed (tenant, seq, vseq) VALUES ($1, 1, 0) \
     ON CONFLICT (tenant) DO UPDATE SET seq = tenant_feed.seq + 1 RETURNING seq";

/// The store. Cheap to clone (pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    kind: DatabaseKind,
    store_id: String,
}

impl Store {
    /// Opens (creating if needed) the configured database and brings its schema up to date.
    pub async fn open(settings: &DataSettings) -> Result<Store, StoreError> {
        let db = &settings.database;
        let open_err = |source| StoreError::Open {
            kind: db.kind,
            url: db.display.clone(),
            source,
        };
        let backend = match db.kind {
            DatabaseKind::Sqlite => {
                let options = SqliteConnectOptions::from_str(db.expose())
                    .map_err(open_err)?
                    .create_if_missing(true)
                    // WAL lets searches and lists read while a log batch is being written.
                    .journal_mode(SqliteJournalMode::Wal)
                    // With WAL, NORMAL only risks the last transactions on power loss, never
                    // corruption; FULL would fsync every commit.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
                    .foreign_keys(true);
                if let Some(dir) = options.get_filename().parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await
                    .map_err(open_err)?;
                Backend::Sqlite(pool)
            }
            DatabaseKind::Postgres => {
                let options = PgConnectOptions::from_str(db.expose()).map_err(open_err)?;
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await
                    .map_err(open_err)?;
                Backend::Postgres(pool)
            }
        };
        let mut store = Store {
            backend,
            kind: db.kind,
            store_id: String::new(),
        };
        store.migrate().await?;
        store.store_id = store.load_store_id().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let list = match self.kind {
            DatabaseKind::Sqlite => SQLITE_MIGRATIONS,
            DatabaseKind::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = list
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(*sql),
                    false,
                )
            })
            .collect();
        let migrator = Migrator::with_migrations(migrations);
        let kind = self.kind;
        let result = with_pool!(self, |pool| migrator.run(pool).await);
        result.map_err(|source| StoreError::Migrate { kind, source })
    }

    /// A random id made when the database was created. The search index records it, so an
    /// index built from another database is never trusted.
    async fn load_store_id(&self) -> Result<String, StoreError> {
        let fresh = uuid::Uuid::now_v7().to_string();
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO store_meta (key, value) VALUES ('store_id', $1) ON CONFLICT (key) DO NOTHING",
            )
            .bind(&fresh)
            .execute(pool)
            .await
            .ctx("recording the store id")?;
            sqlx::query_scalar::<_, String>("SELECT value FROM store_meta WHERE key = 'store_id'")
                .fetch_one(pool)
                .await
                .ctx("reading the store id")
        })
    }

    /// The engine.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The database's random id.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// The statement that begins a write transaction. SQLite's default `BEGIN` is deferred:
    /// a transaction that reads first and writes later can fail to upgrade its lock with
    /// SQLITE_BUSY no matter the busy timeout. `BEGIN IMMEDIATE` takes the write lock up
    /// front and waits for it properly.
    pub(crate) fn begin_write(&self) -> &'static str {
        match self.kind {
            DatabaseKind::Sqlite => "BEGIN IMMEDIATE",
            DatabaseKind::Postgres => "BEGIN",
        }
    }

    /// Checks the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .ctx("checking the connection")
                .map(|_| ())
        })
    }

    /// Closes every connection (at shutdown, so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await);
    }
}

/// A fresh UUIDv7, as stored.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Encodes a keyset cursor: the sort key and the id of the last item shown.
pub(crate) fn encode_cursor(key: i64, id: &str) -> String {
    format!("{key}_{id}")
}

/// Decodes a cursor made by [`encode_cursor`].
pub(crate) fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let (key, id) = cursor.split_once('_')?;
    let key = key.parse().ok()?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return None;
    }
    Some((key, id.to_owned()))
}

/// Whether a cursor is one [`encode_cursor`] made (for request validation).
pub fn decode_cursor_ok(cursor: &str) -> bool {
    decode_cursor(cursor).is_some()
}

pub(crate) fn parse_vocab<T: FromStr<Err = String>>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    text.parse().map_err(|e| corrupt(what, e))
}

pub(crate) fn json_or_corrupt<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_for_both_engines() {
        for engine in ["sqlite", "postgres"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(engine);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            assert_eq!(
                files, MIGRATION_FILES,
                "{engine}: add new files to the lists in store/mod.rs"
            );
        }
        let versions = |list: &[(i64, &str, &str)]| list.iter().map(|m| m.0).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE_MIGRATIONS), versions(POSTGRES_MIGRATIONS));
        assert_eq!(SQLITE_MIGRATIONS.len(), MIGRATION_FILES.len());
    }

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = encode_cursor(
            1_762_092_187_250_000,
            "01a205e8-5277-770a-b2f6-66b9f8e44f52",
        );
        assert_eq!(
            decode_cursor(&c),
            Some((
                1_762_092_187_250_000,
                "01a205e8-5277-770a-b2f6-66b9f8e44f52".to_owned()
            ))
        );
        for junk in ["", "x_y", "12", "12_", "12_' OR 1=1 --"] {
            assert_eq!(decode_cursor(junk), None, "{junk}");
        }
    }
}

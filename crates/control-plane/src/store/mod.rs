//! Storage over SQLite (the embedded default) or PostgreSQL (several replicas), through sqlx.
//!
//! The SQL is written once: both databases take `$1`-style parameters, `ON CONFLICT`,
//! `RETURNING` and the same column types (TEXT ids, BIGINT amounts and timestamps). Each
//! statement is run on whichever pool is configured by the [`with_db!`] macro, which
//! monomorphises the same code for both drivers. Where the two truly differ it says so beside
//! the statement.

mod clusters;
mod credits;
mod identity;
mod settings;
mod usage;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, SqlSafeStr};

pub use self::clusters::{ClusterRow, EnrolledCluster};
pub use self::credits::{
    CreditError, LedgerRow, Reservation, ReserveOutcome, SettleOutcome, SettleUsage,
    TransferOutcome,
};
pub use self::identity::{TokenOwner, UserRow};
pub use self::settings::{FinishOutcome, SettingsRow, ValidationRow};
pub use self::usage::UsageCountRow;

/// A store failure. The message names what was being done; the database's own error is kept
/// as the source for logs and never shown to API clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot open the database: {0}")]
    Open(#[source] sqlx::Error),
    /// Migrations failed.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A statement failed.
    #[error("database error while {what}: {source}")]
    Query {
        /// What we were doing.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A uniqueness rule was violated (duplicate id or name).
    #[error("{0} already exists")]
    Conflict(&'static str),
}

/// Maps a driver error, telling unique violations apart.
pub(crate) fn query_err(
    what: &'static str,
    conflict: &'static str,
) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(conflict),
        _ => StoreError::Query { what, source: e },
    }
}

/// Shorthand for errors that have no uniqueness meaning.
pub(crate) fn q(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// The pool in use.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool is configured: `with_db!(store, |pool| body)`.
macro_rules! with_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// Starting a transaction that will write. The one place the two databases differ here:
/// SQLite's default `BEGIN` is deferred, so two writers that both read first can deadlock on
/// the lock upgrade and one fails at once with `SQLITE_BUSY`; `BEGIN IMMEDIATE` takes the
/// write lock up front and makes concurrent writers queue on the busy timeout instead.
/// PostgreSQL locks rows as statements touch them, so a plain `BEGIN` is right there.
pub(crate) trait BeginWrite {
    type Database: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// The store.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: Db,
}

/// The migrations, embedded in the binary.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        Cow::Borrowed("init"),
        MigrationType::Simple,
        AssertSqlSafe(include_str!("../../migrations/0001_init.sql")).into_sql_str(),
        false,
    )])
}

impl Store {
    /// Opens the database named by a URL (`sqlite://file.db` or `postgres://...`) and brings
    /// its schema up to date.
    pub async fn open(url: &SecretString) -> Result<Store, StoreError> {
        let text = url.expose_secret();
        let db = if text.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(text)
                .map_err(StoreError::Open)?
                .create_if_missing(true)
                // WAL lets readers run beside the one writer; writers queue on the busy
                // timeout instead of failing at once under concurrent debits.
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(opts)
                .await
                .map_err(StoreError::Open)?;
            Db::Sqlite(pool)
        } else {
            let opts = PgConnectOptions::from_str(text).map_err(StoreError::Open)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(opts)
                .await
                .map_err(StoreError::Open)?;
            Db::Postgres(pool)
        };
        let store = Store { db };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let m = migrator();
        with_db!(self.db, |p| m.run(p).await).map_err(StoreError::Migrate)
    }

    /// `sqlite` or `postgres`, for logs.
    pub fn kind(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> bool {
        with_db!(self.db, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .is_ok()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        with_db!(self.db, |p| p.close().await);
    }
}

/// A new unique id (UUIDv7: time-ordered, so indexes stay compact).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    crate::jwt::now() as i64
}

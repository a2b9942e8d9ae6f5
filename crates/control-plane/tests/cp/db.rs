//! A fresh database per test: a SQLite file in a temp dir, or a uniquely named PostgreSQL
//! database created through `ATLASAI_TEST_POSTGRES_URL` and dropped afterwards (even when the
//! test fails), so tests run in parallel and leave nothing behind.

use std::str::FromStr;

use atlasai_control_plane::store::Store;
use secrecy::SecretString;
use sqlx::Connection;

/// The variable naming the PostgreSQL server tests may use.
pub const PG_VAR: &str = "ATLASAI_TEST_POSTGRES_URL";

/// A test database, removed on drop.
pub struct TestDb {
    /// The URL of this test's database.
    pub url: String,
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A SQLite database in a temp dir.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("cp.db").display());
        TestDb {
            url,
            pg: None,
            _dir: Some(dir),
        }
    }

    /// A new PostgreSQL database, or `None` (the caller reports the skip) without the variable.
    pub async fn postgres() -> Option<TestDb> {
        let admin = std::env::var(PG_VAR).ok().filter(|s| !s.is_empty())?;
        let name = format!("atlasai_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        // Identifiers cannot be bound parameters; the name is generated above, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        let mut url = url::Url::from_str(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        Some(TestDb {
            url: url.to_string(),
            pg: Some((admin, name)),
            _dir: None,
        })
    }

    /// Opens (and migrates) the store.
    pub async fn store(&self) -> Store {
        Store::open(&SecretString::from(self.url.clone()))
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs outside any runtime we may block, so use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Declares each generic store test twice: on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::db::TestDb::sqlite();
                    let store = db.store().await;
                    super::$name(&store).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::db::TestDb::postgres().await else {
                        eprintln!("skipped: {} is not set", $crate::db::PG_VAR);
                        return;
                    };
                    let store = db.store().await;
                    super::$name(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

//! A fresh PostgreSQL database per test, created through the server named by
//! `ATLASAI_TEST_POSTGRES_URL` and dropped when the test ends (even when it fails), so tests
//! run in parallel and leave nothing behind.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The variable naming the PostgreSQL server tests may use.
pub const PG_VAR: &str = "ATLASAI_TEST_POSTGRES_URL";

/// A database that exists for the lifetime of this value.
#[derive(Debug)]
pub struct PgDb {
    /// The URL of the fresh database.
    pub url: String,
    admin: String,
    name: String,
}

impl PgDb {
    /// Creates a database, or `None` (after saying so) when no server is configured.
    pub async fn create(test: &str) -> Option<PgDb> {
        let Ok(admin) = std::env::var(PG_VAR) else {
            eprintln!("skipped {test} on PostgreSQL: {PG_VAR} is not set");
            return None;
        };
        let name = format!("atlasai_t_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{PG_VAR} is set but the server is unreachable: {e}"));
        // Database names cannot be bind parameters; the server quotes the name itself.
        let sql: String = sqlx::query_scalar("SELECT format('CREATE DATABASE %I', $1::text)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        Some(PgDb {
            url: url.to_string(),
            admin,
            name,
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime; a separate thread with its own runtime is safe.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(mut conn) = PgConnection::connect(&admin).await else {
                    return;
                };
                let sql: Result<String, _> = sqlx::query_scalar(
                    "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', $1::text)",
                )
                .bind(&name)
                .fetch_one(&mut conn)
                .await;
                if let Ok(sql) = sql {
                    let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
                }
                let _ = conn.close().await;
            });
        })
        .join();
    }
}

//! Benchmark: credit debits (reserve + settle) under concurrency, and the cost of an
//! unchanged settings poll (the one-row version read behind a 304), on SQLite or PostgreSQL.
//! Run with `cargo xtask bench credits [sqlite|postgres]` (release build); PostgreSQL uses a
//! fresh database on the server in `ATLASAI_TEST_POSTGRES_URL` and drops it afterwards.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a command-line benchmark that reports on stdout and stops on any failure"
)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlasai_control_plane::store::{ReserveOutcome, SettleUsage, Store};
use secrecy::SecretString;
use sqlx::Connection;

const DEBITS: usize = 5_000;
const CONCURRENCY: usize = 64;
const POLLS: usize = 5_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let which = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = match which.as_str() {
        "postgres" => {
            let admin = std::env::var("ATLASAI_TEST_POSTGRES_URL")
                .expect("set ATLASAI_TEST_POSTGRES_URL for the PostgreSQL benchmark");
            let name = format!("atlasai_bench_{}", uuid::Uuid::now_v7().simple());
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            // A generated identifier; identifiers cannot be bound.
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut c)
                .await
                .unwrap();
            let mut u = url::Url::from_str(&admin).unwrap();
            u.set_path(&format!("/{name}"));
            (u.to_string(), Some((admin, name)))
        }
        _ => (
            format!("sqlite://{}", dir.path().join("bench.db").display()),
            None,
        ),
    };
    let store = Arc::new(Store::open(&SecretString::from(url)).await.unwrap());
    store
        .create_tenant("bench", "bench", "b@bench.example", "h", i64::MAX / 4)
        .await
        .unwrap();

    // Debits: each is a reservation and a settlement (two write transactions).
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let store = store.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= DEBITS {
                    return lat;
                }
                let t = Instant::now();
                let rid = format!("r{i}");
                let r = store.reserve("bench", &rid, 500).await.unwrap();
                assert!(matches!(r, ReserveOutcome::Reserved { .. }));
                let u = SettleUsage {
                    model: "m",
                    prompt_tokens: 10,
                    completion_tokens: 5,
                };
                store.settle("bench", &rid, 300, &u, "{}").await.unwrap();
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    lat.sort();
    println!(
        "{which}: {DEBITS} debits (reserve+settle) at concurrency {CONCURRENCY}: {:.0} debits/s, p50 {:.2} ms, p99 {:.2} ms, total {:.2} s",
        DEBITS as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        elapsed.as_secs_f64()
    );
    assert_eq!(
        store.ledger_sum("bench").await.unwrap(),
        store.balance("bench").await.unwrap().unwrap()
    );

    // An unchanged poll: the version read that decides a 304.
    let started = Instant::now();
    for _ in 0..POLLS {
        store.settings_version("bench").await.unwrap();
    }
    let per = started.elapsed() / POLLS as u32;
    println!(
        "{which}: unchanged-settings check (version read behind a 304): {:.1} µs each",
        per.as_secs_f64() * 1e6
    );
    store.close().await;
    if let Some((admin, name)) = pg {
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut c)
        .await
        .unwrap();
    }
}

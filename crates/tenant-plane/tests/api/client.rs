//! Talking to the data endpoints of a running tenant plane, on either database, as a tenant.

use std::time::Duration;

use serde_json::Value;

use crate::pg::PgDb;
use crate::support::{ADMIN, Tp, client};

/// Which database the server under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running tenant plane and, for PostgreSQL, its database (dropped after the server).
pub struct Server {
    pub tp: Tp,
    /// Held so the database outlives the server (fields drop in order).
    _pg: Option<PgDb>,
}

impl Server {
    /// Starts a server on a fresh database, or `None` when PostgreSQL is not available.
    pub async fn start(backend: Backend, test: &str, vars: &[(&str, &str)]) -> Option<Server> {
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDb::create(test).await?),
        };
        let mut all: Vec<(&str, &str)> = vars.to_vec();
        if let Some(db) = &pg {
            all.push(("TP_DATABASE_URL", db.url.as_str()));
        }
        let tp = tokio::task::block_in_place(|| Tp::start(&all, &[]));
        Some(Server { tp, _pg: pg })
    }

    /// A client for one tenant.
    pub fn as_tenant(&self, tenant: &str) -> Api {
        Api {
            url: self.tp.url.clone(),
            tenant: tenant.to_owned(),
        }
    }
}

/// Requests as one tenant with the admin token.
#[derive(Debug, Clone)]
pub struct Api {
    pub url: String,
    pub tenant: String,
}

async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

impl Api {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN)
            .header("x-tenant-id", &self.tenant)
    }

    /// GET.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.req(reqwest::Method::GET, path).send().await.unwrap()).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        answer(
            self.req(reqwest::Method::POST, path)
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// PATCH JSON.
    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        answer(
            self.req(reqwest::Method::PATCH, path)
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POST a raw body.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        answer(
            self.req(reqwest::Method::POST, path)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POST NDJSON log lines.
    pub async fn logs(&self, query: &str, lines: &[Value]) -> (u16, Value) {
        let mut body = String::new();
        for l in lines {
            body.push_str(&l.to_string());
            body.push('\n');
        }
        self.post_raw(
            &format!("/api/logs{query}"),
            "application/x-ndjson",
            body.into_bytes(),
        )
        .await
    }

    /// Creates an incident and returns its id.
    pub async fn incident(&self, title: &str, service: &str) -> String {
        let (status, body) = self
            .post(
                "/api/incidents",
                &serde_json::json!({"title": title, "service": service, "severity": "high", "description": format!("{title}, details")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Waits until the search index has caught up with every write of this tenant (a liveness
    /// bound, not a speed target).
    pub async fn indexed(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, s) = self.get("/api/search/status").await;
            if s["index_lag_batches"] == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "index did not catch up: {s}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Searches with a query string (already encoded) and returns the results.
    pub async fn search(&self, query: &str) -> Value {
        let (status, body) = self.get(&format!("/api/search?{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        body
    }
}

/// Generates `<case>_sqlite` and `<case>_postgres` HTTP tests with the same body.
macro_rules! both_backends {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::client::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::client::Backend::Postgres).await;
                }
            )+
        }
    };
}
pub(crate) use both_backends;

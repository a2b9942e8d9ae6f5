//! An in-process control plane on 127.0.0.1:0 with a fresh database, and HTTP helpers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use atlasai_control_plane::config;
use atlasai_control_plane::state::AppState;
use serde_json::{Value, json};

use crate::db::TestDb;

/// The operator token every test control plane accepts.
pub const BOOT: &str = "operator-bootstrap-token-0123456789";
/// The secret key every test control plane uses.
pub const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A running control plane.
pub struct Cp {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its state, for tests that look inside.
    pub state: Arc<AppState>,
    _db: TestDb,
}

/// A tenant with its owner signed in.
pub struct Tenant {
    /// The tenant id.
    pub id: String,
    /// The owner's access token.
    pub access: String,
    /// The owner's user id.
    pub owner: String,
}

impl Cp {
    /// A control plane on SQLite that may call private endpoints (the fakes are on
    /// 127.0.0.1), plus `vars`.
    pub async fn start(vars: &[(&str, &str)]) -> Cp {
        Self::start_with(TestDb::sqlite(), vars).await
    }

    /// A control plane on a given database.
    pub async fn start_with(db: TestDb, vars: &[(&str, &str)]) -> Cp {
        atlasai_providers::http::install_crypto_provider();
        let mut env: BTreeMap<String, String> = [
            ("CP_SECRET_KEY", KEY),
            ("CP_BOOTSTRAP_TOKEN", BOOT),
            ("CP_ALLOW_PRIVATE_ENDPOINTS", "1"),
            ("CP_VALIDATION_TIMEOUT", "10s"),
            ("CP_BIND_ADDR", "127.0.0.1:0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.insert("CP_DATABASE_URL".into(), db.url.clone());
        for (k, v) in vars {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let cfg = config::load(&env).unwrap();
        let state = AppState::new(cfg).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = atlasai_control_plane::http::app(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Cp {
            url,
            state,
            _db: db,
        }
    }

    /// Creates a tenant and signs its owner in.
    pub async fn tenant(&self, id: &str) -> Tenant {
        let (s, b) = call(
            "POST",
            &format!("{}/api/v1/tenants", self.url),
            Some(BOOT),
            Some(json!({"id": id, "name": id, "owner_email": format!("owner@{id}.example")})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        let api_token = b["api_token"].as_str().unwrap().to_owned();
        let access = self.login(&api_token).await;
        Tenant {
            id: id.to_owned(),
            access,
            owner: b["owner"]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// Exchanges an API token for an access token.
    pub async fn login(&self, api_token: &str) -> String {
        let (s, b) = call(
            "POST",
            &format!("{}/api/v1/auth/token", self.url),
            None,
            Some(json!({"api_token": api_token})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        b["access_token"].as_str().unwrap().to_owned()
    }

    /// A URL on this control plane.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Creates a cluster and enrolls it as a tenant plane would; returns (cluster id,
    /// credential).
    pub async fn enrolled_cluster(&self, t: &Tenant, name: &str) -> (String, String) {
        let (s, b) = call(
            "POST",
            &self.at(&format!("/api/v1/tenants/{}/clusters", t.id)),
            Some(&t.access),
            Some(json!({"name": name})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        let (s, e) = call(
            "POST",
            &self.at("/api/tp/v1/enroll"),
            None,
            Some(json!({"enroll_token": b["enroll_token"], "tp_version": "test"})),
        )
        .await;
        assert_eq!(s, 201, "{e}");
        (
            e["cluster_id"].as_str().unwrap().to_owned(),
            e["credential"].as_str().unwrap().to_owned(),
        )
    }
}

/// An HTTP client for tests.
pub fn client() -> reqwest::Client {
    atlasai_providers::http::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Sends a request; returns the status and the JSON body (`Null` when there is none).
pub async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client().request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The raw text of a response.
pub async fn call_text(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = client().request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

//! The `queue_and_retry` queue under crashes and replicas, with the real binary:
//!
//! - `kill -9` the tenant plane while AI jobs are queued and one is running against a provider
//!   that hangs; restart it with the provider back: every job completes, each exactly once.
//! - Two replicas on one PostgreSQL database: every job is run by one replica only (the
//!   provider answers each job exactly once) and the work is shared.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code"
)]

#[path = "../../crates/tenant-plane/tests/common/pg.rs"]
mod pg;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atlasai_e2e::{Running, TP_ADMIN, start, tp_env};
use atlasai_fakes::{Fake, FakeReply, Step, openai};
use serde_json::{Value, json};

const KEY: &str = "sk-test-queue-crash-0123";

fn rca_answer() -> FakeReply {
    FakeReply::text(
        json!({"summary": "Bad deploy.", "hypotheses": [{"title": "Bad deploy", "explanation": "e", "confidence": 0.7, "evidence": ["alert-1"]}],
               "affected_services": ["payments-api"], "next_steps": ["roll back"]})
        .to_string(),
    )
}

fn provider_env(fake: &Fake) -> Vec<(String, String)> {
    provider_env_at(&format!("{}/v1", fake.base_url))
}

fn provider_env_at(endpoint: &str) -> Vec<(String, String)> {
    vec![
        ("BYOC_PROVIDER".into(), "openai".into()),
        ("BYOC_API_KEY".into(), KEY.into()),
        ("BYOC_MODEL".into(), "gpt-4o-mini".into()),
        ("BYOC_ENDPOINT_URL".into(), endpoint.to_owned()),
        ("TP_PROVIDER_MAX_RETRIES".into(), "0".into()),
        ("TP_FALLBACK_POLICY".into(), "queue_and_retry".into()),
        ("TP_QUEUE_BACKOFF".into(), "300ms".into()),
    ]
}

fn env_with(dir: &std::path::Path, vars: &[(String, String)]) -> BTreeMap<String, String> {
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    tp_env(dir, &pairs)
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(TP_ADMIN)
        .header("x-tenant-id", "acme")
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An incident with one alert; returns its id.
async fn incident(url: &str) -> String {
    let (status, i) = call(
        reqwest::Method::POST,
        &format!("{url}/api/incidents"),
        Some(json!({"title": "Checkout failing", "service": "payments-api", "severity": "high"})),
    )
    .await;
    assert_eq!(status, 201, "{i}");
    let id = i["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        reqwest::Method::POST,
        &format!("{url}/api/incidents/{id}/alerts"),
        Some(json!({"title": "HighErrorRate", "service": "payments-api", "severity": "critical"})),
    )
    .await;
    assert_eq!(status, 201);
    id
}

/// Queues an analysis (the provider being down); returns the job id.
async fn queue_rca(url: &str, incident: &str) -> String {
    let (status, job) = call(
        reqwest::Method::POST,
        &format!("{url}/api/ai/rca"),
        Some(json!({"incident_id": incident})),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_owned()
}

async fn jobs(url: &str, status: &str) -> Vec<Value> {
    let (code, list) = call(
        reqwest::Method::GET,
        &format!("{url}/api/ai/jobs?status={status}&limit=500"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{list}");
    list.as_array().unwrap().clone()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Per job id, how many times each replica recorded it as succeeded.
fn successes(replicas: &[&Running]) -> HashMap<String, Vec<usize>> {
    let mut out: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in replicas.iter().enumerate() {
        for line in r.logs().lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let f = &v["fields"];
            if f["message"] == "AI job attempt recorded" && f["status"] == "succeeded" {
                out.entry(f["job"].as_str().unwrap_or_default().to_owned())
                    .or_insert_with(|| vec![0; replicas.len()])[i] += 1;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_queued_and_running_jobs_then_each_completes_once() {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let dir = tempfile::tempdir().unwrap();
    // The provider is down (nothing listens): requests are queued.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        addr
    };
    let mut vars = provider_env_at(&format!("http://{closed}/v1"));
    let mut tp = start(
        "atlasai-tp",
        &env_with(dir.path(), &vars),
        "tenant plane listening",
    );
    let id = incident(&tp.url).await;
    let mut queued = Vec::new();
    for _ in 0..6 {
        queued.push(queue_rca(&tp.url, &id).await);
    }
    tp.stop();
    // Restart against a provider that hangs: the workers take jobs and wait on it. Kill -9
    // while they hold them: no shutdown hook runs, the leases are left behind.
    let hanging = openai::start(Some(KEY), "gpt-4o-mini").await;
    hanging.set_responder(|_| Some(Step::Stall(Duration::from_secs(60))));
    vars = provider_env(&hanging);
    vars.push(("TP_PROVIDER_TIMEOUT".into(), "30s".into()));
    let mut tp = start(
        "atlasai-tp",
        &env_with(dir.path(), &vars),
        "tenant plane listening",
    );
    let url = tp.url.clone();
    wait_for("jobs to be running", Duration::from_secs(20), async || {
        !jobs(&url, "running").await.is_empty()
    })
    .await;
    let running = jobs(&tp.url, "running").await.len();
    tp.stop();

    // The provider is back; restart on the same data.
    let working = openai::start(Some(KEY), "gpt-4o-mini").await;
    working.set_default_reply(rca_answer());
    let tp = start(
        "atlasai-tp",
        &env_with(dir.path(), &provider_env(&working)),
        "tenant plane listening",
    );
    let url = tp.url.clone();
    wait_for(
        "every queued job to succeed",
        Duration::from_secs(30),
        async || jobs(&url, "succeeded").await.len() == queued.len(),
    )
    .await;
    for job in &queued {
        let (_, j) = call(
            reqwest::Method::GET,
            &format!("{}/api/ai/jobs/{job}", tp.url),
            None,
        )
        .await;
        assert_eq!(j["status"], "succeeded", "{j}");
        assert_eq!(j["result"]["summary"], "Bad deploy.", "{j}");
    }
    wait_for(
        "every success to be logged",
        Duration::from_secs(10),
        async || successes(&[&tp]).len() == queued.len(),
    )
    .await;
    let done = successes(&[&tp]);
    assert_eq!(
        done.len(),
        queued.len(),
        "every job recorded a success: {done:?}"
    );
    assert!(
        done.values().all(|n| n[0] == 1),
        "each exactly once: {done:?}"
    );
    assert!(
        tp.logs_containing("requeued AI jobs interrupted by the previous run")
            .await
            .contains("requeued AI jobs interrupted by the previous run"),
        "the killed run's lease was released at start-up"
    );
    let answered = working.requests().len();
    assert_eq!(
        answered,
        queued.len(),
        "the provider answered each job once"
    );
    eprintln!(
        "two kills with {} queued jobs ({running} running at the second): after restart {} succeeded, each once, 0 lost",
        queued.len(),
        done.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_run_each_job_once() {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let Some(db) = pg::PgDb::create("two_replicas_on_postgres_run_each_job_once").await else {
        return;
    };
    let fake = openai::start(Some(KEY), "gpt-4o-mini").await;
    fake.set_default_reply(rca_answer());
    let down = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicUsize::new(0));
    {
        let (down, answered) = (down.clone(), answered.clone());
        fake.set_responder(move |_| {
            if down.load(Ordering::SeqCst) {
                Some(Step::Fail {
                    status: 503,
                    retry_after: None,
                })
            } else {
                answered.fetch_add(1, Ordering::SeqCst);
                None
            }
        });
    }
    let mut vars = provider_env(&fake);
    vars.push(("TP_DATABASE_URL".into(), db.url.clone()));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(
        "atlasai-tp",
        &env_with(dir_a.path(), &vars),
        "tenant plane listening",
    );
    let b = start(
        "atlasai-tp",
        &env_with(dir_b.path(), &vars),
        "tenant plane listening",
    );
    let id = incident(&a.url).await;
    let mut queued = Vec::new();
    for i in 0..20 {
        let url = if i % 2 == 0 { &a.url } else { &b.url };
        queued.push(queue_rca(url, &id).await);
    }
    // Both replicas' workers retry against the provider that is down, then it comes back.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    down.store(false, Ordering::SeqCst);
    let url = a.url.clone();
    wait_for(
        "every job to succeed",
        Duration::from_secs(60),
        async || jobs(&url, "succeeded").await.len() == queued.len(),
    )
    .await;
    wait_for(
        "every success to be logged",
        Duration::from_secs(10),
        async || successes(&[&a, &b]).len() == queued.len(),
    )
    .await;
    let done = successes(&[&a, &b]);
    assert_eq!(done.len(), 20, "{done:?}");
    for (job, per_replica) in &done {
        assert_eq!(
            per_replica.iter().sum::<usize>(),
            1,
            "{job} succeeded {per_replica:?} times"
        );
    }
    assert_eq!(
        answered.load(Ordering::SeqCst),
        20,
        "the provider answered each job once"
    );
    let by_a = done.values().filter(|n| n[0] == 1).count();
    let by_b = done.values().filter(|n| n[1] == 1).count();
    eprintln!(
        "two replicas on PostgreSQL: 20 jobs, {by_a} run by one, {by_b} by the other, each once"
    );
    drop((a, b));
}

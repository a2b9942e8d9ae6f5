//! The `queue_and_retry` policy through HTTP against the real binary, on SQLite and
//! PostgreSQL: a request the provider cannot answer is accepted as a job (202), retried with
//! backoff until the provider is back, and its answer is what the endpoint would have
//! returned; a job whose provider never comes back expires at its deadline; progress can be
//! polled or streamed; queue length is visible in status and metrics; tenants see only their
//! own jobs.

use std::time::Duration;

use atlasai_fakes::{Fake, FakeReply, Step, openai};
use serde_json::{Value, json};

use crate::client::{Backend, Server, both_backends};
use crate::support::{ADMIN, client, eventually};

both_backends!(
    queued_requests_run_when_the_provider_is_back,
    queued_requests_expire_at_their_deadline,
);

const KEY: &str = "sk-test-queue-0123456789";

fn rca_answer() -> String {
    json!({"summary": "The deploy broke checkout.", "hypotheses": [{"title": "Bad deploy", "explanation": "e", "confidence": 0.7, "evidence": ["alert-1"]}],
           "affected_services": ["payments-api"], "next_steps": ["roll back"]})
    .to_string()
}

async fn raw_get(url: &str, tenant: &str) -> String {
    client()
        .get(url)
        .bearer_auth(ADMIN)
        .header("x-tenant-id", tenant)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A tenant plane under `queue_and_retry` in front of `fake`, with these extra variables.
async fn start(
    backend: Backend,
    test: &str,
    fake: &Fake,
    extra: &[(&str, &str)],
) -> Option<Server> {
    let url = format!("{}/v1", fake.base_url);
    let mut vars = vec![
        ("BYOC_PROVIDER", "openai"),
        ("BYOC_API_KEY", KEY),
        ("BYOC_MODEL", "gpt-4o-mini"),
        ("BYOC_ENDPOINT_URL", url.as_str()),
        ("TP_PROVIDER_MAX_RETRIES", "0"),
        ("TP_FALLBACK_POLICY", "queue_and_retry"),
    ];
    vars.extend_from_slice(extra);
    Server::start(backend, test, &vars).await
}

async fn queued_requests_run_when_the_provider_is_back(backend: Backend) {
    let fake = openai::start(Some(KEY), "gpt-4o-mini").await;
    let Some(server) = start(
        backend,
        "queued_requests_run_when_the_provider_is_back",
        &fake,
        &[("TP_QUEUE_BACKOFF", "200ms")],
    )
    .await
    else {
        return;
    };
    let api = server.as_tenant("acme");
    let incident = api.incident("Checkout failing", "payments-api").await;
    let (status, _) = api
        .post(
            &format!("/api/incidents/{incident}/alerts"),
            &json!({"title": "HighErrorRate", "service": "payments-api", "severity": "critical"}),
        )
        .await;
    assert_eq!(status, 201);
    // Down for the request itself and the first two retries, then back.
    for _ in 0..3 {
        fake.push(Step::Fail {
            status: 503,
            retry_after: None,
        });
    }
    fake.push(Step::Reply(FakeReply::text(rca_answer())));
    let resp = client()
        .post(format!("{}/api/ai/rca", server.tp.url))
        .bearer_auth(ADMIN)
        .header("x-tenant-id", "acme")
        .json(&json!({"incident_id": incident}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = resp.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/ai/jobs/{id}"));
    assert_eq!(job["feature"], "rca");
    assert_eq!(job["status"], "queued", "{job}");
    assert_eq!(job["attempts"], 0);
    assert_eq!(
        job["error"]["error"], "AI provider temporarily unavailable",
        "why it was queued, in the documented shape: {job}"
    );
    assert!(job["next_attempt_at"].is_string(), "{job}");
    assert_eq!(job["events"], format!("/api/ai/jobs/{id}/events"));

    eventually("the queued analysis to succeed", || async {
        api.get(&location).await.1["status"] == "succeeded"
    })
    .await;
    let (_, done) = api.get(&location).await;
    assert_eq!(
        done["attempts"], 3,
        "two failed retries, then the answer: {done}"
    );
    assert_eq!(done["result"]["summary"], "The deploy broke checkout.");
    assert_eq!(done["result"]["hypotheses"][0]["rank"], 1);
    assert_eq!(done["result"]["ai"]["model"], "gpt-4o-mini");
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(fake.pending_steps(), 0);

    // The event stream of a finished job ends at once with its final state.
    let text = raw_get(&format!("{}{}/events", server.tp.url, location), "acme").await;
    assert!(text.contains("event: done"), "{text}");
    assert!(text.contains("\"status\":\"succeeded\""), "{text}");

    // Listed; another tenant sees nothing of it.
    let (status, list) = api.get("/api/ai/jobs?status=succeeded").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let other = server.as_tenant("globex");
    assert_eq!(other.get(&location).await.0, 404);
    assert_eq!(
        other.get("/api/ai/jobs").await.1.as_array().unwrap().len(),
        0
    );
    let (status, err) = api.get("/api/ai/jobs?status=lost").await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("queued, running"));

    // A non-streamed chat is queued the same way.
    fake.push(Step::Fail {
        status: 503,
        retry_after: None,
    });
    fake.push(Step::Reply(FakeReply::text("Roll back the deploy.")));
    let (status, job) = api
        .post(
            "/api/ai/chat",
            &json!({"stream": false, "messages": [{"role": "user", "content": "what now?"}]}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let poll = job["poll"].as_str().unwrap().to_owned();
    eventually("the queued chat to succeed", || async {
        api.get(&poll).await.1["status"] == "succeeded"
    })
    .await;
    assert_eq!(
        api.get(&poll).await.1["result"]["content"],
        "Roll back the deploy."
    );

    let (_, status) = api.get("/api/status").await;
    assert_eq!(status["fallback_policy"], "queue_and_retry");
    assert_eq!(status["queue"]["queued"], 0, "{status}");
    let metrics = client()
        .get(format!("{}/metrics", server.tp.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("atlasai_ai_queue_jobs{state=\"queued\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("atlasai_ai_queue_oldest_job_age_seconds"));
}

async fn queued_requests_expire_at_their_deadline(backend: Backend) {
    let fake = openai::start(Some(KEY), "gpt-4o-mini").await;
    for _ in 0..100 {
        fake.push(Step::Fail {
            status: 503,
            retry_after: None,
        });
    }
    let Some(server) = start(
        backend,
        "queued_requests_expire_at_their_deadline",
        &fake,
        &[("TP_QUEUE_BACKOFF", "300ms"), ("TP_QUEUE_DEADLINE", "3s")],
    )
    .await
    else {
        return;
    };
    let api = server.as_tenant("acme");
    let incident = api.incident("Checkout failing", "payments-api").await;
    let (status, job) = api
        .post("/api/ai/runbook", &json!({"incident_id": incident}))
        .await;
    assert_eq!(status, 202, "{job}");
    let (_, status_doc) = api.get("/api/status").await;
    assert!(
        status_doc["queue"]["queued"].as_i64().unwrap()
            + status_doc["queue"]["running"].as_i64().unwrap()
            >= 1,
        "{status_doc}"
    );
    // Stream its progress to the end: retries, then expiry at the deadline.
    let started = std::time::Instant::now();
    let text = raw_get(
        &format!("{}{}", server.tp.url, job["events"].as_str().unwrap()),
        "acme",
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it waited for the deadline"
    );
    let statuses: Vec<Value> = text
        .split("\n\n")
        .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(text.starts_with("event: status"), "{text}");
    let last = statuses.last().unwrap();
    assert_eq!(last["status"], "expired", "{text}");
    assert!(
        last["attempts"].as_i64().unwrap() >= 2,
        "it was retried: {last}"
    );
    assert!(
        last["error"]
            .to_string()
            .contains("AI provider temporarily unavailable")
            || last["error"].to_string().contains("deadline"),
        "{last}"
    );
    assert!(text.contains("event: done"));
}

//! The AI features end to end through HTTP against the real binary and scripted fake
//! providers of three dialects (OpenAI, Anthropic, Bedrock), on SQLite and PostgreSQL: root
//! cause analysis (structured output, ranked hypotheses citing evidence, a malformed answer
//! repaired once, then a clear error), runbook generation (a tool-calling loop over the
//! tenant's data, "model does not support tool use"), copilot chat (tool calls and text
//! streamed as server-sent events), natural-language search (filters from the model), and the
//! context budget: an RCA over far more log lines than the model's context window sends no
//! request larger than the window, counted with OpenAI's own tokenizer.

use std::sync::OnceLock;

use atlasai_fakes::{Fake, FakeReply, FakeToolCall, Step, anthropic, bedrock, openai};
use serde_json::{Value, json};
use tiktoken_rs::CoreBPE;

use crate::client::{Api, Backend, Server};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
    Bedrock,
}

const AWS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const BEDROCK_MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5-20250929";
const OPENAI_MODEL: &str = "gpt-4o-mini";

/// Runs each case for every dialect on both databases.
macro_rules! matrix {
    ($($case:ident),+ $(,)?) => {
        $(
            mod $case {
                use super::{Backend, Dialect};
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn openai_sqlite() { super::$case(Dialect::OpenAi, Backend::Sqlite).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn anthropic_sqlite() { super::$case(Dialect::Anthropic, Backend::Sqlite).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn bedrock_sqlite() { super::$case(Dialect::Bedrock, Backend::Sqlite).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn openai_postgres() { super::$case(Dialect::OpenAi, Backend::Postgres).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn anthropic_postgres() { super::$case(Dialect::Anthropic, Backend::Postgres).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn bedrock_postgres() { super::$case(Dialect::Bedrock, Backend::Postgres).await }
            }
        )+
    };
}

matrix!(
    rca_runbook_chat_and_search,
    rca_over_more_logs_than_the_context_window,
);

/// A fake of the dialect and the variables that point the tenant plane at it (one attempt per
/// call, so each scripted step answers exactly one request).
async fn provider(
    d: Dialect,
    extra: &[(&str, &str)],
) -> (Fake, Vec<(String, String)>, &'static str, &'static str) {
    let (fake, vars, kind, model) = match d {
        Dialect::OpenAi => {
            let fake = openai::start(Some("sk-test-ai-features-01"), OPENAI_MODEL).await;
            let url = format!("{}/v1", fake.base_url);
            (
                fake,
                vec![
                    ("BYOC_PROVIDER", "openai".to_owned()),
                    ("BYOC_API_KEY", "sk-test-ai-features-01".to_owned()),
                    ("BYOC_MODEL", OPENAI_MODEL.to_owned()),
                    ("BYOC_ENDPOINT_URL", url),
                ],
                "openai",
                OPENAI_MODEL,
            )
        }
        Dialect::Anthropic => {
            let fake = anthropic::start(Some("sk-ant-api03-ai-features"), ANTHROPIC_MODEL).await;
            let url = fake.base_url.clone();
            (
                fake,
                vec![
                    ("BYOC_PROVIDER", "anthropic".to_owned()),
                    ("BYOC_API_KEY", "sk-ant-api03-ai-features".to_owned()),
                    ("BYOC_MODEL", ANTHROPIC_MODEL.to_owned()),
                    ("BYOC_ENDPOINT_URL", url),
                ],
                "anthropic",
                ANTHROPIC_MODEL,
            )
        }
        Dialect::Bedrock => {
            let fake =
                bedrock::start(AWS_KEY_ID, AWS_SECRET, None, "us-east-1", BEDROCK_MODEL).await;
            let url = fake.base_url.clone();
            (
                fake,
                vec![
                    ("BYOC_PROVIDER", "bedrock".to_owned()),
                    ("BYOC_REGION", "us-east-1".to_owned()),
                    ("BYOC_AWS_ACCESS_KEY_ID", AWS_KEY_ID.to_owned()),
                    ("BYOC_AWS_SECRET_ACCESS_KEY", AWS_SECRET.to_owned()),
                    ("BYOC_MODEL", BEDROCK_MODEL.to_owned()),
                    ("BYOC_ENDPOINT_URL", url),
                ],
                "bedrock",
                BEDROCK_MODEL,
            )
        }
    };
    let mut vars: Vec<(String, String)> =
        vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    vars.push(("TP_PROVIDER_MAX_RETRIES".into(), "0".into()));
    for (k, v) in extra {
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    (fake, vars, kind, model)
}

async fn start(backend: Backend, test: &str, vars: &[(String, String)]) -> Option<Server> {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(backend, test, &vars).await
}

/// Whether a recorded request asked for JSON matching a schema in the dialect's own way.
fn asks_for_structured_output(d: Dialect, body: &Value) -> bool {
    match d {
        Dialect::OpenAi => body["response_format"]["type"] == "json_schema",
        Dialect::Anthropic => body["output_config"]["format"]["type"] == "json_schema",
        Dialect::Bedrock => body["outputConfig"]["textFormat"]["type"] == "json_schema",
    }
}

struct Seeded {
    incident: String,
    alerts: Vec<String>,
    change: String,
    runbook: String,
}

/// An incident with two alerts, a deploy, error logs and a runbook that explains them.
async fn seed(api: &Api) -> Seeded {
    let incident = api
        .incident("Checkout failing with 502s", "payments-api")
        .await;
    let mut alerts = Vec::new();
    for (title, at) in [
        ("HighErrorRate", "2026-11-02T14:03:00Z"),
        ("DBConnectionsSaturated", "2026-11-02T14:04:00Z"),
    ] {
        let (status, a) = api
            .post(
                &format!("/api/incidents/{incident}/alerts"),
                &json!({"title": title, "service": "payments-api", "severity": "critical",
                        "description": "5xx ratio above 5% for 5 minutes", "fired_at": at}),
            )
            .await;
        assert_eq!(status, 201, "{a}");
        alerts.push(a["id"].as_str().unwrap().to_owned());
    }
    let (status, c) = api
        .post(
            &format!("/api/incidents/{incident}/changes"),
            &json!({"kind": "deploy", "service": "payments-api", "summary": "v2.3.1: connection pool size 50 -> 5",
                    "details": "DB_POOL_SIZE changed from 50 to 5", "occurred_at": "2026-11-02T14:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let mut lines = Vec::new();
    for i in 0..12 {
        lines.push(
            json!({"level": "error", "ts": format!("2026-11-02T14:05:{i:02}Z"),
            "message": format!("connection refused to db-primary:5432 (attempt {i})")}),
        );
    }
    for i in 0..6 {
        lines.push(
            json!({"level": "warn", "ts": format!("2026-11-02T14:06:{i:02}Z"),
            "message": format!("pool exhausted, waited {}ms for a connection", 100 * i)}),
        );
    }
    lines.push(json!({"level": "info", "ts": "2026-11-02T14:07:00Z", "message": "request served"}));
    let (status, r) = api
        .logs(
            &format!("?incident_id={incident}&service=payments-api"),
            &lines,
        )
        .await;
    assert_eq!(status, 201, "{r}");
    let (status, rb) = api
        .post(
            "/api/runbooks",
            &json!({"title": "Database connection pool exhausted",
                    "content": "# Pool exhausted\n1. Check pool metrics.\n2. Raise DB_POOL_SIZE or roll back.",
                    "services": ["payments-api"]}),
        )
        .await;
    assert_eq!(status, 201, "{rb}");
    api.indexed().await;
    Seeded {
        incident,
        alerts,
        change: c["id"].as_str().unwrap().to_owned(),
        runbook: rb["id"].as_str().unwrap().to_owned(),
    }
}

fn rca_json() -> String {
    // The less likely hypothesis first: the tenant plane ranks by confidence.
    json!({
        "summary": "The v2.3.1 deploy cut the database pool from 50 to 5 connections; checkout requests wait for connections and fail.",
        "hypotheses": [
            {"title": "Database outage", "explanation": "The database refused connections.", "confidence": 0.2, "evidence": ["alert-2"]},
            {"title": "Connection pool too small after deploy", "explanation": "The deploy set DB_POOL_SIZE to 5.", "confidence": 0.85, "evidence": ["change-3", "alert-1"]}
        ],
        "affected_services": ["payments-api"],
        "next_steps": ["Roll back v2.3.1 or set DB_POOL_SIZE back to 50", "Watch the 5xx ratio"]
    })
    .to_string()
}

fn runbook_json() -> String {
    json!({
        "title": "Restore the payments-api connection pool",
        "summary": "Undo the pool size change that starves checkout of database connections.",
        "steps": [
            {"action": "Confirm pool exhaustion in the metrics", "command": "kubectl -n payments top pods", "risk": "low", "rollback": "none needed", "verification": "pool wait time is visible"},
            {"action": "Roll back to v2.3.0", "command": "kubectl -n payments rollout undo deploy/payments-api", "risk": "medium", "rollback": "kubectl -n payments rollout undo deploy/payments-api again", "verification": "5xx ratio under 1%"}
        ]
    })
    .to_string()
}

/// Server-sent events as (event, data) pairs.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let mut event = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, serde_json::from_str(&data).unwrap_or(Value::Null))
        })
        .collect()
}

async fn rca_runbook_chat_and_search(d: Dialect, backend: Backend) {
    let (fake, vars, kind, model) = provider(d, &[]).await;
    let Some(server) = start(backend, "rca_runbook_chat_and_search", &vars).await else {
        return;
    };
    let api = server.as_tenant("acme");
    let seeded = seed(&api).await;
    let incident = seeded.incident.as_str();

    // Root cause analysis: one structured call, hypotheses ranked, evidence resolved.
    fake.clear_requests();
    fake.push(Step::Reply(FakeReply::text(rca_json())));
    let (status, rca) = api
        .post("/api/ai/rca", &json!({"incident_id": incident}))
        .await;
    assert_eq!(status, 200, "{rca}");
    assert_eq!(rca["incident_id"], incident);
    assert_eq!(rca["hypotheses"][0]["rank"], 1, "{rca}");
    assert_eq!(
        rca["hypotheses"][0]["title"], "Connection pool too small after deploy",
        "{rca}"
    );
    assert_eq!(
        rca["hypotheses"][0]["evidence"],
        json!(["change-3", "alert-1"]),
        "{rca}"
    );
    assert_eq!(
        rca["hypotheses"][0]["evidence_ids"],
        json!([seeded.change, seeded.alerts[0]]),
        "evidence ids resolve to the records: {rca}"
    );
    assert_eq!(
        rca["hypotheses"][1]["evidence_ids"],
        json!([seeded.alerts[1]]),
        "{rca}"
    );
    assert_eq!(rca["affected_services"], json!(["payments-api"]));
    assert_eq!(rca["next_steps"].as_array().unwrap().len(), 2);
    let cited: Vec<&str> = rca["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(cited, ["change", "alert", "alert"], "{rca}");
    assert_eq!(rca["considered"]["alerts"], 2, "{rca}");
    assert_eq!(rca["considered"]["changes"], 1, "{rca}");
    assert_eq!(
        rca["considered"]["log_patterns"], 2,
        "error and warning shapes: {rca}"
    );
    assert_eq!(
        rca["considered"]["map_batches"], 0,
        "it fit one request: {rca}"
    );
    assert_eq!(rca["ai"]["provider"], kind);
    assert_eq!(rca["ai"]["model"], model);
    assert_eq!(rca["ai"]["model_calls"], 1);
    assert_eq!(
        rca["ai"]["prompt_tokens"], 12,
        "the provider's usage: {rca}"
    );
    assert_eq!(rca["ai"]["completion_tokens"], 5);
    assert_eq!(rca["ai"]["total_tokens"], 17);
    assert!(rca["ai"]["latency_ms"].is_u64());
    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    assert!(asks_for_structured_output(d, &body), "{body}");
    let text = body.to_string();
    for expected in [
        "[alert-1]",
        "[change-3]",
        "DB_POOL_SIZE changed from 50 to 5",
        "12x error payments-api",
        "connection refused to db-primary",
    ] {
        assert!(
            text.contains(expected),
            "the prompt holds {expected:?}: {text}"
        );
    }
    assert!(
        !text.contains("request served"),
        "info lines are not evidence unless they match"
    );

    // A malformed answer gets one repair; a second one is a clear error.
    fake.clear_requests();
    fake.push(Step::Reply(FakeReply::text(
        "Sure! The database is the root cause.",
    )));
    fake.push(Step::Reply(FakeReply::text(rca_json())));
    let (status, rca) = api
        .post("/api/ai/rca", &json!({"incident_id": incident}))
        .await;
    assert_eq!(status, 200, "{rca}");
    assert_eq!(rca["ai"]["model_calls"], 2);
    assert_eq!(rca["ai"]["prompt_tokens"], 24);
    let repair = fake.requests()[1].json().to_string();
    assert!(
        repair.contains("Your answer is not valid: it is not a JSON object"),
        "{repair}"
    );
    fake.push(Step::Reply(FakeReply::text(r#"{"summary": "x"}"#)));
    fake.push(Step::Reply(FakeReply::text(
        json!({"summary": "s", "hypotheses": [{"title": "t", "explanation": "e", "confidence": 0.5, "evidence": ["log-99"]}],
               "affected_services": [], "next_steps": ["n"]}).to_string(),
    )));
    let (status, err) = api
        .post("/api/ai/rca", &json!({"incident_id": incident}))
        .await;
    assert_eq!(status, 502, "{err}");
    assert_eq!(err["error"], "AI provider returned invalid output");
    assert!(
        err["detail"].as_str().unwrap().contains("log-99"),
        "names the invented evidence: {err}"
    );
    assert_eq!(err["provider"], kind);

    // Runbook: two tool-calling turns over the tenant's data, then the runbook.
    fake.clear_requests();
    fake.push(Step::Reply(FakeReply::tool_calls(vec![FakeToolCall::new(
        "call_1",
        "get_incident",
        json!({}),
    )])));
    fake.push(Step::Reply(FakeReply::tool_calls(vec![FakeToolCall::new(
        "call_2",
        "search_runbooks",
        json!({"query": "connection pool exhausted"}),
    )])));
    fake.push(Step::Reply(FakeReply::text(runbook_json())));
    let (status, rb) = api
        .post("/api/ai/runbook", &json!({"incident_id": incident}))
        .await;
    assert_eq!(status, 200, "{rb}");
    assert_eq!(rb["title"], "Restore the payments-api connection pool");
    assert_eq!(rb["steps"].as_array().unwrap().len(), 2);
    assert_eq!(rb["steps"][0]["number"], 1);
    assert_eq!(rb["steps"][0]["risk"], "low");
    assert_eq!(rb["steps"][1]["risk"], "medium");
    assert_eq!(
        rb["steps"][1]["command"],
        "kubectl -n payments rollout undo deploy/payments-api"
    );
    assert!(
        rb["steps"][1]["rollback"]
            .as_str()
            .unwrap()
            .contains("rollout undo")
    );
    let tools: Vec<(&str, bool)> = rb["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        tools,
        [("get_incident", true), ("search_runbooks", true)],
        "{rb}"
    );
    assert_eq!(rb["hit_step_limit"], false);
    assert_eq!(rb["ai"]["model_calls"], 3);
    assert_eq!(rb["ai"]["prompt_tokens"], 30 + 30 + 12, "{rb}");
    let sent = fake.requests();
    assert_eq!(sent.len(), 3);
    assert!(
        sent[1]
            .json()
            .to_string()
            .contains("DB_POOL_SIZE changed from 50 to 5"),
        "the incident tool's result went back to the model"
    );
    let third = sent[2].json().to_string();
    assert!(
        third.contains(&seeded.runbook),
        "the runbook search result went back: {third}"
    );
    assert!(third.contains("Raise DB_POOL_SIZE or roll back"), "{third}");

    // A model without tool calling.
    fake.push(Step::ToolsUnsupported);
    let (status, err) = api
        .post("/api/ai/runbook", &json!({"incident_id": incident}))
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"], "model does not support tool use");
    assert_eq!(err["model"], model);

    // Copilot chat, streamed: a tool call, then the answer in pieces.
    fake.clear_requests();
    fake.push(Step::Reply(FakeReply::tool_calls(vec![FakeToolCall::new(
        "call_3",
        "search_logs",
        json!({"query": "connection refused", "level": "error"}),
    )])));
    let answer = "The database refused connections after the pool was cut to 5.";
    fake.push(Step::Reply(FakeReply::text(answer)));
    let resp = crate::support::client()
        .post(format!("{}/api/ai/chat", server.tp.url))
        .bearer_auth(crate::support::ADMIN)
        .header("x-tenant-id", "acme")
        .json(&json!({"incident_id": incident, "messages": [
            {"role": "user", "content": "What is failing?"},
            {"role": "assistant", "content": "Checkout returns 502s."},
            {"role": "user", "content": "Why?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let evs = events(&resp.text().await.unwrap());
    let names: Vec<&str> = evs.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"meta"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let i_call = names.iter().position(|n| *n == "tool_call").unwrap();
    let i_result = names.iter().position(|n| *n == "tool_result").unwrap();
    let i_delta = names.iter().position(|n| *n == "delta").unwrap();
    assert!(i_call < i_result && i_result < i_delta, "{names:?}");
    assert!(
        names.iter().filter(|n| **n == "delta").count() > 1,
        "the answer arrives in pieces: {names:?}"
    );
    assert_eq!(evs[i_call].1["name"], "search_logs");
    assert_eq!(evs[i_result].1["ok"], true);
    let streamed: String = evs
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, answer);
    let done = &evs.last().unwrap().1;
    assert_eq!(done["content"], answer);
    assert_eq!(done["ai"]["model_calls"], 2, "{done}");
    assert_eq!(done["ai"]["provider"], kind);
    let second = fake.requests()[1].json().to_string();
    assert!(
        second.contains("connection refused to db-primary:5432"),
        "the log search result went back"
    );
    assert!(
        second.contains("Checkout returns 502s."),
        "the history was sent"
    );

    // Chat without streaming.
    fake.push(Step::Reply(FakeReply::text("Roll back v2.3.1.")));
    let (status, chat) = api
        .post(
            "/api/ai/chat",
            &json!({"stream": false, "messages": [{"role": "user", "content": "What now?"}]}),
        )
        .await;
    assert_eq!(status, 200, "{chat}");
    assert_eq!(chat["content"], "Roll back v2.3.1.");
    let (status, err) = api
        .post(
            "/api/ai/chat",
            &json!({"messages": [{"role": "assistant", "content": "hi"}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("the last turn must be the user's"),
        "{err}"
    );

    // Natural-language search: the model's filters narrow the search.
    fake.push(Step::Reply(FakeReply::text(
        json!({"keywords": "connection refused", "kind": "log", "services": ["payments-api"],
               "severities": ["error"], "since": "2026-11-02T00:00:00Z", "until": ""})
        .to_string(),
    )));
    let (status, nl) = api
        .post("/api/ai/search", &json!({"query": "which payments-api errors mention refused connections since Nov 2?", "limit": 5}))
        .await;
    assert_eq!(status, 200, "{nl}");
    assert_eq!(nl["interpreted_by"], "ai", "{nl}");
    assert_eq!(nl["interpretation"]["kind"], "log");
    assert_eq!(nl["interpretation"]["services"], json!(["payments-api"]));
    let results = nl["results"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "{nl}");
    assert!(
        results
            .iter()
            .all(|r| r["kind"] == "log" && r["severity"] == "error"),
        "{nl}"
    );
    assert_eq!(nl["ai"]["model"], model);

    // The provider goes down: the AI features say so in the documented shape.
    fake.push(Step::Fail {
        status: 503,
        retry_after: None,
    });
    let (status, err) = api
        .post("/api/ai/rca", &json!({"incident_id": incident}))
        .await;
    assert_eq!(status, 503, "{err}");
    assert_eq!(err["error"], "AI provider temporarily unavailable");
    // An unknown incident is a 404 before any model call.
    let (status, err) = api
        .post(
            "/api/ai/rca",
            &json!({"incident_id": "0193a5e2-7c1d-7b4e-9f3a-2d1c0b9a8f7e"}),
        )
        .await;
    assert_eq!(status, 404, "{err}");
    // Every call is in the egress audit log. The fake listens on 127.0.0.1: nothing left the
    // network.
    crate::support::eventually("the audit log to hold every call", || async {
        api.get("/api/audit/egress?limit=500").await.1["items"]
            .as_array()
            .is_some_and(|items| items.len() >= 14)
    })
    .await;
    let (status, audit) = api.get("/api/audit/egress?limit=500").await;
    assert_eq!(status, 200);
    let items = audit["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        14,
        "every model call of this test, once: {audit}"
    );
    for r in items {
        assert_eq!(r["destination"], "private", "{r}");
        assert_eq!(r["left_network"], false, "{r}");
        assert_eq!(r["provider"], kind, "{r}");
        assert_eq!(r["model"], model, "{r}");
        assert_eq!(r["endpoint_host"], "127.0.0.1", "{r}");
    }
    let count = |feature: &str| items.iter().filter(|r| r["feature"] == feature).count();
    assert_eq!(
        (
            count("rca"),
            count("runbook"),
            count("chat"),
            count("search")
        ),
        (6, 4, 3, 1),
        "{audit}"
    );
    assert!(
        items
            .iter()
            .any(|r| r["feature"] == "rca" && r["outcome"] == "ok" && r["prompt_tokens"] == 12),
        "{audit}"
    );
    assert!(
        items.iter().any(|r| r["outcome"] == "unavailable"),
        "{audit}"
    );
    let (_, rca_only) = api.get("/api/audit/egress?feature=rca&limit=2").await;
    assert_eq!(rca_only["items"].as_array().unwrap().len(), 2);
    assert!(rca_only["next_cursor"].is_string(), "{rca_only}");
    let (_, left) = api.get("/api/audit/egress?left_network=true").await;
    assert!(left["items"].as_array().unwrap().is_empty(), "{left}");
    let (_, other) = server.as_tenant("globex").get("/api/audit/egress").await;
    assert!(other["items"].as_array().unwrap().is_empty(), "{other}");

    for feature in ["rca", "runbook", "chat", "search"] {
        let line = format!("\"feature\":\"{feature}\"");
        assert!(
            server.tp.logs_containing(&line).await.contains(&line),
            "every call is recorded: {feature}"
        );
    }
}

/// OpenAI's o200k tokenizer, loaded once.
fn o200k() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().unwrap())
}

/// The prompt tokens of a recorded request, counted generously in any dialect: every string
/// in the body, schemas counted as their JSON text, and 4 tokens per message of overhead.
fn prompt_tokens(body: &Value) -> usize {
    fn walk(v: &Value, bpe: &CoreBPE) -> usize {
        match v {
            Value::String(s) => bpe.encode_with_special_tokens(s).len(),
            Value::Array(a) => a.iter().map(|x| walk(x, bpe)).sum(),
            Value::Object(o) => o
                .iter()
                .map(|(k, x)| match k.as_str() {
                    "schema" | "parameters" | "input_schema" if x.is_object() => {
                        bpe.encode_with_special_tokens(&x.to_string()).len()
                    }
                    _ => walk(x, bpe),
                })
                .sum(),
            _ => 0,
        }
    }
    let messages = body["messages"].as_array().map_or(0, Vec::len);
    walk(body, o200k()) + 4 * messages + 3
}

fn max_tokens(body: &Value) -> u64 {
    body["max_completion_tokens"]
        .as_u64()
        .or_else(|| body["max_tokens"].as_u64())
        .or_else(|| body["inferenceConfig"]["maxTokens"].as_u64())
        .unwrap_or_else(|| panic!("no output limit in {body}"))
}

const COMPONENTS: [&str; 30] = [
    "payment-gateway",
    "ledger-writer",
    "fraud-scorer",
    "card-vault",
    "refund-worker",
    "invoice-renderer",
    "tax-engine",
    "currency-converter",
    "session-store",
    "cart-service",
    "pricing-engine",
    "promo-evaluator",
    "inventory-lock",
    "shipping-quote",
    "address-validator",
    "email-sender",
    "sms-gateway",
    "audit-logger",
    "webhook-dispatcher",
    "report-builder",
    "search-indexer",
    "image-resizer",
    "feature-flags",
    "rate-limiter",
    "token-issuer",
    "kyc-checker",
    "settlement-batch",
    "payout-scheduler",
    "dispute-handler",
    "risk-model",
];
const FAILURES: [&str; 10] = [
    "upstream timed out",
    "connection reset by peer",
    "TLS handshake failed",
    "deadlock detected",
    "too many open files",
    "certificate expired",
    "DNS lookup failed",
    "out of memory killed",
    "schema mismatch on decode",
    "quota exceeded",
];

async fn rca_over_more_logs_than_the_context_window(d: Dialect, backend: Backend) {
    const CONTEXT: u64 = 4_096;
    let (fake, vars, _, _) = provider(d, &[("TP_CONTEXT_TOKENS", "4096")]).await;
    let Some(server) = start(backend, "rca_over_more_logs_than_the_context_window", &vars).await
    else {
        return;
    };
    let api = server.as_tenant("acme");
    let incident = api
        .incident(
            "Payment requests failing with upstream timeouts",
            "payments-api",
        )
        .await;
    let (status, a) = api
        .post(
            &format!("/api/incidents/{incident}/alerts"),
            &json!({"title": "HighErrorRate", "service": "payments-api", "severity": "critical"}),
        )
        .await;
    assert_eq!(status, 201, "{a}");
    // 3,000 error lines in 300 shapes, full of ids, hosts and numbers: hundreds of thousands
    // of tokens, against a window of 4,096.
    for batch in 0..3 {
        let lines: Vec<Value> = (0..1_000)
            .map(|j| {
                let i = batch * 1_000 + j;
                let c = COMPONENTS[i % 30];
                let f = FAILURES[(i / 30) % 10];
                json!({"level": "error", "service": "payments-api",
                       "message": format!("{c}: request 0193a5e2-{i:04x}-7b4e-9f3a-2d1c0b9a{i:04x} to 10.20.{}.{} failed after {}ms: {f} (shard {}, retry {})",
                                          i % 256, (i * 7) % 256, 1000 + i, i % 17, i % 3)})
            })
            .collect();
        let (status, r) = api.logs(&format!("?incident_id={incident}"), &lines).await;
        assert_eq!(status, 201, "{r}");
    }
    api.indexed().await;
    fake.set_responder(|body| {
        body.to_string().contains("batch_findings").then(|| {
            Step::Reply(FakeReply::text(
                json!({"batch_findings": [{"finding": "many upstream calls fail with timeouts and resets", "evidence": ["alert-1"]}]})
                    .to_string(),
            ))
        })
    });
    fake.set_default_reply(FakeReply::text(
        json!({"summary": "Upstream dependencies fail.", "hypotheses": [{"title": "Upstream failures", "explanation": "e", "confidence": 0.6, "evidence": ["alert-1"]}],
               "affected_services": ["payments-api"], "next_steps": ["check upstreams"]})
            .to_string(),
    ));
    fake.clear_requests();
    let (status, rca) = api
        .post("/api/ai/rca", &json!({"incident_id": incident}))
        .await;
    assert_eq!(status, 200, "{rca}");
    let considered = &rca["considered"];
    assert_eq!(considered["incident_log_lines"], 3_000, "{rca}");
    assert_eq!(considered["context_tokens"], 4_096);
    assert!(
        considered["evidence_tokens"].as_u64().unwrap() > CONTEXT,
        "{rca}"
    );
    let batches = considered["map_batches"].as_u64().unwrap();
    assert!(
        batches >= 2,
        "the evidence was summarised in batches: {rca}"
    );
    assert_eq!(rca["hypotheses"][0]["evidence_ids"][0], a["id"], "{rca}");
    let sent = fake.requests();
    let model_calls: Vec<_> = sent.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(
        model_calls.len() as u64,
        batches + 1,
        "one call per batch and the final one"
    );
    assert_eq!(rca["ai"]["model_calls"], batches + 1);
    let mut largest = 0;
    for r in &model_calls {
        let body = r.json();
        let prompt = prompt_tokens(&body) as u64;
        let limit = max_tokens(&body);
        largest = largest.max(prompt);
        assert!(
            prompt + limit <= CONTEXT,
            "a request of {prompt} prompt tokens (o200k) plus {limit} for the answer exceeds the {CONTEXT}-token window: {body}"
        );
    }
    assert!(
        largest > CONTEXT / 3,
        "batches use the window, not a sliver of it: {largest}"
    );
    eprintln!("map batches {batches}, largest request {largest} o200k tokens of {CONTEXT}");
    let final_body = model_calls.last().unwrap().json().to_string();
    assert!(
        final_body.contains("many upstream calls fail"),
        "the final call holds the findings"
    );
}

/// The budget's estimate is an upper bound of the real token count (OpenAI's o200k) on the
/// search fixture's log lines, which are full of ids, hosts and numbers, and is not wildly
/// above it.
#[test]
fn token_estimates_bound_real_counts_on_log_lines() {
    use atlasai_tenant_plane::ai::budget::estimate_text;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/search/logs.ndjson"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let (mut estimated, mut real, mut lines) = (0usize, 0usize, 0usize);
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let message = format!(
            "[log-17] log {} {} {}: {}",
            v["ts"].as_str().unwrap(),
            v["level"].as_str().unwrap(),
            v["service"].as_str().unwrap(),
            v["message"].as_str().unwrap()
        );
        let e = estimate_text(&message) as usize;
        let r = o200k().encode_with_special_tokens(&message).len();
        assert!(e >= r, "estimate {e} < real {r} for {message:?}");
        estimated += e;
        real += r;
        lines += 1;
    }
    assert!(lines > 1_000);
    let ratio = estimated as f64 / real as f64;
    assert!(
        ratio < 2.0,
        "the estimate wastes the window: {ratio:.2}x the real count"
    );
    eprintln!(
        "token estimate over {lines} log lines: {estimated} estimated vs {real} real (o200k), {ratio:.2}x"
    );
}

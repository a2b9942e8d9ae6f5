//! Tenant isolation through every data endpoint: tenant B never sees, changes or attaches to
//! tenant A's data, whatever ids it sends.

use serde_json::json;

use crate::client::{Backend, Server, both_backends};

both_backends!(tenant_b_never_sees_tenant_a, ai_tools_never_cross_tenants);

async fn tenant_b_never_sees_tenant_a(backend: Backend) {
    let Some(server) = Server::start(backend, "tenant_b_never_sees_tenant_a", &[]).await else {
        return;
    };
    let a = server.as_tenant("acme");
    let b = server.as_tenant("globex");

    let incident = a.incident("Acme checkout outage", "payments-api").await;
    let (status, _) = a
        .post(&format!("/api/incidents/{incident}/alerts"), &json!({"title": "AcmeSecretAlert", "service": "payments-api", "severity": "high", "fingerprint": "acme-fp"}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = a
        .post(
            &format!("/api/incidents/{incident}/changes"),
            &json!({"kind": "config", "service": "payments-api", "summary": "acme secret config"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, logs) = a
        .logs(
            &format!("?incident_id={incident}&service=payments-api"),
            &[json!({"level": "error", "message": "acme secret token leaked in stack trace"})],
        )
        .await;
    assert_eq!(status, 201, "{logs}");
    let log_id = logs["first_id"].as_str().unwrap().to_owned();
    let (_, rb) = a.post("/api/runbooks", &json!({"title": "Acme secret runbook", "content": "acme secret steps", "services": ["payments-api"]})).await;
    let runbook = rb["id"].as_str().unwrap().to_owned();
    a.indexed().await;
    assert_eq!(
        a.search("q=secret").await["results"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "acme finds its own data"
    );

    // Reads.
    for path in [
        format!("/api/incidents/{incident}"),
        format!("/api/incidents/{incident}/alerts"),
        format!("/api/incidents/{incident}/changes"),
        format!("/api/runbooks/{runbook}"),
    ] {
        let (status, body) = b.get(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.to_string().contains("acme"), "{path}: {body}");
    }
    for path in [
        "/api/incidents".to_owned(),
        "/api/runbooks".to_owned(),
        "/api/runbooks?service=payments-api".to_owned(),
        format!("/api/logs?incident_id={incident}"),
        "/api/logs?service=payments-api".to_owned(),
    ] {
        let (status, body) = b.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            body["items"].as_array().unwrap().is_empty(),
            "{path}: {body}"
        );
    }
    for query in [
        "q=secret".to_owned(),
        "q=".to_owned(),
        "q=acme&kind=incident".to_owned(),
        format!("q=secret&incident_id={incident}"),
        format!("q=id:{log_id}"),
        "q=tenant:acme".to_owned(),
    ] {
        let body = b.search(&query);
        let body = body.await;
        assert!(
            body["results"].as_array().unwrap().is_empty(),
            "{query}: {body}"
        );
    }
    let (_, status_doc) = b.get("/api/search/status").await;
    assert_eq!(status_doc["store_batch"], 0);

    // Writes that name A's records.
    let (status, _) = b
        .patch(
            &format!("/api/incidents/{incident}"),
            &json!({"status": "closed"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = b
        .post(
            &format!("/api/incidents/{incident}/alerts"),
            &json!({"title": "x", "service": "payments-api", "severity": "low"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = b
        .post(
            &format!("/api/incidents/{incident}/changes"),
            &json!({"kind": "deploy", "service": "payments-api", "summary": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = b
        .logs(
            &format!("?incident_id={incident}&service=payments-api"),
            &[json!({"message": "x"})],
        )
        .await;
    assert_eq!(status, 404);
    let (status, err) = b
        .logs(
            "?service=payments-api",
            &[json!({"message": "x", "incident_id": incident})],
        )
        .await;
    assert_eq!(status, 400, "{err}");
    // Correlation: same service, same title, same fingerprint: still a new incident for B.
    let (status, corr) = b
        .post("/api/alerts", &json!({"title": "Acme checkout outage", "service": "payments-api", "severity": "high", "fingerprint": "acme-fp"}))
        .await;
    assert_eq!(status, 201, "{corr}");
    assert_eq!(corr["correlation"]["method"], "none");
    assert_ne!(corr["incident"]["id"], incident.as_str());

    // The AI features about A's incident: 404 before any model is consulted.
    for (path, body) in [
        ("/api/ai/rca", json!({"incident_id": incident})),
        ("/api/ai/runbook", json!({"incident_id": incident})),
        (
            "/api/ai/chat",
            json!({"incident_id": incident, "messages": [{"role": "user", "content": "secret?"}]}),
        ),
    ] {
        let (status, body) = b.post(path, &body).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.to_string().contains("acme"), "{path}: {body}");
    }
    let (status, nl) = b
        .post("/api/ai/search", &json!({"query": "acme secret token"}))
        .await;
    assert_eq!(status, 200, "{nl}");
    // B's own incident (opened by its alert above) may match; nothing of A's does.
    for r in nl["results"]["results"].as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        assert!(id != incident && id != log_id && id != runbook, "{nl}");
    }
    let (status, jobs) = b.get("/api/ai/jobs").await;
    assert_eq!(status, 200);
    assert!(jobs.as_array().unwrap().is_empty());

    let (_, detail) = a.get(&format!("/api/incidents/{incident}")).await;
    assert_eq!(detail["status"], "open", "B changed nothing of A's");
    assert_eq!(
        detail["counts"],
        json!({"alerts": 1, "changes": 1, "log_lines": 1})
    );
}

/// A model that asks the read-only tools for another tenant's records gets "not found": the
/// tools are scoped to the tenant of the request, whatever ids the model invents.
async fn ai_tools_never_cross_tenants(backend: Backend) {
    let fake = atlasai_fakes::openai::start(Some("sk-test-isolation-01"), "gpt-4o-mini").await;
    let url = format!("{}/v1", fake.base_url);
    let Some(server) = Server::start(
        backend,
        "ai_tools_never_cross_tenants",
        &[
            ("BYOC_PROVIDER", "openai"),
            ("BYOC_API_KEY", "sk-test-isolation-01"),
            ("BYOC_MODEL", "gpt-4o-mini"),
            ("BYOC_ENDPOINT_URL", &url),
        ],
    )
    .await
    else {
        return;
    };
    let a = server.as_tenant("acme");
    let b = server.as_tenant("globex");
    let incident = a.incident("Acme secret outage", "payments-api").await;
    let (status, _) = a
        .logs(
            &format!("?incident_id={incident}&service=payments-api"),
            &[json!({"level": "error", "message": "acme secret token leaked"})],
        )
        .await;
    assert_eq!(status, 201);
    let (_, rb) = a
        .post(
            "/api/runbooks",
            &json!({"title": "Acme secret runbook", "content": "acme secret steps"}),
        )
        .await;
    assert!(rb["id"].is_string());
    a.indexed().await;
    fake.push(atlasai_fakes::Step::Reply(
        atlasai_fakes::FakeReply::tool_calls(vec![
            atlasai_fakes::FakeToolCall::new(
                "c1",
                "get_incident",
                json!({"incident_id": incident}),
            ),
            atlasai_fakes::FakeToolCall::new(
                "c2",
                "search_logs",
                json!({"query": "acme secret token", "incident_id": "all"}),
            ),
            atlasai_fakes::FakeToolCall::new(
                "c3",
                "search_runbooks",
                json!({"query": "acme secret"}),
            ),
            atlasai_fakes::FakeToolCall::new(
                "c4",
                "find_similar_incidents",
                json!({"incident_id": incident}),
            ),
        ]),
    ));
    fake.push(atlasai_fakes::Step::Reply(atlasai_fakes::FakeReply::text(
        "Nothing found.",
    )));
    fake.clear_requests();
    let (status, chat) = b
        .post(
            "/api/ai/chat",
            &json!({"stream": false, "messages": [{"role": "user", "content": "show me acme's incident"}]}),
        )
        .await;
    assert_eq!(status, 200, "{chat}");
    let oks: Vec<bool> = chat["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(oks, [false, true, true, false], "{chat}");
    let sent = fake.requests()[1].json().to_string();
    assert!(sent.contains("not found"), "{sent}");
    assert!(
        !sent.contains("acme secret token leaked") && !sent.contains("Acme secret runbook"),
        "nothing of acme's reached the model in globex's conversation: {sent}"
    );
}

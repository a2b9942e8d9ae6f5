//! The data endpoints through HTTP against the real binary, on SQLite and PostgreSQL:
//! incidents, alerts, changes, log ingest (atomic, line-numbered errors, body limits),
//! runbooks, search, and alert correlation.

use serde_json::{Value, json};

use crate::client::{Backend, Server, both_backends};

both_backends!(
    incidents_alerts_and_changes,
    log_ingest_is_all_or_nothing,
    runbooks_and_search,
    alert_correlation_explains_itself,
);

async fn incidents_alerts_and_changes(backend: Backend) {
    let Some(server) = Server::start(backend, "incidents_alerts_and_changes", &[]).await else {
        return;
    };
    let api = server.as_tenant("acme");

    let (status, created) = api
        .post(
            "/api/incidents",
            &json!({"title": "Checkout failing", "service": "payments-api", "severity": "critical",
                    "description": "5xx on /checkout", "started_at": "2026-11-02T14:00:00+01:00",
                    "external_id": "PD-1234"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["started_at"], "2026-11-02T13:00:00Z",
        "times are UTC RFC 3339"
    );
    assert_eq!(created["status"], "open");
    assert_eq!(created["external_id"], "PD-1234");

    for (body, says) in [
        (
            json!({"service": "x", "severity": "high"}),
            "missing field `title`",
        ),
        (
            json!({"title": "t", "service": "x", "severity": "loud"}),
            "\"loud\" is not a severity; use critical, high, medium, low, info",
        ),
        (
            json!({"title": "t", "service": "x", "severity": "high", "colour": "red"}),
            "unknown field `colour`",
        ),
        (
            json!({"title": "t", "service": "bad service", "severity": "high"}),
            "service \"bad service\" may only contain",
        ),
        (
            json!({"title": "  ", "service": "x", "severity": "high"}),
            "title must not be empty",
        ),
        (
            json!({"title": "t", "service": "x", "severity": "high", "started_at": "yesterday"}),
            "RFC 3339",
        ),
    ] {
        let (status, err) = api.post("/api/incidents", &body).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert!(
            err["error"].as_str().unwrap().contains(says),
            "{body}: {err}"
        );
    }

    for i in 0..3 {
        let (status, alert) = api
            .post(
                &format!("/api/incidents/{id}/alerts"),
                &json!({"title": format!("HighErrorRate {i}"), "service": "payments-api", "severity": "warning",
                        "labels": {"alertname": "HighErrorRate", "pod": format!("api-{i}")}, "fingerprint": "abc"}),
            )
            .await;
        assert_eq!(status, 201, "{alert}");
        assert_eq!(
            alert["severity"], "medium",
            "Alertmanager's warning is medium"
        );
        assert_eq!(alert["incident_id"], id.as_str());
    }
    let (status, change) = api
        .post(
            &format!("/api/incidents/{id}/changes"),
            &json!({"kind": "deploy", "service": "payments-api", "summary": "v2.14.0 rolled out",
                    "details": "bump pool size", "author": "ci", "reference": "abc123", "occurred_at": "2026-11-02T12:55:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{change}");
    let (status, _) = api
        .post(
            &format!("/api/incidents/{id}/changes"),
            &json!({"kind": "teleport", "service": "x", "summary": "s"}),
        )
        .await;
    assert_eq!(status, 400);

    let (status, detail) = api.get(&format!("/api/incidents/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        detail["counts"],
        json!({"alerts": 3, "changes": 1, "log_lines": 0})
    );
    assert!(detail["last_alert_at"].is_string());
    let (_, alerts) = api
        .get(&format!("/api/incidents/{id}/alerts?limit=2"))
        .await;
    assert_eq!(alerts["items"].as_array().unwrap().len(), 2);
    let cursor = alerts["next_cursor"].as_str().unwrap();
    let (_, rest) = api
        .get(&format!(
            "/api/incidents/{id}/alerts?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["items"][0]["title"], "HighErrorRate 2");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, changes) = api.get(&format!("/api/incidents/{id}/changes")).await;
    assert_eq!(changes["items"][0]["summary"], "v2.14.0 rolled out");

    let (status, patched) = api
        .patch(
            &format!("/api/incidents/{id}"),
            &json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert!(patched["resolved_at"].is_string());
    let (status, err) = api
        .patch(&format!("/api/incidents/{id}"), &json!({"status": "done"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("open, acknowledged, resolved, closed"),
        "{err}"
    );

    let other = api.incident("Search slow", "search").await;
    let (_, open) = api.get("/api/incidents?status=open").await;
    let ids: Vec<&str> = open["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [other.as_str()]);
    let (_, by_service) = api.get("/api/incidents?service=payments-api&since=2026-11-02T00:00:00Z&until=2026-11-03T00:00:00Z").await;
    assert_eq!(by_service["items"].as_array().unwrap().len(), 1);
    let (_, page) = api.get("/api/incidents?limit=1").await;
    assert_eq!(page["items"][0]["id"], other.as_str(), "newest start first");
    let (_, page2) = api
        .get(&format!(
            "/api/incidents?limit=1&cursor={}",
            page["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(page2["items"][0]["id"], id.as_str());

    for (path, says) in [
        (
            "/api/incidents?status=done",
            "status: \"done\" is not an incident status",
        ),
        (
            "/api/incidents?since=monday",
            "since: \"monday\" is not an RFC 3339 timestamp",
        ),
        ("/api/incidents?limit=0", "limit: 0 is not from 1 to 500"),
        ("/api/incidents?cursor=nope", "cursor: not a cursor"),
        ("/api/incidents?sevrity=high", "unknown field `sevrity`"),
        ("/api/incidents/42", "incident id \"42\" is not an id"),
    ] {
        let (status, err) = api.get(path).await;
        assert_eq!(status, 400, "{path}: {err}");
        assert!(
            err["error"].as_str().unwrap().contains(says),
            "{path}: {err}"
        );
    }
    let missing = uuid::Uuid::now_v7();
    for path in [
        format!("/api/incidents/{missing}"),
        format!("/api/incidents/{missing}/alerts"),
        format!("/api/incidents/{missing}/changes"),
    ] {
        let (status, err) = api.get(&path).await;
        assert_eq!(status, 404, "{path}: {err}");
        assert_eq!(err["code"], "not_found");
    }
    let (status, _) = api
        .post(
            &format!("/api/incidents/{missing}/alerts"),
            &json!({"title": "t", "service": "s", "severity": "low"}),
        )
        .await;
    assert_eq!(status, 404);
}

fn lines(n: usize, service: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let level = if i % 50 == 0 { "error" } else { "info" };
            json!({"ts": format!("2026-11-02T14:{:02}:{:02}Z", (i / 60) % 60, i % 60), "level": level,
                   "message": format!("GET /api/orders/{i} 200 in {}ms", i % 300), "service": service, "request_id": format!("r-{i}")})
        })
        .collect()
}

async fn log_ingest_is_all_or_nothing(backend: Backend) {
    let Some(server) = Server::start(
        backend,
        "log_ingest_is_all_or_nothing",
        &[("TP_INGEST_MAX_BODY", "2MiB")],
    )
    .await
    else {
        return;
    };
    let api = server.as_tenant("acme");
    let id = api.incident("Orders slow", "orders-api").await;

    let (status, ok) = api
        .logs(
            &format!("?incident_id={id}&service=orders-api"),
            &lines(5000, "orders-api"),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
    assert_eq!(ok["accepted"], 5000);
    let batch = ok["batch"].as_i64().unwrap();

    // Line 3457 is bad: the answer names it, and nothing of the batch is stored.
    let mut bad = lines(4000, "orders-api");
    bad[3456] = json!({"ts": "2026-11-02T14:00:00Z", "level": "error", "message": 42});
    let (status, err) = api.logs(&format!("?incident_id={id}"), &bad).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"], "line 3457: \"message\" must be a string");
    let mut bad_level = lines(10, "orders-api");
    bad_level[9]["level"] = json!("loud");
    let (status, err) = api.logs(&format!("?incident_id={id}"), &bad_level).await;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .starts_with("line 10: \"level\": \"loud\" is not a log level"),
        "{err}"
    );
    let (status, err) = api
        .post_raw(
            "/api/logs?service=orders-api",
            "application/x-ndjson",
            b"{\"message\":\"ok\"}\n\n{not json\n".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .starts_with("line 3: not valid JSON"),
        "{err}"
    );
    let (status, err) = api
        .logs("", &[json!({"message": "no service anywhere"})])
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("missing \"service\""),
        "{err}"
    );
    let missing = uuid::Uuid::now_v7();
    let (status, _) = api
        .logs(&format!("?incident_id={missing}"), &lines(3, "orders-api"))
        .await;
    assert_eq!(status, 404);
    let mut wrong_incident = lines(3, "orders-api");
    wrong_incident[1]["incident_id"] = json!(missing.to_string());
    let (status, err) = api.logs("", &wrong_incident).await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"],
        format!("log line 2: incident_id {missing} does not exist")
    );

    let (_, detail) = api.get(&format!("/api/incidents/{id}")).await;
    assert_eq!(
        detail["counts"]["log_lines"], 5000,
        "no line of a refused batch was stored"
    );
    let (_, status_doc) = api.get("/api/search/status").await;
    assert_eq!(
        status_doc["store_batch"], batch,
        "a refused batch leaves no trace"
    );

    // Bigger than the 1 MiB limit of other endpoints, within TP_INGEST_MAX_BODY.
    let big = lines(9000, "orders-api");
    let size: usize = big.iter().map(|l| l.to_string().len() + 1).sum();
    assert!(size > 1024 * 1024 && size < 2 * 1024 * 1024, "{size}");
    let (status, ok) = api.logs("", &big).await;
    assert_eq!(status, 201, "{ok}");
    let (status, err) = api.logs("", &lines(20000, "orders-api")).await;
    assert_eq!(status, 413, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("TP_INGEST_MAX_BODY"),
        "{err}"
    );
    let (status, _) = api
        .post_raw(
            "/api/incidents",
            "application/json",
            format!("{{\"title\": \"{}\"}}", "x".repeat(1_200_000)).into_bytes(),
        )
        .await;
    assert_eq!(status, 413, "other endpoints keep the 1 MiB limit");

    let (status, page) = api
        .get(&format!("/api/logs?incident_id={id}&level=error&limit=500"))
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 100, "every 50th of 5000 is an error");
    assert_eq!(
        items[0]["attrs"]["request_id"], "r-0",
        "unknown keys are kept as attributes"
    );
    let (_, by_service) = api.get("/api/logs?service=orders-api&since=2026-11-02T14:00:00Z&until=2026-11-02T14:00:10Z&limit=500").await;
    // Lines 0..9 and every 3600th line after them fall in that minute's first ten seconds:
    // 20 of the 5000-line batch and 30 of the 9000-line batch.
    assert_eq!(by_service["items"].as_array().unwrap().len(), 50);
    let (status, err) = api.get("/api/logs").await;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("incident_id or service"),
        "{err}"
    );
    let (status, err) = api
        .post_raw(
            "/api/logs?service=a&limit=3",
            "application/x-ndjson",
            b"{\"message\":\"x\"}".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("limit is a listing parameter"),
        "{err}"
    );
}

async fn runbooks_and_search(backend: Backend) {
    let Some(server) = Server::start(backend, "runbooks_and_search", &[]).await else {
        return;
    };
    let api = server.as_tenant("acme");
    let (status, rb) = api
        .post(
            "/api/runbooks",
            &json!({"title": "Kafka consumer lag", "services": ["billing-consumer"], "tags": ["kafka"],
                    "content": "# Kafka consumer lag\n\n## Check\nRun `kafka-consumer-groups --describe`.\n\n## Mitigate\nScale the consumer deployment; check for a poison message."}),
        )
        .await;
    assert_eq!(status, 201, "{rb}");
    let rb_id = rb["id"].as_str().unwrap();
    let (status, _) = api
        .post("/api/runbooks", &json!({"title": "empty", "content": ""}))
        .await;
    assert_eq!(status, 400);
    let (_, got) = api.get(&format!("/api/runbooks/{rb_id}")).await;
    assert!(got["content"].as_str().unwrap().contains("poison message"));
    let (_, list) = api.get("/api/runbooks?service=billing-consumer").await;
    assert_eq!(list["items"][0]["id"], rb_id);
    assert!(
        list["items"][0].get("content").is_none(),
        "lists omit the markdown"
    );
    let (_, none) = api.get("/api/runbooks?service=orders-api").await;
    assert!(none["items"].as_array().unwrap().is_empty());

    let id = api
        .incident("Billing consumer lag growing", "billing-consumer")
        .await;
    let (status, _) = api
        .logs(
            &format!("?incident_id={id}&service=billing-consumer"),
            &[
                json!({"ts": "2026-11-02T10:00:00Z", "level": "error", "message": "failed to deserialize record at offset 88123: unexpected end of input"}),
                json!({"ts": "2026-11-02T10:00:01Z", "level": "warn", "message": "consumer lag 120000 messages on partition 3"}),
                json!({"ts": "2026-11-02T11:00:00Z", "level": "info", "message": "rebalance finished, end of input reached"}),
            ],
        )
        .await;
    assert_eq!(status, 201);
    api.indexed().await;

    let phrase = api.search("q=%22end%20of%20input%22&kind=log").await;
    assert_eq!(phrase["mode"], "keyword");
    assert_eq!(phrase["results"].as_array().unwrap().len(), 2);
    let errors = api
        .search("q=%22end%20of%20input%22&kind=log&severity=error")
        .await;
    let hit = &errors["results"][0];
    assert_eq!(errors["results"].as_array().unwrap().len(), 1);
    assert_eq!(hit["incident_id"], id.as_str());
    assert!(
        hit["snippet_html"]
            .as_str()
            .unwrap()
            .contains("<mark>end</mark> <mark>of</mark> <mark>input</mark>"),
        "{hit}"
    );
    let early = api
        .search("q=input&kind=log&until=2026-11-02T10:30:00Z")
        .await;
    assert_eq!(early["results"].as_array().unwrap().len(), 1);
    let rb_hits = api.search("q=poison%20message&kind=runbook").await;
    assert_eq!(rb_hits["results"][0]["id"], rb_id);
    assert_eq!(rb_hits["results"][0]["title"], "Kafka consumer lag");
    let inc_hits = api
        .search("q=consumer%20lag&kind=incident&service=billing-consumer")
        .await;
    assert_eq!(inc_hits["results"][0]["id"], id.as_str());
    let all = api.search("q=lag").await;
    let kinds: std::collections::BTreeSet<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["incident", "log", "runbook"].into_iter().collect());

    for (query, says) in [
        (
            "q=x&kind=metric",
            "kind \"metric\" is not one of incident, log, runbook",
        ),
        ("q=x&limit=1000", "limit: 1000 is not from 1 to 100"),
        (
            "q=x&severity=loud",
            "severity \"loud\" is neither an incident severity",
        ),
        (
            "q=x&since=2026-11-03T00:00:00Z&until=2026-11-02T00:00:00Z",
            "since must be before until",
        ),
        (
            "q=x&mode=semantic",
            "mode \"semantic\" is not auto or keyword",
        ),
        ("q=x&tenant=globex", "unknown field `tenant`"),
    ] {
        let (status, err) = api.get(&format!("/api/search?{query}")).await;
        assert_eq!(status, 400, "{query}: {err}");
        assert!(
            err["error"].as_str().unwrap().contains(says),
            "{query}: {err}"
        );
    }
}

async fn alert_correlation_explains_itself(backend: Backend) {
    let Some(server) = Server::start(backend, "alert_correlation_explains_itself", &[]).await
    else {
        return;
    };
    let api = server.as_tenant("acme");
    let alert = |title: &str, service: &str| json!({"title": title, "service": service, "severity": "critical", "source": "prometheus"});

    let (status, first) = api
        .post(
            "/api/alerts",
            &alert("HighErrorRate on payments-api checkout", "payments-api"),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["decision"], "created");
    assert_eq!(first["correlation"]["method"], "none");
    assert!(
        first["correlation"]["reason"]
            .as_str()
            .unwrap()
            .contains("no open incident of service payments-api"),
        "{first}"
    );
    let incident = first["incident"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        first["incident"]["title"],
        "HighErrorRate on payments-api checkout"
    );

    let (status, second) = api
        .post(
            "/api/alerts",
            &alert("Checkout HighErrorRate payments-api", "payments-api"),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["decision"], "attached");
    let c = &second["correlation"];
    assert_eq!(c["method"], "keyword");
    assert_eq!(c["matched_incident_id"], incident.as_str());
    assert!(
        c["score"].as_f64().unwrap() >= c["threshold"].as_f64().unwrap(),
        "{c}"
    );
    assert_eq!(c["threshold"], 0.45);
    assert_eq!(c["window_seconds"], 7200);
    assert_eq!(
        second["alert"]["correlation"], *c,
        "the explanation is stored with the alert"
    );

    let (status, unrelated) = api
        .post(
            "/api/alerts",
            &alert("DiskFull on node-7 /var/lib/docker", "payments-api"),
        )
        .await;
    assert_eq!(status, 201, "{unrelated}");
    assert_eq!(unrelated["correlation"]["method"], "keyword");
    assert!(unrelated["correlation"]["score"].as_f64().unwrap() < 0.45);
    assert!(
        unrelated["correlation"]["reason"]
            .as_str()
            .unwrap()
            .contains("below the threshold")
    );
    let (status, elsewhere) = api
        .post(
            "/api/alerts",
            &alert("HighErrorRate on payments-api checkout", "search"),
        )
        .await;
    assert_eq!(status, 201, "same words, other service: {elsewhere}");

    let mut fp = alert("anything at all", "payments-api");
    fp["fingerprint"] = json!("fp-77");
    let (status, _) = api
        .post(&format!("/api/incidents/{incident}/alerts"), &fp)
        .await;
    assert_eq!(status, 201);
    fp["title"] = json!("completely different words");
    let (status, by_fp) = api.post("/api/alerts", &fp).await;
    assert_eq!(status, 200, "{by_fp}");
    assert_eq!(by_fp["correlation"]["method"], "fingerprint");
    assert_eq!(by_fp["incident"]["id"], incident.as_str());

    let (_, _) = api
        .patch(
            &format!("/api/incidents/{incident}"),
            &json!({"status": "resolved"}),
        )
        .await;
    let (status, after) = api
        .post(
            "/api/alerts",
            &alert("HighErrorRate on payments-api checkout", "payments-api"),
        )
        .await;
    assert_eq!(
        status, 201,
        "resolved incidents take no new alerts: {after}"
    );
    assert_ne!(after["incident"]["id"], incident.as_str());

    let mut old = alert("Checkout HighErrorRate payments-api", "payments-api");
    old["fired_at"] = json!("2020-01-01T00:00:00Z");
    let (status, outside) = api.post("/api/alerts", &old).await;
    assert_eq!(status, 201, "outside the window: {outside}");
    assert_eq!(outside["correlation"]["method"], "none");
}

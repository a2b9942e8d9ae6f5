//! Search quality and the index's life cycle, identical on SQLite and PostgreSQL.

use atlasai_core::TenantId;
use atlasai_fakes::{Step, openai};
use atlasai_tenant_plane::search::index::{DocKind, Filters, Opened};
use atlasai_tenant_plane::search::{
    self, Mode, ModeRequest, SearchRequest, SearchResults, embedder, relevant_logs,
    search_runbooks, similar_incidents,
};
use atlasai_tenant_plane::store::runbooks::NewRunbook;
use atlasai_tenant_plane::store::{IncidentStatus, LogLevel, Severity, Timestamp};

use crate::store_cases::{alert, incident, line};
use crate::{TestEnv, tenant};

const T0: i64 = 1_800_000_000_000_000;
const MIN: i64 = 60_000_000;

struct Seeded {
    orders: String,
    cache: String,
    runbook: String,
}

/// A small, realistic data set in one tenant.
async fn seed(env: &TestEnv, t: &TenantId) -> Seeded {
    let s = env.store();
    let mut orders = incident(
        "Postgres connection pool exhausted on orders-api",
        "orders-api",
        Severity::High,
        Some(Timestamp(T0)),
    );
    orders.description = "Checkout requests time out; the orders-api pool of 50 connections is exhausted since the 14:02 deploy.".into();
    let orders = s.create_incident(t, orders).await.unwrap();
    let mut cache = incident(
        "Redis eviction storm",
        "session-cache",
        Severity::Medium,
        Some(Timestamp(T0 + 60 * MIN)),
    );
    cache.description = "maxmemory reached; keys evicted at 40k/s, login sessions dropped.".into();
    let cache = s.create_incident(t, cache).await.unwrap();
    s.ingest_logs(
        t,
        &[
            line(
                "orders-api",
                Some(&orders.id),
                T0 + MIN,
                LogLevel::Error,
                "connection refused by postgres-primary:5432",
            ),
            line(
                "orders-api",
                Some(&orders.id),
                T0 + 2 * MIN,
                LogLevel::Error,
                "pool exhausted: 50 of 50 connections in use, 212 waiting",
            ),
            line(
                "orders-api",
                Some(&orders.id),
                T0 + 3 * MIN,
                LogLevel::Warn,
                "refused connection retry scheduled in 500ms",
            ),
            line(
                "orders-api",
                Some(&orders.id),
                T0 + 4 * MIN,
                LogLevel::Info,
                "GET /orders/123 200 in 45ms",
            ),
            line(
                "session-cache",
                Some(&cache.id),
                T0 + 61 * MIN,
                LogLevel::Warn,
                "OOM command not allowed when used memory > maxmemory",
            ),
            line(
                "session-cache",
                Some(&cache.id),
                T0 + 62 * MIN,
                LogLevel::Error,
                "connection refused by redis-0:6379",
            ),
        ],
    )
    .await
    .unwrap();
    let runbook = s
        .create_runbook(
            t,
            NewRunbook {
                title: "Postgres connection pool exhaustion".into(),
                content: "# Postgres connection pool exhaustion\n\n## Symptoms\nRequests time out waiting for a connection.\n\n## Mitigation\nRoll back the last deploy, then raise `max_pool_size` only if the database has headroom.\n".into(),
                services: vec!["orders-api".into()],
                tags: vec!["postgres".into()],
            },
        )
        .await
        .unwrap();
    Seeded {
        orders: orders.id,
        cache: cache.id,
        runbook: runbook.id,
    }
}

async fn find(env: &TestEnv, t: &TenantId, q: &str, filters: Filters) -> SearchResults {
    search::search(
        &env.state,
        &env.data,
        t,
        &SearchRequest {
            q: q.into(),
            filters,
            limit: 20,
            mode: ModeRequest::Auto,
        },
    )
    .await
    .unwrap()
}

fn ids(r: &SearchResults) -> Vec<String> {
    r.results.iter().map(|h| h.id.clone()).collect()
}

fn logs() -> Filters {
    Filters {
        kind: Some(DocKind::Log),
        ..Filters::default()
    }
}

pub async fn phrase_queries_filters_and_highlights(env: TestEnv) {
    let t = tenant("acme");
    let seeded = seed(&env, &t).await;
    env.index().await;

    let phrase = find(&env, &t, "\"connection refused\"", logs()).await;
    assert_eq!(phrase.mode, Mode::Keyword);
    assert_eq!(
        phrase.mode_reason.as_deref(),
        Some("EMBEDDING_PROVIDER is fallback (keyword search only)")
    );
    let messages: Vec<&str> = phrase.results.iter().map(|r| r.snippet.as_str()).collect();
    assert_eq!(phrase.results.len(), 2, "{messages:?}");
    assert!(
        messages.iter().all(|m| m.contains("connection refused")),
        "the phrase, in order: {messages:?}"
    );

    let words = find(&env, &t, "connection refused", logs()).await;
    let snippets: Vec<&str> = words.results.iter().map(|r| r.snippet.as_str()).collect();
    assert_eq!(
        words.results.len(),
        4,
        "without quotes any word matches: {snippets:?}"
    );
    assert!(
        snippets[..3].iter().all(|m| m.contains("refused")),
        "lines with both words rank first: {snippets:?}"
    );
    assert!(snippets[3].starts_with("pool exhausted"), "{snippets:?}");

    let filtered = find(
        &env,
        &t,
        "\"connection refused\"",
        Filters {
            kind: Some(DocKind::Log),
            services: vec!["orders-api".into()],
            severities: vec!["error".into()],
            ..Filters::default()
        },
    )
    .await;
    assert_eq!(filtered.results.len(), 1);
    let hit = &filtered.results[0];
    assert_eq!(hit.snippet, "connection refused by postgres-primary:5432");
    assert_eq!(hit.service.as_deref(), Some("orders-api"));
    assert_eq!(hit.severity.as_deref(), Some("error"));
    assert_eq!(hit.incident_id.as_deref(), Some(seeded.orders.as_str()));
    let marked: Vec<&str> = hit
        .highlights
        .iter()
        .map(|[a, b]| &hit.snippet[*a..*b])
        .collect();
    assert_eq!(marked, ["connection", "refused"]);
    assert_eq!(
        hit.snippet_html,
        "<mark>connection</mark> <mark>refused</mark> by postgres-primary:5432"
    );

    let window = find(
        &env,
        &t,
        "connection",
        Filters {
            kind: Some(DocKind::Log),
            since: Some(Timestamp(T0 + 60 * MIN)),
            until: Some(Timestamp(T0 + 120 * MIN)),
            ..Filters::default()
        },
    )
    .await;
    assert_eq!(window.results.len(), 1);
    assert!(window.results[0].snippet.contains("redis-0"));

    let incidents = find(
        &env,
        &t,
        "exhausting pool",
        Filters {
            kind: Some(DocKind::Incident),
            ..Filters::default()
        },
    )
    .await;
    assert_eq!(
        ids(&incidents),
        std::slice::from_ref(&seeded.orders),
        "stemming: exhausting matches exhausted"
    );
    assert_eq!(
        incidents.results[0].title.as_deref(),
        Some("Postgres connection pool exhausted on orders-api")
    );
    assert_eq!(incidents.results[0].status.as_deref(), Some("open"));

    let everything = find(&env, &t, "postgres pool", Filters::default()).await;
    let kinds: Vec<DocKind> = everything.results.iter().map(|r| r.kind).collect();
    assert!(
        kinds.contains(&DocKind::Incident)
            && kinds.contains(&DocKind::Runbook)
            && kinds.contains(&DocKind::Log),
        "{kinds:?}"
    );
    let runbook_hit = everything
        .results
        .iter()
        .find(|r| r.kind == DocKind::Runbook)
        .unwrap();
    assert_eq!(runbook_hit.id, seeded.runbook);
    assert!(
        runbook_hit.snippet_html.contains("<mark>"),
        "{}",
        runbook_hit.snippet_html
    );

    let required = find(&env, &t, "+redis connection", logs()).await;
    assert_eq!(required.results.len(), 1, "+ makes a word required");
    let excluded = find(&env, &t, "connection -redis", logs()).await;
    assert!(
        excluded
            .results
            .iter()
            .all(|r| !r.snippet.contains("redis"))
    );

    let of_incident = find(
        &env,
        &t,
        "",
        Filters {
            kind: Some(DocKind::Log),
            incident_id: Some(seeded.cache.clone()),
            ..Filters::default()
        },
    )
    .await;
    assert_eq!(of_incident.results.len(), 2, "an empty query lists");
    assert!(
        of_incident.results[0].ts > of_incident.results[1].ts,
        "newest first"
    );

    let nonsense = find(&env, &t, "title:(unclosed \"quote", Filters::default()).await;
    assert_eq!(
        nonsense.mode,
        Mode::Keyword,
        "bad syntax is searched, not refused"
    );
}

pub async fn search_never_crosses_tenants(env: TestEnv) {
    let a = tenant("acme");
    let b = tenant("globex");
    let sa = seed(&env, &a).await;
    let sb = seed(&env, &b).await;
    env.index().await;
    let a_ids = [sa.orders.clone(), sa.cache.clone(), sa.runbook.clone()];
    let b_ids = [sb.orders.clone(), sb.cache.clone(), sb.runbook.clone()];
    let b_orders = format!("id:{}", sb.orders);
    for (q, finds_something) in [
        ("connection refused", true),
        ("postgres", true),
        ("", true),
        ("*", true),
        // Field syntax cannot reach another tenant: these find nothing at all.
        ("tenant:globex", false),
        (b_orders.as_str(), false),
    ] {
        let found = find(&env, &a, q, Filters::default()).await;
        assert_eq!(!found.results.is_empty(), finds_something, "{q:?}");
        for r in &found.results {
            assert!(!b_ids.contains(&r.id), "{q:?} returned globex's {}", r.id);
            if r.kind == DocKind::Log {
                assert_eq!(
                    r.incident_id
                        .as_deref()
                        .map(|i| a_ids.contains(&i.to_owned())),
                    Some(true)
                );
            }
        }
    }
    let similar = similar_incidents(&env.state, &env.data, &a, &sa.orders, 10)
        .await
        .unwrap();
    assert!(
        similar.results.iter().all(|r| a_ids.contains(&r.id)),
        "{:?}",
        ids(&similar)
    );
    assert!(
        similar_incidents(&env.state, &env.data, &b, &sa.orders, 10)
            .await
            .is_err(),
        "b cannot name a's incident"
    );
    let logs = relevant_logs(
        &env.state,
        &env.data,
        &b,
        &sa.orders,
        "connection refused",
        10,
        10,
    )
    .await
    .unwrap();
    assert!(
        logs.patterns.is_empty() && logs.matches.is_empty(),
        "b sees nothing of a's incident logs"
    );
    let runbooks = search_runbooks(&env.state, &env.data, &b, "postgres pool", None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&runbooks), std::slice::from_ref(&sb.runbook));
}

pub async fn index_rebuilds_from_the_store_when_deleted_or_corrupt(mut env: TestEnv) {
    let t = tenant("acme");
    seed(&env, &t).await;
    env.index().await;
    let before = ids(&find(&env, &t, "connection", Filters::default()).await);
    assert_eq!(before.len(), 6, "4 log lines, an incident and a runbook");

    let dir = env.data.index_dir.clone();
    env.reopen(&[]).await;
    assert_eq!(env.data.index_opened, Opened::Existing);

    std::fs::remove_dir_all(&dir).unwrap();
    env.reopen(&[]).await;
    assert_eq!(env.data.index_opened, Opened::Created);
    assert!(
        find(&env, &t, "connection", Filters::default())
            .await
            .results
            .is_empty(),
        "nothing until rebuilt"
    );
    env.index().await;
    let mut after = ids(&find(&env, &t, "connection", Filters::default()).await);
    let mut expected = before.clone();
    after.sort();
    expected.sort();
    assert_eq!(after, expected, "rebuilt from the store");

    std::fs::write(dir.join("meta.json"), b"{ not json").unwrap();
    env.reopen(&[]).await;
    assert!(
        matches!(env.data.index_opened, Opened::Rebuilt(_)),
        "{:?}",
        env.data.index_opened
    );
    env.index().await;
    let mut again = ids(&find(&env, &t, "connection", Filters::default()).await);
    again.sort();
    assert_eq!(again, expected);
}

pub async fn index_catches_up_with_updates_and_restarts(mut env: TestEnv) {
    let t = tenant("acme");
    let seeded = seed(&env, &t).await;
    env.index().await;
    let s = env.store().clone();
    s.update_incident_status(&t, &seeded.orders, IncidentStatus::Resolved)
        .await
        .unwrap();
    s.add_alert(
        &t,
        &seeded.orders,
        alert("PgBouncerWaitingClients", "orders-api", None, None),
        None,
    )
    .await
    .unwrap();
    env.index().await;
    let by_title = find(
        &env,
        &t,
        "\"connection pool exhausted\"",
        Filters {
            kind: Some(DocKind::Incident),
            ..Filters::default()
        },
    )
    .await;
    assert_eq!(by_title.results.len(), 1, "an update replaces the document");
    assert_eq!(by_title.results[0].status.as_deref(), Some("resolved"));
    let by_alert = find(&env, &t, "PgBouncerWaitingClients", Filters::default()).await;
    assert_eq!(
        ids(&by_alert),
        std::slice::from_ref(&seeded.orders),
        "alert titles are part of the incident document"
    );
    assert_eq!(
        env.data.index.watermark("acme"),
        s.feed_head(&t).await.unwrap().seq
    );

    env.reopen(&[]).await;
    assert_eq!(env.data.index_opened, Opened::Existing);
    assert_eq!(
        env.data.index.watermark("acme"),
        env.store().feed_head(&t).await.unwrap().seq,
        "watermarks survive restarts"
    );
    env.index().await;
    let lines = find(&env, &t, "connection", logs()).await;
    assert_eq!(lines.results.len(), 4, "no line is indexed twice");
}

pub async fn hybrid_search_fuses_vectors_and_switches_models(env: TestEnv) {
    // A fake with no fixed model serves whichever model is asked for.
    let fake = openai::start(None, "").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let t = tenant("acme");
    let mut env = reconfigured(
        env,
        &[
            ("EMBEDDING_PROVIDER", "openai"),
            ("EMBEDDING_ENDPOINT_URL", &endpoint),
            ("EMBEDDING_MODEL", "m1"),
            ("TP_PROVIDER_MAX_RETRIES", "0"),
        ],
    )
    .await;
    let seeded = seed(&env, &t).await;
    env.index().await;
    let before = find(&env, &t, "postgres", Filters::default()).await;
    assert_eq!(before.mode, Mode::Keyword);
    assert!(
        before.mode_reason.as_deref().unwrap().contains("backfill"),
        "{:?}",
        before.mode_reason
    );

    embedder::run_once(&env.data, &env.state).await.unwrap();
    env.index().await;
    let calls = fake.requests().len();
    let sent: usize = fake.requests().iter().map(inputs).sum();
    // 2 incidents + 3 runbook sections + 6 distinct log shapes, in one batch.
    assert_eq!((calls, sent), (1, 11));
    assert!(env.store().vector_count(&t, "openai:m1").await.unwrap() == 11);

    // The fake's vectors are a hash of the text: a query equal to a chunk's text is that
    // chunk's nearest neighbour.
    let chunk = "[orders-api] error: connection refused by postgres-primary:5432";
    let hybrid = find(&env, &t, chunk, logs()).await;
    assert_eq!(hybrid.mode, Mode::Hybrid, "{:?}", hybrid.mode_reason);
    let literal = find(&env, &t, "\"connection refused\"", logs()).await;
    assert_eq!(
        literal.mode,
        Mode::Keyword,
        "quotes ask for literal matches"
    );
    assert!(
        literal
            .mode_reason
            .as_deref()
            .unwrap()
            .contains("exact-match"),
        "{:?}",
        literal.mode_reason
    );
    let top = &hybrid.results[0];
    assert_eq!(top.snippet, "connection refused by postgres-primary:5432");
    assert_eq!(top.matched_by, ["keyword", "vector"]);
    let inc_chunk = "Redis eviction storm\nservice: session-cache severity: medium\nmaxmemory reached; keys evicted at 40k/s, login sessions dropped.";
    let by_vector = find(
        &env,
        &t,
        inc_chunk,
        Filters {
            kind: Some(DocKind::Incident),
            ..Filters::default()
        },
    )
    .await;
    assert_eq!(by_vector.results[0].id, seeded.cache);
    assert!(
        by_vector.results[0]
            .matched_by
            .contains(&"vector".to_owned())
    );

    // New data is embedded incrementally: only the new runbook's section.
    env.store()
        .create_runbook(
            &t,
            NewRunbook {
                title: "Redis memory".into(),
                content: "Raise maxmemory.".into(),
                services: vec![],
                tags: vec![],
            },
        )
        .await
        .unwrap();
    embedder::run_once(&env.data, &env.state).await.unwrap();
    assert_eq!(inputs(&fake.last_request().unwrap()), 1);

    // A new model re-embeds everything; search stays keyword-only meanwhile, then the old
    // model's vectors are dropped.
    env.reopen(&[("EMBEDDING_MODEL", "m2")]).await;
    env.index().await;
    let during = find(&env, &t, "postgres", Filters::default()).await;
    assert_eq!(during.mode, Mode::Keyword);
    assert!(
        during.mode_reason.as_deref().unwrap().contains("openai:m2"),
        "{:?}",
        during.mode_reason
    );
    embedder::run_once(&env.data, &env.state).await.unwrap();
    env.index().await;
    assert_eq!(env.store().vector_count(&t, "openai:m2").await.unwrap(), 12);
    assert_eq!(
        env.store().vector_count(&t, "openai:m1").await.unwrap(),
        0,
        "no mixing of vector spaces"
    );
    let after = find(&env, &t, chunk, logs()).await;
    assert_eq!(after.mode, Mode::Hybrid);
    assert_eq!(fake.last_request().unwrap().json()["model"], "m2");
}

pub async fn provider_down_search_stays_keyword(env: TestEnv) {
    let fake = openai::start(None, "m1").await;
    let endpoint = format!("{}/v1", fake.base_url);
    let t = tenant("acme");
    let env = reconfigured(
        env,
        &[
            ("EMBEDDING_PROVIDER", "openai"),
            ("EMBEDDING_ENDPOINT_URL", &endpoint),
            ("EMBEDDING_MODEL", "m1"),
            ("TP_PROVIDER_MAX_RETRIES", "0"),
            ("TP_SEARCH_EMBEDDING_TIMEOUT", "300ms"),
        ],
    )
    .await;
    seed(&env, &t).await;
    env.index().await;
    embedder::run_once(&env.data, &env.state).await.unwrap();
    env.index().await;
    assert_eq!(
        find(&env, &t, "connection", logs()).await.mode,
        Mode::Hybrid
    );

    // With retries off, one failure is one failed search.
    fake.push(Step::Fail {
        status: 503,
        retry_after: None,
    });
    let down = find(&env, &t, "connection", logs()).await;
    assert_eq!(down.mode, Mode::Keyword);
    assert!(
        down.mode_reason
            .as_deref()
            .unwrap()
            .contains("embedding provider unavailable"),
        "{:?}",
        down.mode_reason
    );
    assert_eq!(down.results.len(), 4, "keyword results are unaffected");
    let calls = fake.requests().len();
    let again = find(&env, &t, "connection", logs()).await;
    assert!(
        again.mode_reason.as_deref().unwrap().contains("failed"),
        "{:?}",
        again.mode_reason
    );
    assert_eq!(
        fake.requests().len(),
        calls,
        "a recently failed provider is not called again at once"
    );

    // A provider that hangs costs a search at most TP_SEARCH_EMBEDDING_TIMEOUT (another
    // tenant, so the first tenant's cool-down does not apply).
    let g = tenant("globex");
    seed(&env, &g).await;
    env.index().await;
    assert_eq!(fake.pending_steps(), 0);
    embedder::run_once(&env.data, &env.state).await.unwrap();
    env.index().await;
    fake.push(Step::Stall(std::time::Duration::from_secs(5)));
    let started = std::time::Instant::now();
    let slow = find(&env, &g, "connection", logs()).await;
    assert_eq!(slow.mode, Mode::Keyword);
    assert!(
        slow.mode_reason
            .as_deref()
            .unwrap()
            .contains("did not answer within 300ms"),
        "{:?}",
        slow.mode_reason
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "the search did not wait for the provider"
    );
    assert_eq!(slow.results.len(), 4);
}

/// Reopens the environment with embedding settings (the store and index are kept).
async fn reconfigured(mut env: TestEnv, vars: &[(&str, &str)]) -> TestEnv {
    env.reopen(vars).await;
    env
}

fn inputs(r: &atlasai_fakes::Recorded) -> usize {
    match &r.json()["input"] {
        serde_json::Value::Array(a) => a.len(),
        _ => 1,
    }
}

//! The store's behaviour, identical on SQLite and PostgreSQL.

use std::time::Duration;

use atlasai_tenant_plane::ingest::template_id;
use atlasai_tenant_plane::store::incidents::{IncidentFilter, NewAlert, NewChange, NewIncident};
use atlasai_tenant_plane::store::logs::{LogFilter, LogScope, NewLogLine};
use atlasai_tenant_plane::store::runbooks::NewRunbook;
use atlasai_tenant_plane::store::vectors::VectorRow;
use atlasai_tenant_plane::store::{ChangeKind, IncidentStatus, LogLevel, Severity, Timestamp};
use serde_json::json;

use crate::{TestEnv, tenant};

pub fn incident(
    title: &str,
    service: &str,
    severity: Severity,
    started: Option<Timestamp>,
) -> NewIncident {
    NewIncident {
        external_id: None,
        title: title.into(),
        description: format!("{title} (description)"),
        service: service.into(),
        severity,
        status: IncidentStatus::Open,
        started_at: started,
    }
}

pub fn alert(
    title: &str,
    service: &str,
    fingerprint: Option<&str>,
    fired: Option<Timestamp>,
) -> NewAlert {
    NewAlert {
        title: title.into(),
        description: String::new(),
        service: service.into(),
        severity: Severity::High,
        source: Some("prometheus".into()),
        fingerprint: fingerprint.map(str::to_owned),
        labels: json!({"alertname": title}).as_object().cloned().unwrap(),
        fired_at: fired,
    }
}

pub fn line(
    service: &str,
    incident: Option<&str>,
    ts: i64,
    level: LogLevel,
    message: &str,
) -> NewLogLine {
    NewLogLine {
        incident_id: incident.map(str::to_owned),
        service: service.into(),
        ts: Timestamp(ts),
        level,
        message: message.into(),
        attrs: Some(json!({"pod": "api-0"}).to_string()),
        template: template_id(message),
    }
}

const HOUR: i64 = 3_600_000_000;

pub async fn incidents_lifecycle(env: TestEnv) {
    let s = env.store();
    let t = tenant("acme");
    let created = s
        .create_incident(
            &t,
            incident("Checkout errors", "payments-api", Severity::High, None),
        )
        .await
        .unwrap();
    assert_eq!(created.id.len(), 36);
    assert_eq!(
        uuid::Uuid::parse_str(&created.id)
            .unwrap()
            .get_version_num(),
        7
    );
    assert_eq!(created.status, IncidentStatus::Open);
    assert_eq!(created.resolved_at, None);
    let got = s.get_incident(&t, &created.id).await.unwrap().unwrap();
    assert_eq!(got, created, "what is read back is what was written");

    let resolved = s
        .update_incident_status(&t, &created.id, IncidentStatus::Resolved)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    let resolved_at = resolved.resolved_at.expect("resolving stamps resolved_at");
    assert!(resolved.updated_at >= created.updated_at);
    let closed = s
        .update_incident_status(&t, &created.id, IncidentStatus::Closed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        closed.resolved_at,
        Some(resolved_at),
        "closing keeps the first resolution time"
    );
    let reopened = s
        .update_incident_status(&t, &created.id, IncidentStatus::Open)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reopened.resolved_at, None, "reopening clears it");
    assert!(
        s.update_incident_status(&t, &uuid::Uuid::now_v7().to_string(), IncidentStatus::Open)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn incident_listing_filters_and_pages(env: TestEnv) {
    let s = env.store();
    let t = tenant("acme");
    let base = 1_800_000_000_000_000i64;
    let mut ids = Vec::new();
    for i in 0..25i64 {
        let service = if i % 2 == 0 { "payments-api" } else { "search" };
        let severity = if i % 5 == 0 {
            Severity::Critical
        } else {
            Severity::Medium
        };
        let inc = s
            .create_incident(
                &t,
                incident(
                    &format!("incident {i}"),
                    service,
                    severity,
                    Some(Timestamp(base + i * HOUR)),
                ),
            )
            .await
            .unwrap();
        ids.push(inc.id);
    }
    s.update_incident_status(&t, &ids[3], IncidentStatus::Resolved)
        .await
        .unwrap();

    // Pages of 10, newest first, cover everything exactly once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_incidents(
                &t,
                &IncidentFilter {
                    limit: 10,
                    cursor: cursor.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|i| i.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let t2 = &t;
    let only = |f: IncidentFilter| async move { s.list_incidents(t2, &f).await.unwrap().items };
    let payments = only(IncidentFilter {
        service: Some("payments-api".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(payments.len(), 13);
    assert!(payments.iter().all(|i| i.service == "payments-api"));
    let critical = only(IncidentFilter {
        severity: Some(Severity::Critical),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(critical.len(), 5);
    let resolved = only(IncidentFilter {
        status: Some(IncidentStatus::Resolved),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].id, ids[3]);
    let window = only(IncidentFilter {
        since: Some(Timestamp(base + 5 * HOUR)),
        until: Some(Timestamp(base + 10 * HOUR)),
        limit: 100,
        ..Default::default()
    })
    .await;
    let titles: Vec<&str> = window.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "incident 9",
            "incident 8",
            "incident 7",
            "incident 6",
            "incident 5"
        ],
        "since is inclusive, until exclusive"
    );
}

pub async fn alerts_and_changes_attach_and_count(env: TestEnv) {
    let s = env.store();
    let t = tenant("acme");
    let inc = s
        .create_incident(
            &t,
            incident("DB failover", "orders-db", Severity::Critical, None),
        )
        .await
        .unwrap();
    let now = Timestamp::now();
    for i in 0..7 {
        s.add_alert(
            &t,
            &inc.id,
            alert(
                &format!("ReplicationLag {i}"),
                "orders-db",
                Some("fp-1"),
                Some(Timestamp(now.0 + i)),
            ),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    }
    let change = s
        .add_change(
            &t,
            &inc.id,
            NewChange {
                kind: ChangeKind::Config,
                service: "orders-db".into(),
                summary: "max_connections 200 -> 50".into(),
                details: "- max_connections = 200\n+ max_connections = 50".into(),
                author: Some("dba@example.com".into()),
                reference: Some("CHG-1234".into()),
                occurred_at: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.kind, ChangeKind::Config);
    s.ingest_logs(
        &t,
        &[line(
            "orders-db",
            Some(&inc.id),
            now.0,
            LogLevel::Error,
            "too many connections",
        )],
    )
    .await
    .unwrap();

    let detail = s.incident_detail(&t, &inc.id).await.unwrap().unwrap();
    assert_eq!(
        (
            detail.counts.alerts,
            detail.counts.changes,
            detail.counts.log_lines
        ),
        (7, 1, 1)
    );
    assert_eq!(detail.incident.last_alert_at, Some(Timestamp(now.0 + 6)));

    let first = s.list_alerts(&t, &inc.id, 4, None).await.unwrap();
    assert_eq!(first.items.len(), 4);
    let rest = s
        .list_alerts(&t, &inc.id, 4, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 3);
    assert!(rest.next_cursor.is_none());
    assert_eq!(rest.items[2].title, "ReplicationLag 6", "oldest first");
    assert_eq!(rest.items[2].labels["alertname"], "ReplicationLag 6");
    let changes = s.list_changes(&t, &inc.id, 10, None).await.unwrap();
    assert_eq!(changes.items, vec![change]);

    let fp = s
        .open_incident_with_fingerprint(&t, "fp-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fp.id, inc.id);
    s.update_incident_status(&t, &inc.id, IncidentStatus::Resolved)
        .await
        .unwrap();
    assert!(
        s.open_incident_with_fingerprint(&t, "fp-1")
            .await
            .unwrap()
            .is_none(),
        "only open incidents"
    );

    let missing = uuid::Uuid::now_v7().to_string();
    assert!(
        s.add_alert(&t, &missing, alert("x", "y", None, None), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.add_change(
            &t,
            &missing,
            NewChange {
                kind: ChangeKind::Deploy,
                service: "y".into(),
                summary: "s".into(),
                details: String::new(),
                author: None,
                reference: None,
                occurred_at: None,
            }
        )
        .await
        .unwrap()
        .is_none()
    );

    let titles = s
        .recent_alert_titles(&t, std::slice::from_ref(&inc.id), 3)
        .await
        .unwrap();
    let titles: Vec<&str> = titles.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(titles.len(), 3);
    assert!(titles.contains(&"ReplicationLag 6") && titles.contains(&"ReplicationLag 4"));
}

pub async fn correlation_candidates_respect_service_status_and_window(env: TestEnv) {
    let s = env.store();
    let t = tenant("acme");
    let now = Timestamp::now();
    let recent = s
        .create_incident(
            &t,
            incident(
                "recent",
                "api",
                Severity::High,
                Some(Timestamp(now.0 - HOUR)),
            ),
        )
        .await
        .unwrap();
    let old = s
        .create_incident(
            &t,
            incident(
                "old",
                "api",
                Severity::High,
                Some(Timestamp(now.0 - 10 * HOUR)),
            ),
        )
        .await
        .unwrap();
    // The old incident was created long ago but alerted recently: still active.
    let revived = s
        .create_incident(
            &t,
            incident(
                "revived",
                "api",
                Severity::High,
                Some(Timestamp(now.0 - 20 * HOUR)),
            ),
        )
        .await
        .unwrap();
    s.add_alert(
        &t,
        &revived.id,
        alert(
            "still firing",
            "api",
            None,
            Some(Timestamp(now.0 - HOUR / 2)),
        ),
        None,
    )
    .await
    .unwrap();
    let resolved = s
        .create_incident(&t, incident("resolved", "api", Severity::High, Some(now)))
        .await
        .unwrap();
    s.update_incident_status(&t, &resolved.id, IncidentStatus::Resolved)
        .await
        .unwrap();
    let acked = s
        .create_incident(&t, incident("acked", "api", Severity::High, Some(now)))
        .await
        .unwrap();
    s.update_incident_status(&t, &acked.id, IncidentStatus::Acknowledged)
        .await
        .unwrap();
    s.create_incident(
        &t,
        incident("other service", "web", Severity::High, Some(now)),
    )
    .await
    .unwrap();

    let found = s
        .correlation_candidates(
            &t,
            "api",
            Timestamp(now.0 - 2 * HOUR),
            Timestamp(now.0 + 2 * HOUR),
            20,
        )
        .await
        .unwrap();
    let titles: Vec<&str> = found.iter().map(|i| i.title.as_str()).collect();
    // Active means started, created or alerted within the window (`old` started long ago but
    // was recorded just now); most recently active first; resolved incidents and other
    // services never qualify.
    assert_eq!(titles, ["acked", "revived", "recent", "old"]);
    assert_eq!(found[2].id, recent.id);
    assert_eq!(found[3].id, old.id);
    let later = s
        .correlation_candidates(
            &t,
            "api",
            Timestamp(now.0 + HOUR),
            Timestamp(now.0 + 3 * HOUR),
            20,
        )
        .await
        .unwrap();
    assert!(later.is_empty(), "nothing was active in a later window");
    let earlier = s
        .correlation_candidates(
            &t,
            "api",
            Timestamp(now.0 - 30 * HOUR),
            Timestamp(now.0 - 15 * HOUR),
            20,
        )
        .await
        .unwrap();
    assert!(
        earlier.is_empty(),
        "revived started 20h ago but its activity is recent: {earlier:?}"
    );
}

pub async fn log_ingest_is_one_batch_and_lists_by_scope(env: TestEnv) {
    let s = env.store();
    let t = tenant("acme");
    let inc = s
        .create_incident(&t, incident("latency", "api", Severity::High, None))
        .await
        .unwrap();
    let base = 1_800_000_000_000_000i64;
    let lines: Vec<NewLogLine> = (0..5000)
        .map(|i| {
            let level = if i % 10 == 0 {
                LogLevel::Error
            } else {
                LogLevel::Info
            };
            line(
                "api",
                Some(&inc.id),
                base + i * 1000,
                level,
                &format!("request {i} took {}ms", i % 700),
            )
        })
        .collect();
    let head_before = s.feed_head(&t).await.unwrap().seq;
    let summary = s.ingest_logs(&t, &lines).await.unwrap();
    assert_eq!(summary.accepted, 5000);
    assert_eq!(
        summary.seq,
        head_before + 1,
        "one batch number for the whole request"
    );
    assert_eq!(s.feed_head(&t).await.unwrap().seq, summary.seq);
    assert_eq!(
        s.count_log_lines_between(&t, head_before, summary.seq)
            .await
            .unwrap(),
        5000
    );

    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_logs(
                &t,
                &LogFilter {
                    incident_id: Some(inc.id.clone()),
                    limit: 500,
                    cursor: cursor.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(all.len(), 5000);
    assert!(all.windows(2).all(|w| w[0].ts <= w[1].ts), "oldest first");
    assert_eq!(all[0].message, "request 0 took 0ms");
    assert_eq!(all[0].attrs, Some(json!({"pod": "api-0"})));

    let errors = s
        .list_logs(
            &t,
            &LogFilter {
                service: Some("api".into()),
                levels: vec![LogLevel::Error, LogLevel::Fatal],
                since: Some(Timestamp(base + 1_000_000)),
                until: Some(Timestamp(base + 2_000_000)),
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(errors.items.len(), 100, "every 10th line of 1000");
    assert!(errors.items.iter().all(|l| l.level == LogLevel::Error));

    let ids: Vec<String> = vec![
        all[42].id.clone(),
        all[7].id.clone(),
        uuid::Uuid::now_v7().to_string(),
    ];
    let got = s.get_log_lines(&t, &ids).await.unwrap();
    assert_eq!(
        got.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
        ids[..2].to_vec(),
        "in the order asked, missing skipped"
    );

    let feed = s
        .log_lines_after(&t, head_before, None, summary.seq, 3000)
        .await
        .unwrap();
    assert_eq!(feed.len(), 3000);
    let last = feed.last().unwrap();
    let more = s
        .log_lines_after(&t, last.seq, Some(&last.id), summary.seq, 3000)
        .await
        .unwrap();
    assert_eq!(
        more.len(),
        2000,
        "the feed pages through a batch without loss"
    );
    // A second batch: reading after the first batch returns only the second.
    let second = s.ingest_logs(&t, &lines[..10]).await.unwrap();
    let after_first = s
        .log_lines_after(&t, summary.seq, None, second.seq, 10_000)
        .await
        .unwrap();
    assert_eq!(
        after_first.len(),
        10,
        "a finished batch is never read again"
    );
    assert!(after_first.iter().all(|l| l.seq == second.seq));
}

pub async fn log_patterns_group_recurring_messages(env: TestEnv) {
    let s = env.store();
    let t = tenant("acme");
    let inc = s
        .create_incident(&t, incident("db", "api", Severity::High, None))
        .await
        .unwrap();
    let mut lines = Vec::new();
    for i in 0..40 {
        lines.push(line(
            "api",
            Some(&inc.id),
            1000 + i,
            LogLevel::Error,
            &format!("connection to 10.0.3.{i}:5432 refused after {i}ms"),
        ));
    }
    for i in 0..5 {
        lines.push(line(
            "api",
            Some(&inc.id),
            2000 + i,
            LogLevel::Warn,
            &format!("pool exhausted, {i} waiters"),
        ));
    }
    for i in 0..100 {
        lines.push(line(
            "api",
            Some(&inc.id),
            3000 + i,
            LogLevel::Info,
            &format!("GET /health 200 in {i}ms"),
        ));
    }
    s.ingest_logs(&t, &lines).await.unwrap();
    let patterns = s
        .log_patterns(
            &t,
            &LogScope::Incident(inc.id.clone()),
            &[LogLevel::Error, LogLevel::Warn],
            10,
        )
        .await
        .unwrap();
    assert_eq!(patterns.len(), 2, "{patterns:#?}");
    assert_eq!(patterns[0].count, 40);
    assert_eq!(patterns[0].first_ts, Timestamp(1000));
    assert_eq!(patterns[0].last_ts, Timestamp(1039));
    assert!(
        patterns[0]
            .example
            .message
            .starts_with("connection to 10.0.3.")
    );
    assert_eq!(patterns[1].count, 5);
    let all = s
        .log_patterns(&t, &LogScope::Service("api".into()), &[], 10)
        .await
        .unwrap();
    assert_eq!(
        all[0].count, 100,
        "the info pattern is the most frequent overall"
    );
}

pub async fn tenants_are_isolated_in_the_store(env: TestEnv) {
    let s = env.store();
    let a = tenant("acme");
    let b = tenant("globex");
    let inc = s
        .create_incident(&a, incident("acme outage", "api", Severity::High, None))
        .await
        .unwrap();
    s.add_alert(
        &a,
        &inc.id,
        alert("acme alert", "api", Some("fp"), None),
        None,
    )
    .await
    .unwrap();
    s.ingest_logs(
        &a,
        &[line(
            "api",
            Some(&inc.id),
            1,
            LogLevel::Error,
            "acme secret",
        )],
    )
    .await
    .unwrap();
    let rb = s
        .create_runbook(
            &a,
            NewRunbook {
                title: "acme runbook".into(),
                content: "# x".into(),
                services: vec!["api".into()],
                tags: vec![],
            },
        )
        .await
        .unwrap();

    assert!(s.get_incident(&b, &inc.id).await.unwrap().is_none());
    assert!(s.incident_detail(&b, &inc.id).await.unwrap().is_none());
    assert!(
        s.list_incidents(
            &b,
            &IncidentFilter {
                limit: 100,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .items
        .is_empty()
    );
    assert!(
        s.update_incident_status(&b, &inc.id, IncidentStatus::Closed)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.add_alert(&b, &inc.id, alert("x", "api", None, None), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.list_alerts(&b, &inc.id, 100, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.open_incident_with_fingerprint(&b, "fp")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.correlation_candidates(&b, "api", Timestamp(0), Timestamp(i64::MAX), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.list_logs(
            &b,
            &LogFilter {
                service: Some("api".into()),
                limit: 100,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .items
        .is_empty()
    );
    assert!(s.get_runbook(&b, &rb.id).await.unwrap().is_none());
    assert!(
        s.list_runbooks(&b, None, 100, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(s.feed_head(&b).await.unwrap().seq, 0);
    assert_eq!(
        s.get_incident(&a, &inc.id).await.unwrap().unwrap().status,
        IncidentStatus::Open,
        "b's attempts changed nothing"
    );
}

pub async fn write_feed_orders_concurrent_writers(env: TestEnv) {
    let t = tenant("acme");
    let mut tasks = Vec::new();
    for w in 0..6 {
        let s = env.store().clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..15 {
                let summary = s
                    .ingest_logs(
                        &t,
                        &[line(
                            "api",
                            None,
                            i,
                            LogLevel::Info,
                            &format!("writer {w} line {i}"),
                        )],
                    )
                    .await
                    .unwrap();
                seqs.push(summary.seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=90).collect::<Vec<i64>>(),
        "every write got its own consecutive batch number"
    );
    let head = env.store().feed_head(&t).await.unwrap().seq;
    assert_eq!(head, 90);
    assert_eq!(
        env.store()
            .count_log_lines_between(&t, 0, head)
            .await
            .unwrap(),
        90,
        "everything up to the head is visible"
    );
    assert_eq!(
        env.store().feed_head(&tenant("other")).await.unwrap().seq,
        0,
        "numbering is per tenant"
    );
}

pub async fn vectors_leases_and_model_switch(env: TestEnv) {
    let s = env.store();
    let t = tenant("acme");
    let lease = Duration::from_secs(60);
    let job = s
        .claim_embedding_job(&t, "openai:m1", "replica-a", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.done_seq, job.complete), (0, false));
    assert!(
        s.claim_embedding_job(&t, "openai:m1", "replica-b", lease)
            .await
            .unwrap()
            .is_none(),
        "one replica at a time"
    );
    assert!(
        s.claim_embedding_job(&t, "openai:m1", "replica-a", lease)
            .await
            .unwrap()
            .is_some(),
        "the holder renews"
    );
    assert!(
        !s.advance_embedding_job(&t, "openai:m1", "replica-b", 5, true)
            .await
            .unwrap(),
        "only the holder records progress"
    );
    assert!(
        s.advance_embedding_job(&t, "openai:m1", "replica-a", 5, true)
            .await
            .unwrap()
    );
    s.release_embedding_job(&t, "openai:m1", "replica-a")
        .await
        .unwrap();
    let taken = s
        .claim_embedding_job(&t, "openai:m1", "replica-b", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.done_seq, taken.complete), (5, true));
    // An expired lease can be taken over.
    s.claim_embedding_job(&t, "openai:m2", "replica-a", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        s.claim_embedding_job(&t, "openai:m2", "replica-b", lease)
            .await
            .unwrap()
            .is_some()
    );

    let row = |doc: &str, chunk: i32, v: Vec<f32>| VectorRow {
        kind: "runbook".into(),
        doc_id: doc.into(),
        chunk,
        content_hash: format!("h-{doc}-{chunk}"),
        vector: v,
        vseq: 0,
    };
    let v1 = s
        .put_vectors(
            &t,
            "openai:m1",
            &[row("r1", 0, vec![1.0, 0.0]), row("r1", 1, vec![0.0, 1.0])],
        )
        .await
        .unwrap();
    let v2 = s
        .put_vectors(&t, "openai:m1", &[row("r1", 1, vec![0.6, 0.8])])
        .await
        .unwrap();
    assert!(v2 > v1);
    s.put_vectors(&t, "openai:m2", &[row("r9", 0, vec![0.5, 0.5, 0.5])])
        .await
        .unwrap();
    let all = s
        .vectors_after(&t, "openai:m1", &(0, String::new(), String::new(), 0), 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "an upsert replaces, never duplicates");
    let updated = all.iter().find(|r| r.chunk == 1).unwrap();
    assert_eq!(updated.vector, vec![0.6, 0.8]);
    assert_eq!(updated.vseq, v2);
    let newer = s
        .vectors_after(
            &t,
            "openai:m1",
            &(v1, "runbook".into(), "r1".into(), 0),
            100,
        )
        .await
        .unwrap();
    assert_eq!(newer.len(), 1);
    let hashes = s
        .vector_hashes(&t, "openai:m1", "runbook", &["r1".into()])
        .await
        .unwrap();
    assert_eq!(
        hashes.get(&("r1".to_owned(), 0)).map(String::as_str),
        Some("h-r1-0")
    );

    assert_eq!(s.drop_other_models(&t, "openai:m2").await.unwrap(), 2);
    assert_eq!(s.vector_count(&t, "openai:m1").await.unwrap(), 0);
    assert_eq!(s.vector_count(&t, "openai:m2").await.unwrap(), 1);
    assert!(s.embedding_job(&t, "openai:m1").await.unwrap().is_none());
}

pub async fn runbooks_store_and_filter_by_service(env: TestEnv) {
    let s = env.store();
    let t = tenant("acme");
    let mk = |title: &str, services: &[&str]| NewRunbook {
        title: title.into(),
        content: format!("# {title}\n\nSteps."),
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        tags: vec!["database".into()],
    };
    let a = s
        .create_runbook(&t, mk("Postgres failover", &["orders-db", "payments-db"]))
        .await
        .unwrap();
    s.create_runbook(&t, mk("Cache flush", &["cache_1"]))
        .await
        .unwrap();
    s.create_runbook(&t, mk("Generic triage", &[]))
        .await
        .unwrap();
    let got = s.get_runbook(&t, &a.id).await.unwrap().unwrap();
    assert_eq!(got, a);
    let list = s.list_runbooks(&t, None, 2, None).await.unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(list.items[0].title, "Generic triage", "newest first");
    let rest = s
        .list_runbooks(&t, None, 2, list.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(
        rest.items[0].content_chars,
        "# Postgres failover\n\nSteps.".len() as i64
    );
    let db = s
        .list_runbooks(&t, Some("payments-db"), 10, None)
        .await
        .unwrap();
    assert_eq!(db.items.len(), 1);
    assert_eq!(db.items[0].id, a.id);
    assert!(
        s.list_runbooks(&t, Some("payments"), 10, None)
            .await
            .unwrap()
            .items
            .is_empty(),
        "whole names only"
    );
    assert_eq!(
        s.list_runbooks(&t, Some("cache_1"), 10, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(
        s.list_runbooks(&t, Some("cache%1"), 10, None)
            .await
            .unwrap()
            .items
            .is_empty(),
        "LIKE wildcards are escaped"
    );
    assert!(
        s.list_runbooks(&t, Some("cacheX1"), 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let docs = s.runbooks_between(&t, 0, i64::MAX).await.unwrap();
    assert_eq!(docs.len(), 3);
}

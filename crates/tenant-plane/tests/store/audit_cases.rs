//! The egress audit log in the store, identical on SQLite and PostgreSQL: pages newest first,
//! filters, tenant scoping, pruning by age.

use atlasai_tenant_plane::calls::{AuditRecord, Destination};
use atlasai_tenant_plane::store::Timestamp;
use atlasai_tenant_plane::store::audit::AuditFilter;

use crate::{TestEnv, tenant};

fn record(tenant: &str, ts: i64, feature: &str, destination: Destination) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.into(),
        ts: Timestamp(ts),
        feature: feature.into(),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        endpoint_host: "api.openai.com".into(),
        prompt_tokens: 10,
        completion_tokens: 5,
        latency_ms: 120,
        outcome: "ok".into(),
        destination,
        left_network: destination.left_network(),
        cloud_fallback_model: (destination == Destination::ControlPlane)
            .then(|| "managed-1".to_owned()),
    }
}

pub async fn audit_records_page_filter_and_prune(env: TestEnv) {
    let store = env.store();
    let base = 1_800_000_000_000_000;
    let mut records = Vec::new();
    for i in 0..30 {
        let (feature, dest) = match i % 3 {
            0 => ("rca", Destination::Private),
            1 => ("gateway", Destination::Public),
            _ => ("chat", Destination::ControlPlane),
        };
        records.push(record("acme", base + i * 1_000_000, feature, dest));
    }
    records.push(record("globex", base, "rca", Destination::Public));
    store.insert_audit(&records).await.unwrap();
    // Writing the same records again (a retried batch) adds nothing.
    store.insert_audit(&records[..5]).await.unwrap();

    // A large batch of an awkward size (written as statements of 32 rows and the smaller
    // sizes) arrives whole, in one transaction.
    let bulk: Vec<AuditRecord> = (0..1_237)
        .map(|i| {
            record(
                "bulk",
                base + 100_000_000 + i,
                "gateway",
                Destination::Private,
            )
        })
        .collect();
    store.insert_audit(&bulk).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_audit(
                &tenant("bulk"),
                &AuditFilter {
                    limit: 500,
                    cursor,
                    ..AuditFilter::default()
                },
            )
            .await
            .unwrap();
        seen.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    seen.reverse();
    assert_eq!(
        seen, bulk,
        "every record of the large batch, stored as written"
    );

    let acme = tenant("acme");
    let all = |cursor: Option<String>| AuditFilter {
        limit: 12,
        cursor,
        ..AuditFilter::default()
    };
    let first = store.list_audit(&acme, &all(None)).await.unwrap();
    assert_eq!(first.items.len(), 12);
    assert_eq!(
        first.items[0].ts,
        Timestamp(base + 29_000_000),
        "newest first"
    );
    let second = store
        .list_audit(&acme, &all(first.next_cursor.clone()))
        .await
        .unwrap();
    let third = store
        .list_audit(&acme, &all(second.next_cursor.clone()))
        .await
        .unwrap();
    assert_eq!(third.items.len(), 6);
    assert!(third.next_cursor.is_none());
    assert_eq!(
        third.items.last().unwrap(),
        &records[0],
        "stored as written"
    );

    let left = store
        .list_audit(
            &acme,
            &AuditFilter {
                left_network: Some(true),
                limit: 100,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(left.items.len(), 20);
    assert!(
        left.items
            .iter()
            .all(|r| r.destination != Destination::Private)
    );
    let rca = store
        .list_audit(
            &acme,
            &AuditFilter {
                feature: Some("rca".into()),
                since: Some(Timestamp(base + 10_000_000)),
                until: Some(Timestamp(base + 20_000_000)),
                limit: 100,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rca.items.len(), 3, "rca at 12, 15, 18 s");

    let globex = store
        .list_audit(&tenant("globex"), &all(None))
        .await
        .unwrap();
    assert_eq!(globex.items.len(), 1);

    assert_eq!(
        store
            .prune_audit(Timestamp(base + 15_000_000))
            .await
            .unwrap(),
        16
    );
    let rest = store
        .list_audit(
            &acme,
            &AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 15);
}

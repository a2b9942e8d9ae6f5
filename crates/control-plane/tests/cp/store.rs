//! The store, on SQLite and PostgreSQL alike: identity, enrollment, settings, usage, and
//! credits under concurrency.

use std::sync::Arc;

use atlasai_control_plane::store::{
    CreditError, FinishOutcome, ReserveOutcome, SettingsRow, SettleOutcome, SettleUsage, Store,
    StoreError, TransferOutcome,
};
use atlasai_core::protocol::{UsageEntry, UsageRoute};

crate::store_tests!(
    tenants_users_and_tokens_are_per_tenant,
    an_enrollment_token_works_once,
    settings_candidates_validate_into_active,
    usage_reports_count_once,
    grants_are_idempotent_and_adjustments_never_overdraw,
    reserve_settle_release,
    a_thousand_concurrent_debits_leave_an_exact_balance,
);

async fn tenant(store: &Store, id: &str, credits: i64) {
    store
        .create_tenant(
            id,
            id,
            &format!("owner@{id}.example"),
            &format!("hash-{id}"),
            credits,
        )
        .await
        .unwrap();
}

async fn tenants_users_and_tokens_are_per_tenant(store: &Store) {
    tenant(store, "acme", 0).await;
    tenant(store, "globex", 0).await;
    assert!(matches!(
        store
            .create_tenant("acme", "again", "x@y", "other-hash", 0)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let viewer = store
        .create_user("acme", "v@acme.example", "viewer")
        .await
        .unwrap();
    assert!(matches!(
        store.create_user("acme", "v@acme.example", "admin").await,
        Err(StoreError::Conflict(_))
    ));
    store
        .create_api_token("acme", &viewer.id, "viewer-hash", "ci")
        .await
        .unwrap();
    let owner = store.token_owner("viewer-hash").await.unwrap().unwrap();
    assert_eq!(
        (owner.tenant_id.as_str(), owner.role.as_str()),
        ("acme", "viewer")
    );
    assert!(store.token_owner("nope").await.unwrap().is_none());
    assert_eq!(store.list_users("acme").await.unwrap().len(), 2);
    assert_eq!(store.list_users("globex").await.unwrap().len(), 1);
    assert!(
        store
            .get_user("globex", &viewer.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn an_enrollment_token_works_once(store: &Store) {
    tenant(store, "acme", 0).await;
    let c = store
        .create_cluster("acme", "prod", "enroll-hash")
        .await
        .unwrap();
    let e = store
        .enroll("enroll-hash", "cred-hash")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.id.as_str(), e.tenant_id.as_str()),
        (c.id.as_str(), "acme")
    );
    assert!(
        store
            .enroll("enroll-hash", "cred-2")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .cluster_by_credential("cred-hash")
            .await
            .unwrap()
            .unwrap()
            .id,
        c.id
    );
    assert!(
        store
            .cluster_by_credential("cred-2")
            .await
            .unwrap()
            .is_none()
    );
}

fn row(tenant: &str, cluster: &str, state: &str, json: &str) -> SettingsRow {
    SettingsRow {
        tenant_id: tenant.into(),
        cluster_id: cluster.into(),
        slot: String::new(),
        state: state.into(),
        settings_json: json.into(),
        secrets_sealed: None,
        reason: None,
        validated_at: None,
        updated_at: 1,
        updated_by: "u".into(),
        revision: 0,
    }
}

async fn settings_candidates_validate_into_active(store: &Store) {
    tenant(store, "acme", 0).await;
    tenant(store, "globex", 0).await;
    let v0 = store.settings_version("acme").await.unwrap();
    store
        .save_active(row("acme", "", "active", r#"{"m":1}"#))
        .await
        .unwrap();
    assert!(store.settings_version("acme").await.unwrap() > v0);
    // A failed draft keeps the active one.
    let mut draft = row("acme", "", "draft", r#"{"m":2}"#);
    draft.reason = Some("401 invalid key".into());
    store.save_candidate(draft, None).await.unwrap();
    let rows = store.list_settings("acme").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .any(|r| r.slot == "active" && r.settings_json == r#"{"m":1}"#)
    );
    // A pending one is offered to the tenant's clusters, answered once, and activates.
    store
        .save_candidate(
            row("acme", "", "pending_validation", r#"{"m":3}"#),
            Some("val-1"),
        )
        .await
        .unwrap();
    let pending = store.pending_validations("acme", "c1").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].settings_json, r#"{"m":3}"#);
    assert!(
        store
            .pending_validations("globex", "c1")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .finish_validation("val-1", "globex", "g1", true, None)
            .await
            .unwrap(),
        FinishOutcome::NotPending,
        "another tenant's cluster cannot answer"
    );
    assert_eq!(
        store
            .finish_validation("val-1", "acme", "c1", true, None)
            .await
            .unwrap(),
        FinishOutcome::Activated
    );
    assert_eq!(
        store
            .finish_validation("val-1", "acme", "c1", false, Some("late"))
            .await
            .unwrap(),
        FinishOutcome::NotPending
    );
    let rows = store.list_settings("acme").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].settings_json, r#"{"m":3}"#);
    assert_eq!(rows[0].state, "active");
    // A failed validation keeps the candidate as a draft with the reason.
    store
        .save_candidate(
            row("acme", "c1", "pending_validation", r#"{"m":4}"#),
            Some("val-2"),
        )
        .await
        .unwrap();
    assert!(
        store
            .pending_validations("acme", "c2")
            .await
            .unwrap()
            .is_empty(),
        "cluster-level"
    );
    assert_eq!(
        store
            .finish_validation("val-2", "acme", "c1", false, Some("connection refused"))
            .await
            .unwrap(),
        FinishOutcome::KeptAsDraft
    );
    let rows = store.list_settings("acme").await.unwrap();
    let c1 = rows.iter().find(|r| r.cluster_id == "c1").unwrap();
    assert_eq!(
        (c1.state.as_str(), c1.reason.as_deref()),
        ("draft", Some("connection refused"))
    );
    assert!(store.delete_cluster_settings("acme", "c1").await.unwrap());
}

async fn usage_reports_count_once(store: &Store) {
    tenant(store, "acme", 5_000).await;
    let entries = vec![UsageEntry {
        tenant_id: "acme".into(),
        route: UsageRoute::Byoc,
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        calls: 3,
        failed_calls: 1,
        prompt_tokens: 100,
        completion_tokens: 20,
    }];
    assert!(
        store
            .record_usage("acme", "c1", "r1", &entries)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_usage("acme", "c1", "r1", &entries)
            .await
            .unwrap(),
        "a retry"
    );
    assert!(
        store
            .record_usage("acme", "c1", "r2", &entries)
            .await
            .unwrap()
    );
    let counts = store.usage_counts("acme").await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].calls, counts[0].prompt_tokens), (6, 200));
    let ledger = store.recent_ledger("acme", 10).await.unwrap();
    let usage: Vec<_> = ledger.iter().filter(|r| r.kind == "usage").collect();
    assert_eq!(usage.len(), 2);
    assert!(
        usage
            .iter()
            .all(|r| r.amount == 0 && r.balance_after == 5_000)
    );
    assert_eq!(store.balance("acme").await.unwrap(), Some(5_000));
}

async fn grants_are_idempotent_and_adjustments_never_overdraw(store: &Store) {
    tenant(store, "acme", 0).await;
    assert_eq!(
        store
            .transfer("acme", "grant", 10_000, "g-1", "welcome")
            .await
            .unwrap(),
        TransferOutcome::Applied { balance: 10_000 }
    );
    assert_eq!(
        store
            .transfer("acme", "grant", 10_000, "g-1", "welcome")
            .await
            .unwrap(),
        TransferOutcome::Duplicate
    );
    assert!(matches!(
        store
            .transfer("acme", "adjustment", -20_000, "a-1", "too much")
            .await,
        Err(CreditError::Insufficient {
            balance: 10_000,
            ..
        })
    ));
    assert_eq!(
        store
            .transfer("acme", "adjustment", -4_000, "a-2", "refund")
            .await
            .unwrap(),
        TransferOutcome::Applied { balance: 6_000 }
    );
    assert!(matches!(
        store.transfer("nobody", "grant", 1, "x", "").await,
        Err(CreditError::NoAccount)
    ));
    assert_eq!(store.ledger_sum("acme").await.unwrap(), 6_000);
}

async fn reserve_settle_release(store: &Store) {
    tenant(store, "acme", 10_000).await;
    assert!(matches!(
        store.reserve("acme", "r1", 4_000).await.unwrap(),
        ReserveOutcome::Reserved { balance: 6_000 }
    ));
    let usage = SettleUsage {
        model: "m",
        prompt_tokens: 10,
        completion_tokens: 5,
    };
    assert!(matches!(
        store
            .settle("acme", "r1", 1_500, &usage, "{}")
            .await
            .unwrap(),
        SettleOutcome::Done {
            charged: 1_500,
            balance: 8_500
        }
    ));
    assert!(matches!(
        store.release("acme", "r1").await.unwrap(),
        SettleOutcome::AlreadyFinished(_)
    ));
    assert!(matches!(
        store.reserve("acme", "r1", 4_000).await.unwrap(),
        ReserveOutcome::Existing(r) if r.state == "settled" && r.charged == Some(1_500)
    ));
    store.reserve("acme", "r2", 2_000).await.unwrap();
    assert!(matches!(
        store.release("acme", "r2").await.unwrap(),
        SettleOutcome::Done {
            charged: 0,
            balance: 8_500
        }
    ));
    // A cost above the hold is capped at the hold.
    store.reserve("acme", "r3", 1_000).await.unwrap();
    assert!(matches!(
        store
            .settle("acme", "r3", 9_999, &usage, "{}")
            .await
            .unwrap(),
        SettleOutcome::Done {
            charged: 1_000,
            balance: 7_500
        }
    ));
    assert!(matches!(
        store.reserve("acme", "r4", 7_501).await,
        Err(CreditError::Insufficient {
            balance: 7_500,
            needed: 7_501
        })
    ));
    assert_eq!(store.ledger_sum("acme").await.unwrap(), 7_500);
}

async fn a_thousand_concurrent_debits_leave_an_exact_balance(store: &Store) {
    const N: usize = 1_000;
    const COST: i64 = 500;
    const OPENING: i64 = 300_000; // covers exactly 600 debits
    tenant(store, "acme", OPENING).await;
    tenant(store, "globex", OPENING).await;
    let store = Arc::new(store.clone());
    let run = || {
        let store = store.clone();
        async move {
            let mut tasks = Vec::with_capacity(N);
            for i in 0..N {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let rid = format!("req-{i}");
                    let r = store.reserve("acme", &rid, COST).await;
                    let settled = match &r {
                        Ok(ReserveOutcome::Reserved { .. }) => {
                            let u = SettleUsage {
                                model: "m",
                                prompt_tokens: 1,
                                completion_tokens: 1,
                            };
                            // Half settle at full cost, half at less (refunding the rest).
                            let actual = if i % 2 == 0 { COST } else { COST - 100 };
                            Some(store.settle("acme", &rid, actual, &u, "{}").await.unwrap())
                        }
                        _ => None,
                    };
                    ((), r.map_err(|e| e.to_string()), settled)
                }));
            }
            let mut results = Vec::with_capacity(N);
            for t in tasks {
                results.push(t.await.unwrap());
            }
            results
        }
    };
    let first = run().await;
    let reserved: Vec<_> = first
        .iter()
        .filter(|(_, r, _)| matches!(r, Ok(ReserveOutcome::Reserved { .. })))
        .collect();
    let refused = first
        .iter()
        .filter(|(_, r, _)| matches!(r, Err(e) if e.contains("insufficient credits")))
        .count();
    // Refunds make room for a few more debits than 600 while the run is in flight, so count
    // what the ledger says rather than assuming an order.
    assert_eq!(
        reserved.len() + refused,
        N,
        "every debit either succeeded or got 402"
    );
    let charged: i64 = first
        .iter()
        .filter_map(|(_, _, s)| match s {
            Some(SettleOutcome::Done { charged, .. }) => Some(*charged),
            _ => None,
        })
        .sum();
    let balance = store.balance("acme").await.unwrap().unwrap();
    assert!(balance >= 0, "never overdrawn");
    assert_eq!(
        balance,
        OPENING - charged,
        "balance is exactly opening minus charges"
    );
    assert_eq!(
        store.ledger_sum("acme").await.unwrap(),
        balance,
        "ledger matches balance"
    );
    assert!(reserved.len() >= 600, "{} reserved", reserved.len());

    // Every successful request retried at once, reservation and settlement: nothing is
    // charged twice.
    let ok_ids: Vec<usize> = first
        .iter()
        .enumerate()
        .filter(|(_, (_, r, _))| matches!(r, Ok(ReserveOutcome::Reserved { .. })))
        .map(|(i, _)| i)
        .collect();
    let mut retries = Vec::new();
    for i in ok_ids {
        let store = store.clone();
        retries.push(tokio::spawn(async move {
            let rid = format!("req-{i}");
            let r = store.reserve("acme", &rid, COST).await.unwrap();
            let u = SettleUsage {
                model: "m",
                prompt_tokens: 1,
                completion_tokens: 1,
            };
            let s = store.settle("acme", &rid, COST, &u, "{}").await.unwrap();
            (r, s)
        }));
    }
    for t in retries {
        let (r, s) = t.await.unwrap();
        assert!(
            matches!(r, ReserveOutcome::Existing(_)),
            "a retry reserved anew: {r:?}"
        );
        assert!(
            matches!(s, SettleOutcome::AlreadyFinished(_)),
            "a retry settled again: {s:?}"
        );
    }
    assert_eq!(store.balance("acme").await.unwrap().unwrap(), balance);
    assert_eq!(store.ledger_sum("acme").await.unwrap(), balance);
    assert_eq!(
        store.balance("globex").await.unwrap(),
        Some(OPENING),
        "other tenants untouched"
    );
}

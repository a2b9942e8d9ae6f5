//! The durable AI job queue, identical on SQLite and PostgreSQL: claims are exclusive under
//! concurrency, a lease that runs out lets another worker take the job and the late worker's
//! outcome is refused, retries wait for their time, deadlines expire jobs, and tenants only
//! see their own jobs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use atlasai_tenant_plane::store::Timestamp;
use atlasai_tenant_plane::store::jobs::{JobOutcome, JobStatus};
use serde_json::json;

use crate::{TestEnv, tenant};

const HOUR: Duration = Duration::from_secs(3600);

pub async fn jobs_are_claimed_once_and_finished_by_their_holder(env: TestEnv) {
    let store = env.store();
    let acme = tenant("acme");
    let now = Timestamp::now();
    let job = store
        .enqueue_job(
            &acme,
            "rca",
            &json!({"incident_id": "x"}),
            now,
            now.plus(HOUR),
            now,
            "provider down",
        )
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.error.as_deref(), Some("provider down"));
    assert_eq!(job.request, json!({"incident_id": "x"}));
    // Another tenant cannot see it.
    assert!(
        store
            .get_job(&tenant("other"), &job.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .list_jobs(&tenant("other"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let claimed = store
        .claim_job("w1", Duration::from_secs(60), Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, job.id);
    assert_eq!(claimed.status, JobStatus::Running);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    // Held: nobody else gets it.
    assert!(
        store
            .claim_job("w2", Duration::from_secs(60), Timestamp::now())
            .await
            .unwrap()
            .is_none()
    );
    let stats = store.queue_stats(None).await.unwrap();
    assert_eq!((stats.queued, stats.running), (0, 1));
    assert_eq!(stats.oldest, Some(job.created_at));

    // Back to the queue, due later: not claimable before its time.
    let later = Timestamp::now().plus(Duration::from_secs(30));
    assert!(
        store
            .finish_job(
                &job.id,
                "w1",
                JobOutcome::Retry {
                    error: "503",
                    at: later
                },
                Timestamp::now()
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_job("w2", Duration::from_secs(60), Timestamp::now())
            .await
            .unwrap()
            .is_none()
    );
    let again = store
        .claim_job("w2", Duration::from_secs(60), later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempts, 2);
    // Only the holder may finish it.
    let answer = json!({"summary": "done"});
    assert!(
        !store
            .finish_job(&job.id, "w1", JobOutcome::Succeeded(&answer), later)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_job(&job.id, "w2", JobOutcome::Succeeded(&answer), later)
            .await
            .unwrap()
    );
    let done = store.get_job(&acme, &job.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(answer.clone()));
    // Finished jobs are never claimed or finished again.
    assert!(
        store
            .claim_job("w3", Duration::from_secs(60), later.plus(HOUR))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .finish_job(&job.id, "w2", JobOutcome::Failed("late"), later)
            .await
            .unwrap()
    );
    let stats = store.queue_stats(Some(&acme)).await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.oldest), (0, 0, None));
    let listed = store
        .list_jobs(&acme, Some(JobStatus::Succeeded), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

pub async fn a_lease_that_runs_out_passes_the_job_on(env: TestEnv) {
    let store = env.store();
    let acme = tenant("acme");
    let now = Timestamp::now();
    let job = store
        .enqueue_job(
            &acme,
            "runbook",
            &json!({}),
            now,
            now.plus(HOUR),
            now,
            "down",
        )
        .await
        .unwrap();
    let first = store
        .claim_job("crashed", Duration::from_secs(1), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, job.id);
    // Renewal works while held.
    assert!(
        store
            .renew_job_lease(&job.id, "crashed", Duration::from_secs(1), now)
            .await
            .unwrap()
    );
    // Its holder dies; after the lease, another worker takes it.
    let after = now.plus(Duration::from_secs(2));
    let second = store
        .claim_job("alive", Duration::from_secs(60), after)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, job.id);
    assert_eq!(second.attempts, 2);
    // The old holder's renewal and outcome are refused.
    assert!(
        !store
            .renew_job_lease(&job.id, "crashed", Duration::from_secs(60), after)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_job(&job.id, "crashed", JobOutcome::Succeeded(&json!(1)), after)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_job(&job.id, "alive", JobOutcome::Succeeded(&json!(2)), after)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_job(&acme, &job.id).await.unwrap().unwrap().result,
        Some(json!(2))
    );

    // A process that restarts releases what an earlier process held, at once.
    let other = store
        .enqueue_job(&acme, "rca", &json!({}), now, now.plus(HOUR), now, "down")
        .await
        .unwrap();
    store
        .claim_job("previous-run", Duration::from_secs(600), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.release_foreign_leases("this-run", now).await.unwrap(),
        1
    );
    let reclaimed = store
        .claim_job("this-run", Duration::from_secs(60), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reclaimed.id, other.id);

    // Waits set from an earlier view of the provider end at once; due and running jobs are
    // left as they are.
    let later = now.plus(Duration::from_secs(300));
    let waiting = store
        .enqueue_job(&acme, "rca", &json!({}), later, now.plus(HOUR), now, "down")
        .await
        .unwrap();
    assert!(
        store
            .claim_job("this-run", Duration::from_secs(60), now)
            .await
            .unwrap()
            .is_none(),
        "not due yet"
    );
    assert_eq!(store.retry_queued_now(now).await.unwrap(), 1);
    assert_eq!(store.retry_queued_now(now).await.unwrap(), 0);
    let due = store
        .claim_job("this-run", Duration::from_secs(60), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(due.id, waiting.id);
}

pub async fn deadlines_expire_waiting_jobs(env: TestEnv) {
    let store = env.store();
    let acme = tenant("acme");
    let now = Timestamp::now();
    let soon = now.plus(Duration::from_secs(5));
    let job = store
        .enqueue_job(&acme, "rca", &json!({}), soon, soon, now, "provider down")
        .await
        .unwrap();
    assert_eq!(store.expire_jobs(now).await.unwrap(), 0);
    assert_eq!(store.expire_jobs(soon).await.unwrap(), 1);
    let expired = store.get_job(&acme, &job.id).await.unwrap().unwrap();
    assert_eq!(expired.status, JobStatus::Expired);
    assert!(
        expired.error.unwrap().contains("the deadline passed"),
        "the reason is kept"
    );
    assert!(
        store
            .claim_job("w", Duration::from_secs(60), soon.plus(HOUR))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn concurrent_workers_take_each_job_once(env: TestEnv) {
    let store = Arc::new(env.data.clone());
    let acme = tenant("acme");
    let now = Timestamp::now();
    let mut ids = HashSet::new();
    for i in 0..60 {
        let j = store
            .store
            .enqueue_job(
                &acme,
                "rca",
                &json!({"n": i}),
                now,
                now.plus(HOUR),
                now,
                "down",
            )
            .await
            .unwrap();
        ids.insert(j.id);
    }
    // Eight workers claim and finish as fast as they can.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let data = store.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut done = Vec::new();
            while let Some(job) = data
                .store
                .claim_job(&owner, Duration::from_secs(60), Timestamp::now())
                .await
                .unwrap()
            {
                let v = json!({"by": owner});
                assert!(
                    data.store
                        .finish_job(&job.id, &owner, JobOutcome::Succeeded(&v), Timestamp::now())
                        .await
                        .unwrap()
                );
                done.push(job.id);
            }
            done
        }));
    }
    let mut finished = Vec::new();
    let mut workers_used = 0;
    for t in tasks {
        let done = t.await.unwrap();
        if !done.is_empty() {
            workers_used += 1;
        }
        finished.extend(done);
    }
    let unique: HashSet<String> = finished.iter().cloned().collect();
    assert_eq!(finished.len(), 60, "every job finished exactly once");
    assert_eq!(unique, ids);
    assert!(workers_used > 1, "the work was shared");
    for job in store.store.list_jobs(&acme, None, 100).await.unwrap() {
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.attempts, 1, "no job was claimed twice");
    }
}

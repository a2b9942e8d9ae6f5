//! The durable queue of AI requests accepted under the `queue_and_retry` policy.
//!
//! A job is claimed by one worker at a time through a lease (`lease_owner`, `lease_until`)
//! that the worker renews while it runs the job. On PostgreSQL, concurrent claimers skip each
//! other's rows (`FOR UPDATE SKIP LOCKED`), so with several replicas each job goes to one of
//! them; on SQLite the write lock (`BEGIN IMMEDIATE`) serialises claimers. A job whose worker
//! died becomes claimable again when its lease runs out. Completion is conditional on still
//! holding the lease, so a job is completed exactly once even if a slow worker and its
//! successor both ran it.

use std::time::Duration;

use atlasai_core::TenantId;
use serde_json::Value;

use super::{Context, Store, StoreError, Timestamp, corrupt, with_pool};

/// Where a job is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for its next attempt.
    Queued,
    /// A worker holds it.
    Running,
    /// Done; the result is stored.
    Succeeded,
    /// Failed for good (a reason that retrying cannot fix).
    Failed,
    /// Its deadline passed before the provider came back.
    Expired,
}

impl JobStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<JobStatus, StoreError> {
        Ok(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "expired" => JobStatus::Expired,
            other => return Err(corrupt("job status", other)),
        })
    }

    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Expired
        )
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id (UUIDv7).
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// Which AI feature runs it (`rca`, `runbook`, ...).
    pub feature: String,
    /// The original request body.
    pub request: Value,
    /// Where it is.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: i64,
    /// When it may next be tried.
    pub next_attempt_at: Timestamp,
    /// When it expires if not done.
    pub deadline: Timestamp,
    /// The worker holding it, while running.
    pub lease_owner: Option<String>,
    /// Until when that worker holds it.
    pub lease_until: Option<Timestamp>,
    /// The answer, once succeeded.
    pub result: Option<Value>,
    /// The last error (the reason it failed or expired, or why the last attempt did not
    /// succeed).
    pub error: Option<String>,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    tenant: String,
    feature: String,
    request: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    deadline: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    result: Option<String>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// The stored columns, in [`Row`]'s order (a macro so statements stay `&'static str`).
macro_rules! columns {
    () => {
        "id, tenant, feature, request, status, attempts, next_attempt_at, deadline, lease_owner, lease_until, result, error, created_at, updated_at"
    };
}

/// Which jobs are due at `$1`: queued and due, or running with an expired lease.
macro_rules! due {
    () => {
        "(status = 'queued' AND next_attempt_at <= $1) OR (status = 'running' AND lease_until < $1)"
    };
}

impl TryFrom<Row> for Job {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Job, StoreError> {
        let json = |what: &'static str, s: &str| {
            serde_json::from_str(s).map_err(|e| corrupt(what, e.to_string()))
        };
        Ok(Job {
            request: json("job request", &r.request)?,
            result: r
                .result
                .as_deref()
                .map(|s| json("job result", s))
                .transpose()?,
            status: JobStatus::parse(&r.status)?,
            id: r.id,
            tenant: r.tenant,
            feature: r.feature,
            attempts: r.attempts,
            next_attempt_at: Timestamp(r.next_attempt_at),
            deadline: Timestamp(r.deadline),
            lease_owner: r.lease_owner,
            lease_until: r.lease_until.map(Timestamp),
            error: r.error,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

/// Queue length and age, for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Jobs waiting.
    pub queued: i64,
    /// Jobs held by a worker.
    pub running: i64,
    /// When the oldest unfinished job was accepted.
    pub oldest: Option<Timestamp>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Store {
    /// Accepts a job, first due at `next_attempt_at`; `error` says why it was queued.
    #[expect(
        clippy::too_many_arguments,
        reason = "one row's columns; a struct would only rename them"
    )]
    pub async fn enqueue_job(
        &self,
        tenant: &TenantId,
        feature: &str,
        request: &Value,
        next_attempt_at: Timestamp,
        deadline: Timestamp,
        now: Timestamp,
        error: &str,
    ) -> Result<Job, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let request_text = request.to_string();
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO ai_jobs (id, tenant, feature, request, status, attempts, next_attempt_at, deadline, error, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7, $8, $8)",
            )
            .bind(&id)
            .bind(tenant.as_str())
            .bind(feature)
            .bind(&request_text)
            .bind(next_attempt_at.0)
            .bind(deadline.0)
            .bind(error)
            .bind(now.0)
            .execute(pool)
            .await
            .map(|_| ())
            .ctx("queueing an AI request")
        })?;
        self.get_job(tenant, &id)
            .await?
            .ok_or_else(|| corrupt("job", "vanished after insert"))
    }

    /// One job of a tenant.
    pub async fn get_job(&self, tenant: &TenantId, id: &str) -> Result<Option<Job>, StoreError> {
        let row: Option<Row> = with_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM ai_jobs WHERE tenant = $1 AND id = $2"
            ))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await
            .ctx("reading a job")?
        });
        row.map(Job::try_from).transpose()
    }

    /// A tenant's most recent jobs, newest first.
    pub async fn list_jobs(
        &self,
        tenant: &TenantId,
        status: Option<JobStatus>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM ai_jobs WHERE tenant = $1 AND ($2 IS NULL OR status = $2) \
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            ))
            .bind(tenant.as_str())
            .bind(status.map(JobStatus::as_str))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .ctx("listing jobs")?
        });
        rows.into_iter().map(Job::try_from).collect()
    }

    /// Claims the next job that is due (queued and due, or running with an expired lease)
    /// for `owner`, counting an attempt. `None` when nothing is due.
    pub async fn claim_job(
        &self,
        owner: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<Job>, StoreError> {
        let until = now.0.saturating_add(micros(lease));
        let row: Option<Row> = match &self.backend {
            super::Backend::Postgres(pool) => {
                // One statement: concurrent claimers skip rows another claimer has locked.
                sqlx::query_as(concat!(
                    "UPDATE ai_jobs SET status = 'running', lease_owner = $2, lease_until = $3, \
                     attempts = attempts + 1, updated_at = $1 \
                     WHERE id = (SELECT id FROM ai_jobs WHERE ",
                    due!(),
                    " ORDER BY next_attempt_at, id \
                                 LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     RETURNING ",
                    columns!()
                ))
                .bind(now.0)
                .bind(owner)
                .bind(until)
                .fetch_optional(pool)
                .await
                .ctx("claiming a job")?
            }
            super::Backend::Sqlite(pool) => {
                // SQLite has no row locks; BEGIN IMMEDIATE takes the database's write lock, so
                // the select and the update cannot interleave with another claimer.
                let mut tx = pool
                    .begin_with(self.begin_write())
                    .await
                    .ctx("starting a transaction")?;
                let id: Option<String> = sqlx::query_scalar(concat!(
                    "SELECT id FROM ai_jobs WHERE ",
                    due!(),
                    " ORDER BY next_attempt_at, id LIMIT 1"
                ))
                .bind(now.0)
                .fetch_optional(&mut *tx)
                .await
                .ctx("finding a due job")?;
                let row = match id {
                    None => None,
                    Some(id) => sqlx::query_as(concat!(
                        "UPDATE ai_jobs SET status = 'running', lease_owner = $2, lease_until = $3, \
                         attempts = attempts + 1, updated_at = $1 WHERE id = $4 RETURNING ", columns!()
                    ))
                    .bind(now.0)
                    .bind(owner)
                    .bind(until)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await
                    .ctx("claiming a job")?,
                };
                tx.commit().await.ctx("committing a claim")?;
                row
            }
        };
        row.map(Job::try_from).transpose()
    }

    /// Extends a held lease. `false` when the worker no longer holds the job.
    pub async fn renew_job_lease(
        &self,
        id: &str,
        owner: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let until = now.0.saturating_add(micros(lease));
        let n = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE ai_jobs SET lease_until = $3, updated_at = $4 \
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
            )
            .bind(id)
            .bind(owner)
            .bind(until)
            .bind(now.0)
            .execute(pool)
            .await
            .ctx("renewing a job lease")?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Finishes a held job: succeeded with a result, failed or expired with a reason, or
    /// back to the queue for another attempt at `retry_at`. `false` when the worker no
    /// longer holds it (its lease ran out and another worker took it): nothing changes.
    pub async fn finish_job(
        &self,
        id: &str,
        owner: &str,
        outcome: JobOutcome<'_>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (status, result, error, next) = match outcome {
            JobOutcome::Succeeded(v) => (JobStatus::Succeeded, Some(v.to_string()), None, None),
            JobOutcome::Failed(e) => (JobStatus::Failed, None, Some(e), None),
            JobOutcome::Expired(e) => (JobStatus::Expired, None, Some(e), None),
            JobOutcome::Retry { error, at } => (JobStatus::Queued, None, Some(error), Some(at.0)),
        };
        let n = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE ai_jobs SET status = $3, result = $4, error = $5, \
                 next_attempt_at = COALESCE($6, next_attempt_at), lease_owner = NULL, lease_until = NULL, updated_at = $7 \
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
            )
            .bind(id)
            .bind(owner)
            .bind(status.as_str())
            .bind(result)
            .bind(error)
            .bind(next)
            .bind(now.0)
            .execute(pool)
            .await
            .ctx("finishing a job")?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Marks queued jobs whose deadline has passed as expired; returns how many.
    pub async fn expire_jobs(&self, now: Timestamp) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            Ok(sqlx::query(
                "UPDATE ai_jobs SET status = 'expired', updated_at = $1, \
                 error = COALESCE(error, 'no attempt succeeded') || '; the deadline passed before the AI provider came back' \
                 WHERE status = 'queued' AND deadline <= $1",
            )
            .bind(now.0)
            .execute(pool)
            .await
            .ctx("expiring jobs")?
            .rows_affected())
        })
    }

    /// Releases every lease held by workers other than `owner` (a single-process SQLite
    /// tenant plane calls this at start-up: whoever held them is gone).
    pub async fn release_foreign_leases(
        &self,
        owner: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            Ok(sqlx::query(
                "UPDATE ai_jobs SET status = 'queued', lease_owner = NULL, lease_until = NULL, updated_at = $2 \
                 WHERE status = 'running' AND lease_owner <> $1",
            )
            .bind(owner)
            .bind(now.0)
            .execute(pool)
            .await
            .ctx("releasing stale job leases")?
            .rows_affected())
        })
    }

    /// Makes every queued job due now; returns how many were waiting. Their waits came from a
    /// view of the provider that no longer holds: the previous run's circuit breaker at
    /// start-up, or the previous provider settings after a reload.
    pub async fn retry_queued_now(&self, now: Timestamp) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            Ok(sqlx::query(
                "UPDATE ai_jobs SET next_attempt_at = $1 \
                 WHERE status = 'queued' AND next_attempt_at > $1",
            )
            .bind(now.0)
            .execute(pool)
            .await
            .ctx("rescheduling queued jobs")?
            .rows_affected())
        })
    }

    /// Queue length and age (all tenants, or one).
    pub async fn queue_stats(&self, tenant: Option<&TenantId>) -> Result<QueueStats, StoreError> {
        let row: (i64, i64, Option<i64>) = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN status = 'queued' THEN 1 ELSE 0 END), 0), \
                        COALESCE(SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END), 0), \
                        MIN(created_at) \
                 FROM ai_jobs WHERE status IN ('queued', 'running') AND ($1 IS NULL OR tenant = $1)",
            )
            .bind(tenant.map(TenantId::as_str))
            .fetch_one(pool)
            .await
            .ctx("reading queue statistics")?
        });
        Ok(QueueStats {
            queued: row.0,
            running: row.1,
            oldest: row.2.map(Timestamp),
        })
    }
}

/// How a held job ends (or goes back to the queue).
#[derive(Debug, Clone, Copy)]
pub enum JobOutcome<'a> {
    /// Done.
    Succeeded(&'a Value),
    /// Failed for good.
    Failed(&'a str),
    /// The deadline passed.
    Expired(&'a str),
    /// Try again at `at`.
    Retry {
        /// Why this attempt did not succeed.
        error: &'a str,
        /// When to try again.
        at: Timestamp,
    },
}

//! The `queue_and_retry` fallback policy: when the customer's provider is unavailable, an AI
//! request (root cause analysis, a runbook, a non-streamed chat answer) is accepted as a job,
//! stored durably, and retried with exponential backoff until the provider is back or the
//! job's deadline passes. The client gets the job id at once (HTTP 202) and polls
//! (`GET /api/ai/jobs/{id}`) or streams (`.../events`) the result.
//!
//! Every replica runs workers that claim due jobs from the store (one replica per job; see
//! [`crate::store::jobs`]), renew their lease while the job runs, and record the outcome only
//! if they still hold it. A job interrupted by a crash is claimed again once its lease runs out
//! (at once on SQLite, where the restarted process is the only one), so it runs to completion
//! exactly once: its model calls may repeat, its result is recorded once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use atlasai_core::{FallbackPolicy, TenantId};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

use crate::ai::{AiError, FeatureError};
use crate::config::DatabaseKind;
use crate::data::{Data, ServiceError};
use crate::state::AppState;
use crate::store::Timestamp;
use crate::store::jobs::{Job, JobOutcome, JobStatus};

/// How long a worker holds a job before it must renew the lease; a crashed worker's jobs are
/// free again this long after its last renewal.
const LEASE: Duration = Duration::from_secs(60);
/// How often a running job's lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// How often idle workers look for due jobs (they are also woken when a job is queued).
const POLL: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The features whose requests can be queued, by their stored name.
pub const RCA: &str = "rca";
/// See [`RCA`].
pub const RUNBOOK: &str = "runbook";
/// See [`RCA`].
pub const CHAT: &str = "chat";

/// The queue's runtime state on this replica.
#[derive(Debug)]
pub struct Jobs {
    wake: Notify,
    /// This process's worker identity (lease owner).
    pub owner: String,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            wake: Notify::new(),
            owner: format!("tp-{}", uuid::Uuid::now_v7()),
        }
    }
}

impl Jobs {
    /// Wakes idle workers (a job was queued).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }
}

/// The fallback policy in force for a tenant: `TP_FALLBACK_POLICY` when set locally, else the
/// portal's, else fail closed.
pub fn policy(state: &AppState, tenant: &TenantId) -> FallbackPolicy {
    if let Some(local) = state.current().config.queue.policy {
        return local;
    }
    state.routes.cp().portal_policy(tenant).unwrap_or_default()
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobView {
    /// The job id.
    pub id: String,
    /// `rca`, `runbook` or `chat`.
    pub feature: String,
    /// `queued` (waiting for its next attempt), `running`, `succeeded`, `failed` (retrying
    /// cannot help) or `expired` (the deadline passed first).
    pub status: JobStatus,
    /// Attempts made by the queue so far (the first, rejected call is not counted).
    pub attempts: i64,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When the next attempt is due, while queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    /// When it expires if the provider is still unavailable (`TP_QUEUE_DEADLINE`).
    pub deadline: Timestamp,
    /// The feature's answer, once succeeded: exactly what the endpoint would have returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Why the last attempt did not succeed (while queued), or why the job failed or
    /// expired: the connection test's error shape when the model was the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    /// Where to poll it.
    pub poll: String,
    /// Where to stream its progress (server-sent events).
    pub events: String,
}

impl From<Job> for JobView {
    fn from(j: Job) -> JobView {
        let error = j.error.map(|e| match serde_json::from_str::<Value>(&e) {
            Ok(v) if v.is_object() => v,
            _ => Value::String(e),
        });
        JobView {
            poll: format!("/api/ai/jobs/{}", j.id),
            events: format!("/api/ai/jobs/{}/events", j.id),
            id: j.id,
            feature: j.feature,
            status: j.status,
            attempts: j.attempts,
            created_at: j.created_at,
            updated_at: j.updated_at,
            next_attempt_at: (j.status == JobStatus::Queued).then_some(j.next_attempt_at),
            deadline: j.deadline,
            result: j.result,
            error,
        }
    }
}

/// One job of a tenant.
pub async fn get(data: &Data, tenant: &TenantId, id: &str) -> Result<JobView, ServiceError> {
    let id = crate::validate::id("job id", id).map_err(ServiceError::Invalid)?;
    data.store
        .get_job(tenant, &id)
        .await?
        .map(JobView::from)
        .ok_or(ServiceError::NotFound { what: "job", id })
}

/// A tenant's most recent jobs, newest first.
pub async fn list(
    data: &Data,
    tenant: &TenantId,
    status: Option<&str>,
    limit: Option<u32>,
) -> Result<Vec<JobView>, ServiceError> {
    let status = match status {
        None | Some("") => None,
        Some(s) => Some(JobStatus::parse(s).map_err(|_| {
            ServiceError::invalid(format!(
                "status {s:?} is not one of queued, running, succeeded, failed, expired"
            ))
        })?),
    };
    let limit = match limit {
        None => 50,
        Some(n) if (1..=500).contains(&n) => n,
        Some(n) => {
            return Err(ServiceError::invalid(format!(
                "limit: {n} is not from 1 to 500"
            )));
        }
    };
    Ok(data
        .store
        .list_jobs(tenant, status, limit)
        .await?
        .into_iter()
        .map(JobView::from)
        .collect())
}

/// How often a job's event stream looks at the job.
const EVENTS_POLL: Duration = Duration::from_millis(250);
/// A comment line this often keeps proxies from closing a quiet event stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A job's progress as server-sent events: `status` whenever it changes (first at once),
/// then `done` with the final view, then the end. `: keep-alive` comments in between.
pub fn events(
    data: Arc<Data>,
    tenant: TenantId,
    first: JobView,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Send + 'static
{
    struct S {
        data: Arc<Data>,
        tenant: TenantId,
        last: Option<JobView>,
        pending: Option<JobView>,
        finished: bool,
        quiet: Duration,
    }
    let frame = crate::ai::chat::frame;
    futures_util::stream::unfold(
        S {
            data,
            tenant,
            last: None,
            pending: Some(first),
            finished: false,
            quiet: Duration::ZERO,
        },
        move |mut s| async move {
            loop {
                if s.finished {
                    return None;
                }
                if let Some(v) = s.pending.take() {
                    let changed = s.last.as_ref().is_none_or(|l| {
                        (l.status, l.attempts, l.updated_at) != (v.status, v.attempts, v.updated_at)
                    });
                    if v.status.is_final() {
                        s.finished = true;
                        let mut out = Vec::new();
                        if changed {
                            out.extend_from_slice(&frame("status", &v));
                        }
                        out.extend_from_slice(&frame("done", &v));
                        return Some((Ok(bytes::Bytes::from(out)), s));
                    }
                    if changed {
                        s.last = Some(v.clone());
                        s.quiet = Duration::ZERO;
                        return Some((Ok(frame("status", &v)), s));
                    }
                }
                tokio::time::sleep(EVENTS_POLL).await;
                s.quiet += EVENTS_POLL;
                let id = s.last.as_ref().map(|l| l.id.clone()).unwrap_or_default();
                match s.data.store.get_job(&s.tenant, &id).await {
                    Ok(Some(job)) => s.pending = Some(JobView::from(job)),
                    Ok(None) => return None,
                    Err(e) => tracing::warn!(job = %id, "reading a job for its event stream: {e}"),
                }
                if s.quiet >= KEEP_ALIVE {
                    s.quiet = Duration::ZERO;
                    return Some((Ok(bytes::Bytes::from_static(b": keep-alive\n\n")), s));
                }
            }
        },
    )
}

/// What a feature request became.
#[derive(Debug)]
pub enum Outcome<R> {
    /// Answered now.
    Done(R),
    /// The provider is unavailable and the policy is `queue_and_retry`: accepted as this job.
    Queued(Box<Job>),
}

/// Runs a feature request; when the provider is unavailable and the tenant's policy is
/// `queue_and_retry`, stores the request as a job instead of failing.
pub async fn run_or_queue<T, R, F>(
    state: &AppState,
    data: &Data,
    tenant: &TenantId,
    feature: &str,
    request: &T,
    run: F,
) -> Result<Outcome<R>, FeatureError>
where
    T: Serialize,
    F: Future<Output = Result<R, FeatureError>>,
{
    match run.await {
        Ok(answer) => Ok(Outcome::Done(answer)),
        Err(FeatureError::Ai(e @ AiError::Unavailable { .. }))
            if policy(state, tenant) == FallbackPolicy::QueueAndRetry =>
        {
            let request = serde_json::to_value(request)
                .map_err(|e| ServiceError::Task(format!("encoding a queued request: {e}")))?;
            let job = enqueue(state, data, tenant, feature, &request, &error_body(&e)).await?;
            Ok(Outcome::Queued(Box::new(job)))
        }
        Err(e) => Err(e),
    }
}

/// Accepts a request as a job; its first retry is one backoff from now.
async fn enqueue(
    state: &AppState,
    data: &Data,
    tenant: &TenantId,
    feature: &str,
    request: &Value,
    why: &str,
) -> Result<Job, ServiceError> {
    let settings = state.current().config.queue;
    let now = Timestamp::now();
    let deadline = now.plus(settings.deadline);
    let job = data
        .store
        .enqueue_job(
            tenant,
            feature,
            request,
            now.plus(backoff(settings.backoff, 1)),
            deadline,
            now,
            why,
        )
        .await?;
    tracing::info!(%tenant, feature, job = %job.id, "AI provider unavailable: request queued for retry (queue_and_retry)");
    state.jobs.wake();
    Ok(job)
}

/// Seconds since `oldest` (0 when there is none).
pub fn age_seconds(oldest: Option<Timestamp>) -> f64 {
    oldest.map_or(0.0, |t| {
        (Timestamp::now().0.saturating_sub(t.0)).max(0) as f64 / 1e6
    })
}

/// The delay after `attempts` failed attempts: the first backoff doubled per attempt, with
/// jitter (between half and all of it), at most five minutes.
pub fn backoff(first: Duration, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    let step = first
        .saturating_mul(1u32 << exp)
        .min(MAX_BACKOFF.max(first));
    let half = step / 2;
    half + Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64))
}

/// Starts the workers. They run until the process ends.
pub fn spawn_workers(state: Arc<AppState>) {
    let workers = state.current().config.queue.workers;
    tokio::spawn({
        let state = state.clone();
        async move {
            // A single-process SQLite tenant plane is the only possible lease holder: whatever
            // a previous run held is free now, not a lease-length from now.
            if let Some(data) = state.data()
                && data.store.kind() == DatabaseKind::Sqlite
            {
                match data
                    .store
                    .release_foreign_leases(&state.jobs.owner, Timestamp::now())
                    .await
                {
                    Ok(n) if n > 0 => {
                        tracing::info!(jobs = n, "requeued AI jobs interrupted by the previous run")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("cannot requeue interrupted AI jobs: {e}"),
                }
                // The previous run's circuit breaker set some jobs' waits; this run's breaker
                // knows nothing yet, so they are tried now. With several replicas the others'
                // breakers still hold, so PostgreSQL keeps the waits.
                retry_now(&state, "the tenant plane restarted").await;
            }
            state.jobs.wake();
        }
    });
    for _ in 0..workers {
        tokio::spawn(worker(state.clone()));
    }
}

/// Makes every queued job due now and wakes the workers: what their waits were based on (a
/// circuit breaker's cool-down, the previous provider settings) no longer holds.
pub async fn retry_now(state: &AppState, why: &str) {
    let Some(data) = state.data() else {
        return;
    };
    match data.store.retry_queued_now(Timestamp::now()).await {
        Ok(n) if n > 0 => tracing::info!(jobs = n, "queued AI jobs retried now: {why}"),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot retry queued AI jobs now ({why}): {e}"),
    }
    state.jobs.wake();
}

async fn worker(state: Arc<AppState>) {
    loop {
        // Register for a wake-up before looking, so a job queued meanwhile is not missed.
        let woken = state.jobs.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let worked = match state.data() {
            Some(data) => match step(&state, data).await {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::warn!("AI job queue: {e}");
                    false
                }
            },
            None => false,
        };
        if !worked {
            tokio::select! {
                () = woken => {},
                () = tokio::time::sleep(POLL) => {},
            }
        }
    }
}

/// Expires overdue jobs, then claims and runs one. Returns whether it ran a job.
pub async fn step(
    state: &Arc<AppState>,
    data: &Arc<Data>,
) -> Result<bool, crate::store::StoreError> {
    let store = &data.store;
    let owner = state.jobs.owner.clone();
    let expired = store.expire_jobs(Timestamp::now()).await?;
    if expired > 0 {
        tracing::warn!(
            jobs = expired,
            "AI jobs expired: their deadline passed before the provider came back"
        );
    }
    let Some(job) = store.claim_job(&owner, LEASE, Timestamp::now()).await? else {
        return Ok(false);
    };
    tracing::info!(tenant = %job.tenant, job = %job.id, feature = %job.feature, attempt = job.attempts, "running a queued AI request");

    // Run it, renewing the lease until it ends.
    let run = execute(state, data, &job);
    tokio::pin!(run);
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.tick().await;
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = renew.tick() => {
                if !store.renew_job_lease(&job.id, &owner, LEASE, Timestamp::now()).await.unwrap_or(false) {
                    tracing::warn!(job = %job.id, "lost the lease of a running AI job; another worker took it");
                }
            }
        }
    };
    let now = Timestamp::now();
    let (outcome, error) = match &result {
        Ok(value) => (JobOutcome::Succeeded(value), None),
        Err(Attempt::Retry(why, hint)) => {
            let first = state.current().config.queue.backoff;
            // The provider's own hint (a retry-after, or when its open circuit lets a probe
            // through) beats guessing; a little jitter spreads the jobs that waited for it.
            let delay = match hint {
                Some(h) => *h + Duration::from_millis(fastrand::u64(0..=first.as_millis() as u64)),
                None => backoff(first, job.attempts),
            };
            let at = now.plus(delay);
            if at >= job.deadline {
                (JobOutcome::Expired(why), Some(why))
            } else {
                (JobOutcome::Retry { error: why, at }, Some(why))
            }
        }
        Err(Attempt::Fail(why)) => (JobOutcome::Failed(why), Some(why)),
    };
    let status = match outcome {
        JobOutcome::Succeeded(_) => JobStatus::Succeeded,
        JobOutcome::Retry { .. } => JobStatus::Queued,
        JobOutcome::Failed(_) => JobStatus::Failed,
        JobOutcome::Expired(_) => JobStatus::Expired,
    };
    if store.finish_job(&job.id, &owner, outcome, now).await? {
        tracing::info!(
            tenant = %job.tenant, job = %job.id, feature = %job.feature, attempt = job.attempts,
            status = status.as_str(), error = error.map(String::as_str).unwrap_or(""),
            "AI job attempt recorded"
        );
    } else {
        tracing::warn!(job = %job.id, "an AI job finished after its lease ran out; the other worker's outcome stands");
    }
    Ok(true)
}

/// How an attempt went wrong.
enum Attempt {
    /// Try again later (the provider is still unavailable, the store is down), after the
    /// provider's hint when it gave one.
    Retry(String, Option<Duration>),
    /// Retrying cannot help; the error body is kept.
    Fail(String),
}

async fn execute(state: &Arc<AppState>, data: &Arc<Data>, job: &Job) -> Result<Value, Attempt> {
    let tenant = TenantId::parse(&job.tenant).map_err(|e| Attempt::Fail(e.to_string()))?;
    let bad = |e: serde_json::Error| Attempt::Fail(format!("the stored request is not valid: {e}"));
    let result = match job.feature.as_str() {
        RCA => {
            let req = serde_json::from_value(job.request.clone()).map_err(bad)?;
            Box::pin(crate::ai::rca::analyse(state, data, &tenant, &req))
                .await
                .map(|a| serde_json::to_value(a).unwrap_or_default())
        }
        RUNBOOK => {
            let req = serde_json::from_value(job.request.clone()).map_err(bad)?;
            Box::pin(crate::ai::runbook::generate(state, data, &tenant, &req))
                .await
                .map(|a| serde_json::to_value(a).unwrap_or_default())
        }
        CHAT => {
            let req = serde_json::from_value(job.request.clone()).map_err(bad)?;
            match crate::ai::chat::prepare(state, data, &tenant, &req).await {
                Ok(p) => Box::pin(crate::ai::chat::answer(p))
                    .await
                    .map(|a| serde_json::to_value(a).unwrap_or_default())
                    .map_err(FeatureError::from),
                Err(e) => Err(e),
            }
        }
        other => {
            return Err(Attempt::Fail(format!(
                "no AI feature named {other:?} can run queued requests"
            )));
        }
    };
    result.map_err(|e| match e {
        FeatureError::Ai(e @ AiError::Unavailable { retry_after, .. }) => {
            Attempt::Retry(error_body(&e), retry_after)
        }
        FeatureError::Ai(e @ AiError::NotConfigured) => Attempt::Retry(error_body(&e), None),
        FeatureError::Ai(e) => Attempt::Fail(error_body(&e)),
        FeatureError::Data(ServiceError::Store(s)) if s.is_unavailable() => {
            Attempt::Retry(format!("the database is unavailable: {s}"), None)
        }
        FeatureError::Data(e) => Attempt::Fail(e.to_string()),
    })
}

/// An AI error as the job's error: the connection test's error shape, as JSON text.
fn error_body(e: &AiError) -> String {
    serde_json::to_string(&e.body().1).unwrap_or_else(|_| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        let first = Duration::from_secs(5);
        for attempts in 1..20 {
            let step = first
                .saturating_mul(1u32 << (attempts.min(16) - 1))
                .min(MAX_BACKOFF);
            let d = backoff(first, i64::from(attempts));
            assert!(d >= step / 2 && d <= step, "{attempts}: {d:?}");
        }
        assert!(backoff(Duration::from_millis(100), 1) <= Duration::from_millis(100));
    }
}

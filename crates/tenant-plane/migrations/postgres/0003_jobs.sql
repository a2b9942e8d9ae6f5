-- The durable queue of AI requests accepted under the queue_and_retry policy.
CREATE TABLE ai_jobs (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    feature         TEXT NOT NULL,
    request         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    deadline        BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    result          TEXT,
    error           TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX ai_jobs_ready ON ai_jobs (status, next_attempt_at);
CREATE INDEX ai_jobs_tenant ON ai_jobs (tenant, created_at);

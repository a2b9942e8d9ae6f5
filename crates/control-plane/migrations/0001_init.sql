-- The control plane's schema. The same text runs on SQLite and PostgreSQL: TEXT ids
-- (UUIDv7), BIGINT amounts and Unix-second timestamps, TEXT for JSON and for sealed secrets.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Bumped whenever anything a tenant plane polls for changes, so long polls can wait on a
    -- one-row read.
    settings_version BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE clusters (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    enroll_token_hash TEXT UNIQUE,
    credential_hash TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    enrolled_at BIGINT,
    last_seen_at BIGINT,
    status_json TEXT,
    UNIQUE (tenant_id, name)
);

-- One row per (tenant, cluster or '' for the tenant level, slot): the active setting and the
-- latest candidate that is not active (a failed draft, or one pending validation).
CREATE TABLE ai_settings (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    cluster_id TEXT NOT NULL,
    slot TEXT NOT NULL,
    state TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    secrets_sealed TEXT,
    reason TEXT,
    validated_at BIGINT,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, cluster_id, slot)
);

CREATE TABLE validations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    -- The settings row it checks: '' for the tenant level, else the cluster.
    scope_cluster_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    finished_by TEXT
);
CREATE INDEX validations_pending ON validations (tenant_id, state);

CREATE TABLE credit_accounts (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    -- Thousandths of a credit. The CHECK is a second line of defence; debits are conditional
    -- updates that never take it below zero.
    balance BIGINT NOT NULL CHECK (balance >= 0),
    updated_at BIGINT NOT NULL
);

-- Append-only. Every change of a balance writes one row here in the same transaction.
CREATE TABLE credit_ledger (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    kind TEXT NOT NULL,
    amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_id TEXT,
    model TEXT,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    note TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX credit_ledger_recent ON credit_ledger (tenant_id, created_at);

CREATE TABLE credit_reservations (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    request_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    state TEXT NOT NULL,
    charged BIGINT,
    response_json TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);

CREATE TABLE usage_reports (
    cluster_id TEXT NOT NULL,
    report_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, report_id)
);

CREATE TABLE usage_counts (
    tenant_id TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    route TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    calls BIGINT NOT NULL,
    failed_calls BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, cluster_id, day, route, provider, model)
);

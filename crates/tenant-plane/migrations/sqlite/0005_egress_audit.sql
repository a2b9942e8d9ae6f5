-- The egress audit log: one row per model call, and where its data went.
CREATE TABLE egress_audit (
    id                   TEXT PRIMARY KEY,
    tenant               TEXT NOT NULL,
    ts                   BIGINT NOT NULL,
    feature              TEXT NOT NULL,
    provider             TEXT NOT NULL,
    model                TEXT NOT NULL,
    endpoint_host        TEXT NOT NULL,
    prompt_tokens        BIGINT NOT NULL,
    completion_tokens    BIGINT NOT NULL,
    latency_ms           BIGINT NOT NULL,
    outcome              TEXT NOT NULL,
    destination          TEXT NOT NULL,
    left_network         BOOLEAN NOT NULL,
    cloud_fallback_model TEXT
);
CREATE INDEX egress_audit_tenant_ts ON egress_audit (tenant, ts, id);
CREATE INDEX egress_audit_ts ON egress_audit (ts);

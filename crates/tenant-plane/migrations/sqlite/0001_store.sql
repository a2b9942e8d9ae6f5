-- The tenant plane's store, SQLite flavour. Kept side by side with ../postgres/0001_store.sql:
-- the tables and columns are the same; only types and collations differ.
--
-- Conventions: every row belongs to a tenant; ids are UUIDv7 strings; times are microseconds
-- since the Unix epoch (UTC) in BIGINT columns, so range filters and ordering are the same SQL
-- on both engines. `seq` is the tenant's write batch that last touched the row (see
-- tenant_feed); the search index and the embedder tail it.

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per tenant. Every write transaction first bumps `seq` here; the row lock that takes
-- serialises a tenant's writers, so batch numbers become visible in commit order and a reader
-- that has seen batch N has seen every batch before it. `vseq` does the same for vectors.
CREATE TABLE tenant_feed (
    tenant TEXT PRIMARY KEY,
    seq    BIGINT NOT NULL,
    vseq   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE incidents (
    tenant        TEXT NOT NULL,
    id            TEXT NOT NULL,
    external_id   TEXT,
    title         TEXT NOT NULL,
    description   TEXT NOT NULL,
    service       TEXT NOT NULL,
    severity      TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    resolved_at   BIGINT,
    last_alert_at BIGINT,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX incidents_by_start ON incidents (tenant, started_at, id);
CREATE INDEX incidents_by_service ON incidents (tenant, service, status);
CREATE INDEX incidents_by_seq ON incidents (tenant, seq);

CREATE TABLE alerts (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    service     TEXT NOT NULL,
    severity    TEXT NOT NULL,
    source      TEXT,
    fingerprint TEXT,
    labels      TEXT NOT NULL,
    fired_at    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    correlation TEXT,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX alerts_by_incident ON alerts (tenant, incident_id, fired_at);
CREATE INDEX alerts_by_fingerprint ON alerts (tenant, fingerprint);

CREATE TABLE changes (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    service     TEXT NOT NULL,
    summary     TEXT NOT NULL,
    details     TEXT NOT NULL,
    author      TEXT,
    reference   TEXT,
    occurred_at BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX changes_by_incident ON changes (tenant, incident_id, occurred_at);

CREATE TABLE log_lines (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    incident_id TEXT,
    service     TEXT NOT NULL,
    ts          BIGINT NOT NULL,
    level       TEXT NOT NULL,
    message     TEXT NOT NULL,
    attrs       TEXT,
    template    BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX log_lines_by_seq ON log_lines (tenant, seq, id);
CREATE INDEX log_lines_by_incident ON log_lines (tenant, incident_id, ts);
CREATE INDEX log_lines_by_service ON log_lines (tenant, service, ts);
CREATE INDEX log_lines_by_template ON log_lines (tenant, template, ts);

-- One row per distinct message shape (numbers, ids and addresses masked): what the embedder
-- embeds for logs, and what error-pattern summaries group by.
CREATE TABLE log_templates (
    tenant   TEXT NOT NULL,
    template BIGINT NOT NULL,
    example  TEXT NOT NULL,
    service  TEXT NOT NULL,
    level    TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (tenant, template)
);
CREATE INDEX log_templates_by_seq ON log_templates (tenant, seq, template);

CREATE TABLE runbooks (
    tenant     TEXT NOT NULL,
    id         TEXT NOT NULL,
    title      TEXT NOT NULL,
    content    TEXT NOT NULL,
    services   TEXT NOT NULL,
    tags       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX runbooks_by_seq ON runbooks (tenant, seq);

-- Vectors, tagged with the embedding model that made them: search only ever compares vectors
-- of the model in force, so changing the model re-embeds instead of mixing vector spaces.
CREATE TABLE embeddings (
    tenant       TEXT NOT NULL,
    model        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    doc_id       TEXT NOT NULL,
    chunk        INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    dims         INTEGER NOT NULL,
    vector       BLOB NOT NULL,
    vseq         BIGINT NOT NULL,
    PRIMARY KEY (tenant, model, kind, doc_id, chunk)
);
CREATE INDEX embeddings_by_vseq ON embeddings (tenant, model, vseq);

-- Embedding progress per tenant and model; the lease lets one replica at a time embed.
CREATE TABLE embedding_jobs (
    tenant      TEXT NOT NULL,
    model       TEXT NOT NULL,
    done_seq    BIGINT NOT NULL,
    complete    BOOLEAN NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, model)
);

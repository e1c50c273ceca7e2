-- 001_init.sql — the system tables of zcrm-sync (DESIGN.md, "Data model").
-- Applied by the migration runner with search_path set to the configured
-- schema, so tables are named unqualified. Module tables (leads, contacts…)
-- are not here: common/schema.c creates and evolves them from Zoho's fields
-- metadata.

-- One row per module: watermark, notification channel, current bulk job.
CREATE TABLE sync_state (
    module          text PRIMARY KEY,
    watermark       timestamptz,          -- last successful sync, Zoho's clock
    channel_id      bigint,
    channel_expiry  timestamptz,          -- as granted by Zoho (read back)
    channel_checked timestamptz,          -- last time Zoho confirmed it live
    channel_status  text NOT NULL DEFAULT 'none'
                    CHECK (channel_status IN ('none', 'active', 'expired', 'missing', 'disabled')),
    bulk_kind       text,                 -- initial | incremental | reconcile
    bulk_job_id     text,                 -- the job of the page in progress
    bulk_page       integer,              -- page being exported (1-based)
    bulk_state      text,                 -- created | downloaded | merged | done
    bulk_started    timestamptz,          -- creation time of the first job (Zoho's clock)
    bulk_from       timestamptz,          -- criteria window of an incremental export
    bulk_to         timestamptz,
    table_ready     boolean NOT NULL DEFAULT false,
    last_run_id     bigint,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Every notification as received: the durable log, replayable.
CREATE TABLE inbox (
    id            bigserial PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    channel_id    bigint NOT NULL,
    module        text NOT NULL,
    operation     text NOT NULL CHECK (operation IN ('insert', 'update', 'delete')),
    ids           bigint[] NOT NULL,
    server_time   timestamptz NOT NULL,
    raw           text NOT NULL,
    via           text NOT NULL DEFAULT 'webhook' CHECK (via IN ('webhook', 'spool')),
    processed_at  timestamptz,
    error         text
);
-- A redelivered notification is byte-identical: keep one.
CREATE UNIQUE INDEX inbox_raw_once ON inbox (md5(raw));
CREATE INDEX inbox_pending ON inbox (module, id) WHERE processed_at IS NULL;

-- Ids whose full record must be fetched.
CREATE TABLE dirty (
    module       text NOT NULL,
    id           bigint NOT NULL,
    since        timestamptz NOT NULL DEFAULT now(),
    server_time  timestamptz,             -- newest notification that marked it
    attempts     integer NOT NULL DEFAULT 0,
    next_try     timestamptz NOT NULL DEFAULT now(),
    last_error   text,
    PRIMARY KEY (module, id)
);
CREATE INDEX dirty_due ON dirty (module, next_try);

-- Bulk job callbacks as received: a hint to poll now, never trusted alone
-- (Zoho signs nothing here; the job status API is the source of truth).
CREATE TABLE bulk_callbacks (
    job_id       text PRIMARY KEY,
    state        text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    raw          text NOT NULL
);

-- Time ranges in which notifications may have been missed.
CREATE TABLE coverage_gaps (
    id         bigserial PRIMARY KEY,
    module     text NOT NULL,
    gap_from   timestamptz NOT NULL,
    gap_to     timestamptz,               -- NULL: still open-ended
    reason     text NOT NULL,
    opened_at  timestamptz NOT NULL DEFAULT now(),
    closed_at  timestamptz,
    closed_by  bigint
);
CREATE INDEX coverage_gaps_open ON coverage_gaps (module) WHERE closed_at IS NULL;

-- One row per batch run.
CREATE TABLE runs (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL,
    module        text,
    host          text,
    pid           integer,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    outcome       text NOT NULL DEFAULT 'running'
                  CHECK (outcome IN ('running', 'ok', 'failed', 'interrupted', 'dry-run')),
    pages         integer NOT NULL DEFAULT 0,
    rows_seen     bigint NOT NULL DEFAULT 0,
    rows_applied  bigint NOT NULL DEFAULT 0,
    rows_deleted  bigint NOT NULL DEFAULT 0,
    details       jsonb,
    message       text
);
CREATE INDEX runs_recent ON runs (kind, module, started_at DESC);

-- The shared access token, one row per OAuth client.
CREATE TABLE oauth_token (
    client_id     text PRIMARY KEY,
    access_token  text,
    api_domain    text,
    expires_at    timestamptz,
    refreshed_at  timestamptz,
    refreshes     bigint NOT NULL DEFAULT 0
);

-- Field metadata the module tables were built from.
CREATE TABLE fields (
    module       text NOT NULL,
    api_name     text NOT NULL,
    column_name  text NOT NULL,
    data_type    text NOT NULL,
    json_type    text,
    pg_type      text NOT NULL,
    field_id     text,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, api_name),
    UNIQUE (module, column_name)
);

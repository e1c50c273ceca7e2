-- 004_credits.sql — what zcrm-sync spends of the org's Zoho API credits.
--
-- Zoho meters every call in credits over a rolling 24 hours per org, shared
-- by all the org's integrations (shared/zoho-api.md §8.1). Every call a
-- program makes adds its price here, per minute, program and endpoint (the
-- simulator's route names), so that `zcrm-status` can show the last 24
-- hours; rows older than two days are pruned by incremental_sync.
CREATE TABLE zoho_credits (
    minute    timestamptz NOT NULL,   -- date_trunc('minute', now())
    program   text NOT NULL,          -- zcrm-webhook, zcrm-incremental-sync, …
    endpoint  text NOT NULL,          -- bulk_create, records, watch, …
    calls     bigint NOT NULL DEFAULT 0,
    credits   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, program, endpoint)
);

-- Zoho's own figure: X-API-CREDITS-REMAINING, sent once half the day's
-- credits are used. remaining is NULL when the last answer had no header
-- (more than half left); the batch programs defer their bulk work below
-- [zoho] credit_floor.
CREATE TABLE zoho_credit_state (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    remaining  bigint,
    seen_at    timestamptz NOT NULL
);

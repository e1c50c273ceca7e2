-- 009_users.sql — Zoho's users, so that owners resolve with a join, and the
-- textarea type of each field (rich text is fetched in full).
--
-- zcrm.users mirrors GET /crm/v6/users?type=AllUsers: one row per user,
-- deactivated ones kept (status says so: their records still name them).
-- incremental_sync refreshes it at most once per [sync] users_interval,
-- with one call of If-Modified-Since (common/users.c). Readable by
-- [database] read_role like the module tables:
--   SELECT l.id, l.last_name, u.name AS owner
--     FROM leads_live l LEFT JOIN users u ON u.id = l.owner;
CREATE TABLE IF NOT EXISTS users (
    id             bigint PRIMARY KEY,
    name           text,
    email          text,
    role           text,
    profile        text,
    status         text,
    modified_time  timestamptz,
    synced_at      timestamptz NOT NULL DEFAULT now()
);

-- Where the users walk stands (one row): the If-Modified-Since of the walk
-- in progress, its next page, the newest Modified_Time it met, and the
-- last call (the interval gate).
CREATE TABLE IF NOT EXISTS users_state (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    since        timestamptz,          -- If-Modified-Since of this walk (NULL: all)
    next_page    integer NOT NULL DEFAULT 1,
    newest       timestamptz,          -- newest Modified_Time seen in this walk
    checked_at   timestamptz,          -- last call, whatever it answered
    last_error   text
);
INSERT INTO users_state DEFAULT VALUES ON CONFLICT DO NOTHING;

-- textarea.type of a textarea field (small, large, rich_text): Get Records
-- truncates rich text to 500 characters, the fetch path asks for it in full.
ALTER TABLE fields ADD COLUMN IF NOT EXISTS textarea_type text;

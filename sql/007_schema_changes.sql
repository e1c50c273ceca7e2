-- 007_schema_changes.sql — Zoho's fields change while we run (issue 16):
-- fields are tracked by Zoho's field id, a field Zoho removed or renamed
-- keeps its column, and a type change that cannot convert in place gets a
-- new column beside the old one (common/schemasync.c, docs/architecture.md
-- "Schema changes").
--
-- removed_at: Zoho's metadata no longer lists the field (its column stays,
--   with the values it had; exports are not expected to carry it); NULL
--   again if it comes back.
-- superseded_at: the field changed type in a way its column cannot hold
--   (text → number, …); the column stays as it was, frozen, and a new row
--   (same api_name and field_id) names the column that takes the values.
-- previous_api_names: the field's former API names, oldest first (a rename
--   keeps the column the application reads).
ALTER TABLE fields
    ADD COLUMN removed_at         timestamptz,
    ADD COLUMN superseded_at      timestamptz,
    ADD COLUMN previous_api_names text[],
    -- the column lacks Zoho's values for the records held (added to a
    -- table that had rows, retyped, listed again) since then: back-filled
    -- by the next schema refresh that may (common/schemasync.c)
    ADD COLUMN backfill_due       timestamptz;

-- A superseded row shares its api_name with the row that replaced it: the
-- API name is unique among the current rows only.
ALTER TABLE fields DROP CONSTRAINT fields_pkey;
CREATE UNIQUE INDEX fields_current ON fields (module, api_name) WHERE superseded_at IS NULL;
CREATE INDEX fields_by_id ON fields (module, field_id);

-- When the fields metadata was last read: incremental_sync reads it at most
-- every [sync] schema_check seconds, the webhook at most once a minute
-- when a fetch names a field Zoho no longer knows (one claim, all hosts).
-- NULL: never, or a notification's affected_values named a field we do not
-- know: the next incremental_sync (or webhook refresh) reads it.
ALTER TABLE sync_state ADD COLUMN fields_checked timestamptz;

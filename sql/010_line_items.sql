-- 010_line_items.sql — line items (issue 17): a module's subforms
-- (Invoiced_Items of Invoices, Quoted_Items of Quotes, custom subforms)
-- become child tables <parent table>__<subform>, one row per line with its
-- Zoho id and parent_id (common/subform.c). Safe to run twice (IF NOT
-- EXISTS): a test re-runs the newest migration.
--
-- subforms: which modules have which subforms, and the child table of each.
CREATE TABLE IF NOT EXISTS subforms (
    module         text NOT NULL,          -- the parent module (Invoices)
    field          text NOT NULL,          -- its subform field (Invoiced_Items)
    subform_module text NOT NULL,          -- the subform's module: fields metadata, listing
    table_name     text NOT NULL UNIQUE,   -- invoices__invoiced_items
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, field)
);

-- The typed columns of each child table, from the subform's own fields
-- metadata (the same data_type -> type mapping as the module tables).
CREATE TABLE IF NOT EXISTS subform_fields (
    table_name   text NOT NULL REFERENCES subforms (table_name) ON DELETE CASCADE,
    api_name     text NOT NULL,
    column_name  text NOT NULL,
    data_type    text NOT NULL,
    pg_type      text NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, api_name),
    UNIQUE (table_name, column_name)
);

-- When each parent's lines were read from Zoho (Zoho's clock, our estimate):
-- the lines of a parent are written only by a read at least as new as the
-- stored one (the fetch rule, applied to the set of lines), and they are
-- stale while the parent's modified_time is newer than read_at (a parent
-- written by a bulk export, which never carries lines). Reconcile and
-- initial_sync refresh stale sets (common/fetch.c, fetch_stale_lines).
CREATE TABLE IF NOT EXISTS line_sets (
    table_name  text NOT NULL REFERENCES subforms (table_name) ON DELETE CASCADE,
    parent_id   bigint NOT NULL,
    read_at     timestamptz NOT NULL,
    synced_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, parent_id)
);

-- 005_cells.sql — a bad cell costs that cell, not the module (issue 14,
-- item 3), and an export that lacks a known column says so (item 2).
--
-- A value Zoho sends that does not cast to its column's type ("lots" in a
-- bigint column, after a field changed type in Zoho) used to fail the whole
-- page, on every run. Now the merge, on such an error (SQLSTATE class 22),
-- finds the cells that do not cast, records them here, stores them as NULL
-- and merges again (common/merge.c). A bad cell is a fact about the data,
-- not a temporary failure: the run succeeds.
CREATE TABLE cell_errors (
    module      text NOT NULL,
    id          bigint,                   -- the record (NULL: its id did not cast)
    field       text NOT NULL,            -- Zoho's API name
    value       text NOT NULL,            -- the text Zoho sent
    error       text NOT NULL,            -- PostgreSQL's message for the cast
    source      text NOT NULL,            -- bulk | fetch
    first_seen  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),  -- last time a merge met it
    UNIQUE (module, id, field)
);

-- NULL if v casts to type t (as the merge casts it), else the cast's error
-- message. Used only on the merge's retry path, after a cast failed: the
-- exception block makes it far slower than the plain cast.
CREATE FUNCTION cast_error(v text, t regtype) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT %L::%s', v, t);
    RETURN NULL;
EXCEPTION WHEN data_exception THEN
    RETURN SQLERRM;
END $$;

-- v cast to the type of t, or NULL if it does not cast: the affected_values
-- preview (common/inbox.c), where the fetch that follows records the cell.
CREATE FUNCTION try_cast(v text, t anyelement) RETURNS anyelement
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT %L::%s', v, pg_typeof(t)) INTO t;
    RETURN t;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END $$;

-- What the last merged page of an export lacked or had in excess, against
-- the fields metadata (common/bulk.c): a known column missing from the CSV
-- (a field hidden by field-level permission, or renamed) means the page's
-- rows are not merged but fetched by id; an unknown one is ignored. Both
-- are shown by zcrm-status.
ALTER TABLE sync_state
    ADD COLUMN export_missing  text,      -- API names, comma-separated; NULL: none
    ADD COLUMN export_extra    text,
    ADD COLUMN export_deferred bigint,    -- rows of those pages sent to be fetched
    ADD COLUMN export_checked  timestamptz;

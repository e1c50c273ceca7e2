-- 011_table_hooks.sql — what [database] notify_changes and [database]
-- history attach to the module tables (common/tablehooks.c creates and
-- drops the triggers; these are the functions they call).

-- Statement-level, after INSERT or UPDATE, with the rows written as the
-- transition table `written`: one NOTIFY on the channel "<schema>.<table>"
-- per 400 ids (a payload holds 8000 bytes; an id is at most 19 digits),
-- delivered when the transaction commits, never for one that rolls back.
CREATE FUNCTION notify_written_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, ids)
    FROM (SELECT string_agg(id::text, ',' ORDER BY id) AS ids
          FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / 400 AS chunk
                FROM written) w
          GROUP BY chunk) c;
    RETURN NULL;
END
$$;

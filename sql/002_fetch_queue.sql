-- 002_fetch_queue.sql — notified ids wait for their fetch as one row per
-- notification, not one row per id.
--
-- An insert or update notification used to upsert each of its ids into
-- `dirty` on the webhook's answer path: a heap row and two index entries per
-- id, half of PostgreSQL's time per notification (mean 7.45 ids;
-- docs/benchmarks.md, "Webhook"). Now it adds one row here, with its ids as
-- an array; a fetcher leases rows from the front for a minute (an update
-- of a column no index names: HOT), fetches their ids, merges the records and
-- deletes the rows in one transaction; a crash lets the lease lapse. `dirty` keeps only the ids a
-- fetch could not settle (Zoho failed or did not return them), with their
-- attempts and backoff.
CREATE TABLE fetch_queue (
    inbox_id     bigint PRIMARY KEY,      -- the notification (inbox.id)
    module       text NOT NULL,
    ids          bigint[] NOT NULL,
    server_time  timestamptz NOT NULL,    -- the notification's
    lease_until  timestamptz              -- a fetcher holds it until then
);

-- What an older webhook left in `dirty` stays there: the fetcher still
-- takes due ids from it.

-- Every id waiting for a fetch, whichever table holds it: what an operator
-- (and `status`) means by "dirty".
CREATE VIEW to_fetch AS
SELECT module, id, max(server_time) AS server_time, max(attempts) AS attempts,
       min(next_try) AS next_try, max(last_error) AS last_error
FROM (SELECT module, id, server_time, attempts, next_try, last_error FROM dirty
      UNION ALL
      SELECT module, unnest(ids), server_time, 0, coalesce(lease_until, server_time), NULL
      FROM fetch_queue) w
GROUP BY module, id;

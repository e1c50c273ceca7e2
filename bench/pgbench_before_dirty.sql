-- pgbench_before_dirty.sql — the transaction the webhook ran for one insert or
-- update notification before the one-statement record (common/inbox.c before
-- the bench-webhook change): BEGIN; inbox insert; table_ready lookup; dirty
-- upsert; UPDATE inbox SET processed_at; COMMIT — six round trips.
--
--   /usr/bin/python3 bench/bench_webhook.py --pgbench both
--
-- Bodies and mix as in pgbench_notify_dirty.sql (bench/pgbench_bodies.sql).
\set i random(1, 50000)
\set st random(1764000000000, 1799999999999)
BEGIN;
INSERT INTO zcrm.inbox (channel_id, module, operation, ids, server_time, raw, via)
  SELECT 1000000068001, 'Leads', b.op, b.ids, to_timestamp(:st::numeric / 1000),
         '{"server_time":' || :st::bigint || b.tail, 'webhook'
  FROM bench.bodies_dirty b WHERE b.i = :i::int
  ON CONFLICT ((md5(raw))) DO NOTHING RETURNING id AS inbox_id, ids
\gset
SELECT table_ready FROM zcrm.sync_state WHERE module = 'Leads';
INSERT INTO zcrm.dirty (module, id, server_time)
  SELECT DISTINCT 'Leads', unnest(:ids::bigint[]), to_timestamp(:st::numeric / 1000)
  ON CONFLICT (module, id) DO UPDATE
  SET server_time = greatest(dirty.server_time, excluded.server_time),
      next_try = least(dirty.next_try, now());
UPDATE zcrm.inbox SET processed_at = now() WHERE id = :inbox_id;
COMMIT;

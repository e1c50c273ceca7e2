-- pgbench_notify_dirty.sql — the SQL the webhook runs for one insert or
-- update notification (common/inbox.c: inbox_record, RECORD_SQL): one
-- statement, autocommit — the inbox row (written processed when the module
-- table is ready), the table_ready lookup and the notification's row in
-- fetch_queue (before sql/002_fetch_queue.sql: an upsert of each id into
-- dirty, which cost about as much again). The
-- PostgreSQL ceiling of `make bench-webhook`:
--
--   psql -f bench/pgbench_bodies.sql zcrm        # once: the bodies
--   pgbench -n -M prepared -c 64 -j 2 -T 15 \
--       -f bench/pgbench_notify_dirty.sql@90 -f bench/pgbench_notify_delete.sql@10 zcrm
--
-- Each transaction takes a random body of bench.bodies_dirty (the mix of
-- bench/wrk_webhook.lua; see pgbench_bodies.sql) and puts a random
-- server_time in front of it, so that no raw repeats; that lookup by key is
-- the only work here that the webhook's statement does not do. The webhook
-- sends ids as an array literal ($4::bigint[]); here they come from the
-- body's row.
-- pgbench_before_*.sql hold the six-statement transaction it replaced.
\set i random(1, 50000)
\set st random(1764000000000, 1799999999999)
WITH ready AS (
  SELECT coalesce((SELECT table_ready FROM zcrm.sync_state WHERE module = 'Leads'), false) AS ok),
 ins AS (
  INSERT INTO zcrm.inbox (channel_id, module, operation, ids, server_time, raw, via, processed_at)
  SELECT 1000000068001, 'Leads', b.op, b.ids, to_timestamp(:st::numeric / 1000),
         '{"server_time":' || :st::bigint || b.tail, 'webhook', CASE WHEN ready.ok THEN now() END
  FROM ready, bench.bodies_dirty b WHERE b.i = :i::int
  ON CONFLICT ((md5(raw))) DO NOTHING
  RETURNING id, processed_at IS NOT NULL AS applied, ids, operation),
 queued AS (
  INSERT INTO zcrm.fetch_queue (inbox_id, module, ids, server_time)
  SELECT ins.id, 'Leads', ins.ids, to_timestamp(:st::numeric / 1000)
  FROM ins WHERE ins.applied AND ins.operation <> 'delete')
SELECT id, applied FROM ins;

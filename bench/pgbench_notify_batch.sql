-- pgbench_notify_batch.sql — what the webhook sends PostgreSQL when
-- requests wait together (common/inbox.c: inbox_record_batch, then
-- merge_tombstones for the deletes among them): :batch notifications of the
-- mix (pgbench -D batch=16, webhook/webhook.h WEBHOOK_BATCH_MAX) in one
-- statement, then the deletes' tombstones, one transaction. The batched
-- ceiling of `make bench-webhook`, at as many clients as webhook threads:
--
--   pgbench -n -M prepared -c 4 -j 2 -T 15 -D batch=16 \
--       -f bench/pgbench_notify_batch.sql zcrm
--
-- Notifications per second = transactions per second × :batch. Each draws
-- its bodies from bench.bodies_dirty and (10 %) bench.bodies_delete
-- (pgbench_bodies.sql) in the statement itself, with distinct server_times;
-- the webhook sends them as parameter arrays instead (ids as bigint[]
-- literals to cast). The webhook's transaction wraps only batches with a
-- delete in them (about 5 of 6 at 16); this one always does.
\set st random(1764000000000, 1799999999999)
BEGIN;
WITH pick AS (
  SELECT k, random() < 0.1 AS del, random() AS r FROM generate_series(1, :batch) k),
 input AS (
  SELECT p.k, b.op AS operation, b.ids, :st::bigint + p.k AS ms,
         '{"server_time":' || (:st::bigint + p.k) || b.tail AS raw
  FROM pick p JOIN bench.bodies_dirty b ON NOT p.del AND b.i = 1 + floor(p.r * 50000)::int
  UNION ALL
  SELECT p.k, b.op, b.ids, :st::bigint + p.k,
         '{"server_time":' || (:st::bigint + p.k) || b.tail
  FROM pick p JOIN bench.bodies_delete b ON p.del AND b.i = 1 + floor(p.r * 10000)::int),
 ins AS (
  INSERT INTO zcrm.inbox (channel_id, module, operation, ids, server_time, raw, via, processed_at)
  SELECT 1000000068001, 'Leads', u.operation, u.ids, to_timestamp(u.ms::numeric / 1000),
         u.raw, 'webhook', CASE WHEN s.table_ready THEN now() END
  FROM input u LEFT JOIN zcrm.sync_state s ON s.module = 'Leads' ORDER BY u.k
  ON CONFLICT ((md5(raw))) DO NOTHING
  RETURNING id, module, operation, ids, server_time, raw, processed_at IS NOT NULL AS applied),
 queued AS (
  INSERT INTO zcrm.fetch_queue (inbox_id, module, ids, server_time)
  SELECT id, module, ids, server_time FROM ins WHERE applied AND operation <> 'delete'),
 answer AS (
  SELECT u.k, ins.applied FROM input u LEFT JOIN ins ON ins.raw = u.raw)
SELECT coalesce(array_agg(x.id), '{}') AS ids,
       coalesce(array_agg(extract(epoch FROM d.server_time)), '{}') AS tms,
       (SELECT count(*) FROM answer) AS answered
FROM ins d CROSS JOIN LATERAL unnest(d.ids) AS x(id)
WHERE d.operation = 'delete' AND d.applied
\gset
INSERT INTO zcrm.leads AS t (id, deleted_at, synced_at, source)
  SELECT DISTINCT ON (id) id, to_timestamp(ms), now(), 'notify'
  FROM unnest(:ids::bigint[], :tms::numeric[]) AS d(id, ms) ORDER BY id, ms DESC
  ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at,
    synced_at = now(), source = excluded.source
  WHERE (t.modified_time IS NULL OR t.modified_time <= excluded.deleted_at)
    AND (t.deleted_at IS NULL OR t.deleted_at < excluded.deleted_at);
DELETE FROM zcrm.dirty d USING unnest(:ids::bigint[], :tms::numeric[]) AS x(id, ms)
  WHERE d.module = 'Leads' AND d.id = x.id
    AND (d.server_time IS NULL OR d.server_time <= to_timestamp(x.ms));
COMMIT;

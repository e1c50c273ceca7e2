-- pgbench_notify_delete.sql — the SQL the webhook runs for one delete
-- notification (common/inbox.c: inbox_record, then merge_tombstones in
-- common/merge.c), one transaction; 10 % of the mix: BEGIN; the record
-- statement (its queue part does nothing for a delete); tombstones;
-- undirty; COMMIT. Bodies from bench.bodies_delete; see
-- pgbench_notify_dirty.sql and pgbench_bodies.sql.
\set i random(1, 10000)
\set st random(1764000000000, 1799999999999)
BEGIN;
WITH ready AS (
  SELECT coalesce((SELECT table_ready FROM zcrm.sync_state WHERE module = 'Leads'), false) AS ok),
 ins AS (
  INSERT INTO zcrm.inbox (channel_id, module, operation, ids, server_time, raw, via, processed_at)
  SELECT 1000000068001, 'Leads', b.op, b.ids, to_timestamp(:st::numeric / 1000),
         '{"server_time":' || :st::bigint || b.tail, 'webhook', CASE WHEN ready.ok THEN now() END
  FROM ready, bench.bodies_delete b WHERE b.i = :i::int
  ON CONFLICT ((md5(raw))) DO NOTHING
  RETURNING id, processed_at IS NOT NULL AS applied, ids, operation),
 queued AS (
  INSERT INTO zcrm.fetch_queue (inbox_id, module, ids, server_time)
  SELECT ins.id, 'Leads', ins.ids, to_timestamp(:st::numeric / 1000)
  FROM ins WHERE ins.applied AND ins.operation <> 'delete')
SELECT id, applied, ids, array_fill(:st::numeric / 1000, ARRAY[cardinality(ids)]) AS tms FROM ins
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

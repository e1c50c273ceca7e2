-- pgbench_before_delete.sql — the transaction the webhook ran for one delete
-- notification before the one-statement record: BEGIN; inbox insert;
-- table_ready lookup; tombstones and undirty (merge_tombstones in
-- common/merge.c); UPDATE inbox SET processed_at; COMMIT. See
-- pgbench_before_dirty.sql.
\set i random(1, 10000)
\set st random(1764000000000, 1799999999999)
BEGIN;
INSERT INTO zcrm.inbox (channel_id, module, operation, ids, server_time, raw, via)
  SELECT 1000000068001, 'Leads', b.op, b.ids, to_timestamp(:st::numeric / 1000),
         '{"server_time":' || :st::bigint || b.tail, 'webhook'
  FROM bench.bodies_delete b WHERE b.i = :i::int
  ON CONFLICT ((md5(raw))) DO NOTHING
  RETURNING id AS inbox_id, ids, array_fill(:st::numeric / 1000, ARRAY[cardinality(ids)]) AS tms
\gset
SELECT table_ready FROM zcrm.sync_state WHERE module = 'Leads';
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
UPDATE zcrm.inbox SET processed_at = now() WHERE id = :inbox_id;
COMMIT;

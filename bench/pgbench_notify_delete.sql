-- pgbench_notify_delete.sql — the SQL the webhook runs for one delete
-- notification (common/inbox.c: inbox_record → apply → merge_tombstones in
-- common/merge.c), one transaction; 10 % of the mix. See
-- pgbench_notify_dirty.sql for how to run it and what it builds.
\set r random(1, 1000)
\set n CASE WHEN :r <= 700 THEN 1 WHEN :r <= 900 THEN random(2, 10) ELSE random(11, 100) END
\set k random(1, 1000000 - :n + 1)
\set st random(1764000000000, 1799999999999)
BEGIN;
INSERT INTO zcrm.inbox (channel_id, module, operation, ids, server_time, raw, via)
  SELECT 1000000068001, 'Leads', 'delete', x.ids, to_timestamp(:st::numeric / 1000),
         format('{"server_time":%s,"query_params":{},"module":"Leads","resource_uri":"https://www.zohoapis.com/crm/v2/Leads","ids":[%s],"affected_fields":[],"operation":"delete","channel_id":"1000000068001","token":"test-token-0123456789"}',
                :st::bigint, x.q),
         'webhook'
  FROM (SELECT array_agg(i) AS ids, string_agg('"' || i || '"', ',') AS q
        FROM (SELECT 4150868000000000000 + :k::bigint + g AS i FROM generate_series(0, :n::int - 1) g) s) x
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

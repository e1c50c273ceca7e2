-- pgbench_notify_dirty.sql — the SQL the webhook runs for one insert or
-- update notification (common/inbox.c: inbox_record → apply), one
-- transaction, statement for statement: the ceiling of `make bench-webhook`.
--
--   pgbench -n -M prepared -c 64 -j 2 -T 15 \
--       -f bench/pgbench_notify_dirty.sql@90 -f bench/pgbench_notify_delete.sql@10 zcrm
--
-- Same mix as bench/wrk_webhook.lua: 1 id 70 %, 2–10 ids 20 %, 11–100 ids
-- 10 %; update 70 : insert 20 (this script is 90 % of the transactions);
-- update ids from a pool of 1,000,000 records, insert ids new. The body the
-- webhook stores as raw is rebuilt here by format() with a random
-- server_time, so every raw is distinct (no duplicate fast path). Building
-- the ids and the body in the INSERT (generate_series, string_agg) is work
-- the webhook does not ask of PostgreSQL — it sends them as parameters — so
-- this ceiling is, if anything, a little low.
\set r random(1, 1000)
\set n CASE WHEN :r <= 700 THEN 1 WHEN :r <= 900 THEN random(2, 10) ELSE random(11, 100) END
\set upd CASE WHEN random(1, 90) <= 70 THEN 1 ELSE 0 END
\set k CASE WHEN :upd = 1 THEN random(1, 1000000 - :n + 1) ELSE random(10000000000, 99999999999 - :n) END
\set st random(1764000000000, 1799999999999)
BEGIN;
INSERT INTO zcrm.inbox (channel_id, module, operation, ids, server_time, raw, via)
  SELECT 1000000068001, 'Leads', op, x.ids, to_timestamp(:st::numeric / 1000),
         format('{"server_time":%s,"query_params":{},"module":"Leads","resource_uri":"https://www.zohoapis.com/crm/v2/Leads","ids":[%s],"affected_fields":[%s],"operation":"%s","channel_id":"1000000068001","token":"test-token-0123456789"}',
                :st::bigint, x.q, CASE WHEN op = 'update' THEN x.af ELSE '' END, op),
         'webhook'
  FROM (SELECT CASE WHEN :upd::int = 1 THEN 'update' ELSE 'insert' END AS op) o,
       (SELECT array_agg(i) AS ids, string_agg('"' || i || '"', ',') AS q,
               string_agg('{"' || i || '":["Company"]}', ',') AS af
        FROM (SELECT 4150868000000000000 + :k::bigint + g AS i FROM generate_series(0, :n::int - 1) g) s) x
  ON CONFLICT ((md5(raw))) DO NOTHING RETURNING id AS inbox_id, ids, server_time AS st_text
\gset
SELECT table_ready FROM zcrm.sync_state WHERE module = 'Leads';
INSERT INTO zcrm.dirty (module, id, server_time)
  SELECT DISTINCT 'Leads', unnest(:ids::bigint[]), to_timestamp(:st::numeric / 1000)
  ON CONFLICT (module, id) DO UPDATE
  SET server_time = greatest(dirty.server_time, excluded.server_time),
      next_try = least(dirty.next_try, now());
UPDATE zcrm.inbox SET processed_at = now() WHERE id = :inbox_id;
COMMIT;

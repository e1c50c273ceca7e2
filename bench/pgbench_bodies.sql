-- pgbench_bodies.sql — the notification bodies the pgbench ceiling of
-- `make bench-webhook` stores, made once before the runs (psql -f), so that
-- each pgbench transaction only picks one by its key: building a body with
-- format()/string_agg inside the measured statement cost more PostgreSQL CPU
-- than half of what the webhook's whole statement costs, and the webhook
-- sends its body ready-made.
--
-- The same mix as bench/wrk_webhook.lua: bench.bodies_dirty holds update 70 :
-- insert 20 (pgbench_notify_dirty.sql, 90 % of the transactions),
-- bench.bodies_delete the deletes (pgbench_notify_delete.sql, 10 %); 1 id
-- 70 %, 2–10 ids 20 %, 11–100 ids 10 %; update and delete ids from a pool of
-- 1,000,000 records, insert ids new (distinct per body). tail is the body
-- after "server_time":…, which each transaction prepends with a random
-- server_time so that no raw repeats.
SET client_min_messages = warning;
SELECT setseed(0.42);
CREATE SCHEMA IF NOT EXISTS bench;
DROP TABLE IF EXISTS bench.bodies_dirty, bench.bodies_delete;
CREATE TABLE bench.bodies_dirty (i int PRIMARY KEY, op text NOT NULL, ids bigint[] NOT NULL,
                                 tail text NOT NULL);
CREATE TABLE bench.bodies_delete (LIKE bench.bodies_dirty INCLUDING ALL);

CREATE TEMP TABLE shape AS
SELECT i, op, n,
       CASE WHEN op = 'insert' THEN 10000000000 + i::bigint * 100
            ELSE 1 + floor(r4 * (1000000 - n + 1))::bigint END AS k
FROM (SELECT i, CASE WHEN i > 50000 THEN 'delete' WHEN r1 < 70.0 / 90 THEN 'update'
                     ELSE 'insert' END AS op,
             CASE WHEN r2 < 0.7 THEN 1 WHEN r2 < 0.9 THEN 2 + floor(r3 * 9)::int
                  ELSE 11 + floor(r3 * 90)::int END AS n, r4
      FROM (SELECT i, random() r1, random() r2, random() r3, random() r4
            FROM generate_series(1, 60000) i) s) s;

INSERT INTO bench.bodies_dirty
SELECT i, op, ids,
       format(',"query_params":{},"module":"Leads","resource_uri":"https://www.zohoapis.com/crm/v2/Leads","ids":[%s],"affected_fields":[%s],"operation":"%s","channel_id":"1000000068001","token":"test-token-0123456789"}',
              q, CASE WHEN op = 'update' THEN af ELSE '' END, op)
FROM (SELECT s.i, s.op, array_agg(x.id ORDER BY x.id) AS ids,
             string_agg('"' || x.id || '"', ',' ORDER BY x.id) AS q,
             string_agg('{"' || x.id || '":["Company"]}', ',' ORDER BY x.id) AS af
      FROM shape s, LATERAL (SELECT 4150868000000000000 + s.k + g AS id
                             FROM generate_series(0, s.n - 1) g) x
      WHERE s.op <> 'delete' GROUP BY s.i, s.op) b;

INSERT INTO bench.bodies_delete
SELECT i - 50000, op, ids,
       format(',"query_params":{},"module":"Leads","resource_uri":"https://www.zohoapis.com/crm/v2/Leads","ids":[%s],"affected_fields":[],"operation":"delete","channel_id":"1000000068001","token":"test-token-0123456789"}',
              q)
FROM (SELECT s.i, s.op, array_agg(x.id ORDER BY x.id) AS ids,
             string_agg('"' || x.id || '"', ',' ORDER BY x.id) AS q
      FROM shape s, LATERAL (SELECT 4150868000000000000 + s.k + g AS id
                             FROM generate_series(0, s.n - 1) g) x
      WHERE s.op = 'delete' GROUP BY s.i, s.op) b;

VACUUM ANALYZE bench.bodies_dirty, bench.bodies_delete;

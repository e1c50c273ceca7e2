-- wrk_notify.lua — POST Zoho "update" notifications to /zcrm/notify, every
-- one different (id and server_time vary per request and per wrk thread), so
-- none is answered as a duplicate: each costs one inbox row and one dirty row.
--
--   wrk -t2 -c16 -d10s --latency -s bench/wrk_notify.lua \
--       http://127.0.0.1:PORT/zcrm/notify -- [TOKEN [CHANNEL_ID [MODULE]]]
--
-- Defaults are the integration tests' config (harness.py base_config):
-- token test-token-0123456789, channel 1000000068001, module Leads. The
-- webhook needs [webhook] fetch = false (or a simulator), the module table
-- (tools/load_fields), and nginx with nginx/zcrm-sync.conf in front.
--
-- At the end it prints how many answers were not 200 {"status":"applied"};
-- a run with any is not a valid measurement.

local token, channel, module = "test-token-0123456789", "1000000068001", "Leads"
local threads = {}
local counter, tid, start_ms = 0, 0, 0
not_applied = 0   -- global: done() reads it from each thread with t:get()

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   token = args[1] or token
   channel = args[2] or channel
   module = args[3] or module
   tid = tonumber(wrk.thread:get("tid")) or 0
   -- Distinct across runs against the same database too.
   start_ms = os.time() * 1000
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   -- ids: thread in the high digits, a counter below; server_time moves
   -- forward one millisecond per request.
   local id = string.format("41508680%02d%09d", tid % 100, counter % 1000000000)
   local body = string.format(
      '{"server_time":%d,"query_params":{},"module":"%s",' ..
      '"resource_uri":"https://www.zohoapis.com/crm/v2/%s","ids":["%s"],' ..
      '"affected_fields":[{"%s":["Company"]}],"operation":"update",' ..
      '"channel_id":"%s","token":"%s"}',
      start_ms + counter, module, module, id, id, channel, token)
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if status ~= 200 or not string.find(body, '"applied"', 1, true) then
      not_applied = not_applied + 1
   end
end

function done(summary, latency, requests)
   local bad = 0
   for _, t in ipairs(threads) do
      bad = bad + (tonumber(t:get("not_applied")) or 0)
   end
   io.write(string.format("answers not 200 applied: %d\n", bad))
   io.write(string.format("p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
                          latency:percentile(50) / 1000, latency:percentile(90) / 1000,
                          latency:percentile(99) / 1000, latency.max / 1000))
end

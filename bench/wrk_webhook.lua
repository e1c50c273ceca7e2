-- wrk_webhook.lua — a realistic mix of Zoho CRM notifications for wrk, used
-- by bench/bench_webhook.py (make bench-webhook).
--
--   wrk -t2 -c64 -d15s --latency -s bench/wrk_webhook.lua \
--       http://127.0.0.1:PORT/zcrm/notify -- [EXPECT [TOKEN [CHANNEL [MODULE [START_MS]]]]]
--
-- EXPECT is the answer that counts as good: "applied" (the default: 200
-- with {"status":"applied"}, for /zcrm/notify) or a status code such as 204
-- (for the nginx-alone ceiling, /zcrm-harness-check, which gets the same
-- bodies so that both runs put the same bytes on the wire).
--
-- The mix (bench/README.md; bench/pgbench_bodies.sql makes the same for pgbench):
--   operation   insert 20 %, update 70 %, delete 10 %
--   ids         1 id 70 %, 2–10 ids 20 %, 11–100 ids 10 % (mean 7.45),
--               consecutive from a random start
--   record ids  update/delete: from a pool of 1,000,000 records
--               (4150868000000000001 …), so ids repeat and the dirty upsert
--               meets conflicts; insert: new ids (a random base per wrk
--               thread and run, so practically never seen before)
--   body        Zoho's shape (tests/zoho_sim/store.py emit()): affected_fields
--               only for update, no affected_values
-- server_time is distinct per request (a counter, with the wrk thread in
-- the low digits: at most 15 wrk threads), so no body repeats and none is
-- answered as a duplicate. It starts at START_MS (default: now) and runs
-- ahead of the clock; done() prints the last one used (last_ms), and
-- bench_webhook.py starts each run after the previous run's, so that runs
-- against the same database never send the same body twice.
--
-- done() prints the usual percentiles plus p99.9, the counts of answers
-- that were not as expected, and one machine-readable line:
--   WRKJSON {"requests":…,"duration_us":…,"p50_us":…,…}

local token, channel, module = "test-token-0123456789", "1000000068001", "Leads"
local expect_status, expect_applied = 200, true
local threads = {}
local tid = 0
-- Globals too: done() reads them from each thread.
counter, start_ms = 0, 0
local POOL = 1000000
local insert_base = 10000000000
-- Globals: done() reads them from each thread with t:get().
bad_status = 0     -- status other than the expected one
not_applied = 0    -- 200 but not {"status":"applied"} (spooled, duplicate, pending)
sent_ids = 0
ops = {0, 0, 0}    -- insert, update, delete

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

-- Built once in init(): the request line and headers up to the
-- Content-Length value, and the constant pieces of the body around the
-- variable ones (wrk.format() rebuilt all of it with string.format for
-- every request).
local head, b_time, b_ids, b_fields, b_op

function init(args)
   local e = args[1] or "applied"
   if e ~= "applied" then
      expect_status, expect_applied = tonumber(e), false
   end
   token = args[2] or token
   channel = args[3] or channel
   module = args[4] or module
   tid = tonumber(wrk.thread:get("tid")) or 0
   math.randomseed(os.time() * 100 + tid)
   insert_base = 10000000000 + math.random(0, 88) * 1000000000
   -- Now, to the second, unless given; requests step 16 ms apart per thread.
   start_ms = tonumber(args[5] or "") or os.time() * 1000
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   local h = {"POST " .. wrk.path .. " HTTP/1.1"}
   for name, value in pairs(wrk.headers) do
      if name ~= "Content-Length" then
         h[#h + 1] = name .. ": " .. value
      end
   end
   h[#h + 1] = "Content-Length: "
   head = table.concat(h, "\r\n")
   b_time = '{"server_time":'
   b_ids = ',"query_params":{},"module":"' .. module ..
      '","resource_uri":"https://www.zohoapis.com/crm/v2/' .. module .. '","ids":['
   b_fields = '],"affected_fields":['
   b_op = {}
   for _, op in ipairs({"insert", "update", "delete"}) do
      b_op[op] = '],"operation":"' .. op .. '","channel_id":"' .. channel ..
         '","token":"' .. token .. '"}'
   end
end

local function id_text(k)
   -- 19 digits, Zoho-like; built as text (LuaJIT numbers are doubles).
   return string.format("41508680%011d", k)
end

function request()
   counter = counter + 1
   local r = math.random(1000)
   local n
   if r <= 700 then
      n = 1
   elseif r <= 900 then
      n = math.random(2, 10)
   else
      n = math.random(11, 100)
   end
   local o = math.random(100)
   local op, first
   if o <= 20 then
      op = "insert"
      -- Fresh ids: above the pool, distinct per thread and request (and,
      -- by the random base, practically distinct from earlier runs).
      first = insert_base + (counter * 16 + tid) * 100
   else
      op = (o <= 90) and "update" or "delete"
      first = math.random(1, POOL - n + 1)
   end
   local ids, af
   if n == 1 then
      local id = id_text(first)
      ids = '"' .. id .. '"'
      af = (op == "update") and ('{"' .. id .. '":["Company"]}') or ""
   else
      local il, al = {}, {}
      for i = 0, n - 1 do
         local id = id_text(first + i)
         il[i + 1] = '"' .. id .. '"'
         if op == "update" then
            al[i + 1] = '{"' .. id .. '":["Company"]}'
         end
      end
      ids, af = table.concat(il, ","), table.concat(al, ",")
   end
   local oi = (o <= 20) and 1 or ((o <= 90) and 2 or 3)
   ops[oi] = ops[oi] + 1
   sent_ids = sent_ids + n
   local body = b_time .. (start_ms + counter * 16 + tid) .. b_ids .. ids .. b_fields .. af ..
      b_op[op]
   return head .. #body .. "\r\n\r\n" .. body
end

function response(status, headers, body)
   if status ~= expect_status then
      bad_status = bad_status + 1
   elseif expect_applied and not string.find(body, '"applied"', 1, true) then
      not_applied = not_applied + 1
   end
end

function done(summary, latency, requests)
   local bad, na, nids, o1, o2, o3, last = 0, 0, 0, 0, 0, 0, 0
   for _, t in ipairs(threads) do
      local st = (tonumber(t:get("start_ms")) or 0) + (tonumber(t:get("counter")) or 0) * 16 + 15
      if st > last then
         last = st
      end
      bad = bad + (tonumber(t:get("bad_status")) or 0)
      na = na + (tonumber(t:get("not_applied")) or 0)
      nids = nids + (tonumber(t:get("sent_ids")) or 0)
      local to = t:get("ops")
      if type(to) == "table" then
         o1, o2, o3 = o1 + (to[1] or 0), o2 + (to[2] or 0), o3 + (to[3] or 0)
      end
   end
   local e = summary.errors
   io.write(string.format("answers not %s: %d; 200 but not applied: %d; socket errors: " ..
                          "connect %d read %d write %d timeout %d\n",
                          tostring(expect_status), bad, na, e.connect, e.read, e.write,
                          e.timeout))
   io.write(string.format("p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms\n",
                          latency:percentile(50) / 1000, latency:percentile(90) / 1000,
                          latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
                          latency.max / 1000))
   io.write(string.format(
      'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
      '"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"bad_status":%d,' ..
      '"not_applied":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d,' ..
      '"err_status":%d,"sent_ids":%d,"ops_insert":%d,"ops_update":%d,"ops_delete":%d,' ..
      '"last_ms":%d}\n',
      summary.requests, summary.duration, summary.bytes, latency:percentile(50),
      latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
      latency.mean, bad, na, e.connect, e.read, e.write, e.timeout, e.status, nids, o1, o2, o3,
      last))
end

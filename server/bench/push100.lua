-- wrk script: POST /api/push with 100 PUT ops per request, every op with its own idempotency key
-- and document. Ops per second = requests per second x 100.
local counter = 0
local threads = {}
local run = tostring(os.time())
local OPS = 100

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

-- args[1], when given (`wrk ... URL -- TAG`), tells apart wrk processes started in the same second, e.g.
-- one per server instance: without it they would send the same keys.
function init(args)
  prefix = run .. "-" .. (args[1] or "") .. "-" .. tostring(tid) .. "-"
end

function request()
  counter = counter + 1
  local ops = {}
  for i = 1, OPS do
    local id = prefix .. counter .. "-" .. i
    ops[i] = '{"method":"PUT","collection":"bench","key":"' .. id .. '","idempotencyKey":"' .. id ..
      '","body":{"title":"item ' .. id .. '","done":false,"n":' .. i .. '}}'
  end
  local body = '{"ops":[' .. table.concat(ops, ",") .. ']}'
  local headers = { ["Content-Type"] = "application/json", ["Outbox-Client-Id"] = "bench" }
  return wrk.format("POST", "/api/push", headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  local rps = summary.requests / (summary.duration / 1e6)
  io.write(string.format("requests=%d duration_s=%.2f req_per_s=%.1f ops_per_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, rps, rps * OPS,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end

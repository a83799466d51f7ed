-- wrk script: single PUTs, each with its own Idempotency-Key and document key, so every request
-- is a fresh write (no replays). Usage: see server/bench/run.sh.
local counter = 0
local threads = {}
local run = tostring(os.time())

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
  local id = prefix .. counter
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = '"' .. id .. '"',
    ["Outbox-Client-Id"] = "bench",
  }
  local body = '{"title":"item ' .. id .. '","done":false,"n":' .. counter .. '}'
  return wrk.format("PUT", "/api/docs/bench/" .. id, headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("requests=%d duration_s=%.2f req_per_s=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end

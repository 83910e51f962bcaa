-- wrk script: POST a different AdmissionReview on every request.
-- The bodies file (env BENCH_BODIES) holds one JSON review a line, each for another function;
-- every thread cycles through it from its own offset. done() prints one line for the harness.

local bodies = {}
local index = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  local file = os.getenv("BENCH_BODIES")
  for line in io.lines(file) do
    bodies[#bodies + 1] = line
  end
  if #bodies == 0 then
    error("no bodies in " .. tostring(file))
  end
  index = tonumber(os.getenv("BENCH_OFFSET") or "0") % #bodies
end

-- BENCH_DELAY_MS > 0 paces each connection (a pause before each request), for a load below the
-- server's capacity: no queue forms in front of it, so its own latency histogram and wrk's see
-- the same requests.
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  function delay()
    return pause
  end
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", nil, headers, bodies[index])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p99_us\":%d,"
      .. "\"mean_us\":%.1f,\"max_us\":%d,\"connect\":%d,\"read\":%d,\"write\":%d,"
      .. "\"status\":%d,\"timeout\":%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end

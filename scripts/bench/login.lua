-- wrk script for scripts/bench.sh: POST /auth/login with one correct
-- email and password, over and over (every request opens a session).
--   wrk -s scripts/bench/login.lua URL EMAIL PASSWORD

function init(args)
   wrk.method = "POST"
   wrk.path = "/auth/login"
   wrk.headers["Content-Type"] = "application/json"
   wrk.body = string.format('{"email":"%s","password":"%s"}', args[1], args[2])
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH rps=%.2f p50_us=%d p99_us=%d requests=%d status_errors=%d socket_errors=%d\n",
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), summary.requests,
      e.status, e.connect + e.read + e.write + e.timeout))
end

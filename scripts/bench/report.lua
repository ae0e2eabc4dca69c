-- wrk script for scripts/bench.sh: the requests are wrk's own (static);
-- done() prints one machine-readable line.
--   BENCH rps=… p50_us=… p99_us=… requests=… status_errors=… socket_errors=… duration_us=…

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH rps=%.2f p50_us=%d p99_us=%d requests=%d status_errors=%d socket_errors=%d duration_us=%d\n",
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), summary.requests,
      e.status, e.connect + e.read + e.write + e.timeout, summary.duration))
end

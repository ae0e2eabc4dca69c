-- wrk script for scripts/bench.sh: POST /auth/reissue where every refresh
-- token is presented at most once, so that no rotation is ever taken for a
-- theft (a reused token revokes its session).
--
--   wrk -t T -c C -s scripts/bench/reissue.lua URL TOKENS_FILE T
--
-- TOKENS_FILE holds one refresh token per line, each of its own session
-- (one login each), at least 2*C of them. Thread i takes lines i, i+T, …
-- into its own queue (wrk runs one Lua state per thread, and request() and
-- response() are per thread, not per connection):
--
-- * request() takes the token at the head of the queue and removes it, so a
--   token leaves the queue exactly once;
-- * response() puts back only the new refresh_token of a 200 answer: a token
--   the server has just minted, which nobody has presented yet. A non-200
--   answer (or a request lost to a socket error or to the end of the run)
--   puts nothing back: that session's chain is simply dropped.
--
-- wrk calls response() for a connection before that connection asks
-- request() for its next request, so with C connections on T threads at
-- most C/T tokens of a thread are in flight and the rest wait in its queue:
-- with 2*C tokens a thread can lose C/T chains before it runs dry. If it ever
-- does, request() sends GET /healthz instead of presenting any token again,
-- and counts it as `starved` (it must stay 0, like `non200`). Note: wrk calls
-- request() once on thread 0 before the run to check the request's syntax;
-- that token is taken from the queue and never sent.
--
-- done() prints one line:
--   BENCH rps=… p50_us=… p99_us=… requests=… rotated=… non200=… starved=… status_errors=… socket_errors=…
-- where rps counts successful rotations only.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

local queue, head, tail = {}, 1, 0
rotated, non200, starved = 0, 0, 0

function init(args)
   local file, nthreads = args[1], tonumber(args[2])
   local n = 0
   for line in io.lines(file) do
      if line ~= "" then
         if n % nthreads == id then
            tail = tail + 1
            queue[tail] = line
         end
         n = n + 1
      end
   end
   wrk.method = "POST"
   wrk.path = "/auth/reissue"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   if head > tail then
      starved = starved + 1
      return wrk.format("GET", "/healthz", {}, "")
   end
   local token = queue[head]
   queue[head] = nil
   head = head + 1
   return wrk.format(nil, nil, nil, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
   local token = status == 200 and body:match('"refresh_token":"([^"]+)"')
   if token then
      rotated = rotated + 1
      tail = tail + 1
      queue[tail] = token
   elseif status ~= 200 then
      non200 = non200 + 1
   end
end

function done(summary, latency, requests)
   local r, n, s = 0, 0, 0
   for _, thread in ipairs(threads) do
      r = r + thread:get("rotated")
      n = n + thread:get("non200")
      s = s + thread:get("starved")
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH rps=%.2f p50_us=%d p99_us=%d requests=%d rotated=%d non200=%d starved=%d status_errors=%d socket_errors=%d\n",
      r / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), summary.requests,
      r, n, s, e.status, e.connect + e.read + e.write + e.timeout))
end

# Sourced by scripts/bench-sweeper.sh and scripts/bench-partitions.sh: the
# release server with its schedule off, one account, reissue load beside a
# pass, and the latency figures of a window of that load. The caller sets
# $work and cleans up $server_pid and $load_pid on exit.

# start_server: authgate serve on a free port (its sweeper never fires), an
# account bench@example.org; sets $server_pid and $base.
start_server() {
  local http_port
  http_port=$(pg_free_port)
  AUTHGATE__SERVER__BIND=127.0.0.1:$http_port AUTHGATE__SWEEPER__SCHEDULE="0 0 0 1 1 *" \
    target/release/authgate serve 2>"$work/server.log" &
  server_pid=$!
  base=http://127.0.0.1:$http_port
  for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf -XPOST "$base/auth/signup" -H 'content-type: application/json' \
    -d '{"email":"bench@example.org","password":"bench-password"}' >/dev/null
}

# start_load WORKERS: that many reissue chains into $work/load.txt (one line
# per reissue: at_us latency_us status); sets $load_pid.
start_load() {
  target/release/examples/reissue_load "$base" bench@example.org bench-password "$1" 120 >"$work/load.txt" &
  load_pid=$!
}

stop_load() {
  kill "$load_pid" 2>/dev/null || true; wait "$load_pid" 2>/dev/null || true; load_pid=""
}

stats() { # file from_us to_us -> "n=… p50=…ms p99=…ms errors=…"
  python3 - "$@" <<'PY'
import sys
path, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lat, errors = [], 0
for line in open(path):
    at, us, status = line.split()
    if lo <= int(at) <= hi:
        lat.append(int(us))
        errors += status != "200"
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000 if lat else float("nan")
print(f"n={len(lat)} p50={q(0.50):.2f}ms p99={q(0.99):.2f}ms errors={errors}")
PY
}

now_us() { python3 -c 'import time; print(int(time.time() * 1e6))'; }

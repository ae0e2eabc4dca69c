# Sourced by scripts/bench-sweeper.sh and scripts/bench-partitions.sh: their
# setup (a private PostgreSQL with a migrated database), the release server
# with its schedule off, one account, reissue load beside a
# pass, and the latency figures of a window of that load. The caller sets
# nothing else up front.

# setup_bench: builds the release binaries, starts a private PostgreSQL 15
# (fsync on) on a free port in a new $work, stopped with everything else on
# exit, and migrates a database "bench" there: sets $work and $port, exports
# DATABASE_URL, and defines psql (as postgres, with the deadlines lifted).
setup_bench() {
  pg_ensure_installed
  work=$(mktemp -d /tmp/authgate-bench.XXXXXX); chmod 755 "$work"
  server_pid=""; load_pid=""
  trap bench_cleanup EXIT
  cargo build --release --locked --quiet --bin authgate --example reissue_load
  port=$(pg_free_port)
  pg_start "$work/data" "$port" max_connections=100
  psql -d postgres -c "CREATE DATABASE bench"
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/bench"
  export RUST_LOG=warn
  target/release/authgate migrate >/dev/null
}

bench_cleanup() {
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  pg_stop "$work/data"
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}

# The fills run as authgate's role in its database, whose sessions start with
# its deadlines (`authgate migrate` sets them as role defaults) and go on for
# minutes: lift them.
psql() { PGOPTIONS="-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0" \
  "$(pg_bindir)/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

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
from collections import Counter
lat, errors = [], Counter()
for line in open(path):
    at, us, status = line.split()
    if lo <= int(at) <= hi:
        lat.append(int(us))
        if status != "200":
            errors[status] += 1
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000 if lat else float("nan")
detail = "".join(f" {status}x{n}" for status, n in sorted(errors.items()))
print(f"n={len(lat)} p50={q(0.50):.2f}ms p99={q(0.99):.2f}ms errors={sum(errors.values())}{detail}")
PY
}

now_us() { python3 -c 'import time; print(int(time.time() * 1e6))'; }

#!/usr/bin/env bash
# Throughput benchmark (not a test): each authgate path beside a bare
# baseline measured in the same run, on the same machine, reported as ratios.
#
#   bash scripts/bench.sh        (BENCH_SECS=8 per run, BENCH_REPS=3, medians)
#
#   GET /auth/me        wrk -t2 -c64   vs  examples/bench_bare_me (actix-web +
#                                          jsonwebtoken, nothing else), each
#                                          run as interleaved 2 s slices
#                                          (BENCH_SLICE)
#   POST /auth/reissue  wrk -t2 -c64, every connection rotating its own
#                       chain (scripts/bench/reissue.lua)
#                                      vs  pgbench -c64 of the same writes
#                                          (scripts/bench/rotation.sql)
#   POST /auth/login    wrk -t2 -c8    vs  examples/bench_bcrypt, raw
#                                          bcrypt::verify on every core
#   RSS of authgate with 100,000 live and 10,000 just-revoked sessions, after
#   a short /me and reissue load.
#
# It installs wrk (and curl) from Debian when missing, builds the release
# binaries, runs its own PostgreSQL 15 (default settings, fsync on) on a free
# port and every server on 127.0.0.1, and stops all of it at the end, failure
# included. Goals are reported, never enforced. BENCH_KEEP=1 keeps the work
# directory (server logs, wrk outputs).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh

SECS=${BENCH_SECS:-8}
REPS=${BENCH_REPS:-3}
RSS_SECS=${BENCH_RSS_SECS:-5}
SLICE=${BENCH_SLICE:-2} # /me: seconds per interleaved slice
POOL=${BENCH_POOL:-10}  # authgate's database.pool_size (its default)
CONNS=64        # wrk connections for /me and reissue, pgbench clients
LOGIN_CONNS=8   # wrk connections for login: bcrypt is the bottleneck
THREADS=2       # wrk threads, pgbench -j
COST=10         # bcrypt cost, the server's and the baseline's
EMAIL=bench@example.org
PASSWORD=bench-password
SECRET=authgate-development-secret-do-not-use-in-production
ISSUER=authgate
AUDIENCE=authgate-clients
case "$SECS$REPS$RSS_SECS$POOL$SLICE" in *[!0-9]*) echo "BENCH_SECS, BENCH_REPS, BENCH_RSS_SECS, BENCH_POOL, BENCH_SLICE: whole numbers" >&2; exit 2 ;; esac
if [ "$SECS" -lt 1 ] || [ "$REPS" -lt 1 ] || [ "$RSS_SECS" -lt 1 ] || [ "$SLICE" -lt 1 ]; then
  echo "BENCH_SECS, BENCH_REPS, BENCH_RSS_SECS, BENCH_SLICE: at least 1" >&2; exit 2
fi

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# --- tools -----------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "missing: ${missing[*]} (install them, or run as root on Debian)"
  fi
  log "installing ${missing[*]} (Debian packages)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
pg_ensure_installed
PGBENCH="$(pg_bindir)/pgbench"
[ -x "$PGBENCH" ] || die "pgbench not found in $(pg_bindir)"

log "building release binaries"
cargo build --release --locked --quiet --bin authgate --example bench_bare_me --example bench_bcrypt
bin=${CARGO_TARGET_DIR:-target}/release

# --- processes, cleaned up on any exit --------------------------------------
work=$(mktemp -d /tmp/authgate-bench.XXXXXX); chmod 755 "$work"
server_pid=""; bare_pid=""
stop_pid() { # PID: TERM, then KILL after 10 s
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$server_pid"; stop_pid "$bare_pid"
  pg_stop "$work/data"
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # so that an interrupt runs the cleanup too

wait_http() { # URL: until it answers at all (any status), at most 15 s
  for _ in $(seq 150); do
    curl -s -o /dev/null -m 1 "$1" && return 0
    sleep 0.1
  done
  return 1
}

# --- PostgreSQL and authgate -----------------------------------------------
pg_port=$(pg_free_port)
pg_start "$work/data" "$pg_port" max_connections=200
# The fills run as authgate's role in its database, whose sessions start with
# its deadlines (`authgate migrate` sets them as role defaults): lift them.
psql() { PGOPTIONS="-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0" \
  "$(pg_bindir)/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
psql -d postgres -c "CREATE DATABASE bench"
export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/bench"
export RUST_LOG=warn
"$bin/authgate" migrate >/dev/null

http_port=$(pg_free_port)
base=http://127.0.0.1:$http_port
server_runs=0
# The login limits keep their defaults (10 per email, 100 per address): no
# login of the benchmark fails, but each still reserves its slots in
# PostgreSQL before bcrypt and releases them with its session, and that is
# part of what is measured.
start_authgate() {
  server_runs=$((server_runs + 1))
  AUTHGATE__SERVER__BIND=127.0.0.1:$http_port \
  AUTHGATE__PASSWORD__BCRYPT_COST=$COST \
  AUTHGATE__SWEEPER__SCHEDULE="0 0 0 1 1 *" \
  AUTHGATE__DATABASE__POOL_SIZE=$POOL \
    "$bin/authgate" serve 2>"$work/server.$server_runs.log" &
  server_pid=$!
  for _ in $(seq 150); do
    curl -sf -o /dev/null -m 1 "$base/readyz" && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$work/server.$server_runs.log" >&2
  die "authgate did not become ready on $base"
}
start_authgate

bare_port=$(pg_free_port)
"$bin/examples/bench_bare_me" "127.0.0.1:$bare_port" "$SECRET" "$ISSUER" "$AUDIENCE" 2>"$work/bare.log" &
bare_pid=$!
wait_http "http://127.0.0.1:$bare_port/me" || die "bench_bare_me did not start"

login_body="{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}"
curl -sf -m 10 -XPOST "$base/auth/signup" -H 'content-type: application/json' -d "$login_body" >/dev/null \
  || die "signup failed"
login() { curl -sf -m 30 -XPOST "$base/auth/login" -H 'content-type: application/json' -d "$login_body"; }
access_token() { login | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'; }

# make_sessions N FILE: N logins (4 at a time), their refresh tokens in FILE.
make_sessions() {
  local n=$1 file=$2 got
  seq "$n" | xargs -P 4 -I{} curl -sf -m 30 -XPOST "$base/auth/login" \
    -H 'content-type: application/json' -d "$login_body" -w '\n' >"$file.json" || true
  grep -o '"refresh_token":"[^"]*"' "$file.json" | sed 's/.*:"\(.*\)"/\1/' >"$file"
  got=$(wc -l <"$file")
  [ "$got" -eq "$n" ] || die "wanted $n sessions, logged in $got"
}

field() { # FILE KEY: the value of KEY=… on the BENCH line of a wrk output
  sed -n "s/^BENCH.* $2=\([^ ]*\).*/\1/p" "$1" | tail -n 1
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
sum() { printf '%s\n' "$@" | awk '{ s += $1 } END { print s + 0 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# pair_ratio A[*] B[*]: the median of A[i]/B[i]. Each pair ran back to back,
# so a burst of load from elsewhere on this shared machine falls on both
# sides of one ratio rather than on one side of the medians.
pair_ratio() {
  local -n xs=$1 ys=$2
  local i rs=()
  for i in "${!xs[@]}"; do rs+=("$(ratio "${xs[$i]}" "${ys[$i]}")"); done
  printf '%.2f' "$(median "${rs[@]}")"
}
wrk_run() { # OUT wrk-args...: runs wrk, keeps its output, checks the BENCH line
  local out=$1; shift
  wrk "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
  [ -n "$(field "$out" rps)" ] || { cat "$out" >&2; die "no BENCH line from wrk"; }
}

access=$(access_token) || true
[ -n "$access" ] || die "login failed"
for url in "$base/auth/me" "http://127.0.0.1:$bare_port/me"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H "Authorization: Bearer $access" "$url")
  [ "$code" = 200 ] || die "GET $url with the access token: $code"
done

log "${REPS} repetitions of ${SECS} s per measurement"

# --- GET /auth/me vs bare --------------------------------------------------
# Each repetition gives each side SECS seconds, run as SECS/SLICE slices in
# the order ABBA BAAB …: on this shared machine the speed drifts by ±20% over
# seconds (bare against bare in 8 s blocks: ratios 0.82-1.21; in 2 s slices
# so ordered: 0.96-1.05), and interleaving puts the drift on both sides.
me_slices() { # REP: one repetition, appended to me_rps, bare_rps, me_errors
  local rep=$1 n=$((SECS / SLICE)) len=$SLICE j side out order
  local -A url=([me]="$base/auth/me" [bare]="http://127.0.0.1:$bare_port/me")
  if [ "$n" -lt 1 ]; then n=1; len=$SECS; fi
  for j in $(seq 0 $((n - 1))); do
    case $((j % 4)) in 0 | 3) order="me bare" ;; *) order="bare me" ;; esac
    for side in $order; do
      out="$work/$side.$rep.$j.txt"
      wrk_run "$out" -t"$THREADS" -c"$CONNS" -d"${len}s" -s scripts/bench/report.lua \
        -H "Authorization: Bearer $access" "${url[$side]}"
      me_errors+=("$(field "$out" status_errors)" "$(field "$out" socket_errors)")
    done
  done
  me_rps+=("$(slices_rps "$work/me.$rep")"); bare_rps+=("$(slices_rps "$work/bare.$rep")")
}
slices_rps() { # PREFIX: requests per second over all the slices PREFIX.*.txt
  sed -n 's/^BENCH.* requests=\([0-9]*\) .* duration_us=\([0-9]*\).*/\1 \2/p' "$1".*.txt |
    awk '{ r += $1; d += $2 } END { printf "%.2f", r / (d / 1e6) }'
}
me_rps=(); bare_rps=(); me_errors=()
for rep in $(seq "$REPS"); do
  me_slices "$rep"
  log "me rep $rep: authgate ${me_rps[-1]} req/s, bare ${bare_rps[-1]} req/s"
done

# --- POST /auth/reissue vs pgbench ------------------------------------------
psql -d bench <<SQL
INSERT INTO users (id, email, email_canonical, password_hash)
VALUES (md5('pgbench-user')::uuid, 'pgbench@example.org', 'pgbench@example.org', 'x');
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at)
SELECT md5(concat('pgbench-session-', c))::uuid, md5('pgbench-user')::uuid, now(), now(), now() + interval '30 days'
  FROM generate_series(0, $CONNS - 1) c;
SQL
re_rps=(); re_p99=(); re_bad=(); pg_tps=(); pg_bad=(); pg_p99=()
for rep in $(seq "$REPS"); do
  make_sessions $((2 * CONNS)) "$work/tokens.$rep"
  wrk_run "$work/reissue.$rep.txt" -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s scripts/bench/reissue.lua \
    "$base/auth/reissue" "$work/tokens.$rep" "$THREADS"
  re_rps+=("$(field "$work/reissue.$rep.txt" rps)"); re_p99+=("$(field "$work/reissue.$rep.txt" p99_us)")
  re_bad+=("$(field "$work/reissue.$rep.txt" non200)" "$(field "$work/reissue.$rep.txt" starved)"
           "$(field "$work/reissue.$rep.txt" socket_errors)")

  psql -d bench -c "INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at)
    SELECT md5(concat('pgbench-', $rep, '-', c, '-', 0))::uuid, md5(concat('pgbench-session-', c))::uuid,
           sha256(convert_to(concat('pgbench-', $rep, '-', c, '-', 0), 'UTF8')), now(), date_trunc('day', now(), 'UTC') + interval '14 days'
      FROM generate_series(0, $CONNS - 1) c"
  "$PGBENCH" -h 127.0.0.1 -p "$pg_port" -U postgres -n -M prepared -c "$CONNS" -j "$THREADS" -T "$SECS" \
    -l --log-prefix="$work/pglog.$rep" \
    -D run="$rep" -D k=0 -f scripts/bench/rotation.sql bench >"$work/pgbench.$rep.txt" 2>&1 \
    || { cat "$work/pgbench.$rep.txt" >&2; die "pgbench failed"; }
  # Its own p99: the third column of the per-transaction log is the latency (µs).
  pg_p99+=("$(cat "$work/pglog.$rep".* | awk '{ print $3 }' | sort -n \
              | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; print v[i] + 0 }')")
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$work/pgbench.$rep.txt" | tail -n 1)
  [ -n "$tps" ] || { cat "$work/pgbench.$rep.txt" >&2; die "no tps from pgbench"; }
  pg_tps+=("$tps")
  pg_bad+=("$(grep -c 'aborted' "$work/pgbench.$rep.txt" || true)")
  log "reissue rep $rep: authgate ${re_rps[-1]} rotations/s p99 $(awk -v u="${re_p99[-1]}" 'BEGIN { printf "%.1f", u / 1000 }') ms" \
      "(non200 $(field "$work/reissue.$rep.txt" non200), starved $(field "$work/reissue.$rep.txt" starved)), pgbench $tps tps" \
      "p99 $(awk -v u="${pg_p99[-1]}" 'BEGIN { printf "%.1f", u / 1000 }') ms"
done
reused=$(psql -d bench -c "SELECT count(*) FROM sessions WHERE revoked_reason IS NOT NULL")

# --- POST /auth/login vs raw bcrypt -----------------------------------------
login_rps=(); bcrypt_rps=(); login_bad=()
for rep in $(seq "$REPS"); do
  wrk_run "$work/login.$rep.txt" -t"$THREADS" -c"$LOGIN_CONNS" -d"${SECS}s" --latency -s scripts/bench/login.lua \
    "$base/auth/login" "$EMAIL" "$PASSWORD"
  login_rps+=("$(field "$work/login.$rep.txt" rps)")
  login_bad+=("$(field "$work/login.$rep.txt" status_errors)" "$(field "$work/login.$rep.txt" socket_errors)")
  v=$("$bin/examples/bench_bcrypt" "$COST" "$SECS" 2>/dev/null)
  [ -n "$v" ] || die "bench_bcrypt failed"
  bcrypt_rps+=("$v")
  log "login rep $rep: authgate ${login_rps[-1]}/s, bcrypt $v/s"
done

# --- RSS with 100k live and 10k revoked sessions -----------------------------
log "inserting 100,000 live and 10,000 revoked sessions"
psql -d bench <<'SQL'
INSERT INTO users (id, email, email_canonical, password_hash)
SELECT md5(concat('rss-user-', g))::uuid, concat('rss', g, '@example.org'), concat('rss', g, '@example.org'), 'x'
  FROM generate_series(1, 100000) g;
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at)
SELECT md5(concat('rss-session-', g))::uuid, md5(concat('rss-user-', g))::uuid, now(), now(), now() + interval '30 days'
  FROM generate_series(1, 100000) g;
INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at)
SELECT md5(concat('rss-token-', g))::uuid, md5(concat('rss-session-', g))::uuid,
       sha256(convert_to(concat('rss-token-', g), 'UTF8')), now(), now() + interval '14 days'
  FROM generate_series(1, 100000) g;
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at, revoked_reason)
SELECT md5(concat('rss-revoked-', g))::uuid, md5(concat('rss-user-', g))::uuid, now(), now(), now() + interval '30 days',
       now(), 'logout'
  FROM generate_series(1, 10000) g;
INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at, revoked_at)
SELECT md5(concat('rss-revoked-token-', g))::uuid, md5(concat('rss-revoked-', g))::uuid,
       sha256(convert_to(concat('rss-revoked-token-', g), 'UTF8')), now(), now() + interval '14 days', now()
  FROM generate_series(1, 10000) g;
ANALYZE;
SQL
stop_pid "$server_pid"; server_pid=""
start_authgate   # loads the revoked set at start-up
cached=$(curl -sf -m 5 "$base/metrics" | sed -n 's/^authgate_revoked_sessions_cached \([0-9]*\).*/\1/p') || true
rss_start=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status")
access=$(access_token) || true
[ -n "$access" ] || die "login failed after the restart"
make_sessions $((2 * CONNS)) "$work/tokens.rss"
wrk_run "$work/rss-me.txt" -t"$THREADS" -c"$CONNS" -d"${RSS_SECS}s" -s scripts/bench/report.lua \
  -H "Authorization: Bearer $access" "$base/auth/me"
wrk_run "$work/rss-reissue.txt" -t"$THREADS" -c"$CONNS" -d"${RSS_SECS}s" -s scripts/bench/reissue.lua \
  "$base/auth/reissue" "$work/tokens.rss" "$THREADS"
rss_mb=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status")
hwm_mb=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status")
rss_bad=$(sum "$(field "$work/rss-reissue.txt" non200)" "$(field "$work/rss-reissue.txt" starved)" \
               "$(field "$work/rss-me.txt" status_errors)")
live=$(psql -d bench -c "SELECT count(*) FROM sessions WHERE revoked_at IS NULL")

# --- server health ----------------------------------------------------------
panics=$(cat "$work"/server.*.log | grep -c 'panicked' || true)
errors=$(cat "$work"/server.*.log | grep -c 'ERROR' || true)
warns=$(cat "$work"/server.*.log | grep -c 'WARN' || true)

# --- summary ---------------------------------------------------------------
ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
m_me=$(median "${me_rps[@]}"); m_bare=$(median "${bare_rps[@]}")
m_re=$(median "${re_rps[@]}"); m_p99=$(median "${re_p99[@]}"); m_pg=$(median "${pg_tps[@]}")
m_pg_p99=$(median "${pg_p99[@]}")
m_login=$(median "${login_rps[@]}"); m_bcrypt=$(median "${bcrypt_rps[@]}")

echo
echo "authgate bench: $(nproc) cores, wrk -t$THREADS, ${SECS} s x $REPS runs (medians; ratio = median of the"
echo "back-to-back pairs' ratios; /me's pairs in ${SLICE} s slices, ABBA), bcrypt cost $COST, PostgreSQL 15 fsync on"
printf '%-15s %-24s %-26s %-7s %s\n' path authgate baseline ratio goal
printf '%-15s %-24s %-26s %-7s %s\n' "GET /auth/me" "$(printf '%.0f req/s' "$m_me")" "$(printf '%.0f req/s' "$m_bare")" \
  "$(pair_ratio me_rps bare_rps)" ">= 0.90"
printf '%-15s %-24s %-26s %-7s %s\n' "POST reissue" "$(printf '%.0f req/s p99 %s ms' "$m_re" "$(ms "$m_p99")")" \
  "$(printf '%.0f tps p99 %s ms' "$m_pg" "$(ms "$m_pg_p99")")" "$(pair_ratio re_rps pg_tps)" ">= 0.70, p99 < 25 ms"
printf '%-15s %-24s %-26s %-7s %s\n' "POST login" "$(printf '%.1f/s' "$m_login")" "$(printf '%.1f/s' "$m_bcrypt")" \
  "$(pair_ratio login_rps bcrypt_rps)" ">= 0.95"
printf '%-15s %-51s %s\n' "RSS" "$rss_mb MB (100k live sessions, 10k revoked)" "< 64 MB"
echo
echo "runs:      me authgate [${me_rps[*]}] bare [${bare_rps[*]}] req/s"
echo "           reissue [${re_rps[*]}] rotations/s, p99 [$(for u in "${re_p99[@]}"; do printf '%s ' "$(ms "$u")"; done)] ms;" \
     "pgbench [${pg_tps[*]}] tps, p99 [$(for u in "${pg_p99[@]}"; do printf '%s ' "$(ms "$u")"; done)] ms"
echo "           medians' ratios: me $(ratio "$m_me" "$m_bare"), reissue $(ratio "$m_re" "$m_pg"), login $(ratio "$m_login" "$m_bcrypt");" \
     "$CONNS in flight at $(printf '%.0f' "$m_re")/s is a mean latency of $(awk -v c="$CONNS" -v r="$m_re" 'BEGIN { printf "%.1f", 1000 * c / r }') ms (Little's law)"
echo "           login [${login_rps[*]}]/s; bcrypt [${bcrypt_rps[*]}]/s"
echo "errors:    /me non-2xx+socket $(sum "${me_errors[@]}"); reissue non-200+starved+socket $(sum "${re_bad[@]}");" \
     "sessions revoked during reissue $reused; pgbench aborted $(sum "${pg_bad[@]}"); login non-2xx+socket $(sum "${login_bad[@]}")"
echo "RSS:       $rss_start MB at start-up, $rss_mb MB after the load (peak $hwm_mb MB); revoked set $cached;" \
     "live sessions $live; load errors $rss_bad"
echo "server:    $panics panics, $errors ERROR and $warns WARN lines in its log"

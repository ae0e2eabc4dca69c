#!/usr/bin/env bash
# Runs every check and test against a real PostgreSQL 15: cargo fmt, clippy,
# cargo test, then scripts/interop.sh (stock clients against a real server).
# When DATABASE_URL is unset it starts a throw-away cluster on a free port
# and stops it on exit, whatever happens. Each test creates its own database
# in it. A second throw-away cluster is always started for the test that
# freezes one, and a PgBouncer in transaction pooling mode in front of the
# first (AUTHGATE_TEST_PGBOUNCER_URL) for the tests of SPEC 9.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh
# shellcheck source=scripts/pgbouncer.sh
. scripts/pgbouncer.sh

pg_ensure_installed
pgb_ensure_installed
work=$(mktemp -d /tmp/authgate-test.XXXXXX)
chmod 755 "$work"
cleanup() {
  pgb_stop "$work/pgbouncer"
  # A test that froze its cluster thaws it when it ends; this is the net
  # under that net, so that pg_ctl can stop it.
  if [ -f "$work/freezable/postmaster.pid" ]; then
    pkill -CONT -P "$(head -n1 "$work/freezable/postmaster.pid")" 2>/dev/null || true
    kill -CONT "$(head -n1 "$work/freezable/postmaster.pid")" 2>/dev/null || true
  fi
  pg_stop "$work/freezable"
  [ -d "$work/data" ] && pg_stop "$work/data"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Durability is not under test: skip fsync to keep the suite fast.
fast="fsync=off synchronous_commit=off full_page_writes=off"
if [ -z "${DATABASE_URL:-}" ]; then
  port=$(pg_free_port)
  # shellcheck disable=SC2086
  pg_start "$work/data" "$port" $fast max_connections=400
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  pg_log "test cluster on 127.0.0.1:$port"
fi
# A second cluster that tests/api/outage.rs freezes with SIGSTOP; no other
# test uses it.
freezable_port=$(pg_free_port)
# shellcheck disable=SC2086
pg_start "$work/freezable" "$freezable_port" $fast max_connections=100
export AUTHGATE_TEST_FREEZABLE_URL="postgres://postgres@127.0.0.1:$freezable_port/postgres"
export AUTHGATE_TEST_FREEZABLE_DATA="$work/freezable"
pg_log "freezable cluster on 127.0.0.1:$freezable_port"
# PgBouncer in transaction pooling mode in front of the main cluster; every
# database name routes, so the per-test databases do.
# postgres://USER@HOST:PORT/DB (the form this script and the CI use).
url_part() { printf '%s\n' "$DATABASE_URL" | sed -n "s|^postgres\(ql\)\{0,1\}://\([^@/]*\)@\([^:/]*\):\([0-9]*\)/.*|\\$1|p"; }
pg_user=$(url_part 2); pg_host=$(url_part 3); pg_port=$(url_part 4)
pgb_port=$(pg_free_port)
pgb_start "$work/pgbouncer" "$pgb_port" "${pg_port:-5432}" "${pg_host:-127.0.0.1}" "${pg_user:-postgres}"
export AUTHGATE_TEST_PGBOUNCER_URL="postgres://${pg_user:-postgres}@127.0.0.1:$pgb_port/postgres"
pg_log "pgbouncer (transaction pooling) on 127.0.0.1:$pgb_port"

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# Every test binary runs even when one fails, and a failure still goes on to
# the stock clients and the closing count (set -e would stop here).
set +e
cargo test --locked --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/authgate-test-output.$$"
status=${PIPESTATUS[0]}
set -e
# Stock clients (pytest, node --test, schemathesis) against one real server
# on the same PostgreSQL; it installs its venv and node_modules itself.
interop_summary="$work/interop-summary"
if ! AUTHGATE_INTEROP_SUMMARY="$interop_summary" bash scripts/interop.sh; then
  status=1
fi
# No summary: it stopped before counting (an install failed, say): one failure.
[ -s "$interop_summary" ] || echo "0 1" >"$interop_summary"
read -r interop_passed interop_failed <"$interop_summary"
# One plain closing line with the totals of every test binary and of the
# stock clients.
awk -v ip="$interop_passed" -v if_="$interop_failed" \
    '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p + ip, f + if_ }' "${TMPDIR:-/tmp}/authgate-test-output.$$"
rm -f "${TMPDIR:-/tmp}/authgate-test-output.$$"
exit "$status"

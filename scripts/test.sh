#!/usr/bin/env bash
# Runs every check and test against a real PostgreSQL 15. When DATABASE_URL
# is unset it starts a throw-away cluster on a free port and stops it on
# exit, whatever happens. Each test creates its own database in it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh

if [ -z "${DATABASE_URL:-}" ]; then
  pg_ensure_installed
  work=$(mktemp -d /tmp/authgate-test.XXXXXX)
  chmod 755 "$work"
  cleanup() { pg_stop "$work/data"; rm -rf "$work"; }
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  port=$(pg_free_port)
  # Durability is not under test: skip fsync to keep the suite fast.
  pg_start "$work/data" "$port" fsync=off synchronous_commit=off full_page_writes=off max_connections=400
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  pg_log "test cluster on 127.0.0.1:$port"
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked 2>&1 | tee "${TMPDIR:-/tmp}/authgate-test-output.$$"
status=${PIPESTATUS[0]}
# One plain closing line with the totals of every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "${TMPDIR:-/tmp}/authgate-test-output.$$"
rm -f "${TMPDIR:-/tmp}/authgate-test-output.$$"
exit "$status"

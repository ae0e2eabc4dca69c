#!/usr/bin/env bash
# Runs authgate on 127.0.0.1:8080. When DATABASE_URL is unset it starts the
# project-local PostgreSQL 15 cluster in .pg/ (initialising it the first
# time, reusing it afterwards) and stops it again when the server exits.
# Extra arguments go to `authgate` (e.g. `scripts/serve.sh migrate`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh

started=""
if [ -z "${DATABASE_URL:-}" ]; then
  pg_ensure_installed
  data=${AUTHGATE_PGDATA:-$PWD/.pg/data}
  port=${AUTHGATE_PGPORT:-54329}
  mkdir -p "$(dirname "$data")"
  if [ "$(id -u)" = 0 ] && ! pg_as test -x "$(dirname "$data")" 2>/dev/null; then
    # The checkout is not reachable by the postgres user (e.g. under /root).
    data=/var/tmp/authgate-pg-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)/data
    mkdir -p "$(dirname "$data")"
  fi
  if [ "$(id -u)" = 0 ]; then chown "$(pg_os_user)" "$(dirname "$data")"; fi
  if ! pg_running "$data"; then
    pg_start "$data" "$port"
    started=$data
    trap 'pg_stop "$started"' EXIT
  fi
  "$(pg_bindir)/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname = 'authgate'" | grep -q 1 \
    || "$(pg_bindir)/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE authgate"
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/authgate"
  pg_log "local PostgreSQL on 127.0.0.1:$port (data in $data)"
fi

cargo build --release --locked --quiet
target/release/authgate "$@"

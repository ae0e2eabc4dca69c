#!/usr/bin/env bash
# Sweeper benchmark (not a test): fills refresh_tokens with 1,000,000 expired
# rows beside 1,000,000 live ones, measures reissue latency under load before
# a pass, then runs one pass (`authgate sweep`) under the same load and
# reports its duration and the reissue p50/p99 during it.
#
#   bash scripts/bench-sweeper.sh [ROWS]      (ROWS of each kind, default 1000000)
#
# It runs its own PostgreSQL 15 (default settings, fsync on) on a free port
# and the release binary on 127.0.0.1, and stops both at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
# shellcheck source=scripts/bench/load.sh
. scripts/bench/load.sh

ROWS=${1:-1000000}
SESSIONS=2000
WORKERS=${WORKERS:-4}
setup_bench

echo "filling: $ROWS expired + $ROWS live refresh_tokens rows over $SESSIONS sessions"
fill_started=$(date +%s)
psql -d bench <<SQL
INSERT INTO users (id, email, email_canonical, password_hash)
VALUES ('00000000-0000-0000-0000-000000000001', 'filler@example.org', 'filler@example.org', 'x');
-- The partitions these rows would have been in, made back then.
SELECT authgate_make_refresh_token_partitions(now() - interval '7 days', now());
CREATE TEMP TABLE s AS
  SELECT gen_random_uuid() AS id, n FROM generate_series(0, $SESSIONS - 1) n;
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at)
  SELECT id, '00000000-0000-0000-0000-000000000001', now() - interval '20 days', now(), now() + interval '10 days' FROM s;
-- Rotated tokens: half long expired, half spent but not yet expired.
INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at, spent_at)
  SELECT gen_random_uuid(), s.id, sha256(('e' || g)::bytea),
         now() - interval '20 days', now() - interval '6 days' + g * interval '1 ms', now() - interval '19 days'
    FROM generate_series(1, $ROWS) g JOIN s ON s.n = g % $SESSIONS;
INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at, spent_at)
  SELECT gen_random_uuid(), s.id, sha256(('l' || g)::bytea),
         now() - interval '1 day', now() + interval '13 days', now() - interval '1 day'
    FROM generate_series(1, $ROWS) g JOIN s ON s.n = g % $SESSIONS;
VACUUM ANALYZE;
SQL
echo "filled in $(( $(date +%s) - fill_started )) s: $(psql -d bench -c "SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) FROM pg_partition_tree('refresh_tokens')") on disk"

echo
echo "EXPLAIN of one expired batch:"
psql -d bench -c "EXPLAIN DELETE FROM refresh_tokens WHERE id = ANY (ARRAY(SELECT id FROM refresh_tokens WHERE expires_at <= now() ORDER BY expires_at LIMIT 5000 FOR UPDATE SKIP LOCKED)) RETURNING session_id" | sed 's/^/    /'

start_server

echo
echo "load: $WORKERS workers rotating their own refresh-token chains"
start_load "$WORKERS"
sleep 2
before_from=$(now_us); sleep 10; before_to=$(now_us)
sweep_from=$(now_us)
pass=$(target/release/authgate sweep)
sweep_to=$(now_us)
sleep 1
stop_load

echo
echo "sweep pass:          $pass"
echo "reissue before pass: $(stats "$work/load.txt" "$before_from" "$before_to")"
echo "reissue during pass: $(stats "$work/load.txt" "$sweep_from" "$sweep_to")"
echo "rows left:           $(psql -d bench -c "SELECT count(*) FROM refresh_tokens") (live rows plus the load's chains)"

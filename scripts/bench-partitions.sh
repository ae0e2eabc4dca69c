#!/usr/bin/env bash
# Partition-drop benchmark (not a test; SPEC 9): fills refresh_tokens with
# ROWS expired rows (default 10,000,000) in the partitions of five past days
# (INSERT … generate_series straight into them) beside 1,000,000 live ones
# over 2,000 sessions, measures reissue latency under load before a pass,
# then runs one pass (`authgate sweep`) under the same load and reports its
# duration and the reissue p50/p99 during it; then, as a bare baseline
# under the same load, the file system alone freeing the same bytes (files
# of the dropped tables' sizes truncated one after another, which is what
# DROP TABLE does at commit: scripts/bench/truncate.py). It also prints the bytes per
# row and per index entry of the filled table (for docs/capacity.md).
#
#   bash scripts/bench-partitions.sh [ROWS]
#
# It runs its own PostgreSQL 15 (default settings, fsync on) on a free port
# and the release binary on 127.0.0.1, and stops both at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
# shellcheck source=scripts/bench/load.sh
. scripts/bench/load.sh

ROWS=${1:-10000000}
LIVE=${LIVE:-1000000}
SESSIONS=2000
WORKERS=${WORKERS:-4}
setup_bench

echo "filling: $ROWS expired rows (5 past days) + $LIVE live rows over $SESSIONS sessions"
fill_started=$(date +%s)
psql -d bench <<SQL
INSERT INTO users (id, email, email_canonical, password_hash)
VALUES ('00000000-0000-0000-0000-000000000001', 'filler@example.org', 'filler@example.org', 'x');
CREATE TEMP TABLE s AS
  SELECT gen_random_uuid() AS id, n FROM generate_series(0, $SESSIONS - 1) n;
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at)
  SELECT id, '00000000-0000-0000-0000-000000000001', now() - interval '20 days', now(), now() + interval '10 days' FROM s;
-- The partitions of the five past days, made back then.
SELECT authgate_make_refresh_token_partitions(date_trunc('day', now(), 'UTC') - interval '7 days', date_trunc('day', now(), 'UTC') - interval '2 days');
-- Rotated tokens, long expired: one partition (day) at a time, straight into it.
DO \$\$
DECLARE d integer; p regclass; per bigint := $ROWS / 5;
BEGIN
  FOR d IN 0 .. 4 LOOP
    SELECT partition INTO p FROM authgate_refresh_token_partitions()
     WHERE lower_bound = date_trunc('day', now(), 'UTC') - (7 - d) * interval '1 day';
    EXECUTE format('INSERT INTO %s (id, session_id, token_hash, issued_at, expires_at, spent_at)
      SELECT gen_random_uuid(), s.id, sha256((%L || g)::bytea),
             %L::timestamptz - interval ''14 days'', %L::timestamptz + g * (interval ''86000 s'' / %s), %L::timestamptz - interval ''13 days''
        FROM generate_series(1, %s) g JOIN s ON s.n = g %% $SESSIONS',
      p, 'e' || d, date_trunc('day', now(), 'UTC') - (7 - d) * interval '1 day',
      date_trunc('day', now(), 'UTC') - (7 - d) * interval '1 day', per,
      date_trunc('day', now(), 'UTC') - (7 - d) * interval '1 day', per);
  END LOOP;
END
\$\$;
INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at, spent_at)
  SELECT gen_random_uuid(), s.id, sha256(('l' || g)::bytea),
         now() - interval '1 day', now() + interval '13 days', now() - interval '1 day'
    FROM generate_series(1, $LIVE) g JOIN s ON s.n = g % $SESSIONS;
VACUUM ANALYZE;
CHECKPOINT;
SQL
# The partitions a pass drops ended days ago: their pages were written out
# long before. Just filled, they are still being written back, and a
# truncate waits for that.
sync
echo "filled in $(( $(date +%s) - fill_started )) s"
echo
echo "sizes (all partitions): rows, heap bytes/row, then bytes/row of each index"
psql -d bench <<'SQL'
WITH parts AS (SELECT partition FROM authgate_refresh_token_partitions()),
     n AS (SELECT count(*) AS rows FROM refresh_tokens)
SELECT 'rows=' || n.rows,
       'heap=' || round(sum(pg_relation_size(p.partition))::numeric / n.rows, 1) || ' B/row',
       'indexes=' || round(sum(pg_indexes_size(p.partition))::numeric / n.rows, 1) || ' B/row',
       'total=' || pg_size_pretty(sum(pg_total_relation_size(p.partition)))
  FROM parts p, n GROUP BY n.rows;
SELECT regexp_replace(i.indexrelid::regclass::text, '^refresh_tokens_p[0-9]+_', '') AS index,
       round(sum(pg_relation_size(i.indexrelid))::numeric / (SELECT count(*) FROM refresh_tokens), 1) AS bytes_per_row
  FROM pg_index i JOIN authgate_refresh_token_partitions() p ON p.partition = i.indrelid
 GROUP BY 1 ORDER BY 1;
SQL

# The files of the partitions the pass will drop (heap and indexes), for
# the bare baseline below.
sizes=$(psql -d bench -c "SELECT pg_relation_size(r.oid)
  FROM authgate_refresh_token_partitions() p,
       LATERAL (SELECT p.partition::oid AS oid
                UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = p.partition) r
 WHERE p.upper_bound <= now() - interval '2 days'" | tr '\n' ' ')

start_server

echo
echo "load: $WORKERS workers rotating their own refresh-token chains"
start_load "$WORKERS"
sleep 2
before_from=$(now_us); sleep 10; before_to=$(now_us)
sweep_from=$(now_us)
pass=$(RUST_LOG=info target/release/authgate sweep 2>"$work/sweep.log")
sweep_to=$(now_us)
sleep 1
# The bare baseline, under the same load: the file system alone freeing the
# bytes of the dropped tables (files of the same sizes, truncated one after
# another, as DROP TABLE does at commit).
coproc BARE { python3 scripts/bench/truncate.py "$work/bare" $sizes; }
read -r _ <&"${BARE[0]}"
sleep 2
bare_from=$(now_us); echo go >&"${BARE[1]}"; read -r bare <&"${BARE[0]}"; bare_to=$(now_us)
sleep 1
stop_load

echo
echo "sweep pass:          $pass"
echo "reissue before pass: $(stats "$work/load.txt" "$before_from" "$before_to")"
echo "reissue during pass: $(stats "$work/load.txt" "$sweep_from" "$sweep_to")"
echo "bare baseline:       $bare (the file system alone, same bytes)"
echo "reissue during it:   $(stats "$work/load.txt" "$bare_from" "$bare_to")"
echo "rows left:           $(psql -d bench -c "SELECT count(*) FROM refresh_tokens") (live rows plus the load's chains)"
echo "partitions left:     $(psql -d bench -c "SELECT count(*) FROM authgate_refresh_token_partitions()")"
echo "the pass said:";  sed "s/^/    /" "$work/sweep.log"

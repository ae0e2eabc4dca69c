-- pgbench script for scripts/bench.sh: the writes of one refresh-token
-- rotation (src/sessions/rotation.rs `rotate`), in one transaction: spend
-- the client's current row, insert its successor, touch the session. Each
-- client (:client_id) has its own session and its own chain, so clients never
-- wait on each other's rows, just as authgate's connections each rotate
-- their own session. Row ids are derived from (:run, :client_id, :k), so the
-- row spent is the one the client inserted in its previous transaction; the
-- k = 0 row of each client is inserted by bench.sh before the run. Every row
-- expires at the same instant (14 days from today's midnight), so that the
-- UPDATE, like authgate's (which knows the token's exp), names the partition
-- key and reads one partition of refresh_tokens.
--   pgbench -n -M prepared -c C -D run=R -D k=0 -f scripts/bench/rotation.sql
\set prev :k
\set k :k + 1
BEGIN;
UPDATE refresh_tokens SET spent_at = now()
 WHERE id = md5(concat('pgbench-', :run::int, '-', :client_id::int, '-', :prev::int))::uuid
   AND expires_at = date_trunc('day', now(), 'UTC') + interval '14 days';
INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at)
VALUES (md5(concat('pgbench-', :run::int, '-', :client_id::int, '-', :k::int))::uuid,
        md5(concat('pgbench-session-', :client_id::int))::uuid,
        sha256(convert_to(concat('pgbench-', :run::int, '-', :client_id::int, '-', :k::int), 'UTF8')),
        now(), date_trunc('day', now(), 'UTC') + interval '14 days');
UPDATE sessions SET last_used_at = now()
 WHERE id = md5(concat('pgbench-session-', :client_id::int))::uuid;
END;

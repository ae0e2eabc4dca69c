-- A batch of rotations as one statement, where migration 2026-11-28-000001
-- ran one statement per element (authgate_rotate_refresh_token in a loop).
-- Each statement that PostgreSQL runs is set up and torn down: its plan's
-- nodes, the result relations of refresh_tokens' partitions, their indexes,
-- their CHECK constraints read back from the catalog's text form. perf
-- under reissue load put ExecutorStart alone at 16% of the machine's CPU
-- (of PostgreSQL's 61%), ExecutorEnd and ExecConstraints at 7% more: a
-- third of PostgreSQL's time went to setting up statements of one row.
-- Done once a batch, the rotations of a batch share it: measured beside the
-- loop (wrk, 64 connections, 8 s, interleaved), 7,063-8,021 rotations/s at
-- 219-239 us of CPU each against 3,886-6,744/s at 259-437 us.
--
-- The rules are those of authgate_rotate_refresh_token (migration
-- 2026-11-28-000001), element by element: the session is the caller's, is
-- live and lasts until the new token's exp, and the request's deadline has
-- not passed; the presented row is unspent, unrevoked and unexpired; the
-- user's roles are those of the token. An element that fails any of them returns no row, and its
-- request runs the full transaction.
--
-- * One element per session: a second element of a session (the same
--   token sent twice at once, say) returns no row, and the full
--   transaction decides between the grace window and reuse for it, as it
--   did when it found the token spent by the first element. So no session
--   can fork into two chains in one batch.
-- * The sessions are locked in the order of their ids (the sort under
--   LockRows), so two batches that share sessions cannot deadlock.
-- * Point look-ups only: the plan is kept for the connection's life (a
--   generic plan), made perhaps on tables without statistics; with seq
--   scans, merge and hash joins off, it is nested loops over
--   sessions_pkey, users_pkey and each partition's token-hash index
--   (pruned to the presented token's partition as it runs), whatever the
--   statistics say.
-- * Sent as text with the arrays as parameters, no prepared statement: it
--   holds through PgBouncer's transaction pooling (SPEC 9).
--
-- authgate_rotate_refresh_token, the one-element form that the loop
-- called, has no caller left and goes.
CREATE OR REPLACE FUNCTION authgate_rotate_refresh_tokens(
    p_session_id    uuid[],
    p_user_id       uuid[],
    p_now           timestamptz[],
    p_presented     bytea[],
    p_id            uuid[],
    p_expires_at    timestamptz[],
    p_hash          bytea[],
    p_roles         jsonb,
    p_commit_by     timestamptz[],
    p_presented_exp timestamptz[]
) RETURNS TABLE (ord int, email text, session_expires_at timestamptz)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_mergejoin = off
SET enable_hashjoin = off
AS $$
#variable_conflict use_column
DECLARE
    n int := coalesce(array_length(p_session_id, 1), 0);
BEGIN
    IF coalesce(array_length(p_user_id, 1), 0) <> n OR coalesce(array_length(p_now, 1), 0) <> n
       OR coalesce(array_length(p_presented, 1), 0) <> n OR coalesce(array_length(p_id, 1), 0) <> n
       OR coalesce(array_length(p_expires_at, 1), 0) <> n OR coalesce(array_length(p_hash, 1), 0) <> n
       OR coalesce(jsonb_array_length(p_roles), 0) <> n OR coalesce(array_length(p_commit_by, 1), 0) <> n
       OR coalesce(array_length(p_presented_exp, 1), 0) <> n THEN
        RAISE EXCEPTION 'authgate_rotate_refresh_tokens: the arrays differ in length';
    END IF;
    RETURN QUERY
    WITH input AS (
        SELECT DISTINCT ON (t.session_id) t.*
          FROM unnest(p_session_id, p_user_id, p_now, p_presented, p_id, p_expires_at, p_hash,
                      p_commit_by, p_presented_exp)
               WITH ORDINALITY AS t(session_id, user_id, now, presented, id, expires_at, hash,
                                    commit_by, presented_exp, k)
         ORDER BY t.session_id, t.k
    ), session AS (
        SELECT s.id, s.user_id, i.k FROM sessions s JOIN input i ON i.session_id = s.id
         WHERE s.user_id = i.user_id
           AND s.revoked_at IS NULL AND s.expires_at >= i.expires_at
           AND clock_timestamp() < i.commit_by
         ORDER BY s.id
           FOR UPDATE OF s
    ), spent AS (
        UPDATE refresh_tokens r SET spent_at = i.now
          FROM session s JOIN input i ON i.k = s.k
         WHERE r.token_hash = i.presented AND r.expires_at = i.presented_exp
           AND r.session_id = s.id
           AND r.spent_at IS NULL AND r.revoked_at IS NULL AND i.presented_exp > i.now
           AND EXISTS (SELECT 1 FROM users u
                        WHERE u.id = s.user_id
                          AND u.roles = ARRAY(SELECT e.role
                                                FROM jsonb_array_elements_text(p_roles -> (i.k::int - 1))
                                                     WITH ORDINALITY AS e(role, o)
                                               ORDER BY e.o))
        RETURNING i.k
    ), minted AS (
        INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at)
        SELECT i.id, i.session_id, i.hash, i.now, i.expires_at
          FROM spent JOIN input i ON i.k = spent.k
        RETURNING refresh_tokens.session_id
    ), touched AS (
        UPDATE sessions s SET last_used_at = i.now
          FROM minted m JOIN input i ON i.session_id = m.session_id
         WHERE s.id = m.session_id
        RETURNING s.id, s.user_id, s.expires_at
    )
    SELECT i.k::int, u.email, t.expires_at
      FROM touched t JOIN input i ON i.session_id = t.id JOIN users u ON u.id = t.user_id;
END;
$$;

COMMENT ON FUNCTION authgate_rotate_refresh_tokens(uuid[], uuid[], timestamptz[], bytea[], uuid[], timestamptz[], bytea[], jsonb, timestamptz[], timestamptz[]) IS 'Reissue''s common case for a batch of requests in one statement and one commit. For each element (one per session) whose session is the caller''s, live and lasting past the new token, whose presented row is unspent, unrevoked and unexpired, whose roles are unchanged and whose deadline has not passed: spends the presented row, stores the successor and touches the session; sessions are locked in the order of their ids. Returns (ord, email, session_expires_at) for each element that rotated; the others go the full way.';

DROP FUNCTION authgate_rotate_refresh_token(uuid, uuid, timestamptz, bytea, uuid, timestamptz, bytea, text[], timestamptz, timestamptz);

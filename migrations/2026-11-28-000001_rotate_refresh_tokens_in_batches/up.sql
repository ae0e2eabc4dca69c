-- 1. The one-statement rotation finds the presented row by its hash and
-- exp through refresh_tokens_token_hash_key (token_hash, expires_at), the
-- unique index. Its check that the row has not expired was written on the
-- column (r.expires_at > p_now), which gave refresh_tokens_expires_at_idx
-- two conditions to the unique index's two: on a partition without
-- statistics yet (a new database, or a new day's partition in its first
-- minute, before autovacuum's ANALYZE), the generic plan that the function
-- keeps for the life of its connection took the expires_at index and read
-- every row of the same second, filtering on the hash. Under load that is
-- thousands of rows a rotation: it made PostgreSQL's CPU per rotation 1.5-2
-- times what it is. The row's expires_at equals p_presented_exp, so the
-- check is the same when written on the parameter, and the plan no longer
-- depends on the statistics. (Found with perf: _bt_killitems and
-- heap_hot_search_buffer at the top, under index scans.)
CREATE OR REPLACE FUNCTION authgate_rotate_refresh_token(
    p_session_id    uuid,
    p_user_id       uuid,
    p_now           timestamptz,
    p_presented     bytea,
    p_id            uuid,
    p_expires_at    timestamptz,
    p_hash          bytea,
    p_roles         text[],
    p_commit_by     timestamptz,
    p_presented_exp timestamptz
) RETURNS TABLE (email text, session_expires_at timestamptz)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH session AS (
        SELECT s.id, s.user_id FROM sessions s
         WHERE s.id = p_session_id AND s.user_id = p_user_id
           AND s.revoked_at IS NULL AND s.expires_at >= p_expires_at
           AND clock_timestamp() < p_commit_by
           FOR UPDATE
    ), spent AS (
        UPDATE refresh_tokens r SET spent_at = p_now
          FROM session s
         WHERE r.token_hash = p_presented AND r.expires_at = p_presented_exp
           AND r.session_id = s.id
           AND r.spent_at IS NULL AND r.revoked_at IS NULL AND p_presented_exp > p_now
           AND EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id AND u.roles = p_roles)
        RETURNING r.session_id
    ), minted AS (
        INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at)
        SELECT p_id, spent.session_id, p_hash, p_now, p_expires_at FROM spent
        RETURNING refresh_tokens.session_id
    ), touched AS (
        UPDATE sessions s SET last_used_at = p_now
          FROM minted m WHERE s.id = m.session_id
        RETURNING s.user_id, s.expires_at
    )
    SELECT u.email, t.expires_at FROM touched t JOIN users u ON u.id = t.user_id;
END;
$$;

-- 2. The batch.
-- Reissue's common case for several requests at once: the rotations that
-- wait while others run are sent together, as one statement and one commit
-- (src/sessions/rotation_queue.rs). Each element is the call of
-- authgate_rotate_refresh_token (migration 2026-11-27-000001) that it would
-- have been alone, with the same preconditions, in the same transaction:
-- the batch commits or rolls back as a whole, and an element whose
-- precondition fails simply returns no row (its request then runs the full
-- transaction, as it would have).
--
-- The elements run in the order of their session ids, so two batches lock
-- the session rows they share in the same order and cannot deadlock. Two
-- elements of one session (the same token sent twice at once) run one after
-- the other: the second finds the token spent and returns no row, and its
-- request's full transaction decides between the grace window and reuse.
--
-- p_roles is a JSON array holding one array of role names per element: a
-- PostgreSQL array of arrays must be rectangular, and users' roles are not.
-- Returns one row (ord, email, session_expires_at) per element that rotated;
-- ord is the element's 1-based position in the arrays.
CREATE FUNCTION authgate_rotate_refresh_tokens(
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
AS $$
DECLARE
    n int := coalesce(array_length(p_session_id, 1), 0);
    i int;
BEGIN
    IF coalesce(array_length(p_user_id, 1), 0) <> n OR coalesce(array_length(p_now, 1), 0) <> n
       OR coalesce(array_length(p_presented, 1), 0) <> n OR coalesce(array_length(p_id, 1), 0) <> n
       OR coalesce(array_length(p_expires_at, 1), 0) <> n OR coalesce(array_length(p_hash, 1), 0) <> n
       OR coalesce(jsonb_array_length(p_roles), 0) <> n OR coalesce(array_length(p_commit_by, 1), 0) <> n
       OR coalesce(array_length(p_presented_exp, 1), 0) <> n THEN
        RAISE EXCEPTION 'authgate_rotate_refresh_tokens: the arrays differ in length';
    END IF;
    FOR i IN SELECT t.k::int FROM unnest(p_session_id) WITH ORDINALITY AS t(sid, k) ORDER BY t.sid, t.k LOOP
        RETURN QUERY
        SELECT i, r.email, r.session_expires_at
          FROM authgate_rotate_refresh_token(
                   p_session_id[i], p_user_id[i], p_now[i], p_presented[i], p_id[i],
                   p_expires_at[i], p_hash[i],
                   ARRAY(SELECT e.role FROM jsonb_array_elements_text(p_roles -> (i - 1))
                                  WITH ORDINALITY AS e(role, k) ORDER BY e.k),
                   p_commit_by[i], p_presented_exp[i]) r;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION authgate_rotate_refresh_tokens(uuid[], uuid[], timestamptz[], bytea[], uuid[], timestamptz[], bytea[], jsonb, timestamptz[], timestamptz[]) IS 'Reissue''s common case for a batch of requests in one statement and one commit: authgate_rotate_refresh_token for each element, in the order of their session ids. Returns (ord, email, session_expires_at) for each element that rotated.';

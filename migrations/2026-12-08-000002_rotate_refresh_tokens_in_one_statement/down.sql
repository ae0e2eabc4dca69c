-- The one-element function of migrations 2026-11-27-000001 and
-- 2026-11-28-000001, which the loop below calls.
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

COMMENT ON FUNCTION authgate_rotate_refresh_token(uuid, uuid, timestamptz, bytea, uuid, timestamptz, bytea, text[], timestamptz, timestamptz) IS 'Reissue in one round trip: spends the presented refresh token (by its hash and exp), stores its successor and touches the session, or returns no row when any precondition fails (the caller then runs the full transaction). Returns the user''s email and the session''s end.';

-- The loop of migration 2026-11-28-000001: one statement per element.
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

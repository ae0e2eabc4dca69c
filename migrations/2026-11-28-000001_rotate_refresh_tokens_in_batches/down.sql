DROP FUNCTION authgate_rotate_refresh_tokens(uuid[], uuid[], timestamptz[], bytea[], uuid[], timestamptz[], bytea[], jsonb, timestamptz[], timestamptz[]);

-- The check on the column, as migration 2026-11-27-000001 wrote it.
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
           AND r.spent_at IS NULL AND r.revoked_at IS NULL AND r.expires_at > p_now
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

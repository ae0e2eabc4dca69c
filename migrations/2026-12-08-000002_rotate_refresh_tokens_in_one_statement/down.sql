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

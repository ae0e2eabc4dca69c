-- Failed logins (SPEC 3), kept here rather than in each instance's memory so
-- that every instance sharing the database counts against the same limits.
-- A row is one login that reserved its slot before its password was checked
-- and did not succeed; keys are hashed, so no email or address is stored.
CREATE TABLE login_failures (
    key_hash bytea       NOT NULL CHECK (octet_length(key_hash) = 32),
    at       timestamptz NOT NULL
);

-- The reservation reads one key's newest rows and trims its oldest.
CREATE INDEX login_failures_key_hash_at_idx ON login_failures (key_hash, at);
-- The sweeper's purge of rows whose key was never seen again.
CREATE INDEX login_failures_at_idx ON login_failures (at);

COMMENT ON TABLE login_failures IS 'Failed logins counted by the login rate limits (ratelimit.*), one row per limit key per login: a login reserves its rows before its password is checked, a successful one deletes them. Rows older than ratelimit.window_secs no longer count and are deleted by the next reservation of their key or by the sweeper.';
COMMENT ON COLUMN login_failures.key_hash IS 'SHA-256 of the limit key, ''email:'' || the canonical email or ''ip:'' || the client address (IPv6 as its /64, e.g. ''ip:2001:db8:1:2::/64''); never the email or address in clear.';
COMMENT ON COLUMN login_failures.at IS 'When the login was attempted, by the clock of the instance that took it.';

-- Reserves a login's slot under every key at once, in one round trip: 0 when
-- reserved (one row inserted per key), or the whole seconds (>= 1) until the
-- first key at its limit has a slot again, with nothing inserted. p_limits[i]
-- is the limit of p_keys[i] (>= 1; a disabled limit is not passed at all).
-- Time is p_now, the caller's clock, never now(): one clock judges every rule.
CREATE FUNCTION authgate_reserve_login(
    p_keys        bytea[],
    p_limits      integer[],
    p_window_secs double precision,
    p_now         timestamptz
) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    horizon  timestamptz := p_now - p_window_secs * interval '1 second';
    lock_key integer;
    blocking timestamptz;
    wait     double precision := 0;
BEGIN
    IF coalesce(array_length(p_keys, 1), 0) = 0 THEN
        RETURN 0;
    END IF;
    -- Serialise the reservations of each key (transaction-scoped, so it
    -- holds through PgBouncer's transaction pooling), taking the locks in
    -- one order so that two logins sharing keys cannot deadlock. The
    -- two-integer form keeps clear of single-bigint advisory locks (the
    -- sweeper's); two keys sharing 32 bits only wait on each other.
    FOR lock_key IN
        SELECT DISTINCT ('x' || encode(substring(k FROM 1 FOR 4), 'hex'))::bit(32)::integer
          FROM unnest(p_keys) AS k
         ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(1819240297, lock_key);
    END LOOP;

    FOR i IN 1 .. array_length(p_keys, 1) LOOP
        -- Hot keys stay small: what has left the window goes now.
        DELETE FROM login_failures f
         WHERE f.key_hash = p_keys[i] AND f.at <= horizon;
        -- At the limit when a limit-th newest row exists; its leaving the
        -- window frees a slot.
        SELECT f.at INTO blocking
          FROM login_failures f
         WHERE f.key_hash = p_keys[i] AND f.at > horizon
         ORDER BY f.at DESC
        OFFSET greatest(p_limits[i], 1) - 1
         LIMIT 1;
        IF FOUND THEN
            wait := greatest(wait, extract(epoch FROM blocking - horizon));
        END IF;
    END LOOP;

    IF wait > 0 THEN
        RETURN least(greatest(ceil(wait), 1), 2147483647)::integer;
    END IF;
    INSERT INTO login_failures (key_hash, at)
    SELECT k, p_now FROM unnest(p_keys) AS k;
    RETURN 0;
END;
$$;

COMMENT ON FUNCTION authgate_reserve_login(bytea[], integer[], double precision, timestamptz) IS 'Login rate limits: reserves one slot per key (returns 0) or returns the Retry-After seconds when a key is at its limit. Called once per login before the password is checked.';

-- Sessions record the client's address, which behind trusted proxies is no
-- longer the peer's.
COMMENT ON COLUMN sessions.ip IS 'Client address of the login request: the TCP peer, or behind server.trusted_proxies the rightmost X-Forwarded-For address that is not a trusted proxy.';
COMMENT ON COLUMN active_sessions.ip IS 'Client address of the login (see sessions.ip).';

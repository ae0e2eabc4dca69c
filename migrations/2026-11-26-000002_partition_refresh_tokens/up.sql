-- SPEC 9: refresh_tokens range-partitioned on expires_at, so that the
-- sweeper removes the rows of a day that has ended by dropping its partition
-- (a cost that does not grow with their number) instead of deleting them one
-- by one. This converts the unpartitioned table in place: it is renamed, the
-- partitioned table takes its name, partitions covering every existing row
-- are made, the rows are copied, and the view that read the old table is
-- pointed at the new one before the old table is dropped. It runs in the
-- migration's transaction: either every row is in the new table or nothing
-- changed.

ALTER TABLE refresh_tokens RENAME TO refresh_tokens_unpartitioned;
ALTER TABLE refresh_tokens_unpartitioned RENAME CONSTRAINT refresh_tokens_pkey TO refresh_tokens_unpartitioned_pkey;
ALTER TABLE refresh_tokens_unpartitioned RENAME CONSTRAINT refresh_tokens_session_id_fkey TO refresh_tokens_unpartitioned_session_id_fkey;
ALTER TABLE refresh_tokens_unpartitioned RENAME CONSTRAINT refresh_tokens_token_hash_check TO refresh_tokens_unpartitioned_token_hash_check;
ALTER TABLE refresh_tokens_unpartitioned RENAME CONSTRAINT refresh_tokens_check TO refresh_tokens_unpartitioned_check;
ALTER INDEX refresh_tokens_token_hash_key RENAME TO refresh_tokens_unpartitioned_token_hash_key;
ALTER INDEX refresh_tokens_expires_at_idx RENAME TO refresh_tokens_unpartitioned_expires_at_idx;
ALTER INDEX refresh_tokens_session_id_idx RENAME TO refresh_tokens_unpartitioned_session_id_idx;
ALTER INDEX refresh_tokens_revoked_at_idx RENAME TO refresh_tokens_unpartitioned_revoked_at_idx;

-- Unique and primary keys of a partitioned table must include the partition
-- key, hence (id, expires_at) and (token_hash, expires_at). Neither is weaker
-- than before: the token string that token_hash hashes contains its jti (id)
-- and its exp (expires_at), so two rows with one hash are one token with one
-- expires_at, and a uniqueness of (token_hash, expires_at) is a uniqueness of
-- token_hash. Look-ups give both, so PostgreSQL reads one partition.
CREATE TABLE refresh_tokens (
    id          uuid        NOT NULL,
    session_id  uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash  bytea       NOT NULL CHECK (octet_length(token_hash) = 32),
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    spent_at    timestamptz,
    revoked_at  timestamptz,
    CHECK (expires_at > issued_at),
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id, expires_at)
) PARTITION BY RANGE (expires_at);

-- Reissue finds the row by the hash of the presented token and its exp.
CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash, expires_at);
-- The sweeper deletes expired rows of partitions it cannot drop yet, oldest first.
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
-- Revoking a session touches its rows; the cascade from sessions needs it too.
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
-- The sweeper's retention batches read only revoked rows.
CREATE INDEX refresh_tokens_revoked_at_idx ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

COMMENT ON TABLE refresh_tokens IS 'One row per issued refresh token (rotation adds one per reissue). Holds hashes only: nothing here can be replayed. Range-partitioned on expires_at, one partition per UTC day (refresh_tokens_pYYYYMMDD), made ahead by authgate migrate and by every sweeper pass; the sweeper detaches and drops a partition whole once its day has ended and no access token issued with its rows can be alive. List them with SELECT * FROM authgate_refresh_token_partitions().';
COMMENT ON COLUMN refresh_tokens.id IS 'The jti claim of the refresh token. Primary key together with expires_at (a partitioned table''s keys must include its partition key).';
COMMENT ON COLUMN refresh_tokens.session_id IS 'The session (sid claim) the token belongs to.';
COMMENT ON COLUMN refresh_tokens.token_hash IS 'SHA-256 of the whole token string (32 bytes); reissue looks the token up by it and its exp (refresh_tokens_token_hash_key, unique on (token_hash, expires_at), which is unique on token_hash since the hashed token contains its exp). Never the token itself.';
COMMENT ON COLUMN refresh_tokens.issued_at IS 'The iat claim: when the token was issued.';
COMMENT ON COLUMN refresh_tokens.expires_at IS 'The exp claim (whole seconds): the token is refused from this instant on. The partition key: the row lives in the partition of its UTC day, and goes when the sweeper deletes it (partitions it cannot drop yet) or drops that partition.';
COMMENT ON COLUMN refresh_tokens.spent_at IS 'When the token was rotated (exchanged for a new pair). A spent token that comes back is a theft signal; the row stays until expires_at so that it is still detected.';
COMMENT ON COLUMN refresh_tokens.revoked_at IS 'When the token was revoked with its session; the sweeper deletes it after sweeper.revoked_retention_secs.';

-- The partitions of refresh_tokens and their ranges, oldest first; for the
-- sweeper and for DBAs. detach_pending: a DETACH ... CONCURRENTLY was
-- interrupted (the next sweeper pass finishes it).
CREATE FUNCTION authgate_refresh_token_partitions()
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz, detach_pending boolean)
LANGUAGE sql STABLE
AS $$
    SELECT c.oid::regclass, b[1]::timestamptz, b[2]::timestamptz, i.inhdetachpending
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
     CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                     'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') AS b
     WHERE i.inhparent = 'refresh_tokens'::regclass
     ORDER BY 2
$$;

COMMENT ON FUNCTION authgate_refresh_token_partitions() IS 'The partitions of refresh_tokens with their expires_at ranges [lower_bound, upper_bound), oldest first; detach_pending when an interrupted DETACH CONCURRENTLY awaits FINALIZE (the next sweeper pass does it).';

-- Makes one partition for expires_at in [p_lower, p_upper): created apart and
-- then attached, which takes SHARE UPDATE EXCLUSIVE on refresh_tokens (not
-- the ACCESS EXCLUSIVE of CREATE TABLE ... PARTITION OF), so reissues go on.
CREATE FUNCTION authgate_attach_refresh_token_partition(p_lower timestamptz, p_upper timestamptz)
RETURNS regclass
LANGUAGE plpgsql
AS $$
DECLARE
    utc  timestamp := p_lower AT TIME ZONE 'UTC';
    name text := 'refresh_tokens_p'
                 || to_char(utc, CASE WHEN utc::time = '00:00' THEN 'YYYYMMDD' ELSE 'YYYYMMDD"_"HH24MISS' END);
    n    integer := 1;
BEGIN
    -- A detached partition not dropped yet may still hold the name.
    WHILE to_regclass(quote_ident(name)) IS NOT NULL LOOP
        n := n + 1;
        name := regexp_replace(name, '_v[0-9]+$', '') || '_v' || n;
    END LOOP;
    EXECUTE format('CREATE TABLE %I (LIKE refresh_tokens INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS)', name);
    EXECUTE format('ALTER TABLE refresh_tokens ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, p_lower, p_upper);
    EXECUTE format('COMMENT ON TABLE %I IS %L', name, format(
        'Partition of refresh_tokens: the rows whose expires_at is in [%s, %s) UTC. Made ahead by authgate; the sweeper detaches and drops it whole once that range has ended and no access token issued with its rows can be alive.',
        to_char(p_lower AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
        to_char(p_upper AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')));
    RETURN name::regclass;
END;
$$;

COMMENT ON FUNCTION authgate_attach_refresh_token_partition(timestamptz, timestamptz) IS 'Makes and attaches one partition of refresh_tokens for expires_at in [p_lower, p_upper); use authgate_make_refresh_token_partitions, which also checks what exists.';

-- Makes whatever partitions are missing so that every expires_at in
-- [p_from, p_until) has one: slots of p_width aligned on the Unix epoch (UTC
-- days for the default), trimmed against partitions that already exist (of
-- another width, or the conversion's partition of old rows). Returns how many
-- it made. Serialised by a transaction-scoped advisory lock, so instances
-- and passes that make the same partition at once do not collide.
CREATE FUNCTION authgate_make_refresh_token_partitions(
    p_from  timestamptz,
    p_until timestamptz,
    p_width interval DEFAULT interval '1 day'
) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    width double precision := extract(epoch FROM p_width);
    t     timestamptz;
    e     timestamptz;
    nxt   timestamptz;
    made  integer := 0;
BEGIN
    IF width IS NULL OR width < 1 THEN
        RAISE EXCEPTION 'partition width must be at least one second, not %', p_width;
    END IF;
    PERFORM pg_advisory_xact_lock(1919251316, 1);
    t := to_timestamp(floor(extract(epoch FROM p_from) / width) * width);
    WHILE t < p_until LOOP
        SELECT p.upper_bound INTO e
          FROM authgate_refresh_token_partitions() p
         WHERE p.lower_bound <= t AND t < p.upper_bound;
        IF FOUND THEN
            t := e;
            CONTINUE;
        END IF;
        e := to_timestamp((floor(extract(epoch FROM t) / width) + 1) * width);
        SELECT min(p.lower_bound) INTO nxt
          FROM authgate_refresh_token_partitions() p
         WHERE p.lower_bound > t;
        IF nxt IS NOT NULL AND nxt < e THEN
            e := nxt;
        END IF;
        PERFORM authgate_attach_refresh_token_partition(t, e);
        made := made + 1;
        t := e;
    END LOOP;
    RETURN made;
END;
$$;

COMMENT ON FUNCTION authgate_make_refresh_token_partitions(timestamptz, timestamptz, interval) IS 'Makes the missing partitions of refresh_tokens so that every expires_at in [p_from, p_until) has one (UTC days by default); returns how many it made. Called by authgate migrate, every sweeper pass, and an insert that found no partition.';

-- The rows that had already expired go into one partition up to today (UTC):
-- the first sweeper pass after today plus one access lifetime drops it
-- whole. The rest get a partition per day, up to the latest expiry or 16 days
-- from now (the default refresh lifetime and a margin; authgate migrate then
-- makes what the configured lifetimes need).
SELECT authgate_attach_refresh_token_partition(
           to_timestamp(floor(extract(epoch FROM min(expires_at)) / 86400) * 86400),
           date_trunc('day', now(), 'UTC'))
  FROM refresh_tokens_unpartitioned
 WHERE expires_at < date_trunc('day', now(), 'UTC')
HAVING count(*) > 0;

SELECT authgate_make_refresh_token_partitions(
           date_trunc('day', now(), 'UTC'),
           greatest(max(expires_at) + interval '1 second', now() + interval '16 days'))
  FROM refresh_tokens_unpartitioned;

INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at, spent_at, revoked_at)
SELECT id, session_id, token_hash, issued_at, expires_at, spent_at, revoked_at
  FROM refresh_tokens_unpartitioned;

-- The view was bound to the old table: bind it to the new one (same text,
-- so its comments stay), then the old table can go.
CREATE OR REPLACE VIEW active_sessions AS
SELECT s.id            AS session_id,
       s.user_id,
       u.email,
       s.user_agent,
       s.ip,
       s.created_at,
       s.last_used_at,
       s.expires_at
  FROM sessions s
  JOIN users u ON u.id = s.user_id
 WHERE s.revoked_at IS NULL
   AND s.expires_at > now()
   AND EXISTS (SELECT 1 FROM refresh_tokens r
                WHERE r.session_id = s.id
                  AND r.spent_at IS NULL
                  AND r.revoked_at IS NULL
                  AND r.expires_at > now());

DROP TABLE refresh_tokens_unpartitioned;

-- Back to one unpartitioned table, every row kept.
CREATE TABLE refresh_tokens_unpartitioned (
    id          uuid        PRIMARY KEY,
    session_id  uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash  bytea       NOT NULL CHECK (octet_length(token_hash) = 32),
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    spent_at    timestamptz,
    revoked_at  timestamptz,
    CHECK (expires_at > issued_at)
);
INSERT INTO refresh_tokens_unpartitioned SELECT id, session_id, token_hash, issued_at, expires_at, spent_at, revoked_at FROM refresh_tokens;

DROP VIEW active_sessions;
DROP TABLE refresh_tokens;
DROP FUNCTION authgate_make_refresh_token_partitions(timestamptz, timestamptz, interval);
DROP FUNCTION authgate_attach_refresh_token_partition(timestamptz, timestamptz);
DROP FUNCTION authgate_refresh_token_partitions();

ALTER TABLE refresh_tokens_unpartitioned RENAME TO refresh_tokens;
ALTER TABLE refresh_tokens RENAME CONSTRAINT refresh_tokens_unpartitioned_pkey TO refresh_tokens_pkey;
CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_revoked_at_idx ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

COMMENT ON TABLE refresh_tokens IS 'One row per issued refresh token (rotation adds one per reissue). Holds hashes only: nothing here can be replayed.';
COMMENT ON COLUMN refresh_tokens.id IS 'The jti claim of the refresh token.';
COMMENT ON COLUMN refresh_tokens.session_id IS 'The session (sid claim) the token belongs to.';
COMMENT ON COLUMN refresh_tokens.token_hash IS 'SHA-256 of the whole token string (32 bytes); reissue looks the token up by it. Never the token itself.';
COMMENT ON COLUMN refresh_tokens.issued_at IS 'The iat claim: when the token was issued.';
COMMENT ON COLUMN refresh_tokens.expires_at IS 'The exp claim: the token is refused from this instant on; the sweeper deletes the row after it.';
COMMENT ON COLUMN refresh_tokens.spent_at IS 'When the token was rotated (exchanged for a new pair). A spent token that comes back is a theft signal; the row stays until expires_at so that it is still detected.';
COMMENT ON COLUMN refresh_tokens.revoked_at IS 'When the token was revoked with its session; the sweeper deletes it after sweeper.revoked_retention_secs.';

CREATE VIEW active_sessions AS
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

COMMENT ON VIEW active_sessions IS 'Live sessions (not revoked, not past their lifetime, with an unexpired current refresh token), with the user''s email. Read-only.';
COMMENT ON COLUMN active_sessions.session_id IS 'sessions.id: the sid claim.';
COMMENT ON COLUMN active_sessions.user_id IS 'users.id: the sub claim.';
COMMENT ON COLUMN active_sessions.email IS 'The user''s email as entered at signup.';
COMMENT ON COLUMN active_sessions.user_agent IS 'User-Agent of the login (the device).';
COMMENT ON COLUMN active_sessions.ip IS 'Client address of the login (see sessions.ip).';
COMMENT ON COLUMN active_sessions.created_at IS 'When the user logged in on this device.';
COMMENT ON COLUMN active_sessions.last_used_at IS 'The login or the latest reissue.';
COMMENT ON COLUMN active_sessions.expires_at IS 'Absolute end of the session.';

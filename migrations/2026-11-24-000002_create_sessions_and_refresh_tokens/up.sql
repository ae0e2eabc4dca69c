-- A session is one login on one device. Every token pair belongs to one.
CREATE TABLE sessions (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    user_agent     text,
    ip             text,
    CHECK (revoked_at IS NULL OR revoked_reason IS NOT NULL)
);

-- Listing a user's sessions, and revoking them all (logout-all, admin).
CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at);
-- Catching up on revocations (the revoked-session cache) and the sweeper's
-- retention scan only ever look at revoked sessions: keep the index small.
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

COMMENT ON TABLE sessions IS 'One row per login (device). Ends at logout, revocation, expires_at, or when its refresh token expires unused.';
COMMENT ON COLUMN sessions.id IS 'Session id; the sid claim of every token of this session.';
COMMENT ON COLUMN sessions.user_id IS 'The account that logged in.';
COMMENT ON COLUMN sessions.created_at IS 'Time of the login that opened the session.';
COMMENT ON COLUMN sessions.last_used_at IS 'Time of the login or of the latest reissue; never null.';
COMMENT ON COLUMN sessions.expires_at IS 'Absolute end of the session: created_at + sessions.max_lifetime_secs. No token of it outlives this.';
COMMENT ON COLUMN sessions.revoked_at IS 'When the session was ended (logout, logout-all, deletion, admin, reuse detection, eviction); null while live.';
COMMENT ON COLUMN sessions.revoked_reason IS 'Why it was ended: logout, logout_all, deleted, admin, reuse_detected, evicted, pair_mismatch.';
COMMENT ON COLUMN sessions.user_agent IS 'User-Agent header of the login request, as sent (at most 512 characters kept).';
COMMENT ON COLUMN sessions.ip IS 'Peer address of the login request.';

-- One row per issued refresh token. Only the SHA-256 of the token is kept.
CREATE TABLE refresh_tokens (
    id          uuid        PRIMARY KEY,
    session_id  uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash  bytea       NOT NULL CHECK (octet_length(token_hash) = 32),
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    spent_at    timestamptz,
    revoked_at  timestamptz,
    CHECK (expires_at > issued_at)
);

-- Reissue finds the row by the hash of the presented token.
CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash);
-- The sweeper deletes expired rows in batches, oldest first.
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
-- Revoking a session touches its rows; the cascade from sessions needs it too.
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

COMMENT ON TABLE refresh_tokens IS 'One row per issued refresh token (rotation adds one per reissue). Holds hashes only: nothing here can be replayed.';
COMMENT ON COLUMN refresh_tokens.id IS 'The jti claim of the refresh token.';
COMMENT ON COLUMN refresh_tokens.session_id IS 'The session (sid claim) the token belongs to.';
COMMENT ON COLUMN refresh_tokens.token_hash IS 'SHA-256 of the whole token string (32 bytes); reissue looks the token up by it. Never the token itself.';
COMMENT ON COLUMN refresh_tokens.issued_at IS 'The iat claim: when the token was issued.';
COMMENT ON COLUMN refresh_tokens.expires_at IS 'The exp claim: the token is refused from this instant on; the sweeper deletes the row after it.';
COMMENT ON COLUMN refresh_tokens.spent_at IS 'When the token was rotated (exchanged for a new pair). A spent token that comes back is a theft signal; the row stays until expires_at so that it is still detected.';
COMMENT ON COLUMN refresh_tokens.revoked_at IS 'When the token was revoked with its session; the sweeper deletes it after sweeper.revoked_retention_secs.';

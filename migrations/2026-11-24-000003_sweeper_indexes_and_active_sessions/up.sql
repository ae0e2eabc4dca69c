-- The sweeper deletes revoked rows past their retention oldest first; only
-- revoked rows are in this index, so it stays small while most rows are live.
CREATE INDEX refresh_tokens_revoked_at_idx ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
-- Sessions past their absolute end go whole.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- For DBAs: who is logged in where, right now.
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
COMMENT ON COLUMN active_sessions.ip IS 'Peer address of the login.';
COMMENT ON COLUMN active_sessions.created_at IS 'When the user logged in on this device.';
COMMENT ON COLUMN active_sessions.last_used_at IS 'The login or the latest reissue.';
COMMENT ON COLUMN active_sessions.expires_at IS 'Absolute end of the session.';
